/*  =========================================================================
    store_vfs - SQLite's own VFS with the write-ahead log's writes gathered

    SQLite appends a commit to the WAL as one pwrite () of a 24-byte frame
    header and one of the page, per page: a new session's run writes about
    nine pages, so seventeen system calls at about 3 us each on this kind of
    machine, a third of what the store adds to a run.  This shim sits on
    the default VFS ("unix") and, for WAL files only, keeps consecutive
    writes in a buffer and hands them to the kernel as one write:

    - a write that appends to the log, or falls inside the buffer (SQLite
      rewrites a spilled frame of the open transaction in place), is
      copied in; any other write (a frame header rewritten at a commit)
      goes to the file at once, after the buffer;
    - a failed write-out keeps the buffer and reports the error: nothing
      SQLite believes written is ever dropped;
    - the page of a commit frame ends the transaction: the buffer goes out
      with it (s_write), before SQLite publishes the commit in the
      wal-index, so no connection (in this process or another) can be told
      of a frame that is still in the buffer, and a commit is in the kernel
      before sqlite3_step () returns it;
    - the buffer is also written out before every operation that reads or
      sizes the file, syncs, truncates or closes it, and before xShmBarrier
      and xShmLock (the fallback).  A crash loses at most frames of a
      transaction that had not committed, as it could before.

    Every other file, and every other operation, goes straight through.

    Memory: each WAL file handle owns its buffer (STORE_VFS_BUF, 64 KiB, made
    on its first write, freed at close).  Thread-safety: a sqlite3_file is
    used by one connection, and each connection by one thread (the store's
    rule), so the buffer needs no lock; registration happens once.
    =========================================================================
*/
#include "store_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

//  At most this much goes out in one write: the unix VFS masks a write's
//  length to 17 bits (0x1ffff), so a longer one would come out short and
//  be reported as a full disk.  A run's commit is about 40 KiB.
#define STORE_VFS_BUF (64 * 1024)

typedef struct vfile_t vfile_t;
struct vfile_t {
    sqlite3_file base;   //  Must be first: SQLite's view
    sqlite3_file *real;  //  The unix VFS's file, right after us
    bool wal;            //  A write-ahead log: writes gathered
    unsigned char *buf;  //  Gathered bytes (owned), or NULL
    size_t len;          //  How many
    sqlite3_int64 off;   //  File offset of buf[0]
    bool commit_next;    //  Last write: a commit frame's header
    sqlite3_int64 end;   //  Where the next append goes (s_write)
    //  SQLite reaches the WAL's shared memory (barrier, locks) through the
    //  main database file: each knows the other while both are open.
    vfile_t *wal_of_db;  //  A database file's open WAL, or NULL
    vfile_t *db_of_wal;  //  A WAL's database file, or NULL
};

static sqlite3_vfs s_vfs;
static sqlite3_vfs *s_real;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static int s_registered = SQLITE_ERROR;

//  Writes the buffer out.  A failed write keeps it, so no byte SQLite was
//  told is written is ever dropped: the error goes to the operation that
//  asked for the flush, and the next flush tries again (a commit whose
//  frames cannot be written fails, as it would unbuffered).
static int
s_flush (vfile_t *f)
{
    if (!f->len)
        return SQLITE_OK;
    int rc = f->real->pMethods->xWrite (f->real, f->buf, (int) f->len, f->off);
    if (rc == SQLITE_OK)
        f->len = 0;
    return rc;
}

