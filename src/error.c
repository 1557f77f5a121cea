/*
 * The error message carrier (see error.h).
 */
#include "tpfs/error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

int tpfs_error(struct tpfs_error *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tpfs_error_va(e, code, fmt, ap);
	va_end(ap);
	return code;
}

int tpfs_error_va(struct tpfs_error *e, int code, const char *fmt, va_list ap)
{
	if (e) {
		char raw[TPFS_ERR_MAX];
		vsnprintf(raw, sizeof(raw), fmt, ap);
		tpfs_error_escape(e->msg, sizeof(e->msg), raw);
	}
	return code;
}

void tpfs_error_escape(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		bool ctl = *p < 0x20 || *p == 0x7f;
		if (n + (ctl ? 3 : 1) >= cap)
			break;
		if (ctl)
			n += (size_t)snprintf(dst + n, cap - n, "%%%02X", *p);
		else
			dst[n++] = (char)*p;
	}
	if (cap)
		dst[n] = '\0';
}
