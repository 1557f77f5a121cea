/*
 * What a mount serves (see view.h): the entries over the tree, the
 * .tpfs/info mirror, attributes, and the counters of .tpfs/stats.
 */
#include "tpfs/view.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "tpfs/buf.h"

struct tpfs_view *tpfs_view_create(struct tpfs_model *m)
{
	struct tpfs_view *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->model = m;
	pthread_mutex_init(&v->manifest_lock, NULL);
	pthread_mutex_init(&v->overflowed_lock, NULL);
	v->cache = tpfs_cache_create(m->opt.cache_size);
	v->cards = tpfs_card_set_create(m);
	if (!v->cache || !v->cards) {
		tpfs_view_destroy(v);
		return NULL;
	}
	return v;
}

void tpfs_view_destroy(struct tpfs_view *v)
{
	if (!v)
		return;
	tpfs_ahead_destroy(v->ahead); /* its threads fill the cache */
	pthread_mutex_destroy(&v->manifest_lock);
	pthread_mutex_destroy(&v->overflowed_lock);
	free(v->overflowed);
	tpfs_manifest_destroy(atomic_load(&v->manifest));
	tpfs_card_set_destroy(v->cards);
	tpfs_cache_destroy(v->cache);
	free(v);
}

/* The manifest's layout, measured by the first caller. */
const struct tpfs_manifest *tpfs_view_manifest(struct tpfs_view *v)
{
	struct tpfs_manifest *mf = atomic_load(&v->manifest);
	if (mf)
		return mf;
	pthread_mutex_lock(&v->manifest_lock);
	mf = atomic_load(&v->manifest);
	if (!mf) {
		mf = tpfs_manifest_create(v->model);
		atomic_store(&v->manifest, mf);
	}
	pthread_mutex_unlock(&v->manifest_lock);
	return mf;
}


static const struct tpfs_tree *tree_of(const struct tpfs_view *v)
{
	return &v->model->tree;
}

bool tpfs_view_valid(const struct tpfs_view *v, uint64_t id)
{
	size_t nn = tree_of(v)->nnodes;
	return id < nn ||
	       (id < 2 * nn && (tree_of(v)->nodes[id - nn].kind == TPFS_NODE_TENSOR ||
				(tree_of(v)->nodes[id - nn].flags & TPFS_NODE_HAS_TENSORS)));
}

/* The node an entry shows: itself, or the node it mirrors (*card set); a
 * folder of cards mirrors the node whose children it lists, so .tpfs/info
 * mirrors the root. */
static uint32_t node_of(const struct tpfs_view *v, uint32_t id, bool *mirror)
{
	const struct tpfs_tree *t = tree_of(v);
	*mirror = id >= t->nnodes || id == v->model->info;
	return id == v->model->info ? 0 : id >= t->nnodes ? id - (uint32_t)t->nnodes : id;
}

enum tpfs_node_kind tpfs_view_kind(const struct tpfs_view *v, uint32_t id)
{
	bool mirror;
	const struct tpfs_node *n = &tree_of(v)->nodes[node_of(v, id, &mirror)];
	return mirror && n->kind == TPFS_NODE_TENSOR ? TPFS_NODE_CARD : n->kind;
}

struct tpfs_source *tpfs_view_source(const struct tpfs_view *v, uint32_t id)
{
	return tpfs_view_kind(v, id) == TPFS_NODE_FILE ? tree_of(v)->nodes[id].payload : NULL;
}

const struct tpfs_tensor *tpfs_view_tensor(const struct tpfs_view *v, uint32_t id)
{
	bool mirror;
	const struct tpfs_node *n = &tree_of(v)->nodes[node_of(v, id, &mirror)];
	return n->kind == TPFS_NODE_TENSOR ? n->payload : NULL;
}

uint64_t tpfs_view_size(struct tpfs_view *v, uint32_t id)
{
	const struct tpfs_tensor *t = tpfs_view_tensor(v, id);
	const struct tpfs_manifest *mf;
	switch (tpfs_view_kind(v, id)) {
	case TPFS_NODE_TENSOR:
		return tpfs_tensor_npy_size(t);
	case TPFS_NODE_CARD:
		return tpfs_card_set_size(v->cards, (size_t)(t - v->model->tensors));
	case TPFS_NODE_FILE:
		return ((const struct tpfs_source *)tree_of(v)->nodes[id].payload)->size;
	case TPFS_NODE_MANIFEST:
		mf = tpfs_view_manifest(v);
		return mf ? tpfs_manifest_size(mf) : 0;
	case TPFS_NODE_DIR:
	case TPFS_NODE_STATS:
		break;
	}
	return 0;
}

