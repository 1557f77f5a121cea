/*
 * The bytes of the served files (see file.h): tensors' .npy headers and
 * data, passed-through files, manifest.json and the cards of .tpfs/info,
 * described as spans over immutable memory (the source mappings of
 * passed-through files, pinned cache blocks, finished cards) or over bytes
 * made for the read (headers, the manifest, tensor data read as stored).
 */
#include "tpfs/file.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tpfs/ahead.h"
#include "tpfs/guard.h"
#include "tpfs/log.h"
#include "tpfs/npy.h"

static int card_block(void *ctx, size_t i, uint64_t block, void *buf, size_t n);

int tpfs_file_open_check(struct tpfs_view *v, uint32_t id)
{
	const struct tpfs_tensor *t = tpfs_view_tensor(v, id);
	const struct tpfs_model *m = v->model;
	enum tpfs_node_kind kind = tpfs_view_kind(v, id);
	int rc = 0;
	switch (kind) {
	case TPFS_NODE_TENSOR:
		for (int i = 0; i < 2 && t->part[i].st && rc == 0; i++)
			rc = tpfs_source_check_access(t->part[i].src);
		break;
	case TPFS_NODE_FILE:
		rc = tpfs_source_check_access(tpfs_view_source(v, id));
		break;
	case TPFS_NODE_CARD: /* made from the source once: see its reads */
		for (int i = 0; i < 2 && t->part[i].st && rc == 0; i++)
			rc = tpfs_source_check_perms(t->part[i].src);
		break;
	case TPFS_NODE_MANIFEST: /* describes every tensor file */
	case TPFS_NODE_STATS:    /* counts reads of every file */
		for (size_t i = 0; i < m->nsources && rc == 0; i++)
			if (m->sources[i]->st || kind == TPFS_NODE_STATS)
				rc = tpfs_source_check_perms(m->sources[i]);
		break;
	case TPFS_NODE_DIR:
		break;
	}
	return rc;
}

static bool add_span(struct tpfs_file_spans *sp, const void *p, size_t len)
{
	if (sp->n == TPFS_FILE_MAX_SPANS)
		return false;
	sp->v[sp->n++] = (struct tpfs_file_span){p, len};
	return true;
}

/* A page fault maps more than its page: the cached pages of the aligned
 * 64 KiB around it (the kernel's fault_around_bytes), and on recent kernels
 * (seen on 6.18) the whole page-cache folio it falls in, which the page
 * cache makes up to 2 MiB (the PMD size with 4 KiB pages) for a file read
 * ahead in large steps. A range's faults map its neighbours that far. */
#define MAP_AROUND ((uint64_t)2 << 20)

/* Drop the pages of a source range that a reply was written from (a
 * passed-through file's: rounded out to whole pages) from this process's
 * page tables, with MAP_AROUND on either side, which this range's faults
 * mapped too, or a neighbouring range's faults after that range was
 * dropped (a reader of the neighbour in flight just faults again). The
 * data stays in the page cache, but without this the daemon's resident
 * size would grow to the size of what it served, and with it its
 * standing with the out-of-memory killer. */
static void drop_mapped(const struct tpfs_source *s, uint64_t begin, uint64_t len)
{
	if (len == 0 || !s->map)
		return;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t a = (begin > MAP_AROUND ? begin - MAP_AROUND : 0) & ~(page - 1);
	uint64_t end = begin + len + MAP_AROUND;
	end = end > s->size ? s->size : end;
	madvise((void *)(s->map + a), (size_t)(end - a), MADV_DONTNEED);
}

/* Make a source range present in this process's page tables before a reply
 * is written from the mapping. That reply (a writev to /dev/fuse) copies
 * from the mapping inside the kernel with the reader's request locked: a
 * fault there on a network filesystem that stopped answering held the
 * request, and with it the unmount of this mount (fusermount3, unkillable,
 * waits for locked requests), for as long as that filesystem did not answer.
 * Faulted in here, the wait is this thread's only, and an unmount aborts the
 * request. A page that cannot be read is an error here (EFAULT) instead of
 * a SIGBUS. Kernels before 5.14 lack MADV_POPULATE_READ (EINVAL): the reply
 * then faults as before. */
static int populate(struct tpfs_source *s, uint64_t begin, uint64_t len)
{
	if (len == 0 || !s->map)
		return 0;
	uint64_t a = begin & ~((uint64_t)sysconf(_SC_PAGESIZE) - 1);
	if (madvise((void *)(s->map + a), (size_t)(begin + len - a), MADV_POPULATE_READ) == 0 ||
	    errno == EINVAL)
		return 0;
	if (errno == EFAULT || errno == EHWPOISON) {
		tpfs_source_faulted(s);
		return -EIO;
	}
	return -errno;
}

