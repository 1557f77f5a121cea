/*
 * A served tensor: the stored tensor it reads (or the two halves of an
 * MXFP4 pair), the conversion it is served through, its served shape and
 * the sizes of its .npy. Plain data, immutable once filled in by the
 * loader; these functions are pure.
 */
#ifndef TPFS_TENSOR_H
#define TPFS_TENSOR_H

#include <stdint.h>

#include "tpfs/arena.h"
#include "tpfs/conv.h"
#include "tpfs/options.h"
#include "tpfs/safetensors.h"
#include "tpfs/source.h"

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

/* Fill in what t serves from its name and parts (set): the conversion
 * under the options, the served shape (in arena when it is not the stored
 * one), the element count and the sizes. Returns 0, -ENOMEM, or the .npy
 * header's error. */
int tpfs_tensor_init(struct tpfs_tensor *t, const struct tpfs_options *o,
		     struct tpfs_arena *arena);

/* The NumPy descr served. */
const char *tpfs_tensor_descr(const struct tpfs_tensor *t);

/* "BF16"..., or "MXFP4" for a pair. */
const char *tpfs_tensor_source_dtype(const struct tpfs_tensor *t);

/* The size of its .npy: header and data. */
static inline uint64_t tpfs_tensor_npy_size(const struct tpfs_tensor *t)
{
	return t->npy_header_len + t->data_bytes;
}

#endif
