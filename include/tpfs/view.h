/*
 * What a mount serves, over a loaded model: its entries (the tree's nodes
 * and the .tpfs/info mirror), their attributes, the state the served bytes
 * come from (the block cache, the cards, manifest.json's layout) and the
 * counters of .tpfs/stats. The bytes themselves are file.h's.
 *
 * Entries have ids (the FUSE inode is id + 1): id n < nnodes is tree node
 * n, and id nnodes + n is the .tpfs/info mirror of node n: the card of a
 * tensor (.npy replaced by .txt), or the folder of cards of a folder with a
 * tensor below it. The .tpfs/info folder itself lists the root's mirror.
 * A folder of tensors called x.txt beside a tensor x.npy hides that card.
 *
 * Thread-safe: the model is immutable, the cache, the cards and the
 * manifest's layout lock themselves and the counters are atomic.
 */
#ifndef TPFS_VIEW_H
#define TPFS_VIEW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "tpfs/ahead.h"
#include "tpfs/cache.h"
#include "tpfs/card.h"
#include "tpfs/manifest.h"
#include "tpfs/model.h"

struct tpfs_view {
	struct tpfs_model *model;
	struct tpfs_cache *cache;
	struct tpfs_ahead *ahead;             /* NULL unless reading ahead */
	struct tpfs_card_set *cards;
	pthread_mutex_t manifest_lock;
	_Atomic(struct tpfs_manifest *) manifest; /* measured when first needed */
	atomic_uint_fast64_t reads;           /* read requests */
	atomic_uint_fast64_t bytes_served;
	atomic_uint_fast64_t bytes_converted; /* output bytes produced by fills */
	atomic_uint_fast64_t overflows;       /* finite values made infinite */
	/* Blocks whose overflows were counted (tpfs_view_count_fill), as
	 * (tensor + 1, block) pairs in an open-addressing table of
	 * overflowed_cap slots, (0, 0) free. Only blocks with an overflow
	 * enter it: it stays empty unless a narrowing conversion overflows. */
	pthread_mutex_t overflowed_lock;
	uint64_t (*overflowed)[2];
	size_t noverflowed, overflowed_cap;
	atomic_uint_fast64_t errors;          /* reads that failed */
};

/* What stat says of an entry. */
struct tpfs_view_attr {
	enum tpfs_node_kind kind;
	uint32_t uid, gid;
	uint16_t mode;           /* permission bits */
	uint32_t nlink;
	uint64_t size;
	struct timespec mtime;
};

/* Takes no ownership of m. Returns NULL on allocation failure. */
struct tpfs_view *tpfs_view_create(struct tpfs_model *m);

/* Accepts NULL. */
void tpfs_view_destroy(struct tpfs_view *v);

/* Whether id names an entry. */
bool tpfs_view_valid(const struct tpfs_view *v, uint64_t id);

/* The attributes of entry id (a valid one). Returns 0 or -ENOMEM. */
int tpfs_view_stat(struct tpfs_view *v, uint32_t id, struct tpfs_view_attr *a);

/* Whether entry id is a file of tpfs's own (manifest.json, .tpfs/stats)
 * that fewer users may read than may look it up: its size would tell them
 * how much it holds, so it is served as 0 bytes, read to its end all the
 * same (direct I/O). */
bool tpfs_view_size_hidden(const struct tpfs_view *v, uint32_t id);

/* The inode number stat shows for entry id: 1 for the root, else a hash
 * of its path, so that it tells nothing of the entries loaded before it
 * (which a number counting them would, a private folder's included). */
uint64_t tpfs_view_ino(const struct tpfs_view *v, uint32_t id);

/* An entry's kind: a card for a tensor's mirror, else its node's. */
enum tpfs_node_kind tpfs_view_kind(const struct tpfs_view *v, uint32_t id);

/* The size of a file entry in bytes, known without reading (0 for
 * .tpfs/stats, whose size is that of a snapshot, and when out of memory for
 * a card or the manifest). */
uint64_t tpfs_view_size(struct tpfs_view *v, uint32_t id);

/* The entry called name in folder dir: its id, -ENOENT, or -ENOTDIR. */
long tpfs_view_lookup(const struct tpfs_view *v, uint32_t dir, const char *name);

/* The first entry of folder dir at position *k or after it (positions
 * count from 0, in name order, and stay the same while mounted): *k is set
 * to its position, *id to it, and *name to its name (in buf when made up).
 * Returns 0, or -ENOENT past the last. */
int tpfs_view_entry_at(const struct tpfs_view *v, uint32_t dir, uint64_t *k, uint32_t *id,
		       const char **name, char buf[256]);

/* The tensor a tensor or card entry serves, or NULL. */
const struct tpfs_tensor *tpfs_view_tensor(const struct tpfs_view *v, uint32_t id);

/* The source a passed-through file entry serves, or NULL. */
struct tpfs_source *tpfs_view_source(const struct tpfs_view *v, uint32_t id);

/* manifest.json's layout, measured by the first caller; NULL when out of
 * memory. */
const struct tpfs_manifest *tpfs_view_manifest(struct tpfs_view *v);

/* What the mount holds in all: the bytes of its tensors' .npy files and
 * passed-through files, and its entries (cards included). */
void tpfs_view_totals(const struct tpfs_view *v, uint64_t *bytes, uint64_t *entries);

/* A JSON snapshot of the counters (.tpfs/stats), malloc'd. */
char *tpfs_view_stats_json(struct tpfs_view *v, size_t *len);

/* Count one read the daemon answered: got bytes, or an error when negative.
 * (file.h's functions count nothing themselves, so that computing an info
 * card or a fallback copy is not taken for what a reader asked.) */
void tpfs_view_count_read(struct tpfs_view *v, ssize_t got);

/* Count an error found after the read was counted (a failed reply). */
void tpfs_view_count_error(struct tpfs_view *v);

/* Count block block of tensor i converted: its output bytes, and the
 * finite values that became infinite (overflows), which are counted once
 * per block: a block converted again (evicted and read again, or streamed
 * for its card) adds none, so the counter is the number of the mount's
 * served values read so far that overflowed. */
void tpfs_view_count_fill(struct tpfs_view *v, size_t i, uint64_t block, uint64_t bytes,
			  uint64_t overflows);

#endif
