/*
 * Tensor info cards: statistics accumulation and fixed-width formatting.
 */
#include "tpfs/card.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpfs/conv.h"
#include "tpfs/log.h"
#include "tpfs/model.h"
#include "tpfs/buf.h"

#define NUM_W 24 /* widest number: "-2.2250738585072014e-308" */

void tpfs_card_stats_init(struct tpfs_card_stats *s, const char *descr)
{
	memset(s, 0, sizeof(*s));
	s->kind = descr[1];
	s->size = (unsigned)atoi(descr + 2);
	if (s->kind == 'V') /* |V2: bfloat16 bits */
		s->kind = 'h';
	s->min = INFINITY;
	s->max = -INFINITY;
	s->imin = INT64_MAX;
	s->imax = INT64_MIN;
	s->umin = UINT64_MAX;
}

static double f32_value(uint32_t bits)
{
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static int64_t signed_element(const struct tpfs_card_stats *s, const unsigned char *p)
{
	switch (s->size) {
	case 1: {
		int8_t x;
		memcpy(&x, p, 1);
		return x;
	}
	case 2: {
		int16_t x;
		memcpy(&x, p, 2);
		return x;
	}
	case 4: {
		int32_t x;
		memcpy(&x, p, 4);
		return x;
	}
	default: {
		int64_t x;
		memcpy(&x, p, 8);
		return x;
	}
	}
}

static uint64_t unsigned_element(const struct tpfs_card_stats *s, const unsigned char *p)
{
	uint64_t v = 0;
	memcpy(&v, p, s->size); /* little-endian */
	return v;
}

/* A float, bfloat16 or bool element as a double. */
static double element(const struct tpfs_card_stats *s, const unsigned char *p)
{
	uint16_t h;
	float f;
	double d;
	switch (s->kind) {
	case 'b':
		return *p != 0;
	case 'h':
		memcpy(&h, p, 2);
		return f32_value((uint32_t)h << 16);
	default:
		if (s->size == 2) {
			memcpy(&h, p, 2);
			return f32_value(tpfs_conv_f16_to_f32(h));
		}
		if (s->size == 4) {
			memcpy(&f, p, 4);
			return f;
		}
		memcpy(&d, p, 8);
		return d;
	}
}

static void account(struct tpfs_card_stats *s, double v)
{
	if (v != v) {
		s->nan++;
		return;
	}
	if (isinf(v)) {
		s->inf++;
		return;
	}
	s->finite++;
	s->min = v < s->min ? v : s->min;
	s->max = v > s->max ? v : s->max;
	double d = v - s->mean;
	s->mean += d / (double)s->finite;
	s->m2 += d * (v - s->mean);
}

void tpfs_card_stats_add(struct tpfs_card_stats *s, const void *data, size_t n)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++, p += s->size) {
		if (s->count < TPFS_CARD_EDGE)
			memcpy(s->first[s->count], p, s->size);
		memcpy(s->last[s->count % TPFS_CARD_EDGE], p, s->size);
		s->count++;
		if (s->kind == 'c') {
			/* As NumPy counts: an element is NaN (infinite) when a part
			 * is; no ordering */
			float re, im;
			memcpy(&re, p, 4);
			memcpy(&im, p + 4, 4);
			s->nan += re != re || im != im;
			s->inf += isinf(re) || isinf(im);
			continue;
		}
		if (s->kind == 'i') {
			int64_t v = signed_element(s, p);
			s->imin = v < s->imin ? v : s->imin;
			s->imax = v > s->imax ? v : s->imax;
			account(s, (double)v);
		} else if (s->kind == 'u') {
			uint64_t v = unsigned_element(s, p);
			s->umin = v < s->umin ? v : s->umin;
			s->umax = v > s->umax ? v : s->umax;
			account(s, (double)v);
		} else {
			account(s, element(s, p));
		}
	}
}

/* Does text read back as v at the element's precision? */
static bool reads_back(const char *text, double v, const struct tpfs_card_stats *s)
{
	double back = strtod(text, NULL);
	if (s->size == 2) {
		/* float16 and bfloat16 values read back through float32 */
		float b = (float)back;
		uint32_t u;
		memcpy(&u, &b, 4);
		double r = s->kind == 'h' ? f32_value(tpfs_conv_f32_to_bf16(u) << 16)
					  : f32_value(tpfs_conv_f16_to_f32(tpfs_conv_f32_to_f16(u)));
		return r == v;
	}
	return s->size == 4 ? (float)back == (float)v : back == v;
}

