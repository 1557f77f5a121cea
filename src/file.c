/*
 * The served entries and their bytes (see file.h): tensors' .npy headers
 * and data, passed-through files, manifest.json and the cards of
 * .tpfs/info, described as spans over immutable memory (the source
 * mappings, pinned cache blocks, finished cards) or over bytes made for the
 * read (headers, the manifest).
 */
#include "tpfs/file.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tpfs/guard.h"
#include "tpfs/log.h"
#include "tpfs/npy.h"
#include "tpfs/buf.h"

static int card_block(void *ctx, size_t i, uint64_t block, void *buf, size_t n);

struct tpfs_fs *tpfs_fs_create(struct tpfs_model *m)
{
	struct tpfs_fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return NULL;
	fs->model = m;
	fs->cache = tpfs_cache_create(m->opt.cache_size);
	fs->cards = tpfs_cards_create(m, card_block, fs);
	if (!fs->cache || !fs->cards) {
		tpfs_fs_destroy(fs);
		return NULL;
	}
	pthread_mutex_init(&fs->manifest_lock, NULL);
	return fs;
}

void tpfs_fs_destroy(struct tpfs_fs *fs)
{
	if (!fs)
		return;
	if (fs->cards)
		pthread_mutex_destroy(&fs->manifest_lock);
	tpfs_manifest_destroy(atomic_load(&fs->manifest));
	tpfs_cards_destroy(fs->cards);
	tpfs_cache_destroy(fs->cache);
	free(fs);
}

/* The manifest's layout, measured by the first caller. */
static const struct tpfs_manifest *manifest_of(struct tpfs_fs *fs)
{
	struct tpfs_manifest *mf = atomic_load(&fs->manifest);
	if (mf)
		return mf;
	pthread_mutex_lock(&fs->manifest_lock);
	mf = atomic_load(&fs->manifest);
	if (!mf) {
		mf = tpfs_manifest_create(fs->model);
		atomic_store(&fs->manifest, mf);
	}
	pthread_mutex_unlock(&fs->manifest_lock);
	return mf;
}

/* ---- entries ------------------------------------------------------------ */

static const struct tpfs_tree *tree_of(const struct tpfs_fs *fs)
{
	return &fs->model->tree;
}

bool tpfs_fs_valid(const struct tpfs_fs *fs, uint64_t id)
{
	size_t nn = tree_of(fs)->nnodes;
	return id < nn ||
	       (id < 2 * nn && (tree_of(fs)->nodes[id - nn].kind == TPFS_NODE_TENSOR ||
				(tree_of(fs)->nodes[id - nn].flags & TPFS_NODE_HAS_TENSORS)));
}

/* The node an entry shows: itself, or the node it mirrors (*card set); a
 * folder of cards mirrors the node whose children it lists, so .tpfs/info
 * mirrors the root. */
static uint32_t node_of(const struct tpfs_fs *fs, uint32_t id, bool *mirror)
{
	const struct tpfs_tree *t = tree_of(fs);
	*mirror = id >= t->nnodes || id == fs->model->info;
	return id == fs->model->info ? 0 : id >= t->nnodes ? id - (uint32_t)t->nnodes : id;
}

static enum tpfs_node_kind kind_of(const struct tpfs_fs *fs, uint32_t id)
{
	bool mirror;
	const struct tpfs_node *n = &tree_of(fs)->nodes[node_of(fs, id, &mirror)];
	return mirror && n->kind == TPFS_NODE_TENSOR ? TPFS_NODE_CARD : n->kind;
}

const struct tpfs_tensor *tpfs_fs_tensor(const struct tpfs_fs *fs, uint32_t id)
{
	bool mirror;
	const struct tpfs_node *n = &tree_of(fs)->nodes[node_of(fs, id, &mirror)];
	return n->kind == TPFS_NODE_TENSOR ? n->payload : NULL;
}

static size_t tensor_index(const struct tpfs_fs *fs, const struct tpfs_tensor *t)
{
	return (size_t)(t - fs->model->tensors);
}

/* The size of a file entry, known without reading (.tpfs/stats: 0). */
static uint64_t size_of(struct tpfs_fs *fs, uint32_t id)
{
	const struct tpfs_tensor *t = tpfs_fs_tensor(fs, id);
	const struct tpfs_manifest *mf;
	switch (kind_of(fs, id)) {
	case TPFS_NODE_TENSOR:
		return tpfs_tensor_npy_size(t);
	case TPFS_NODE_CARD:
		return tpfs_cards_size(fs->cards, tensor_index(fs, t));
	case TPFS_NODE_FILE:
		return ((const struct tpfs_source *)tree_of(fs)->nodes[id].payload)->size;
	case TPFS_NODE_MANIFEST:
		mf = manifest_of(fs);
		return mf ? tpfs_manifest_size(mf) : 0;
	case TPFS_NODE_DIR:
	case TPFS_NODE_STATS:
		break;
	}
	return 0;
}

