/*  =========================================================================
    system - answers status and liveness for the whole gateway

    Service "system".  Accepts SYSTEM_STATUS (-> SYSTEM_STATUS_OK) and
    SYSTEM_PING (-> SYSTEM_PONG); see schemas/messages.def.  Kept apart from
    the run actor so status never waits behind agent work.
    Start: zactor_new (system_actor, &actor_args).
    =========================================================================
*/
#ifndef CG_SYSTEM_H
#define CG_SYSTEM_H

#include <czmq.h>
#include <stdbool.h>

#include "channel.h"

//  What the system actor reads.
typedef struct {
    const cfg_channel_t *channels;  //  Lent by the configuration
    size_t n_channels;
} system_settings_t;

void
system_actor (zsock_t *pipe, void *args);

#endif
