/*
 * Conversion kernels against references computed here, exhaustively where
 * the format is small: every bit pattern of each 8-bit format, of F4 and of
 * BF16 and F16, under each option. The references decode each format from its
 * definition (sign, exponent, mantissa, bias and special codes, evaluated in
 * double with ldexp) and round with the compiler's own conversions: (float)
 * for float32 and the _Float16 type (libgcc's soft-float code) for float16.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "tpfs/conv.h"
#include "tpfs/error.h"

/* ---- references ---------------------------------------------------------- */

struct minifloat {
	int ebits, mbits, bias;
	enum { IEEE, FN, FNUZ } style; /* IEEE: inf and NaN at the top exponent;
					  FN: only all-ones is NaN; FNUZ: 0x80 is NaN */
};

static double mini_value(struct minifloat f, unsigned code)
{
	unsigned total = 1 + f.ebits + f.mbits;
	unsigned sign = code >> (total - 1);
	unsigned e = (code >> f.mbits) & ((1u << f.ebits) - 1);
	unsigned m = code & ((1u << f.mbits) - 1);
	unsigned emax = (1u << f.ebits) - 1;
	if (f.style == FNUZ && code == 1u << (total - 1))
		return NAN;
	if (f.style == IEEE && e == emax)
		return m ? (sign ? -NAN : NAN) : (sign ? -INFINITY : INFINITY);
	if (f.style == FN && e == emax && m == (1u << f.mbits) - 1)
		return sign ? -NAN : NAN;
	double mant = e ? 1.0 + ldexp(m, -f.mbits) : ldexp(m, -f.mbits);
	double v = ldexp(mant, (e ? (int)e : 1) - f.bias);
	return sign ? -v : v;
}

static const struct minifloat E4M3 = {4, 3, 7, FN}, E5M2 = {5, 2, 15, IEEE},
			      E4M3FNUZ = {4, 3, 8, FNUZ}, E5M2FNUZ = {5, 2, 16, FNUZ},
			      BF16 = {8, 7, 127, IEEE}, F16 = {5, 10, 15, IEEE};

static double e8m0_value(unsigned b)
{
	return b == 255 ? NAN : ldexp(1.0, (int)b - 127);
}

/* The FP4 (E2M1) values as the issue lists them, by code. */
static const double E2M1[16] = {0, 0.5, 1, 1.5, 2, 3, 4, 6,
				-0.0, -0.5, -1, -1.5, -2, -3, -4, -6};

static uint16_t want_f16(double v)
{
	_Float16 h = (_Float16)v;
	uint16_t u;
	memcpy(&u, &h, 2);
	return u;
}

static uint32_t want_f32(double v)
{
	float f = (float)v;
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/* bfloat16 nearest to a float32, ties to even: the two candidates around it
 * compared in double. */
static uint16_t want_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	if (isnan(f))
		return 0; /* callers check NaN separately */
	if (isinf(f))
		return (uint16_t)(u >> 16);
	uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
	double vl = mini_value(BF16, lo), vh = mini_value(BF16, hi);
	if (isinf(vh) && !isinf(vl)) {
		/* past the largest finite bfloat16: halfway is 2^128 - 2^119 */
		double half = ldexp(1, 128) - ldexp(1, 119);
		return fabs((double)f) >= half ? hi : lo;
	}
	double dl = fabs((double)f - vl), dh = fabs((double)f - vh);
	if (dl != dh)
		return dl < dh ? lo : hi;
	return (lo & 1) ? hi : lo;
}

static bool f16_is_nan(uint16_t h)
{
	return (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
}

static bool f32_is_nan(uint32_t u)
{
	return (u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu);
}

/* Same bits, or both NaN with the same sign. */
static bool same16(uint16_t got, uint16_t want, bool want_nan, bool neg)
{
	if (want_nan)
		return f16_is_nan(got) && ((got >> 15) != 0) == neg;
	return got == want;
}

static bool same32(uint32_t got, uint32_t want, bool want_nan, bool neg)
{
	if (want_nan)
		return f32_is_nan(got) && ((got >> 31) != 0) == neg;
	return got == want;
}

/* ---- running kernels ----------------------------------------------------- */

static struct tpfs_options opts(const char *list)
{
	struct tpfs_options o;
	tpfs_options_defaults(&o);
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		struct tpfs_error e;
		if (tpfs_options_apply(&o, t, &e) != 0)
			fprintf(stderr, "bad test option %s\n", t);
	}
	return o;
}

