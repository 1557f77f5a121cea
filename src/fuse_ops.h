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

/* The mount's readahead, which main.c sets when run as root: one request
 * of TPFS_IO_SIZE. It is also how much a page fault in a mapping of a file
 * reads around it. Measured on 2 cores with the source kept in the page
 * cache (tools/bench-read.py --readahead-kb, 5 rounds each): against the
 * kernel's 128 KiB, dd of the F32 .npy went from 1.64 to 2.38 GB/s; 4 MiB
 * gave sequential reads no more (the daemon reads converted data ahead by
 * itself) and made 256 random 64 KiB rows of a mapped .npy 1.7x slower
 * (0.07 GB/s against 0.12), each fault reading 4 MiB. */
#define TPFS_READAHEAD TPFS_IO_SIZE

/* Requests the kernel may have in flight without waiting for replies: its
 * readahead sends 1 MiB requests in the background, and the default of 12
 * (9 before it counts the connection as congested and stops reading ahead)
 * is fewer than many readers reading at once keep going.
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
