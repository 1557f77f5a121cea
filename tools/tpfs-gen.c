/*
 * tpfs-gen: writes synthetic Safetensors model folders shaped like GPT-OSS,
 * reproducibly from a seed, at disk speed.
 *
 * Values look like a freshly initialised model: linear weights and
 * embeddings normal with std 0.02, norms 1, biases 0, MXFP4 expert weights
 * as FP4 nibbles drawn from a normal distribution with E8M0 scales around
 * 2^-8. Normal variates come from a 65536-entry inverse-CDF table indexed by
 * 16 random bits, which is fast enough to keep up with the disk.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tpfs/conv.h"
#include "tpfs/buf.h"
#include "tpfs/dtype.h"
#include "tpfs/size.h"
#include "tpfs/path.h"

enum fill { NORMAL, ONES, ZEROS, FP4_BLOCKS, E8M0_SCALES };

/* The dtypes of values (besides MXFP4 pairs, which are U8), as --dtype and
 * --tensor spell them: the Safetensors names, in any case. */
#define VALUE_DTYPES "bf16, f16, f32, f8_e4m3, f8_e5m2"

#define NAME_LEN 150 /* the longest --tensor name: room for _blocks */

struct tensor {
	char name[NAME_LEN + 10];
	enum tpfs_dtype dt;
	int ndim;
	uint64_t shape[4];
	enum fill fill;
	float std;
	uint64_t bytes;
	uint64_t params;   /* values it stands for (MXFP4: two a byte, scales none) */
	int shard;
	uint64_t offset;   /* within its shard's data */
};

struct config {
	const char *out;
	int layers, hidden, experts, vocab, heads, kv_heads, head_dim, intermediate;
	enum tpfs_dtype dt;
	bool mxfp4, tie_embeddings, sparse, quiet, force;
	int shards;
	uint64_t seed;
	const char *preset;
	char **custom;     /* --tensor specs */
	int ncustom;
};

static struct tensor *tensors;
static int ntensors;

/* ---- random numbers ---------------------------------------------------- */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL ^ stream;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

static float normal_table[65536];

/* Inverse of the standard normal CDF (Acklam's rational approximation,
 * relative error below 1.2e-9). */
