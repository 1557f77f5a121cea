/*
 * Conversion table and kernels.
 */
#include "tpfs/convert.h"

#include <stdint.h>
#include <string.h>

void tpfs_bf16_to_f32(const void *src, void *dst, size_t n)
{
	const unsigned char *s = src;
	unsigned char *d = dst;
	for (size_t i = 0; i < n; i++) {
		uint16_t h;
		memcpy(&h, s + 2 * i, 2);
		uint32_t w = (uint32_t)h << 16;
		memcpy(d + 4 * i, &w, 4);
	}
}

static const struct tpfs_conv convs[TPFS_CONV_COUNT] = {
	[TPFS_CONV_NONE] = {TPFS_CONV_NONE, "none", NULL, 0, true, NULL},
	[TPFS_CONV_BF16_F32] = {TPFS_CONV_BF16_F32, "bf16->f32", "<f4", 4, true,
				tpfs_bf16_to_f32},
};

const struct tpfs_conv *tpfs_conv_for(enum tpfs_dtype dt)
{
	if (tpfs_dtype_info(dt)->descr)
		return &convs[TPFS_CONV_NONE];
	if (dt == TPFS_DT_BF16)
		return &convs[TPFS_CONV_BF16_F32];
	return NULL;
}
