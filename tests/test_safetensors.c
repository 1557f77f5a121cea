/*
 * Header validation: one bad file per rule, each refused with its own
 * message naming the file (and the tensor where there is one); files that
 * real writers produce, all accepted; every real file in the shared test
 * data parsed with the tensor counts its provenance lists.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tpfs/safetensors.h"
#include "tpfs/error.h"

#define FILE_NAME "case.safetensors"

static unsigned char buf[1 << 16];

/* 8-byte little-endian length, the header text, then data_len data bytes. */
static size_t make(const char *json, size_t data_len)
{
	size_t n = strlen(json);
	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
	memcpy(buf + 8, json, n);
	for (size_t i = 0; i < data_len; i++)
		buf[8 + n + i] = (unsigned char)i;
	return 8 + n + data_len;
}

static struct tpfs_st_header *parse_ok(const char *json, size_t data_len)
{
	size_t len = make(json, data_len);
	struct tpfs_st_header *h = NULL;
	struct tpfs_error e = {{0}};
	int rc = tpfs_st_parse(FILE_NAME, buf, len, len, &h, &e);
	CHECKF(rc == 0 && h, "refused: %s", e.msg);
	return h;
}

/* The file is refused with a message naming it and containing frag (and,
 * if not NULL, the tensor's name). */
static void refused(const char *json, size_t data_len, const char *tensor,
		    const char *frag)
{
	size_t len = make(json, data_len);
	struct tpfs_st_header *h = NULL;
	struct tpfs_error e = {{0}};
	int rc = tpfs_st_parse(FILE_NAME, buf, len, len, &h, &e);
	CHECKF(rc == -EINVAL && h == NULL, "accepted: %s", json);
	CHECK_CONTAINS(e.msg, FILE_NAME ": ");
	CHECK_CONTAINS(e.msg, frag);
	CHECKF(strchr(e.msg, '\n') == NULL, "message spans lines: %s", e.msg);
	if (tensor) {
		char t[128];
		snprintf(t, sizeof(t), "'%s'", tensor);
		CHECK_CONTAINS(e.msg, t);
	}
	tpfs_st_free(h);
}

static void raw_refused(size_t len, uint64_t file_size, const char *frag)
{
	struct tpfs_st_header *h = NULL;
	struct tpfs_error e = {{0}};
	int rc = tpfs_st_parse(FILE_NAME, buf, len, file_size, &h, &e);
	CHECK(rc == -EINVAL && h == NULL);
	CHECK_CONTAINS(e.msg, FILE_NAME ": ");
	CHECK_CONTAINS(e.msg, frag);
}

static void put_le64(uint64_t v)
{
	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)(v >> (8 * i));
}

static void file_shorter_than_the_length_field_is_refused(void)
{
	memset(buf, 0, 8);
	raw_refused(5, 5, "too short for the 8-byte header length");
	raw_refused(0, 0, "too short for the 8-byte header length");
}

static void header_length_over_the_limit_is_refused(void)
{
	put_le64(100000001);
	raw_refused(8, 200000000, "exceeds the limit of 100000000 bytes");
	put_le64(UINT64_MAX); /* 8 + N would wrap around */
	raw_refused(8, 64, "exceeds the limit");
}

static void header_length_past_the_end_of_the_file_is_refused(void)
{
	put_le64(40);
	memcpy(buf + 8, "{}", 2);
	raw_refused(10, 10, "runs past the end of the file (10 bytes)");
}

static void header_that_is_not_utf8_is_refused(void)
{
	refused("{\"a\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
		NULL, "not valid UTF-8");
	/* An overlong encoding of '/' and a lone surrogate. */
	refused("{\"\xc0\xaf\":{}}", 0, NULL, "not valid UTF-8");
	refused("{\"\xed\xa0\x80\":{}}", 0, NULL, "not valid UTF-8");
}

static void header_that_is_not_json_is_refused(void)
{
	refused("{\"a\": {\"dtype\": \"U8\",", 0, NULL, "not valid JSON");
	refused("{\"a\" 1}", 0, NULL, "not valid JSON (a missing ':' at byte 5");
	refused("{\"a\":tru}", 0, NULL, "not valid JSON (an unexpected character");
	refused("", 0, NULL, "header does not start with '{'");
}