int tpfs_fs_attr(struct tpfs_fs *fs, uint32_t id, struct tpfs_attr *a)
{
	const struct tpfs_tree *t = tree_of(fs);
	bool mirror;
	uint32_t n = node_of(fs, id, &mirror);
	const struct tpfs_node *node = &t->nodes[n];
	/* a card is served as its tensor, a folder of cards as its folder */
	const struct tpfs_perm *p = tpfs_tree_perm(t, id == fs->model->info ? id : n);
	a->kind = kind_of(fs, id);
	a->uid = p->uid;
	a->gid = p->gid;
	a->mode = p->mode;
	a->nlink = 1;
	a->size = 0;
	switch (a->kind) {
	case TPFS_NODE_DIR: {
		const struct tpfs_dir *d = tpfs_tree_dir_of(t, id == fs->model->info ? id : n);
		const struct tpfs_dir *listed = tpfs_tree_dir_of(t, n);
		a->nlink = 2 + (mirror ? listed->ntensordirs : listed->nsubdirs);
		a->mtime = d->mtime;
		return 0;
	}
	case TPFS_NODE_TENSOR:
	case TPFS_NODE_CARD:
		a->mtime = ((const struct tpfs_tensor *)node->payload)->part[0].src->mtime;
		break;
	case TPFS_NODE_FILE:
		a->mtime = ((const struct tpfs_source *)node->payload)->mtime;
		break;
	case TPFS_NODE_MANIFEST:
	case TPFS_NODE_STATS:
		a->mtime = tpfs_tree_dir_of(t, node->parent)->mtime;
		break;
	}
	if (a->kind == TPFS_NODE_STATS) {
		char *snap = tpfs_fs_stats_json(fs, &a->size);
		free(snap);
		return snap ? 0 : -ENOMEM;
	}
	a->size = size_of(fs, id);
	return a->size || (a->kind != TPFS_NODE_CARD && a->kind != TPFS_NODE_MANIFEST)
		       ? 0 : -ENOMEM;
}

/* In the folder of cards that lists folder dir's: a card name (x.txt for
 * x.npy) into buf, or NULL for a name that has no card. */
static const char *card_name(const char *npy, char buf[256])
{
	size_t n = strlen(npy);
	if (n < 4 || n > 255 || strcmp(npy + n - 4, ".npy") != 0)
		return NULL;
	memcpy(buf, npy, n - 4);
	memcpy(buf + n - 4, ".txt", 5);
	return buf;
}

/* The mirror of child c of the folder that dir lists, when it has one: a
 * folder with a tensor below it, or a tensor whose card no such folder
 * hides. 0 when none. */
static uint32_t mirror_of(const struct tpfs_fs *fs, uint32_t dir, uint32_t c,
			  const char **name, char buf[256])
{
	const struct tpfs_tree *t = tree_of(fs);
	const struct tpfs_node *n = &t->nodes[c];
	*name = n->name;
	if (n->kind == TPFS_NODE_DIR)
		return n->flags & TPFS_NODE_HAS_TENSORS ? (uint32_t)t->nnodes + c : 0;
	if (n->kind != TPFS_NODE_TENSOR || !(*name = card_name(n->name, buf)))
		return 0;
	long clash = tpfs_tree_lookup(t, dir, *name);
	if (clash >= 0 && (t->nodes[clash].flags & TPFS_NODE_HAS_TENSORS))
		return 0;
	return (uint32_t)t->nnodes + c;
}

long tpfs_fs_lookup(const struct tpfs_fs *fs, uint32_t dir, const char *name)
{
	const struct tpfs_tree *t = tree_of(fs);
	bool mirror;
	uint32_t d = node_of(fs, dir, &mirror);
	if (t->nodes[d].kind != TPFS_NODE_DIR)
		return -ENOTDIR;
	if (!mirror)
		return tpfs_tree_lookup(t, d, name);
	long c = tpfs_tree_lookup(t, d, name);
	if (c >= 0 && t->nodes[c].kind == TPFS_NODE_DIR)
		return t->nodes[c].flags & TPFS_NODE_HAS_TENSORS ? (long)t->nnodes + c : -ENOENT;
	/* x.txt: the card of x.npy */
	size_t n = strlen(name);
	char npy[256];
	if (n < 4 || n > 255 || strcmp(name + n - 4, ".txt") != 0)
		return -ENOENT;
	memcpy(npy, name, n - 4);
	memcpy(npy + n - 4, ".npy", 5);
	c = tpfs_tree_lookup(t, d, npy);
	return c >= 0 && t->nodes[c].kind == TPFS_NODE_TENSOR ? (long)t->nnodes + c : -ENOENT;
}

