/*  =========================================================================
    routes - the HTTP API's route table and its handlers
    =========================================================================
*/
#ifndef CG_ROUTES_H
#define CG_ROUTES_H

#include "server.h"

//  The route table, ending in a zeroed entry.  Static; never freed.
const route_t *
routes_table (void);

#endif