/* The fewest significant digits that read back as a (>= 0) at the
 * element's precision, as NumPy finds them: into digits (no trailing
 * zeros), with the power of ten of the first in *exp. Where the gap to the
 * next value below is half the gap above (at powers of two), the correctly
 * rounded p-digit text can miss while a neighbouring p-digit text reads
 * back: the nearer such neighbour is taken. */
static void shortest_digits(double a, const struct tpfs_card_stats *s, char digits[24], int *exp)
{
	char text[48];
	for (int p = 1; p <= 17; p++) {
		snprintf(text, sizeof(text), "%.*e", p - 1, a);
		if (p == 17 || reads_back(text, a, s))
			break;
		unsigned long long m = 0;
		const char *q = text;
		for (; *q != 'e'; q++)
			if (*q != '.')
				m = m * 10 + (unsigned long long)(*q - '0');
		int e = atoi(q + 1) - (p - 1);
		char best[48] = "";
		long double gap = 0;
		for (int d = -1; d <= 1; d += 2) {
			char cand[48];
			if (m + (unsigned long long)d == 0)
				continue;
			snprintf(cand, sizeof(cand), "%llue%d", m + (unsigned long long)d, e);
			long double g = fabsl(strtold(cand, NULL) - (long double)a);
			if (reads_back(cand, a, s) && (!best[0] || g < gap)) {
				snprintf(best, sizeof(best), "%s", cand);
				gap = g;
			}
		}
		if (best[0]) {
			snprintf(text, sizeof(text), "%s", best);
			break;
		}
	}
	/* text is d.ddde±x or ddde±x: its digits, and the first one's power */
	int nd = 0, before = -1;
	const char *q = text;
	for (; *q != 'e'; q++) {
		if (*q == '.')
			before = nd;
		else
			digits[nd++] = *q;
	}
	*exp = atoi(q + 1) + (before < 0 ? nd : before) - 1;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
}

/* v as NumPy prints a float scalar: the shortest digits (see above), laid
 * out positionally from 1e-4 up to 1e16 and in scientific notation
 * outside; trim drops a bare ".0", as NumPy does for the parts of a complex
 * number. */
static void numpy_float(double v, const struct tpfs_card_stats *s, bool trim, char *buf,
			size_t len)
{
	if (v != v) {
		snprintf(buf, len, "nan");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, len, v < 0 ? "-inf" : "inf");
		return;
	}
	double a = fabs(v);
	char digits[24];
	int exp;
	shortest_digits(a, s, digits, &exp);
	int nd = (int)strlen(digits);
	char out[48], *o = out;
	if (signbit(v))
		*o++ = '-';
	if (a == 0 || (a >= 1e-4 && a < 1e16)) {
		/* digit i stands for 10^(exp - i), with exp from -4 to 15 */
		if (exp < 0) {
			*o++ = '0';
			*o++ = '.';
			for (int i = exp + 1; i < 0; i++)
				*o++ = '0';
		}
		for (int i = 0; i < nd || i <= exp; i++) {
			if (i == exp + 1 && exp >= 0)
				*o++ = '.';
			*o++ = i < nd ? digits[i] : '0';
		}
		if (nd <= exp + 1 && !trim) {
			*o++ = '.';
			*o++ = '0';
		}
		*o = '\0';
	} else {
		snprintf(o, sizeof(out) - 1, "%c%s%se%c%02d", digits[0], nd > 1 ? "." : "",
			 digits + 1, exp < 0 ? '-' : '+', abs(exp));
	}
	snprintf(buf, len, "%s", out);
}

/* The parts of a complex64 element printed as float32 values (24 bytes
 * each hold any); returns whether the real part is +0. */
static bool complex_parts(const struct tpfs_card_stats *s, const unsigned char *p, bool trim,
			  char re_text[24], char im_text[24])
{
	float re, im;
	memcpy(&re, p, 4);
	memcpy(&im, p + 4, 4);
	struct tpfs_card_stats one = *s;
	one.size = 4;
	one.kind = 'f';
	numpy_float(re, &one, trim, re_text, 24);
	numpy_float(im, &one, trim, im_text, 24);
	return re == 0 && !signbit(re);
}

