/*
 * What a mount serves, over a loaded model: its entries (the tree's nodes
 * and the .tpfs/info mirror), their attributes, and their bytes, with the
 * one read primitive every consumer uses: the FUSE daemon replies with the
 * spans directly (no copy of its own), while tpfs_file_read copies them
 * into a buffer for the tools and the tests. Both go through
 * tpfs_file_spans, so the mount and the tools never disagree.
 *
 * Entries have ids (the FUSE inode is id + 1): id n < nnodes is tree node
 * n, and id nnodes + n is the .tpfs/info mirror of node n: the card of a
 * tensor (.npy replaced by .txt), or the folder of cards of a folder with a
 * tensor below it. The .tpfs/info folder itself lists the root's mirror.
 * A folder of tensors called x.txt beside a tensor x.npy hides that card.
 *
 * Layout of a tensor's .npy (all offsets in bytes):
 *
 *     [0, H)          the .npy header, H a multiple of 64, made when read
 *     [H, H + D)      the data: D = elements x output item size
 *
 * Data served as stored comes straight from the source mapping: file offset
 * H + k is source byte begin + k. Converted data is cut into blocks of B
 * output bytes (B = block_size): file offset H + k lies in block k / B at
 * k % B, and block j holds output elements [j*B/s, (j+1)*B/s) for output item
 * size s, converted from the same source elements (the conversion module
 * says which source bytes those are). Blocks live in the cache.
 *
 * Thread-safe: the model is immutable, the cache, the cards and the
 * manifest's layout lock themselves and the counters are atomic.
 */
#ifndef TPFS_FILE_H
#define TPFS_FILE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tpfs/cache.h"
#include "tpfs/info.h"
#include "tpfs/manifest.h"
#include "tpfs/model.h"

struct tpfs_fs {
	struct tpfs_model *model;
	struct tpfs_cache *cache;
	struct tpfs_cards *cards;
	pthread_mutex_t manifest_lock;
	_Atomic(struct tpfs_manifest *) manifest; /* measured when first needed */
	atomic_uint_fast64_t reads;           /* read requests */
	atomic_uint_fast64_t bytes_served;
	atomic_uint_fast64_t bytes_converted; /* output bytes produced by fills */
	atomic_uint_fast64_t overflows;       /* finite values made infinite */
	atomic_uint_fast64_t errors;          /* reads that failed */
};

/* What stat says of an entry. */
struct tpfs_attr {
	enum tpfs_node_kind kind;
	uint32_t uid, gid;
	uint16_t mode;           /* permission bits */
	uint32_t nlink;
	uint64_t size;
	struct timespec mtime;
};

/* Enough for a 1 MiB read over the smallest blocks, plus the header. */
#define TPFS_MAX_SPANS 32

struct tpfs_span {
	const void *ptr;
	size_t len;
};

/* The pieces of one read. Pinned cache blocks are released, the source
 * pages the read mapped are unmapped again and bytes made for the read are
 * freed by tpfs_spans_release. */
struct tpfs_spans {
	size_t n;
	struct tpfs_span v[TPFS_MAX_SPANS];
	size_t npins;
	struct tpfs_cache_block *pins[TPFS_MAX_SPANS];
	const struct tpfs_source *mapped; /* source read in place, or NULL */
	uint64_t mapped_off, mapped_len;
	void *made;                       /* bytes made for this read, or NULL */
	bool partial;                     /* fewer bytes than asked, not at the end */
};

/* Takes no ownership of m. Returns NULL on allocation failure. */
struct tpfs_fs *tpfs_fs_create(struct tpfs_model *m);

/* Accepts NULL. */
void tpfs_fs_destroy(struct tpfs_fs *fs);

/* Whether id names an entry. */
bool tpfs_fs_valid(const struct tpfs_fs *fs, uint64_t id);

/* The attributes of entry id (a valid one). Returns 0 or -ENOMEM. */
int tpfs_fs_attr(struct tpfs_fs *fs, uint32_t id, struct tpfs_attr *a);

/* The entry called name in folder dir: its id, -ENOENT, or -ENOTDIR. */
long tpfs_fs_lookup(const struct tpfs_fs *fs, uint32_t dir, const char *name);

/* The first entry of folder dir at position *k or after it (positions
 * count from 0, in name order, and stay the same while mounted): *k is set
 * to its position, *id to it, and *name to its name (in buf when made up).
 * Returns 0, or -ENOENT past the last. */
int tpfs_fs_entry_at(const struct tpfs_fs *fs, uint32_t dir, uint64_t *k, uint32_t *id,
		     const char **name, char buf[256]);

/* The tensor a tensor or card entry serves, or NULL. */
const struct tpfs_tensor *tpfs_fs_tensor(const struct tpfs_fs *fs, uint32_t id);

/* Whether a file entry may be opened: 0, or -EIO once a source it is made
 * of changed in contents or in who may read it (see
 * tpfs_source_check_access). */
int tpfs_file_open_check(struct tpfs_fs *fs, uint32_t id);

/* Describe bytes [off, off + len) of a file entry as spans, clipped at the
 * end of the file. Returns the bytes described or a negative errno; fewer
 * than asked, with sp->partial set, when TPFS_MAX_SPANS ran out or a block
 * failed after the first bytes. Pins are held until tpfs_spans_release,
 * which must be called in every case. Source bytes in the spans may fault
 * if the source is truncated meanwhile: copy them under tpfs_guard. */
ssize_t tpfs_file_spans(struct tpfs_fs *fs, uint32_t id, uint64_t off,
			size_t len, struct tpfs_spans *sp);
void tpfs_spans_release(struct tpfs_fs *fs, struct tpfs_spans *sp);

/* Copy bytes [off, off + len) of a file entry into buf. Returns the bytes
 * copied (fewer than len only at the end of the file) or a negative errno
 * (-EIO when a source changed). */
ssize_t tpfs_file_read(struct tpfs_fs *fs, uint32_t id, uint64_t off,
		       size_t len, void *buf);

/* A JSON snapshot of the counters (.tpfs/stats), malloc'd. */
char *tpfs_fs_stats_json(struct tpfs_fs *fs, size_t *len);

/* A read of id's spans faulted on a source mapping: mark its sources as
 * changed (see tpfs_source_faulted). */
void tpfs_file_faulted(struct tpfs_fs *fs, uint32_t id);

/* Count one read the daemon answered: got bytes, or an error when negative.
 * (tpfs_file_* count nothing themselves, so that computing an info card or
 * a fallback copy is not taken for what a reader asked.) */
void tpfs_fs_count_read(struct tpfs_fs *fs, ssize_t got);

/* Count an error found after the read was counted (a failed reply). */
void tpfs_fs_count_error(struct tpfs_fs *fs);

#endif
