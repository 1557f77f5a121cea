/*
 * Small helpers shared by every module: the error message carrier, a growable
 * byte buffer, checked arithmetic and size parsing. No state, no locks.
 */
#ifndef TPFS_UTIL_H
#define TPFS_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TPFS_ERR_MAX 1024

/* A human-readable reason for a failure, filled by the callee. One line, no
 * trailing newline; it names the file, the tensor and the rule broken. */
struct tpfs_error {
	char msg[TPFS_ERR_MAX];
};

/* Format into e (which may be NULL) and return code, so that a failing path
 * reads `return tpfs_fail(e, -EINVAL, "...")`. Control bytes that the
 * arguments bring (a newline in a tensor name) are written %XX, so that the
 * message stays one line. */
int tpfs_fail(struct tpfs_error *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Growable byte buffer. An allocation failure sets `oom` and makes further
 * appends no-ops, so builders check once at the end. */
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
/* Append s with '%', control bytes, DEL and the bytes in also as %XX. */
void tpfs_buf_escape(struct tpfs_buf *b, const char *s, const char *also);
/* Copy src to dst (cap bytes, NUL included) with control bytes and DEL
 * written %XX: one line that a terminal shows as it is. A src that does not
 * fit is cut before an escape, never inside one. */
void tpfs_escape_controls(char *dst, size_t cap, const char *src);
/* Take ownership of the NUL-terminated contents; the buffer is emptied.
 * Returns NULL if any append failed. */
char *tpfs_buf_take(struct tpfs_buf *b, size_t *len);
void tpfs_buf_free(struct tpfs_buf *b);

/* Memory handed out in pieces that never move and are all freed at once:
 * for the many small strings and arrays of a model (names, shapes), with
 * no per-piece overhead. Not thread-safe. */
struct tpfs_arena {
	struct tpfs_arena_chunk *chunks;
	size_t used, cap;            /* in the newest chunk */
};

/* n bytes aligned to align (a power of two, at most that of max_align_t),
 * or NULL. */
void *tpfs_arena_alloc(struct tpfs_arena *a, size_t n, size_t align);
/* A copy of s[0..n) with a NUL after it, or NULL. */
char *tpfs_arena_strndup(struct tpfs_arena *a, const char *s, size_t n);
/* Accepts a zeroed arena; leaves it zeroed. */
void tpfs_arena_free(struct tpfs_arena *a);

/* Checked arithmetic: return false on overflow. */
static inline bool tpfs_mul_u64(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_mul_overflow(a, b, r);
}

static inline bool tpfs_add_u64(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_add_overflow(a, b, r);
}

/* Parse "256M", "1.5G", "4096", "64KiB": digits with an optional fraction,
 * then an optional binary unit K, M, G or T (case-insensitive, optionally
 * followed by B or iB). Returns 0 or -EINVAL. */
int tpfs_parse_size(const char *s, uint64_t *out);

/* Format n bytes as "1.50 GiB" into buf. Returns buf. */
const char *tpfs_format_size(uint64_t n, char *buf, size_t len);

/* Little-endian 64-bit load from possibly unaligned memory. */
uint64_t tpfs_load_le64(const void *p);

/* True if s[0..n) is well-formed UTF-8. On failure *bad is the offset of the
 * first byte of the offending sequence. */
bool tpfs_utf8_valid(const char *s, size_t n, size_t *bad);

/* The type mountinfo gives a tpfs mount: FUSE with the subtype tpfs (the
 * daemon mounts with subtype=tpfs). */
#define TPFS_MOUNT_TYPE "fuse.tpfs"

/* Whether the absolute path is a mount point (from /proc/self/mountinfo);
 * then the type and source of the mount on top (64 and 256 bytes, with
 * mountinfo's \ooo escapes undone). */
bool tpfs_mount_info(const char *point, char *type, char *source);

/* The major:minor device of the mount on top of point, if it is one. */
bool tpfs_mount_device(const char *point, char *dev, size_t len);

/* Join a and b with one '/' (an empty side yields the other). */
char *tpfs_path_join(const char *a, const char *b);

/* Whether s ends with suffix. */
bool tpfs_ends_with(const char *s, const char *suffix);

/* Whether the absolute, resolved path is dir or lies below it. */
bool tpfs_path_within(const char *dir, const char *path);

/* The entries of a folder other than ".", ".." and ignore (may be NULL);
 * -1 when it cannot be read. */
long tpfs_dir_entries(const char *path, const char *ignore);

/* mkdir -p, mode 0755. Returns 0 or a negative errno. */
int tpfs_mkdir_p(const char *path);

/* write(2) until done. Returns 0 or a negative errno. */
int tpfs_write_all(int fd, const void *p, size_t n);

#endif
