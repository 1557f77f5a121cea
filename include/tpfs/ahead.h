/*
 * Read-ahead for readers that read a tensor in order: which blocks to make
 * before they are asked for, and the threads that make them.
 *
 * The kernel reads a FUSE file ahead of its reader, but under np.load's
 * one large read() it sends those requests about one at a time, so making
 * each block (a conversion) lay on the reader's path. Here, once a reader
 * has read `after` bytes of a tensor in order, in more than one read, each
 * of its reads queues the next `depth` blocks for these threads: a request then finds its block made, or being made (and waits
 * for it rather than making it again). A queued block its reader reached
 * first is dropped.
 *
 * A read more than `gap` blocks beyond the block after the run's last,
 * or more than depth + gap behind it (the kernel's requests in flight are
 * served out of order), starts a new run: reads far apart (rows of a
 * mapped .npy) make nothing ahead. `after` is to be larger than what the
 * kernel reads around one page fault, which looks like a short run. Each tensor has one run, so two readers
 * of one tensor far apart break each other's runs and read without help.
 *
 * What making a block means is the caller's (fn, which puts it in the
 * block cache). At most `budget` blocks wait or are being made at once,
 * over all tensors; a block that does not fit is left to its request.
 *
 * Thread-safe.
 */
#ifndef TPFS_AHEAD_H
#define TPFS_AHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpfs_ahead;

/* Make block `block` of item `item`; whether it was made (false when it
 * was there already or could not be). Runs on the read-ahead threads. */
typedef bool (*tpfs_ahead_fn)(void *ctx, size_t item, uint64_t block);

struct tpfs_ahead_params {
	unsigned threads; /* >= 1 */
	uint64_t after;   /* bytes read in order before reading ahead */
	uint64_t gap;     /* blocks a read in order may skip */
	uint64_t depth;   /* blocks made ahead of the last one read */
	size_t budget;    /* blocks queued or being made at once, >= 1 */
};

/* For items 0..nitems-1. The threads block the signals that end a
 * process (SIGHUP, SIGINT, SIGQUIT, SIGTERM) and SIGPIPE. Returns NULL
 * when out of memory or when a thread could not be started. */
struct tpfs_ahead *tpfs_ahead_create(size_t nitems, const struct tpfs_ahead_params *p,
				     tpfs_ahead_fn fn, void *ctx);

/* Accepts NULL. Waits for the blocks being made; drops those queued. */
void tpfs_ahead_destroy(struct tpfs_ahead *a);

/* A read of len bytes in blocks [first, last] of item, which has nblocks:
 * queues the blocks after last when the item's run is long enough. */
void tpfs_ahead_note(struct tpfs_ahead *a, size_t item, uint64_t first, uint64_t last,
		     uint64_t len, uint64_t nblocks);

/* Blocks made so far (fn returned true). */
uint64_t tpfs_ahead_made(struct tpfs_ahead *a);

/* Wait until no block is queued or being made. */
void tpfs_ahead_wait(struct tpfs_ahead *a);

#endif