static double inv_norm(double p)
{
	static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
				   -2.759285104469687e+02, 1.383577518672690e+02,
				   -3.066479806614716e+01, 2.506628277459239e+00};
	static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
				   -1.556989798598866e+02, 6.680131188771972e+01,
				   -1.328068155288572e+01};
	static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
				   -2.400758277161838e+00, -2.549732539343734e+00,
				   4.374664141464968e+00, 2.938163982698783e+00};
	static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
				   2.445134137142996e+00, 3.754408661907416e+00};
	double q, r;
	if (p < 0.02425) {
		q = sqrt(-2 * log(p));
		return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
		       ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
	}
	if (p > 1 - 0.02425)
		return -inv_norm(1 - p);
	q = p - 0.5;
	r = q * q;
	return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
	       (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

static void init_normal_table(void)
{
	for (int i = 0; i < 65536; i++)
		normal_table[i] = (float)inv_norm((i + 0.5) / 65536.0);
}

/* ---- value encodings --------------------------------------------------- */

/* A float's bits, for the library's rounding conversions. */
static uint32_t bits_of(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/* FP4 E2M1 code of the value nearest to x (magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6). */
static unsigned fp4_code(float x)
{
	static const float mag[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
	float a = fabsf(x);
	unsigned best = 0;
	for (unsigned i = 1; i < 8; i++)
		if (fabsf(mag[i] - a) < fabsf(mag[best] - a))
			best = i;
	return (x < 0 ? 8u : 0u) | best;
}

/* The OFP8 code of x, rounded to nearest even: E4M3 (bias 7, 3 mantissa
 * bits, no infinity: past the largest finite, 448, it saturates, as
 * S.1111.111 is NaN) or E5M2 (bias 15, 2 mantissa bits, IEEE-like: from
 * halfway past the largest finite, 57344, it is infinity). A value of
 * binade 2^e (or of the subnormal range, below the least normal) is n
 * steps of 2^(e - mantissa bits) with n from 2^mbits to 2^(mbits + 1):
 * rounding n to even may carry into the next binade, which the code's
 * exponent field takes as it is. */
static unsigned char fp8_code(float x, enum tpfs_dtype dt)
{
	bool e4m3 = dt == TPFS_DT_F8_E4M3;
	int mbits = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
	unsigned sign = signbit(x) ? 0x80 : 0;
	float a = fabsf(x);
	if (a != a)
		return (unsigned char)(sign | 0x7f);
	if (a >= (e4m3 ? 448.0f : 61440.0f))
		return (unsigned char)(sign | (e4m3 ? 0x7e : 0x7c));
	if (a == 0)
		return (unsigned char)sign;
	int e;
	frexpf(a, &e); /* a is in [2^(e - 1), 2^e) */
	int exp = e - 1 < 1 - bias ? 1 - bias : e - 1;
	unsigned n = (unsigned)nearbyintf(ldexpf(a, mbits - exp));
	return (unsigned char)(sign | (((unsigned)(exp + bias) << mbits) + n - (1u << mbits)));
}

static void fill_values(const struct tensor *t, struct rng *r, unsigned char *out,
			uint64_t n)
{
	uint64_t bits = 0;
	int left = 0;
	for (uint64_t i = 0; i < n; i++) {
		float v = 0;
		switch (t->fill) {
		case ONES:
			v = 1;
			break;
		case ZEROS:
			v = 0;
			break;
		case NORMAL:
			if (left == 0) {
				bits = rng_next(r);
				left = 4;
			}
			v = normal_table[bits & 0xffff] * t->std;
			bits >>= 16;
			left--;
			break;
		case FP4_BLOCKS: {
			/* Two nibbles of normal values scaled to use the FP4 range. */
			uint64_t w = rng_next(r);
			unsigned lo = fp4_code(normal_table[w & 0xffff] * 2.0f);
			unsigned hi = fp4_code(normal_table[(w >> 16) & 0xffff] * 2.0f);
			out[i] = (unsigned char)(lo | hi << 4);
			continue;
		}
		case E8M0_SCALES: {
			/* around 2^-8: with FP4 codes of spread ~2, weights of ~0.01 */
			double s = 119 + normal_table[rng_next(r) & 0xffff];
			out[i] = (unsigned char)(s < 110 ? 110 : s > 125 ? 125 : lround(s));
			continue;
		}
		}
		switch (t->dt) {
		case TPFS_DT_BF16: {
			uint16_t h = tpfs_conv_f32_to_bf16(bits_of(v));
			memcpy(out + 2 * i, &h, 2);
			break;
		}
		case TPFS_DT_F16: {
			uint16_t h = tpfs_conv_f32_to_f16(bits_of(v));
			memcpy(out + 2 * i, &h, 2);
			break;
		}
		case TPFS_DT_F8_E4M3:
		case TPFS_DT_F8_E5M2:
			out[i] = fp8_code(v, t->dt);
			break;
		default: /* F32: U8 tensors are filled above */
			memcpy(out + 4 * i, &v, 4);
			break;
		}
	}
}

/* ---- the model --------------------------------------------------------- */

static unsigned dt_size(enum tpfs_dtype dt)
{
	return tpfs_dtype_info(dt)->bits / 8;
}

static void add(const char *name, enum tpfs_dtype dt, enum fill fill, float std, int ndim,
		...)
{
	struct tensor *t = realloc(tensors, (size_t)(ntensors + 1) * sizeof(*t));
	if (!t) {
		fprintf(stderr, "tpfs-gen: out of memory\n");
		exit(1);
	}
	tensors = t;
	t = &tensors[ntensors++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->dt = dt;
	t->fill = fill;
	t->std = std;
	t->ndim = ndim;
	va_list ap;
	va_start(ap, ndim);
	uint64_t n = 1;
	for (int i = 0; i < ndim; i++) {
		t->shape[i] = va_arg(ap, uint64_t);
		n *= t->shape[i];
	}
	va_end(ap);
	t->bytes = n * dt_size(dt);
	t->params = fill == FP4_BLOCKS ? n * 2 : fill == E8M0_SCALES ? 0 : n;
}

#define U(x) ((uint64_t)(x))

/* An MXFP4 weight [E, rows, cols] as _blocks [E, rows, cols/32, 16] and
 * _scales [E, rows, cols/32], plus its BF16 bias [E, rows]. */
static void expert_weight(const char *base, const struct config *c, int rows, int cols)
{
	char n[160];
	if (c->mxfp4) {
		snprintf(n, sizeof(n), "%s_blocks", base);
		add(n, TPFS_DT_U8, FP4_BLOCKS, 0, 4, U(c->experts), U(rows), U(cols / 32), U(16));
		snprintf(n, sizeof(n), "%s_scales", base);
		add(n, TPFS_DT_U8, E8M0_SCALES, 0, 3, U(c->experts), U(rows), U(cols / 32));
	} else {
		add(base, c->dt, NORMAL, 0.02f, 3, U(c->experts), U(rows), U(cols));
	}
	snprintf(n, sizeof(n), "%s_bias", base);
	add(n, c->dt, ZEROS, 0, 2, U(c->experts), U(rows));
}

static void build_gpt_oss(const struct config *c)
{
	char n[160];
	int q = c->heads * c->head_dim, kv = c->kv_heads * c->head_dim;
	add("model.embed_tokens.weight", c->dt, NORMAL, 0.02f, 2, U(c->vocab), U(c->hidden));
	for (int l = 0; l < c->layers; l++) {
#define L(suffix) (snprintf(n, sizeof(n), "model.layers.%d.%s", l, suffix), n)
		add(L("input_layernorm.weight"), c->dt, ONES, 0, 1, U(c->hidden));
		add(L("self_attn.q_proj.weight"), c->dt, NORMAL, 0.02f, 2, U(q), U(c->hidden));
		add(L("self_attn.q_proj.bias"), c->dt, ZEROS, 0, 1, U(q));
		add(L("self_attn.k_proj.weight"), c->dt, NORMAL, 0.02f, 2, U(kv), U(c->hidden));
		add(L("self_attn.k_proj.bias"), c->dt, ZEROS, 0, 1, U(kv));
		add(L("self_attn.v_proj.weight"), c->dt, NORMAL, 0.02f, 2, U(kv), U(c->hidden));
		add(L("self_attn.v_proj.bias"), c->dt, ZEROS, 0, 1, U(kv));
		add(L("self_attn.o_proj.weight"), c->dt, NORMAL, 0.02f, 2, U(c->hidden), U(q));
		add(L("self_attn.o_proj.bias"), c->dt, ZEROS, 0, 1, U(c->hidden));
		add(L("self_attn.sinks"), c->dt, NORMAL, 0.02f, 1, U(c->heads));
		add(L("post_attention_layernorm.weight"), c->dt, ONES, 0, 1, U(c->hidden));
		add(L("mlp.router.weight"), c->dt, NORMAL, 0.02f, 2, U(c->experts), U(c->hidden));
		add(L("mlp.router.bias"), c->dt, ZEROS, 0, 1, U(c->experts));
		expert_weight(L("mlp.experts.gate_up_proj"), c, 2 * c->intermediate, c->hidden);
		expert_weight(L("mlp.experts.down_proj"), c, c->hidden, c->intermediate);
#undef L
	}
	add("model.norm.weight", c->dt, ONES, 0, 1, U(c->hidden));
	if (!c->tie_embeddings)
		add("lm_head.weight", c->dt, NORMAL, 0.02f, 2, U(c->vocab), U(c->hidden));
}

/* A dtype of values, as VALUE_DTYPES spells it. Returns 0, or -1 for
 * another name. */
static int parse_dtype(const char *name, enum tpfs_dtype *dt)
{
	char up[16];
	size_t n = strlen(name);
	if (n >= sizeof(up))
		return -1;
	for (size_t i = 0; i <= n; i++)
		up[i] = (char)toupper((unsigned char)name[i]);
	if (tpfs_dtype_parse(up, dt) < 0)
		return -1;
	return *dt == TPFS_DT_BF16 || *dt == TPFS_DT_F16 || *dt == TPFS_DT_F32 ||
			       *dt == TPFS_DT_F8_E4M3 || *dt == TPFS_DT_F8_E5M2
		       ? 0
		       : -1;
}

static bool taken(const char *name)
{
	for (int i = 0; i < ntensors; i++)
		if (strcmp(tensors[i].name, name) == 0)
			return true;
	return false;
}

/* The tensors of --tensor NAME=DTYPE:D0xD1x... (SHAPE empty for a scalar).
 * Returns 0, or -1 with the rule spec breaks in why. */
static int build_custom(const char *spec, char *why, size_t len)
{
	const char *eq = strchr(spec, '='), *colon = eq ? strchr(eq, ':') : NULL;
	if (!colon) {
		snprintf(why, len, "expected NAME=DTYPE:SHAPE, such as w=bf16:4096x4096");
		return -1;
	}
	int nlen = (int)(eq - spec), dlen = (int)(colon - eq - 1);
	if (nlen == 0 || nlen > NAME_LEN) {
		snprintf(why, len, nlen ? "the name is longer than %d bytes" : "the name is empty",
			 NAME_LEN);
		return -1;
	}
	char name[NAME_LEN + 1], dts[16] = "";
	snprintf(name, sizeof(name), "%.*s", nlen, spec);
	if (dlen < (int)sizeof(dts))
		snprintf(dts, sizeof(dts), "%.*s", dlen, eq + 1);
	enum tpfs_dtype dt = TPFS_DT_U8;
	bool mxfp4 = strcasecmp(dts, "mxfp4") == 0;
	if (!mxfp4 && parse_dtype(dts, &dt) < 0) {
		snprintf(why, len, "the dtype is one of " VALUE_DTYPES ", or mxfp4 for a "
				   "_blocks/_scales pair, not '%.*s'",
			 dlen, eq + 1);
		return -1;
	}
	/* dimensions joined by x; an MXFP4 pair's blocks take one more */
	int most = mxfp4 ? 3 : 4, nd = 0;
	uint64_t d[4] = {0}, bytes = mxfp4 ? 1 : dt_size(dt);
	const char *p = colon + 1;
	for (bool more = *p; more;) {
		char *end = (char *)p;
		errno = 0;
		uint64_t v = isdigit((unsigned char)*p) ? strtoull(p, &end, 10) : 0;
		int n = (int)strcspn(p, "x");
		if (end == p || (*end && *end != 'x') || errno) {
			snprintf(why, len, "a dimension is a whole number below 2^64, not '%.*s'", n,
				 p);
			return -1;
		}
		if (nd == most) {
			snprintf(why, len, "%s at most %d dimensions",
				 mxfp4 ? "an mxfp4 pair takes" : "tpfs-gen writes", most);
			return -1;
		}
		d[nd++] = v;
		if (!tpfs_size_mul(bytes, v, &bytes)) {
			snprintf(why, len, "the tensor has more than 2^64 bytes");
			return -1;
		}
		more = *end == 'x';
		p = end + 1;
	}
	if (mxfp4 && (nd == 0 || d[nd - 1] % 32)) {
		snprintf(why, len, nd ? "an mxfp4 pair's last dimension is a multiple of 32 (a "
					"scale for each 32 values), not %" PRIu64
				      : "an mxfp4 pair has at least one dimension",
			 nd ? d[nd - 1] : 0);
		return -1;
	}
	char blocks[NAME_LEN + 10], scales[NAME_LEN + 10];
	snprintf(blocks, sizeof(blocks), "%s_blocks", name);
	snprintf(scales, sizeof(scales), "%s_scales", name);
	const char *clash = !mxfp4 ? (taken(name) ? name : NULL)
			   : taken(blocks) ? blocks
			   : taken(scales) ? scales
					   : NULL;
	if (clash) {
		snprintf(why, len, "each name once: '%s' is given twice", clash);
		return -1;
	}
	if (!mxfp4) {
		add(name, dt, NORMAL, 0.02f, nd, d[0], d[1], d[2], d[3]);
		return 0;
	}
	uint64_t sh[4] = {0};
	memcpy(sh, d, sizeof(uint64_t) * (size_t)nd);
	sh[nd - 1] = d[nd - 1] / 32;
	sh[nd] = 16;
	add(blocks, TPFS_DT_U8, FP4_BLOCKS, 0, nd + 1, sh[0], sh[1], sh[2], sh[3]);
	sh[nd] = 0;
	add(scales, TPFS_DT_U8, E8M0_SCALES, 0, nd, sh[0], sh[1], sh[2], sh[3]);
	return 0;
}

/* ---- writing ----------------------------------------------------------- */

static uint64_t total_bytes, written;
static struct timespec t_start, t_last;

static double since(const struct timespec *a)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - a->tv_sec) + (double)(now.tv_nsec - a->tv_nsec) / 1e9;
}

static void progress(const struct config *c, bool last)
{
	if (c->quiet || c->sparse || total_bytes < (256ULL << 20))
		return;
	if (!last && since(&t_last) < 0.5)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t_last);
	char a[32], b[32];
	double s = since(&t_start);
	fprintf(stderr, "\r  %s of %s, %.0f MB/s   %s", tpfs_size_format(written, a, sizeof(a)),
		tpfs_size_format(total_bytes, b, sizeof(b)),
		s > 0 ? (double)written / s / 1e6 : 0.0, last ? "\n" : "");
}

static char *shard_name(int k, int n)
{
	char *s;
	if (n == 1)
		return strdup("model.safetensors");
	if (asprintf(&s, "model-%05d-of-%05d.safetensors", k + 1, n) < 0)
		return NULL;
	return s;
}

/* A file made anew at path: whatever had the name is removed first (with
 * --force, a file of another model; never written through, even where it
 * is a link). Returns its fd, or -1 with errno set. */
static int create_file(const char *path)
{
	if (unlink(path) < 0 && errno != ENOENT)
		return -1;
	return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
}

static int write_shard(const struct config *c, int k, const char *path)
{
	struct tpfs_buf h = {0};
	tpfs_buf_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
	uint64_t data = 0;
	for (int i = 0; i < ntensors; i++) {
		struct tensor *t = &tensors[i];
		if (t->shard != k)
			continue;
		tpfs_buf_puts(&h, ",");
		tpfs_buf_json_string(&h, t->name);
		tpfs_buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", tpfs_dtype_info(t->dt)->name);
		for (int d = 0; d < t->ndim; d++)
			tpfs_buf_printf(&h, "%s%" PRIu64, d ? "," : "", t->shape[d]);
		tpfs_buf_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", data,
				data + t->bytes);
		t->offset = data;
		data += t->bytes;
	}
	tpfs_buf_puts(&h, "}");
	while (h.len % 8)
		tpfs_buf_puts(&h, " ");
	size_t hlen;
	char *header = tpfs_buf_take(&h, &hlen);
	int fd = create_file(path);
	if (!header || fd < 0) {
		fprintf(stderr, "tpfs-gen: %s: %s\n", path, strerror(errno));
		free(header);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	unsigned char len8[8];
	for (int i = 0; i < 8; i++)
		len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
	int rc = tpfs_path_write_all(fd, len8, 8);
	if (rc == 0)
		rc = tpfs_path_write_all(fd, header, hlen);
	free(header);
	if (rc == 0 && c->sparse) {
		/* The full size as a hole: the structure costs no disk. */
		rc = ftruncate(fd, (off_t)(8 + hlen + data)) < 0 ? -errno : 0;
		written += data;
	}
	enum { CHUNK = 8 << 20 };
	unsigned char *buf = c->sparse ? NULL : malloc(CHUNK);
	if (!c->sparse && !buf)
		rc = -ENOMEM;
	for (int i = 0; i < ntensors && rc == 0 && !c->sparse; i++) {
		const struct tensor *t = &tensors[i];
		if (t->shard != k)
			continue;
		struct rng r;
		rng_seed(&r, c->seed, (uint64_t)i);
		unsigned sz = dt_size(t->dt);
		uint64_t n = t->bytes / sz;
		for (uint64_t at = 0; at < n && rc == 0;) {
			uint64_t step = n - at < CHUNK / sz ? n - at : CHUNK / sz;
			fill_values(t, &r, buf, step);
			rc = tpfs_path_write_all(fd, buf, step * sz);
			at += step;
			written += step * sz;
			progress(c, false);
		}
	}
	free(buf);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0)
		fprintf(stderr, "tpfs-gen: %s: %s\n", path, strerror(-rc));
	return rc;
}

