/*
 * Safetensors header parsing and every validation rule of the format. The
 * header is read with the strict in-place JSON reader (json.h) into the
 * header's own text, which the result keeps: names point into it, so a
 * header of a million tensors costs little beyond its own bytes. Every
 * shape entry and offset must be plain digits below 2^53, and no object
 * may repeat a key.
 */
#include "tpfs/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tpfs/json.h"
#include "tpfs/error.h"
#include "tpfs/buf.h"
#include "tpfs/arena.h"
#include "tpfs/size.h"

/* A little-endian 64-bit number from possibly unaligned bytes. */
static uint64_t load_le64(const void *p)
{
	unsigned char b[8];
	memcpy(b, p, 8);
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

const char *tpfs_st_shape_str(const uint64_t *shape, uint32_t ndim, char *buf,
			   size_t len)
{
	struct tpfs_buf b = {0};
	tpfs_buf_shape(&b, shape, ndim);
	char *text = tpfs_buf_take(&b, NULL);
	snprintf(buf, len, "%s", text ? text : "[...]");
	free(text);
	return buf;
}

/* What is read about one file: the reader and the messages' parts. */
struct reader {
	const char *file;
	const char *what;             /* "header" or "index" */
	struct tpfs_json j;
	struct tpfs_error *e;
};

static int syntax(struct reader *r);

/* A value of the wrong kind is next: a syntax error if it is not JSON
 * either, else the caller's message (escaped as tpfs_error's). */
static int wrong_kind(struct reader *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int wrong_kind(struct reader *r, const char *fmt, ...)
{
	if (!tpfs_json_skip(&r->j))
		return syntax(r);
	va_list ap;
	va_start(ap, fmt);
	tpfs_error_va(r->e, -EINVAL, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Only spaces (a header) or whitespace (an index) after the object. */
static int trailing(struct reader *r, bool spaces_only)
{
	if (tpfs_json_end(&r->j, spaces_only))
		return 0;
	if (r->j.at < r->j.n && r->j.why && strncmp(r->j.why, "bytes other", 11) == 0)
		return tpfs_error(r->e, -EINVAL,
				 "%s: %s has bytes other than %s after the JSON object (byte "
				 "%zu of the %s)",
				 r->file, r->what, spaces_only ? "spaces" : "whitespace", r->j.at,
				 r->what);
	return syntax(r);
}

/* A syntax error. */
static int syntax(struct reader *r)
{
	if (r->j.why && strcmp(r->j.why, "out of memory") == 0)
		return tpfs_error(r->e, -ENOMEM, "%s: out of memory reading the %s", r->file,
				 r->what);
	return tpfs_error(r->e, -EINVAL, "%s: %s is not valid JSON (%s at byte %zu of the %s)",
			 r->file, r->what, r->j.why ? r->j.why : "?", r->j.at, r->what);
}

/* Check the text as a whole before reading it: UTF-8, and for a header a
 * '{' at its first byte. */
static int start(struct reader *r, char *text, size_t n, bool header)
{
	size_t bad;
	if (!tpfs_json_utf8_valid(text, n, &bad))
		return tpfs_error(r->e, -EINVAL, "%s: %s is not valid UTF-8 (byte %zu of the %s)",
				 r->file, r->what, bad, r->what);
	if (header && (n == 0 || text[0] != '{'))
		return tpfs_error(r->e, -EINVAL,
				 "%s: %s does not start with '{' (rule: the header is a JSON "
				 "object from its first byte)",
				 r->file, r->what);
	tpfs_json_init(&r->j, text, n);
	if (!tpfs_json_object(&r->j))
		return tpfs_error(r->e, -EINVAL, "%s: %s JSON is not an object", r->file,
				 r->what);
	return 0;
}

/* __metadata__: null, or an object of strings, kept as compact JSON. */
static int read_metadata(struct reader *r, struct tpfs_st_header *h)
{
	if (tpfs_json_null(&r->j)) {
		h->meta = TPFS_ST_META_NULL;
		return 0;
	}
	if (tpfs_json_peek(&r->j) != '{')
		return wrong_kind(r, "%s: __metadata__ must be an object of strings or null",
				  r->file);
	struct tpfs_buf b = {0};
	char **keys = NULL;
	size_t n = 0;
	bool first = true;
	char *key, *value;
	size_t len;
	int rc = 0, more;
	tpfs_json_object(&r->j);
	tpfs_buf_puts(&b, "{");
	while (rc == 0 && (more = tpfs_json_member(&r->j, &first, &key)) > 0) {
		char **grown = realloc(keys, (n + 1) * sizeof(*keys));
		if (!grown) {
			rc = tpfs_error(r->e, -ENOMEM, "%s: out of memory", r->file);
			break;
		}
		keys = grown;
		keys[n++] = key;
		if (tpfs_json_peek(&r->j) != '"') {
			rc = wrong_kind(r, "%s: __metadata__ value of key '%s' is not a string "
					   "(rule: __metadata__ maps strings to strings)", r->file, key);
			break;
		}
		tpfs_buf_puts(&b, n > 1 ? "," : "");
		tpfs_buf_json_string(&b, key);
		tpfs_buf_puts(&b, ":");
		if (tpfs_json_string(&r->j, &value, &len))
			tpfs_buf_json_string(&b, value);
	}
	tpfs_buf_puts(&b, "}");
	if (rc == 0 && r->j.why)
		rc = syntax(r);
	const char *dup = rc == 0 ? tpfs_json_repeated(keys, n) : NULL;
	if (dup)
		rc = tpfs_error(r->e, -EINVAL,
			       "%s: duplicate key '%s' inside '__metadata__' in the header",
			       r->file, dup);
	free(keys);
	h->metadata_json = rc == 0 ? tpfs_buf_take(&b, NULL) : NULL;
	tpfs_buf_free(&b);
	if (rc == 0 && !h->metadata_json)
		rc = tpfs_error(r->e, -ENOMEM, "%s: out of memory", r->file);
	if (rc == 0)
		h->meta = TPFS_ST_META_MAP;
	return rc;
}

/* An array of plain whole numbers into v (growing it); -1 when an entry is
 * something else (its index in *bad), or another negative errno. */
static int read_wholes(struct reader *r, uint64_t **v, size_t *n, size_t *cap,
		       size_t *bad)
{
	bool first = true;
	int more;
	*n = 0;
	if (!tpfs_json_array(&r->j))
		return -EINVAL;
	while ((more = tpfs_json_element(&r->j, &first)) > 0) {
		if (*n == *cap) {
			size_t c = *cap ? *cap * 2 : 8;
			uint64_t *g = realloc(*v, c * sizeof(*g));
			if (!g)
				return -ENOMEM;
			*v = g;
			*cap = c;
		}
		int w = tpfs_json_whole(&r->j, &(*v)[*n]);
		if (w <= 0) {
			*bad = *n;
			return w == 0 ? -1 : -EINVAL;
		}
		(*n)++;
	}
	return more < 0 ? -EINVAL : 0;
}

/* The scratch of one header's reading. */
struct scratch {
	uint64_t *dims;
	size_t cap;
	char **keys;
	size_t nkeys, keycap;
};

/* The rules that tie a tensor's dtype, shape and offsets together. */
static int check_tensor(const char *file, const struct tpfs_st_header *h,
			struct tpfs_st_tensor *t, const uint64_t offs[2],
			struct tpfs_error *e)
{
	const char *name = t->name;
	bool overflow = false;
	t->nelem = 1;
	for (uint32_t i = 0; i < t->ndim; i++)
		overflow |= !tpfs_size_mul(t->nelem, t->shape[i], &t->nelem);
	/* The shape for messages, made only for one. */
	char sbuf[256];
#define SHAPE tpfs_st_shape_str(t->shape, t->ndim, sbuf, sizeof(sbuf))
	/* A zero dimension makes the product 0 whatever overflowed before it. */
	for (uint32_t i = 0; i < t->ndim; i++) {
		if (t->shape[i] == 0) {
			overflow = false;
			t->nelem = 0;
		}
	}
	if (overflow)
		return tpfs_error(e, -EINVAL,
				 "%s: tensor '%s': element count of shape %s overflows 64 bits",
				 file, name, SHAPE);
	uint64_t b = offs[0], en = offs[1];
	if (b > en)
		return tpfs_error(e, -EINVAL,
				 "%s: tensor '%s': data_offsets begin %" PRIu64
				 " is after end %" PRIu64 " (rule: begin <= end)",
				 file, name, b, en);
	const struct tpfs_dtype_info *di = tpfs_dtype_info(t->dtype);
	uint64_t bits;
	if (!tpfs_size_mul(t->nelem, di->bits, &bits))
		return tpfs_error(e, -EINVAL,
				 "%s: tensor '%s': byte size of shape %s of %s overflows 64 bits",
				 file, name, SHAPE, di->name);
	if (bits % 8)
		return tpfs_error(e, -EINVAL,
				 "%s: tensor '%s': %" PRIu64 " elements of %s (%u bits each) "
				 "do not fill a whole number of bytes",
				 file, name, t->nelem, di->name, di->bits);
	if (bits / 8 != en - b)
		return tpfs_error(e, -EINVAL,
				 "%s: tensor '%s': shape %s of %s needs %" PRIu64
				 " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
				 " (rule: element count times item size equals the byte length)",
				 file, name, SHAPE, di->name, bits / 8, b, en, en - b);
	uint64_t data_len = h->file_size - h->data_start;
	if (en > data_len)
		return tpfs_error(e, -EINVAL,
				 "%s: tensor '%s': data_offsets end %" PRIu64
				 " is past the end of the data buffer (%" PRIu64 " bytes)",
				 file, name, en, data_len);
	t->begin = h->data_start + b;
	t->end = h->data_start + en;
	return 0;
#undef SHAPE
}

static int read_tensor(struct reader *r, struct tpfs_st_header *h, struct scratch *sc,
		       struct tpfs_st_tensor *t)
{
	const char *file = r->file, *name = t->name;
	if (tpfs_json_peek(&r->j) != '{')
		return wrong_kind(r, "%s: tensor '%s': entry is not an object (rule: each "
				     "tensor has dtype, shape and data_offsets)", file, name);
	tpfs_json_object(&r->j);
	bool first = true, has_dtype = false, has_shape = false, has_offs = false;
	uint64_t offs[2];
	char *key;
	int more, rc = 0;
	sc->nkeys = 0;
	while (rc == 0 && (more = tpfs_json_member(&r->j, &first, &key)) > 0) {
		if (sc->nkeys == sc->keycap) {
			size_t c = sc->keycap ? sc->keycap * 2 : 8;
			char **g = realloc(sc->keys, c * sizeof(*g));
			if (!g)
				return tpfs_error(r->e, -ENOMEM, "%s: out of memory", file);
			sc->keys = g;
			sc->keycap = c;
		}
		sc->keys[sc->nkeys++] = key;
		if (strcmp(key, "dtype") == 0) {
			has_dtype = true;
			char *dt;
			size_t len;
			if (tpfs_json_peek(&r->j) != '"')
				rc = wrong_kind(r, "%s: tensor '%s': \"dtype\" is not a string",
						file, name);
			else if (!tpfs_json_string(&r->j, &dt, &len))
				rc = syntax(r);
			else if (tpfs_dtype_parse(dt, &t->dtype) < 0)
				rc = tpfs_error(r->e, -EINVAL,
					       "%s: tensor '%s': unknown dtype '%s' (known: %s)",
					       file, name, dt, tpfs_dtype_names());
		} else if (strcmp(key, "shape") == 0) {
			has_shape = true;
			size_t bad = 0, n = 0;
			if (tpfs_json_peek(&r->j) != '[') {
				rc = wrong_kind(r, "%s: tensor '%s': \"shape\" is not an array "
						   "of whole numbers", file, name);
				break;
			}
			int w = read_wholes(r, &sc->dims, &n, &sc->cap, &bad);
			if (w == -1)
				rc = tpfs_error(r->e, -EINVAL,
					       "%s: tensor '%s': shape entry %zu is not a whole "
					       "number from 0 to 2^53 written in plain digits",
					       file, name, bad);
			else if (w == -ENOMEM)
				rc = tpfs_error(r->e, -ENOMEM, "%s: out of memory", file);
			else if (w < 0)
				rc = syntax(r);
			else if (n > TPFS_ST_MAX_DIMS)
				rc = tpfs_error(r->e, -EINVAL,
					       "%s: tensor '%s': %zu dimensions, more than %d",
					       file, name, n, TPFS_ST_MAX_DIMS);
			t->ndim = rc == 0 ? (uint32_t)n : 0;
			uint64_t *shape = n && rc == 0 ? tpfs_arena_alloc(&h->arena, n * 8, 8)
						       : NULL;
			if (n && rc == 0 && !shape)
				rc = tpfs_error(r->e, -ENOMEM, "%s: out of memory", file);
			if (shape)
				memcpy(shape, sc->dims, n * sizeof(*shape));
			t->shape = shape;
		} else if (strcmp(key, "data_offsets") == 0) {
			has_offs = true;
			size_t bad = 0, n = 0;
			int w = tpfs_json_peek(&r->j) == '['
					? read_wholes(r, &sc->dims, &n, &sc->cap, &bad)
					: -1;
			if (w == -ENOMEM)
				rc = tpfs_error(r->e, -ENOMEM, "%s: out of memory", file);
			else if (w < -1 || r->j.why)
				rc = syntax(r);
			else if (w == -1 || n != 2)
				rc = tpfs_error(r->e, -EINVAL,
					       "%s: tensor '%s': \"data_offsets\" must be two "
					       "whole numbers [begin, end]",
					       file, name);
			else
				memcpy(offs, sc->dims, sizeof(offs));
		} else if (!tpfs_json_skip(&r->j)) {
			rc = syntax(r);
		}
	}
	if (rc == 0 && r->j.why)
		rc = syntax(r);
	if (rc < 0)
		return rc;
	const char *dup = tpfs_json_repeated(sc->keys, sc->nkeys);
	if (dup)
		return tpfs_error(r->e, -EINVAL, "%s: duplicate key '%s' inside '%s' in the header",
				 file, dup, name);
	if (!has_dtype)
		return tpfs_error(r->e, -EINVAL, "%s: tensor '%s': no \"dtype\"", file, name);
	if (!has_shape)
		return tpfs_error(r->e, -EINVAL, "%s: tensor '%s': no \"shape\"", file, name);
	if (!has_offs)
		return tpfs_error(r->e, -EINVAL, "%s: tensor '%s': no \"data_offsets\"", file,
				 name);
	return check_tensor(file, h, t, offs, r->e);
}

static int cmp_tensor_offsets(const void *a, const void *b)
{
	const struct tpfs_st_tensor *x = *(const struct tpfs_st_tensor *const *)a;
	const struct tpfs_st_tensor *y = *(const struct tpfs_st_tensor *const *)b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int cmp_tensor_names(const void *a, const void *b)
{
	return strcmp(((const struct tpfs_st_tensor *)a)->name,
		      ((const struct tpfs_st_tensor *)b)->name);
}

/* The tensors must tile the data buffer: sorted by offsets, each begins
 * where the previous ended, and the last ends at the end of the file. */
static int check_tiling(const char *file, struct tpfs_st_header *h,
			struct tpfs_error *e)
{
	int rc = 0;
	const struct tpfs_st_tensor **by_off = NULL;
	if (h->ntensors) {
		by_off = malloc(h->ntensors * sizeof(*by_off));
		if (!by_off)
			return tpfs_error(e, -ENOMEM, "%s: out of memory", file);
	}
	for (size_t i = 0; i < h->ntensors; i++)
		by_off[i] = &h->tensors[i];
	if (h->ntensors > 1)
		qsort(by_off, h->ntensors, sizeof(*by_off), cmp_tensor_offsets);
	uint64_t at = h->data_start;
	const char *prev = NULL;
	for (size_t i = 0; i < h->ntensors && rc == 0; i++) {
		const struct tpfs_st_tensor *t = by_off[i];
		if (t->begin < at)
			rc = tpfs_error(e, -EINVAL,
				       "%s: tensors '%s' and '%s' overlap at data byte %" PRIu64
				       " (rule: tensors neither overlap nor leave holes)",
				       file, prev, t->name, t->begin - h->data_start);
		else if (t->begin > at)
			rc = tpfs_error(e, -EINVAL,
				       "%s: data bytes %" PRIu64 "..%" PRIu64
				       " before tensor '%s' belong to no tensor "
				       "(rule: tensors neither overlap nor leave holes)",
				       file, at - h->data_start, t->begin - h->data_start,
				       t->name);
		at = t->end;
		prev = t->name;
	}
	if (rc == 0 && at != h->file_size)
		rc = tpfs_error(e, -EINVAL,
			       "%s: %" PRIu64 " bytes follow the last tensor's data "
			       "(rule: the last byte of data is the last byte of the file)",
			       file, h->file_size - at);
	free(by_off);
	return rc;
}

/* Read the header JSON in h->text (n bytes): the tensors, sorted by name,
 * and __metadata__. */
static int read_header(const char *file, size_t n, struct tpfs_st_header *h,
		       struct tpfs_error *e)
{
	struct reader r = {.file = file, .what = "header", .e = e};
	int rc = start(&r, h->text, n, true);
	struct scratch sc = {0};
	size_t cap = 0;
	bool first = true, meta = false;
	char *key;
	int more = 0;
	while (rc == 0 && (more = tpfs_json_member(&r.j, &first, &key)) > 0) {
		if (strcmp(key, "__metadata__") == 0) {
			rc = meta ? tpfs_error(e, -EINVAL, "%s: duplicate key '__metadata__' in "
						  "the header", file)
				  : read_metadata(&r, h);
			meta = true;
			continue;
		}
		if (h->ntensors == cap) {
			/* large arrays grow by remapping: no copy, no double peak */
			size_t c = cap ? cap * 2 : 64;
			struct tpfs_st_tensor *g = realloc(h->tensors, c * sizeof(*g));
			if (!g) {
				rc = tpfs_error(e, -ENOMEM, "%s: out of memory", file);
				break;
			}
			h->tensors = g;
			cap = c;
		}
		struct tpfs_st_tensor *t = &h->tensors[h->ntensors++];
		memset(t, 0, sizeof(*t));
		t->name = key;
		rc = read_tensor(&r, h, &sc, t);
	}
	free(sc.dims);
	free(sc.keys);
	if (rc == 0)
		rc = more < 0 ? syntax(&r) : trailing(&r, true);
	if (rc == 0 && h->ntensors > 1)
		qsort(h->tensors, h->ntensors, sizeof(*h->tensors), cmp_tensor_names);
	for (size_t i = 1; rc == 0 && i < h->ntensors; i++)
		if (strcmp(h->tensors[i - 1].name, h->tensors[i].name) == 0)
			rc = tpfs_error(e, -EINVAL, "%s: duplicate key '%s' in the header", file,
				       h->tensors[i].name);
	if (rc == 0)
		rc = check_tiling(file, h, e);
	return rc;
}

static int cmp_index_entries(const void *a, const void *b)
{
	return strcmp(((const struct tpfs_st_index_entry *)a)->tensor,
		      ((const struct tpfs_st_index_entry *)b)->tensor);
}

/* The weight_map, as (tensor, file) pairs in the text. */
static int read_weight_map(struct reader *r, struct tpfs_st_index *ix)
{
	bool first = true;
	char *key, *value;
	size_t len, cap = 0;
	int more;
	tpfs_json_object(&r->j);
	while ((more = tpfs_json_member(&r->j, &first, &key)) > 0) {
		if (tpfs_json_peek(&r->j) != '"')
			return wrong_kind(r, "%s: weight_map entry '%s' is not a file name",
					  r->file, key);
		if (!tpfs_json_string(&r->j, &value, &len))
			return syntax(r);
		if (ix->n == cap) {
			size_t c = cap ? cap * 2 : 64;
			struct tpfs_st_index_entry *g = realloc(ix->v, c * sizeof(*g));
			if (!g)
				return tpfs_error(r->e, -ENOMEM, "%s: out of memory", r->file);
			ix->v = g;
			cap = c;
		}
		ix->v[ix->n++] = (struct tpfs_st_index_entry){key, value};
	}
	return more < 0 ? syntax(r) : 0;
}

int tpfs_st_index_parse(const char *file, char *json, size_t len,
			struct tpfs_st_index **out, struct tpfs_error *e)
{
	*out = NULL;
	struct tpfs_st_index *ix = calloc(1, sizeof(*ix));
	if (!ix) {
		free(json);
		return tpfs_error(e, -ENOMEM, "%s: out of memory", file);
	}
	ix->text = json;
	struct reader r = {.file = file, .what = "index", .e = e};
	int rc = len == 0 ? tpfs_error(e, -EINVAL, "%s: the index is empty (rule: an index "
					  "is a JSON object with a weight_map)", file)
			  : start(&r, json, len, false);
	bool first = true, found = false;
	char *key;
	int more = 0;
	while (rc == 0 && (more = tpfs_json_member(&r.j, &first, &key)) > 0) {
		if (strcmp(key, "weight_map") != 0 || tpfs_json_peek(&r.j) != '{') {
			if (!tpfs_json_skip(&r.j))
				rc = syntax(&r);
		} else if (found) {
			rc = tpfs_error(e, -EINVAL, "%s: duplicate key 'weight_map' in the index",
				       file);
		} else {
			found = true;
			rc = read_weight_map(&r, ix);
		}
	}
	if (rc == 0)
		rc = more < 0 ? syntax(&r) : trailing(&r, false);
	if (rc == 0 && !found)
		rc = tpfs_error(e, -EINVAL, "%s: no \"weight_map\" object", file);
	if (rc == 0 && ix->n > 1)
		qsort(ix->v, ix->n, sizeof(*ix->v), cmp_index_entries);
	for (size_t i = 1; rc == 0 && i < ix->n; i++)
		if (strcmp(ix->v[i - 1].tensor, ix->v[i].tensor) == 0)
			rc = tpfs_error(e, -EINVAL,
				       "%s: duplicate key '%s' inside 'weight_map' in the index",
				       file, ix->v[i].tensor);
	if (rc < 0) {
		tpfs_st_index_free(ix);
		return rc;
	}
	*out = ix;
	return 0;
}

const char *tpfs_st_index_find(const struct tpfs_st_index *ix, const char *name)
{
	struct tpfs_st_index_entry key = {.tensor = (char *)name};
	const struct tpfs_st_index_entry *en =
		bsearch(&key, ix->v, ix->n, sizeof(*ix->v), cmp_index_entries);
	return en ? en->file : NULL;
}

void tpfs_st_index_free(struct tpfs_st_index *ix)
{
	if (!ix)
		return;
	free(ix->v);
	free(ix->text);
	free(ix);
}

/* Parse the header whose JSON (n bytes) is in text, which the new header
 * takes in every case. */
static int parse_owned(const char *file, char *text, uint64_t n, uint64_t file_size,
		       struct tpfs_st_header **out, struct tpfs_error *e)
{
	struct tpfs_st_header *h = calloc(1, sizeof(*h));
	if (!h) {
		free(text);
		return tpfs_error(e, -ENOMEM, "%s: out of memory", file);
	}
	h->text = text;
	h->file_size = file_size;
	h->header_len = n;
	h->data_start = 8 + n;
	int rc = read_header(file, (size_t)n, h, e);
	if (rc < 0) {
		tpfs_st_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

/* The checks of the 8-byte length n against the file, before reading. */
static int check_length(const char *file, uint64_t n, uint64_t file_size,
			struct tpfs_error *e)
{
	if (n > TPFS_ST_MAX_HEADER)
		return tpfs_error(e, -EINVAL,
				 "%s: header length %" PRIu64 " exceeds the limit of %llu bytes",
				 file, n, TPFS_ST_MAX_HEADER);
	if (n > file_size - 8)
		return tpfs_error(e, -EINVAL,
				 "%s: header length %" PRIu64 " runs past the end of the file "
				 "(%" PRIu64 " bytes)",
				 file, n, file_size);
	return 0;
}

static int too_short(const char *file, uint64_t file_size, struct tpfs_error *e)
{
	return tpfs_error(e, -EINVAL,
			 "%s: file is %" PRIu64 " bytes, too short for the 8-byte header length",
			 file, file_size);
}

int tpfs_st_parse(const char *file, const void *bytes, size_t len,
		  uint64_t file_size, struct tpfs_st_header **out,
		  struct tpfs_error *e)
{
	*out = NULL;
	if (file_size < 8 || len < 8)
		return too_short(file, file_size, e);
	uint64_t n = load_le64(bytes);
	int rc = check_length(file, n, file_size, e);
	if (rc < 0)
		return rc;
	if (len < 8 + n)
		return tpfs_error(e, -EINVAL, "%s: header not fully read", file);
	char *text = malloc((size_t)n + 1);
	if (!text)
		return tpfs_error(e, -ENOMEM, "%s: out of memory", file);
	memcpy(text, (const char *)bytes + 8, (size_t)n);
	return parse_owned(file, text, n, file_size, out, e);
}

int tpfs_st_read(int fd, const char *file, uint64_t file_size,
		 struct tpfs_st_header **out, struct tpfs_error *e)
{
	*out = NULL;
	unsigned char lenbuf[8];
	if (file_size < 8)
		return too_short(file, file_size, e);
	ssize_t got = pread(fd, lenbuf, 8, 0);
	if (got != 8)
		return tpfs_error(e, -EIO, "%s: cannot read the header length: %s", file,
				 got < 0 ? strerror(errno) : "short read");
	uint64_t n = load_le64(lenbuf);
	int rc = check_length(file, n, file_size, e);
	if (rc < 0)
		return rc;
	char *text = malloc((size_t)n + 1);
	if (!text)
		return tpfs_error(e, -ENOMEM, "%s: out of memory for a %" PRIu64
				 "-byte header", file, n);
	size_t at = 0;
	while (at < n) {
		got = pread(fd, text + at, (size_t)n - at, (off_t)(8 + at));
		if (got <= 0) {
			int err = got < 0 ? errno : EIO;
			free(text);
			return tpfs_error(e, -EIO, "%s: cannot read the header: %s", file,
					 got < 0 ? strerror(err) : "file shrank while reading");
		}
		at += (size_t)got;
	}
	return parse_owned(file, text, n, file_size, out, e);
}
const struct tpfs_st_tensor *tpfs_st_find(const struct tpfs_st_header *h,
					   const char *name)
{
	size_t lo = 0, hi = h->ntensors;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(h->tensors[mid].name, name);
		if (c == 0)
			return &h->tensors[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void tpfs_st_free(struct tpfs_st_header *h)
{
	if (!h)
		return;
	free(h->tensors);
	free(h->metadata_json);
	free(h->text);
	tpfs_arena_free(&h->arena);
	free(h);
}