/* Read source bytes [off, off + len) into dst. Tensor data served as stored
 * is read this way rather than replied from the mapping: the copy into a
 * buffer that stays in the CPU's cache costs less than mapping the pages
 * (MADV_POPULATE_READ) and dropping them from this process again after
 * the reply (MADV_DONTNEED, a TLB flush on every core): every read step
 * of tools/bench-read.py got faster (the README's "How fast"). A source
 * that fails or shrinks is an error here (EIO, logged once), never a
 * fault, and a network filesystem that stops answering holds this thread
 * only, not the reader's request (see populate). */
static int read_source(struct tpfs_source *s, uint64_t off, size_t len, char *dst)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(s->fd, dst + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			tpfs_source_faulted(s);
			return -EIO;
		}
		done += (size_t)n;
	}
	return 0;
}

struct fill_ctx {
	struct tpfs_view *v;
	const struct tpfs_tensor *t;
	uint64_t block;
	bool made; /* set by fill_block */
};

/* Produce block c->block of a converted tensor: output elements
 * [elem0, elem0 + n), from the source bytes the conversion names, read
 * into a buffer of their own (see read_source: the same trade as for data
 * served as stored, and no fault in the kernels). */
static int fill_block(void *arg, void *dst, size_t len)
{
	struct fill_ctx *c = arg;
	const struct tpfs_tensor *t = c->t;
	c->made = true;
	const struct tpfs_conv *cv = t->conv;
	const struct tpfs_part *p = t->part;
	uint64_t elem0 = c->block * c->v->model->opt.block_size / cv->out_bytes;
	size_t n = len / cv->out_bytes;
	struct tpfs_conv_input in[2]; /* in[1] empty unless MXFP4's scales */
	tpfs_conv_inputs(cv, p[0].st->dtype, elem0, n, in);
	unsigned char *src = malloc(in[0].len + in[1].len + 1);
	if (!src)
		return -ENOMEM;
	int rc = 0;
	for (int i = 0; i < 2 && p[i].st && rc == 0; i++)
		rc = read_source(p[i].src, p[i].st->begin + in[i].off, in[i].len,
				 (char *)src + (i ? in[0].len : 0));
	if (rc == 0) {
		struct tpfs_kernel_args a = {
			.conv = cv,
			.src = src,
			.src2 = p[1].st ? src + in[0].len : NULL,
			.dst = dst,
			.n = n,
		};
		cv->kernel(&a);
		tpfs_view_count_fill(c->v, (size_t)(t - c->v->model->tensors), c->block, len,
				     a.overflows);
	}
	free(src);
	return rc;
}

static void key_part(struct tpfs_cache_ref *r, const struct tpfs_part *p)
{
	if (!p->st)
		return;
	r->dev = p->src->dev;
	r->ino = p->src->ino;
	r->size = p->src->size;
	r->mtime_ns = (uint64_t)p->src->mtime.tv_sec * 1000000000u +
		      (uint64_t)p->src->mtime.tv_nsec;
	r->offset = p->st->begin;
}

static void block_key(const struct tpfs_tensor *t, uint64_t block, struct tpfs_cache_key *key)
{
	memset(key, 0, sizeof(*key));
	key_part(&key->src[0], &t->part[0]);
	key_part(&key->src[1], &t->part[1]);
	key->block = block;
	key->conv = (uint64_t)t->conv->id;
}

/* The length of block `block` of a tensor's data. */
static size_t block_len(const struct tpfs_view *v, const struct tpfs_tensor *t, uint64_t block)
{
	uint64_t bs = v->model->opt.block_size;
	uint64_t left = t->data_bytes - block * bs;
	return (size_t)(left < bs ? left : bs);
}

/* Block `block` of a tensor's data from the cache, made there if absent
 * (*made then set), pinned in *b. Returns 0 or a negative errno. */
static int get_block(struct tpfs_view *v, const struct tpfs_tensor *t, uint64_t block,
		     struct tpfs_cache_block **b, bool *made)
{
	struct tpfs_cache_key key;
	block_key(t, block, &key);
	struct fill_ctx ctx = {v, t, block, false};
	int rc = tpfs_cache_get(v->cache, &key, block_len(v, t, block), fill_block, &ctx, b);
	*made = ctx.made;
	return rc;
}

