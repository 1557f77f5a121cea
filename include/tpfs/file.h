/*
 * The bytes of the virtual files, and the one read primitive every consumer
 * uses: the FUSE daemon replies with the spans directly (no copy of its own),
 * while tpfs_file_read copies them into a buffer for the tools and the tests.
 * Both go through tpfs_file_spans, so the mount and the tools never disagree.
 *
 * Layout of a tensor's .npy (all offsets in bytes):
 *
 *     [0, H)          the .npy header, H a multiple of 64, built at mount time
 *     [H, H + D)      the data: D = elements x output item size
 *
 * Data served as stored comes straight from the source mapping: file offset
 * H + k is source byte begin + k. Converted data is cut into blocks of B
 * output bytes (B = block_size): file offset H + k lies in block k / B at
 * k % B, and block j holds output elements [j*B/s, (j+1)*B/s) for output item
 * size s, converted from the same source elements (for an MXFP4 pair, blocks
 * bytes e / 2 and scales e / 32 for element e). Blocks live in the cache.
 *
 * Thread-safe: the model is immutable, the cache locks itself and the
 * counters are atomic.
 */
#ifndef TPFS_FILE_H
#define TPFS_FILE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tpfs/cache.h"
#include "tpfs/model.h"

struct tpfs_info_slot;

struct tpfs_fs {
	struct tpfs_model *model;
	struct tpfs_cache *cache;
	struct tpfs_info_slot *info;          /* one per tensor, each locking itself */
	atomic_uint_fast64_t reads;           /* read requests */
	atomic_uint_fast64_t bytes_served;
	atomic_uint_fast64_t bytes_converted; /* output bytes produced by fills */
	atomic_uint_fast64_t overflows;       /* finite values made infinite */
	atomic_uint_fast64_t errors;          /* reads that failed */
};

/* Enough for a 1 MiB read over the smallest blocks, plus the header. */
#define TPFS_MAX_SPANS 32

struct tpfs_span {
	const void *ptr;
	size_t len;
};

/* The pieces of one read. Pinned cache blocks are released, and the source
 * pages the read mapped are unmapped again, by tpfs_spans_release. */
struct tpfs_spans {
	size_t n;
	struct tpfs_span v[TPFS_MAX_SPANS];
	size_t npins;
	struct tpfs_cache_block *pins[TPFS_MAX_SPANS];
	const struct tpfs_source *mapped; /* source read in place, or NULL */
	uint64_t mapped_off, mapped_len;
	bool partial;                     /* fewer bytes than asked, not at the end */
};

/* Takes no ownership of m. Returns NULL on allocation failure. */
struct tpfs_fs *tpfs_fs_create(struct tpfs_model *m);

/* Accepts NULL. */
void tpfs_fs_destroy(struct tpfs_fs *fs);

/* The node's size in bytes, known without reading (0 for directories). */
uint64_t tpfs_node_size(const struct tpfs_fs *fs, uint32_t node);

/* Whether a file node may be opened: 0, or -EIO once a source it is made
 * of changed in contents or in who may read it (see
 * tpfs_source_check_access). */
int tpfs_file_open_check(struct tpfs_fs *fs, uint32_t node);

/* Describe bytes [off, off + len) of a file node as spans, clipped at the end
 * of the file. Returns the bytes described or a negative errno; fewer than
 * asked, with sp->partial set, when TPFS_MAX_SPANS ran out or a block failed
 * after the first bytes. Pins are held until tpfs_spans_release, which must
 * be called in every case. Source bytes in the spans may fault if the source is truncated
 * meanwhile: copy them under tpfs_guard. */
ssize_t tpfs_file_spans(struct tpfs_fs *fs, uint32_t node, uint64_t off,
			size_t len, struct tpfs_spans *sp);
void tpfs_spans_release(struct tpfs_fs *fs, struct tpfs_spans *sp);

/* Copy bytes [off, off + len) of a file node into buf. Returns the bytes
 * copied (fewer than len only at the end of the file) or a negative errno
 * (-EIO when a source changed). */
ssize_t tpfs_file_read(struct tpfs_fs *fs, uint32_t node, uint64_t off,
		       size_t len, void *buf);

/* A JSON snapshot of the counters (.tpfs/stats), malloc'd. */
char *tpfs_fs_stats_json(struct tpfs_fs *fs, size_t *len);

/* The info card of tensor index i (see info.h), computed on the first call
 * by streaming the tensor once in bounded memory, and kept until
 * tpfs_fs_destroy. Concurrent callers for one tensor wait for one
 * computation. Returns 0 or a negative errno (-EIO: the source changed). */
int tpfs_file_info(struct tpfs_fs *fs, size_t i, const char **text, size_t *len);

/* A read of node's spans faulted on a source mapping: mark its sources as
 * changed (see tpfs_source_faulted). */
void tpfs_file_faulted(struct tpfs_fs *fs, uint32_t node);

/* Count one read the daemon answered: got bytes, or an error when negative.
 * (tpfs_file_* count nothing themselves, so that computing an info card or
 * a fallback copy is not taken for what a reader asked.) */
void tpfs_fs_count_read(struct tpfs_fs *fs, ssize_t got);

/* Count an error found after the read was counted (a failed reply). */
void tpfs_fs_count_error(struct tpfs_fs *fs);

#endif