static int write_text(const char *dir, const char *name, const char *text)
{
	char *path = tpfs_path_join(dir, name);
	int fd = path ? create_file(path) : -1;
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (fd >= 0 && !f)
		close(fd);
	int rc = f && fputs(text, f) >= 0 ? 0 : -1;
	if (f && fclose(f) != 0)
		rc = -1;
	if (rc < 0)
		fprintf(stderr, "tpfs-gen: %s: %s\n", path ? path : name, strerror(errno));
	free(path);
	return rc;
}

static int write_index(const struct config *c, uint64_t total)
{
	struct tpfs_buf b = {0};
	tpfs_buf_printf(&b, "{\n  \"metadata\": {\"total_size\": %" PRIu64 "},\n"
			    "  \"weight_map\": {",
			total);
	for (int i = 0; i < ntensors; i++) {
		char *s = shard_name(tensors[i].shard, c->shards);
		tpfs_buf_puts(&b, i ? ",\n    " : "\n    ");
		tpfs_buf_json_string(&b, tensors[i].name);
		tpfs_buf_puts(&b, ": ");
		tpfs_buf_json_string(&b, s);
		free(s);
	}
	tpfs_buf_puts(&b, "\n  }\n}\n");
	char *text = tpfs_buf_take(&b, NULL);
	int rc = text ? write_text(c->out, "model.safetensors.index.json", text) : -1;
	free(text);
	return rc;
}

