/*
 * Conversion table and kernels.
 *
 * The 8-bit formats (FP8 variants, E8M0) and FP4 are decoded through
 * 256-entry tables built once from the formats' definitions; the wider
 * conversions are branch-free bit manipulation. What each format means:
 *
 *   F8_E4M3      sign, 4 exponent bits (bias 7), 3 mantissa bits; no
 *                infinity, S.1111.111 is NaN, largest 448 ("fn")
 *   F8_E5M2      sign, 5 exponent bits (bias 15), 2 mantissa bits: the top
 *                byte of an IEEE half, infinities and NaNs included
 *   F8_E4M3FNUZ  bias 8; 0x80 is the only NaN; no infinity, no -0
 *   F8_E5M2FNUZ  bias 16; 0x80 is the only NaN; no infinity, no -0
 *   F8_E8M0      2^(e - 127); 0xff is NaN (the OCP MX scale type)
 *   F4 (E2M1)    two values a byte, low nibble first: sign, 2 exponent bits
 *                (bias 1), 1 mantissa bit: +-{0, .5, 1, 1.5, 2, 3, 4, 6}
 *   MXFP4        GPT-OSS pairs: _blocks bytes of two E2M1 values (low nibble
 *                first) and one E8M0 _scales byte per 32 values:
 *                value = e2m1 * 2^(scale - 127)
 */
#include "tpfs/conv.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* ---- scalar helpers ---------------------------------------------------- */

static inline uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline uint16_t load16(const unsigned char *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static inline uint32_t load32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* float32 -> float16, round to nearest even, written with selects so that
 * loops over it vectorize. NaN stays NaN (quiet, sign and top payload bits
 * kept); 65520 and above become infinity. */
static inline uint16_t f32_to_f16(uint32_t x)
{
	uint32_t sign = (x >> 16) & 0x8000u;
	uint32_t ax = x & 0x7fffffffu;
	/* Normal: rebias the exponent ((15 - 127) << 23, modulo 2^32) and round
	 * the 13 dropped bits to nearest even. */
	uint32_t normal = (ax + 0xc8000fffu + ((ax >> 13) & 1u)) >> 13;
	/* Below 2^-14: adding 0.5 lines the value up with float16's subnormal
	 * step (2^-24 is the unit in the last place of [0.5, 1)), and the FPU
	 * rounds to nearest even. */
	uint32_t sub = f32_bits(bits_f32(ax) + 0.5f) - 0x3f000000u;
	uint32_t nan = 0x7e00u | ((ax >> 13) & 0x3ffu);
	uint32_t r = ax < 0x38800000u ? sub : normal;
	r = ax >= 0x477ff000u ? 0x7c00u : r;
	r = ax > 0x7f800000u ? nan : r;
	return (uint16_t)(sign | r);
}

/* 1 for a finite float32 that f32_to_f16 turns into infinity. */
static inline size_t f32_overflows_f16(uint32_t x)
{
	return (x & 0x7fffffffu) - 0x477ff000u < 0x7f800000u - 0x477ff000u;
}

static inline uint32_t f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
	uint32_t normal = ((e + 112u) << 23) | (m << 13);
	uint32_t special = 0x7f800000u | (m << 13);
	uint32_t sub = f32_bits((float)m * 0x1p-24f); /* exact: m < 2^10 */
	uint32_t r = e == 0 ? sub : e == 31 ? special : normal;
	return sign | r;
}