static const struct tpfs_conv *conv_for(enum tpfs_dtype dt, const char *list)
{
	struct tpfs_options o = opts(list);
	return tpfs_conv_for(dt, &o);
}

static size_t run(const struct tpfs_conv *c, const void *src, const void *src2,
		  void *dst, size_t n)
{
	struct tpfs_kernel_args a = {c, src, src2, dst, n, 0};
	c->kernel(&a);
	return a.overflows;
}

static uint8_t bytes256[256];

/* Every code of an 8-bit format, decoded to float16 and float32. */
static void check_8bit(enum tpfs_dtype dt, double (*value)(unsigned), const char *name16,
		       const char *name32)
{
	const struct tpfs_conv *c16 = conv_for(dt, "");
	const struct tpfs_conv *c32 = conv_for(dt, "fp8=f32");
	if (dt == TPFS_DT_F8_E8M0) { /* a scale type: float32 unless dtype=f16 */
		c32 = conv_for(dt, "");
		c16 = conv_for(dt, "dtype=f16");
	}
	CHECK(strcmp(c16->name, name16) == 0 && strcmp(c16->out_descr, "<f2") == 0);
	CHECK(strcmp(c32->name, name32) == 0 && strcmp(c32->out_descr, "<f4") == 0);
	uint16_t o16[256];
	uint32_t o32[256];
	size_t over = run(c16, bytes256, NULL, o16, 256);
	run(c32, bytes256, NULL, o32, 256);
	size_t want_over = 0;
	int bad = 0;
	for (unsigned b = 0; b < 256; b++) {
		double v = value(b);
		bool nan = isnan(v), neg = signbit(v) != 0;
		uint16_t w16 = want_f16(v);
		want_over += !isinf(v) && !nan && (w16 & 0x7fff) == 0x7c00;
		if (!same16(o16[b], w16, nan, neg) || !same32(o32[b], want_f32(v), nan, neg)) {
			if (bad++ < 5)
				fprintf(stderr, "  %s 0x%02x: f16 %04x (want %04x), f32 %08x (want %08x)\n",
					name16, b, o16[b], w16, o32[b], want_f32(v));
		}
	}
	CHECK(bad == 0);
	CHECK(over == want_over);
}

static double v_e4m3(unsigned b) { return mini_value(E4M3, b); }
static double v_e5m2(unsigned b) { return mini_value(E5M2, b); }
static double v_e4m3fnuz(unsigned b) { return mini_value(E4M3FNUZ, b); }
static double v_e5m2fnuz(unsigned b) { return mini_value(E5M2FNUZ, b); }

/* ---- tests ---------------------------------------------------------------- */

static void fp8_e4m3_all_256_codes_are_exact(void)
{
	check_8bit(TPFS_DT_F8_E4M3, v_e4m3, "f8_e4m3->f16", "f8_e4m3->f32");
	/* Spot values from the format's definition. */
	CHECK(mini_value(E4M3, 0x7e) == 448 && isnan(mini_value(E4M3, 0x7f)));
	CHECK(mini_value(E4M3, 0x01) == ldexp(1, -9));
}

static void fp8_e5m2_is_the_top_byte_of_a_half(void)
{
	check_8bit(TPFS_DT_F8_E5M2, v_e5m2, "f8_e5m2->f16", "f8_e5m2->f32");
	/* Every code, NaN payloads included: the half's bits, and the float32
	 * that has the same sign, exponent all ones and the mantissa bits on top */
	uint16_t o[256];
	uint32_t w[256];
	run(conv_for(TPFS_DT_F8_E5M2, ""), bytes256, NULL, o, 256);
	run(conv_for(TPFS_DT_F8_E5M2, "fp8=f32"), bytes256, NULL, w, 256);
	for (unsigned b = 0; b < 256; b++) {
		CHECKF(o[b] == (uint16_t)(b << 8), "code 0x%02x", b);
		if ((b & 0x7c) == 0x7c)
			CHECKF(w[b] == ((b & 0x80u) << 24 | 0x7f800000u | (b & 3u) << 21),
			       "code 0x%02x", b);
	}
}