int tpfs_fs_entry_at(const struct tpfs_fs *fs, uint32_t dir, uint64_t *k, uint32_t *id,
		     const char **name, char buf[256])
{
	const struct tpfs_tree *t = tree_of(fs);
	bool mirror;
	uint32_t d = node_of(fs, dir, &mirror);
	const struct tpfs_dir *dd = tpfs_tree_dir_of(t, d);
	for (; *k < dd->nchild; (*k)++) {
		uint32_t c = t->children[dd->child0 + *k];
		*id = mirror ? mirror_of(fs, d, c, name, buf) : c;
		if (!mirror)
			*name = t->nodes[c].name;
		if (*id)
			return 0;
	}
	return -ENOENT;
}

/* ---- bytes -------------------------------------------------------------- */

int tpfs_file_open_check(struct tpfs_fs *fs, uint32_t id)
{
	const struct tpfs_tensor *t = tpfs_fs_tensor(fs, id);
	const struct tpfs_model *m = fs->model;
	int rc = 0;
	switch (kind_of(fs, id)) {
	case TPFS_NODE_TENSOR:
		for (int i = 0; i < 2 && t->part[i].st && rc == 0; i++)
			rc = tpfs_source_check_access(t->part[i].src);
		break;
	case TPFS_NODE_FILE:
		rc = tpfs_source_check_access(tree_of(fs)->nodes[id].payload);
		break;
	case TPFS_NODE_CARD: /* made from the source once: see its reads */
		for (int i = 0; i < 2 && t->part[i].st && rc == 0; i++)
			rc = tpfs_source_check_perms(t->part[i].src);
		break;
	case TPFS_NODE_MANIFEST:
		for (size_t i = 0; i < m->nsources && rc == 0; i++)
			if (m->sources[i]->st)
				rc = tpfs_source_check_perms(m->sources[i]);
		break;
	case TPFS_NODE_DIR:
	case TPFS_NODE_STATS:
		break;
	}
	return rc;
}

static bool add_span(struct tpfs_spans *sp, const void *p, size_t len)
{
	if (sp->n == TPFS_MAX_SPANS)
		return false;
	sp->v[sp->n++] = (struct tpfs_span){p, len};
	return true;
}

/* A page fault maps more than its page: the cached pages of the aligned
 * 64 KiB around it (the kernel's fault_around_bytes), and on recent kernels
 * (seen on 6.18) the whole page-cache folio it falls in, which the page
 * cache makes up to 2 MiB (the PMD size with 4 KiB pages) for a file read
 * ahead in large steps. A range's faults map its neighbours that far. */
#define MAP_AROUND ((uint64_t)2 << 20)

/* Advise the kernel about the pages of a source range (rounded out to whole
 * pages): MADV_WILLNEED starts reading them ahead of use; MADV_DONTNEED drops
 * them from this process's page tables once used, with MAP_AROUND on either
 * side, which this range's faults mapped too, or a neighbouring range's
 * faults after that range was dropped (a reader of the neighbour in flight
 * just faults again). The data stays in the page cache either way, but
 * without the second the daemon's resident size would grow to the size of
 * the model, and with it its standing with the out-of-memory killer (with
 * only 64 KiB around, 32 readers left 40-60 MB of folios' ends mapped). */
