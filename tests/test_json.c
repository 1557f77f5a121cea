/*
 * The strict JSON reader against RFC 8259 and the UTF-8 check against RFC
 * 3629: every escape and the bytes it becomes (written here from the UTF-8
 * table), surrogate pairs, the refusals (lone surrogates, control
 * characters, \u0000, leading zeros, nesting past 1000, repeated keys),
 * whole numbers and what is not one, the end of the text, and a table of
 * byte strings with the verdict and offset each must get. Every text is
 * copied into a buffer of exactly its length, so that a read past it is an
 * error the sanitizer build reports.
 */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "tpfs/json.h"

/* A reader over a malloc'd copy of s[0..n) (no NUL after it). */
struct text {
	struct tpfs_json j;
	char *buf;
};

static struct tpfs_json *open_n(struct text *t, const char *s, size_t n)
{
	t->buf = malloc(n ? n : 1);
	if (n)
		memcpy(t->buf, s, n);
	tpfs_json_init(&t->j, t->buf, n);
	return &t->j;
}

static struct tpfs_json *open_s(struct text *t, const char *s)
{
	return open_n(t, s, strlen(s));
}

static void done(struct text *t)
{
	free(t->buf);
}

/* The string value of json, unescaped, is want[0..wn). */
static void string_is(const char *json, const char *want, size_t wn)
{
	struct text t;
	struct tpfs_json *j = open_s(&t, json);
	char *out = NULL;
	size_t len = 0;
	bool ok = tpfs_json_string(j, &out, &len);
	CHECKF(ok, "%s: %s", json, j->why ? j->why : "");
	if (ok) {
		CHECKF(len == wn && memcmp(out, want, wn) == 0 && out[len] == '\0', "%s", json);
		/* in place, inside the text */
		CHECK(out >= t.buf && out + len < t.buf + strlen(json));
		CHECK(j->i == strlen(json));
	}
	done(&t);
}

/* json's string is refused with a message containing why, at offset at. */
static void string_refused(const char *json, size_t n, const char *why, size_t at)
{
	struct text t;
	struct tpfs_json *j = open_n(&t, json, n);
	char *out;
	size_t len;
	CHECKF(!tpfs_json_string(j, &out, &len), "%s accepted", json);
	CHECKF(j->why && strstr(j->why, why), "%s: '%s', not '%s'", json,
	       j->why ? j->why : "(none)", why);
	CHECKF(j->at == at, "%s: at %zu, not %zu", json, j->at, at);
	done(&t);
}

