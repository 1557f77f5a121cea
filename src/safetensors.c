/*
 * Safetensors header parsing with cJSON, and every validation rule of the
 * format. cJSON stores numbers as doubles and keeps duplicate keys, so both
 * are checked here by hand: every number must be a whole number below 2^53
 * and no object may repeat a key.
 */
#include "tpfs/safetensors.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WHOLE_LIMIT 9007199254740992.0 /* 2^53: doubles stay exact below it */
#define PLAIN 1 /* valueint of a number item written as plain digits */

const char *tpfs_shape_str(const uint64_t *shape, uint32_t ndim, char *buf,
			   size_t len)
{
	struct tpfs_buf b = {0};
	tpfs_buf_shape(&b, shape, ndim);
	char *text = tpfs_buf_take(&b, NULL);
	snprintf(buf, len, "%s", text ? text : "[...]");
	free(text);
	return buf;
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Finds a key that occurs twice among obj's children (recursing into nested
 * objects and arrays): *dup is the repeated key (NULL if none) and *owner
 * the object's own key (NULL for the root). Returns 0, or -ENOMEM. */
static int find_duplicate_key(const cJSON *obj, const char **owner, const char **dup)
{
	size_t n = 0;
	for (const cJSON *c = obj->child; c; c = c->next)
		n++;
	if (cJSON_IsObject(obj) && n > 1) {
		const char **names = malloc(n * sizeof(*names));
		if (!names)
			return -ENOMEM;
		size_t i = 0;
		for (const cJSON *c = obj->child; c; c = c->next)
			names[i++] = c->string ? c->string : "";
		qsort(names, n, sizeof(*names), cmp_str_ptr);
		for (i = 1; i < n && !*dup; i++)
			if (strcmp(names[i - 1], names[i]) == 0)
				*dup = names[i];
		free(names);
		if (*dup) {
			*owner = obj->string;
			return 0;
		}
	}
	for (const cJSON *c = obj->child; c && !*dup; c = c->next)
		if ((cJSON_IsObject(c) || cJSON_IsArray(c)) &&
		    find_duplicate_key(c, owner, dup) < 0)
			return -ENOMEM;
	return 0;
}

/* A number written as plain digits (see strict_json), below 2^53. */
static bool whole_number(const cJSON *item, uint64_t *out)
{
	if (!cJSON_IsNumber(item) || item->valueint != PLAIN)
		return false;
	double d = item->valuedouble;
	if (!(d >= 0) || d >= WHOLE_LIMIT || d != floor(d))
		return false;
	*out = (uint64_t)d;
	return true;
}

static int parse_metadata(const char *file, const cJSON *item,
			  struct tpfs_st_header *h, struct tpfs_error *e)
{
	if (cJSON_IsNull(item)) {
		h->meta = TPFS_ST_META_NULL;
		return 0;
	}
	if (!cJSON_IsObject(item))
		return tpfs_fail(e, -EINVAL,
				 "%s: __metadata__ must be an object of strings or null",
				 file);
	for (const cJSON *c = item->child; c; c = c->next)
		if (!cJSON_IsString(c))
			return tpfs_fail(e, -EINVAL,
					 "%s: __metadata__ value of key '%s' is not a string "
					 "(rule: __metadata__ maps strings to strings)",
					 file, c->string);
	h->metadata_json = cJSON_PrintUnformatted(item);
	if (!h->metadata_json)
		return tpfs_fail(e, -ENOMEM, "%s: out of memory", file);
	h->meta = TPFS_ST_META_MAP;
	return 0;
}