/* PyTorch's name of a dtype of values. */
static const char *torch_dtype(enum tpfs_dtype dt)
{
	switch (dt) {
	case TPFS_DT_BF16:
		return "bfloat16";
	case TPFS_DT_F16:
		return "float16";
	case TPFS_DT_F8_E4M3:
		return "float8_e4m3fn";
	case TPFS_DT_F8_E5M2:
		return "float8_e5m2";
	default:
		return "float32";
	}
}

static int write_config(const struct config *c)
{
	struct tpfs_buf b = {0};
	tpfs_buf_printf(
		&b,
		"{\n  \"architectures\": [\"GptOssForCausalLM\"],\n"
		"  \"model_type\": \"gpt_oss\",\n  \"hidden_size\": %d,\n"
		"  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
		"  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n"
		"  \"head_dim\": %d,\n  \"num_local_experts\": %d,\n"
		"  \"num_experts_per_tok\": %d,\n  \"vocab_size\": %d,\n"
		"  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"%s\",\n",
		c->hidden, c->intermediate, c->layers, c->heads, c->kv_heads, c->head_dim,
		c->experts, c->experts < 4 ? c->experts : 4, c->vocab,
		c->tie_embeddings ? "true" : "false",
		torch_dtype(c->dt));
	if (c->mxfp4)
		tpfs_buf_puts(&b, "  \"quantization_config\": {\"quant_method\": \"mxfp4\", "
				  "\"modules_to_not_convert\": [\"model.layers.*.self_attn\", "
				  "\"model.layers.*.mlp.router\", \"model.embed_tokens\", "
				  "\"lm_head\"]},\n");
	tpfs_buf_printf(&b, "  \"tpfs_gen\": {\"preset\": \"%s\", \"seed\": %" PRIu64
			    ", \"sparse\": %s}\n}\n",
			c->preset, c->seed, c->sparse ? "true" : "false");
	char *text = tpfs_buf_take(&b, NULL);
	int rc = text ? write_text(c->out, "config.json", text) : -1;
	free(text);
	return rc;
}

