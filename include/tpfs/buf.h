/*
 * A growable byte buffer for building text: JSON, messages, cards. An
 * allocation failure sets `oom` and makes further appends no-ops, so
 * builders check once at the end. One buffer belongs to one thread.
 */
#ifndef TPFS_BUF_H
#define TPFS_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpfs_buf {
	char *data;
	size_t len;
	size_t cap;
	bool oom;
};

void tpfs_buf_append(struct tpfs_buf *b, const void *p, size_t n);
void tpfs_buf_puts(struct tpfs_buf *b, const char *s);
void tpfs_buf_printf(struct tpfs_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void tpfs_buf_vprintf(struct tpfs_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Append s as a JSON string literal (quotes and escapes included). */
void tpfs_buf_json_string(struct tpfs_buf *b, const char *s);
/* Append a shape as "[2, 3]". */
void tpfs_buf_shape(struct tpfs_buf *b, const uint64_t *shape, uint32_t ndim);
/* Append s with control bytes, DEL and the bytes in also as %XX: also "%"
 * to be undone, "" as messages, listings and cards write names. */
void tpfs_buf_escape(struct tpfs_buf *b, const char *s, const char *also);
/* Copy src to dst (cap bytes, NUL included) with control bytes and DEL
 * written %XX: one line that a terminal shows as it is. A src that does not
 * fit is cut before an escape, never inside one. */
void tpfs_error_escape(char *dst, size_t cap, const char *src);
/* Take ownership of the NUL-terminated contents; the buffer is emptied.
 * Returns NULL if any append failed. */
char *tpfs_buf_take(struct tpfs_buf *b, size_t *len);
void tpfs_buf_free(struct tpfs_buf *b);

#endif
