/*
 * The growable byte buffer (see buf.h).
 */
#include "tpfs/buf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool buf_reserve(struct tpfs_buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (extra > SIZE_MAX - 1 - b->len) { /* len + extra + 1 would wrap */
		b->oom = true;
		return false;
	}
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1) {
		if (cap > SIZE_MAX / 2) {
			b->oom = true;
			return false;
		}
		cap *= 2;
	}
	char *p = realloc(b->data, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void tpfs_buf_append(struct tpfs_buf *b, const void *p, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void tpfs_buf_puts(struct tpfs_buf *b, const char *s)
{
	tpfs_buf_append(b, s, strlen(s));
}

void tpfs_buf_vprintf(struct tpfs_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (!buf_reserve(b, (size_t)n))
		return;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void tpfs_buf_printf(struct tpfs_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tpfs_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void tpfs_buf_json_string(struct tpfs_buf *b, const char *s)
{
	tpfs_buf_append(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			tpfs_buf_append(b, "\\\"", 2);
			break;
		case '\\':
			tpfs_buf_append(b, "\\\\", 2);
			break;
		case '\n':
			tpfs_buf_append(b, "\\n", 2);
			break;
		case '\t':
			tpfs_buf_append(b, "\\t", 2);
			break;
		case '\r':
			tpfs_buf_append(b, "\\r", 2);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				tpfs_buf_printf(b, "\\u%04x", *p);
			else
				tpfs_buf_append(b, p, 1);
		}
	}
	tpfs_buf_append(b, "\"", 1);
}

void tpfs_buf_shape(struct tpfs_buf *b, const uint64_t *shape, uint32_t ndim)
{
	tpfs_buf_puts(b, "[");
	for (uint32_t i = 0; i < ndim; i++)
		tpfs_buf_printf(b, "%s%" PRIu64, i ? ", " : "", shape[i]);
	tpfs_buf_puts(b, "]");
}

void tpfs_buf_escape(struct tpfs_buf *b, const char *s, const char *also)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || strchr(also, *p))
			tpfs_buf_printf(b, "%%%02X", *p);
		else
			tpfs_buf_append(b, p, 1);
	}
}

char *tpfs_buf_take(struct tpfs_buf *b, size_t *len)
{
	if (b->oom || !buf_reserve(b, 0)) {
		tpfs_buf_free(b);
		return NULL;
	}
	char *p = b->data;
	p[b->len] = '\0'; /* nothing appended yet: reserving did not terminate it */
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void tpfs_buf_free(struct tpfs_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}