/* Greedy split in model order: a shard closes once it holds its share. */
static void assign_shards(const struct config *c, uint64_t total)
{
	uint64_t share = (total + (uint64_t)c->shards - 1) / (uint64_t)c->shards, acc = 0;
	int k = 0;
	for (int i = 0; i < ntensors; i++) {
		if (acc >= share && k + 1 < c->shards) {
			k++;
			acc = 0;
		}
		tensors[i].shard = k;
		acc += tensors[i].bytes;
	}
}

/* Whether name is one of the files this run writes in OUT. */
static bool ours(const struct config *c, const char *name)
{
	if (strcmp(name, "model.safetensors.index.json") == 0)
		return c->shards > 1;
	if (strcmp(name, "config.json") == 0)
		return !c->ncustom;
	bool same = false;
	for (int k = 0; k < c->shards && !same; k++) {
		char *s = shard_name(k, c->shards);
		same = s && strcmp(s, name) == 0;
		free(s);
	}
	return same;
}

/* A new or empty OUT is written; another only with --force, which
 * replaces the files this run writes and leaves the rest, said here, as a
 * mount of OUT would show them beside the model. Returns 0, or -1 after
 * saying why OUT is refused. */
static int check_out(const struct config *c)
{
	DIR *d = opendir(c->out);
	if (!d)
		return 0; /* new; or not a folder, which making it says */
	long entries = 0, others = 0;
	char first[256] = "", other[256] = ""; /* the least names, to show */
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		entries++;
		if (!first[0] || strcmp(e->d_name, first) < 0)
			snprintf(first, sizeof(first), "%s", e->d_name);
		if (ours(c, e->d_name))
			continue;
		others++;
		if (!other[0] || strcmp(e->d_name, other) < 0)
			snprintf(other, sizeof(other), "%s", e->d_name);
	}
	closedir(d);
	if (entries && !c->force) {
		fprintf(stderr, "tpfs-gen: %s is not empty (%ld entr%s, such as %s): choose a new "
				"or empty folder, or give --force to replace the files tpfs-gen "
				"writes there\n",
			c->out, entries, entries == 1 ? "y" : "ies", first);
		return -1;
	}
	if (others)
		fprintf(stderr, "tpfs-gen: warning: %s keeps %ld entr%s tpfs-gen does not write "
				"(such as %s), which a mount of it shows beside the model\n",
			c->out, others, others == 1 ? "y" : "ies", other);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tpfs-gen OUT [--preset demo|gpt-oss-20b] [options]\n"
		"\n"
		"Writes a synthetic Safetensors model folder shaped like GPT-OSS\n"
		"into OUT, a new or empty folder (see --force).\n"
		"\n"
		"  --preset demo          vocab 32000, hidden 768, 4 layers, 12 heads of 64\n"
		"                         (4 for keys/values), 4 MXFP4 experts of 192,\n"
		"                         tied embeddings: 37,991,232 parameters (default)\n"
		"  --preset gpt-oss-20b   the real checkpoint's structure: 24 layers, hidden\n"
		"                         2880, 32 experts, vocab 201088, 64 query and 8 key/\n"
		"                         value heads of 64: 459 tensors, 13,761,264,768 bytes\n"
		"  --layers N --hidden N --experts N --vocab N --heads N --kv-heads N\n"
		"  --head-dim N --intermediate N   change the preset's sizes\n"
		"  --dtype DTYPE          dtype of the non-MXFP4 tensors: bf16 (default),\n"
		"                         f16, f32, f8_e4m3 or f8_e5m2 (the Safetensors\n"
		"                         names, in any case)\n"
		"  --mxfp4 | --no-mxfp4   expert weights as MXFP4 block/scale pairs or plain\n"
		"  --shards N             number of .safetensors files (default: 1 for demo,\n"
		"                         3 for gpt-oss-20b), with an index when N > 1\n"
		"  --seed N               values are reproducible from the seed (default 0)\n"
		"  --sparse               write the data as holes (no disk used)\n"
		"  --tensor NAME=DTYPE:D0xD1...   write just these tensors (repeatable),\n"
		"                         normal with std 0.02; DTYPE as --dtype, or mxfp4\n"
		"                         for a pair NAME_blocks/NAME_scales of that many\n"
		"                         values (at most 3 dimensions, the last a multiple\n"
		"                         of 32); NAME=DTYPE: (no dimensions) is a scalar.\n"
		"                         FP8 values are rounded to nearest even, E4M3\n"
		"                         saturating at 448\n"
		"  --quiet                no progress line\n"
		"  --force                write into an OUT that is not empty: the files\n"
		"                         tpfs-gen writes are replaced (never written\n"
		"                         through, even links), every other file stays\n"
		"                         (a warning says how many)\n"
		"  --help | --version     this help, or the version (the same as tpfs's)\n");
}

