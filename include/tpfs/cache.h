/*
 * Bounded cache of blocks of converted tensor data, made by the reads that
 * need them or ahead of their reader (data served as stored never enters
 * it).
 *
 * Blocks are keyed by the source file's identity, the tensor, the block index
 * and the conversion, hashed with XXH3; the full key is compared on lookup so
 * a hash collision can never serve the wrong bytes.
 *
 * Locking contract: one mutex protects the hash table, the LRU list, the
 * counters and every entry's refs and state. A block's bytes are written
 * only by the thread that fills it, before it becomes READY, and are
 * immutable afterwards, so pinned data is read without the lock. The fill
 * function runs without the lock; other readers of the same key wait for it
 * instead of converting the block again.
 *
 * Memory: the bytes of all blocks plus their bookkeeping stay within the
 * capacity, except while more blocks are pinned at once than fit (each
 * reader pins at most a few); the excess is released as soon as they are
 * unpinned. Eviction is least-recently-used among unpinned blocks.
 */
#ifndef TPFS_CACHE_H
#define TPFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpfs_cache;
struct tpfs_cache_block;

/* A tensor of a source file: the file's identity and the tensor's offset. */
struct tpfs_cache_ref {
	uint64_t dev, ino, size, mtime_ns;
	uint64_t offset;
};

/* Zero the whole key (padding included: it is hashed) before filling it. */
struct tpfs_cache_key {
	struct tpfs_cache_ref src[2]; /* the source tensor(s); src[1] zero if one */
	uint64_t block;               /* block index in output space */
	uint64_t conv;                /* conversion id */
};

/* Produces the len bytes of a missing block into dst. Returns 0 or a negative
 * errno (the block is then not cached and every waiter gets the error). */
typedef int (*tpfs_fill_fn)(void *ctx, void *dst, size_t len);

struct tpfs_cache_stats {
	uint64_t hits;       /* lookups served from the cache (or a fill in flight) */
	uint64_t misses;     /* lookups that ran a fill */
	uint64_t evictions;
	uint64_t fill_errors;
	uint64_t used;       /* bytes held now, bookkeeping included */
	uint64_t capacity;
	uint64_t blocks;     /* blocks held now */
};

/* Returns NULL on allocation failure. */
struct tpfs_cache *tpfs_cache_create(uint64_t capacity);

/* Accepts NULL. No block may be pinned. */
void tpfs_cache_destroy(struct tpfs_cache *c);

/* Find the block for key, filling it with fill(ctx, ...) if absent; on
 * success *out is pinned until tpfs_cache_put. len is the block's length and
 * must be the same for every call with the same key. Returns 0 or a
 * negative errno (-ENOMEM, or the fill's error). Thread-safe. */
int tpfs_cache_get(struct tpfs_cache *c, const struct tpfs_cache_key *key,
		   size_t len, tpfs_fill_fn fill, void *ctx,
		   struct tpfs_cache_block **out);

/* Whether a block for key is held or being filled, counted neither as
 * a hit nor as a miss. Thread-safe. */
bool tpfs_cache_holds(struct tpfs_cache *c, const struct tpfs_cache_key *key);

/* The pinned block's bytes; valid until tpfs_cache_put. */
const void *tpfs_cache_data(const struct tpfs_cache_block *b);

/* Unpin. Thread-safe. */
void tpfs_cache_put(struct tpfs_cache *c, struct tpfs_cache_block *b);

void tpfs_cache_get_stats(struct tpfs_cache *c, struct tpfs_cache_stats *s);

#endif
