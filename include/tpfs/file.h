/*
 * The bytes of the served files, and the one read primitive every consumer
 * uses: the FUSE daemon replies with the spans directly (no copy of its
 * own beyond the bytes it reads from a source), while tpfs_file_read
 * copies them into a buffer for the tools and the tests. Both go through
 * tpfs_file_spans_get, so the mount and the tools never disagree.
 *
 * Layout of a tensor's .npy (all offsets in bytes):
 *
 *     [0, H)          the .npy header, H a multiple of 64, made when read
 *     [H, H + D)      the data: D = elements x output item size
 *
 * Data is cut into blocks of B output bytes (B = block_size): file offset
 * H + k lies in block k / B at k % B. Data served as stored is read from
 * the source into the read's buffer (pread; file offset H + k is source
 * byte begin + k), never through the cache. Block j of converted data
 * holds output elements [j*B/s, (j+1)*B/s) for output item size s,
 * converted from the same source elements (the conversion module says
 * which source bytes those are); those blocks live in the cache.
 *
 * Thread-safe (see view.h).
 */
#ifndef TPFS_FILE_H
#define TPFS_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tpfs/view.h"

/* Enough for a 1 MiB read over the smallest blocks, plus the header. */
#define TPFS_FILE_MAX_SPANS 32

struct tpfs_file_span {
	const void *ptr;
	size_t len;
};

/* The pieces of one read. Pinned cache blocks are released, the source
 * pages the read mapped (a passed-through file's) are unmapped again and
 * bytes made for the read are freed by tpfs_file_spans_put. */
struct tpfs_file_spans {
	size_t n;
	struct tpfs_file_span v[TPFS_FILE_MAX_SPANS];
	size_t npins;
	struct tpfs_cache_block *pins[TPFS_FILE_MAX_SPANS];
	const struct tpfs_source *mapped; /* source read in place, or NULL */
	uint64_t mapped_off, mapped_len;
	void *made;                       /* bytes made for this read, or NULL */
	bool partial;                     /* fewer bytes than asked, not at the end */
};

/* Whether a file entry may be opened: 0, or -EIO once a source it is made
 * of changed in contents or in who may read it (see
 * tpfs_source_check_access and tpfs_source_check_perms). */
int tpfs_file_open_check(struct tpfs_view *v, uint32_t id);

/* Describe bytes [off, off + len) of a file entry as spans, clipped at the
 * end of the file. into is the caller's buffer of len bytes: what is read
 * for this read (tensor data served as stored, the manifest) is put there
 * at its place (byte off + i at into[i]) and the spans point at it.
 * Returns the bytes described or a negative errno; fewer than asked, with
 * sp->partial set, when TPFS_FILE_MAX_SPANS ran out or a block failed
 * after the first bytes. Pins are held until tpfs_file_spans_put, which
 * must be called in every case. A passed-through file's spans point into
 * its source mapping, which may fault if the source is truncated
 * meanwhile: copy them under tpfs_guard. */
ssize_t tpfs_file_spans_get(struct tpfs_view *v, uint32_t id, uint64_t off, size_t len,
			    char *into, struct tpfs_file_spans *sp);
void tpfs_file_spans_put(struct tpfs_view *v, struct tpfs_file_spans *sp);

/* How far ahead of a reader reading a tensor in order its blocks are
 * made, in bytes (at least one block). */
#define TPFS_FILE_AHEAD (8u << 20)

/* Make converted tensor blocks ahead of readers that read in order (see
 * ahead.h), on `threads` threads, once a reader has read `after` bytes of a
 * tensor in order, with gaps of at most after / 2; blocks made ahead go to
 * the block cache, and at most a quarter of its capacity is queued or
 * being made at once. Without this call (the tools), every block is made by the read
 * that needs it. Returns 0, or -ENOMEM when out of memory or threads
 * (reads are then served without read-ahead). Call once, before reads;
 * tpfs_view_destroy stops the threads. */
int tpfs_file_start_ahead(struct tpfs_view *v, unsigned threads, uint64_t after);

/* Copy bytes [off, off + len) of a file entry into buf. Returns the bytes
 * copied (fewer than len only at the end of the file) or a negative errno
 * (-EIO when a source changed). */
ssize_t tpfs_file_read(struct tpfs_view *v, uint32_t id, uint64_t off, size_t len,
		       void *buf);

/* Tensor i's info card (see card.h) and, when stats is not NULL, the
 * statistics it shows, made on the first call by reading its served data
 * once and kept. Returns 0 or a negative errno. */
int tpfs_file_card(struct tpfs_view *v, size_t i, const char **text, size_t *len,
		   const struct tpfs_card_stats **stats);

/* A read of id's spans faulted on a source mapping: mark its sources as
 * changed (see tpfs_source_faulted). */
void tpfs_file_faulted(struct tpfs_view *v, uint32_t id);

#endif
