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
 * once), max_readahead, and the mount's readahead that main.c sets. */
#define TPFS_IO_SIZE (1 << 20)

/* The session's userdata must be a struct tpfs_view *. */
extern const struct fuse_lowlevel_ops tpfs_fuse_ops;

#endif
