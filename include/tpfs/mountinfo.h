/*
 * What is mounted where, from /proc/self/mountinfo. Thread-safe (each call
 * reads the file anew).
 */
#ifndef TPFS_MOUNTINFO_H
#define TPFS_MOUNTINFO_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* The fuse mount type tpfs mounts with (fuse.<subtype>). */
#define TPFS_MOUNTINFO_TYPE "fuse.tpfs"

struct tpfs_mountinfo {
	char dev[64];      /* major:minor */
	char type[64];     /* "tmpfs", "fuse.tpfs", cut at 63 bytes */
	char source[256];  /* the mount's source, cut at 255 bytes */
	bool allow_other;  /* its super options hold allow_other */
	int64_t user_id;   /* their user_id= (a FUSE mount's owner), else -1 */
};

/* Whether the absolute path point is a mount point; then *out describes
 * the mount on top of it. */
bool tpfs_mountinfo_find(const char *point, struct tpfs_mountinfo *out);

/* Whether a mount has device dev (a file's st_dev); then *out describes
 * the last one listed (bind mounts of one filesystem share its options). */
bool tpfs_mountinfo_of_dev(dev_t dev, struct tpfs_mountinfo *out);

/* The search of both, over a mountinfo file: the last line whose mount
 * point is point (when not NULL) and whose device is dev (when not NULL).
 * Lines of any length are read whole. */
bool tpfs_mountinfo_scan(FILE *f, const char *point, const char *dev,
			 struct tpfs_mountinfo *out);

#endif