static void header_that_is_not_an_object_is_refused(void)
{
	refused("[1, 2]", 0, NULL, "header does not start with '{'");
	/* an index, unlike a header, may start with whitespace; it must still
	 * be an object */
	struct tpfs_st_index *ix = NULL;
	struct tpfs_error e;
	CHECK(tpfs_st_index_parse("i.json", strdup(" [1]"), 4, &ix, &e) == -EINVAL);
	CHECK_CONTAINS(e.msg, "index JSON is not an object");
}

static void bytes_after_the_json_object_are_refused(void)
{
	refused("{}  x", 0, NULL, "bytes other than spaces after the JSON object");
	refused("{} {}", 0, NULL, "bytes other than spaces after the JSON object");
}

static void trailing_nul_padding_is_refused(void)
{
	const char json[] = "{}\0\0\0\0\0\0";
	put_le64(sizeof(json) - 1);
	memcpy(buf + 8, json, sizeof(json) - 1);
	raw_refused(8 + sizeof(json) - 1, 8 + sizeof(json) - 1,
		    "bytes other than spaces after the JSON object");
}

static void header_must_start_with_a_brace_and_end_with_spaces(void)
{
	refused(" {}", 0, NULL, "header does not start with '{'");
	refused("\xef\xbb\xbf{}", 0, NULL, "header does not start with '{'"); /* BOM */
	refused("{}\t", 0, NULL, "bytes other than spaces after the JSON object (byte 2");
	refused("{}\n", 0, NULL, "bytes other than spaces");
}

/* \uXXXX escapes are UTF-16: a pair makes one character of four UTF-8
 * bytes, and half a pair is no character at all (once reported as "out of
 * memory"). */
static void surrogate_escapes_pair_up_or_are_refused(void)
{
	struct tpfs_st_header *h = parse_ok(
		"{\"x\\ud83d\\ude00\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
	if (h) /* U+1F600: F0 9F 98 80 */
		CHECK(strcmp(h->tensors[0].name, "x\xf0\x9f\x98\x80") == 0);
	tpfs_st_free(h);
	refused("{\"a\\ud800\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
		1, NULL, "not valid JSON (a lone UTF-16 surrogate (a high one without its "
			 "low one) at byte 3");
	refused("{\"a\\udc00b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
		1, NULL, "a lone UTF-16 surrogate (a low one)");
	refused("{\"a\\ud800\\u0041\":{}}", 0, NULL, "a lone UTF-16 surrogate");
	/* in __metadata__ too */
	refused("{\"__metadata__\":{\"k\":\"\\udbff\"}}", 0, NULL, "a lone UTF-16 surrogate");
}

static void strings_with_nul_or_raw_control_characters_are_refused(void)
{
	refused("{\"a\\u0000evil\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
		1, NULL, "not valid JSON (\\u0000 (NUL) inside a string at byte");
	refused("{\"w\":{\"dtype\":\"U8\\u0000junk\",\"shape\":[1],\"data_offsets\":[0,1]}}",
		1, NULL, "\\u0000 (NUL) inside a string");
	refused("{\"a\nb\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
		NULL, "a control character inside a string at byte 3");
	refused("{\"a\\qb\":{}}", 0, NULL, "a bad escape");
	/* An escaped newline is a fine name character. */
	struct tpfs_st_header *h = parse_ok(
		"{\"a\\nb\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
	if (h)
		CHECK(strcmp(h->tensors[0].name, "a\nb") == 0);
	tpfs_st_free(h);
}

static void numbers_must_be_plain_digits(void)
{
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}", 1,
		"w", "shape entry 0 is not a whole number");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1e0],\"data_offsets\":[0,1]}}", 1,
		"w", "shape entry 0 is not a whole number");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[-0],\"data_offsets\":[0,0]}}", 0,
		"w", "shape entry 0 is not a whole number");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1e0]}}", 1,
		"w", "\"data_offsets\" must be two whole numbers");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}", 1,
		NULL, "a number with a leading zero");
	/* An unknown key may hold any number; only shapes and offsets are read. */
	struct tpfs_st_header *h = parse_ok(
		"{\"w\":{\"dtype\":\"U8\",\"x\":-1.5e3,\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
	if (h)
		CHECK(h->tensors[0].shape[0] == 2);
	tpfs_st_free(h);
}