bool tpfs_view_size_hidden(const struct tpfs_view *v, uint32_t id)
{
	enum tpfs_node_kind kind = tpfs_view_kind(v, id);
	if (kind != TPFS_NODE_MANIFEST && kind != TPFS_NODE_STATS)
		return false;
	const struct tpfs_tree *t = tree_of(v);
	const struct tpfs_perm *f = tpfs_tree_perm(t, id);
	const struct tpfs_perm *d = tpfs_tree_perm(t, t->nodes[id].parent);
	/* a class that may search the folder but not read the file */
	return f->uid != d->uid || f->gid != d->gid || ((d->mode & 0111) << 2 & ~f->mode);
}

uint64_t tpfs_view_ino(const struct tpfs_view *v, uint32_t id)
{
	if (id == 0)
		return 1;
	const struct tpfs_tree *t = tree_of(v);
	bool mirror;
	uint32_t n = node_of(v, id, &mirror);
	uint64_t h = mirror ? 0x74706673696e666full : 0; /* "tpfsinfo" */
	for (uint32_t d = n; d != 0; d = t->nodes[d].parent)
		h = XXH3_64bits_withSeed(t->nodes[d].name, strlen(t->nodes[d].name), h);
	return h < 2 ? h + 2 : h; /* 0 is no entry, 1 the root */
}