static inline uint16_t f32_to_bf16(uint32_t u)
{
	uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
	uint32_t nan = (u >> 16) | 0x40u;
	return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

uint16_t tpfs_conv_f32_to_f16(uint32_t x)
{
	return f32_to_f16(x);
}

uint16_t tpfs_conv_f32_to_bf16(uint32_t x)
{
	return f32_to_bf16(x);
}

uint32_t tpfs_conv_f16_to_f32(uint16_t h)
{
	return f16_to_f32(h);
}

/* float64 -> float32 rounded to odd: truncate toward zero, then set the last
 * bit if anything was lost. Rounding that to float16 (24 >= 11 + 2 bits)
 * gives the float64's correctly rounded float16, with no double rounding. */
static inline uint32_t f64_to_f32_odd(double d)
{
	float f = (float)d;
	uint32_t u = f32_bits(f);
	/* Rounded away from zero: step back (|f| > |d| means f is not zero,
	 * and one less than infinity's bits is the largest float). */
	u -= fabs((double)f) > fabs(d);
	return u | ((double)f != d && d == d);
}

/* ---- tables ------------------------------------------------------------ */

enum fp8 { E4M3, E5M2, E4M3FNUZ, E5M2FNUZ, E8M0, NFP8 };

static uint16_t fp8_f16[NFP8][256];
static uint32_t fp8_f32[NFP8][256];
static unsigned char e8m0_f16_overflow[256];
static uint32_t f4_f16_pair[256];   /* both nibbles of a byte, low first */
static uint64_t f4_f32_pair[256];
static float e2m1_pair_f32[256][2]; /* both nibbles of a byte, low first */
static float e8m0_f32[256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* The value of an 8-bit code, from the format's definition. */
static double fp8_value(enum fp8 f, unsigned b)
{
	int s = b >> 7;
	double v;
	switch (f) {
	case E4M3: {
		unsigned e = (b >> 3) & 15, m = b & 7;
		if ((b & 0x7f) == 0x7f)
			return s ? -NAN : NAN;
		v = e ? ldexp(8 + m, (int)e - 7 - 3) : ldexp(m, -6 - 3);
		break;
	}
	case E5M2: {
		unsigned e = (b >> 2) & 31, m = b & 3;
		if (e == 31)
			v = m ? NAN : INFINITY;
		else
			v = e ? ldexp(4 + m, (int)e - 15 - 2) : ldexp(m, -14 - 2);
		break;
	}
	case E4M3FNUZ: {
		unsigned e = (b >> 3) & 15, m = b & 7;
		if (b == 0x80)
			return NAN;
		v = e ? ldexp(8 + m, (int)e - 8 - 3) : ldexp(m, -7 - 3);
		break;
	}
	case E5M2FNUZ: {
		unsigned e = (b >> 2) & 31, m = b & 3;
		if (b == 0x80)
			return NAN;
		v = e ? ldexp(4 + m, (int)e - 16 - 2) : ldexp(m, -15 - 2);
		break;
	}
	case E8M0:
	default:
		return b == 0xff ? NAN : ldexp(1, (int)b - 127);
	}
	return s ? -v : v;
}

static double e2m1_value(unsigned nibble)
{
	unsigned e = (nibble >> 1) & 3, m = nibble & 1;
	double v = e ? ldexp(2 + m, (int)e - 1 - 1) : m * 0.5;
	return nibble & 8 ? -v : v;
}

/* A NaN keeps its sign: float16 0x7e00 or float32 0x7fc00000, signed. */
static uint16_t value_f16(double v)
{
	if (v != v)
		return (uint16_t)(signbit(v) ? 0xfe00u : 0x7e00u);
	return f32_to_f16(f64_to_f32_odd(v));
}

static uint32_t value_f32(double v)
{
	if (v != v)
		return signbit(v) ? 0xffc00000u : 0x7fc00000u;
	return f32_bits((float)v);
}

static void build_tables(void)
{
	for (int f = 0; f < NFP8; f++) {
		for (unsigned b = 0; b < 256; b++) {
			double v = fp8_value((enum fp8)f, b);
			fp8_f16[f][b] = value_f16(v);
			fp8_f32[f][b] = value_f32(v);
		}
	}
	/* E5M2 is the top byte of a half: its NaNs keep their payloads too */
	for (unsigned b = 0; b < 256; b++) {
		fp8_f16[E5M2][b] = (uint16_t)(b << 8);
		fp8_f32[E5M2][b] = f16_to_f32((uint16_t)(b << 8));
	}
	for (unsigned b = 0; b < 256; b++) {
		/* E8M0 is the only 8-bit type with values past float16's range. */
		e8m0_f16_overflow[b] = b != 0xff && (fp8_f16[E8M0][b] & 0x7fffu) == 0x7c00u;
		e8m0_f32[b] = bits_f32(fp8_f32[E8M0][b]);
		double lo = e2m1_value(b & 15), hi = e2m1_value(b >> 4);
		f4_f16_pair[b] = (uint32_t)value_f16(lo) | (uint32_t)value_f16(hi) << 16;
		f4_f32_pair[b] = (uint64_t)value_f32(lo) | (uint64_t)value_f32(hi) << 32;
		e2m1_pair_f32[b][0] = (float)lo;
		e2m1_pair_f32[b][1] = (float)hi;
	}
}

/* ---- kernels ----------------------------------------------------------- */

/* Each kernel copies its arguments into restrict-qualified locals: the
 * compiler then knows the output overlaps neither the input nor the
 * arguments, and vectorizes the loop without run-time checks. */
/* Each kernel is built twice, for AVX2 and for the baseline, and the loader
 * picks the one the processor runs. (The sanitizer build, which the tests
 * also run, keeps only the baseline, so that both are tested.) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
	!defined(TPFS_BASELINE_KERNELS)
#define KERNEL __attribute__((target_clones("avx2", "default"))) static void
#else
#define KERNEL static void
#endif

#define KERNEL_LOCALS(a)                                                          \
	const unsigned char *restrict s = (a)->src;                               \
	unsigned char *restrict d = (a)->dst;                                     \
	const size_t n = (a)->n

KERNEL k_table8_f16(struct tpfs_kernel_args *a)
{
	KERNEL_LOCALS(a);
	const uint16_t *restrict t = a->conv->table;
	const unsigned char *restrict ov = a->conv->overflow_table;
	size_t over = 0;
	for (size_t i = 0; i < n; i++) {
		uint16_t v = t[s[i]];
		memcpy(d + 2 * i, &v, 2);
	}
	if (ov)
		for (size_t i = 0; i < n; i++)
			over += ov[s[i]];
	a->overflows = over;
}

KERNEL k_table8_f32(struct tpfs_kernel_args *a)
{
	KERNEL_LOCALS(a);
	const uint32_t *restrict t = a->conv->table;
	for (size_t i = 0; i < n; i++) {
		uint32_t v = t[s[i]];
		memcpy(d + 4 * i, &v, 4);
	}
}

KERNEL k_f4_f16(struct tpfs_kernel_args *a)
{
	KERNEL_LOCALS(a);
	for (size_t i = 0; i < n / 2; i++) {
		uint32_t v = f4_f16_pair[s[i]];
		memcpy(d + 4 * i, &v, 4);
	}
}

KERNEL k_f4_f32(struct tpfs_kernel_args *a)
{
	KERNEL_LOCALS(a);
	for (size_t i = 0; i < n / 2; i++) {
		uint64_t v = f4_f32_pair[s[i]];
		memcpy(d + 8 * i, &v, 8);
	}
}

KERNEL k_bf16_f32(struct tpfs_kernel_args *a)
{
	KERNEL_LOCALS(a);
	for (size_t i = 0; i < n; i++) {
		uint32_t w = (uint32_t)load16(s + 2 * i) << 16;
		memcpy(d + 4 * i, &w, 4);
	}
}

KERNEL k_bf16_f16(struct tpfs_kernel_args *a)
{
	KERNEL_LOCALS(a);
	size_t over = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t x = (uint32_t)load16(s + 2 * i) << 16;
		uint16_t h = f32_to_f16(x);
		over += f32_overflows_f16(x);
		memcpy(d + 2 * i, &h, 2);
	}
	a->overflows = over;
}

KERNEL k_f16_f32(struct tpfs_kernel_args *a)
{
	KERNEL_LOCALS(a);
	for (size_t i = 0; i < n; i++) {
		uint32_t w = f16_to_f32(load16(s + 2 * i));
		memcpy(d + 4 * i, &w, 4);
	}
}

KERNEL k_f32_f16(struct tpfs_kernel_args *a)
{
	KERNEL_LOCALS(a);
	size_t over = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t x = load32(s + 4 * i);
		uint16_t h = f32_to_f16(x);
		over += f32_overflows_f16(x);
		memcpy(d + 2 * i, &h, 2);
	}
	a->overflows = over;
}

KERNEL k_f64_f32(struct tpfs_kernel_args *a)
{
	KERNEL_LOCALS(a);
	size_t over = 0;
	for (size_t i = 0; i < n; i++) {
		double x;
		memcpy(&x, s + 8 * i, 8);
		float f = (float)x;
		over += isinf(f) && !isinf(x);
		memcpy(d + 4 * i, &f, 4);
	}
	a->overflows = over;
}

KERNEL k_f64_f16(struct tpfs_kernel_args *a)
{
	KERNEL_LOCALS(a);
	size_t over = 0;
	for (size_t i = 0; i < n; i++) {
		double x;
		memcpy(&x, s + 8 * i, 8);
		uint16_t h = x != x ? (uint16_t)(signbit(x) ? 0xfe00u : 0x7e00u)
				    : f32_to_f16(f64_to_f32_odd(x));
		over += (h & 0x7fffu) == 0x7c00u && !isinf(x);
		memcpy(d + 2 * i, &h, 2);
	}
	a->overflows = over;
}

/* One group of 32 MXFP4 values as exact float32 products: the E2M1 values
 * times 2^(scale - 127), which is a float32 (a subnormal for scale 0), so
 * the product is exact wherever it is in range. */
static inline void mxfp4_group(const unsigned char *restrict blocks,
			       unsigned char scale, float out[restrict 32])
{
	for (int j = 0; j < 16; j++)
		memcpy(out + 2 * j, e2m1_pair_f32[blocks[j]], 8);
	float m = e8m0_f32[scale];
	for (int j = 0; j < 32; j++)
		out[j] *= m;
}

KERNEL k_mxfp4_f32(struct tpfs_kernel_args *a)
{
	KERNEL_LOCALS(a);
	const unsigned char *restrict sc = a->src2;
	size_t over = 0;
	for (size_t g = 0; g < n / 32; g++) {
		float v[32];
		mxfp4_group(s + 16 * g, sc[g], v);
		for (int j = 0; j < 32; j++)
			over += isinf(v[j]) != 0; /* glibc's isinf is -1 for -inf */
		memcpy(d + 128 * g, v, sizeof(v));
	}
	a->overflows = over;
}

/* MXFP4 to a 16-bit float: the exact float32 values, each rounded once. */
static inline void mxfp4_narrow(struct tpfs_kernel_args *a, bool bf16)
{
	KERNEL_LOCALS(a);
	const unsigned char *restrict sc = a->src2;
	size_t over = 0;
	for (size_t g = 0; g < n / 32; g++) {
		float v[32];
		uint16_t h[32];
		mxfp4_group(s + 16 * g, sc[g], v);
		for (int j = 0; j < 32; j++) {
			uint32_t x = f32_bits(v[j]);
			h[j] = bf16 ? f32_to_bf16(x) : f32_to_f16(x);
			size_t inf = (x & 0x7fffffffu) == 0x7f800000u;
			over += bf16 ? inf : f32_overflows_f16(x) | inf;
		}
		memcpy(d + 64 * g, h, sizeof(h));
	}
	a->overflows = over;
}

KERNEL k_mxfp4_f16(struct tpfs_kernel_args *a)
{
	mxfp4_narrow(a, false);
}

KERNEL k_mxfp4_bf16(struct tpfs_kernel_args *a)
{
	mxfp4_narrow(a, true);
}

/* ---- the conversions ---------------------------------------------------- */

enum {
	C_NONE, C_BF16_RAW, C_FP8_RAW, C_F6_RAW,
	C_BF16_F32, C_BF16_F16, C_F16_F32, C_F32_F16, C_F64_F32, C_F64_F16,
	C_FP8_F16, /* + enum fp8 */
	C_FP8_F32 = C_FP8_F16 + NFP8,
	C_F4_F16 = C_FP8_F32 + NFP8, C_F4_F32,
	C_MXFP4_F32, C_MXFP4_F16, C_MXFP4_BF16,
	C_COUNT
};

#define STORED(id, name, descr) [id] = {id, TPFS_CONV_STORED, name, descr, 0, true, NULL, NULL, NULL}
#define ELEMENT(id, name, descr, bytes, exact, kernel, table, ov) \
	[id] = {id, TPFS_CONV_ELEMENT, name, descr, bytes, exact, kernel, table, ov}
#define FP8(f, lower)                                                                 \
	ELEMENT(C_FP8_F16 + f, lower "->f16", "<f2", 2, f != E8M0, k_table8_f16,       \
		fp8_f16[f], f == E8M0 ? e8m0_f16_overflow : NULL),                     \
	ELEMENT(C_FP8_F32 + f, lower "->f32", "<f4", 4, true, k_table8_f32, fp8_f32[f], NULL)

static const struct tpfs_conv convs[C_COUNT] = {
	STORED(C_NONE, "none", NULL),
	STORED(C_BF16_RAW, "bf16 bits (raw)", "|V2"),
	STORED(C_FP8_RAW, "fp8 bits (raw)", "|u1"),
	STORED(C_F6_RAW, "f6 bytes (raw; packing undefined)", "|u1"),
	ELEMENT(C_BF16_F32, "bf16->f32", "<f4", 4, true, k_bf16_f32, NULL, NULL),
	ELEMENT(C_BF16_F16, "bf16->f16", "<f2", 2, false, k_bf16_f16, NULL, NULL),
	ELEMENT(C_F16_F32, "f16->f32", "<f4", 4, true, k_f16_f32, NULL, NULL),
	ELEMENT(C_F32_F16, "f32->f16", "<f2", 2, false, k_f32_f16, NULL, NULL),
	ELEMENT(C_F64_F32, "f64->f32", "<f4", 4, false, k_f64_f32, NULL, NULL),
	ELEMENT(C_F64_F16, "f64->f16", "<f2", 2, false, k_f64_f16, NULL, NULL),
	FP8(E4M3, "f8_e4m3"),
	FP8(E5M2, "f8_e5m2"),
	FP8(E4M3FNUZ, "f8_e4m3fnuz"),
	FP8(E5M2FNUZ, "f8_e5m2fnuz"),
	FP8(E8M0, "f8_e8m0"),
	ELEMENT(C_F4_F16, "f4->f16", "<f2", 2, true, k_f4_f16, NULL, NULL),
	ELEMENT(C_F4_F32, "f4->f32", "<f4", 4, true, k_f4_f32, NULL, NULL),
	[C_MXFP4_F32] = {C_MXFP4_F32, TPFS_CONV_MXFP4, "mxfp4->f32", "<f4", 4, true,
			 k_mxfp4_f32, NULL, NULL},
	[C_MXFP4_F16] = {C_MXFP4_F16, TPFS_CONV_MXFP4, "mxfp4->f16", "<f2", 2, false,
			 k_mxfp4_f16, NULL, NULL},
	[C_MXFP4_BF16] = {C_MXFP4_BF16, TPFS_CONV_MXFP4, "mxfp4->bf16", "|V2", 2, true,
			  k_mxfp4_bf16, NULL, NULL},
};

static const struct tpfs_conv *conv(int id)
{
	pthread_once(&tables_once, build_tables);
	return &convs[id];
}

/* The output a floating type gets: dtype=f32/f16 overrides its own option. */
static enum tpfs_out choice(const struct tpfs_options *o, enum tpfs_out own)
{
	return o->dtype != TPFS_OUT_AUTO ? o->dtype : own;
}

const struct tpfs_conv *tpfs_conv_for(enum tpfs_dtype dt, const struct tpfs_options *o)
{
	static const enum fp8 fp8_of[TPFS_DT_COUNT] = {
		[TPFS_DT_F8_E4M3] = E4M3, [TPFS_DT_F8_E5M2] = E5M2,
		[TPFS_DT_F8_E4M3FNUZ] = E4M3FNUZ, [TPFS_DT_F8_E5M2FNUZ] = E5M2FNUZ,
		[TPFS_DT_F8_E8M0] = E8M0,
	};
	switch (dt) {
	case TPFS_DT_BF16:
		switch (choice(o, o->bf16)) {
		case TPFS_OUT_F16:
			return conv(C_BF16_F16);
		case TPFS_OUT_RAW:
			return conv(C_BF16_RAW);
		default:
			return conv(C_BF16_F32);
		}
	case TPFS_DT_F16:
		return conv(o->dtype == TPFS_OUT_F32 ? C_F16_F32 : C_NONE);
	case TPFS_DT_F32:
		return conv(o->dtype == TPFS_OUT_F16 ? C_F32_F16 : C_NONE);
	case TPFS_DT_F64:
		return conv(o->dtype == TPFS_OUT_F32   ? C_F64_F32
			    : o->dtype == TPFS_OUT_F16 ? C_F64_F16
						       : C_NONE);
	case TPFS_DT_F8_E8M0:
		/* A scale type: float32 unless dtype=f16 asks otherwise, since
		 * float16 cannot hold most of its values. */
		if (o->dtype == TPFS_OUT_AUTO && o->fp8 == TPFS_OUT_RAW)
			return conv(C_FP8_RAW);
		return conv(o->dtype == TPFS_OUT_F16 ? C_FP8_F16 + E8M0 : C_FP8_F32 + E8M0);
	case TPFS_DT_F8_E4M3:
	case TPFS_DT_F8_E5M2:
	case TPFS_DT_F8_E4M3FNUZ:
	case TPFS_DT_F8_E5M2FNUZ:
		switch (choice(o, o->fp8)) {
		case TPFS_OUT_F32:
			return conv(C_FP8_F32 + fp8_of[dt]);
		case TPFS_OUT_RAW:
			return conv(C_FP8_RAW);
		default:
			return conv(C_FP8_F16 + fp8_of[dt]);
		}
	case TPFS_DT_F4:
		return conv(o->dtype == TPFS_OUT_F32 ? C_F4_F32 : C_F4_F16);
	case TPFS_DT_F6_E2M3:
	case TPFS_DT_F6_E3M2:
		return conv(C_F6_RAW);
	default:
		return conv(C_NONE);
	}
}

const struct tpfs_conv *tpfs_conv_mxfp4(const struct tpfs_options *o)
{
	switch (choice(o, o->mxfp4)) {
	case TPFS_OUT_RAW:
		return NULL;
	case TPFS_OUT_F16:
		return conv(C_MXFP4_F16);
	case TPFS_OUT_BF16:
		return conv(C_MXFP4_BF16);
	default:
		return conv(C_MXFP4_F32);
	}
}

void tpfs_conv_inputs(const struct tpfs_conv *cv, enum tpfs_dtype dt, uint64_t elem0,
		      uint64_t n, struct tpfs_conv_input in[2])
{
	if (cv->kind == TPFS_CONV_MXFP4) {
		in[0] = (struct tpfs_conv_input){elem0 / 2, n / 2};
		in[1] = (struct tpfs_conv_input){elem0 / 32, n / 32};
		return;
	}
	unsigned bits = tpfs_dtype_info(dt)->bits;
	in[0] = (struct tpfs_conv_input){elem0 * bits / 8, n * bits / 8};
	in[1] = (struct tpfs_conv_input){0, 0};
}
