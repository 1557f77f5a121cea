/*
 * SIGBUS guard. Reading a memory-mapped source file that was truncated after
 * it was mapped raises SIGBUS, which would kill the daemon and every reader
 * with it. Code copies mapped source bytes with tpfs_guard_copy: a SIGBUS
 * raised by that thread inside the copy unwinds to the guard, which
 * returns -EIO; any other SIGBUS kills the process as it would without
 * the handler. (Tensor data is read with pread, not mapped: only
 * passed-through files and indexes are.)
 */
#ifndef TPFS_GUARD_H
#define TPFS_GUARD_H

#include <stddef.h>

/* Install the process-wide SIGBUS handler. Idempotent; call before threads. */
int tpfs_guard_install(void);

/* memcpy that returns 0, or -EIO if it faulted on a mapping; n == 0
 * copies nothing, whatever the pointers (NULL included). */
int tpfs_guard_copy(void *dst, const void *src, size_t n);

#endif