static int parse_tensor(const char *file, const cJSON *item,
			struct tpfs_st_header *h, struct tpfs_st_tensor *t,
			struct tpfs_error *e)
{
	const char *name = item->string;
	t->name = strdup(name);
	if (!t->name)
		return tpfs_fail(e, -ENOMEM, "%s: out of memory", file);
	if (!cJSON_IsObject(item))
		return tpfs_fail(e, -EINVAL,
				 "%s: tensor '%s': entry is not an object "
				 "(rule: each tensor has dtype, shape and data_offsets)",
				 file, name);

	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
	if (!dt)
		return tpfs_fail(e, -EINVAL, "%s: tensor '%s': no \"dtype\"", file, name);
	if (!cJSON_IsString(dt))
		return tpfs_fail(e, -EINVAL, "%s: tensor '%s': \"dtype\" is not a string",
				 file, name);
	if (tpfs_dtype_parse(dt->valuestring, &t->dtype) < 0)
		return tpfs_fail(e, -EINVAL,
				 "%s: tensor '%s': unknown dtype '%s' (known: %s)", file,
				 name, dt->valuestring, tpfs_dtype_names());

	const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
	if (!shape)
		return tpfs_fail(e, -EINVAL, "%s: tensor '%s': no \"shape\"", file, name);
	if (!cJSON_IsArray(shape))
		return tpfs_fail(e, -EINVAL,
				 "%s: tensor '%s': \"shape\" is not an array of whole numbers",
				 file, name);
	t->ndim = (uint32_t)cJSON_GetArraySize(shape);
	if (t->ndim) {
		t->shape = calloc(t->ndim, sizeof(*t->shape));
		if (!t->shape)
			return tpfs_fail(e, -ENOMEM, "%s: out of memory", file);
	}
	uint32_t i = 0;
	t->nelem = 1;
	bool overflow = false;
	for (const cJSON *d = shape->child; d; d = d->next, i++) {
		if (!whole_number(d, &t->shape[i]))
			return tpfs_fail(e, -EINVAL,
					 "%s: tensor '%s': shape entry %u is not a whole number "
					 "from 0 to 2^53 written in plain digits",
					 file, name, i);
		if (!tpfs_mul_u64(t->nelem, t->shape[i], &t->nelem))
			overflow = true;
	}
	char sbuf[256];
	tpfs_shape_str(t->shape, t->ndim, sbuf, sizeof(sbuf));
	/* A zero dimension makes the product 0 whatever overflowed before it. */
	for (i = 0; i < t->ndim; i++) {
		if (t->shape[i] == 0) {
			overflow = false;
			t->nelem = 0;
		}
	}
	if (overflow)
		return tpfs_fail(e, -EINVAL,
				 "%s: tensor '%s': element count of shape %s overflows 64 bits",
				 file, name, sbuf);

	const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
	uint64_t b, en;
	if (!offs)
		return tpfs_fail(e, -EINVAL, "%s: tensor '%s': no \"data_offsets\"", file,
				 name);
	if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
	    !whole_number(offs->child, &b) || !whole_number(offs->child->next, &en))
		return tpfs_fail(e, -EINVAL,
				 "%s: tensor '%s': \"data_offsets\" must be two whole numbers "
				 "[begin, end]",
				 file, name);
	if (b > en)
		return tpfs_fail(e, -EINVAL,
				 "%s: tensor '%s': data_offsets begin %" PRIu64
				 " is after end %" PRIu64 " (rule: begin <= end)",
				 file, name, b, en);

	const struct tpfs_dtype_info *di = tpfs_dtype_info(t->dtype);
	uint64_t bits;
	if (!tpfs_mul_u64(t->nelem, di->bits, &bits))
		return tpfs_fail(e, -EINVAL,
				 "%s: tensor '%s': byte size of shape %s of %s overflows 64 bits",
				 file, name, sbuf, di->name);
	if (bits % 8)
		return tpfs_fail(e, -EINVAL,
				 "%s: tensor '%s': %" PRIu64 " elements of %s (%u bits each) "
				 "do not fill a whole number of bytes",
				 file, name, t->nelem, di->name, di->bits);
	if (bits / 8 != en - b)
		return tpfs_fail(e, -EINVAL,
				 "%s: tensor '%s': shape %s of %s needs %" PRIu64
				 " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
				 " (rule: element count times item size equals the byte length)",
				 file, name, sbuf, di->name, bits / 8, b, en, en - b);
	uint64_t data_len = h->file_size - h->data_start;
	if (en > data_len)
		return tpfs_fail(e, -EINVAL,
				 "%s: tensor '%s': data_offsets end %" PRIu64
				 " is past the end of the data buffer (%" PRIu64 " bytes)",
				 file, name, en, data_len);
	t->begin = h->data_start + b;
	t->end = h->data_start + en;
	return 0;
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
			return tpfs_fail(e, -ENOMEM, "%s: out of memory", file);
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
			rc = tpfs_fail(e, -EINVAL,
				       "%s: tensors '%s' and '%s' overlap at data byte %" PRIu64
				       " (rule: tensors neither overlap nor leave holes)",
				       file, prev, t->name, t->begin - h->data_start);
		else if (t->begin > at)
			rc = tpfs_fail(e, -EINVAL,
				       "%s: data bytes %" PRIu64 "..%" PRIu64
				       " before tensor '%s' belong to no tensor "
				       "(rule: tensors neither overlap nor leave holes)",
				       file, at - h->data_start, t->begin - h->data_start,
				       t->name);
		at = t->end;
		prev = t->name;
	}
	if (rc == 0 && at != h->file_size)
		rc = tpfs_fail(e, -EINVAL,
			       "%s: %" PRIu64 " bytes follow the last tensor's data "
			       "(rule: the last byte of data is the last byte of the file)",
			       file, h->file_size - at);
	free(by_off);
	return rc;
}

