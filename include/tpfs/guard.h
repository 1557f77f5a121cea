/*
 * SIGBUS guard. Reading a memory-mapped source file that was truncated after
 * it was mapped raises SIGBUS, which would kill the daemon and every reader
 * with it. Code that touches mapped source bytes runs inside tpfs_guard_run:
 * a SIGBUS raised by that thread inside the guarded function unwinds to the
 * guard, which returns -EIO; any other SIGBUS kills the process as it would
 * without the handler. The guarded function must not take locks or
 * allocate, since it can be abandoned at any instruction.
 */
#ifndef TPFS_GUARD_H
#define TPFS_GUARD_H

#include <stddef.h>

/* Install the process-wide SIGBUS handler. Idempotent; call before threads. */
int tpfs_guard_install(void);

/* Run fn(arg). Returns 0, or -EIO if it faulted on a mapping. */
int tpfs_guard_run(void (*fn)(void *arg), void *arg);

/* memcpy with the same protection; n == 0 copies nothing, whatever the
 * pointers (NULL included). */
int tpfs_guard_copy(void *dst, const void *src, size_t n);

#endif
