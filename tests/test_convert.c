/*
 * Conversion kernels against references computed here from the formats'
 * definitions (sign, exponent and mantissa fields evaluated with ldexp),
 * exhaustively over every bit pattern.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "tpfs/convert.h"

/* bfloat16: 1 sign bit, 8 exponent bits (bias 127), 7 mantissa bits. */
static double bf16_value(uint16_t h)
{
	int sign = h >> 15, e = (h >> 7) & 0xff, m = h & 0x7f;
	double v;
	if (e == 0xff)
		v = m ? NAN : INFINITY;
	else if (e == 0)
		v = ldexp(m, -126 - 7); /* subnormal: 0.m x 2^-126 */
	else
		v = ldexp(128 + m, e - 127 - 7); /* 1.m x 2^(e-127) */
	return sign ? -v : v;
}

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static void bf16_to_f32_is_exact_for_all_65536_patterns(void)
{
	uint16_t *src = malloc(65536 * 2);
	float *dst = malloc(65536 * 4);
	for (uint32_t i = 0; i < 65536; i++)
		src[i] = (uint16_t)i;
	tpfs_bf16_to_f32(src, dst, 65536);
	int bad = 0;
	for (uint32_t i = 0; i < 65536 && bad < 10; i++) {
		double want = bf16_value((uint16_t)i);
		float got = dst[i];
		bool ok = isnan(want) ? isnan(got) : (double)got == want;
		ok = ok && (signbit(got) != 0) == ((i >> 15) != 0);
		/* A NaN keeps its 7 payload bits at the top of the mantissa and
		 * nothing else: the float is exactly sign, all-ones exponent, m. */
		if (isnan(want))
			ok = ok && f32_bits(got) == ((i >> 15) << 31 | 0x7f800000u |
						     (i & 0x7fu) << 16);
		if (!ok) {
			fprintf(stderr, "  0x%04x -> %a, expected %a\n", i, (double)got, want);
			bad++;
		}
	}
	CHECK(bad == 0);
	free(src);
	free(dst);
}

static void bf16_to_f32_keeps_nan_payload_and_sign(void)
{
	const uint16_t nans[] = {0x7fc0, 0xffc0, 0x7f81, 0xff81, 0x7fff, 0x7f80 | 0x15};
	for (size_t i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
		float f;
		tpfs_bf16_to_f32(&nans[i], &f, 1);
		uint32_t b = f32_bits(f);
		CHECK(isnan(f));
		CHECK((b >> 31) == (uint32_t)(nans[i] >> 15));
		/* The 7 payload bits are the top of the float's mantissa. */
		CHECK(((b >> 16) & 0x7f) == (uint32_t)(nans[i] & 0x7f));
		CHECK((b & 0xffff) == 0);
	}
}

static void bf16_to_f32_keeps_signed_zero_infinity_and_subnormals(void)
{
	const uint16_t in[] = {0x0000, 0x8000, 0x7f80, 0xff80, 0x0001, 0x807f, 0x3f80};
	float out[7];
	tpfs_bf16_to_f32(in, out, 7);
	CHECK(out[0] == 0 && !signbit(out[0]));
	CHECK(out[1] == 0 && signbit(out[1]));
	CHECK(isinf(out[2]) && out[2] > 0);
	CHECK(isinf(out[3]) && out[3] < 0);
	CHECK(out[4] == ldexpf(1, -133)); /* smallest subnormal */
	CHECK(out[5] == -ldexpf(127, -133));
	CHECK(out[6] == 1.0f);
}

static void kernels_read_unaligned_sources(void)
{
	unsigned char raw[1 + 2 * 5];
	const uint16_t vals[] = {0x3f80, 0x4000, 0xc040, 0x0000, 0x7f80};
	for (int i = 0; i < 5; i++) {
		raw[1 + 2 * i] = (unsigned char)(vals[i] & 0xff);
		raw[2 + 2 * i] = (unsigned char)(vals[i] >> 8);
	}
	unsigned char out[1 + 4 * 5];
	tpfs_bf16_to_f32(raw + 1, out + 1, 5);
	float f[5];
	memcpy(f, out + 1, sizeof(f));
	CHECK(f[0] == 1.0f && f[1] == 2.0f && f[2] == -3.0f && f[3] == 0.0f);
	CHECK(isinf(f[4]));
}

static void every_native_dtype_is_served_as_stored(void)
{
	const struct {
		enum tpfs_dtype dt;
		const char *descr;
	} native[] = {
		{TPFS_DT_BOOL, "|b1"}, {TPFS_DT_U8, "|u1"},  {TPFS_DT_I8, "|i1"},
		{TPFS_DT_I16, "<i2"},  {TPFS_DT_U16, "<u2"}, {TPFS_DT_F16, "<f2"},
		{TPFS_DT_I32, "<i4"},  {TPFS_DT_U32, "<u4"}, {TPFS_DT_F32, "<f4"},
		{TPFS_DT_I64, "<i8"},  {TPFS_DT_U64, "<u8"}, {TPFS_DT_F64, "<f8"},
		{TPFS_DT_C64, "<c8"},
	};
	for (size_t i = 0; i < sizeof(native) / sizeof(native[0]); i++) {
		const struct tpfs_conv *c = tpfs_conv_for(native[i].dt);
		CHECK(c && c->id == TPFS_CONV_NONE && c->exact);
		CHECK(strcmp(tpfs_dtype_info(native[i].dt)->descr, native[i].descr) == 0);
	}
	const struct tpfs_conv *bf = tpfs_conv_for(TPFS_DT_BF16);
	CHECK(bf && strcmp(bf->name, "bf16->f32") == 0 && bf->out_bytes == 4);
	CHECK(strcmp(bf->out_descr, "<f4") == 0);
}

int main(void)
{
	RUN(bf16_to_f32_is_exact_for_all_65536_patterns);
	RUN(bf16_to_f32_keeps_nan_payload_and_sign);
	RUN(bf16_to_f32_keeps_signed_zero_infinity_and_subnormals);
	RUN(kernels_read_unaligned_sources);
	RUN(every_native_dtype_is_served_as_stored);
	return check_done();
}