/* 64 dimensions (NumPy 2's most) are read; 65 are refused. */
static void more_than_64_dimensions_are_refused(void)
{
	char json[512];
	for (int dims = 64; dims <= 65; dims++) {
		int n = snprintf(json, sizeof(json), "{\"w\":{\"dtype\":\"U8\",\"shape\":[");
		for (int i = 0; i < dims; i++)
			n += snprintf(json + n, sizeof(json) - (size_t)n, i ? ",1" : "1");
		snprintf(json + n, sizeof(json) - (size_t)n, "],\"data_offsets\":[0,1]}}");
		if (dims == 64) {
			struct tpfs_st_header *h = parse_ok(json, 1);
			CHECK(h && h->tensors[0].ndim == 64);
			tpfs_st_free(h);
		} else {
			refused(json, 1, "w", "65 dimensions, more than 64");
		}
	}
}

static void tensor_entry_that_is_not_an_object_is_refused(void)
{
	refused("{\"w\": 5}", 0, "w", "entry is not an object");
}

static void dtype_missing_or_wrong_is_refused(void)
{
	refused("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "w", "no \"dtype\"");
	refused("{\"w\":{\"dtype\":8,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "w",
		"\"dtype\" is not a string");
	refused("{\"w\":{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "w",
		"unknown dtype 'F7'");
	refused("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "w",
		"unknown dtype 'f32'");
}

static void shape_that_is_not_whole_numbers_is_refused(void)
{
	refused("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, "w", "no \"shape\"");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":5,\"data_offsets\":[0,5]}}", 5, "w",
		"\"shape\" is not an array");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, "w",
		"shape entry 0 is not a whole number from 0 to 2^53");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,2.5],\"data_offsets\":[0,0]}}", 0,
		"w", "shape entry 1 is not a whole number");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[\"2\"],\"data_offsets\":[0,2]}}", 2,
		"w", "shape entry 0");
	/* 2^53 and above cannot be told apart from their neighbours in a double. */
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[9007199254740992],"
		"\"data_offsets\":[0,0]}}",
		0, "w", "shape entry 0");
}

static void data_offsets_that_are_not_two_whole_numbers_are_refused(void)
{
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, "w", "no \"data_offsets\"");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1, "w",
		"must be two whole numbers");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, "w",
		"must be two whole numbers");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0.5,1]}}", 1, "w",
		"must be two whole numbers");
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1, "w",
		"must be two whole numbers");
}

static void data_offsets_begin_after_end_is_refused(void)
{
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]}}", 4, "w",
		"begin 4 is after end 2");
}

static void element_count_overflow_is_refused(void)
{
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,2],"
		"\"data_offsets\":[0,0]}}",
		0, "w", "overflows 64 bits");
	/* The element count fits but the bit count does not. */
	refused("{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],"
		"\"data_offsets\":[0,0]}}",
		0, "w", "overflows 64 bits");
}

static void zero_dimension_makes_an_empty_tensor_despite_huge_others(void)
{
	struct tpfs_st_header *h = parse_ok(
		"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0],"
		"\"data_offsets\":[0,0]}}",
		0);
	if (h)
		CHECK(h->tensors[0].nelem == 0);
	tpfs_st_free(h);
}

static void byte_length_must_match_shape_and_dtype(void)
{
	refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "w",
		"needs 8 bytes but data_offsets [0, 4] hold 4");
	refused("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,14]}}", 14,
		"w", "needs 12 bytes");
}

static void sub_byte_dtype_must_fill_whole_bytes(void)
{
	refused("{\"w\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2, "w",
		"do not fill a whole number of bytes");
	refused("{\"w\":{\"dtype\":\"F6_E2M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
		"w", "do not fill a whole number of bytes");
	struct tpfs_st_header *h = parse_ok(
		"{\"w\":{\"dtype\":\"F6_E3M2\",\"shape\":[4],\"data_offsets\":[0,3]}}", 3);
	tpfs_st_free(h);
}

static void data_offsets_past_the_data_buffer_are_refused(void)
{
	refused("{\"w\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 4, "w",
		"end 8 is past the end of the data buffer (4 bytes)");
}

