/*  =========================================================================
    settings - what the actors read, each part declared by its actor

    Each actor declares the settings it reads in its own header; this struct
    only gathers them so that one pointer reaches every actor.  The
    configuration loader (config/keys.c) fills it; actors never see the
    configuration itself.  Built before the actors start, read only after.
    =========================================================================
*/
#ifndef CG_SETTINGS_H
#define CG_SETTINGS_H

#include "browser.h"
#include "channel.h"
#include "provider.h"
#include "ratelimit.h"
#include "run.h"
#include "session.h"
#include "system.h"

//  How actors keep their registration with the broker alive.
typedef struct {
    int heartbeat_ms;  //  Heartbeat interval
    int liveness;      //  Missed heartbeats before a peer is dead
} actor_bus_settings_t;

typedef struct actor_settings actor_settings_t;  //  Also in actor.h

struct actor_settings {
    actor_bus_settings_t bus;
    catalog_t catalog;  //  Providers, models, agents
    run_settings_t run;
    session_settings_t session;
    browser_settings_t browser;
    ratelimit_settings_t ratelimit;
    system_settings_t system;
    channel_settings_t channel;
};

#endif
