/*
 * The dtype table. The names and widths follow the Safetensors format's Dtype
 * list; the descrs are NumPy's little-endian spellings.
 */
#include "tpfs/dtype.h"

#include <errno.h>
#include <string.h>

static const struct tpfs_dtype_info table[TPFS_DT_COUNT] = {
	[TPFS_DT_BOOL] = {"BOOL", 8, "|b1"},
	[TPFS_DT_U8] = {"U8", 8, "|u1"},
	[TPFS_DT_I8] = {"I8", 8, "|i1"},
	[TPFS_DT_I16] = {"I16", 16, "<i2"},
	[TPFS_DT_U16] = {"U16", 16, "<u2"},
	[TPFS_DT_F16] = {"F16", 16, "<f2"},
	[TPFS_DT_BF16] = {"BF16", 16, NULL},
	[TPFS_DT_I32] = {"I32", 32, "<i4"},
	[TPFS_DT_U32] = {"U32", 32, "<u4"},
	[TPFS_DT_F32] = {"F32", 32, "<f4"},
	[TPFS_DT_I64] = {"I64", 64, "<i8"},
	[TPFS_DT_U64] = {"U64", 64, "<u8"},
	[TPFS_DT_F64] = {"F64", 64, "<f8"},
	[TPFS_DT_C64] = {"C64", 64, "<c8"},
	[TPFS_DT_F8_E4M3] = {"F8_E4M3", 8, NULL},
	[TPFS_DT_F8_E5M2] = {"F8_E5M2", 8, NULL},
	[TPFS_DT_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8, NULL},
	[TPFS_DT_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8, NULL},
	[TPFS_DT_F8_E8M0] = {"F8_E8M0", 8, NULL},
	[TPFS_DT_F4] = {"F4", 4, NULL},
	[TPFS_DT_F6_E2M3] = {"F6_E2M3", 6, NULL},
	[TPFS_DT_F6_E3M2] = {"F6_E3M2", 6, NULL},
};

const struct tpfs_dtype_info *tpfs_dtype_info(enum tpfs_dtype dt)
{
	return &table[dt];
}

int tpfs_dtype_parse(const char *name, enum tpfs_dtype *out)
{
	for (int i = 0; i < TPFS_DT_COUNT; i++) {
		if (strcmp(table[i].name, name) == 0) {
			*out = (enum tpfs_dtype)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *tpfs_dtype_names(void)
{
	return "BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64, "
	       "C64, F8_E4M3, F8_E5M2, F8_E4M3FNUZ, F8_E5M2FNUZ, F8_E8M0, F4, "
	       "F6_E2M3, F6_E3M2";
}