static bool json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * A strict first pass over the JSON text, which cJSON alone would let
 * through: it keeps control characters raw inside strings, cuts strings at
 * \u0000, accepts numbers such as 01, and reads 1.0 or 1e0 as whole
 * numbers. The pass checks the grammar of RFC 8259 and refuses \u0000, and
 * records for every number, in document order, whether it is written as
 * plain digits (the only form a shape or an offset may take).
 */
struct scan {
	const char *s;
	size_t n, i;
	const char *why;  /* set on the first error, at byte i */
	bool *plain;      /* per number, in document order */
	size_t numbers, cap;
	unsigned depth;
};

static bool scan_value(struct scan *c);

static void skip_space(struct scan *c)
{
	while (c->i < c->n && json_space(c->s[c->i]))
		c->i++;
}

static bool fail_at(struct scan *c, const char *why)
{
	c->why = why;
	return false;
}

static bool scan_string(struct scan *c)
{
	c->i++; /* the opening quote */
	while (c->i < c->n) {
		unsigned char ch = (unsigned char)c->s[c->i];
		if (ch == '"') {
			c->i++;
			return true;
		}
		if (ch < 0x20)
			return fail_at(c, "a control character inside a string");
		if (ch != '\\') {
			c->i++;
			continue;
		}
		if (++c->i >= c->n)
			break;
		ch = (unsigned char)c->s[c->i];
		if (strchr("\"\\/bfnrt", ch) && ch) {
			c->i++;
		} else if (ch == 'u') {
			unsigned v = 0;
			for (int k = 1; k <= 4; k++) {
				char h = c->i + (size_t)k < c->n ? c->s[c->i + (size_t)k] : 0;
				if (!isxdigit((unsigned char)h))
					return fail_at(c, "a bad \\u escape");
				v = v * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0'
										 : (h | 0x20) - 'a' + 10);
			}
			if (v == 0)
				return fail_at(c, "\\u0000 (NUL) inside a string");
			c->i += 5;
		} else {
			return fail_at(c, "a bad escape");
		}
	}
	return fail_at(c, "an unterminated string");
}

static bool scan_number(struct scan *c)
{
	bool plain = true;
	if (c->s[c->i] == '-') {
		plain = false;
		c->i++;
	}
	if (c->i >= c->n || !isdigit((unsigned char)c->s[c->i]))
		return fail_at(c, "a bad number");
	if (c->s[c->i] == '0' && c->i + 1 < c->n && isdigit((unsigned char)c->s[c->i + 1]))
		return fail_at(c, "a number with a leading zero");
	while (c->i < c->n && isdigit((unsigned char)c->s[c->i]))
		c->i++;
	if (c->i < c->n && c->s[c->i] == '.') {
		plain = false;
		if (++c->i >= c->n || !isdigit((unsigned char)c->s[c->i]))
			return fail_at(c, "a bad number");
		while (c->i < c->n && isdigit((unsigned char)c->s[c->i]))
			c->i++;
	}
	if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
		plain = false;
		if (++c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-'))
			c->i++;
		if (c->i >= c->n || !isdigit((unsigned char)c->s[c->i]))
			return fail_at(c, "a bad number");
		while (c->i < c->n && isdigit((unsigned char)c->s[c->i]))
			c->i++;
	}
	if (c->numbers == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		bool *p = realloc(c->plain, cap * sizeof(*p));
		if (!p)
			return fail_at(c, "out of memory");
		c->plain = p;
		c->cap = cap;
	}
	c->plain[c->numbers++] = plain;
	return true;
}