static void fp8_fnuz_variants_are_exact_with_one_nan(void)
{
	check_8bit(TPFS_DT_F8_E4M3FNUZ, v_e4m3fnuz, "f8_e4m3fnuz->f16", "f8_e4m3fnuz->f32");
	check_8bit(TPFS_DT_F8_E5M2FNUZ, v_e5m2fnuz, "f8_e5m2fnuz->f16", "f8_e5m2fnuz->f32");
	CHECK(mini_value(E4M3FNUZ, 0x7f) == 240 && mini_value(E5M2FNUZ, 0x7f) == 57344);
	uint16_t o[256];
	run(conv_for(TPFS_DT_F8_E4M3FNUZ, ""), bytes256, NULL, o, 256);
	int nans = 0;
	for (unsigned b = 0; b < 256; b++)
		nans += f16_is_nan(o[b]);
	CHECK(nans == 1 && f16_is_nan(o[0x80]));
	CHECK(o[0x00] == 0x0000); /* no negative zero: 0x80 is the NaN */
}

static void e8m0_is_a_power_of_two_with_nan_at_255(void)
{
	check_8bit(TPFS_DT_F8_E8M0, e8m0_value, "f8_e8m0->f16", "f8_e8m0->f32");
	uint32_t o[256];
	run(conv_for(TPFS_DT_F8_E8M0, ""), bytes256, NULL, o, 256);
	float f0;
	memcpy(&f0, &o[0], 4);
	CHECK(f0 == ldexpf(1, -127) && fpclassify(f0) == FP_SUBNORMAL);
	float f254;
	memcpy(&f254, &o[254], 4);
	CHECK(f254 == ldexpf(1, 127));
	CHECK(f32_is_nan(o[255]));
	/* float16 cannot hold 2^16 and up: those overflow, and are counted. */
	CHECK(!conv_for(TPFS_DT_F8_E8M0, "dtype=f16")->exact);
}

static void fp8_raw_serves_the_stored_bytes(void)
{
	const enum tpfs_dtype all[] = {TPFS_DT_F8_E4M3, TPFS_DT_F8_E5M2, TPFS_DT_F8_E4M3FNUZ,
				       TPFS_DT_F8_E5M2FNUZ, TPFS_DT_F8_E8M0};
	for (size_t i = 0; i < 5; i++) {
		const struct tpfs_conv *c = conv_for(all[i], "fp8=raw");
		CHECK(c->kind == TPFS_CONV_STORED && strcmp(c->out_descr, "|u1") == 0);
	}
}

static void f4_all_16_values_low_nibble_first(void)
{
	const struct tpfs_conv *c16 = conv_for(TPFS_DT_F4, "");
	const struct tpfs_conv *c32 = conv_for(TPFS_DT_F4, "dtype=f32");
	CHECK(strcmp(c16->name, "f4->f16") == 0 && c16->exact);
	CHECK(strcmp(c32->name, "f4->f32") == 0);
	uint16_t o16[512];
	uint32_t o32[512];
	run(c16, bytes256, NULL, o16, 512);
	run(c32, bytes256, NULL, o32, 512);
	int bad = 0;
	for (unsigned b = 0; b < 256; b++) {
		double lo = E2M1[b & 15], hi = E2M1[b >> 4];
		bad += o16[2 * b] != want_f16(lo) || o16[2 * b + 1] != want_f16(hi);
		bad += o32[2 * b] != want_f32(lo) || o32[2 * b + 1] != want_f32(hi);
	}
	CHECK(bad == 0);
	CHECK(o16[2 * 0x08] == 0x8000); /* code 8 is -0 */
}