/* Spans for data bytes [k, k + len) of a converted tensor. */
static ssize_t converted_spans(struct tpfs_view *v, const struct tpfs_tensor *t,
			       uint64_t k, size_t len, struct tpfs_file_spans *sp)
{
	uint64_t bs = v->model->opt.block_size;
	size_t done = 0;
	while (done < len && sp->n < TPFS_FILE_MAX_SPANS) {
		uint64_t pos = k + done;
		struct tpfs_cache_block *b;
		bool made;
		int rc = get_block(v, t, pos / bs, &b, &made);
		if (rc < 0) {
			sp->partial = done > 0;
			return done ? (ssize_t)done : rc;
		}
		sp->pins[sp->npins++] = b;
		size_t in = (size_t)(pos % bs);
		size_t blen = block_len(v, t, pos / bs);
		size_t take = blen - in < len - done ? blen - in : len - done;
		add_span(sp, (const char *)tpfs_cache_data(b) + in, take);
		done += take;
	}
	sp->partial = done < len;
	return (ssize_t)done;
}

/* Make block `block` of tensor i in the cache, ahead of its reader,
 * unless it is there: whether it was made. */
static bool make_ahead(void *ctx, size_t i, uint64_t block)
{
	struct tpfs_view *v = ctx;
	const struct tpfs_tensor *t = &v->model->tensors[i];
	struct tpfs_cache_key key;
	block_key(t, block, &key);
	struct tpfs_cache_block *b;
	bool made = false;
	if (tpfs_cache_holds(v->cache, &key) || get_block(v, t, block, &b, &made) < 0)
		return false;
	tpfs_cache_put(v->cache, b);
	return made;
}

int tpfs_file_start_ahead(struct tpfs_view *v, unsigned threads, uint64_t after)
{
	uint64_t bs = v->model->opt.block_size;
	struct tpfs_ahead_params p = {
		.threads = threads ? threads : 1,
		.after = after,
		.gap = after / 2 > bs ? after / 2 / bs : 1,
		.depth = TPFS_FILE_AHEAD > bs ? TPFS_FILE_AHEAD / bs : 1,
		.budget = (size_t)(v->model->opt.cache_size / 4 / bs),
	};
	/* enough for 64 readers' depth: a huge cache_size needs no more */
	if (p.budget > 64 * p.depth)
		p.budget = (size_t)(64 * p.depth);
	if (p.budget == 0)
		return 0; /* blocks made ahead would evict each other */
	v->ahead = tpfs_ahead_create(v->model->ntensors, &p, make_ahead, v);
	return v->ahead ? 0 : -ENOMEM;
}

/* Bytes made for this read, which the spans own until released. */
static void *made_for(struct tpfs_file_spans *sp, size_t len)
{
	sp->made = malloc(len ? len : 1);
	return sp->made;
}

static ssize_t tensor_spans(struct tpfs_view *v, const struct tpfs_tensor *t,
			    uint64_t off, size_t len, char *into,
			    struct tpfs_file_spans *sp)
{
	for (int i = 0; i < 2 && t->part[i].st; i++) {
		int rc = tpfs_source_check(t->part[i].src);
		if (rc < 0)
			return rc;
	}
	size_t done = 0;
	if (off < t->npy_header_len) {
		uint8_t *h = made_for(sp, t->npy_header_len);
		if (!h || tpfs_npy_header(tpfs_tensor_descr(t), t->shape, t->ndim, h,
					  t->npy_header_len) != t->npy_header_len)
			return -ENOMEM;
		size_t take = t->npy_header_len - off < len ? t->npy_header_len - off : len;
		add_span(sp, h + off, take);
		done = take;
	}
	if (done == len)
		return (ssize_t)done;
	uint64_t k = off + done - t->npy_header_len;
	if (t->conv->kind == TPFS_CONV_STORED) {
		/* straight into the read's buffer: the kernel's page cache
		 * holds the source, and copying it into cache blocks ahead of
		 * the reader costs a copy and cache_size of memory for nothing */
		const struct tpfs_part *p = &t->part[0];
		int rc = read_source(p->src, p->st->begin + k, len - done, into + done);
		if (rc < 0) {
			sp->partial = done > 0;
			return done ? (ssize_t)done : rc;
		}
		add_span(sp, into + done, len - done);
		return (ssize_t)len;
	}
	if (v->ahead) {
		uint64_t bs = v->model->opt.block_size;
		tpfs_ahead_note(v->ahead, (size_t)(t - v->model->tensors), k / bs,
				(k + (len - done) - 1) / bs, len - done,
				(t->data_bytes + bs - 1) / bs);
	}
	ssize_t got = converted_spans(v, t, k, len - done, sp);
	if (got < 0) {
		sp->partial = done > 0;
		return done ? (ssize_t)done : got;
	}
	return (ssize_t)(done + (size_t)got);
}

