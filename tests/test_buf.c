/*
 * The small base modules that build text and hold memory: error (messages
 * that stay one line), buf (the growable buffer: appends, printf, JSON
 * strings read back with cJSON, shapes, %XX escapes, taking the contents,
 * allocation failure) and arena (many pieces, alignment, large pieces,
 * copies). Expectations are written here by hand or built byte by byte.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "tpfs/arena.h"
#include "tpfs/buf.h"
#include "tpfs/error.h"

/* Some tests ask malloc for more than can be had, as an allocation failure:
 * under AddressSanitizer, which aborts on such a request by default, let it
 * return NULL as the C library does. (Unused without it.) */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

/* ---- error --------------------------------------------------------------- */

static void an_error_is_formatted_and_its_code_returned(void)
{
	struct tpfs_error e;
	memset(&e, 'X', sizeof(e));
	CHECK(tpfs_error(&e, -EINVAL, "%s: tensor '%s': %d bytes", "a.safetensors", "w", 12) ==
	      -EINVAL);
	CHECK(strcmp(e.msg, "a.safetensors: tensor 'w': 12 bytes") == 0);
	CHECK(tpfs_error(&e, -ENOMEM, "out of memory") == -ENOMEM);
	CHECK(strcmp(e.msg, "out of memory") == 0);
	/* no carrier: the code all the same */
	CHECK(tpfs_error(NULL, -EIO, "%s", "ignored") == -EIO);
	CHECK(tpfs_error(&e, 0, "%s", "") == 0 && e.msg[0] == '\0');
}

static void control_bytes_in_an_error_become_percent_escapes(void)
{
	struct tpfs_error e;
	tpfs_error(&e, -EINVAL, "tensor '%s'", "a\nb\tc\x7f\x01\x1f" "d%e \xc3\xa9");
	/* control bytes and DEL as %XX (uppercase); '%', spaces and UTF-8 kept */
	CHECKF(strcmp(e.msg, "tensor 'a%0Ab%09c%7F%01%1Fd%e \xc3\xa9'") == 0, "%s", e.msg);
	tpfs_error(&e, -EINVAL, "line one\nline two\r\n");
	CHECKF(strcmp(e.msg, "line one%0Aline two%0D%0A") == 0, "%s", e.msg);
	CHECK(strchr(e.msg, '\n') == NULL);
}

static void a_long_error_is_cut_to_one_line_between_escapes(void)
{
	char name[3000];
	memset(name, '\n', sizeof(name) - 1);
	name[0] = 'x';
	name[sizeof(name) - 1] = '\0';
	struct tpfs_error e;
	tpfs_error(&e, -EINVAL, "%s", name);
	size_t n = strlen(e.msg);
	CHECK(n < TPFS_ERR_MAX);
	/* 'x' then whole "%0A"s: as many as fit */
	CHECK(n == 1 + 3 * ((TPFS_ERR_MAX - 2) / 3));
	CHECK(e.msg[0] == 'x');
	for (size_t i = 1; i + 2 < n; i += 3)
		CHECKF(memcmp(e.msg + i, "%0A", 3) == 0, "at %zu", i);
	CHECK(strchr(e.msg, '\n') == NULL);
	/* plain text is cut at the end of the carrier */
	memset(name, 'y', sizeof(name) - 1);
	tpfs_error(&e, -EINVAL, "%s", name);
	CHECK(strlen(e.msg) == TPFS_ERR_MAX - 1);
}

/* The escaped text cut as the header says: whole pieces ("a" or "%0A")
 * while they fit before the NUL. */
static void escape_keeps_whole_escapes_for_every_capacity(void)
{
	const char *src = "a\nb\x7f" "cd\x01";
	const char *pieces[] = {"a", "%0A", "b", "%7F", "c", "d", "%01"};
	for (size_t cap = 1; cap <= 20; cap++) {
		char want[32] = "";
		for (size_t i = 0; i < 7 && strlen(want) + strlen(pieces[i]) < cap; i++)
			strcat(want, pieces[i]);
		char got[32];
		memset(got, 'Z', sizeof(got));
		tpfs_error_escape(got, cap, src);
		CHECKF(strcmp(got, want) == 0, "cap %zu: '%s', not '%s'", cap, got, want);
		CHECKF(got[cap] == 'Z', "cap %zu: wrote past it", cap);
	}
	char untouched[4] = "abc";
	tpfs_error_escape(untouched, 0, "x");
	CHECK(strcmp(untouched, "abc") == 0);
}

