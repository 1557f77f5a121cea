/*
 * A model: the source folder (or single file) opened, every Safetensors
 * header validated, every source file mapped, the tensor table and the
 * virtual tree built, and manifest.json rendered. Loading reads headers only;
 * no tensor byte is touched.
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
#include "tpfs/safetensors.h"
#include "tpfs/tree.h"
#include "tpfs/util.h"

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
	uint16_t perm;               /* its permission bits */
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
	const char *source_dtype;        /* "BF16"..., or "MXFP4" for a pair */
	const char *descr;               /* NumPy descr served */
	uint32_t ndim;                   /* the shape served */
	uint64_t *shape;
	uint64_t nelem;
	uint8_t *npy_header;
	uint32_t npy_header_len;
	uint64_t data_bytes;             /* bytes after the .npy header */
	uint64_t npy_size;               /* header + data */
	char *path;                      /* relative to the mount root */
	uint32_t node;                   /* its .npy in the tree */
	uint64_t info_size;              /* bytes of its .tpfs/info card */
	char *owned_name;                /* storage behind name when derived */
};

struct tpfs_model {
	char *root;                  /* absolute path of the source */
	char *display_root;          /* as the user named it */
	struct tpfs_options opt;
	struct tpfs_source **sources;
	size_t nsources;
	struct tpfs_tensor *tensors; /* folder by folder, each sorted by name */
	size_t ntensors;
	struct tpfs_tree tree;
	char *manifest;              /* manifest.json */
	size_t manifest_len;
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
 * was truncated, modified or replaced (fstat of the open file, or stat of
 * its path for a passed-through file). Thread-safe. */
int tpfs_source_check(struct tpfs_source *s);

/* Mark a source whose mapping faulted (it shrank between the check and the
 * read, or its filesystem failed: a network mount that died) so that every
 * later read fails too; logged once. Thread-safe. */
void tpfs_source_faulted(struct tpfs_source *s);

/* Render manifest.json for a model whose tree is finished (manifest.c).
 * paths, when not NULL, replaces each tensor's path (tpfs convert's shard
 * folders); extra, when not NULL, is a JSON value added as "convert". */
char *tpfs_manifest_render(const struct tpfs_model *m, const char *const *paths,
			   const char *extra, size_t *len);

#endif
