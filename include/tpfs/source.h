/*
 * A source file: a file of the model's folder, opened (a .safetensors file:
 * kept open, its header validated, its data read with pread) or mapped
 * read-only (any other file); what its entries are served with (perm.h);
 * and the checks that it is still what was loaded: its contents (every
 * read), who may read it (every open), and a read that failed. Loading
 * does the opening; everything after is thread-safe (the stale flag is
 * atomic, the rest immutable).
 */
#ifndef TPFS_SOURCE_H
#define TPFS_SOURCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "tpfs/error.h"
#include "tpfs/perm.h"
#include "tpfs/safetensors.h"

struct tpfs_source {
	char *rel;                   /* path relative to the source root */
	char *display;               /* path for messages, as the user named it */
	char *path;                  /* absolute path, for freshness checks */
	int fd;                      /* .safetensors files only, read with pread
					(others: -1): the mappings keep the
					files, and a folder of many small files
					must not use up fds */
	const uint8_t *map;          /* a passed-through file, whole, read-only;
					NULL if empty or a .safetensors file */
	uint64_t size;
	uint64_t dev, ino;
	struct timespec mtime;
	struct tpfs_perm own;        /* as it was when loaded */
	struct tpfs_perm perm;       /* what its entries are served with (perm.h) */
	const struct tpfs_perm_chain *chain; /* the folders above it */
	struct tpfs_st_header *st;   /* NULL for a passed-through file */
	atomic_bool stale;           /* set once the file changed under the mount */
};

/* Open, map and (for a .safetensors file) validate the file name in the
 * folder open as dirfd (a regular file; links followed). path (the same
 * file, for later checks), rel (its path under the source root) and
 * display (its path for messages) are kept; the chain of the folder that
 * really holds the file comes from ctx. Returns 0 and *out, or a negative
 * errno with e naming the file and the problem. */
int tpfs_source_open(int dirfd, const char *name, const char *path, const char *rel,
		     const char *display, bool safetensors, struct tpfs_perm_ctx *ctx,
		     struct tpfs_source **out, struct tpfs_error *e);

/* The message for a chain of folders above display that could not be made
 * (err from tpfs_perm_chain_above_fd); returns -err. */
int tpfs_source_chain_error(struct tpfs_error *e, const char *display, int err);

/* Accepts NULL. */
void tpfs_source_close(struct tpfs_source *s);

/* 0 while the source is as it was when mounted; -EIO (logged once) once it
 * was truncated, modified, replaced or given another owner, group or mode
 * (fstat of the open file, or stat of its path for a passed-through file).
 * Thread-safe; cheap enough for every read. */
int tpfs_source_check(struct tpfs_source *s);

/* tpfs_source_check, and also whether the source and every folder above
 * it have the owner, group, mode and ACL they had (a stat and an ACL probe
 * each): for opens of what is read from it. -EIO (logged once) otherwise,
 * also when one cannot be examined. Thread-safe. */
int tpfs_source_check_access(struct tpfs_source *s);

/* For opens of what was made from the source at mount time or since (its
 * names in manifest.json, a finished info card): -EIO only once the source
 * or a folder above it is seen to let fewer users through; one that changed
 * in contents, or cannot be examined, still serves those. Thread-safe. */
int tpfs_source_check_perms(struct tpfs_source *s);

/* Mark a source whose mapping faulted (it shrank between the check and the
 * read, or its filesystem failed: a network mount that died) so that every
 * later read fails too; logged once. Thread-safe. */
void tpfs_source_faulted(struct tpfs_source *s);


#endif