static void overlapping_tensors_are_refused(void)
{
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
		"\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
		6, "a", "overlap");
	/* An empty tensor inside another one's bytes overlaps too. */
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
		"\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]}}",
		4, "e", "overlap");
}

static void holes_between_tensors_are_refused(void)
{
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
		"\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}",
		6, "b", "data bytes 2..4 before tensor 'b' belong to no tensor");
	refused("{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}", 3, "b",
		"belong to no tensor");
}

static void bytes_after_the_last_tensor_are_refused(void)
{
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 5, NULL,
		"3 bytes follow the last tensor's data");
	refused("{}", 1, NULL, "1 bytes follow the last tensor's data");
}

static void duplicate_keys_are_refused(void)
{
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
		"\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
		2, "a", "duplicate key 'a' in the header");
	refused("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"I8\",\"shape\":[1],"
		"\"data_offsets\":[0,1]}}",
		1, "a", "duplicate key 'dtype' inside 'a'");
	refused("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, NULL,
		"duplicate key 'k' inside '__metadata__'");
}

static void metadata_must_be_a_string_map_or_null(void)
{
	refused("{\"__metadata__\":\"text\"}", 0, NULL,
		"__metadata__ must be an object of strings or null");
	refused("{\"__metadata__\":[]}", 0, NULL, "__metadata__ must be an object");
	refused("{\"__metadata__\":{\"version\":2}}", 0, NULL,
		"value of key 'version' is not a string");
	refused("{\"__metadata__\":{\"nested\":{}}}", 0, NULL,
		"value of key 'nested' is not a string");
}

static void metadata_absent_null_and_map_are_told_apart(void)
{
	struct tpfs_st_header *h = parse_ok("{}", 0);
	if (h)
		CHECK(h->meta == TPFS_ST_META_ABSENT && h->metadata_json == NULL);
	tpfs_st_free(h);
	h = parse_ok("{\"__metadata__\":null}", 0);
	if (h)
		CHECK(h->meta == TPFS_ST_META_NULL && h->metadata_json == NULL);
	tpfs_st_free(h);
	h = parse_ok("{\"__metadata__\":{\"format\":\"pt\",\"q\":\"a\\\"b\"}}", 0);
	if (h) {
		CHECK(h->meta == TPFS_ST_META_MAP);
		CHECK(strcmp(h->metadata_json, "{\"format\":\"pt\",\"q\":\"a\\\"b\"}") == 0);
	}
	tpfs_st_free(h);
}

static void padded_and_unpadded_headers_are_accepted(void)
{
	const char *bare = "{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}";
	char padded[128];
	snprintf(padded, sizeof(padded), "%s      ", bare);
	struct tpfs_st_header *h = parse_ok(padded, 3);
	if (h) {
		CHECK(h->ntensors == 1);
		CHECK(h->data_start == 8 + strlen(bare) + 6);
		CHECK(h->tensors[0].begin == h->data_start);
	}
	tpfs_st_free(h);
	h = parse_ok(bare, 3);
	if (h)
		CHECK(h->data_start == 8 + strlen(bare));
	tpfs_st_free(h);
	/* Newlines between tokens are JSON too. */
	h = parse_ok("{\n\"a\" : {\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}\n}  ", 3);
	tpfs_st_free(h);
}

static void data_out_of_key_order_is_accepted(void)
{
	struct tpfs_st_header *h = parse_ok(
		"{\"z\":{\"data_offsets\":[0,8],\"dtype\":\"F32\",\"shape\":[2]},"
		"\"a\":{\"dtype\":\"I16\",\"shape\":[2,2],\"data_offsets\":[8,16]},"
		"\"m\":{\"shape\":[],\"data_offsets\":[16,24],\"dtype\":\"F64\"}}",
		24);
	if (h) {
		CHECK(h->ntensors == 3);
		/* Sorted by name, each keeping its own range. */
		CHECK(strcmp(h->tensors[0].name, "a") == 0);
		CHECK(h->tensors[0].begin == h->data_start + 8);
		CHECK(strcmp(h->tensors[2].name, "z") == 0);
		CHECK(h->tensors[2].begin == h->data_start);
		CHECK(h->tensors[1].ndim == 0 && h->tensors[1].nelem == 1);
		CHECK(tpfs_st_find(h, "m") == &h->tensors[1]);
		CHECK(tpfs_st_find(h, "q") == NULL);
	}
	tpfs_st_free(h);
}

