/*
 * The virtual tree and the tensor-name-to-path rules (see tree.h).
 */
#include "tpfs/tree.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "tpfs/buf.h"
#include "tpfs/arena.h"

#define NAME_MAX_BYTES 255
#define NPY_SUFFIX ".npy"

static uint64_t slot_hash(uint32_t parent, const char *name)
{
	return XXH3_64bits_withSeed(name, strlen(name), parent);
}

static int slots_grow(struct tpfs_tree *t)
{
	size_t n = t->nslots ? t->nslots * 2 : 1024;
	uint32_t *s = calloc(n, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t i = 1; i < t->nnodes; i++) { /* the root is nobody's child */
		size_t at = slot_hash(t->nodes[i].parent, t->nodes[i].name) & (n - 1);
		while (s[at])
			at = (at + 1) & (n - 1);
		s[at] = (uint32_t)i + 1;
	}
	free(t->slots);
	t->slots = s;
	t->nslots = n;
	return 0;
}

static uint64_t perm_hash(const struct tpfs_perm *p)
{
	uint64_t k[2] = {(uint64_t)p->uid << 32 | p->gid,
			 (uint64_t)p->mode << 2 | (uint64_t)p->acl << 1 | p->dir};
	return XXH3_64bits(k, sizeof(k));
}

/* The index of p in t->perms, added if new; -ENOMEM. */
static long perm_id(struct tpfs_tree *t, const struct tpfs_perm *p)
{
	if ((t->nperms + 1) * 2 > t->nperm_slots) {
		size_t n = t->nperm_slots ? t->nperm_slots * 2 : 16;
		uint32_t *s = calloc(n, sizeof(*s));
		struct tpfs_perm *v = realloc(t->perms, n / 2 * sizeof(*v));
		if (v)
			t->perms = v;
		if (!s || !v) {
			free(s);
			return -ENOMEM;
		}
		for (size_t i = 0; i < t->nperms; i++) {
			size_t at = perm_hash(&v[i]) & (n - 1);
			while (s[at])
				at = (at + 1) & (n - 1);
			s[at] = (uint32_t)i + 1;
		}
		free(t->perm_slots);
		t->perm_slots = s;
		t->nperm_slots = n;
	}
	size_t at = perm_hash(p) & (t->nperm_slots - 1);
	for (; t->perm_slots[at]; at = (at + 1) & (t->nperm_slots - 1))
		if (tpfs_perm_same(&t->perms[t->perm_slots[at] - 1], p))
			return (long)t->perm_slots[at] - 1;
	t->perms[t->nperms] = *p;
	t->perm_slots[at] = (uint32_t)++t->nperms;
	return (long)t->nperms - 1;
}