ssize_t tpfs_file_spans_get(struct tpfs_view *v, uint32_t id, uint64_t off,
			    size_t len, char *into, struct tpfs_file_spans *sp)
{
	sp->n = sp->npins = 0;
	sp->mapped = NULL;
	sp->made = NULL;
	sp->partial = false;
	enum tpfs_node_kind kind = tpfs_view_kind(v, id);
	if (kind == TPFS_NODE_DIR)
		return -EISDIR;
	if (kind == TPFS_NODE_STATS)
		return -EINVAL; /* a snapshot per open: see tpfs_fs_stats_json */
	uint64_t size = tpfs_view_size(v, id);
	if (off >= size || len == 0)
		return size || kind == TPFS_NODE_FILE || kind == TPFS_NODE_TENSOR ? 0 : -ENOMEM;
	if (len > size - off)
		len = (size_t)(size - off);
	const struct tpfs_tensor *t = tpfs_view_tensor(v, id);
	switch (kind) {
	case TPFS_NODE_TENSOR:
		return tensor_spans(v, t, off, len, into, sp);
	case TPFS_NODE_FILE: {
		struct tpfs_source *s = tpfs_view_source(v, id);
		int rc = tpfs_source_check(s);
		if (rc == 0)
			rc = populate(s, off, len);
		if (rc < 0)
			return rc;
		add_span(sp, s->map + off, len);
		sp->mapped = s;
		sp->mapped_off = off;
		sp->mapped_len = len;
		return (ssize_t)len;
	}
	case TPFS_NODE_MANIFEST: {
		ssize_t got = tpfs_manifest_read(tpfs_view_manifest(v), off, len, into);
		if (got > 0)
			add_span(sp, into, (size_t)got);
		return got;
	}
	case TPFS_NODE_CARD: {
		const char *text;
		size_t tl;
		int rc = tpfs_file_card(v, (size_t)(t - v->model->tensors), &text, &tl, NULL);
		if (rc < 0)
			return rc;
		add_span(sp, text + off, len);
		return (ssize_t)len;
	}
	default:
		return -EINVAL;
	}
}

void tpfs_file_spans_put(struct tpfs_view *v, struct tpfs_file_spans *sp)
{
	for (size_t i = 0; i < sp->npins; i++)
		tpfs_cache_put(v->cache, sp->pins[i]);
	if (sp->mapped)
		drop_mapped(sp->mapped, sp->mapped_off, sp->mapped_len);
	free(sp->made);
	sp->npins = sp->n = 0;
	sp->mapped = NULL;
	sp->made = NULL;
}

ssize_t tpfs_file_read(struct tpfs_view *v, uint32_t id, uint64_t off,
		       size_t len, void *buf)
{
	size_t done = 0;
	ssize_t rc = 0;
	while (done < len) {
		struct tpfs_file_spans sp;
		rc = tpfs_file_spans_get(v, id, off + done, len - done, (char *)buf + done, &sp);
		size_t at = done;
		for (size_t i = 0; rc > 0 && i < sp.n; i++) {
			/* spans read into place need no copy */
			if (sp.v[i].ptr != (char *)buf + at &&
			    tpfs_guard_copy((char *)buf + at, sp.v[i].ptr, sp.v[i].len) < 0) {
				tpfs_file_faulted(v, id);
				rc = -EIO;
			}
			at += sp.v[i].len;
		}
		tpfs_file_spans_put(v, &sp);
		if (rc <= 0)
			break;
		done += (size_t)rc;
	}
	return rc < 0 ? rc : (ssize_t)done;
}

/* Served data bytes [block * bs, + n) of tensor i into buf, made as a read
 * makes them but not through the block cache: a card streams the whole
 * tensor, which would evict the blocks readers are using. */
static int card_block(void *ctx, size_t i, uint64_t block, void *buf, size_t n)
{
	struct tpfs_view *v = ctx;
	const struct tpfs_tensor *t = &v->model->tensors[i];
	for (int k = 0; k < 2 && t->part[k].st; k++) {
		int rc = tpfs_source_check(t->part[k].src);
		if (rc < 0)
			return rc;
	}
	const struct tpfs_part *p = &t->part[0];
	if (t->conv->kind == TPFS_CONV_STORED)
		return read_source(p->src, p->st->begin + block * v->model->opt.block_size, n,
				   buf);
	struct fill_ctx fc = {v, t, block, false};
	return fill_block(&fc, buf, n);
}

int tpfs_file_card(struct tpfs_view *v, size_t i, const char **text, size_t *len,
		   const struct tpfs_card_stats **stats)
{
	return tpfs_card_set_text(v->cards, i, card_block, v, text, len, stats);
}

void tpfs_file_faulted(struct tpfs_view *v, uint32_t id)
{
	const struct tpfs_tensor *t = tpfs_view_tensor(v, id);
	if (t)
		for (int k = 0; k < 2 && t->part[k].st; k++)
			tpfs_source_faulted(t->part[k].src);
	else if (tpfs_view_kind(v, id) == TPFS_NODE_FILE)
		tpfs_source_faulted(tpfs_view_source(v, id));
}