static bool scan_container(struct scan *c, char close, bool object)
{
	if (++c->depth > 1000)
		return fail_at(c, "nesting deeper than 1000 levels");
	c->i++;
	skip_space(c);
	if (c->i < c->n && c->s[c->i] == close) {
		c->i++;
		c->depth--;
		return true;
	}
	for (;;) {
		if (object) {
			if (c->i >= c->n || c->s[c->i] != '"')
				return fail_at(c, "a key that is not a string");
			if (!scan_string(c))
				return false;
			skip_space(c);
			if (c->i >= c->n || c->s[c->i] != ':')
				return fail_at(c, "a missing ':'");
			c->i++;
		}
		if (!scan_value(c))
			return false;
		skip_space(c);
		if (c->i < c->n && c->s[c->i] == ',') {
			c->i++;
			skip_space(c);
			continue;
		}
		if (c->i < c->n && c->s[c->i] == close) {
			c->i++;
			c->depth--;
			return true;
		}
		return fail_at(c, object ? "a missing ',' or '}'" : "a missing ',' or ']'");
	}
}

static bool scan_value(struct scan *c)
{
	skip_space(c);
	if (c->i >= c->n)
		return fail_at(c, "a missing value");
	char ch = c->s[c->i];
	if (ch == '{')
		return scan_container(c, '}', true);
	if (ch == '[')
		return scan_container(c, ']', false);
	if (ch == '"')
		return scan_string(c);
	if (ch == '-' || isdigit((unsigned char)ch))
		return scan_number(c);
	static const char *const words[] = {"true", "false", "null"};
	for (int k = 0; k < 3; k++) {
		size_t len = strlen(words[k]);
		if (c->n - c->i >= len && memcmp(c->s + c->i, words[k], len) == 0) {
			c->i += len;
			return true;
		}
	}
	return fail_at(c, "an unexpected character");
}

/* Number items in document order get valueint PLAIN or 0 from the scan. */
static void mark_numbers(cJSON *item, const struct scan *c, size_t *k)
{
	for (; item; item = item->next) {
		if (cJSON_IsNumber(item)) {
			item->valueint = *k < c->numbers && c->plain[*k] ? PLAIN : 0;
			(*k)++;
		}
		mark_numbers(item->child, c, k);
	}
}

/* Parse JSON text that must be one object starting at its first byte, in
 * UTF-8, with no repeated key anywhere. A Safetensors header (spaces_only)
 * may be followed by spaces only; an index by any whitespace. what names the
 * text in messages ("header", "index"). */