static void empty_tensors_and_slash_names_are_accepted(void)
{
	struct tpfs_st_header *h = parse_ok(
		"{\"enc/layer_0/kernel\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
		"\"e1\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[2,2]},"
		"\"e2\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[2,2]},"
		"\"e3\":{\"dtype\":\"I64\",\"shape\":[5,0],\"data_offsets\":[0,0]}}",
		2);
	if (h) {
		CHECK(h->ntensors == 4);
		const struct tpfs_st_tensor *t = tpfs_st_find(h, "e1");
		CHECK(t && t->nelem == 0 && t->ndim == 2 && t->begin == t->end);
		CHECK(tpfs_st_find(h, "enc/layer_0/kernel") != NULL);
	}
	tpfs_st_free(h);
	h = parse_ok("{}", 0);
	if (h)
		CHECK(h->ntensors == 0);
	tpfs_st_free(h);
}

static void offsets_past_two_to_the_32_are_exact(void)
{
	/* 3 GiB of F32 then 1 byte: offsets beyond what an int holds. */
	const char *json =
		"{\"big\":{\"dtype\":\"F32\",\"shape\":[805306368],"
		"\"data_offsets\":[0,3221225472]},"
		"\"tail\":{\"dtype\":\"U8\",\"shape\":[1],"
		"\"data_offsets\":[3221225472,3221225473]}}";
	size_t len = make(json, 0);
	struct tpfs_st_header *h = NULL;
	struct tpfs_error e = {{0}};
	int rc = tpfs_st_parse(FILE_NAME, buf, len, len + 3221225473ULL, &h, &e);
	CHECKF(rc == 0, "%s", e.msg);
	if (h) {
		const struct tpfs_st_tensor *t = tpfs_st_find(h, "tail");
		CHECK(t && t->begin == h->data_start + 3221225472ULL);
		CHECK(t && t->end == h->file_size);
	}
	tpfs_st_free(h);
}

static void index_weight_map_is_read_and_checked(void)
{
	const char *ok = "{\"metadata\":{\"total_size\":8},\"weight_map\":"
			 "{\"b\":\"model-2.safetensors\",\"a\":\"model-1.safetensors\"}}";
	struct tpfs_st_index *ix = NULL;
	struct tpfs_error e = {{0}};
	CHECK(tpfs_st_index_parse("x.index.json", strdup(ok), strlen(ok), &ix, &e) == 0);
	if (ix) {
		CHECK(ix->n == 2);
		CHECK(strcmp(tpfs_st_index_find(ix, "a"), "model-1.safetensors") == 0);
		CHECK(tpfs_st_index_find(ix, "c") == NULL);
	}
	tpfs_st_index_free(ix);
	const char *bad[] = {
		"{\"metadata\":{}}",
		"{\"weight_map\":{\"a\":1}}",
		"{\"weight_map\":{\"a\":\"x\",\"a\":\"y\"}}",
		"{\"weight_map\":",
		"",
	};
	const char *frag[] = {"no \"weight_map\"", "is not a file name",
			      "duplicate key 'a'", "not valid JSON", "the index is empty"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ix = NULL;
		CHECK(tpfs_st_index_parse("x.index.json", strdup(bad[i]), strlen(bad[i]), &ix,
					  &e) < 0);
		CHECK(ix == NULL);
		CHECK_CONTAINS(e.msg, "x.index.json: ");
		CHECK_CONTAINS(e.msg, frag[i]);
	}
}

static size_t count_file(const char *path)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		CHECKF(0, "cannot open %s", path);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	struct tpfs_st_header *h = NULL;
	struct tpfs_error e = {{0}};
	int rc = tpfs_st_read(fd, path, (uint64_t)st.st_size, &h, &e);
	close(fd);
	CHECKF(rc == 0, "%s", e.msg);
	size_t n = h ? h->ntensors : 0;
	tpfs_st_free(h);
	return n;
}

