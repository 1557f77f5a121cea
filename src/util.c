/*
 * Helpers with no state: error formatting, the growable buffer, size parsing
 * and formatting, UTF-8 validation, mountinfo, paths and files.
 */
#include "tpfs/util.h"

#include <ctype.h>
#include <inttypes.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

int tpfs_fail(struct tpfs_error *e, int code, const char *fmt, ...)
{
	if (e) {
		char raw[TPFS_ERR_MAX];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(raw, sizeof(raw), fmt, ap);
		va_end(ap);
		tpfs_escape_controls(e->msg, sizeof(e->msg), raw);
	}
	return code;
}

#define ARENA_CHUNK ((size_t)64 << 10)

struct tpfs_arena_chunk {
	struct tpfs_arena_chunk *next;
	max_align_t data[];
};

void *tpfs_arena_alloc(struct tpfs_arena *a, size_t n, size_t align)
{
	size_t at = (a->used + align - 1) & ~(align - 1);
	if (!a->chunks || at > a->cap || n > a->cap - at) {
		/* a piece larger than a quarter chunk gets a chunk of its own,
		 * so that little is left unused at a chunk's end */
		size_t cap = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
		struct tpfs_arena_chunk *c = malloc(sizeof(*c) + (cap ? cap : 1));
		if (!c)
			return NULL;
		if (cap == n && a->chunks) { /* keep filling the current chunk */
			c->next = a->chunks->next;
			a->chunks->next = c;
			return c->data;
		}
		c->next = a->chunks;
		a->chunks = c;
		a->cap = cap;
		at = 0;
	}
	a->used = at + n;
	return (char *)a->chunks->data + at;
}

char *tpfs_arena_strndup(struct tpfs_arena *a, const char *s, size_t n)
{
	char *p = tpfs_arena_alloc(a, n + 1, 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

void tpfs_arena_free(struct tpfs_arena *a)
{
	while (a->chunks) {
		struct tpfs_arena_chunk *next = a->chunks->next;
		free(a->chunks);
		a->chunks = next;
	}
	a->used = a->cap = 0;
}

void tpfs_escape_controls(char *dst, size_t cap, const char *src)
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

static bool buf_reserve(struct tpfs_buf *b, size_t extra)
{
	if (b->oom)
		return false;
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
		if (*p == '%' || *p < 0x20 || *p == 0x7f || strchr(also, *p))
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

int tpfs_parse_size(const char *s, uint64_t *out)
{
	/* digits, optionally a point and more digits: no sign, hex or exponent */
	size_t len = s ? strspn(s, "0123456789") : 0;
	if (!len)
		return -EINVAL;
	if (s[len] == '.') {
		size_t frac = strspn(s + len + 1, "0123456789");
		if (!frac)
			return -EINVAL;
		len += 1 + frac;
	}
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end != s + len || !isfinite(v))
		return -EINVAL;
	double mul = 1;
	switch (toupper((unsigned char)*end)) {
	case 'K':
		mul = 1024.0;
		end++;
		break;
	case 'M':
		mul = 1024.0 * 1024;
		end++;
		break;
	case 'G':
		mul = 1024.0 * 1024 * 1024;
		end++;
		break;
	case 'T':
		mul = 1024.0 * 1024 * 1024 * 1024;
		end++;
		break;
	default:
		break;
	}
	if (mul > 1 && (end[0] == 'i' || end[0] == 'I'))
		end++;
	if (end[0] == 'B' || end[0] == 'b')
		end++;
	if (*end)
		return -EINVAL;
	double bytes = v * mul;
	if (bytes >= 18446744073709551616.0)
		return -EINVAL;
	*out = (uint64_t)bytes;
	return 0;
}

const char *tpfs_format_size(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	unsigned u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.2f %s", v, units[u]);
	return buf;
}

uint64_t tpfs_load_le64(const void *p)
{
	unsigned char b[8];
	memcpy(b, p, 8);
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

bool tpfs_utf8_valid(const char *str, size_t n, size_t *bad)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t need;
		unsigned min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			need = 1;
			min = 0x80;
			c &= 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2;
			min = 0x800;
			c &= 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3;
			min = 0x10000;
			c &= 0x07;
		} else {
			goto fail;
		}
		if (n - i <= need)
			goto fail;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				goto fail;
			c = (c << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, UTF-16 surrogates and values past U+10FFFF. */
		if (c < min || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
			goto fail;
		i += need + 1;
	}
	return true;
fail:
	if (bad)
		*bad = i;
	return false;
}

/* mountinfo writes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *out = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* The mountinfo line of the mount on top of point: its device, type and
 * source. */
static bool mount_line(const char *point, char dev[64], char type[64], char source[256])
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return false;
	char line[8192];
	bool found = false;
	while (fgets(line, sizeof(line), f)) {
		char p[4096], d[64], t[64], s[256];
		/* id parent maj:min root point options [tags...] - type source super */
		const char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %63s %*s %4095s", d, p) != 2 ||
		    sscanf(dash + 3, "%63s %255s", t, s) != 2)
			continue;
		unescape_octal(p);
		unescape_octal(t);
		unescape_octal(s);
		if (strcmp(p, point) == 0) { /* later lines are mounted on top */
			found = true;
			memcpy(dev, d, 64);
			memcpy(type, t, 64);
			memcpy(source, s, 256);
		}
	}
	fclose(f);
	return found;
}

bool tpfs_mount_info(const char *point, char *type, char *source)
{
	char dev[64];
	return mount_line(point, dev, type, source);
}

bool tpfs_mount_device(const char *point, char *dev, size_t len)
{
	char d[64], t[64], s[256];
	if (!mount_line(point, d, t, s))
		return false;
	snprintf(dev, len, "%s", d);
	return true;
}

char *tpfs_path_join(const char *a, const char *b)
{
	if (!a || !*a)
		return strdup(b);
	if (!b || !*b)
		return strdup(a);
	size_t la = strlen(a), lb = strlen(b);
	bool slash = a[la - 1] != '/';
	char *p = malloc(la + slash + lb + 1);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	if (slash)
		p[la] = '/';
	memcpy(p + la + slash, b, lb + 1);
	return p;
}

bool tpfs_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

bool tpfs_path_within(const char *dir, const char *path)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/' || strcmp(dir, "/") == 0);
}

long tpfs_dir_entries(const char *path, const char *ignore)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	long n = 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		     !(ignore && strcmp(de->d_name, ignore) == 0);
	closedir(d);
	return n;
}

int tpfs_mkdir_p(const char *path)
{
	char *p = strdup(path);
	int rc = p ? 0 : -ENOMEM;
	for (char *s = p ? p + 1 : NULL; s && rc == 0; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			rc = -errno;
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return rc;
}

int tpfs_write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}
