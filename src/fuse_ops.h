/*
 * The FUSE low-level operations table. One of the two files that know
 * libfuse (with main.c): each operation translates an inode to a tree node
 * and a result to a reply, and does nothing else.
 */
#ifndef TPFS_FUSE_OPS_H
#define TPFS_FUSE_OPS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

/* The unit of sequential reads: st_blksize (cat and cp read this much at
 * once), max_readahead and the size of a read request. */
#define TPFS_IO_SIZE (1 << 20)

/* The mount's readahead, which main.c sets when run as root: 4 requests of
 * TPFS_IO_SIZE. Measured on 2 cores against 1 MiB (tools/bench-read.py
 * --readahead-kb), dd of a converted file got 1.4x faster and np.load of it
 * 2.7x; 8 and 16 MiB gave no more. It is also how much a page fault in a
 * mapping of a file reads around it, until the kernel sees that the faults
 * are random and stops: random rows of a mapped .npy were no slower. */
#define TPFS_READAHEAD (4 * TPFS_IO_SIZE)

/* Requests the kernel may have in flight without waiting for replies: its
 * readahead sends 1 MiB requests in the background, and the default of 12
 * (9 before it counts the connection as congested and stops reading ahead)
 * is fewer than a few readers with a readahead of several MiB keep going.
 * The kernel caps the number for users other than root at its
 * fs.fuse.max_user_bgreq. */
#define TPFS_MAX_BACKGROUND 64

/* The connection settings tpfs asks for at init (also those of
 * tools/bench-null-fuse.c, which measures what FUSE itself costs): large
 * sequential reads, READDIRPLUS, pages kept across opens (the source does
 * not change while mounted), nanosecond times. */
static inline void tpfs_fuse_tune(struct fuse_conn_info *conn)
{
	conn->max_readahead = TPFS_READAHEAD;
	conn->max_background = TPFS_MAX_BACKGROUND;
	conn->congestion_threshold = TPFS_MAX_BACKGROUND * 3 / 4;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->time_gran = 1;
}

/* The session's userdata must be a struct tpfs_view *. */
extern const struct fuse_lowlevel_ops tpfs_fuse_ops;

#endif