static void real_files_from_other_writers_all_parse(void)
{
	const char *root = getenv("TPFS_REALDATA");
	struct stat st;
	if (!root || stat(root, &st) < 0) {
		printf("skip: no real data at %s\n", root ? root : "(TPFS_REALDATA unset)");
		return;
	}
	/* Tensor counts as the provenance table (SOURCES.md) lists them. */
	static const struct {
		const char *path;
		size_t tensors;
	} files[] = {
		{"fluxml-nonsharded/model.safetensors", 36},
		{"fluxml-nonsharded/model.with_metadata.safetensors", 36},
		{"fluxml-nonsharded/model.numpy.safetensors", 27},
		{"fluxml-sharded/model-00001-of-00006.safetensors", 19},
		{"fluxml-sharded/model-00002-of-00006.safetensors", 1},
		{"fluxml-sharded/model-00003-of-00006.safetensors", 2},
		{"fluxml-sharded/model-00004-of-00006.safetensors", 4},
		{"fluxml-sharded/model-00005-of-00006.safetensors", 7},
		{"fluxml-sharded/model-00006-of-00006.safetensors", 3},
		{"tinygrad-mnist/model.safetensors", 2},
		{"mlx-cellogpt/weights_s2s.safetensors", 188},
		{"fusebox-slashnames/model.safetensors", 3},
		{"syoyo-cpp/model.safetensors", 2},
		{"hf-samples/overall.safetensors", 9},
		{"hf-samples/B.safetensors", 1},
		{"hf-samples/H.safetensors", 1},
		{"hf-samples/I.safetensors", 1},
		{"hf-samples/b.safetensors", 1},
		{"hf-samples/d.safetensors", 1},
		{"hf-samples/e.safetensors", 1},
		{"hf-samples/f.safetensors", 1},
		{"hf-samples/h.safetensors", 1},
		{"hf-samples/i.safetensors", 1},
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", root, files[i].path);
		size_t n = count_file(path);
		CHECKF(n == files[i].tensors, "%s: %zu tensors, expected %zu", path, n,
		       files[i].tensors);
	}
}

int main(void)
{
	RUN(file_shorter_than_the_length_field_is_refused);
	RUN(header_length_over_the_limit_is_refused);
	RUN(more_than_64_dimensions_are_refused);
	RUN(header_length_past_the_end_of_the_file_is_refused);
	RUN(header_that_is_not_utf8_is_refused);
	RUN(header_that_is_not_json_is_refused);
	RUN(header_that_is_not_an_object_is_refused);
	RUN(bytes_after_the_json_object_are_refused);
	RUN(trailing_nul_padding_is_refused);
	RUN(header_must_start_with_a_brace_and_end_with_spaces);
	RUN(strings_with_nul_or_raw_control_characters_are_refused);
	RUN(surrogate_escapes_pair_up_or_are_refused);
	RUN(numbers_must_be_plain_digits);
	RUN(tensor_entry_that_is_not_an_object_is_refused);
	RUN(dtype_missing_or_wrong_is_refused);
	RUN(shape_that_is_not_whole_numbers_is_refused);
	RUN(data_offsets_that_are_not_two_whole_numbers_are_refused);
	RUN(data_offsets_begin_after_end_is_refused);
	RUN(element_count_overflow_is_refused);
	RUN(zero_dimension_makes_an_empty_tensor_despite_huge_others);
	RUN(byte_length_must_match_shape_and_dtype);
	RUN(sub_byte_dtype_must_fill_whole_bytes);
	RUN(data_offsets_past_the_data_buffer_are_refused);
	RUN(overlapping_tensors_are_refused);
	RUN(holes_between_tensors_are_refused);
	RUN(bytes_after_the_last_tensor_are_refused);
	RUN(duplicate_keys_are_refused);
	RUN(metadata_must_be_a_string_map_or_null);
	RUN(metadata_absent_null_and_map_are_told_apart);
	RUN(padded_and_unpadded_headers_are_accepted);
	RUN(data_out_of_key_order_is_accepted);
	RUN(empty_tensors_and_slash_names_are_accepted);
	RUN(offsets_past_two_to_the_32_are_exact);
	RUN(index_weight_map_is_read_and_checked);
	RUN(real_files_from_other_writers_all_parse);
	return check_done();
}