/* ---- buf ----------------------------------------------------------------- */

static void appends_and_printf_grow_the_buffer(void)
{
	struct tpfs_buf b = {0};
	tpfs_buf_append(&b, "a\0b", 3); /* a NUL inside is kept */
	CHECK(b.len == 3 && memcmp(b.data, "a\0b", 4) == 0);
	tpfs_buf_puts(&b, "cd");
	tpfs_buf_append(&b, "zzz", 0);
	CHECK(b.len == 5 && memcmp(b.data, "a\0bcd", 6) == 0);
	/* many small appends and some long ones, against a copy made here */
	size_t cap = 1 << 20, n = 0;
	char *want = malloc(cap);
	memcpy(want, "a\0bcd", 5);
	n = 5;
	for (int i = 0; i < 20000; i++) {
		char piece[700];
		int k = snprintf(piece, sizeof(piece), "%d,", i);
		if (i % 1000 == 0) {
			memset(piece, 'L', 600);
			k = 600;
			piece[600] = '\0';
			tpfs_buf_puts(&b, piece);
		} else if (i % 2) {
			tpfs_buf_printf(&b, "%d,", i);
		} else {
			tpfs_buf_append(&b, piece, (size_t)k);
		}
		memcpy(want + n, piece, (size_t)k);
		n += (size_t)k;
	}
	CHECK(!b.oom && b.len == n && memcmp(b.data, want, n) == 0 && b.data[n] == '\0');
	CHECK(b.cap > b.len);
	/* printf of one piece longer than the buffer's first allocation */
	struct tpfs_buf c = {0};
	tpfs_buf_printf(&c, "[%0*d|%s|%.3f|%c]", 900, 7, "str", 2.5, 'q');
	char fmt[1000];
	snprintf(fmt, sizeof(fmt), "[%0*d|%s|%.3f|%c]", 900, 7, "str", 2.5, 'q');
	CHECK(c.len == strlen(fmt) && strcmp(c.data, fmt) == 0);
	free(want);
	tpfs_buf_free(&b);
	tpfs_buf_free(&c);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0 && !b.oom);
}

/* s written as a JSON string reads back with cJSON as the same bytes, and
 * holds no raw control byte (RFC 8259 forbids them). */
static void json_string_reads_back(const char *s)
{
	struct tpfs_buf b = {0};
	tpfs_buf_json_string(&b, s);
	CHECK(!b.oom && b.len >= 2 && b.data[0] == '"' && b.data[b.len - 1] == '"');
	for (size_t i = 0; i < b.len; i++)
		CHECKF((unsigned char)b.data[i] >= 0x20, "raw 0x%02x in %s", b.data[i], b.data);
	cJSON *j = cJSON_ParseWithLength(b.data, b.len);
	CHECKF(cJSON_IsString(j) && strcmp(j->valuestring, s) == 0, "%s", b.data);
	cJSON_Delete(j);
	tpfs_buf_free(&b);
}

static void json_strings_escape_what_json_needs(void)
{
	json_string_reads_back("");
	json_string_reads_back("plain");
	json_string_reads_back("quote \" backslash \\ slash /");
	json_string_reads_back("\n\r\t\b\f\x01\x1f\x7f");
	json_string_reads_back("caf\xc3\xa9 \xe2\x82\xac");
	/* every byte but NUL, alone and all together */
	char all[256];
	for (int c = 1; c < 256; c++) {
		char one[2] = {(char)c, '\0'};
		json_string_reads_back(one);
		all[c - 1] = (char)c;
	}
	all[255] = '\0';
	json_string_reads_back(all);
	/* the escapes written for quote, backslash and a control byte */
	struct tpfs_buf b = {0};
	tpfs_buf_json_string(&b, "\"\\\n\x01");
	CHECKF(strcmp(b.data, "\"\\\"\\\\\\n\\u0001\"") == 0, "%s", b.data);
	tpfs_buf_free(&b);
}

