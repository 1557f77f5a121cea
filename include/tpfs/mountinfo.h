/*
 * What is mounted where, from /proc/self/mountinfo. Thread-safe (each call
 * reads the file anew).
 */
#ifndef TPFS_MOUNTINFO_H
#define TPFS_MOUNTINFO_H

#include <stdbool.h>

/* The fuse mount type tpfs mounts with (fuse.<subtype>). */
#define TPFS_MOUNTINFO_TYPE "fuse.tpfs"

struct tpfs_mountinfo {
	char dev[64];      /* major:minor */
	char type[64];     /* "tmpfs", "fuse.tpfs" */
	char source[256];  /* the mount's source, cut at 255 bytes */
};

/* Whether the absolute path point is a mount point; then *out describes
 * the mount on top of it. */
bool tpfs_mountinfo_find(const char *point, struct tpfs_mountinfo *out);

#endif
