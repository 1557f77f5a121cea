/*
 * The strict in-place JSON reader (see json.h).
 */
#include "tpfs/json.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 1000
#define WHOLE_LIMIT (1ULL << 53) /* doubles are exact below it */

void tpfs_json_init(struct tpfs_json *j, char *text, size_t n)
{
	memset(j, 0, sizeof(*j));
	j->s = text;
	j->n = n;
}

bool tpfs_json_fail(struct tpfs_json *j, const char *why)
{
	if (!j->why) {
		j->why = why;
		j->at = j->i;
	}
	return false;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static void skip_space(struct tpfs_json *j)
{
	while (j->i < j->n && is_space(j->s[j->i]))
		j->i++;
}

/* The byte at i, or 0 past the end. */
static char at(const struct tpfs_json *j, size_t i)
{
	return i < j->n ? j->s[i] : 0;
}

char tpfs_json_peek(struct tpfs_json *j)
{
	if (j->why)
		return 0;
	skip_space(j);
	return at(j, j->i);
}

static bool open_container(struct tpfs_json *j, char c)
{
	if (tpfs_json_peek(j) != c)
		return tpfs_json_fail(j, c == '{' ? "a missing '{'" : "a missing '['");
	if (++j->depth > MAX_DEPTH)
		return tpfs_json_fail(j, "nesting deeper than 1000 levels");
	j->i++;
	return true;
}

bool tpfs_json_object(struct tpfs_json *j)
{
	return open_container(j, '{');
}

bool tpfs_json_array(struct tpfs_json *j)
{
	return open_container(j, '[');
}

/* Before the next member or element: 1 if one follows, 0 at close. */
static int next_item(struct tpfs_json *j, bool *first, char close)
{
	if (j->why)
		return -1;
	skip_space(j);
	if (at(j, j->i) == close) {
		j->i++;
		j->depth--;
		return 0;
	}
	if (!*first) {
		if (at(j, j->i) != ',') {
			tpfs_json_fail(j, close == '}' ? "a missing ',' or '}'"
						       : "a missing ',' or ']'");
			return -1;
		}
		j->i++;
		skip_space(j);
	}
	*first = false;
	return 1;
}

int tpfs_json_member(struct tpfs_json *j, bool *first, char **key)
{
	int rc = next_item(j, first, '}');
	if (rc <= 0)
		return rc;
	size_t len;
	if (at(j, j->i) != '"') {
		tpfs_json_fail(j, "a key that is not a string");
		return -1;
	}
	if (!tpfs_json_string(j, key, &len))
		return -1;
	skip_space(j);
	if (at(j, j->i) != ':') {
		tpfs_json_fail(j, "a missing ':'");
		return -1;
	}
	j->i++;
	return 1;
}

int tpfs_json_element(struct tpfs_json *j, bool *first)
{
	return next_item(j, first, ']');
}

static int hex_digit(char c)
{
	if (is_digit(c))
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The 4 hex digits after "\u" at i (pointing at the 'u'); -1 if bad. */
static long hex4(const struct tpfs_json *j, size_t i)
{
	long v = 0;
	for (size_t k = 1; k <= 4; k++) {
		int d = hex_digit(at(j, i + k));
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

static char *put_utf8(char *w, unsigned long c)
{
	if (c < 0x80) {
		*w++ = (char)c;
	} else if (c < 0x800) {
		*w++ = (char)(0xc0 | c >> 6);
		*w++ = (char)(0x80 | (c & 0x3f));
	} else if (c < 0x10000) {
		*w++ = (char)(0xe0 | c >> 12);
		*w++ = (char)(0x80 | (c >> 6 & 0x3f));
		*w++ = (char)(0x80 | (c & 0x3f));
	} else {
		*w++ = (char)(0xf0 | c >> 18);
		*w++ = (char)(0x80 | (c >> 12 & 0x3f));
		*w++ = (char)(0x80 | (c >> 6 & 0x3f));
		*w++ = (char)(0x80 | (c & 0x3f));
	}
	return w;
}

/* An escape at i (pointing after the backslash), written at w: the new
 * write position, or NULL on error. Every escape is at least as long as
 * what it stands for, so w never passes i. */
static char *unescape(struct tpfs_json *j, char *w)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	char e = at(j, j->i);
	const char *k = e ? strchr(from, e) : NULL;
	if (k) {
		j->i++;
		*w++ = to[k - from];
		return w;
	}
	if (e != 'u') {
		tpfs_json_fail(j, "a bad escape");
		return NULL;
	}
	long v = hex4(j, j->i);
	if (v < 0) {
		tpfs_json_fail(j, "a bad \\u escape");
		return NULL;
	}
	if (v == 0) {
		tpfs_json_fail(j, "\\u0000 (NUL) inside a string");
		return NULL;
	}
	unsigned long c = (unsigned long)v;
	if (v >= 0xdc00 && v <= 0xdfff) {
		tpfs_json_fail(j, "a lone UTF-16 surrogate (a low one)");
		return NULL;
	}
	if (v >= 0xd800 && v <= 0xdbff) {
		long lo = at(j, j->i + 5) == '\\' && at(j, j->i + 6) == 'u' ? hex4(j, j->i + 6)
									      : -1;
		if (lo < 0xdc00 || lo > 0xdfff) {
			tpfs_json_fail(j, "a lone UTF-16 surrogate (a high one without "
					  "its low one)");
			return NULL;
		}
		c = 0x10000 + ((unsigned long)(v - 0xd800) << 10) + (unsigned long)(lo - 0xdc00);
		j->i += 6;
	}
	j->i += 5;
	return put_utf8(w, c);
}

bool tpfs_json_string(struct tpfs_json *j, char **out, size_t *len)
{
	if (tpfs_json_peek(j) != '"')
		return tpfs_json_fail(j, "a missing string");
	char *start = j->s + ++j->i, *w = start;
	while (j->i < j->n) {
		unsigned char c = (unsigned char)j->s[j->i];
		if (c == '"') {
			*w = '\0';
			j->i++;
			*out = start;
			*len = (size_t)(w - start);
			return true;
		}
		if (c < 0x20)
			return tpfs_json_fail(j, "a control character inside a string");
		if (c == '\\') {
			size_t esc = j->i++;
			w = unescape(j, w);
			if (!w) {
				j->at = esc; /* point at the escape's backslash */
				return false;
			}
		} else {
			*w++ = (char)c;
			j->i++;
		}
	}
	return tpfs_json_fail(j, "an unterminated string");
}

/* A number by the JSON grammar; *plain when it is digits only. */
static bool number(struct tpfs_json *j, bool *plain)
{
	*plain = at(j, j->i) != '-';
	if (!*plain)
		j->i++;
	if (!is_digit(at(j, j->i)))
		return tpfs_json_fail(j, "a bad number");
	if (at(j, j->i) == '0' && is_digit(at(j, j->i + 1)))
		return tpfs_json_fail(j, "a number with a leading zero");
	while (is_digit(at(j, j->i)))
		j->i++;
	if (at(j, j->i) == '.') {
		*plain = false;
		j->i++;
		if (!is_digit(at(j, j->i)))
			return tpfs_json_fail(j, "a bad number");
		while (is_digit(at(j, j->i)))
			j->i++;
	}
	if (at(j, j->i) == 'e' || at(j, j->i) == 'E') {
		*plain = false;
		j->i++;
		if (at(j, j->i) == '+' || at(j, j->i) == '-')
			j->i++;
		if (!is_digit(at(j, j->i)))
			return tpfs_json_fail(j, "a bad number");
		while (is_digit(at(j, j->i)))
			j->i++;
	}
	return true;
}

int tpfs_json_whole(struct tpfs_json *j, uint64_t *out)
{
	char c = tpfs_json_peek(j);
	if (j->why)
		return -1;
	if (c != '-' && !is_digit(c))
		return 0;
	size_t start = j->i;
	bool plain;
	if (!number(j, &plain))
		return -1;
	uint64_t v = 0;
	for (size_t k = start; plain && k < j->i; k++) {
		v = v * 10 + (uint64_t)(j->s[k] - '0');
		plain = v < WHOLE_LIMIT;
	}
	if (!plain) {
		j->i = start;
		return 0;
	}
	*out = v;
	return 1;
}

bool tpfs_json_null(struct tpfs_json *j)
{
	if (tpfs_json_peek(j) != 'n' || j->n - j->i < 4 || memcmp(j->s + j->i, "null", 4))
		return false;
	j->i += 4;
	return true;
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

const char *tpfs_json_repeated(char **keys, size_t n)
{
	if (n > 1)
		qsort(keys, n, sizeof(*keys), cmp_keys);
	for (size_t i = 1; i < n; i++)
		if (strcmp(keys[i - 1], keys[i]) == 0)
			return keys[i];
	return NULL;
}

static bool skip_object(struct tpfs_json *j)
{
	char **keys = NULL;
	size_t n = 0, cap = 0;
	bool first = true;
	char *key;
	int rc;
	if (!tpfs_json_object(j))
		return false;
	while ((rc = tpfs_json_member(j, &first, &key)) > 0) {
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			char **grown = realloc(keys, cap * sizeof(*keys));
			if (!grown) {
				free(keys);
				return tpfs_json_fail(j, "out of memory");
			}
			keys = grown;
		}
		keys[n++] = key;
		if (!tpfs_json_skip(j))
			break;
	}
	const char *dup = j->why ? NULL : tpfs_json_repeated(keys, n);
	free(keys);
	if (dup)
		return tpfs_json_fail(j, "a key that appears twice in one object");
	return !j->why;
}

bool tpfs_json_skip(struct tpfs_json *j)
{
	char c = tpfs_json_peek(j);
	if (j->why)
		return false;
	if (c == '{')
		return skip_object(j);
	if (c == '[') {
		bool first = true;
		int rc;
		if (!tpfs_json_array(j))
			return false;
		while ((rc = tpfs_json_element(j, &first)) > 0)
			if (!tpfs_json_skip(j))
				return false;
		return rc == 0;
	}
	if (c == '"') {
		char *s;
		size_t len;
		return tpfs_json_string(j, &s, &len);
	}
	if (c == '-' || is_digit(c)) {
		bool plain;
		return number(j, &plain);
	}
	static const char *const words[] = {"true", "false", "null"};
	for (int k = 0; k < 3; k++) {
		size_t len = strlen(words[k]);
		if (j->n - j->i >= len && memcmp(j->s + j->i, words[k], len) == 0) {
			j->i += len;
			return true;
		}
	}
	return tpfs_json_fail(j, c ? "an unexpected character" : "a missing value");
}

bool tpfs_json_end(struct tpfs_json *j, bool spaces_only)
{
	if (j->why)
		return false;
	for (; j->i < j->n; j->i++)
		if (spaces_only ? j->s[j->i] != ' ' : !is_space(j->s[j->i]))
			return tpfs_json_fail(j, spaces_only ? "bytes other than spaces after "
							       "the JSON object"
							     : "bytes other than whitespace "
							       "after the JSON object");
	return true;
}

bool tpfs_json_utf8_valid(const char *str, size_t n, size_t *bad)
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