/* A new directory record. Returns its index or -ENOMEM. */
static long new_dir(struct tpfs_tree *t, struct timespec mtime)
{
	if (t->ndirs == t->dircap) {
		size_t cap = t->dircap ? t->dircap * 2 : 64;
		struct tpfs_dir *d = realloc(t->dirs, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		t->dirs = d;
		t->dircap = cap;
	}
	t->dirs[t->ndirs] = (struct tpfs_dir){.mtime = mtime};
	return (long)t->ndirs++;
}

int tpfs_tree_init(struct tpfs_tree *t, struct timespec root_mtime)
{
	memset(t, 0, sizeof(*t));
	t->cap = 64;
	t->nodes = calloc(t->cap, sizeof(*t->nodes));
	if (!t->nodes)
		return -ENOMEM;
	t->nodes[0] = (struct tpfs_node){.name = "", .kind = TPFS_NODE_DIR};
	t->nnodes = 1;
	const struct tpfs_perm none = {.dir = true}; /* root's, mode 0 */
	if (slots_grow(t) < 0 || perm_id(t, &none) != 0 || new_dir(t, root_mtime) != 0) {
		tpfs_tree_free(t);
		return -ENOMEM;
	}
	return 0;
}

void tpfs_tree_free(struct tpfs_tree *t)
{
	free(t->nodes);
	free(t->dirs);
	free(t->children);
	free(t->slots);
	free(t->perms);
	free(t->perm_slots);
	tpfs_arena_free(&t->names);
	memset(t, 0, sizeof(*t));
}

const struct tpfs_perm *tpfs_tree_perm(const struct tpfs_tree *t, uint32_t node)
{
	return &t->perms[t->nodes[node].perm];
}

int tpfs_tree_set_perm(struct tpfs_tree *t, uint32_t node, const struct tpfs_perm *p)
{
	long id = perm_id(t, p);
	if (id < 0)
		return (int)id;
	t->nodes[node].perm = (uint32_t)id;
	return 0;
}

long tpfs_tree_lookup(const struct tpfs_tree *t, uint32_t parent, const char *name)
{
	size_t at = slot_hash(parent, name) & (t->nslots - 1);
	for (; t->slots[at]; at = (at + 1) & (t->nslots - 1)) {
		const struct tpfs_node *n = &t->nodes[t->slots[at] - 1];
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return (long)t->slots[at] - 1;
	}
	return -ENOENT;
}

static long add_node(struct tpfs_tree *t, uint32_t parent, const char *name,
		     enum tpfs_node_kind kind, void *payload, struct timespec mtime)
{
	if (tpfs_tree_lookup(t, parent, name) >= 0)
		return -EEXIST;
	if (t->nnodes >= UINT32_MAX / 2 - 1) /* ids above are .tpfs/info's (file.h) */
		return -ENOMEM;
	if ((t->nnodes + 1) * 2 > t->nslots && slots_grow(t) < 0)
		return -ENOMEM;
	if (t->nnodes == t->cap) {
		struct tpfs_node *n = realloc(t->nodes, t->cap * 2 * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->nodes = n;
		t->cap *= 2;
	}
	const char *copy = tpfs_arena_strndup(&t->names, name, strlen(name));
	long dir = kind == TPFS_NODE_DIR ? new_dir(t, mtime) : 0;
	if (!copy || dir < 0)
		return -ENOMEM;
	t->nodes[t->nnodes] = (struct tpfs_node){
		.name = copy, .payload = payload, .parent = parent,
		.perm = t->nodes[parent].perm, .dir = (uint32_t)dir, .kind = (uint8_t)kind};
	size_t at = slot_hash(parent, name) & (t->nslots - 1);
	while (t->slots[at])
		at = (at + 1) & (t->nslots - 1);
	t->slots[at] = (uint32_t)t->nnodes + 1;
	return (long)t->nnodes++;
}

long tpfs_tree_dir(struct tpfs_tree *t, uint32_t parent, const char *name,
		   struct timespec mtime)
{
	long i = tpfs_tree_lookup(t, parent, name);
	if (i >= 0)
		return t->nodes[i].kind == TPFS_NODE_DIR ? i : -EEXIST;
	return add_node(t, parent, name, TPFS_NODE_DIR, NULL, mtime);
}

long tpfs_tree_leaf(struct tpfs_tree *t, uint32_t parent, const char *name,
		    enum tpfs_node_kind kind, void *payload)
{
	return add_node(t, parent, name, kind, payload, (struct timespec){0});
}

void tpfs_tree_seal(struct tpfs_tree *t, uint32_t dir)
{
	t->nodes[dir].flags |= TPFS_NODE_SEALED;
}

static bool component_ok(const char *s, size_t n, size_t extra)
{
	if (n == 0 || n + extra > NAME_MAX_BYTES)
		return false;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* The component of a tensor name that starts at p, copied to comp with
 * ".npy" added to the last one; *n is its own length. Returns the slash
 * after it, or NULL for the last. Lengths are checked by component_ok. */
static const char *component(const char *p, char comp[NAME_MAX_BYTES + 1], size_t *n)
{
	const char *slash = strchr(p, '/');
	*n = slash ? (size_t)(slash - p) : strlen(p);
	size_t k = *n < NAME_MAX_BYTES ? *n : NAME_MAX_BYTES;
	memcpy(comp, p, k);
	comp[k] = '\0';
	if (!slash && k + strlen(NPY_SUFFIX) <= NAME_MAX_BYTES)
		strcpy(comp + k, NPY_SUFFIX);
	return slash;
}

/* Whether every component of name passes rule 1's test, and the name is
 * short enough to split: a path longer than the kernel takes (4096 bytes,
 * with the mount point's) could not be opened. */
static bool splittable(const char *name)
{
	size_t depth = 0;
	if (strlen(name) > TPFS_TREE_MAX_SPLIT)
		return false;
	for (const char *p = name;; depth++) {
		char comp[NAME_MAX_BYTES + 1];
		size_t n;
		const char *slash = component(p, comp, &n);
		if (!component_ok(p, n, slash ? 0 : strlen(NPY_SUFFIX)) ||
		    depth >= TPFS_TREE_MAX_DEPTH)
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

/* Rule 1 for a splittable name: down the folders its components name, made
 * where there are none. Returns the leaf, or -EAGAIN with *at the folder
 * reached and *rest the part of the name from the component that met a
 * file (or a sealed folder), or whose file name is taken. */
static long add_split(struct tpfs_tree *t, uint32_t ns, const char *name, void *payload,
		      struct timespec mtime, uint32_t *at, const char **rest)
{
	*at = ns;
	bool creating = false;
	for (const char *p = name;;) {
		char comp[NAME_MAX_BYTES + 1];
		size_t n;
		const char *slash = component(p, comp, &n);
		long c = creating ? -ENOENT : tpfs_tree_lookup(t, *at, comp);
		if (c >= 0 && (!slash || t->nodes[c].kind != TPFS_NODE_DIR ||
			       (t->nodes[c].flags & TPFS_NODE_SEALED))) {
			*rest = p;
			return -EAGAIN;
		}
		if (!slash)
			return tpfs_tree_leaf(t, *at, comp, TPFS_NODE_TENSOR, payload);
		if (c < 0) {
			c = tpfs_tree_dir(t, *at, comp, mtime);
			if (c < 0)
				return c;
			creating = true;
		}
		*at = (uint32_t)c;
		p = slash + 1;
	}
}

/* Rule 2's escape: '%', '/' and control bytes as %XX. */
static char *escape(const char *name)
{
	struct tpfs_buf b = {0};
	tpfs_buf_escape(&b, name, "%/");
	tpfs_buf_append(&b, "", 0);
	return tpfs_buf_take(&b, NULL);
}

/* base, then "~k" when k > 0, then ext, in at most 255 bytes: a base that
 * does not fit keeps as many of its first bytes as leave room for '~' and
 * the 16 hex digits of the hash of full (cut between characters, never
 * inside a %XX escape or a UTF-8 sequence). */
static void fit(const char *base, const char *full, unsigned k, const char *ext,
		char out[NAME_MAX_BYTES + 1])
{
	char suffix[16] = "";
	if (k)
		snprintf(suffix, sizeof(suffix), "~%u", k);
	size_t extra = strlen(suffix) + strlen(ext), n = strlen(base);
	if (n + extra <= NAME_MAX_BYTES) {
		snprintf(out, NAME_MAX_BYTES + 1, "%s%s%s", base, suffix, ext);
		return;
	}
	size_t cut = NAME_MAX_BYTES - extra - 17;
	while (cut > 0 && (base[cut] & 0xc0) == 0x80)
		cut--;
	if (cut >= 1 && base[cut - 1] == '%')
		cut -= 1;
	else if (cut >= 2 && base[cut - 2] == '%')
		cut -= 2;
	snprintf(out, NAME_MAX_BYTES + 1, "%.*s~%016llx%s%s", (int)cut, base,
		 (unsigned long long)XXH3_64bits(full, strlen(full)), suffix, ext);
}

/* A new node named by fit(base, full, k, ext) for the smallest free k. */
static long add_fitted(struct tpfs_tree *t, uint32_t parent, const char *base,
		       const char *full, const char *ext, enum tpfs_node_kind kind,
		       void *payload, struct timespec mtime, bool *renamed)
{
	char name[NAME_MAX_BYTES + 1];
	long i = -EEXIST;
	for (unsigned k = 0; i == -EEXIST; k++) {
		fit(base, full, k, ext, name);
		i = add_node(t, parent, name, kind, payload, mtime);
		if (renamed)
			*renamed = k > 0;
	}
	return i;
}

long tpfs_tree_add_tensor(struct tpfs_tree *t, uint32_t ns, const char *name,
			  void *payload, struct timespec mtime, bool *renamed)
{
	if (renamed)
		*renamed = false;
	/* Where a name lands depends only on the folders it enters: a clash
	 * in a folder keeps it in that folder, so that its place tells nothing
	 * about a folder that a reader of its parent may not list. */
	uint32_t at = ns;
	const char *rest = name;
	if (splittable(name)) {
		long i = add_split(t, ns, name, payload, mtime, &at, &rest);
		if (i != -EAGAIN)
			return i;
	}
	char *flat = escape(rest);
	if (!flat)
		return -ENOMEM;
	long i = add_fitted(t, at, flat, name, NPY_SUFFIX, TPFS_NODE_TENSOR, payload, mtime,
			    renamed);
	free(flat);
	return i;
}

long tpfs_tree_add_folder(struct tpfs_tree *t, uint32_t parent, const char *name,
			  const char *fallback, struct timespec mtime)
{
	/* A safe stem is kept as it is ('%' included), as rule 1 keeps a
	 * tensor's components; a file name has no '/', but that is not this
	 * function's to assume. */
	bool safe = component_ok(name, strlen(name), 0) && !strchr(name, '/');
	char *base = safe ? strdup(name) : escape(fallback);
	if (!base)
		return -ENOMEM;
	long i = add_fitted(t, parent, base, safe ? name : fallback, "", TPFS_NODE_DIR,
			    NULL, mtime, NULL);
	free(base);
	return i;
}

static int cmp_children(const void *a, const void *b, void *tree)
{
	const struct tpfs_tree *t = tree;
	return strcmp(t->nodes[*(const uint32_t *)a].name,
		      t->nodes[*(const uint32_t *)b].name);
}

int tpfs_tree_finish(struct tpfs_tree *t)
{
	free(t->children);
	t->children = calloc(t->nnodes, sizeof(*t->children));
	if (!t->children)
		return -ENOMEM;
	for (size_t i = 0; i < t->ndirs; i++)
		t->dirs[i].nchild = 0;
	/* A parent always comes before its children: going backwards, a
	 * folder's flag is known before its parent's needs it. */
	for (size_t i = t->nnodes; i-- > 1;) {
		struct tpfs_node *n = &t->nodes[i];
		struct tpfs_node *p = &t->nodes[n->parent];
		struct tpfs_dir *pd = &t->dirs[p->dir];
		pd->nchild++;
		if (n->kind == TPFS_NODE_TENSOR ||
		    (n->kind == TPFS_NODE_DIR && (n->flags & TPFS_NODE_HAS_TENSORS)))
			p->flags |= TPFS_NODE_HAS_TENSORS;
	}
	uint32_t at = 0;
	for (size_t i = 0; i < t->ndirs; i++) {
		t->dirs[i].child0 = at;
		at += t->dirs[i].nchild;
		t->dirs[i].nchild = 0;
	}
	for (size_t i = 1; i < t->nnodes; i++) {
		struct tpfs_dir *pd = &t->dirs[t->nodes[t->nodes[i].parent].dir];
		t->children[pd->child0 + pd->nchild++] = (uint32_t)i;
	}
	for (size_t i = 0; i < t->ndirs; i++)
		if (t->dirs[i].nchild > 1)
			qsort_r(t->children + t->dirs[i].child0, t->dirs[i].nchild,
				sizeof(uint32_t), cmp_children, t);
	return 0;
}

char *tpfs_tree_path(const struct tpfs_tree *t, uint32_t node)
{
	size_t len = 0;
	for (uint32_t i = node; i != 0; i = t->nodes[i].parent)
		len += strlen(t->nodes[i].name) + 1;
	char *p = malloc(len + 1);
	if (!p)
		return NULL;
	p[len ? len - 1 : 0] = '\0';
	size_t end = len ? len - 1 : 0;
	for (uint32_t i = node; i != 0; i = t->nodes[i].parent) {
		size_t n = strlen(t->nodes[i].name);
		end -= n;
		memcpy(p + end, t->nodes[i].name, n);
		if (end > 0)
			p[--end] = '/';
	}
	return p;
}
