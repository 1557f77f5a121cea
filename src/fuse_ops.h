/*
 * The FUSE low-level operations table. One of the two files that know
 * libfuse (with main.c): each operation translates an inode to a tree node
 * and a result to a reply, and does nothing else.
 */
#ifndef TPFS_FUSE_OPS_H
#define TPFS_FUSE_OPS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

/* The session's userdata must be a struct tpfs_fs *. */
extern const struct fuse_lowlevel_ops tpfs_fuse_ops;

#endif