static void shapes_are_written_as_lists(void)
{
	const struct {
		uint64_t shape[4];
		uint32_t ndim;
		const char *text;
	} t[] = {
		{{0}, 0, "[]"},
		{{5}, 1, "[5]"},
		{{2, 3}, 2, "[2, 3]"},
		{{0, 7, 1}, 3, "[0, 7, 1]"},
		{{UINT64_MAX, 9007199254740993ull}, 2, "[18446744073709551615, 9007199254740993]"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct tpfs_buf b = {0};
		tpfs_buf_shape(&b, t[i].ndim ? t[i].shape : NULL, t[i].ndim);
		CHECKF(b.data && strcmp(b.data, t[i].text) == 0, "'%s'", b.data);
		tpfs_buf_free(&b);
	}
}

static void escape_writes_controls_del_and_the_extra_bytes(void)
{
	struct tpfs_buf b = {0};
	tpfs_buf_escape(&b, "a%b/c\nd\x7f e\xc3\xa9~", "%/ ~");
	CHECKF(strcmp(b.data, "a%25b%2Fc%0Ad%7F%20e\xc3\xa9%7E") == 0, "%s", b.data);
	tpfs_buf_free(&b);
	tpfs_buf_escape(&b, "100%\t", "");
	CHECKF(strcmp(b.data, "100%%09") == 0, "%s", b.data);
	tpfs_buf_free(&b);
	/* every byte: escaped exactly when it is '%', a control byte or DEL */
	for (int c = 1; c < 256; c++) {
		char s[2] = {(char)c, '\0'}, want[4];
		if (c == '%' || c < 0x20 || c == 0x7f)
			snprintf(want, sizeof(want), "%%%02X", c);
		else
			snprintf(want, sizeof(want), "%c", c);
		tpfs_buf_escape(&b, s, "%");
		CHECKF(b.data && strcmp(b.data, want) == 0, "0x%02x", c);
		tpfs_buf_free(&b);
	}
}

static void take_hands_over_the_text_and_empties_the_buffer(void)
{
	struct tpfs_buf b = {0};
	size_t len = 99;
	char *s = tpfs_buf_take(&b, &len); /* nothing appended: "" */
	CHECK(s && s[0] == '\0' && len == 0);
	free(s);
	tpfs_buf_puts(&b, "hello");
	s = tpfs_buf_take(&b, &len);
	CHECK(s && strcmp(s, "hello") == 0 && len == 5);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
	free(s);
	/* the buffer is ready for more */
	tpfs_buf_puts(&b, "again");
	s = tpfs_buf_take(&b, NULL);
	CHECK(s && strcmp(s, "again") == 0);
	free(s);
}

static void an_impossible_size_sets_oom_and_take_gives_null(void)
{
	/* a length no allocation can hold: oom is set, nothing is read from
	 * the pointer, and later appends are no-ops */
	struct tpfs_buf b = {0};
	tpfs_buf_append(&b, "x", SIZE_MAX - 8);
	CHECK(b.oom && b.len == 0);
	tpfs_buf_free(&b);
	/* the same with text already there (len + n would wrap around) */
	tpfs_buf_puts(&b, "some text first");
	tpfs_buf_append(&b, "x", SIZE_MAX - 8);
	CHECK(b.oom && b.len == 15);
	tpfs_buf_puts(&b, "more");
	tpfs_buf_printf(&b, "%d", 5);
	tpfs_buf_json_string(&b, "s");
	CHECK(b.len == 15);
	size_t len = 77;
	CHECK(tpfs_buf_take(&b, &len) == NULL);
	/* take freed it: usable again */
	CHECK(b.data == NULL && !b.oom);
	tpfs_buf_puts(&b, "ok");
	char *s = tpfs_buf_take(&b, NULL);
	CHECK(s && strcmp(s, "ok") == 0);
	free(s);
}

/* ---- arena --------------------------------------------------------------- */

static void arena_pieces_are_aligned_and_never_overlap(void)
{
	struct tpfs_arena a = {0};
	enum { N = 20000 };
	static unsigned char *p[N];
	static size_t len[N];
	const size_t aligns[] = {1, 2, 4, 8, 16, alignof(max_align_t)};
	uint32_t x = 1;
	for (size_t i = 0; i < N; i++) {
		x = x * 1664525u + 1013904223u;
		size_t align = aligns[(x >> 8) % 6];
		/* mostly small, now and then past a quarter chunk (16 KiB) */
		len[i] = i % 997 == 0 ? 20000 + (x >> 16) % 50000 : (x >> 16) % 100;
		p[i] = tpfs_arena_alloc(&a, len[i], align);
		CHECKF(p[i] != NULL, "piece %zu", i);
		if (!p[i])
			break;
		CHECKF((uintptr_t)p[i] % align == 0, "piece %zu not aligned to %zu", i, align);
		memset(p[i], (int)(i & 0xff), len[i]);
	}
	/* every piece still holds what was written into it */
	size_t bad = 0;
	for (size_t i = 0; i < N && p[i]; i++)
		for (size_t k = 0; k < len[i]; k++)
			bad += p[i][k] != (unsigned char)(i & 0xff);
	CHECKF(bad == 0, "%zu bytes overwritten", bad);
	tpfs_arena_free(&a);
	CHECK(a.chunks == NULL && a.used == 0 && a.cap == 0);
	tpfs_arena_free(&a); /* a zeroed arena */
}

static void large_pieces_and_pieces_around_them_keep_their_bytes(void)
{
	struct tpfs_arena a = {0};
	unsigned char *small1 = tpfs_arena_alloc(&a, 100, 1);
	unsigned char *big = tpfs_arena_alloc(&a, 1 << 20, 16);
	unsigned char *small2 = tpfs_arena_alloc(&a, 100, 1);
	unsigned char *exact = tpfs_arena_alloc(&a, 64 << 10, 8); /* one chunk's size */
	unsigned char *small3 = tpfs_arena_alloc(&a, 65000, 1);
	CHECK(small1 && big && small2 && exact && small3);
	if (small1 && big && small2 && exact && small3) {
		memset(small1, 1, 100);
		memset(big, 2, 1 << 20);
		memset(small2, 3, 100);
		memset(exact, 4, 64 << 10);
		memset(small3, 5, 65000);
		CHECK(small1[99] == 1 && big[0] == 2 && big[(1 << 20) - 1] == 2);
		CHECK(small2[0] == 3 && exact[0] == 4 && small3[64999] == 5);
	}
	/* a zero-byte piece is a valid pointer */
	CHECK(tpfs_arena_alloc(&a, 0, 1) != NULL);
	tpfs_arena_free(&a);
}

static void arena_strndup_copies_n_bytes_and_a_nul(void)
{
	/* leave freed memory full of 'J', so that a missing NUL shows */
	struct tpfs_arena a = {0};
	for (int i = 0; i < 4; i++) /* one chunk's worth */
		memset(tpfs_arena_alloc(&a, 16000, 1), 'J', 16000);
	tpfs_arena_free(&a);
	char *s = tpfs_arena_strndup(&a, "hello world", 5);
	CHECK(s && strcmp(s, "hello") == 0);
	/* n bytes, NULs included, unlike strndup(3) */
	char *t = tpfs_arena_strndup(&a, "ab\0cd", 5);
	CHECK(t && memcmp(t, "ab\0cd\0", 6) == 0);
	char *e = tpfs_arena_strndup(&a, "", 0);
	CHECK(e && e[0] == '\0');
	CHECK(s && strcmp(s, "hello") == 0); /* the first copy is untouched */
	tpfs_arena_free(&a);
}

static void an_impossible_arena_piece_is_null(void)
{
	struct tpfs_arena a = {0};
	CHECK(tpfs_arena_alloc(&a, SIZE_MAX, 1) == NULL);
	CHECK(tpfs_arena_alloc(&a, SIZE_MAX - 8, 8) == NULL);
	char *p = tpfs_arena_alloc(&a, 10, 1);
	CHECK(p != NULL);
	CHECK(tpfs_arena_alloc(&a, SIZE_MAX - 16, 1) == NULL);
	tpfs_arena_free(&a);
}

int main(void)
{
	RUN(an_error_is_formatted_and_its_code_returned);
	RUN(control_bytes_in_an_error_become_percent_escapes);
	RUN(a_long_error_is_cut_to_one_line_between_escapes);
	RUN(escape_keeps_whole_escapes_for_every_capacity);
	RUN(appends_and_printf_grow_the_buffer);
	RUN(json_strings_escape_what_json_needs);
	RUN(shapes_are_written_as_lists);
	RUN(escape_writes_controls_del_and_the_extra_bytes);
	RUN(take_hands_over_the_text_and_empties_the_buffer);
	RUN(an_impossible_size_sets_oom_and_take_gives_null);
	RUN(arena_pieces_are_aligned_and_never_overlap);
	RUN(large_pieces_and_pieces_around_them_keep_their_bytes);
	RUN(arena_strndup_copies_n_bytes_and_a_nul);
	RUN(an_impossible_arena_piece_is_null);
	return check_done();
}
