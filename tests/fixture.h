/*
 * Test fixtures: temporary folders and files, and Safetensors files written
 * from a literal header and data, independent of the code under test.
 */
#ifndef TPFS_FIXTURE_H
#define TPFS_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* A new empty folder under $TMPDIR (or /tmp); malloc'd path. */
static inline char *fx_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *p;
	if (asprintf(&p, "%s/tpfs-test-XXXXXX", base ? base : "/tmp") < 0)
		return NULL;
	if (!mkdtemp(p)) {
		free(p);
		return NULL;
	}
	return p;
}

/* mkdir -p of the folders leading to dir/rel. */
static inline void fx_parents(const char *dir, const char *rel)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		mkdir(path, 0755);
		*s = '/';
	}
}

static inline int fx_write(const char *dir, const char *rel, const void *data,
			   size_t len)
{
	fx_parents(dir, rel);
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "wb");
	if (!f)
		return -errno;
	size_t w = len ? fwrite(data, 1, len, f) : 0;
	int rc = fclose(f);
	return w == len && rc == 0 ? 0 : -EIO;
}

/* A Safetensors file: the 8-byte length, json as given, then the data. */
static inline int fx_write_st(const char *dir, const char *rel, const char *json,
			      const void *data, size_t len)
{
	size_t n = strlen(json);
	unsigned char *b = malloc(8 + n + len + 1);
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)n >> (8 * i));
	memcpy(b + 8, json, n);
	if (len)
		memcpy(b + 8 + n, data, len);
	int rc = fx_write(dir, rel, b, 8 + n + len);
	free(b);
	return rc;
}

/* A Safetensors file built tensor by tensor: fx_st_add appends a tensor's
 * bytes to the data and its entry (dtype, shape as JSON, data_offsets) to
 * the header, in the order added. */
#define FX_ST_MAX 16

struct fx_st {
	char json[4096];
	size_t jlen;
	unsigned char *data;
	size_t len;
	int n;
	char name[FX_ST_MAX][64];
	size_t off[FX_ST_MAX];
};

static inline void fx_st_add(struct fx_st *f, const char *name, const char *dtype,
			     const char *shape, const void *bytes, size_t len)
{
	if (f->n == FX_ST_MAX)
		abort();
	f->jlen += (size_t)snprintf(f->json + f->jlen, sizeof(f->json) - f->jlen,
				    "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,"
				    "\"data_offsets\":[%zu,%zu]}",
				    f->n ? "," : "{", name, dtype, shape, f->len, f->len + len);
	unsigned char *d = realloc(f->data, f->len + len + 1);
	if (!d)
		abort();
	if (len)
		memcpy(d + f->len, bytes, len);
	f->data = d;
	snprintf(f->name[f->n], sizeof(f->name[0]), "%s", name);
	f->off[f->n++] = f->len;
	f->len += len;
}

/* The data bytes of the tensor called name (NULL if none). */
static inline const unsigned char *fx_st_data(const struct fx_st *f, const char *name)
{
	for (int i = 0; i < f->n; i++)
		if (strcmp(f->name[i], name) == 0)
			return f->data + f->off[i];
	return NULL;
}

static inline int fx_st_write(struct fx_st *f, const char *dir, const char *rel)
{
	char json[sizeof(f->json) + 2];
	snprintf(json, sizeof(json), "%s}", f->n ? f->json : "{");
	return fx_write_st(dir, rel, json, f->data, f->len);
}

static inline void fx_st_free(struct fx_st *f)
{
	free(f->data);
	memset(f, 0, sizeof(*f));
}

static inline int fx_symlink(const char *dir, const char *rel, const char *target)
{
	fx_parents(dir, rel);
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return symlink(target, path);
}

/* Give path a POSIX ACL: xattr is "system.posix_acl_access" or
 * "system.posix_acl_default"; e holds n (tag, perm, id) entries in tag
 * order (1 owner, 2 named user, 4 group, 0x10 mask, 0x20 other; ~0u the id
 * of all but named ones). Returns setxattr's result. */
static inline int fx_acl(const char *path, const char *xattr, const unsigned (*e)[3], int n)
{
	unsigned char v[4 + 8 * 8];
	uint32_t version = 2;
	if (n > 8)
		return -1;
	memcpy(v, &version, 4);
	for (int i = 0; i < n; i++) {
		uint16_t tag = (uint16_t)e[i][0], perm = (uint16_t)e[i][1];
		uint32_t id = e[i][2];
		memcpy(v + 4 + 8 * i, &tag, 2);
		memcpy(v + 6 + 8 * i, &perm, 2);
		memcpy(v + 8 + 8 * i, &id, 4);
	}
	return setxattr(path, xattr, v, 4 + 8 * (size_t)n, 0);
}

static inline char *fx_path(const char *dir, const char *rel)
{
	char *p;
	return asprintf(&p, "%s/%s", dir, rel) < 0 ? NULL : p;
}

static int fx_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

static inline void fx_rmtree(char *dir)
{
	if (dir)
		nftw(dir, fx_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

#endif
