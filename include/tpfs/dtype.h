/*
 * The Safetensors dtypes: names, bit widths and, where NumPy has the same type,
 * its array-protocol descr. Immutable tables; thread-safe.
 */
#ifndef TPFS_DTYPE_H
#define TPFS_DTYPE_H

#include <stdbool.h>
#include <stddef.h>

enum tpfs_dtype {
	TPFS_DT_BOOL,
	TPFS_DT_U8,
	TPFS_DT_I8,
	TPFS_DT_I16,
	TPFS_DT_U16,
	TPFS_DT_F16,
	TPFS_DT_BF16,
	TPFS_DT_I32,
	TPFS_DT_U32,
	TPFS_DT_F32,
	TPFS_DT_I64,
	TPFS_DT_U64,
	TPFS_DT_F64,
	TPFS_DT_C64,
	TPFS_DT_F8_E4M3,
	TPFS_DT_F8_E5M2,
	TPFS_DT_F8_E4M3FNUZ,
	TPFS_DT_F8_E5M2FNUZ,
	TPFS_DT_F8_E8M0,
	TPFS_DT_F4,
	TPFS_DT_F6_E2M3,
	TPFS_DT_F6_E3M2,
	TPFS_DT_COUNT
};

struct tpfs_dtype_info {
	const char *name;   /* as spelled in Safetensors headers */
	unsigned bits;      /* storage bits per element */
	const char *descr;  /* NumPy descr when served as stored, else NULL */
};

const struct tpfs_dtype_info *tpfs_dtype_info(enum tpfs_dtype dt);

/* Look a header dtype name up. Returns 0, or -EINVAL for an unknown name. */
int tpfs_dtype_parse(const char *name, enum tpfs_dtype *out);

/* Comma-separated list of every known dtype name, for error messages. */
const char *tpfs_dtype_names(void);

#endif