static int parse_object(const char *file, const char *what, const char *json,
			size_t n, bool spaces_only, cJSON **out, struct tpfs_error *e)
{
	*out = NULL;
	size_t bad;
	if (!tpfs_utf8_valid(json, n, &bad))
		return tpfs_fail(e, -EINVAL,
				 "%s: %s is not valid UTF-8 (byte %zu of the %s)", file,
				 what, bad, what);
	if (spaces_only && (n == 0 || json[0] != '{'))
		return tpfs_fail(e, -EINVAL,
				 "%s: %s does not start with '{' (rule: the header is a JSON "
				 "object from its first byte)",
				 file, what);
	struct scan c = {.s = json, .n = n};
	bool ok = scan_value(&c);
	int rc = 0;
	if (!ok)
		rc = tpfs_fail(e, c.why && strcmp(c.why, "out of memory") == 0 ? -ENOMEM : -EINVAL,
			       "%s: %s is not valid JSON (%s at byte %zu of the %s)", file,
			       what, c.why, c.i, what);
	for (size_t i = c.i; rc == 0 && i < n; i++)
		if (spaces_only ? json[i] != ' ' : !json_space(json[i]))
			rc = tpfs_fail(e, -EINVAL,
				       "%s: %s has bytes other than %s after the JSON object "
				       "(byte %zu of the %s)",
				       file, what, spaces_only ? "spaces" : "whitespace", i, what);
	cJSON *root = NULL;
	if (rc == 0) {
		root = cJSON_ParseWithLengthOpts(json, c.i, NULL, 0);
		if (!root)
			rc = tpfs_fail(e, -ENOMEM, "%s: out of memory parsing the %s", file, what);
		else if (!cJSON_IsObject(root))
			rc = tpfs_fail(e, -EINVAL, "%s: %s JSON is not an object", file, what);
	}
	if (rc == 0) {
		size_t k = 0;
		mark_numbers(root, &c, &k);
	}
	free(c.plain);
	const char *owner = NULL;
	const char *dup = NULL;
	if (rc == 0 && find_duplicate_key(root, &owner, &dup) < 0)
		rc = tpfs_fail(e, -ENOMEM, "%s: out of memory", file);
	if (dup && owner)
		rc = tpfs_fail(e, -EINVAL,
			       "%s: duplicate key '%s' inside '%s' in the %s", file, dup,
			       owner, what);
	else if (dup)
		rc = tpfs_fail(e, -EINVAL, "%s: duplicate key '%s' in the %s", file,
			       dup, what);
	if (rc < 0) {
		cJSON_Delete(root);
		return rc;
	}
	*out = root;
	return 0;
}

static int parse_json(const char *file, const char *json, size_t n,
		      struct tpfs_st_header *h, struct tpfs_error *e)
{
	cJSON *root;
	int rc = parse_object(file, "header", json, n, true, &root, e);
	if (rc < 0)
		return rc;
	size_t count = 0;
	for (const cJSON *c = root->child; c; c = c->next)
		count += strcmp(c->string, "__metadata__") != 0;
	if (count) {
		h->tensors = calloc(count, sizeof(*h->tensors));
		if (!h->tensors) {
			rc = tpfs_fail(e, -ENOMEM, "%s: out of memory", file);
			goto out;
		}
	}
	for (const cJSON *c = root->child; c && rc == 0; c = c->next) {
		if (strcmp(c->string, "__metadata__") == 0)
			rc = parse_metadata(file, c, h, e);
		else
			rc = parse_tensor(file, c, h, &h->tensors[h->ntensors++], e);
	}
	if (rc == 0)
		rc = check_tiling(file, h, e);
	if (rc == 0 && h->ntensors > 1)
		qsort(h->tensors, h->ntensors, sizeof(*h->tensors), cmp_tensor_names);
out:
	cJSON_Delete(root);
	return rc;
}

static int cmp_index_entries(const void *a, const void *b)
{
	return strcmp(((const struct tpfs_st_index_entry *)a)->tensor,
		      ((const struct tpfs_st_index_entry *)b)->tensor);
}

int tpfs_st_index_parse(const char *file, const char *json, size_t len,
			struct tpfs_st_index **out, struct tpfs_error *e)
{
	*out = NULL;
	cJSON *root;
	int rc = parse_object(file, "index", json, len, false, &root, e);
	if (rc < 0)
		return rc;
	struct tpfs_st_index *ix = calloc(1, sizeof(*ix));
	const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
	if (!ix) {
		rc = tpfs_fail(e, -ENOMEM, "%s: out of memory", file);
		goto out;
	}
	if (!cJSON_IsObject(wm)) {
		rc = tpfs_fail(e, -EINVAL, "%s: no \"weight_map\" object", file);
		goto out;
	}
	size_t n = (size_t)cJSON_GetArraySize(wm);
	ix->v = calloc(n ? n : 1, sizeof(*ix->v));
	if (!ix->v) {
		rc = tpfs_fail(e, -ENOMEM, "%s: out of memory", file);
		goto out;
	}
	for (const cJSON *c = wm->child; c; c = c->next) {
		if (!cJSON_IsString(c)) {
			rc = tpfs_fail(e, -EINVAL,
				       "%s: weight_map entry '%s' is not a file name", file,
				       c->string);
			goto out;
		}
		struct tpfs_st_index_entry *en = &ix->v[ix->n++];
		en->tensor = strdup(c->string);
		en->file = strdup(c->valuestring);
		if (!en->tensor || !en->file) {
			rc = tpfs_fail(e, -ENOMEM, "%s: out of memory", file);
			goto out;
		}
	}
	qsort(ix->v, ix->n, sizeof(*ix->v), cmp_index_entries);
out:
	cJSON_Delete(root);
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
	for (size_t i = 0; i < ix->n; i++) {
		free(ix->v[i].tensor);
		free(ix->v[i].file);
	}
	free(ix->v);
	free(ix);
}

