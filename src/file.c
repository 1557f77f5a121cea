/*
 * Virtual file contents: the .npy header and data of each tensor, passed-
 * through files and manifest.json, described as spans over immutable memory
 * (the source mappings, the model's buffers and pinned cache blocks).
 */
#include "tpfs/file.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tpfs/guard.h"
#include "tpfs/info.h"
#include "tpfs/log.h"

struct tpfs_info_slot {
	pthread_mutex_t lock;
	char *text; /* lock; immutable once set */
	size_t len;
};

struct tpfs_fs *tpfs_fs_create(struct tpfs_model *m)
{
	struct tpfs_fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return NULL;
	fs->model = m;
	fs->cache = tpfs_cache_create(m->opt.cache_size);
	fs->info = calloc(m->ntensors + 1, sizeof(*fs->info));
	if (!fs->cache || !fs->info) {
		tpfs_cache_destroy(fs->cache);
		free(fs->info);
		free(fs);
		return NULL;
	}
	for (size_t i = 0; i < m->ntensors; i++)
		pthread_mutex_init(&fs->info[i].lock, NULL);
	return fs;
}

void tpfs_fs_destroy(struct tpfs_fs *fs)
{
	if (!fs)
		return;
	for (size_t i = 0; i < fs->model->ntensors; i++) {
		pthread_mutex_destroy(&fs->info[i].lock);
		free(fs->info[i].text);
	}
	free(fs->info);
	tpfs_cache_destroy(fs->cache);
	free(fs);
}

uint64_t tpfs_node_size(const struct tpfs_fs *fs, uint32_t node)
{
	const struct tpfs_node *n = &fs->model->tree.nodes[node];
	switch (n->kind) {
	case TPFS_NODE_TENSOR:
		return ((const struct tpfs_tensor *)n->payload)->npy_size;
	case TPFS_NODE_FILE:
		return ((const struct tpfs_source *)n->payload)->size;
	case TPFS_NODE_MANIFEST:
		return fs->model->manifest_len;
	case TPFS_NODE_INFO:
		return ((const struct tpfs_tensor *)n->payload)->info_size;
	case TPFS_NODE_DIR:
	case TPFS_NODE_STATS:
		break;
	}
	return 0;
}

static bool add_span(struct tpfs_spans *sp, const void *p, size_t len)
{
	if (sp->n == TPFS_MAX_SPANS)
		return false;
	sp->v[sp->n++] = (struct tpfs_span){p, len};
	return true;
}

/* A page fault maps the cached pages of the aligned 64 KiB around it too
 * (the kernel's fault_around_bytes): a range's neighbours get mapped by it. */
#define FAULT_AROUND ((uint64_t)64 << 10)

/* Advise the kernel about the pages of a source range (rounded out to whole
 * pages): MADV_WILLNEED starts reading them ahead of use; MADV_DONTNEED drops
 * them from this process's page tables once used, with the fault-around
 * window on either side, which a neighbouring range's faults may have mapped
 * after that range was dropped. The data stays in the page cache either way,
 * but without the second the daemon's resident size would grow to the size
 * of the model, and with it its standing with the out-of-memory killer. */
