/*  =========================================================================
    store_vfs - SQLite's default VFS with the WAL's writes gathered into
    one write per commit (see store_vfs.c)
    =========================================================================
*/
#ifndef CG_STORE_VFS_H
#define CG_STORE_VFS_H

#define STORE_VFS_NAME "clawgate"

//  Registers the VFS on first use (thread-safe) and returns its name, to
//  pass to sqlite3_open_v2; NULL if it could not be registered (the caller
//  then uses SQLite's default).
const char *
store_vfs_name (void);

#endif
