/*
 * What a tensor serves (see tensor.h).
 */
#include "tpfs/tensor.h"

#include <errno.h>
#include <string.h>

#include "tpfs/npy.h"

const char *tpfs_tensor_descr(const struct tpfs_tensor *t)
{
	return t->conv->out_descr ? t->conv->out_descr
				  : tpfs_dtype_info(t->part[0].st->dtype)->descr;
}

const char *tpfs_tensor_source_dtype(const struct tpfs_tensor *t)
{
	return t->part[1].st ? "MXFP4" : tpfs_dtype_info(t->part[0].st->dtype)->name;
}

/* The shape served: the stored one, but an MXFP4 pair [..., G, 16] gives
 * [..., G * 32], and bytes served raw because their packing is unknown
 * (F6) are one flat row. NULL when out of memory. */
static const uint64_t *served_shape(struct tpfs_tensor *t, struct tpfs_arena *arena)
{
	const struct tpfs_st_tensor *st = t->part[0].st;
	bool raw_bits = t->conv->kind == TPFS_CONV_STORED &&
			tpfs_dtype_info(st->dtype)->bits % 8;
	t->ndim = t->part[1].st ? st->ndim - 1 : raw_bits ? 1 : st->ndim;
	static const uint64_t scalar[1];
	if (!t->part[1].st && !raw_bits)
		return st->ndim ? st->shape : scalar;
	uint64_t *s = tpfs_arena_alloc(arena, t->ndim * sizeof(*s), sizeof(*s));
	if (s && t->part[1].st) {
		memcpy(s, st->shape, t->ndim * sizeof(*s));
		s[t->ndim - 1] = st->shape[t->ndim - 1] * 32;
	} else if (s) {
		s[0] = st->end - st->begin;
	}
	return s;
}

int tpfs_tensor_init(struct tpfs_tensor *t, const struct tpfs_options *o,
		     struct tpfs_arena *arena)
{
	const struct tpfs_st_tensor *st = t->part[0].st;
	t->conv = t->part[1].st ? tpfs_conv_mxfp4(o) : tpfs_conv_for(st->dtype, o);
	t->shape = served_shape(t, arena);
	if (!t->shape)
		return -ENOMEM;
	t->nelem = 1;
	for (uint32_t i = 0; i < t->ndim; i++)
		t->nelem *= t->shape[i]; /* no overflow: bounded by the source's bytes */
	t->data_bytes = t->conv->kind == TPFS_CONV_STORED ? st->end - st->begin
							  : t->nelem * t->conv->out_bytes;
	long hl = tpfs_npy_header(tpfs_tensor_descr(t), t->shape, t->ndim, NULL, 0);
	if (hl < 0)
		return (int)hl;
	t->npy_header_len = (uint32_t)hl;
	return 0;
}
