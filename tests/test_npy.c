/*
 * The .npy header against the NPY format specification: magic, version,
 * little-endian header length, the dict literal NumPy writes, space padding,
 * a final newline, and data starting at a multiple of 64.
 */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "tpfs/npy.h"

/* The header in a new buffer: its length first, then the bytes, as the
 * daemon does (it keeps only the length). */
static long header(const char *descr, const uint64_t *shape, uint32_t ndim, uint8_t **h)
{
	long n = tpfs_npy_header(descr, shape, ndim, NULL, 0);
	*h = n > 0 ? malloc((size_t)n) : NULL;
	if (!*h)
		return n > 0 ? -1 : n;
	long again = tpfs_npy_header(descr, shape, ndim, *h, (size_t)n);
	CHECK(again == n);
	return again;
}

/* Checks h against the format, with dict as the expected literal. */
static void check_header(const uint8_t *h, long len, int version, const char *dict)
{
	size_t pre = version == 1 ? 10 : 12;
	CHECK(len > 0 && len % 64 == 0);
	CHECK(memcmp(h, "\x93NUMPY", 6) == 0);
	CHECK(h[6] == version && h[7] == 0);
	uint64_t hlen = h[8] | (uint64_t)h[9] << 8;
	if (version == 2)
		hlen |= (uint64_t)h[10] << 16 | (uint64_t)h[11] << 24;
	CHECK(hlen == (uint64_t)len - pre);
	size_t dl = strlen(dict);
	CHECK(memcmp(h + pre, dict, dl) == 0);
	for (size_t i = pre + dl; i + 1 < (size_t)len; i++)
		CHECKF(h[i] == ' ', "byte %zu is 0x%02x, not a space", i, h[i]);
	CHECK(h[len - 1] == '\n');
	/* No more padding than needed to reach the next multiple of 64. */
	CHECK((size_t)len - (pre + dl + 1) < 64);
}

static void zero_d_shape_is_empty_parentheses(void)
{
	uint8_t *h = NULL;
	long n = header("<f4", NULL, 0, &h);
	CHECK(n == 128);
	check_header(h, n, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }");
	free(h);
}

static void one_d_shape_has_a_trailing_comma(void)
{
	uint8_t *h = NULL;
	uint64_t shape[] = {3};
	long n = header("|b1", shape, 1, &h);
	CHECK(n == 128);
	check_header(h, n, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }");
	free(h);
}

static void n_d_shape_is_a_tuple(void)
{
	uint8_t *h = NULL;
	uint64_t shape[] = {201088, 2880, 0, 1};
	long n = header("<f4", shape, 4, &h);
	check_header(h, n, 1,
		     "{'descr': '<f4', 'fortran_order': False, "
		     "'shape': (201088, 2880, 0, 1), }");
	free(h);
}

static void large_dimensions_are_printed_exactly(void)
{
	uint8_t *h = NULL;
	uint64_t shape[] = {18446744073709551615ULL, 9007199254740993ULL};
	long n = header("<c8", shape, 2, &h);
	check_header(h, n, 1,
		     "{'descr': '<c8', 'fortran_order': False, "
		     "'shape': (18446744073709551615, 9007199254740993), }");
	free(h);
}

static void data_always_starts_on_a_64_byte_boundary(void)
{
	/* Dict lengths crossing several multiples of 64. */
	uint64_t shape[40];
	for (uint32_t nd = 0; nd < 40; nd++) {
		shape[nd] = (uint64_t)1 << (nd % 40);
		uint8_t *h = NULL;
		long n = header("<i8", shape, nd, &h);
		CHECK(n > 0 && n % 64 == 0 && h[n - 1] == '\n');
		free(h);
	}
}

static void huge_headers_switch_to_version_2(void)
{
	/* 30000 dims of "1, " make a dict of about 90 KB: past 65535. */
	enum { ND = 30000 };
	uint64_t *shape = malloc(ND * sizeof(*shape));
	char *dict = malloc(ND * 3 + 128);
	char *p = dict + sprintf(dict, "{'descr': '<u2', 'fortran_order': False, 'shape': (");
	for (int i = 0; i < ND; i++) {
		shape[i] = 1;
		p += sprintf(p, i ? ", 1" : "1");
	}
	strcpy(p, "), }");
	uint8_t *h = NULL;
	long n = header("<u2", shape, ND, &h);
	check_header(h, n, 2, dict);
	free(h);
	free(dict);
	free(shape);
}

/* Version 1 holds a header length up to 65535 (two bytes); the format
 * moves to version 2 exactly where the padded v1 header would not fit. */
static void version_2_starts_exactly_past_65535(void)
{
	const char *prefix = "{'descr': '<u2', 'fortran_order': False, 'shape': (";
	int seen[3] = {0};
	for (uint32_t nd = 21700; nd < 21900; nd++) {
		uint64_t *shape = malloc(nd * sizeof(*shape));
		for (uint32_t i = 0; i < nd; i++)
			shape[i] = 1;
		/* the dict is prefix, "1, " per dimension but the last, "1), }",
		 * then padding and a newline to a multiple of 64 with the 10 bytes
		 * before it */
		size_t dict = strlen(prefix) + 3 * (nd - 1) + 1 + 4;
		size_t header_len_v1 = (10 + dict + 1 + 63) / 64 * 64 - 10;
		int want = header_len_v1 > 65535 ? 2 : 1;
		uint8_t *h = NULL;
		long n = header("<u2", shape, nd, &h);
		CHECKF(n > 0 && h[6] == want, "ndim %u: version %d, want %d", nd, n > 0 ? h[6] : 0,
		       want);
		seen[want]++;
		free(h);
		free(shape);
	}
	CHECK(seen[1] && seen[2]); /* the range straddles the boundary */
}

int main(void)
{
	RUN(zero_d_shape_is_empty_parentheses);
	RUN(one_d_shape_has_a_trailing_comma);
	RUN(n_d_shape_is_a_tuple);
	RUN(large_dimensions_are_printed_exactly);
	RUN(data_always_starts_on_a_64_byte_boundary);
	RUN(huge_headers_switch_to_version_2);
	RUN(version_2_starts_exactly_past_65535);
	return check_done();
}
