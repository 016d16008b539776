/*  =========================================================================
    clawgate - one binary, several roles (docs/deployment.md#roles)
    =========================================================================
*/
#include "config.h"
#include "roles.h"

#include <stdbool.h>

#include <stdio.h>
#include <string.h>

static const char *s_usage =
    "clawgate " CLAWGATE_VERSION " - a self-hosted OpenClaw gateway\n"
    "\n"
    "usage: clawgate <role> [options]   (clawgate <role> --help for each)\n"
    "  serve     everything in one process (the default deployment)\n"
    "  broker    route requests between gateways and workers on tcp://\n"
    "  gateway   the HTTP/WS front, against a remote broker\n"
    "  worker    actors serving a remote broker (--actors system,...)\n"
    "  tap       print the events a broker publishes\n"
    "  pairing   list or approve chat channels' pairing requests\n"
    "  config-keys  print every configuration key (Markdown)\n"
    "  version   print the version\n";

static int
s_role (int argc, char **argv);

int
main (int argc, char **argv)
{
    if (argc < 2 || !strcmp (argv[1], "--help") || !strcmp (argv[1], "-h")
        || !strcmp (argv[1], "help")) {
        printf ("%s", s_usage);
        return argc < 2 ? 2 : 0;
    }
    //  libcurl is neither loaded nor set up here: the run actor does both
    //  on the first provider call (actors/curl_lazy.c), so an idle gateway
    //  never carries it.
    int rc = s_role (argc, argv);
    return rc;
}

static int
s_role (int argc, char **argv)
{
    const char *role = argv[1];
    if (!strcmp (role, "version") || !strcmp (role, "--version")) {
        printf ("clawgate %s\n", CLAWGATE_VERSION);
        return 0;
    }
    if (!strcmp (role, "serve"))
        return role_serve (argc - 1, argv + 1);
    if (!strcmp (role, "broker"))
        return role_broker (argc - 1, argv + 1);
    if (!strcmp (role, "gateway"))
        return role_gateway (argc - 1, argv + 1);
    if (!strcmp (role, "worker"))
        return role_worker (argc - 1, argv + 1);
    if (!strcmp (role, "tap"))
        return role_tap (argc - 1, argv + 1);
    if (!strcmp (role, "pairing"))
        return role_pairing (argc - 1, argv + 1);
    if (!strcmp (role, "config-keys"))
        return config_print_reference (stdout) ? 1 : 0;
    fprintf (stderr, "clawgate: unknown role '%s'\n\n%s", role, s_usage);
    return 2;
}