static void bf16_to_f32_is_exact_for_all_65536_patterns(void)
{
	const struct tpfs_conv *c = conv_for(TPFS_DT_BF16, "");
	CHECK(strcmp(c->name, "bf16->f32") == 0 && c->exact);
	uint16_t *src = malloc(65536 * 2);
	uint32_t *dst = malloc(65536 * 4);
	for (uint32_t i = 0; i < 65536; i++)
		src[i] = (uint16_t)i;
	run(c, src, NULL, dst, 65536);
	int bad = 0;
	for (uint32_t i = 0; i < 65536; i++) {
		double v = mini_value(BF16, i);
		bool ok = same32(dst[i], want_f32(v), isnan(v), i >> 15);
		/* A NaN keeps its 7 payload bits at the top of the mantissa and
		 * nothing else: the float is exactly sign, all-ones exponent, m. */
		if (isnan(v))
			ok = ok && dst[i] == ((i >> 15) << 31 | 0x7f800000u | (i & 0x7fu) << 16);
		if (!ok && bad++ < 5)
			fprintf(stderr, "  0x%04x -> %08x\n", i, dst[i]);
	}
	CHECK(bad == 0);
	free(src);
	free(dst);
}

static void bf16_to_f16_rounds_to_nearest_even_for_all_patterns(void)
{
	const struct tpfs_conv *c = conv_for(TPFS_DT_BF16, "bf16=f16");
	CHECK(strcmp(c->name, "bf16->f16") == 0 && !c->exact);
	CHECK(strcmp(c->out_descr, "<f2") == 0);
	uint16_t *src = malloc(65536 * 2), *dst = malloc(65536 * 2);
	for (uint32_t i = 0; i < 65536; i++)
		src[i] = (uint16_t)i;
	size_t over = run(c, src, NULL, dst, 65536), want_over = 0;
	int bad = 0;
	for (uint32_t i = 0; i < 65536; i++) {
		double v = mini_value(BF16, i);
		uint16_t w = want_f16(v);
		want_over += !isinf(v) && !isnan(v) && (w & 0x7fff) == 0x7c00;
		if (!same16(dst[i], w, isnan(v), i >> 15) && bad++ < 5)
			fprintf(stderr, "  0x%04x -> %04x, want %04x\n", i, dst[i], w);
	}
	CHECK(bad == 0);
	CHECK(over == want_over && over > 0);
	free(src);
	free(dst);
}

static void bf16_raw_is_served_as_two_byte_voids(void)
{
	const struct tpfs_conv *c = conv_for(TPFS_DT_BF16, "bf16=raw");
	CHECK(c->kind == TPFS_CONV_STORED && strcmp(c->out_descr, "|V2") == 0 && c->exact);
}

static void f16_to_f32_is_exact_for_all_patterns(void)
{
	const struct tpfs_conv *c = conv_for(TPFS_DT_F16, "dtype=f32");
	CHECK(strcmp(c->name, "f16->f32") == 0 && c->exact);
	CHECK(conv_for(TPFS_DT_F16, "")->kind == TPFS_CONV_STORED);
	uint16_t *src = malloc(65536 * 2);
	uint32_t *dst = malloc(65536 * 4);
	for (uint32_t i = 0; i < 65536; i++)
		src[i] = (uint16_t)i;
	run(c, src, NULL, dst, 65536);
	int bad = 0;
	for (uint32_t i = 0; i < 65536; i++) {
		double v = mini_value(F16, i);
		bad += !same32(dst[i], want_f32(v), isnan(v), i >> 15);
	}
	CHECK(bad == 0);
	free(src);
	free(dst);
}

/* float32 patterns where rounding to float16 is decided: every sign and
 * exponent, with dropped bits just below, at and above the halfway point,
 * and random patterns. */
static size_t f32_samples(uint32_t **out)
{
	size_t n = 0, cap = 2 * 256 * 64 * 6 + 2000000;
	uint32_t *v = malloc(cap * sizeof(*v));
	uint32_t x = 2463534242u;
	const uint32_t low[] = {0, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x0001};
	for (uint32_t sign = 0; sign < 2; sign++)
		for (uint32_t e = 0; e < 256; e++)
			for (uint32_t k = 0; k < 64; k++)
				for (size_t l = 0; l < 6; l++) {
					x ^= x << 13, x ^= x >> 17, x ^= x << 5;
					uint32_t top = (k < 2 ? k * 0x3ff : x) & 0x3ff;
					v[n++] = sign << 31 | e << 23 | top << 13 | low[l];
				}
	for (int i = 0; i < 2000000; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		v[n++] = x;
	}
	*out = v;
	return n;
}