int tpfs_st_parse(const char *file, const void *bytes, size_t len,
		  uint64_t file_size, struct tpfs_st_header **out,
		  struct tpfs_error *e)
{
	*out = NULL;
	if (file_size < 8 || len < 8)
		return tpfs_fail(e, -EINVAL,
				 "%s: file is %" PRIu64 " bytes, too short for the 8-byte "
				 "header length",
				 file, file_size);
	uint64_t n = tpfs_load_le64(bytes);
	if (n > TPFS_ST_MAX_HEADER)
		return tpfs_fail(e, -EINVAL,
				 "%s: header length %" PRIu64 " exceeds the limit of %llu bytes",
				 file, n, TPFS_ST_MAX_HEADER);
	if (n > file_size - 8)
		return tpfs_fail(e, -EINVAL,
				 "%s: header length %" PRIu64 " runs past the end of the file "
				 "(%" PRIu64 " bytes)",
				 file, n, file_size);
	if (len < 8 + n)
		return tpfs_fail(e, -EINVAL, "%s: header not fully read", file);

	struct tpfs_st_header *h = calloc(1, sizeof(*h));
	if (!h)
		return tpfs_fail(e, -ENOMEM, "%s: out of memory", file);
	h->file_size = file_size;
	h->header_len = n;
	h->data_start = 8 + n;
	int rc = parse_json(file, (const char *)bytes + 8, (size_t)n, h, e);
	if (rc < 0) {
		tpfs_st_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

int tpfs_st_read(int fd, const char *file, uint64_t file_size,
		 struct tpfs_st_header **out, struct tpfs_error *e)
{
	*out = NULL;
	unsigned char lenbuf[8] = {0};
	if (file_size < 8)
		return tpfs_st_parse(file, lenbuf, 0, file_size, out, e);
	ssize_t got = pread(fd, lenbuf, 8, 0);
	if (got != 8)
		return tpfs_fail(e, -EIO, "%s: cannot read the header length: %s", file,
				 got < 0 ? strerror(errno) : "short read");
	uint64_t n = tpfs_load_le64(lenbuf);
	if (n > TPFS_ST_MAX_HEADER || n > file_size - 8)
		return tpfs_st_parse(file, lenbuf, 8, file_size, out, e);
	size_t total = 8 + (size_t)n;
	char *buf = malloc(total);
	if (!buf)
		return tpfs_fail(e, -ENOMEM, "%s: out of memory for a %" PRIu64
				 "-byte header", file, n);
	size_t at = 0;
	while (at < total) {
		got = pread(fd, buf + at, total - at, (off_t)at);
		if (got <= 0) {
			int err = got < 0 ? errno : EIO;
			free(buf);
			return tpfs_fail(e, -EIO, "%s: cannot read the header: %s", file,
					 got < 0 ? strerror(err) : "file shrank while reading");
		}
		at += (size_t)got;
	}
	int rc = tpfs_st_parse(file, buf, total, file_size, out, e);
	free(buf);
	return rc;
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
	for (size_t i = 0; i < h->ntensors; i++) {
		free(h->tensors[i].name);
		free(h->tensors[i].shape);
	}
	free(h->tensors);
	free(h->metadata_json);
	free(h);
}