void tpfs_card_format_value(const struct tpfs_card_stats *s, const void *elem, char *buf,
		       size_t len)
{
	const unsigned char *p = elem;
	switch (s->kind) {
	case 'b':
		snprintf(buf, len, "%s", *p ? "True" : "False");
		return;
	case 'i':
		snprintf(buf, len, "%" PRId64, signed_element(s, p));
		return;
	case 'u':
		snprintf(buf, len, "%" PRIu64, unsigned_element(s, p));
		return;
	case 'c': {
		/* NumPy's complex repr: "2j" for a +0 real part, else "(1+2j)",
		 * both parts without a bare ".0" */
		char a[24], b[24];
		if (complex_parts(s, p, true, a, b)) {
			snprintf(buf, len, "%sj", b);
			return;
		}
		snprintf(buf, len, "(%s%s%sj)", a, b[0] == '-' ? "" : "+", b);
		return;
	}
	default:
		numpy_float(element(s, p), s, false, buf, len);
	}
}

/* The first (or the last) few elements: how many, and the k-th of them,
 * which are the same ones when there are no more than that. */
static uint64_t edge_count(const struct tpfs_tensor *t)
{
	return t->nelem < TPFS_CARD_EDGE ? t->nelem : TPFS_CARD_EDGE;
}

static const unsigned char *edge_element(const struct tpfs_card_stats *s,
					 const struct tpfs_tensor *t, uint64_t k, bool last)
{
	uint64_t index = last ? t->nelem - edge_count(t) + k : k;
	return last ? s->last[index % TPFS_CARD_EDGE] : s->first[index];
}

/* The texts of min, max, mean and std; false when there are none (no
 * finite value, or complex values, which have no order). */
static bool summary(const struct tpfs_card_stats *s, char v[4][NUM_W + 8])
{
	if (!s->finite || s->kind == 'c')
		return false;
	/* min and max are elements: printed as such; mean and std are
	 * float64 results */
	if (s->kind == 'i') {
		snprintf(v[0], NUM_W + 8, "%" PRId64, s->imin);
		snprintf(v[1], NUM_W + 8, "%" PRId64, s->imax);
	} else if (s->kind == 'u') {
		snprintf(v[0], NUM_W + 8, "%" PRIu64, s->umin);
		snprintf(v[1], NUM_W + 8, "%" PRIu64, s->umax);
	} else if (s->kind == 'b') {
		snprintf(v[0], NUM_W + 8, "%s", s->min ? "True" : "False");
		snprintf(v[1], NUM_W + 8, "%s", s->max ? "True" : "False");
	} else {
		numpy_float(s->min, s, false, v[0], NUM_W + 8);
		numpy_float(s->max, s, false, v[1], NUM_W + 8);
	}
	struct tpfs_card_stats wide = *s;
	wide.kind = 'f';
	wide.size = 8;
	numpy_float(s->mean, &wide, false, v[2], NUM_W + 8);
	numpy_float(sqrt(s->m2 / (double)s->finite), &wide, false, v[3], NUM_W + 8);
	return true;
}

/* A number right-aligned in NUM_W columns, or as many spaces without s. */
static void field(struct tpfs_buf *b, const char *label, const char *value)
{
	tpfs_buf_printf(b, "%-11s %*s\n", label, NUM_W, value ? value : "");
}

static void edge_values(struct tpfs_buf *b, const char *label,
			const struct tpfs_card_stats *s, const struct tpfs_tensor *t,
			bool last)
{
	int width = strcmp(tpfs_tensor_descr(t), "<c8") == 0 ? 2 * NUM_W : NUM_W;
	tpfs_buf_printf(b, "%-11s", label);
	for (uint64_t k = 0; k < edge_count(t); k++) {
		char v[2 * NUM_W + 8] = "";
		if (s)
			tpfs_card_format_value(s, edge_element(s, t, k, last), v, sizeof(v));
		tpfs_buf_printf(b, " %*s", width, v);
	}
	tpfs_buf_puts(b, "\n");
}