static void f32_to_f16_rounds_to_nearest_even_and_counts_overflows(void)
{
	const struct tpfs_conv *c = conv_for(TPFS_DT_F32, "dtype=f16");
	CHECK(strcmp(c->name, "f32->f16") == 0 && !c->exact);
	uint32_t *src;
	size_t n = f32_samples(&src);
	uint16_t *dst = malloc(n * 2);
	size_t over = run(c, src, NULL, dst, n), want_over = 0;
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		float f;
		memcpy(&f, &src[i], 4);
		uint16_t w = want_f16((double)f);
		want_over += isfinite(f) && (w & 0x7fff) == 0x7c00;
		if (!same16(dst[i], w, isnan(f), src[i] >> 31) && bad++ < 5)
			fprintf(stderr, "  %08x -> %04x, want %04x\n", src[i], dst[i], w);
	}
	CHECK(bad == 0);
	CHECK(over == want_over && over > 1000);
	free(src);
	free(dst);
}

static void f64_narrows_with_one_rounding(void)
{
	const struct tpfs_conv *c32 = conv_for(TPFS_DT_F64, "dtype=f32");
	const struct tpfs_conv *c16 = conv_for(TPFS_DT_F64, "dtype=f16");
	CHECK(strcmp(c32->name, "f64->f32") == 0 && strcmp(c16->name, "f64->f16") == 0);
	enum { N = 1000000 };
	double *src = malloc(N * sizeof(double));
	uint64_t x = 88172645463325252ULL;
	for (int i = 0; i < N; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		double d;
		if (i % 4 == 0) {
			/* a float16 halfway point, nudged by a few float64 ulps: the
			 * case a float32 intermediate would round twice */
			double h = ldexp(2.0 * (1024 + (int)(x % 1024)) + 1.0,
					 (int)((x >> 40) % 40) - 36);
			d = nextafter(h, (x & 1) ? INFINITY : -INFINITY);
			if (x & 2)
				d = h;
		} else {
			memcpy(&d, &x, 8);
		}
		src[i] = (x & 4) ? -fabs(d) : d;
	}
	uint16_t *d16 = malloc(N * 2);
	uint32_t *d32 = malloc(N * 4);
	size_t over16 = run(c16, src, NULL, d16, N), over32 = run(c32, src, NULL, d32, N);
	size_t want16 = 0, want32 = 0;
	int bad = 0;
	for (int i = 0; i < N; i++) {
		double d = src[i];
		uint16_t w16 = want_f16(d);
		uint32_t w32 = want_f32(d);
		want16 += isfinite(d) && (w16 & 0x7fff) == 0x7c00;
		want32 += isfinite(d) && isinf((float)d);
		if ((!same16(d16[i], w16, isnan(d), signbit(d)) ||
		     !same32(d32[i], w32, isnan(d), signbit(d))) && bad++ < 5)
			fprintf(stderr, "  %a -> %04x/%08x, want %04x/%08x\n", d, d16[i], d32[i], w16, w32);
	}
	CHECK(bad == 0);
	CHECK(over16 == want16 && over32 == want32);
	free(src);
	free(d16);
	free(d32);
}

