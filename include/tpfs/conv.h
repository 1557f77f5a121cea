/*
 * Conversions from a Safetensors dtype to the NumPy type served, and their
 * kernels.
 *
 * A kernel turns n consecutive source elements into n output elements. It
 * neither allocates nor locks (it runs under the SIGBUS guard and may be
 * abandoned midway), reads its sources through unaligned-safe loads, and is
 * a table lookup or a branch-free loop the compiler vectorizes. It counts the
 * finite values that became infinite (narrowing to float16, say), which
 * .tpfs/stats reports.
 *
 * Immutable tables, built once on first use; thread-safe.
 */
#ifndef TPFS_CONV_H
#define TPFS_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpfs/dtype.h"
#include "tpfs/options.h"

struct tpfs_conv;

struct tpfs_kernel_args {
	const struct tpfs_conv *conv;
	const unsigned char *src;   /* the first element's bytes */
	const unsigned char *src2;  /* MXFP4: the first element's group scale */
	void *dst;
	size_t n;                   /* elements (MXFP4: a multiple of 32) */
	size_t overflows;           /* out: finite values that became infinite */
};

typedef void (*tpfs_kernel_fn)(struct tpfs_kernel_args *a);

enum tpfs_conv_kind {
	TPFS_CONV_STORED,  /* the source bytes as they are (perhaps a new descr) */
	TPFS_CONV_ELEMENT, /* element by element from one source */
	TPFS_CONV_MXFP4,   /* from a _blocks/_scales pair */
};

struct tpfs_conv {
	int id;                 /* unique, part of the cache key */
	enum tpfs_conv_kind kind;
	const char *name;       /* as manifest.json lists it: "none", "bf16->f32" */
	const char *out_descr;  /* NULL: the source dtype's own descr */
	unsigned out_bytes;     /* output bytes per element; 0 when stored */
	bool exact;             /* every finite value is represented exactly */
	tpfs_kernel_fn kernel;  /* NULL when stored */
	const void *table;      /* for table-driven kernels */
	const unsigned char *overflow_table; /* 256 flags, or NULL */
};

/* The conversion tpfs applies to a source dtype under the options (never
 * NULL: a dtype it cannot decode is served as its stored bytes). The MXFP4
 * pair is chosen by tpfs_conv_mxfp4. */
const struct tpfs_conv *tpfs_conv_for(enum tpfs_dtype dt, const struct tpfs_options *o);

/* The conversion of a GPT-OSS MXFP4 _blocks/_scales pair under the options,
 * or NULL when mxfp4=raw. */
const struct tpfs_conv *tpfs_conv_mxfp4(const struct tpfs_options *o);

/* Where a run of output elements comes from: bytes [off, off + len) of
 * each input tensor (in[1] is empty unless the conversion has two). */
struct tpfs_conv_input {
	uint64_t off, len;
};

/* The source bytes of output elements [elem0, elem0 + n) of a conversion
 * from dtype dt (for MXFP4: 4 bits of the blocks per element, and one scale
 * per 32 elements; elem0 and n multiples of 32). */
void tpfs_conv_inputs(const struct tpfs_conv *cv, enum tpfs_dtype dt, uint64_t elem0,
		      uint64_t n, struct tpfs_conv_input in[2]);

/* Scalar conversions, exposed for the tools and the tests. */
uint16_t tpfs_conv_f32_to_f16(uint32_t f32_bits);  /* round to nearest even */
uint16_t tpfs_conv_f32_to_bf16(uint32_t f32_bits); /* round to nearest even */
uint32_t tpfs_conv_f16_to_f32(uint16_t f16_bits);  /* exact */

#endif