static void advise(const struct tpfs_source *s, uint64_t begin, uint64_t len,
		   int advice)
{
	if (len == 0 || !s->map)
		return;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t pad = advice == MADV_DONTNEED ? FAULT_AROUND : 0;
	uint64_t a = (begin > pad ? begin - pad : 0) & ~(page - 1);
	uint64_t end = begin + len + pad;
	end = end > s->size ? s->size : end;
	madvise((void *)(s->map + a), (size_t)(end - a), advice);
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

struct fill_ctx {
	struct tpfs_fs *fs;
	const struct tpfs_tensor *t;
	uint64_t block;
};

static void run_kernel(void *arg)
{
	struct tpfs_kernel_args *a = arg;
	a->conv->kernel(a);
}

/* Produce block c->block of a converted tensor: output elements
 * [elem0, elem0 + n) from source elements at the same indices (an MXFP4
 * pair: blocks byte elem0 / 2 and scale elem0 / 32; block sizes keep elem0
 * a multiple of 32). */
static int fill_block(void *arg, void *dst, size_t len)
{
	const struct fill_ctx *c = arg;
	const struct tpfs_tensor *t = c->t;
	const struct tpfs_conv *cv = t->conv;
	const struct tpfs_part *p = t->part;
	uint64_t elem0 = c->block * c->fs->model->opt.block_size / cv->out_bytes;
	size_t n = len / cv->out_bytes;
	unsigned in_bits = cv->kind == TPFS_CONV_MXFP4 ? 4
						       : tpfs_dtype_info(p[0].st->dtype)->bits;
	uint64_t off = p[0].st->begin + elem0 * in_bits / 8;
	uint64_t bytes = (uint64_t)n * in_bits / 8;
	uint64_t off2 = p[1].st ? p[1].st->begin + elem0 / 32 : 0;
	uint64_t bytes2 = p[1].st ? n / 32 : 0;
	struct tpfs_kernel_args a = {
		.conv = cv,
		.src = p[0].src->map + off,
		.src2 = p[1].st ? p[1].src->map + off2 : NULL,
		.dst = dst,
		.n = n,
	};
	advise(p[0].src, off, bytes, MADV_WILLNEED);
	if (p[1].st)
		advise(p[1].src, off2, bytes2, MADV_WILLNEED);
	int rc = tpfs_guard_run(run_kernel, &a);
	advise(p[0].src, off, bytes, MADV_DONTNEED);
	if (p[1].st)
		advise(p[1].src, off2, bytes2, MADV_DONTNEED);
	if (rc < 0) {
		for (int i = 0; i < 2 && p[i].st; i++)
			tpfs_source_faulted(p[i].src);
		return rc;
	}
	atomic_fetch_add_explicit(&c->fs->bytes_converted, len, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->fs->overflows, a.overflows, memory_order_relaxed);
	return 0;
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

/* Spans for data bytes [k, k + len) of a converted tensor. */
static ssize_t converted_spans(struct tpfs_fs *fs, const struct tpfs_tensor *t,
			       uint64_t k, size_t len, struct tpfs_spans *sp)
{
	uint64_t bs = fs->model->opt.block_size;
	size_t done = 0;
	while (done < len && sp->n < TPFS_MAX_SPANS) {
		uint64_t pos = k + done;
		uint64_t block = pos / bs;
		uint64_t bstart = block * bs;
		size_t blen = (size_t)(t->data_bytes - bstart < bs ? t->data_bytes - bstart
								      : bs);
		struct tpfs_cache_key key;
		memset(&key, 0, sizeof(key));
		key_part(&key.src[0], &t->part[0]);
		key_part(&key.src[1], &t->part[1]);
		key.block = block;
		key.conv = (uint64_t)t->conv->id;
		struct fill_ctx ctx = {fs, t, block};
		struct tpfs_cache_block *b;
		int rc = tpfs_cache_get(fs->cache, &key, blen, fill_block, &ctx, &b);
		if (rc < 0) {
			sp->partial = done > 0;
			return done ? (ssize_t)done : rc;
		}
		sp->pins[sp->npins++] = b;
		size_t in = (size_t)(pos - bstart);
		size_t take = blen - in < len - done ? blen - in : len - done;
		add_span(sp, (const char *)tpfs_cache_data(b) + in, take);
		done += take;
	}
	sp->partial = done < len;
	return (ssize_t)done;
}

static ssize_t tensor_spans(struct tpfs_fs *fs, const struct tpfs_tensor *t,
			    uint64_t off, size_t len, struct tpfs_spans *sp)
{
	for (int i = 0; i < 2 && t->part[i].st; i++) {
		int rc = tpfs_source_check(t->part[i].src);
		if (rc < 0)
			return rc;
	}
	size_t done = 0;
	if (off < t->npy_header_len) {
		size_t take = t->npy_header_len - off < len ? t->npy_header_len - off : len;
		add_span(sp, t->npy_header + off, take);
		done = take;
	}
	if (done == len)
		return (ssize_t)done;
	uint64_t k = off + done - t->npy_header_len;
	if (t->conv->kind == TPFS_CONV_STORED) {
		const struct tpfs_part *p = &t->part[0];
		int rc = populate(p->src, p->st->begin + k, len - done);
		if (rc < 0) {
			sp->partial = done > 0;
			return done ? (ssize_t)done : rc;
		}
		add_span(sp, p->src->map + p->st->begin + k, len - done);
		sp->mapped = p->src;
		sp->mapped_off = p->st->begin + k;
		sp->mapped_len = len - done;
		return (ssize_t)len;
	}
	ssize_t got = converted_spans(fs, t, k, len - done, sp);
	if (got < 0) {
		sp->partial = done > 0;
		return done ? (ssize_t)done : got;
	}
	return (ssize_t)(done + (size_t)got);
}

ssize_t tpfs_file_spans(struct tpfs_fs *fs, uint32_t node, uint64_t off,
			size_t len, struct tpfs_spans *sp)
{
	sp->n = sp->npins = 0;
	sp->mapped = NULL;
	sp->partial = false;
	const struct tpfs_node *n = &fs->model->tree.nodes[node];
	uint64_t size = tpfs_node_size(fs, node);
	if (n->kind == TPFS_NODE_DIR)
		return -EISDIR;
	if (n->kind == TPFS_NODE_STATS)
		return -EINVAL; /* a snapshot per open: see tpfs_fs_stats_json */
	if (off >= size || len == 0)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	switch (n->kind) {
	case TPFS_NODE_TENSOR:
		return tensor_spans(fs, n->payload, off, len, sp);
	case TPFS_NODE_FILE: {
		struct tpfs_source *s = n->payload;
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
	case TPFS_NODE_MANIFEST:
		add_span(sp, fs->model->manifest + off, len);
		return (ssize_t)len;
	case TPFS_NODE_INFO: {
		const char *text;
		size_t tl;
		size_t i = (size_t)((const struct tpfs_tensor *)n->payload - fs->model->tensors);
		int rc = tpfs_file_info(fs, i, &text, &tl);
		if (rc < 0)
			return rc;
		add_span(sp, text + off, len);
		return (ssize_t)len;
	}
	default:
		return -EINVAL;
	}
}

void tpfs_spans_release(struct tpfs_fs *fs, struct tpfs_spans *sp)
{
	for (size_t i = 0; i < sp->npins; i++)
		tpfs_cache_put(fs->cache, sp->pins[i]);
	if (sp->mapped)
		advise(sp->mapped, sp->mapped_off, sp->mapped_len, MADV_DONTNEED);
	sp->npins = sp->n = 0;
	sp->mapped = NULL;
}

ssize_t tpfs_file_read(struct tpfs_fs *fs, uint32_t node, uint64_t off,
		       size_t len, void *buf)
{
	size_t done = 0;
	ssize_t rc = 0;
	while (done < len) {
		struct tpfs_spans sp;
		rc = tpfs_file_spans(fs, node, off + done, len - done, &sp);
		size_t at = done;
		for (size_t i = 0; rc > 0 && i < sp.n; i++) {
			if (tpfs_guard_copy((char *)buf + at, sp.v[i].ptr, sp.v[i].len) < 0) {
				tpfs_file_faulted(fs, node);
				rc = -EIO;
			}
			at += sp.v[i].len;
		}
		tpfs_spans_release(fs, &sp);
		if (rc <= 0)
			break;
		done += (size_t)rc;
	}
	return rc < 0 ? rc : (ssize_t)done;
}

/* Bytes [off, off + n) of a tensor's served data into buf, made as a read
 * makes them but not through the block cache: a card streams the whole
 * tensor, which would evict the blocks readers are using. */
static int data_copy(struct tpfs_fs *fs, const struct tpfs_tensor *t, uint64_t block,
		     void *buf, size_t n)
{
	const struct tpfs_part *p = &t->part[0];
	if (t->conv->kind != TPFS_CONV_STORED) {
		struct fill_ctx ctx = {fs, t, block};
		return fill_block(&ctx, buf, n);
	}
	uint64_t off = p->st->begin + block * fs->model->opt.block_size;
	int rc = tpfs_guard_copy(buf, p->src->map + off, n);
	advise(p->src, off, n, MADV_DONTNEED);
	if (rc < 0)
		tpfs_source_faulted(p->src);
	return rc < 0 ? -EIO : 0;
}

/* Stream the tensor's served values through the statistics a block at a
 * time, then render its card. */
static int compute_info(struct tpfs_fs *fs, const struct tpfs_tensor *t, char **text,
			size_t *len)
{
	struct tpfs_stats st;
	tpfs_stats_init(&st, t->descr);
	for (int i = 0; i < 2 && t->part[i].st; i++) {
		int rc = tpfs_source_check(t->part[i].src);
		if (rc < 0)
			return rc;
	}
	/* a block is a power of two, so a multiple of every element size */
	uint64_t bs = fs->model->opt.block_size;
	unsigned char *buf = malloc(t->data_bytes < bs ? (size_t)t->data_bytes + 1 : bs);
	if (!buf)
		return -ENOMEM;
	for (uint64_t block = 0; block * bs < t->data_bytes; block++) {
		uint64_t left = t->data_bytes - block * bs;
		size_t n = left < bs ? (size_t)left : (size_t)bs;
		int rc = data_copy(fs, t, block, buf, n);
		if (rc < 0) {
			free(buf);
			return rc;
		}
		tpfs_stats_add(&st, buf, n / st.size);
	}
	free(buf);
	*text = tpfs_info_render(t, &st, len);
	if (!*text)
		return -ENOMEM;
	if (*len != t->info_size) {
		/* A field outgrew its width: a bug, not a reason to lie about st_size. */
		tpfs_log(LOG_ERR, "info card of %s is %zu bytes, not %" PRIu64, t->path,
			 *len, t->info_size);
		free(*text);
		return -EIO;
	}
	return 0;
}

int tpfs_file_info(struct tpfs_fs *fs, size_t i, const char **text, size_t *len)
{
	struct tpfs_info_slot *slot = &fs->info[i];
	int rc = 0;
	pthread_mutex_lock(&slot->lock);
	if (!slot->text)
		rc = compute_info(fs, &fs->model->tensors[i], &slot->text, &slot->len);
	*text = slot->text;
	*len = slot->len;
	pthread_mutex_unlock(&slot->lock);
	return rc;
}

void tpfs_file_faulted(struct tpfs_fs *fs, uint32_t node)
{
	const struct tpfs_node *n = &fs->model->tree.nodes[node];
	const struct tpfs_tensor *t = n->payload;
	if (n->kind == TPFS_NODE_TENSOR)
		for (int k = 0; k < 2 && t->part[k].st; k++)
			tpfs_source_faulted(t->part[k].src);
	else if (n->kind == TPFS_NODE_FILE)
		tpfs_source_faulted(n->payload);
}

char *tpfs_fs_stats_json(struct tpfs_fs *fs, size_t *len)
{
	struct tpfs_cache_stats cs;
	tpfs_cache_get_stats(fs->cache, &cs);
	struct tpfs_buf b = {0};
	tpfs_buf_printf(
		&b,
		"{\n  \"reads\": %" PRIu64 ",\n  \"bytes_served\": %" PRIu64
		",\n  \"cache_hits\": %" PRIu64 ",\n  \"cache_misses\": %" PRIu64
		",\n  \"cache_evictions\": %" PRIu64 ",\n  \"cache_bytes\": %" PRIu64
		",\n  \"cache_capacity\": %" PRIu64 ",\n  \"cache_blocks\": %" PRIu64
		",\n  \"bytes_converted\": %" PRIu64 ",\n  \"overflows\": %" PRIu64
		",\n  \"errors\": %" PRIu64 "\n}\n",
		(uint64_t)atomic_load(&fs->reads), (uint64_t)atomic_load(&fs->bytes_served),
		cs.hits, cs.misses, cs.evictions, cs.used, cs.capacity, cs.blocks,
		(uint64_t)atomic_load(&fs->bytes_converted),
		(uint64_t)atomic_load(&fs->overflows), (uint64_t)atomic_load(&fs->errors));
	return tpfs_buf_take(&b, len);
}

void tpfs_fs_count_error(struct tpfs_fs *fs)
{
	atomic_fetch_add_explicit(&fs->errors, 1, memory_order_relaxed);
}

void tpfs_fs_count_read(struct tpfs_fs *fs, ssize_t got)
{
	atomic_fetch_add_explicit(&fs->reads, 1, memory_order_relaxed);
	if (got < 0)
		atomic_fetch_add_explicit(&fs->errors, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&fs->bytes_served, (uint64_t)got,
					  memory_order_relaxed);
}