char *tpfs_card_render(const struct tpfs_model *m, const struct tpfs_tensor *t,
		       const struct tpfs_card_stats *s, size_t *len)
{
	struct tpfs_buf b = {0};
	char *path = tpfs_tree_path(&m->tree, t->node);
	if (!path)
		return NULL;
	/* names (of tensors, files and folders) as messages write them: a
	 * control byte in one would reach the terminal of whoever reads the
	 * card */
	tpfs_buf_printf(&b, "%-11s ", "tensor");
	tpfs_buf_escape(&b, t->name, "");
	tpfs_buf_printf(&b, "\n%-11s ", "path");
	tpfs_buf_escape(&b, path, "");
	tpfs_buf_puts(&b, "\n");
	free(path);
	for (int i = 0; i < 2 && t->part[i].st; i++) {
		const struct tpfs_st_tensor *st = t->part[i].st;
		tpfs_buf_printf(&b, "%-11s ", i ? "" : "source");
		tpfs_buf_escape(&b, t->part[i].src->rel, "");
		tpfs_buf_puts(&b, ": '");
		tpfs_buf_escape(&b, st->name, "");
		tpfs_buf_printf(&b, "' %s ", tpfs_dtype_info(st->dtype)->name);
		tpfs_buf_shape(&b, st->shape, st->ndim);
		tpfs_buf_printf(&b, ", bytes %" PRIu64 "..%" PRIu64 "\n", st->begin, st->end);
	}
	tpfs_buf_printf(&b, "%-11s %s ", "served", tpfs_tensor_descr(t));
	tpfs_buf_shape(&b, t->shape, t->ndim);
	tpfs_buf_printf(&b, " from %s (%s, %s)\n", tpfs_tensor_source_dtype(t), t->conv->name,
			t->conv->exact ? "exact" : "rounded");
	tpfs_buf_printf(&b, "%-11s %" PRIu64 "\n", "parameters", t->nelem);
	tpfs_buf_printf(&b, "%-11s %" PRIu64 " (.npy %" PRIu64 ")\n", "bytes", t->data_bytes,
			tpfs_tensor_npy_size(t));
	char v[4][NUM_W + 8];
	if (!s || !summary(s, v))
		for (int i = 0; i < 4; i++)
			snprintf(v[i], sizeof(v[i]), "%s", s ? "n/a" : "");
	field(&b, "min", v[0]);
	field(&b, "max", v[1]);
	field(&b, "mean", v[2]);
	field(&b, "std", v[3]);
	char count[32] = "";
	if (s)
		snprintf(count, sizeof(count), "%" PRIu64, s->nan);
	field(&b, "nan", count);
	if (s)
		snprintf(count, sizeof(count), "%" PRIu64, s->inf);
	field(&b, "inf", count);
	edge_values(&b, "first", s, t, false);
	edge_values(&b, "last", s, t, true);
	return tpfs_buf_take(&b, len);
}

/* A value of the card as JSON: its text, which is a JSON number, but for
 * NaN and the infinities (JSON has none: the card's text as a string) and
 * bools. */
static void json_value(struct tpfs_buf *b, const char *text)
{
	if (strcmp(text, "True") == 0 || strcmp(text, "False") == 0)
		tpfs_buf_puts(b, text[0] == 'T' ? "true" : "false");
	else if (strcmp(text, "nan") == 0 || strcmp(text, "inf") == 0 ||
		 strcmp(text, "-inf") == 0)
		tpfs_buf_printf(b, "\"%s\"", text);
	else
		tpfs_buf_puts(b, text);
}

static void json_edge(struct tpfs_buf *b, const char *key, const struct tpfs_card_stats *s,
		      const struct tpfs_tensor *t, bool last)
{
	tpfs_buf_printf(b, ", \"%s\": [", key);
	for (uint64_t k = 0; k < edge_count(t); k++) {
		const unsigned char *p = edge_element(s, t, k, last);
		char v[2 * NUM_W + 8];
		tpfs_buf_puts(b, k ? ", " : "");
		if (s->kind == 'c') {
			char im[24];
			complex_parts(s, p, false, v, im);
			tpfs_buf_puts(b, "[");
			json_value(b, v);
			tpfs_buf_puts(b, ", ");
			json_value(b, im);
			tpfs_buf_puts(b, "]");
		} else {
			tpfs_card_format_value(s, p, v, sizeof(v));
			json_value(b, v);
		}
	}
	tpfs_buf_puts(b, "]");
}

void tpfs_card_json(struct tpfs_buf *b, const struct tpfs_tensor *t,
		    const struct tpfs_card_stats *s)
{
	static const char *const keys[4] = {"min", "max", "mean", "std"};
	char v[4][NUM_W + 8];
	bool some = summary(s, v);
	tpfs_buf_printf(b, "\"parameters\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"stats\": {",
			t->nelem, t->data_bytes);
	for (int i = 0; i < 4; i++) {
		tpfs_buf_printf(b, "%s\"%s\": ", i ? ", " : "", keys[i]);
		json_value(b, some ? v[i] : "null");
	}
	tpfs_buf_printf(b, ", \"nan\": %" PRIu64 ", \"inf\": %" PRIu64, s->nan, s->inf);
	json_edge(b, "first", s, t, false);
	json_edge(b, "last", s, t, true);
	tpfs_buf_puts(b, "}");
}

/* ---- the cards of a model ------------------------------------------------ */

