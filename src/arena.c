/*
 * The arena (see arena.h): chunks of 64 KiB, filled in turn.
 */
#include "tpfs/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK ((size_t)64 << 10)

struct tpfs_arena_chunk {
	struct tpfs_arena_chunk *next;
	max_align_t data[];
};

void *tpfs_arena_alloc(struct tpfs_arena *a, size_t n, size_t align)
{
	if (n > SIZE_MAX - sizeof(struct tpfs_arena_chunk))
		return NULL; /* the chunk's size would wrap around */
	size_t at = (a->used + align - 1) & ~(align - 1);
	if (!a->chunks || at > a->cap || n > a->cap - at) {
		/* a piece larger than a quarter chunk gets a chunk of its own,
		 * so that little is left unused at a chunk's end */
		size_t cap = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
		struct tpfs_arena_chunk *c = malloc(sizeof(*c) + (cap ? cap : 1));
		if (!c)
			return NULL;
		if (cap == n && a->chunks) { /* keep filling the current chunk */
			c->next = a->chunks->next;
			a->chunks->next = c;
			return c->data;
		}
		c->next = a->chunks;
		a->chunks = c;
		a->cap = cap;
		at = 0;
	}
	a->used = at + n;
	return (char *)a->chunks->data + at;
}

char *tpfs_arena_strndup(struct tpfs_arena *a, const char *s, size_t n)
{
	char *p = tpfs_arena_alloc(a, n + 1, 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

void tpfs_arena_free(struct tpfs_arena *a)
{
	while (a->chunks) {
		struct tpfs_arena_chunk *next = a->chunks->next;
		free(a->chunks);
		a->chunks = next;
	}
	a->used = a->cap = 0;
}
