/*
 * A model: the source folder (or single file) opened, every Safetensors
 * header validated, every source file mapped, and the tensor table and the
 * virtual tree built with each entry's permissions. Loading reads headers
 * only; no tensor byte is touched.
 *
 * Immutable once tpfs_model_open returns, except each source's `stale` flag
 * (atomic), so it is shared by all threads without locks.
 */
#ifndef TPFS_MODEL_H
#define TPFS_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tpfs/convert.h"
#include "tpfs/options.h"
#include "tpfs/perm.h"
#include "tpfs/safetensors.h"
#include "tpfs/tree.h"
#include "tpfs/error.h"
#include "tpfs/arena.h"

struct tpfs_source {
	char *rel;                   /* path relative to the source root */
	char *display;               /* path for messages, as the user named it */
	char *path;                  /* absolute path, for freshness checks */
	int fd;                      /* .safetensors files only (others: -1): the
					mappings keep the files, and a folder of
					many small files must not use up fds */
	const uint8_t *map;          /* the whole file, read-only; NULL if empty */
	uint64_t size;
	uint64_t dev, ino;
	struct timespec mtime;
	struct tpfs_perm own;        /* as it was when loaded */
	struct tpfs_perm perm;       /* what its entries are served with (perm.h) */
	const struct tpfs_perm_chain *chain; /* the folders above it */
	struct tpfs_st_header *st;   /* NULL for a passed-through file */
	atomic_bool stale;           /* set once the file changed under the mount */
};

/* A tensor of a .safetensors file that a served tensor reads. */
struct tpfs_part {
	const struct tpfs_st_tensor *st; /* name, dtype, shape, byte range */
	struct tpfs_source *src;
};

struct tpfs_tensor {
	const char *name;                /* for an MXFP4 pair, the name without _blocks */
	struct tpfs_part part[2];        /* the source; MXFP4: _blocks, then _scales */
	const struct tpfs_conv *conv;
	const uint64_t *shape;           /* the shape served (ndim entries) */
	uint64_t nelem;
	uint64_t data_bytes;             /* bytes after the .npy header */
	uint32_t ndim;
	uint32_t npy_header_len;         /* see tpfs_npy_header */
	uint32_t node;                   /* its .npy in the tree */
};

/* The NumPy descr served. */
const char *tpfs_tensor_descr(const struct tpfs_tensor *t);

/* "BF16"..., or "MXFP4" for a pair. */
const char *tpfs_tensor_source_dtype(const struct tpfs_tensor *t);

/* The size of its .npy: header and data. */
static inline uint64_t tpfs_tensor_npy_size(const struct tpfs_tensor *t)
{
	return t->npy_header_len + t->data_bytes;
}

struct tpfs_model {
	char *root;                  /* absolute path of the source */
	char *display_root;          /* as the user named it */
	struct tpfs_options opt;
	struct tpfs_source **sources;
	size_t nsources;
	struct tpfs_tensor *tensors; /* folder by folder, each sorted by name */
	size_t ntensors;
	struct tpfs_tree tree;
	uint32_t info;               /* the node of .tpfs/info */
	struct tpfs_perm_ctx *perms; /* owns the sources' chains */
	struct tpfs_arena arena;     /* pairs' names, served shapes unlike the stored */
};

/* Open the model at path (a folder or one .safetensors file) and check the
 * options. Warnings (skipped entries, raw F6 tensors) go to the log. Returns 0 and
 * *out, or a negative errno with e naming the file, the tensor and the rule
 * broken; nothing is left open on failure. */
int tpfs_model_open(const char *path, const struct tpfs_options *opt,
		    struct tpfs_model **out, struct tpfs_error *e);

/* Accepts NULL and half-built models. */
void tpfs_model_close(struct tpfs_model *m);

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