#define CARD_LOCKS 64 /* cards computed at once without waiting for another */

struct card {
	struct tpfs_card_stats stats;
	size_t len;
	char text[];
};

struct tpfs_card_set {
	const struct tpfs_model *m;
	_Atomic(struct card *) *done;  /* per tensor; set once, under its lock */
	_Atomic uint32_t *size;        /* per tensor; 0 until measured */
	pthread_mutex_t locks[CARD_LOCKS];
};

struct tpfs_card_set *tpfs_card_set_create(const struct tpfs_model *m)
{
	struct tpfs_card_set *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->m = m;
	c->done = calloc(m->ntensors + 1, sizeof(*c->done));
	c->size = calloc(m->ntensors + 1, sizeof(*c->size));
	if (!c->done || !c->size) {
		free(c->done);
		free(c->size);
		free(c);
		return NULL;
	}
	for (int i = 0; i < CARD_LOCKS; i++)
		pthread_mutex_init(&c->locks[i], NULL);
	return c;
}

void tpfs_card_set_destroy(struct tpfs_card_set *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->m->ntensors; i++)
		free(atomic_load(&c->done[i]));
	for (int i = 0; i < CARD_LOCKS; i++)
		pthread_mutex_destroy(&c->locks[i]);
	free(c->done);
	free(c->size);
	free(c);
}

uint64_t tpfs_card_set_size(struct tpfs_card_set *c, size_t i)
{
	uint32_t n = atomic_load_explicit(&c->size[i], memory_order_relaxed);
	if (n)
		return n;
	/* Two threads may both measure: they find the same size. */
	size_t len;
	char *text = tpfs_card_render(c->m, &c->m->tensors[i], NULL, &len);
	free(text);
	if (!text || len > UINT32_MAX)
		return 0;
	atomic_store_explicit(&c->size[i], (uint32_t)len, memory_order_relaxed);
	return len;
}

/* Stream the tensor's served values through the statistics a block at a
 * time, then render its card. */
static int compute(struct tpfs_card_set *c, size_t i, tpfs_card_read_fn read, void *ctx,
		   struct card **out)
{
	const struct tpfs_tensor *t = &c->m->tensors[i];
	struct tpfs_card_stats st;
	tpfs_card_stats_init(&st, tpfs_tensor_descr(t));
	/* a block is a power of two, so a multiple of every element size */
	uint64_t bs = c->m->opt.block_size;
	unsigned char *buf = malloc(t->data_bytes < bs ? (size_t)t->data_bytes + 1 : bs);
	if (!buf)
		return -ENOMEM;
	for (uint64_t block = 0; block * bs < t->data_bytes; block++) {
		uint64_t left = t->data_bytes - block * bs;
		size_t n = left < bs ? (size_t)left : (size_t)bs;
		int rc = read(ctx, i, block, buf, n);
		if (rc < 0) {
			free(buf);
			return rc;
		}
		tpfs_card_stats_add(&st, buf, n / st.size);
	}
	free(buf);
	size_t len;
	char *text = tpfs_card_render(c->m, t, &st, &len);
	uint64_t want = tpfs_card_set_size(c, i);
	struct card *card = text ? malloc(sizeof(*card) + len + 1) : NULL;
	if (!card) {
		free(text);
		return -ENOMEM;
	}
	memcpy(card->text, text, len + 1);
	card->len = len;
	card->stats = st;
	free(text);
	if (len != want) {
		/* A field outgrew its width: a bug, not a reason to lie about st_size. */
		tpfs_log(LOG_ERR, "info card of %s is %zu bytes, not %" PRIu64, t->name, len,
			 want);
		free(card);
		return -EIO;
	}
	*out = card;
	return 0;
}

int tpfs_card_set_text(struct tpfs_card_set *c, size_t i, tpfs_card_read_fn read,
		       void *ctx, const char **text, size_t *len,
		       const struct tpfs_card_stats **stats)
{
	struct card *card = atomic_load(&c->done[i]);
	int rc = 0;
	if (!card) {
		pthread_mutex_t *lock = &c->locks[i % CARD_LOCKS];
		pthread_mutex_lock(lock);
		card = atomic_load(&c->done[i]);
		if (!card) {
			rc = compute(c, i, read, ctx, &card);
			if (rc == 0)
				atomic_store(&c->done[i], card);
		}
		pthread_mutex_unlock(lock);
	}
	if (rc == 0) {
		*text = card->text;
		*len = card->len;
		if (stats)
			*stats = &card->stats;
	}
	return rc;
}
