/*
 * Conversions from a Safetensors dtype to the NumPy type served, and their
 * kernels. A kernel turns n consecutive source elements into n output
 * elements; it neither allocates nor locks (it runs under the SIGBUS guard),
 * reads and writes through unaligned-safe loads and stores, and is a plain
 * loop the compiler vectorizes. Immutable tables; thread-safe.
 */
#ifndef TPFS_CONVERT_H
#define TPFS_CONVERT_H

#include <stdbool.h>
#include <stddef.h>

#include "tpfs/dtype.h"

enum tpfs_conv_id {
	TPFS_CONV_NONE,      /* served as stored */
	TPFS_CONV_BF16_F32,
	TPFS_CONV_COUNT
};

typedef void (*tpfs_kernel_fn)(const void *src, void *dst, size_t n);

struct tpfs_conv {
	enum tpfs_conv_id id;
	const char *name;       /* as listed in manifest.json: "none", "bf16->f32" */
	const char *out_descr;  /* NULL for none (the source dtype's descr) */
	unsigned out_bytes;     /* output bytes per element; 0 for none */
	bool exact;             /* every value is represented exactly */
	tpfs_kernel_fn kernel;  /* NULL for none */
};

/* The conversion tpfs applies to a source dtype, or NULL when it does not
 * serve that dtype. */
const struct tpfs_conv *tpfs_conv_for(enum tpfs_dtype dt);

/* BF16 bits become the high half of a float32: exact for every pattern,
 * NaN payloads and signs included. */
void tpfs_bf16_to_f32(const void *src, void *dst, size_t n);

#endif