static void strings_unescape_every_escape(void)
{
	string_is("\"\"", "", 0);
	string_is("\"plain text\"", "plain text", 10);
	string_is("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8);
	string_is("\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"", "a\"b\\c/d\be\ff\ng\rh\ti", 17);
	/* \u escapes, hex digits in either case, to UTF-8 (RFC 3629, section 3:
	 * 0xxxxxxx, 110xxxxx 10xxxxxx, 1110xxxx 10xxxxxx 10xxxxxx) */
	string_is("\"\\u0041\"", "A", 1);
	string_is("\"\\u0001\"", "\x01", 1);
	string_is("\"\\u007f\"", "\x7f", 1);
	string_is("\"\\u0080\"", "\xc2\x80", 2);
	string_is("\"\\u00e9\\u00E9\"", "\xc3\xa9\xc3\xa9", 4);
	string_is("\"\\u07FF\"", "\xdf\xbf", 2);
	string_is("\"\\u0800\"", "\xe0\xa0\x80", 3);
	string_is("\"\\u20aC\"", "\xe2\x82\xac", 3);
	string_is("\"\\uD7FF\"", "\xed\x9f\xbf", 3);
	string_is("\"\\uE000\"", "\xee\x80\x80", 3);
	string_is("\"\\uFFFF\"", "\xef\xbf\xbf", 3);
	/* bytes of 0x7f and up pass as they are (UTF-8 is checked apart) */
	string_is("\"\x7f\xc3\xa9\xff\"", "\x7f\xc3\xa9\xff", 4);
	/* an escape next to raw text */
	string_is("\"x\\u0041y\\nz\"", "xAy\nz", 5);
}

static void surrogate_pairs_become_four_byte_utf8(void)
{
	/* RFC 8259 section 7; UTF-8 11110xxx 10xxxxxx 10xxxxxx 10xxxxxx */
	string_is("\"\\uD800\\uDC00\"", "\xf0\x90\x80\x80", 4);      /* U+10000 */
	string_is("\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80", 4);      /* U+1F600 */
	string_is("\"\\ud834\\udd1e\"", "\xf0\x9d\x84\x9e", 4);      /* U+1D11E */
	string_is("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4);      /* U+10FFFF */
	string_is("\"a\\uD83D\\uDE00b\"", "a\xf0\x9f\x98\x80" "b", 6);
}

static void lone_surrogates_are_refused_at_their_escape(void)
{
	string_refused("\"\\uD800\"", 8, "lone UTF-16 surrogate", 1);
	string_refused("\"ab\\uDBFFx\"", 11, "lone UTF-16 surrogate", 3);
	string_refused("\"\\uD800\\u0041\"", 14, "lone UTF-16 surrogate", 1);
	string_refused("\"\\uD800\\uD800\"", 14, "lone UTF-16 surrogate", 1);
	string_refused("\"\\uD800\\n\"", 10, "lone UTF-16 surrogate", 1);
	string_refused("\"\\uD800\\", 8, "lone UTF-16 surrogate", 1);
	string_refused("\"\\uDC00\"", 8, "lone UTF-16 surrogate", 1);
	string_refused("\"x\\uDFFF\\uD800\"", 15, "lone UTF-16 surrogate", 2);
}

static void bad_escapes_and_nul_are_refused(void)
{
	string_refused("\"\\x41\"", 6, "bad escape", 1);
	string_refused("\"\\'\"", 4, "bad escape", 1);
	string_refused("\"\\U0041\"", 8, "bad escape", 1);
	string_refused("\"\\u12\"", 6, "bad \\u escape", 1);
	string_refused("\"\\u12G4\"", 8, "bad \\u escape", 1);
	string_refused("\"\\u 123\"", 8, "bad \\u escape", 1);
	string_refused("\"\\u004", 6, "bad \\u escape", 1);
	string_refused("\"ab\\u0000\"", 10, "\\u0000", 3);
	string_refused("\"abc\\", 5, "bad escape", 4);
	string_refused("\"abc", 4, "unterminated", 4);
	string_refused("\"", 1, "unterminated", 1);
	string_refused("abc", 3, "missing string", 0);
	string_refused("", 0, "missing string", 0);
}

static void control_characters_are_refused_inside_strings(void)
{
	for (int c = 0; c < 0x20; c++) {
		char s[5] = {'"', 'a', (char)c, 'b', '"'};
		string_refused(s, 5, "control character", 2);
	}
	string_is("\"a\x7f" "b\"", "a\x7f" "b", 3); /* DEL is not a control character in JSON */
}

/* tpfs_json_whole on json: its result, the value, and where it stopped. */
static void whole_is(const char *json, int rc, uint64_t value, size_t end)
{
	struct text t;
	struct tpfs_json *j = open_s(&t, json);
	uint64_t v = 12345;
	int got = tpfs_json_whole(j, &v);
	CHECKF(got == rc, "%s: %d, not %d", json, got, rc);
	if (rc == 1)
		CHECKF(v == value, "%s: %llu", json, (unsigned long long)v);
	CHECKF(j->i == end, "%s: stopped at %zu, not %zu", json, j->i, end);
	CHECKF((j->why != NULL) == (rc < 0), "%s: why %s", json, j->why ? j->why : "(none)");
	done(&t);
}

static void whole_numbers_are_plain_digits_below_two_to_the_53(void)
{
	whole_is("0", 1, 0, 1);
	whole_is("7", 1, 7, 1);
	whole_is("  42 ", 1, 42, 4);
	whole_is("123,", 1, 123, 3);
	whole_is("4294967296", 1, 4294967296ull, 10);
	whole_is("9007199254740991", 1, 9007199254740991ull, 16); /* 2^53 - 1 */
	/* any other number: 0, nothing consumed but the spaces, no error */
	whole_is("9007199254740992", 0, 0, 0);                    /* 2^53 */
	whole_is("9007199254740993", 0, 0, 0);
	whole_is("18446744073709551615", 0, 0, 0);                /* 2^64 - 1 */
	whole_is("18446744073709551616", 0, 0, 0);
	whole_is("123456789012345678901234567890", 0, 0, 0);
	whole_is("1.5", 0, 0, 0);
	whole_is("1.0", 0, 0, 0);
	whole_is("0.0", 0, 0, 0);
	whole_is("1e3", 0, 0, 0);
	whole_is("1E+3", 0, 0, 0);
	whole_is("10e-1", 0, 0, 0);
	whole_is("-1", 0, 0, 0);
	whole_is("-0", 0, 0, 0);
	whole_is(" -5", 0, 0, 1);
	/* not a number at all: 0 */
	whole_is("\"1\"", 0, 0, 0);
	whole_is("+1", 0, 0, 0);
	whole_is(".5", 0, 0, 0);
	whole_is("null", 0, 0, 0);
	whole_is("", 0, 0, 0);
	/* a syntax error: -1 */
	whole_is("01", -1, 0, 0);
	whole_is("00", -1, 0, 0);
	whole_is("-01", -1, 0, 1);
	whole_is("-", -1, 0, 1);
	whole_is("-a", -1, 0, 1);
	whole_is("1.", -1, 0, 2);
	whole_is("1.e3", -1, 0, 2);
	whole_is("1e", -1, 0, 2);
	whole_is("1e+", -1, 0, 3);
	/* a number that is not whole is still a value tpfs_json_skip reads */
	const char *others[] = {"-1", "1.5", "9007199254740992", "-0.5e-7", "0"};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		struct text t;
		struct tpfs_json *j = open_s(&t, others[i]);
		CHECKF(tpfs_json_skip(j) && tpfs_json_end(j, true), "%s", others[i]);
		done(&t);
	}
}

/* n arrays, or n objects {"a": ...}, one inside the other. */
static char *nested(int n, bool objects, size_t *len)
{
	char *s = malloc((size_t)n * 6 + 8);
	size_t k = 0;
	for (int i = 0; i < n; i++) {
		if (objects) {
			memcpy(s + k, "{\"a\":", 5);
			k += 5;
		} else {
			s[k++] = '[';
		}
	}
	if (objects)
		s[k++] = '1';
	for (int i = 0; i < n; i++)
		s[k++] = objects ? '}' : ']';
	*len = k;
	return s;
}

static void nesting_stops_past_1000_levels(void)
{
	for (int objects = 0; objects < 2; objects++) {
		for (int n = 998; n <= 1002; n++) {
			size_t len;
			char *s = nested(n, objects, &len);
			struct text t;
			struct tpfs_json *j = open_n(&t, s, len);
			bool ok = tpfs_json_skip(j) && tpfs_json_end(j, true);
			CHECKF(ok == (n <= 1000), "%d levels of %s: %s", n,
			       objects ? "objects" : "arrays", j->why ? j->why : "accepted");
			if (!ok)
				CHECK(j->why && strstr(j->why, "1000"));
			/* the depth is back to 0 after a whole value */
			if (ok)
				CHECK(j->depth == 0);
			done(&t);
			free(s);
		}
	}
}

static bool skips(const char *json)
{
	struct text t;
	struct tpfs_json *j = open_s(&t, json);
	bool ok = tpfs_json_skip(j) && tpfs_json_end(j, false);
	done(&t);
	return ok;
}

static const char *skip_error(const char *json)
{
	struct text t;
	struct tpfs_json *j = open_s(&t, json);
	if (tpfs_json_skip(j))
		tpfs_json_end(j, false);
	const char *why = j->why;
	done(&t);
	return why ? why : "";
}

static void skip_reads_any_value_and_finds_repeated_keys(void)
{
	const char *good[] = {
		"{}", "[]", "null", "true", "false", "0", "-1.5e+3", "\"s\"",
		" { \"a\" : [ 1 , 2 , { \"b\" : null } ] , \"c\" : \"\\u00e9\" } ",
		"{\"a\":{\"x\":1},\"b\":{\"x\":1}}", /* one key in two objects */
		"[{\"a\":1},{\"a\":1}]",
		"{\"a\":1,\"A\":2,\"a \":3}",
		"\t\r\n[\t1\r,\n2]\n",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECKF(skips(good[i]), "%s: %s", good[i], skip_error(good[i]));
	const struct {
		const char *json, *why;
	} bad[] = {
		{"{\"a\":1,\"a\":2}", "appears twice"},
		{"{\"a\":1,\"b\":{\"c\":1,\"c\":2}}", "appears twice"},
		{"[{\"k\":1,\"j\":2,\"k\":3}]", "appears twice"},
		{"{\"a\":1,\"\\u0061\":2}", "appears twice"}, /* the same key unescaped */
		{"{\"a\":1 \"b\":2}", "a missing ',' or '}'"},
		{"[1 2]", "a missing ',' or ']'"},
		{"{a:1}", "a key that is not a string"},
		{"{\"a\" 1}", "a missing ':'"},
		{"{\"a\":1,}", "a key that is not a string"},
		{"[1,]", "an unexpected character"},
		{"[", "a missing value"},
		{"{\"a\":", "a missing value"},
		{"tru", "an unexpected character"},
		{"nul", "an unexpected character"},
		{"'a'", "an unexpected character"},
		{"[01]", "leading zero"},
		{"{} {}", "whitespace"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = skip_error(bad[i].json);
		CHECKF(strstr(why, bad[i].why) != NULL, "%s: '%s', not '%s'", bad[i].json, why,
		       bad[i].why);
	}
}

static void repeated_finds_a_key_given_twice(void)
{
	char a[] = "b", b[] = "a", c[] = "b", d[] = "c";
	char *keys[] = {a, b, c, d};
	const char *r = tpfs_json_repeated(keys, 4);
	CHECK(r && strcmp(r, "b") == 0);
	char *unique[] = {d, b, a};
	CHECK(tpfs_json_repeated(unique, 3) == NULL);
	CHECK(tpfs_json_repeated(unique, 1) == NULL);
	CHECK(tpfs_json_repeated(NULL, 0) == NULL);
}

static void objects_and_arrays_are_walked_member_by_member(void)
{
	struct text t;
	struct tpfs_json *j = open_s(&t, " {\"a\\tb\": [1, 2], \"c\": null, \"d\": {}} ");
	bool first = true;
	char *key;
	CHECK(tpfs_json_object(j));
	CHECK(tpfs_json_member(j, &first, &key) == 1 && strcmp(key, "a\tb") == 0);
	CHECK(tpfs_json_array(j));
	bool efirst = true;
	uint64_t v;
	CHECK(tpfs_json_element(j, &efirst) == 1 && tpfs_json_whole(j, &v) == 1 && v == 1);
	CHECK(tpfs_json_element(j, &efirst) == 1 && tpfs_json_whole(j, &v) == 1 && v == 2);
	CHECK(tpfs_json_element(j, &efirst) == 0);
	CHECK(tpfs_json_member(j, &first, &key) == 1 && strcmp(key, "c") == 0);
	CHECK(tpfs_json_null(j));
	CHECK(tpfs_json_member(j, &first, &key) == 1 && strcmp(key, "d") == 0);
	CHECK(tpfs_json_object(j));
	bool dfirst = true;
	CHECK(tpfs_json_member(j, &dfirst, &key) == 0);
	CHECK(tpfs_json_member(j, &first, &key) == 0);
	CHECK(j->depth == 0 && j->why == NULL);
	CHECK(tpfs_json_end(j, true));
	done(&t);

	j = open_s(&t, "{\"c\": null, \"d\": {}}");
	first = true;
	CHECK(tpfs_json_object(j));
	CHECK(tpfs_json_member(j, &first, &key) == 1 && strcmp(key, "c") == 0);
	CHECK(tpfs_json_null(j));
	CHECK(tpfs_json_member(j, &first, &key) == 1 && strcmp(key, "d") == 0);
	CHECK(tpfs_json_peek(j) == '{');
	CHECK(tpfs_json_skip(j));
	CHECK(tpfs_json_member(j, &first, &key) == 0);
	CHECK(j->depth == 0);
	CHECK(tpfs_json_end(j, true));
	CHECK(tpfs_json_peek(j) == 0);
	done(&t);

	/* null is taken only when it is next */
	j = open_s(&t, " nul");
	CHECK(!tpfs_json_null(j) && j->why == NULL);
	done(&t);
	j = open_s(&t, "\"null\"");
	CHECK(!tpfs_json_null(j) && j->why == NULL && j->i == 0);
	done(&t);

	/* opening the wrong kind fails */
	j = open_s(&t, "[1]");
	CHECK(!tpfs_json_object(j));
	CHECK(j->why && strstr(j->why, "'{'"));
	done(&t);
	j = open_s(&t, "{}");
	CHECK(!tpfs_json_array(j));
	CHECK(j->why && strstr(j->why, "'['"));
	done(&t);
}

static void the_first_error_is_kept(void)
{
	struct text t;
	struct tpfs_json *j = open_s(&t, "[01, \"x\", 2]");
	CHECK(tpfs_json_array(j));
	bool first = true;
	CHECK(tpfs_json_element(j, &first) == 1);
	uint64_t v;
	CHECK(tpfs_json_whole(j, &v) == -1);
	const char *why = j->why;
	size_t at = j->at;
	CHECK(why && strstr(why, "leading zero") && at == 1);
	/* every later call fails and leaves the first error */
	CHECK(tpfs_json_element(j, &first) == -1);
	CHECK(tpfs_json_peek(j) == 0);
	char *s;
	size_t n;
	CHECK(!tpfs_json_string(j, &s, &n));
	CHECK(tpfs_json_whole(j, &v) == -1);
	CHECK(!tpfs_json_skip(j));
	CHECK(!tpfs_json_end(j, false));
	CHECK(!tpfs_json_fail(j, "another"));
	CHECK(j->why == why && j->at == at);
	done(&t);
}

static void the_end_allows_spaces_or_whitespace(void)
{
	const struct {
		const char *json;
		size_t n;
		bool spaces_ok, whitespace_ok;
		size_t at;
	} t[] = {
		{"{}", 2, true, true, 0},
		{"{}   ", 5, true, true, 0},
		{"{}\n", 3, false, true, 2},
		{"{} \t", 4, false, true, 3},
		{"{}\r\n", 4, false, true, 2},
		{"{} x", 4, false, false, 3},
		{"{}\f", 3, false, false, 2}, /* form feed is not JSON whitespace */
		{"{}\v", 3, false, false, 2},
		{"{} \0", 4, false, false, 3}, /* a NUL inside the text */
		{"{}}", 3, false, false, 2},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = t[i].n;
		for (int spaces = 0; spaces < 2; spaces++) {
			struct text x;
			struct tpfs_json *j = open_n(&x, t[i].json, n);
			CHECK(tpfs_json_skip(j));
			bool want = spaces ? t[i].spaces_ok : t[i].whitespace_ok;
			bool got = tpfs_json_end(j, spaces);
			CHECKF(got == want, "'%s' spaces_only %d", t[i].json, spaces);
			if (!got) {
				CHECKF(j->at == t[i].at, "'%s': at %zu", t[i].json, j->at);
				CHECK(j->why && strstr(j->why, spaces ? "spaces" : "whitespace"));
			}
			done(&x);
		}
	}
}

/* A string literal and its length, NULs inside included. */
#define S(lit) lit, sizeof(lit) - 1

static void utf8_validity_follows_rfc_3629(void)
{
	/* RFC 3629, section 4: UTF8-1 = %x00-7F; UTF8-2 = %xC2-DF UTF8-tail;
	 * UTF8-3 = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
	 * %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail ); UTF8-4 = %xF0
	 * %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) / %xF4 %x80-8F 2(
	 * UTF8-tail ); UTF8-tail = %x80-BF. bad: the offset of the first byte
	 * of the first sequence that breaks it. */
	static const struct {
		const char *s;
		size_t n;
		bool valid;
		size_t bad;
	} t[] = {
		{S(""), true, 0},
		{S("plain ascii"), true, 0},
		{S("a\0b"), true, 0},                 /* U+0000 is UTF-8 */
		{S("\x7f"), true, 0},
		{S("\xc2\x80"), true, 0},             /* U+0080 */
		{S("\xdf\xbf"), true, 0},             /* U+07FF */
		{S("\xe0\xa0\x80"), true, 0},         /* U+0800 */
		{S("\xe1\x80\x80"), true, 0},
		{S("\xec\xbf\xbf"), true, 0},
		{S("\xed\x9f\xbf"), true, 0},         /* U+D7FF */
		{S("\xee\x80\x80"), true, 0},         /* U+E000 */
		{S("\xef\xbf\xbf"), true, 0},         /* U+FFFF */
		{S("\xf0\x90\x80\x80"), true, 0},     /* U+10000 */
		{S("\xf1\x80\x80\x80"), true, 0},
		{S("\xf3\xbf\xbf\xbf"), true, 0},
		{S("\xf4\x8f\xbf\xbf"), true, 0},     /* U+10FFFF */
		{S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), true, 0},
		/* tails without a lead */
		{S("\x80"), false, 0},
		{S("a\xbf"), false, 1},
		{S("\xc3\xa9\x80"), false, 2},
		/* overlong forms */
		{S("\xc0\x80"), false, 0},            /* U+0000 in two bytes */
		{S("\xc0\xaf"), false, 0},
		{S("\xc1\xbf"), false, 0},
		{S("\xe0\x80\x80"), false, 0},
		{S("\xe0\x9f\xbf"), false, 0},        /* U+07FF in three bytes */
		{S("\xf0\x80\x80\x80"), false, 0},
		{S("\xf0\x8f\xbf\xbf"), false, 0},    /* U+FFFF in four bytes */
		{S("ok\xe0\x80\xaf"), false, 2},
		/* UTF-16 surrogates */
		{S("\xed\xa0\x80"), false, 0},        /* U+D800 */
		{S("\xed\xbf\xbf"), false, 0},        /* U+DFFF */
		{S("xyz\xed\xa0\xbd\xed\xb8\x80"), false, 3}, /* a pair, CESU-8 style */
		/* past U+10FFFF */
		{S("\xf4\x90\x80\x80"), false, 0},    /* U+110000 */
		{S("\xf5\x80\x80\x80"), false, 0},
		{S("\xf7\xbf\xbf\xbf"), false, 0},
		{S("\xf8\x88\x80\x80\x80"), false, 0}, /* the old five-byte form */
		{S("\xfc\x84\x80\x80\x80\x80"), false, 0},
		{S("\xfe"), false, 0},
		{S("\xff"), false, 0},
		/* truncated sequences */
		{S("\xc2"), false, 0},
		{S("ab\xe2\x82"), false, 2},
		{S("\xf0\x9f\x98"), false, 0},
		{S("\xe2\x82" "A"), false, 0},
		{S("\xe2" "A\x82"), false, 0},
		{S("\xf0\x9f\x98" "A"), false, 0},
		{S("\xc3\xa9\xc3"), false, 2},
		{S("\xc3" "\0"), false, 0},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		/* an exact-length copy, so that nothing past n is read */
		char *s = malloc(t[i].n ? t[i].n : 1);
		memcpy(s, t[i].s, t[i].n);
		size_t bad = 999;
		bool valid = tpfs_json_utf8_valid(s, t[i].n, &bad);
		CHECKF(valid == t[i].valid, "row %zu: %s", i, valid ? "valid" : "invalid");
		if (!t[i].valid)
			CHECKF(bad == t[i].bad, "row %zu: bad at %zu, not %zu", i, bad, t[i].bad);
		CHECK(tpfs_json_utf8_valid(s, t[i].n, NULL) == t[i].valid);
		free(s);
	}
	/* a sequence cut short by n is truncated, even where the bytes after
	 * n would complete it */
	const char *whole[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
	for (size_t i = 0; i < 3; i++) {
		char buf[8];
		size_t len = strlen(whole[i]);
		snprintf(buf, sizeof(buf), "ab%s", whole[i]);
		for (size_t n = 3; n < 2 + len; n++) {
			size_t bad = 999;
			CHECKF(!tpfs_json_utf8_valid(buf, n, &bad) && bad == 2, "%zu of %zu", n,
			       len + 2);
		}
		CHECK(tpfs_json_utf8_valid(buf, len + 2, NULL));
	}
	/* every lead byte followed by every tail byte: valid exactly as the
	 * grammar above says */
	for (int a = 0xc0; a <= 0xff; a++) {
		for (int b = 0; b <= 0xff; b++) {
			unsigned char s[4] = {(unsigned char)a, (unsigned char)b, 0x80, 0x80};
			size_t n = a < 0xe0 ? 2 : a < 0xf0 ? 3 : 4;
			bool tail = b >= 0x80 && b <= 0xbf;
			bool want = a >= 0xc2 && a <= 0xdf   ? tail
				    : a == 0xe0             ? b >= 0xa0 && b <= 0xbf
				    : a >= 0xe1 && a <= 0xec ? tail
				    : a == 0xed             ? b >= 0x80 && b <= 0x9f
				    : a >= 0xee && a <= 0xef ? tail
				    : a == 0xf0             ? b >= 0x90 && b <= 0xbf
				    : a >= 0xf1 && a <= 0xf3 ? tail
				    : a == 0xf4             ? b >= 0x80 && b <= 0x8f
							    : false;
			size_t bad = 999;
			bool got = tpfs_json_utf8_valid((const char *)s, n, &bad);
			CHECKF(got == want, "%02x %02x: %d", a, b, got);
			if (!got)
				CHECK(bad == 0);
		}
	}
}

int main(void)
{
	RUN(strings_unescape_every_escape);
	RUN(surrogate_pairs_become_four_byte_utf8);
	RUN(lone_surrogates_are_refused_at_their_escape);
	RUN(bad_escapes_and_nul_are_refused);
	RUN(control_characters_are_refused_inside_strings);
	RUN(whole_numbers_are_plain_digits_below_two_to_the_53);
	RUN(nesting_stops_past_1000_levels);
	RUN(skip_reads_any_value_and_finds_repeated_keys);
	RUN(repeated_finds_a_key_given_twice);
	RUN(objects_and_arrays_are_walked_member_by_member);
	RUN(the_first_error_is_kept);
	RUN(the_end_allows_spaces_or_whitespace);
	RUN(utf8_validity_follows_rfc_3629);
	return check_done();
}