static int parse_int(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v <= 0 || v > 1 << 30)
		return -1;
	*out = (int)v;
	return 0;
}

static void preset(struct config *c, const char *name)
{
	c->preset = name;
	if (strcmp(name, "gpt-oss-20b") == 0) {
		c->layers = 24, c->hidden = 2880, c->experts = 32, c->vocab = 201088;
		c->heads = 64, c->kv_heads = 8, c->head_dim = 64, c->intermediate = 2880;
		c->tie_embeddings = false, c->shards = 3;
	} else {
		c->layers = 4, c->hidden = 768, c->experts = 4, c->vocab = 32000;
		c->heads = 12, c->kv_heads = 4, c->head_dim = 64, c->intermediate = 192;
		c->tie_embeddings = true, c->shards = 1;
	}
	c->mxfp4 = true;
	c->dt = TPFS_DT_BF16;
}

/* The command line into c: -1 to go on, or the exit status (0 after the
 * help, 2 after a mistake). */
static int parse_args(int argc, char **argv, struct config *c)
{
	preset(c, "demo");
	bool have_preset = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int *num = strcmp(a, "--layers") == 0         ? &c->layers
			   : strcmp(a, "--hidden") == 0       ? &c->hidden
			   : strcmp(a, "--experts") == 0      ? &c->experts
			   : strcmp(a, "--vocab") == 0        ? &c->vocab
			   : strcmp(a, "--heads") == 0        ? &c->heads
			   : strcmp(a, "--kv-heads") == 0     ? &c->kv_heads
			   : strcmp(a, "--head-dim") == 0     ? &c->head_dim
			   : strcmp(a, "--intermediate") == 0 ? &c->intermediate
			   : strcmp(a, "--shards") == 0       ? &c->shards
								: NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--version") == 0) {
			printf("tpfs-gen %s\n", TPFS_VERSION);
			return 0;
		} else if (num) {
			if (!v || parse_int(v, num) < 0) {
				fprintf(stderr, "tpfs-gen: %s needs a positive whole number\n", a);
				return 2;
			}
			i++;
		} else if (strcmp(a, "--preset") == 0 && v) {
			if (strcmp(v, "demo") != 0 && strcmp(v, "gpt-oss-20b") != 0) {
				fprintf(stderr, "tpfs-gen: unknown preset '%s' (demo, gpt-oss-20b)\n",
					v);
				return 2;
			}
			if (have_preset) {
				fprintf(stderr, "tpfs-gen: give --preset once, before the sizes\n");
				return 2;
			}
			preset(c, v);
			have_preset = true;
			i++;
		} else if (strcmp(a, "--dtype") == 0 && v) {
			if (parse_dtype(v, &c->dt) < 0) {
				fprintf(stderr, "tpfs-gen: --dtype is one of " VALUE_DTYPES ", not '%s'\n",
					v);
				return 2;
			}
			i++;
		} else if (strcmp(a, "--seed") == 0 && v) {
			c->seed = strtoull(v, NULL, 10);
			i++;
		} else if (strcmp(a, "--tensor") == 0 && v) {
			c->custom = realloc(c->custom, (size_t)(c->ncustom + 1) * sizeof(char *));
			c->custom[c->ncustom++] = argv[++i];
		} else if (strcmp(a, "--mxfp4") == 0) {
			c->mxfp4 = true;
		} else if (strcmp(a, "--no-mxfp4") == 0) {
			c->mxfp4 = false;
		} else if (strcmp(a, "--sparse") == 0) {
			c->sparse = true;
		} else if (strcmp(a, "--quiet") == 0) {
			c->quiet = true;
		} else if (strcmp(a, "--force") == 0) {
			c->force = true;
		} else if (a[0] != '-' && !c->out) {
			c->out = a;
		} else {
			fprintf(stderr, "tpfs-gen: unexpected argument '%s' (see --help)\n", a);
			return 2;
		}
	}
	if (!c->out) {
		usage(stderr);
		return 2;
	}
	if (c->mxfp4 && (c->hidden % 32 || c->intermediate % 32)) {
		fprintf(stderr, "tpfs-gen: MXFP4 needs --hidden and --intermediate to be "
				"multiples of 32\n");
		return 2;
	}
	return -1;
}