static void mxfp4_pairs_dequantize_exactly_for_every_scale(void)
{
	struct tpfs_options o;
	tpfs_options_defaults(&o);
	const struct tpfs_conv *c = tpfs_conv_mxfp4(&o);
	CHECK(strcmp(c->name, "mxfp4->f32") == 0 && strcmp(c->out_descr, "<f4") == 0);
	/* 256 groups of 32 values, group g with scale g, random nibbles. */
	unsigned char blocks[256 * 16], scales[256];
	uint32_t x = 7;
	for (int i = 0; i < 256 * 16; i++) {
		x = x * 1103515245u + 12345u;
		blocks[i] = (unsigned char)(x >> 16);
	}
	for (int g = 0; g < 256; g++)
		scales[g] = (unsigned char)g;
	float out32[256 * 32];
	uint16_t out16[256 * 32], outbf[256 * 32];
	size_t over32 = run(c, blocks, scales, out32, 256 * 32);
	o.mxfp4 = TPFS_OUT_F16;
	size_t over16 = run(tpfs_conv_mxfp4(&o), blocks, scales, out16, 256 * 32);
	o.mxfp4 = TPFS_OUT_BF16;
	const struct tpfs_conv *cb = tpfs_conv_mxfp4(&o);
	CHECK(strcmp(cb->out_descr, "|V2") == 0);
	size_t overbf = run(cb, blocks, scales, outbf, 256 * 32);
	/* Finite values past each type's largest: float32 and bfloat16 reach
	 * 2^128 only at the top scales, float16 stops below 65520. Both signs. */
	size_t want32 = 0, want16 = 0, negative = 0;
	o.mxfp4 = TPFS_OUT_RAW;
	CHECK(tpfs_conv_mxfp4(&o) == NULL);
	int bad = 0;
	for (int i = 0; i < 256 * 32; i++) {
		int g = i / 32;
		unsigned byte = blocks[16 * g + (i % 32) / 2];
		unsigned code = i % 2 ? byte >> 4 : byte & 15;
		double v = g == 255 ? NAN : E2M1[code] * ldexp(1.0, g - 127);
		want32 += fabs(v) >= ldexp(1, 128);
		want16 += fabs(v) >= 65520;
		negative += v <= -ldexp(1, 128);
		uint32_t got32;
		memcpy(&got32, &out32[i], 4);
		bool ok = same32(got32, want_f32(v), isnan(v), false);
		ok = ok && same16(out16[i], want_f16(v), isnan(v), false);
		if (isnan(v))
			ok = ok && (outbf[i] & 0x7f80) == 0x7f80 && (outbf[i] & 0x7f);
		else
			ok = ok && outbf[i] == want_bf16((float)v);
		if (!ok && bad++ < 5)
			fprintf(stderr, "  value %d (scale %d, code %u): %08x %04x %04x\n", i, g,
				code, got32, out16[i], outbf[i]);
	}
	CHECK(bad == 0);
	CHECK(negative > 0 && want32 > negative);
	CHECKF(over32 == want32 && overbf == want32 && over16 == want16,
	       "overflows %zu %zu %zu, want %zu %zu", over32, overbf, over16, want32, want16);
	/* Scale 0 is 2^-127, a float32 subnormal: 0.5 * 2^-127 must survive. */
	CHECK(ldexp(0.5, -127) == (double)(float)ldexp(0.5, -127));
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
		const struct tpfs_conv *c = conv_for(native[i].dt, "");
		CHECK(c->kind == TPFS_CONV_STORED && c->exact && c->out_descr == NULL);
		CHECK(strcmp(tpfs_dtype_info(native[i].dt)->descr, native[i].descr) == 0);
		/* Integers are never cast; complex is left alone too. */
		bool cast = native[i].dt == TPFS_DT_F16 || native[i].dt == TPFS_DT_F32 ||
			    native[i].dt == TPFS_DT_F64;
		CHECK((conv_for(native[i].dt, "dtype=f16")->kind == TPFS_CONV_STORED) ==
		      (!cast || native[i].dt == TPFS_DT_F16));
	}
	CHECK(conv_for(TPFS_DT_F6_E2M3, "")->kind == TPFS_CONV_STORED);
	CHECK(strcmp(conv_for(TPFS_DT_F6_E3M2, "dtype=f32")->out_descr, "|u1") == 0);
}

/* "exact" in the manifest: every value of the source type is a value of
 * the served type (ranges and precisions from the formats' definitions;
 * MXFP4 to float32 and bfloat16 is exact below 2^128, see the README). */
