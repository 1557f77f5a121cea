/*
 * An arena: memory handed out in pieces that never move and are all freed
 * at once, for the many small strings and arrays of a model (names,
 * shapes), with no per-piece overhead. Not thread-safe.
 */
#ifndef TPFS_ARENA_H
#define TPFS_ARENA_H

#include <stddef.h>

struct tpfs_arena {
	struct tpfs_arena_chunk *chunks;
	size_t used, cap;            /* in the newest chunk */
};

/* n bytes aligned to align (a power of two, at most that of max_align_t),
 * or NULL. */
void *tpfs_arena_alloc(struct tpfs_arena *a, size_t n, size_t align);
/* A copy of s[0..n) with a NUL after it, or NULL. */
char *tpfs_arena_strndup(struct tpfs_arena *a, const char *s, size_t n);
/* Accepts a zeroed arena; leaves it zeroed. */
void tpfs_arena_free(struct tpfs_arena *a);

#endif
