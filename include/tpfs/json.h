/*
 * A strict JSON reader (RFC 8259) that works in place: strings are
 * unescaped into the text itself and NUL-terminated where their closing
 * quote was, so that a header's names cost no memory beyond the header.
 *
 * It is a pull reader: the caller walks objects and arrays member by
 * member and takes the values it wants; tpfs_json_skip reads any other
 * value. It refuses what a lenient parser would let through: control
 * characters and \u0000 inside strings, lone UTF-16 surrogates, leading
 * zeros, nesting deeper than 1000 levels; the caller checks UTF-8 first.
 * Keys are not checked for repeats, except inside values read by
 * tpfs_json_skip; tpfs_json_repeated helps callers check their own.
 *
 * The first error is kept (why, at) and every later call fails, so a
 * reader may check once after a sequence. One reader belongs to one
 * thread; there is no global state.
 */
#ifndef TPFS_JSON_H
#define TPFS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpfs_json {
	char *s;            /* the text, changed in place */
	size_t n;
	size_t i;           /* next byte to read */
	const char *why;    /* the first error, or NULL */
	size_t at;          /* its byte offset */
	unsigned depth;
};

void tpfs_json_init(struct tpfs_json *j, char *text, size_t n);

/* Fail with why at the current position (unless failed already). Returns
 * false. */
bool tpfs_json_fail(struct tpfs_json *j, const char *why);

/* The first byte of the next value, after whitespace; 0 at the end. */
char tpfs_json_peek(struct tpfs_json *j);

/* Open an object or array ('{' or '[' next). */
bool tpfs_json_object(struct tpfs_json *j);
bool tpfs_json_array(struct tpfs_json *j);

/* The next member of the object being read: 1 with *key (unescaped,
 * NUL-terminated, in the text) when one follows, then its value is next;
 * 0 at the closing '}'; -1 on error. *first must start true. */
int tpfs_json_member(struct tpfs_json *j, bool *first, char **key);

/* The next element of the array being read: 1 when one follows, 0 at the
 * closing ']', -1 on error. *first must start true. */
int tpfs_json_element(struct tpfs_json *j, bool *first);

/* A string value, unescaped in place: *out NUL-terminated, *len its bytes
 * (a string may hold no NUL, so len is strlen(*out)). */
bool tpfs_json_string(struct tpfs_json *j, char **out, size_t *len);

/* A number written as plain digits (no sign, fraction or exponent) below
 * 2^53. Returns 1 with *out, 0 (nothing consumed, no error) for any other
 * value, so the caller can name the rule; -1 on a syntax error. */
int tpfs_json_whole(struct tpfs_json *j, uint64_t *out);

/* null next: consume it and return true; otherwise false, no error. */
bool tpfs_json_null(struct tpfs_json *j);

/* Read any value, checking every object inside it for repeated keys. */
bool tpfs_json_skip(struct tpfs_json *j);

/* Only whitespace is left (only spaces when spaces_only). Returns false
 * with why set and at pointing at the first other byte. */
bool tpfs_json_end(struct tpfs_json *j, bool spaces_only);

/* True if s[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * UTF-16 surrogates, nothing past U+10FFFF). On failure *bad is the offset
 * of the first byte of the offending sequence. */
bool tpfs_json_utf8_valid(const char *s, size_t n, size_t *bad);

/* The first key that keys[0..n) hold twice, or NULL (keys are sorted in
 * place). */
const char *tpfs_json_repeated(char **keys, size_t n);

#endif