static void exact_means_every_value_fits(void)
{
	const struct {
		enum tpfs_dtype dt;
		const char *opts, *name;
		bool exact;
	} want[] = {
		{TPFS_DT_BF16, "", "bf16->f32", true},
		{TPFS_DT_BF16, "bf16=f16", "bf16->f16", false}, /* 8 vs 5 exponent bits */
		{TPFS_DT_F16, "dtype=f32", "f16->f32", true},
		{TPFS_DT_F32, "dtype=f16", "f32->f16", false},
		{TPFS_DT_F64, "dtype=f32", "f64->f32", false},
		{TPFS_DT_F64, "dtype=f16", "f64->f16", false},
		{TPFS_DT_F8_E4M3, "", "f8_e4m3->f16", true},     /* largest 448 */
		{TPFS_DT_F8_E5M2, "", "f8_e5m2->f16", true},     /* a half's top byte */
		{TPFS_DT_F8_E4M3FNUZ, "", "f8_e4m3fnuz->f16", true},
		{TPFS_DT_F8_E5M2FNUZ, "", "f8_e5m2fnuz->f16", true}, /* largest 57344 */
		{TPFS_DT_F8_E8M0, "", "f8_e8m0->f32", true},
		{TPFS_DT_F8_E8M0, "dtype=f16", "f8_e8m0->f16", false}, /* up to 2^127 */
		{TPFS_DT_F8_E4M3, "fp8=f32", "f8_e4m3->f32", true},
		{TPFS_DT_F4, "", "f4->f16", true},
		{TPFS_DT_F4, "dtype=f32", "f4->f32", true},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct tpfs_conv *c = conv_for(want[i].dt, want[i].opts);
		CHECKF(strcmp(c->name, want[i].name) == 0 && c->exact == want[i].exact,
		       "%s: %s, exact %d", want[i].name, c->name, c->exact);
	}
	const struct {
		const char *opts, *name;
		bool exact;
	} mx[] = {{"", "mxfp4->f32", true}, {"mxfp4=bf16", "mxfp4->bf16", true},
		  {"mxfp4=f16", "mxfp4->f16", false}};
	for (size_t i = 0; i < sizeof(mx) / sizeof(mx[0]); i++) {
		struct tpfs_options o = opts(mx[i].opts);
		const struct tpfs_conv *c = tpfs_conv_mxfp4(&o);
		CHECKF(strcmp(c->name, mx[i].name) == 0 && c->exact == mx[i].exact, "%s",
		       mx[i].name);
	}
}

/* mxfp4=both says which files to show, not their type: with dtype=f16 the
 * dequantized tensor is float16. */
static void mxfp4_both_with_dtype_f16_dequantizes_to_f16(void)
{
	struct tpfs_options o = opts("dtype=f16,mxfp4=both");
	const struct tpfs_conv *c = tpfs_conv_mxfp4(&o);
	CHECK(c && strcmp(c->name, "mxfp4->f16") == 0);
	o = opts("mxfp4=both");
	c = tpfs_conv_mxfp4(&o);
	CHECK(c && strcmp(c->name, "mxfp4->f32") == 0);
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
	run(conv_for(TPFS_DT_BF16, ""), raw + 1, NULL, out + 1, 5);
	float f[5];
	memcpy(f, out + 1, sizeof(f));
	CHECK(f[0] == 1.0f && f[1] == 2.0f && f[2] == -3.0f && f[3] == 0.0f);
	CHECK(isinf(f[4]));
}

int main(void)
{
	for (int i = 0; i < 256; i++)
		bytes256[i] = (uint8_t)i;
	RUN(fp8_e4m3_all_256_codes_are_exact);
	RUN(fp8_e5m2_is_the_top_byte_of_a_half);
	RUN(fp8_fnuz_variants_are_exact_with_one_nan);
	RUN(e8m0_is_a_power_of_two_with_nan_at_255);
	RUN(fp8_raw_serves_the_stored_bytes);
	RUN(f4_all_16_values_low_nibble_first);
	RUN(bf16_to_f32_is_exact_for_all_65536_patterns);
	RUN(bf16_to_f16_rounds_to_nearest_even_for_all_patterns);
	RUN(bf16_raw_is_served_as_two_byte_voids);
	RUN(f16_to_f32_is_exact_for_all_patterns);
	RUN(f32_to_f16_rounds_to_nearest_even_and_counts_overflows);
	RUN(f64_narrows_with_one_rounding);
	RUN(mxfp4_pairs_dequantize_exactly_for_every_scale);
	RUN(every_native_dtype_is_served_as_stored);
	RUN(exact_means_every_value_fits);
	RUN(mxfp4_both_with_dtype_f16_dequantizes_to_f16);
	RUN(kernels_read_unaligned_sources);
	return check_done();
}
