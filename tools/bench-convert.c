/*
 * bench-convert: the conversion rate of every kernel on one core, next to
 * memcpy of the same output bytes, converting in block-sized pieces as the
 * daemon does. Float inputs hold values like trained weights (uniform in
 * about +-0.034); 8- and 4-bit codes and MXFP4 blocks are random bytes, and
 * MXFP4 scales lie in GPT-OSS's usual range. Prints figures and ratios;
 * asserts nothing.
 *
 *   bench-convert [MiB of output per kernel (default 128)] [block KiB (1024)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tpfs/conv.h"
#include "tpfs/error.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct job {
	const char *label;
	enum tpfs_dtype dt; /* TPFS_DT_COUNT: an MXFP4 pair */
	const char *opts;
};

static void apply(struct tpfs_options *o, const char *list)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		struct tpfs_error e;
		if (tpfs_options_apply(o, t, &e) != 0) {
			fprintf(stderr, "bench-convert: bad option %s\n", t);
			exit(2);
		}
	}
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "bench-convert: out of memory\n");
		exit(1);
	}
	return p;
}

int main(int argc, char **argv)
{
	size_t total = (size_t)(argc > 1 ? atol(argv[1]) : 128) << 20;
	size_t block = (size_t)(argc > 2 ? atol(argv[2]) : 1024) << 10;
	if (!total || !block || block % 128 || total % block) {
		fprintf(stderr, "usage: bench-convert [MiB] [block KiB]\n");
		return 2;
	}
	static const struct job jobs[] = {
		{"bf16 -> f32", TPFS_DT_BF16, ""},
		{"bf16 -> f16", TPFS_DT_BF16, "bf16=f16"},
		{"f16 -> f32", TPFS_DT_F16, "dtype=f32"},
		{"f32 -> f16", TPFS_DT_F32, "dtype=f16"},
		{"f64 -> f32", TPFS_DT_F64, "dtype=f32"},
		{"f64 -> f16", TPFS_DT_F64, "dtype=f16"},
		{"f8_e4m3 -> f16", TPFS_DT_F8_E4M3, ""},
		{"f8_e4m3 -> f32", TPFS_DT_F8_E4M3, "fp8=f32"},
		{"f8_e5m2 -> f16", TPFS_DT_F8_E5M2, ""},
		{"f8_e4m3fnuz -> f16", TPFS_DT_F8_E4M3FNUZ, ""},
		{"f8_e5m2fnuz -> f16", TPFS_DT_F8_E5M2FNUZ, ""},
		{"f8_e8m0 -> f32", TPFS_DT_F8_E8M0, ""},
		{"f4 -> f16", TPFS_DT_F4, ""},
		{"f4 -> f32", TPFS_DT_F4, "dtype=f32"},
		{"mxfp4 -> f32", TPFS_DT_COUNT, ""},
		{"mxfp4 -> f16", TPFS_DT_COUNT, "mxfp4=f16"},
		{"mxfp4 -> bf16", TPFS_DT_COUNT, "mxfp4=bf16"},
	};
	/* At most total / 2 elements (2-byte outputs), in each input type. */
	size_t elems = total / 2;
	unsigned char *codes = xmalloc(elems), *scales = xmalloc(elems / 32 + 1);
	double *f64 = xmalloc(elems * 8);
	float *f32 = xmalloc(elems * 4);
	uint16_t *f16 = xmalloc(elems * 2), *bf16 = xmalloc(elems * 2);
	unsigned char *dst = xmalloc(total);
	uint32_t x = 1;
	for (size_t i = 0; i < elems; i++) {
		x = x * 1664525u + 1013904223u;
		codes[i] = (unsigned char)(x >> 24);
		f64[i] = 0.068 * (((x >> 8) + 0.5) / 16777216.0 - 0.5);
		f32[i] = (float)f64[i];
		uint32_t b;
		memcpy(&b, &f32[i], 4);
		f16[i] = tpfs_conv_f32_to_f16(b);
		bf16[i] = tpfs_conv_f32_to_bf16(b);
	}
	for (size_t i = 0; i < elems / 32 + 1; i++)
		scales[i] = (unsigned char)(118 + i % 7);
	memset(dst, 0, total);

	double best = 1e9;
	for (int r = 0; r < 5; r++) {
		double t = now();
		for (size_t at = 0; at < total; at += block)
			memcpy(dst + at, (unsigned char *)f64 + at, block);
		t = now() - t;
		best = t < best ? t : best;
	}
	double memcpy_rate = (double)total / best;
	printf("%-20s %14s %12s %10s\n", "kernel", "values/s", "output GB/s", "/ memcpy");
	printf("%-20s %14s %12.2f %10s\n", "memcpy", "-", memcpy_rate / 1e9, "1.00");
	for (size_t j = 0; j < sizeof(jobs) / sizeof(jobs[0]); j++) {
		struct tpfs_options o;
		tpfs_options_defaults(&o);
		apply(&o, jobs[j].opts);
		enum tpfs_dtype dt = jobs[j].dt;
		const struct tpfs_conv *c = dt == TPFS_DT_COUNT ? tpfs_conv_mxfp4(&o)
							       : tpfs_conv_for(dt, &o);
		unsigned in_bits = dt == TPFS_DT_COUNT ? 4 : tpfs_dtype_info(dt)->bits;
		const unsigned char *in = dt == TPFS_DT_F64   ? (const unsigned char *)f64
					  : dt == TPFS_DT_F32  ? (const unsigned char *)f32
					  : dt == TPFS_DT_F16  ? (const unsigned char *)f16
					  : dt == TPFS_DT_BF16 ? (const unsigned char *)bf16
							       : codes;
		size_t per_block = block / c->out_bytes;
		best = 1e9;
		for (int r = 0; r < 5; r++) {
			double t = now();
			for (size_t at = 0; at < total; at += block) {
				size_t e0 = at / c->out_bytes;
				struct tpfs_kernel_args a = {c,	in + e0 * in_bits / 8,
							     scales + e0 / 32, dst + at,
							     per_block, 0};
				c->kernel(&a);
			}
			t = now() - t;
			best = t < best ? t : best;
		}
		printf("%-20s %14.3e %12.2f %10.2f\n", jobs[j].label,
		       (double)(total / c->out_bytes) / best, (double)total / best / 1e9,
		       (double)total / best / memcpy_rate);
	}
	free(codes);
	free(scales);
	free(f64);
	free(f32);
	free(f16);
	free(bf16);
	free(dst);
	return 0;
}