static void advise(const struct tpfs_source *s, uint64_t begin, uint64_t len,
		   int advice)
{
	if (len == 0 || !s->map)
		return;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t pad = advice == MADV_DONTNEED ? MAP_AROUND : 0;
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
 * [elem0, elem0 + n), from the source bytes the conversion names. */
static int fill_block(void *arg, void *dst, size_t len)
{
	const struct fill_ctx *c = arg;
	const struct tpfs_tensor *t = c->t;
	const struct tpfs_conv *cv = t->conv;
	const struct tpfs_part *p = t->part;
	uint64_t elem0 = c->block * c->fs->model->opt.block_size / cv->out_bytes;
	size_t n = len / cv->out_bytes;
	struct tpfs_conv_input in[2];
	tpfs_conv_inputs(cv, p[0].st->dtype, elem0, n, in);
	struct tpfs_kernel_args a = {
		.conv = cv,
		.src = p[0].src->map + p[0].st->begin + in[0].off,
		.src2 = p[1].st ? p[1].src->map + p[1].st->begin + in[1].off : NULL,
		.dst = dst,
		.n = n,
	};
	for (int i = 0; i < 2 && p[i].st; i++)
		advise(p[i].src, p[i].st->begin + in[i].off, in[i].len, MADV_WILLNEED);
	int rc = tpfs_guard_run(run_kernel, &a);
	for (int i = 0; i < 2 && p[i].st; i++)
		advise(p[i].src, p[i].st->begin + in[i].off, in[i].len, MADV_DONTNEED);
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

/* Bytes made for this read, which the spans own until released. */
static void *made_for(struct tpfs_spans *sp, size_t len)
{
	sp->made = malloc(len ? len : 1);
	return sp->made;
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

ssize_t tpfs_file_spans(struct tpfs_fs *fs, uint32_t id, uint64_t off,
			size_t len, struct tpfs_spans *sp)
{
	sp->n = sp->npins = 0;
	sp->mapped = NULL;
	sp->made = NULL;
	sp->partial = false;
	enum tpfs_node_kind kind = kind_of(fs, id);
	if (kind == TPFS_NODE_DIR)
		return -EISDIR;
	if (kind == TPFS_NODE_STATS)
		return -EINVAL; /* a snapshot per open: see tpfs_fs_stats_json */
	uint64_t size = size_of(fs, id);
	if (off >= size || len == 0)
		return size || kind == TPFS_NODE_FILE || kind == TPFS_NODE_TENSOR ? 0 : -ENOMEM;
	if (len > size - off)
		len = (size_t)(size - off);
	const struct tpfs_tensor *t = tpfs_fs_tensor(fs, id);
	switch (kind) {
	case TPFS_NODE_TENSOR:
		return tensor_spans(fs, t, off, len, sp);
	case TPFS_NODE_FILE: {
		struct tpfs_source *s = tree_of(fs)->nodes[id].payload;
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
		void *buf = made_for(sp, len);
		ssize_t got = buf ? tpfs_manifest_read(manifest_of(fs), off, len, buf) : -ENOMEM;
		if (got > 0)
			add_span(sp, buf, (size_t)got);
		return got;
	}
	case TPFS_NODE_CARD: {
		const char *text;
		size_t tl;
		int rc = tpfs_cards_text(fs->cards, tensor_index(fs, t), &text, &tl);
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
	free(sp->made);
	sp->npins = sp->n = 0;
	sp->mapped = NULL;
	sp->made = NULL;
}

ssize_t tpfs_file_read(struct tpfs_fs *fs, uint32_t id, uint64_t off,
		       size_t len, void *buf)
{
	size_t done = 0;
	ssize_t rc = 0;
	while (done < len) {
		struct tpfs_spans sp;
		rc = tpfs_file_spans(fs, id, off + done, len - done, &sp);
		size_t at = done;
		for (size_t i = 0; rc > 0 && i < sp.n; i++) {
			if (tpfs_guard_copy((char *)buf + at, sp.v[i].ptr, sp.v[i].len) < 0) {
				tpfs_file_faulted(fs, id);
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

/* Served data bytes [block * bs, + n) of tensor i into buf, made as a read
 * makes them but not through the block cache: a card streams the whole
 * tensor, which would evict the blocks readers are using. */
static int card_block(void *ctx, size_t i, uint64_t block, void *buf, size_t n)
{
	struct tpfs_fs *fs = ctx;
	const struct tpfs_tensor *t = &fs->model->tensors[i];
	const struct tpfs_part *p = &t->part[0];
	for (int k = 0; k < 2 && t->part[k].st; k++) {
		int rc = tpfs_source_check(t->part[k].src);
		if (rc < 0)
			return rc;
	}
	if (t->conv->kind != TPFS_CONV_STORED) {
		struct fill_ctx fc = {fs, t, block};
		return fill_block(&fc, buf, n);
	}
	uint64_t off = p->st->begin + block * fs->model->opt.block_size;
	int rc = tpfs_guard_copy(buf, p->src->map + off, n);
	advise(p->src, off, n, MADV_DONTNEED);
	if (rc < 0)
		tpfs_source_faulted(p->src);
	return rc < 0 ? -EIO : 0;
}

void tpfs_file_faulted(struct tpfs_fs *fs, uint32_t id)
{
	const struct tpfs_tensor *t = tpfs_fs_tensor(fs, id);
	if (t)
		for (int k = 0; k < 2 && t->part[k].st; k++)
			tpfs_source_faulted(t->part[k].src);
	else if (kind_of(fs, id) == TPFS_NODE_FILE)
		tpfs_source_faulted(tree_of(fs)->nodes[id].payload);
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
