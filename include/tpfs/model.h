/*
 * A model: the source folder (or single file) opened, every Safetensors
 * header validated, every source file opened, and the tensor table and the
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

#include "tpfs/conv.h"
#include "tpfs/options.h"
#include "tpfs/perm.h"
#include "tpfs/safetensors.h"
#include "tpfs/source.h"
#include "tpfs/tensor.h"
#include "tpfs/tree.h"
#include "tpfs/error.h"
#include "tpfs/arena.h"

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
	uint32_t stats;              /* the node of .tpfs/stats */
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

#endif