static int
s_close (sqlite3_file *file)
{
    vfile_t *f = (vfile_t *) file;
    int rc = s_flush (f);
    if (f->db_of_wal)
        f->db_of_wal->wal_of_db = NULL;
    if (f->wal_of_db)
        f->wal_of_db->db_of_wal = NULL;
    int rc2 = f->real->pMethods->xClose (f->real);
    free (f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int
s_read (sqlite3_file *file, void *out, int amt, sqlite3_int64 off)
{
    vfile_t *f = (vfile_t *) file;
    int rc = s_flush (f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead (f->real, out, amt, off);
}

//  The 24-byte header of a WAL frame holds, at bytes 4-7, the database's
//  size in pages after a commit frame and zero in every other frame
//  (SQLite's documented WAL format).  SQLite writes a frame as its header,
//  then its page: the page after a commit frame's header ends the
//  transaction, and the buffer goes out right then, before SQLite updates
//  the wal-index.  (Flushing only at the barrier would put the write
//  between SQLite's two copies of the wal-index header, and every reader
//  that looked meanwhile would find them different and retry or give up
//  as busy; the barrier's flush is the fallback should SQLite ever write
//  frames differently.)
#define WAL_FRAME_HDR 24

static bool
s_is_commit_header (const void *data, int amt)
{
    const unsigned char *h = (const unsigned char *) data;
    return amt == WAL_FRAME_HDR && (h[4] | h[5] | h[6] | h[7]) != 0;
}

//  Only appends are gathered: writes at the end of the log as this handle
//  knows it (f->end; a write at offset 0 is a new log's header and starts
//  it again).  A write elsewhere rewrites an earlier frame (SQLite's
//  checksum rewrite at a commit, which rewrites the commit frame's header
//  last) and goes straight to the file after the buffer, so its error, if
//  any, reaches SQLite at once.  A write inside the buffer (a spilled page
//  written again before the commit) is copied over it.
static int
s_write (sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
    vfile_t *f = (vfile_t *) file;
    if (!f->wal || amt <= 0)
        return f->real->pMethods->xWrite (f->real, data, amt, off);
    bool ends = f->commit_next && amt != WAL_FRAME_HDR;
    f->commit_next = s_is_commit_header (data, amt);
    size_t n = (size_t) amt;
    sqlite3_int64 buf_end = f->off + (sqlite3_int64) f->len;
    int rc = SQLITE_OK;
    if (f->len && off >= f->off && off + amt <= buf_end)
        memcpy (f->buf + (off - f->off), data, n);
    else {
        if (off == 0)
            f->end = 0;  //  A new log: its header comes first
        bool append = off == (f->len ? buf_end : f->end);
        if (f->len && (!append || f->len + n > STORE_VFS_BUF)) {
            if ((rc = s_flush (f)) != SQLITE_OK)
                return rc;
        }
        if (!append || n > STORE_VFS_BUF
            || (!f->buf && !(f->buf = (unsigned char *) malloc (STORE_VFS_BUF))))
            rc = f->real->pMethods->xWrite (f->real, data, amt, off);
        else {
            if (!f->len)
                f->off = off;
            memcpy (f->buf + f->len, data, n);
            f->len += n;
        }
    }
    if (rc == SQLITE_OK && off + amt > f->end)
        f->end = off + amt;
    return rc == SQLITE_OK && ends ? s_flush (f) : rc;
}

static int
s_truncate (sqlite3_file *file, sqlite3_int64 size)
{
    vfile_t *f = (vfile_t *) file;
    int rc = s_flush (f);
    if (rc == SQLITE_OK
        && (rc = f->real->pMethods->xTruncate (f->real, size)) == SQLITE_OK
        && f->end > size)
        f->end = size;
    return rc;
}

static int
s_sync (sqlite3_file *file, int flags)
{
    vfile_t *f = (vfile_t *) file;
    int rc = s_flush (f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync (f->real, flags);
}

static int
s_file_size (sqlite3_file *file, sqlite3_int64 *size)
{
    vfile_t *f = (vfile_t *) file;
    int rc = s_flush (f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize (f->real, size);
}

static int
s_lock (sqlite3_file *file, int level)
{
    vfile_t *f = (vfile_t *) file;
    return f->real->pMethods->xLock (f->real, level);
}

static int
s_unlock (sqlite3_file *file, int level)
{
    vfile_t *f = (vfile_t *) file;
    int rc = s_flush (f);
    int rc2 = f->real->pMethods->xUnlock (f->real, level);
    return rc != SQLITE_OK ? rc : rc2;
}

static int
s_check_reserved (sqlite3_file *file, int *out)
{
    vfile_t *f = (vfile_t *) file;
    return f->real->pMethods->xCheckReservedLock (f->real, out);
}

static int
s_file_control (sqlite3_file *file, int op, void *arg)
{
    vfile_t *f = (vfile_t *) file;
    int rc = s_flush (f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl (f->real, op, arg);
}

static int
s_sector_size (sqlite3_file *file)
{
    vfile_t *f = (vfile_t *) file;
    return f->real->pMethods->xSectorSize (f->real);
}

static int
s_device_characteristics (sqlite3_file *file)
{
    vfile_t *f = (vfile_t *) file;
    return f->real->pMethods->xDeviceCharacteristics (f->real);
}

static int
s_shm_map (sqlite3_file *file, int page, int size, int extend, void volatile **out)
{
    vfile_t *f = (vfile_t *) file;
    return f->real->pMethods->xShmMap (f->real, page, size, extend, out);
}

static int
s_shm_lock (sqlite3_file *file, int offset, int n, int flags)
{
    vfile_t *f = (vfile_t *) file;
    //  The fallback write-out; its failure keeps the bytes for the WAL's
    //  next operation to report, and never stands in the lock's way (a
    //  refused unlock would hold the write lock for good).
    if (f->wal_of_db)
        s_flush (f->wal_of_db);
    return f->real->pMethods->xShmLock (f->real, offset, n, flags);
}

static void
s_shm_barrier (sqlite3_file *file)
{
    vfile_t *f = (vfile_t *) file;
    //  The fallback write-out (s_write leaves nothing of a commit for
    //  here).  A failure cannot be reported from a barrier: the bytes are
    //  kept for the WAL's next operation to write or report.
    if (f->wal_of_db)
        s_flush (f->wal_of_db);
    f->real->pMethods->xShmBarrier (f->real);
}

static int
s_shm_unmap (sqlite3_file *file, int del)
{
    vfile_t *f = (vfile_t *) file;
    return f->real->pMethods->xShmUnmap (f->real, del);
}

static int
s_fetch (sqlite3_file *file, sqlite3_int64 off, int amt, void **out)
{
    vfile_t *f = (vfile_t *) file;
    int rc = s_flush (f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch (f->real, off, amt, out);
}

static int
s_unfetch (sqlite3_file *file, sqlite3_int64 off, void *p)
{
    vfile_t *f = (vfile_t *) file;
    return f->real->pMethods->xUnfetch (f->real, off, p);
}

static const sqlite3_io_methods s_methods = {3,
                                             s_close,
                                             s_read,
                                             s_write,
                                             s_truncate,
                                             s_sync,
                                             s_file_size,
                                             s_lock,
                                             s_unlock,
                                             s_check_reserved,
                                             s_file_control,
                                             s_sector_size,
                                             s_device_characteristics,
                                             s_shm_map,
                                             s_shm_lock,
                                             s_shm_barrier,
                                             s_shm_unmap,
                                             s_fetch,
                                             s_unfetch};

static int
s_open (sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
    vfile_t *f = (vfile_t *) file;
    memset (f, 0, sizeof (*f));
    f->real = (sqlite3_file *) (f + 1);
    int rc = s_real->xOpen (s_real, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK || !f->real->pMethods) {
        f->base.pMethods = NULL;  //  SQLite closes nothing it did not open
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    f->base.pMethods = &s_methods;
    if ((flags & SQLITE_OPEN_WAL) && name) {
        //  The main database file of this WAL, opened by the same
        //  connection through this VFS (store_vfs_name) before it.
        vfile_t *db = (vfile_t *) sqlite3_database_file_object (name);
        if (db && db->base.pMethods == &s_methods && !db->wal_of_db) {
            f->wal = true;
            f->db_of_wal = db;
            db->wal_of_db = f;
        }
    }
    return SQLITE_OK;
}

static void
s_register (void)
{
    s_real = sqlite3_vfs_find (NULL);
    if (!s_real)
        return;
    s_vfs = *s_real;
    s_vfs.zName = STORE_VFS_NAME;
    s_vfs.szOsFile = (int) sizeof (vfile_t) + s_real->szOsFile;
    s_vfs.pNext = NULL;
    s_vfs.xOpen = s_open;
    s_registered = sqlite3_vfs_register (&s_vfs, 0);
}

const char *
store_vfs_name (void)
{
    pthread_once (&s_once, s_register);
    return s_registered == SQLITE_OK ? STORE_VFS_NAME : NULL;
}
