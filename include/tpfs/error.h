/*
 * The error message carrier: a failing function fills a caller's
 * tpfs_error with one line that names the file, the tensor and the rule
 * broken, and returns a negative errno. No global state.
 */
#ifndef TPFS_ERROR_H
#define TPFS_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#define TPFS_ERR_MAX 1024

/* A human-readable reason for a failure, filled by the callee. One line, no
 * trailing newline. */
struct tpfs_error {
	char msg[TPFS_ERR_MAX];
};

/* Format into e (which may be NULL) and return code, so that a failing path
 * reads `return tpfs_error(e, -EINVAL, "...")`. Control bytes that the
 * arguments bring (a newline in a tensor name) are written %XX, so that the
 * message stays one line. */
int tpfs_error(struct tpfs_error *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same, for a function that takes a format of its own. */
int tpfs_error_va(struct tpfs_error *e, int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Copy src into dst (cap bytes, NUL-terminated), writing control bytes and
 * DEL as %XX; cut at cap. */
void tpfs_error_escape(char *dst, size_t cap, const char *src);

#endif
