/*  =========================================================================
    roles - what each `clawgate <role>` process runs

    Each returns the process exit status: 0 after a clean shutdown, 1 on a
    run-time failure, 2 on a usage or configuration error.
    =========================================================================
*/
#ifndef CG_ROLES_H
#define CG_ROLES_H

int
role_serve (int argc, char **argv);
int
role_broker (int argc, char **argv);
int
role_gateway (int argc, char **argv);
int
role_worker (int argc, char **argv);
int
role_tap (int argc, char **argv);
int
role_pairing (int argc, char **argv);

#endif