/* Write the model cfg describes; returns the exit status. */
static int generate(const struct config *cfg)
{
	struct config c = *cfg;
	init_normal_table();
	if (c.ncustom) {
		c.preset = "custom";
		for (int i = 0; i < c.ncustom; i++) {
			char why[200];
			if (build_custom(c.custom[i], why, sizeof(why)) < 0) {
				fprintf(stderr, "tpfs-gen: --tensor %s: %s\n", c.custom[i], why);
				return 2;
			}
		}
	} else {
		build_gpt_oss(&c);
	}
	uint64_t params = 0;
	total_bytes = 0;
	for (int i = 0; i < ntensors; i++) {
		total_bytes += tensors[i].bytes;
		params += tensors[i].params;
	}
	if (c.shards > ntensors) {
		fprintf(stderr, "tpfs-gen: %d shards asked for %d tensors: writing %d\n",
			c.shards, ntensors, ntensors);
		c.shards = ntensors;
	}
	assign_shards(&c, total_bytes);
	if (check_out(&c) < 0)
		return 1;
	int err = -tpfs_path_mkdir(c.out);
	if (err) {
		fprintf(stderr, "tpfs-gen: %s: %s\n", c.out, strerror(err));
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t_start);
	t_last = t_start;
	for (int k = 0; k < c.shards; k++) {
		char *name = shard_name(k, c.shards);
		char *path = name ? tpfs_path_join(c.out, name) : NULL;
		int rc = path ? write_shard(&c, k, path) : -1;
		free(name);
		free(path);
		if (rc < 0)
			return 1;
	}
	progress(&c, true);
	if ((c.shards > 1 && write_index(&c, total_bytes) < 0) ||
	    (!c.ncustom && write_config(&c) < 0))
		return 1;
	if (!c.quiet) {
		char sz[32];
		printf("wrote %s: %d tensor%s, %" PRIu64 " parameters, %" PRIu64
		       " data bytes (%s) in %d file%s, %.1f s\n",
		       c.out, ntensors, ntensors == 1 ? "" : "s", params, total_bytes,
		       tpfs_size_format(total_bytes, sz, sizeof(sz)), c.shards,
		       c.shards == 1 ? "" : "s", since(&t_start));
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct config c = {0};
	int rc = parse_args(argc, argv, &c);
	if (rc < 0)
		rc = generate(&c);
	free(c.custom);
	free(tensors);
	return rc;
}