int tpfs_view_stat(struct tpfs_view *v, uint32_t id, struct tpfs_view_attr *a)
{
	const struct tpfs_tree *t = tree_of(v);
	bool mirror;
	uint32_t n = node_of(v, id, &mirror);
	const struct tpfs_node *node = &t->nodes[n];
	/* a card is served as its tensor, a folder of cards as its folder */
	const struct tpfs_perm *p = tpfs_tree_perm(t, id == v->model->info ? id : n);
	a->kind = tpfs_view_kind(v, id);
	a->uid = p->uid;
	a->gid = p->gid;
	a->mode = p->mode;
	a->nlink = 1;
	a->size = 0;
	switch (a->kind) {
	case TPFS_NODE_DIR:
		/* nlink 1, "not counted", as btrfs does: a count of subfolders
		 * would tell who may look a folder up but not list it how many
		 * folders the names in it make */
		a->mtime = tpfs_tree_dir_of(t, id == v->model->info ? id : n)->mtime;
		return 0;
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
	if (tpfs_view_size_hidden(v, id))
		return 0;
	if (a->kind == TPFS_NODE_STATS) {
		char *snap = tpfs_view_stats_json(v, &a->size);
		free(snap);
		return snap ? 0 : -ENOMEM;
	}
	a->size = tpfs_view_size(v, id);
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
static uint32_t mirror_of(const struct tpfs_view *v, uint32_t dir, uint32_t c,
			  const char **name, char buf[256])
{
	const struct tpfs_tree *t = tree_of(v);
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

long tpfs_view_lookup(const struct tpfs_view *v, uint32_t dir, const char *name)
{
	const struct tpfs_tree *t = tree_of(v);
	bool mirror;
	uint32_t d = node_of(v, dir, &mirror);
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

int tpfs_view_entry_at(const struct tpfs_view *v, uint32_t dir, uint64_t *k, uint32_t *id,
		     const char **name, char buf[256])
{
	const struct tpfs_tree *t = tree_of(v);
	bool mirror;
	uint32_t d = node_of(v, dir, &mirror);
	const struct tpfs_dir *dd = tpfs_tree_dir_of(t, d);
	for (; *k < dd->nchild; (*k)++) {
		uint32_t c = t->children[dd->child0 + *k];
		*id = mirror ? mirror_of(v, d, c, name, buf) : c;
		if (!mirror)
			*name = t->nodes[c].name;
		if (*id)
			return 0;
	}
	return -ENOENT;
}

void tpfs_view_totals(const struct tpfs_view *v, uint64_t *bytes, uint64_t *entries)
{
	const struct tpfs_model *m = v->model;
	*bytes = 0;
	for (size_t i = 0; i < m->ntensors; i++)
		*bytes += tpfs_tensor_npy_size(&m->tensors[i]);
	for (size_t i = 0; i < m->nsources; i++)
		*bytes += m->sources[i]->st ? 0 : m->sources[i]->size;
	/* the nodes, and their mirrors under .tpfs/info but the root's
	 * (.tpfs/info itself, a node) */
	*entries = m->tree.nnodes;
	for (size_t i = 1; i < m->tree.nnodes; i++)
		*entries += tpfs_view_valid(v, m->tree.nnodes + i);
}

char *tpfs_view_stats_json(struct tpfs_view *v, size_t *len)
{
	struct tpfs_cache_stats cs;
	tpfs_cache_get_stats(v->cache, &cs);
	struct tpfs_buf b = {0};
	tpfs_buf_printf(
		&b,
		"{\n  \"reads\": %" PRIu64 ",\n  \"bytes_served\": %" PRIu64
		",\n  \"cache_hits\": %" PRIu64 ",\n  \"cache_misses\": %" PRIu64
		",\n  \"cache_evictions\": %" PRIu64 ",\n  \"cache_bytes\": %" PRIu64
		",\n  \"cache_capacity\": %" PRIu64 ",\n  \"cache_blocks\": %" PRIu64
		",\n  \"blocks_read_ahead\": %" PRIu64
		",\n  \"bytes_converted\": %" PRIu64 ",\n  \"overflows\": %" PRIu64
		",\n  \"errors\": %" PRIu64 "\n}\n",
		(uint64_t)atomic_load(&v->reads), (uint64_t)atomic_load(&v->bytes_served),
		cs.hits, cs.misses, cs.evictions, cs.used, cs.capacity, cs.blocks,
		v->ahead ? tpfs_ahead_made(v->ahead) : 0,
		(uint64_t)atomic_load(&v->bytes_converted),
		(uint64_t)atomic_load(&v->overflows), (uint64_t)atomic_load(&v->errors));
	return tpfs_buf_take(&b, len);
}

void tpfs_view_count_error(struct tpfs_view *v)
{
	atomic_fetch_add_explicit(&v->errors, 1, memory_order_relaxed);
}

void tpfs_view_count_read(struct tpfs_view *v, ssize_t got)
{
	atomic_fetch_add_explicit(&v->reads, 1, memory_order_relaxed);
	if (got < 0)
		atomic_fetch_add_explicit(&v->errors, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&v->bytes_served, (uint64_t)got,
					  memory_order_relaxed);
}

/* The slot of (tensor i + 1, block) in a table of cap slots (a power of
 * two): its own, or the free one where it would go. */
static size_t overflowed_slot(uint64_t (*t)[2], size_t cap, uint64_t tensor, uint64_t block)
{
	size_t at = (size_t)((tensor * 0x9e3779b97f4a7c15u) ^ (block * 0xc2b2ae3d27d4eb4fu));
	for (;; at++) {
		at &= cap - 1;
		if ((t[at][0] == tensor && t[at][1] == block) || (t[at][0] == 0 && t[at][1] == 0))
			return at;
	}
}

/* Whether the block is new to the table, entering it; true also when
 * memory is short (its overflows are counted again then, never lost). */
static bool first_overflow(struct tpfs_view *v, size_t i, uint64_t block)
{
	uint64_t tensor = (uint64_t)i + 1;
	bool first = true;
	pthread_mutex_lock(&v->overflowed_lock);
	if (2 * (v->noverflowed + 1) > v->overflowed_cap) {
		size_t cap = v->overflowed_cap ? 2 * v->overflowed_cap : 64;
		uint64_t(*t)[2] = calloc(cap, sizeof(*t));
		for (size_t k = 0; t && k < v->overflowed_cap; k++)
			if (v->overflowed[k][0])
				memcpy(t[overflowed_slot(t, cap, v->overflowed[k][0],
							 v->overflowed[k][1])],
				       v->overflowed[k], sizeof(*t));
		if (t) {
			free(v->overflowed);
			v->overflowed = t;
			v->overflowed_cap = cap;
		}
	}
	if (2 * (v->noverflowed + 1) <= v->overflowed_cap) {
		size_t at = overflowed_slot(v->overflowed, v->overflowed_cap, tensor, block);
		first = v->overflowed[at][0] == 0;
		if (first) {
			v->overflowed[at][0] = tensor;
			v->overflowed[at][1] = block;
			v->noverflowed++;
		}
	}
	pthread_mutex_unlock(&v->overflowed_lock);
	return first;
}

void tpfs_view_count_fill(struct tpfs_view *v, size_t i, uint64_t block, uint64_t bytes,
			  uint64_t overflows)
{
	atomic_fetch_add_explicit(&v->bytes_converted, bytes, memory_order_relaxed);
	if (overflows && first_overflow(v, i, block))
		atomic_fetch_add_explicit(&v->overflows, overflows, memory_order_relaxed);
}
