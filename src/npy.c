/*
 * .npy header construction (format versions 1.0 and 2.0).
 */
#include "tpfs/npy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tpfs/buf.h"

long tpfs_npy_header(const char *descr, const uint64_t *shape, uint32_t ndim,
		     uint8_t *buf, size_t cap)
{
	struct tpfs_buf dict = {0};
	tpfs_buf_printf(&dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
			descr);
	for (uint32_t i = 0; i < ndim; i++)
		tpfs_buf_printf(&dict, "%s%" PRIu64, i ? ", " : "", shape[i]);
	tpfs_buf_puts(&dict, ndim == 1 ? ",), }" : "), }");
	if (dict.oom) {
		tpfs_buf_free(&dict);
		return -ENOMEM;
	}
	/* magic(6) + version(2) + length(2 or 4) + dict + padding + '\n' */
	size_t pre = 10;
	size_t total = (pre + dict.len + 1 + TPFS_NPY_ALIGN - 1) / TPFS_NPY_ALIGN *
		       TPFS_NPY_ALIGN;
	if (total - pre > 65535) {
		pre = 12;
		total = (pre + dict.len + 1 + TPFS_NPY_ALIGN - 1) / TPFS_NPY_ALIGN *
			TPFS_NPY_ALIGN;
	}
	if (total - pre > UINT32_MAX) {
		tpfs_buf_free(&dict);
		return -E2BIG;
	}
	size_t hlen = total - pre;
	if (buf && cap >= total) {
		memcpy(buf, "\x93NUMPY", 6);
		buf[6] = pre == 10 ? 1 : 2;
		buf[7] = 0;
		for (size_t i = 0; i < pre - 8; i++)
			buf[8 + i] = (uint8_t)(hlen >> (8 * i));
		memcpy(buf + pre, dict.data, dict.len);
		memset(buf + pre + dict.len, ' ', total - pre - dict.len - 1);
		buf[total - 1] = '\n';
	}
	tpfs_buf_free(&dict);
	return (long)total;
}
