/*
 * Loading a model: walk the source folder (following symlinks, as Hugging
 * Face cache snapshots are made of them), open and map every regular file,
 * validate every Safetensors header and index, then build the tree in two
 * passes: first the real folders and passed-through files, so that they keep
 * their names, then the tensors, folder by folder in name order.
 */
#include "tpfs/model.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tpfs/guard.h"
#include "tpfs/info.h"
#include "tpfs/log.h"
#include "tpfs/npy.h"

#define MANIFEST_NAME "manifest.json"
#define HIDDEN_DIR ".tpfs"
#define ST_SUFFIX ".safetensors"
#define INDEX_SUFFIX ".safetensors.index.json"

/* One real folder: the namespace of its .safetensors files. */
struct folder {
	uint32_t dir;                /* tree node */
	char *display;
	struct timespec mtime;
	struct tpfs_source **st;     /* its .safetensors files, by name */
	size_t nst;
	struct tpfs_source **idx;    /* its *.safetensors.index.json files */
	size_t nidx;
};

/* The chain of folders being walked, to detect symlink loops. */
struct ancestry {
	uint64_t dev, ino;
	const struct ancestry *up;
};

struct loader {
	struct tpfs_model *m;
	struct tpfs_error *e;
	struct folder *folders;
	size_t nfolders;
	long *tensor_node;           /* tree node of each tensor, -1 if none */
};

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static bool push_ptr(void *arr, size_t *n, void *p)
{
	void ***a = arr;
	void **grown = realloc(*a, (*n + 1) * sizeof(void *));
	if (!grown)
		return false;
	grown[(*n)++] = p;
	*a = grown;
	return true;
}

static void source_free(struct tpfs_source *s)
{
	if (!s)
		return;
	if (s->map)
		munmap((void *)s->map, s->size);
	if (s->fd >= 0)
		close(s->fd);
	tpfs_st_free(s->st);
	free(s->rel);
	free(s->display);
	free(s->path);
	free(s);
}

/* Open, map and (for .safetensors) validate one file. */
static int source_open(struct loader *L, const char *path, const char *rel,
		       const char *display, bool safetensors,
		       struct tpfs_source **out)
{
	struct tpfs_source *s = calloc(1, sizeof(*s));
	if (!s)
		return tpfs_fail(L->e, -ENOMEM, "out of memory");
	s->fd = -1;
	s->rel = strdup(rel);
	s->display = strdup(display);
	s->path = strdup(path);
	int rc;
	struct stat st;
	if (!s->rel || !s->display || !s->path) {
		rc = tpfs_fail(L->e, -ENOMEM, "out of memory");
		goto fail;
	}
	/* O_NONBLOCK: a file swapped for a FIFO since the folder was read
	 * must not hang the mount; it is refused below. */
	s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (s->fd < 0 || fstat(s->fd, &st) < 0) {
		rc = tpfs_fail(L->e, -errno, "%s: cannot open: %s", display,
			       strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = tpfs_fail(L->e, -EINVAL, "%s: no longer a regular file", display);
		goto fail;
	}
	s->size = (uint64_t)st.st_size;
	s->perm = (uint16_t)(st.st_mode & 07777);
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->mtime = st.st_mtim;
	if (s->size) {
		void *p = mmap(NULL, s->size, PROT_READ, MAP_SHARED, s->fd, 0);
		if (p == MAP_FAILED) {
			rc = tpfs_fail(L->e, -errno, "%s: cannot map: %s", display,
				       strerror(errno));
			goto fail;
		}
		s->map = p;
	}
	if (safetensors) {
		rc = tpfs_st_read(s->fd, display, s->size, &s->st, L->e);
		if (rc < 0)
			goto fail;
	} else {
		close(s->fd);
		s->fd = -1;
	}
	if (!push_ptr(&L->m->sources, &L->m->nsources, s)) {
		rc = tpfs_fail(L->e, -ENOMEM, "out of memory");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	source_free(s);
	return rc;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read a folder's entry names, sorted. */
static int list_dir(const char *path, const char *display, char ***names,
		    size_t *n, struct tpfs_error *e)
{
	*names = NULL;
	*n = 0;
	DIR *d = opendir(path);
	if (!d)
		return tpfs_fail(e, -errno, "%s: cannot open folder: %s", display,
				 strerror(errno));
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *copy = strdup(de->d_name);
		if (!copy || !push_ptr(names, n, copy)) {
			free(copy);
			rc = tpfs_fail(e, -ENOMEM, "out of memory");
			break;
		}
	}
	closedir(d);
	if (*n > 1)
		qsort(*names, *n, sizeof(char *), cmp_names);
	return rc;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static struct folder *add_folder(struct loader *L, uint32_t dir,
				 const char *display, struct timespec mtime)
{
	struct folder *f = realloc(L->folders, (L->nfolders + 1) * sizeof(*f));
	if (!f)
		return NULL;
	L->folders = f;
	f = &L->folders[L->nfolders];
	memset(f, 0, sizeof(*f));
	f->display = strdup(display);
	if (!f->display)
		return NULL;
	f->dir = dir;
	f->mtime = mtime;
	L->nfolders++;
	return f;
}

/* Whether path, links resolved, lies within root (an absolute real path).
 * Links to files may lead anywhere (Hugging Face's snapshots link into a
 * blob store), but a linked folder outside the source would mirror it. */
static bool inside(const char *root, const char *path)
{
	char *real = realpath(path, NULL);
	bool in = real && tpfs_path_within(root, real);
	free(real);
	return in;
}

/* A tpfs mount inside the source would be read as a model of .npy files
 * (and its .tpfs/stats cannot be mapped). */
static bool is_tpfs_mount(const char *path)
{
	char type[64], source[256];
	char *real = realpath(path, NULL);
	bool tpfs = real && tpfs_mount_info(real, type, source) &&
		    strcmp(type, "fuse.tpfs") == 0;
	free(real);
	return tpfs;
}

/* A folder entry's path to open, path under the root and path for
 * messages. */
struct child {
	char *path, *rel, *display;
};

static bool child_of(struct child *c, const char *path, const char *rel,
		     const char *display, const char *name)
{
	c->path = tpfs_path_join(path, name);
	c->rel = tpfs_path_join(rel, name);
	c->display = tpfs_path_join(display, name);
	return c->path && c->rel && c->display;
}

static void child_free(struct child *c)
{
	free(c->path);
	free(c->rel);
	free(c->display);
}

/* A subfolder to walk once the folder's files are in. */
struct sub {
	const char *name;
	struct stat st;
};

static int walk(struct loader *L, const char *path, const char *rel,
		const char *display, uint32_t dir, const struct stat *self,
		const struct ancestry *up)
{
	struct ancestry here = {self->st_dev, self->st_ino, up};
	char **names;
	size_t n;
	int rc = list_dir(path, display, &names, &n, L->e);
	size_t fi = L->nfolders;
	if (rc == 0 && !add_folder(L, dir, display, self->st_mtim))
		rc = tpfs_fail(L->e, -ENOMEM, "out of memory");
	/* Subfolders are walked after this folder's files, in name order. */
	struct sub *subs = calloc(n + 1, sizeof(*subs));
	size_t nsubs = 0;
	if (rc == 0 && !subs)
		rc = tpfs_fail(L->e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *name = names[i];
		struct child ch;
		struct stat st;
		if (!child_of(&ch, path, rel, display, name)) {
			rc = tpfs_fail(L->e, -ENOMEM, "out of memory");
		} else if (stat(ch.path, &st) < 0) {
			tpfs_log(LOG_WARNING, "skipping %s: %s", ch.display, strerror(errno));
		} else if (S_ISDIR(st.st_mode) && st.st_dev != self->st_dev &&
			   is_tpfs_mount(ch.path)) {
			tpfs_log(LOG_WARNING, "skipping %s: a tpfs mount", ch.display);
		} else if (S_ISDIR(st.st_mode) && !inside(L->m->root, ch.path)) {
			tpfs_log(LOG_WARNING, "skipping %s: a link to a folder outside %s",
				 ch.display, L->m->display_root);
		} else if (S_ISDIR(st.st_mode)) {
			bool loop = false;
			for (const struct ancestry *a = &here; a; a = a->up)
				loop |= a->dev == (uint64_t)st.st_dev &&
					a->ino == (uint64_t)st.st_ino;
			if (loop)
				tpfs_log(LOG_WARNING, "skipping %s: it leads back to a folder "
					 "above it", ch.display);
			else if (tpfs_tree_lookup(&L->m->tree, dir, name) >= 0)
				tpfs_log(LOG_WARNING, "skipping %s: the mount shows its own %s "
					 "there", ch.display, name);
			else
				subs[nsubs++] = (struct sub){name, st};
		} else if (S_ISREG(st.st_mode)) {
			bool is_st = tpfs_ends_with(name, ST_SUFFIX);
			struct tpfs_source *s = NULL;
			if (!is_st && tpfs_tree_lookup(&L->m->tree, dir, name) >= 0) {
				tpfs_log(LOG_WARNING, "skipping %s: the mount shows its own %s "
					 "there", ch.display, name);
			} else {
				rc = source_open(L, ch.path, ch.rel, ch.display, is_st, &s);
			}
			struct folder *f = &L->folders[fi];
			if (rc == 0 && s && is_st && !push_ptr(&f->st, &f->nst, s))
				rc = tpfs_fail(L->e, -ENOMEM, "out of memory");
			if (rc == 0 && s && !is_st) {
				long leaf = tpfs_tree_leaf(&L->m->tree, dir, name,
							   TPFS_NODE_FILE, s, s->mtime);
				if (leaf < 0)
					rc = tpfs_fail(L->e, (int)leaf, "out of memory");
				else if (tpfs_ends_with(name, INDEX_SUFFIX) &&
					 !push_ptr(&f->idx, &f->nidx, s))
					rc = tpfs_fail(L->e, -ENOMEM, "out of memory");
				if (leaf >= 0)
					L->m->tree.nodes[leaf].perm = s->perm;
			}
		} else {
			tpfs_log(LOG_DEBUG, "skipping %s: not a regular file or folder",
				 ch.display);
		}
		child_free(&ch);
	}
	for (size_t i = 0; i < nsubs && rc == 0; i++) {
		struct child ch;
		const struct stat *st = &subs[i].st;
		long node = child_of(&ch, path, rel, display, subs[i].name)
				    ? tpfs_tree_dir(&L->m->tree, dir, subs[i].name, st->st_mtim)
				    : -ENOMEM;
		if (node >= 0)
			L->m->tree.nodes[node].perm = (uint16_t)(st->st_mode & 0555);
		rc = node < 0 ? tpfs_fail(L->e, (int)node, "out of memory")
			      : walk(L, ch.path, ch.rel, ch.display, (uint32_t)node, st, &here);
		child_free(&ch);
	}
	free(subs);
	free_names(names, n);
	return rc;
}

/* An index's weight_map and the shard headers must say the same thing. */
static int check_index(struct loader *L, const struct folder *f,
		       const struct tpfs_source *x)
{
	if (x->size > TPFS_ST_MAX_HEADER)
		return tpfs_fail(L->e, -EINVAL, "%s: index larger than %llu bytes",
				 x->display, TPFS_ST_MAX_HEADER);
	char *text = malloc(x->size + 1);
	if (!text)
		return tpfs_fail(L->e, -ENOMEM, "out of memory");
	if (tpfs_guard_copy(text, x->map, x->size) < 0) {
		free(text);
		return tpfs_fail(L->e, -EIO, "%s: cannot read (it shrank)", x->display);
	}
	struct tpfs_st_index *ix;
	int rc = tpfs_st_index_parse(x->display, text, x->size, &ix, L->e);
	free(text);
	if (rc < 0)
		return rc;
	/* Every entry names a shard of this folder that holds the tensor. */
	for (size_t i = 0; i < ix->n && rc == 0; i++) {
		const char *tn = ix->v[i].tensor, *fn = ix->v[i].file;
		const struct tpfs_source *shard = NULL, *holder = NULL;
		for (size_t k = 0; k < f->nst; k++) {
			if (strcmp(base_name(f->st[k]->rel), fn) == 0)
				shard = f->st[k];
			if (!holder && tpfs_st_find(f->st[k]->st, tn))
				holder = f->st[k];
		}
		if (!shard)
			rc = tpfs_fail(L->e, -EINVAL,
				       "%s: weight_map puts tensor '%s' in '%s', which is not a "
				       ".safetensors file of %s",
				       x->display, tn, fn, f->display);
		else if (!tpfs_st_find(shard->st, tn))
			rc = tpfs_fail(L->e, -EINVAL,
				       "%s: weight_map puts tensor '%s' in %s, which has no such "
				       "tensor%s%s%s",
				       x->display, tn, fn, holder ? " (it is in " : "",
				       holder ? base_name(holder->rel) : "", holder ? ")" : "");
	}
	/* Every tensor of a shard the index names is in the weight_map. */
	for (size_t k = 0; k < f->nst && rc == 0; k++) {
		const struct tpfs_source *s = f->st[k];
		const char *sb = base_name(s->rel);
		bool named = false;
		for (size_t i = 0; i < ix->n && !named; i++)
			named = strcmp(ix->v[i].file, sb) == 0;
		for (size_t t = 0; named && t < s->st->ntensors && rc == 0; t++) {
			const char *tn = s->st->tensors[t].name;
			const char *fn = tpfs_st_index_find(ix, tn);
			if (!fn)
				rc = tpfs_fail(L->e, -EINVAL,
					       "%s: tensor '%s' of %s is missing from the "
					       "weight_map",
					       x->display, tn, sb);
			else if (strcmp(fn, sb) != 0)
				rc = tpfs_fail(L->e, -EINVAL,
					       "%s: weight_map puts tensor '%s' in %s, but it is "
					       "in %s",
					       x->display, tn, fn, sb);
		}
	}
	tpfs_st_index_free(ix);
	return rc;
}

/* One tensor of a namespace before it gets its place: a tensor of a file,
 * or an MXFP4 pair under its base name. */
struct entry {
	const char *name;
	char *owned;               /* the storage of name for a pair */
	struct tpfs_part part[2];  /* part[1].st is set for a pair */
	bool hidden;               /* a half of a pair that is not shown */
};

static int cmp_entries(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->part[0].src->rel, y->part[0].src->rel);
}

static uint64_t *copy_shape(const uint64_t *shape, uint32_t ndim)
{
	uint64_t *s = calloc(ndim ? ndim : 1, sizeof(*s));
	if (s && ndim)
		memcpy(s, shape, ndim * sizeof(*s));
	return s;
}

/* The shape served: an MXFP4 pair [..., G, 16] gives [..., G * 32]; bytes
 * served raw because their packing is unknown (F6) are one flat row. */
static uint64_t *served_shape(const struct tpfs_tensor *t, uint32_t *ndim)
{
	const struct tpfs_st_tensor *st = t->part[0].st;
	if (t->part[1].st) {
		*ndim = st->ndim - 1;
		uint64_t *s = copy_shape(st->shape, *ndim);
		if (s)
			s[*ndim - 1] = st->shape[*ndim - 1] * 32;
		return s;
	}
	if (t->conv->kind == TPFS_CONV_STORED && tpfs_dtype_info(st->dtype)->bits % 8) {
		uint64_t bytes = st->end - st->begin;
		*ndim = 1;
		return copy_shape(&bytes, 1);
	}
	*ndim = st->ndim;
	return copy_shape(st->shape, st->ndim);
}

/* Fill in one tensor and give it its place in the tree. Takes the entry's
 * owned name. */
static int add_tensor(struct loader *L, uint32_t ns, struct entry *en)
{
	struct tpfs_model *m = L->m;
	size_t idx = m->ntensors++;
	struct tpfs_tensor *t = &m->tensors[idx];
	const struct tpfs_st_tensor *st = en->part[0].st;
	struct tpfs_source *s = en->part[0].src;
	t->part[0] = en->part[0];
	t->part[1] = en->part[1];
	t->owned_name = en->owned;
	en->owned = NULL;
	t->name = t->owned_name ? t->owned_name : st->name;
	L->tensor_node[idx] = -1;
	bool pair = t->part[1].st != NULL;
	t->conv = pair ? tpfs_conv_mxfp4(&m->opt) : tpfs_conv_for(st->dtype, &m->opt);
	t->source_dtype = pair ? "MXFP4" : tpfs_dtype_info(st->dtype)->name;
	t->descr = t->conv->out_descr ? t->conv->out_descr
				      : tpfs_dtype_info(st->dtype)->descr;
	t->shape = served_shape(t, &t->ndim);
	if (!t->shape)
		return tpfs_fail(L->e, -ENOMEM, "out of memory");
	if (t->ndim > 32)
		tpfs_log(LOG_WARNING, "%s: tensor '%s' has %u dimensions; NumPy 1.x loads at "
			 "most 32", s->display, t->name, t->ndim);
	t->nelem = 1;
	for (uint32_t i = 0; i < t->ndim; i++)
		t->nelem *= t->shape[i]; /* no overflow: bounded by the source's bytes */
	t->data_bytes = t->conv->kind == TPFS_CONV_STORED ? st->end - st->begin
							  : t->nelem * t->conv->out_bytes;
	long hl = tpfs_npy_header(t->descr, t->shape, t->ndim, &t->npy_header);
	if (hl < 0)
		return tpfs_fail(L->e, (int)hl, "%s: tensor '%s': cannot build the .npy "
				 "header", s->display, t->name);
	t->npy_header_len = (uint32_t)hl;
	t->npy_size = (uint64_t)hl + t->data_bytes;
	bool renamed;
	long node = tpfs_tree_add_tensor(&m->tree, ns, t->name, t, s->mtime, &renamed);
	if (node < 0)
		return tpfs_fail(L->e, (int)node, "out of memory");
	if (renamed)
		tpfs_log(LOG_WARNING, "%s: tensor '%s' is served as %s: its own name is "
			 "taken", s->display, t->name, m->tree.nodes[node].name);
	/* Readable by whoever may read every file it comes from. */
	m->tree.nodes[node].perm = s->perm & (t->part[1].st ? t->part[1].src->perm : 07777);
	if (!m->tree.nodes[node].perm)
		m->tree.nodes[node].perm = 0400; /* 0 would mean "the folder's" */
	L->tensor_node[idx] = node;
	return 0;
}

/* "model.safetensors", or "the MXFP4 pair w_blocks/w_scales (model.safetensors)". */
static void describe(const struct entry *en, char *buf, size_t len)
{
	if (en->part[1].st)
		snprintf(buf, len, "the MXFP4 pair %s/%s (%s)", en->part[0].st->name,
			 en->part[1].st->name, base_name(en->part[0].src->rel));
	else
		snprintf(buf, len, "%s", base_name(en->part[0].src->rel));
}

static struct entry *find_entry(struct entry *v, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid].name, name);
		if (c == 0) {
			while (mid > 0 && strcmp(v[mid - 1].name, name) == 0)
				mid--;
			return &v[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Find the GPT-OSS MXFP4 pairs among the n sorted entries (X_blocks with
 * X_scales, or X.blocks with X.scales, both U8) and append an entry for
 * each as X. Unless mxfp4=both, the halves are hidden. */
static int pair_mxfp4(struct loader *L, const char *where, struct entry *v,
		      size_t *n)
{
	const struct tpfs_options *o = &L->m->opt;
	if (!tpfs_conv_mxfp4(o))
		return 0; /* mxfp4=raw: the pairs stay two U8 tensors */
	bool both = o->mxfp4 == TPFS_OUT_BOTH;
	size_t count = *n;
	for (size_t i = 0; i < count; i++) {
		const char *name = v[i].name;
		size_t len = strlen(name);
		if (len < 8 || strcmp(name + len - 6, "blocks") != 0 ||
		    (name[len - 7] != '_' && name[len - 7] != '.'))
			continue;
		char *base = strndup(name, len - 7);
		char *scales_name = malloc(len + 1);
		if (!base || !scales_name) {
			free(base);
			free(scales_name);
			return tpfs_fail(L->e, -ENOMEM, "out of memory");
		}
		snprintf(scales_name, len + 1, "%s%cscales", base, name[len - 7]);
		struct entry *sc = find_entry(v, count, scales_name);
		free(scales_name);
		const struct tpfs_st_tensor *b = v[i].part[0].st;
		const struct tpfs_st_tensor *s = sc ? sc->part[0].st : NULL;
		if (!s || b->dtype != TPFS_DT_U8 || s->dtype != TPFS_DT_U8) {
			free(base);
			continue;
		}
		bool agree = b->ndim >= 2 && b->shape[b->ndim - 1] == 16 &&
			     s->ndim == b->ndim - 1;
		for (uint32_t k = 0; agree && k < s->ndim; k++)
			agree = s->shape[k] == b->shape[k];
		if (!agree) {
			char bs[256], ss[256];
			tpfs_shape_str(b->shape, b->ndim, bs, sizeof(bs));
			tpfs_shape_str(s->shape, s->ndim, ss, sizeof(ss));
			free(base);
			return tpfs_fail(L->e, -EINVAL,
					 "%s: MXFP4 pair '%s' %s and '%s' %s do not agree (rule: "
					 "blocks [..., G, 16] and scales [..., G] with the same "
					 "leading dimensions)",
					 where, b->name, bs, s->name, ss);
		}
		v[*n] = (struct entry){base, base, {v[i].part[0], sc->part[0]}, false};
		(*n)++;
		if (!both)
			v[i].hidden = sc->hidden = true;
	}
	return 0;
}

/* Sorted entries v must have distinct names, hidden ones aside. */
static int check_unique(struct loader *L, const char *where, const struct entry *v,
			size_t n)
{
	const struct entry *prev = NULL;
	for (size_t i = 0; i < n; i++) {
		if (v[i].hidden)
			continue;
		if (prev && strcmp(prev->name, v[i].name) == 0) {
			char a[512], b[512];
			describe(prev, a, sizeof(a));
			describe(&v[i], b, sizeof(b));
			return tpfs_fail(L->e, -EINVAL,
					 "%s: tensor '%s' is in both %s and %s (rule: the "
					 ".safetensors files of one folder share one namespace); "
					 "mount with -o by_file to show each file's tensors in a "
					 "folder of its own",
					 where, v[i].name, a, b);
		}
		prev = &v[i];
	}
	return 0;
}

/* Give the n entries of one namespace (v has room for n + n / 2 + 1) their
 * places under the folder ns. */
static int add_namespace(struct loader *L, uint32_t ns, const char *where,
			 struct entry *v, size_t n)
{
	/* Names are checked before pairing too: pairing relies on them being
	 * unique, for it adds at most one entry per two. */
	qsort(v, n, sizeof(*v), cmp_entries);
	int rc = check_unique(L, where, v, n);
	if (rc == 0)
		rc = pair_mxfp4(L, where, v, &n);
	if (rc == 0) {
		qsort(v, n, sizeof(*v), cmp_entries);
		rc = check_unique(L, where, v, n);
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		if (!v[i].hidden)
			rc = add_tensor(L, ns, &v[i]);
	for (size_t i = 0; i < n; i++)
		free(v[i].owned);
	return rc;
}

/* Entries for the tensors of the given files, with room for the pairs. */
static struct entry *entries_of(struct tpfs_source *const *files, size_t nfiles,
				size_t *n)
{
	size_t total = 0;
	for (size_t k = 0; k < nfiles; k++)
		total += files[k]->st->ntensors;
	struct entry *v = calloc(total + total / 2 + 1, sizeof(*v));
	if (!v)
		return NULL;
	*n = 0;
	for (size_t k = 0; k < nfiles; k++)
		for (size_t t = 0; t < files[k]->st->ntensors; t++)
			v[(*n)++] = (struct entry){files[k]->st->tensors[t].name, NULL,
						   {{&files[k]->st->tensors[t], files[k]}},
						   false};
	return v;
}

static int add_folder_tensors(struct loader *L, const struct folder *f)
{
	int rc = 0;
	for (size_t i = 0; i < f->nidx && rc == 0; i++)
		rc = check_index(L, f, f->idx[i]);
	/* One namespace for the folder, or one per file with by_file. */
	bool by_file = L->m->opt.by_file;
	size_t groups = by_file ? f->nst : 1;
	for (size_t k = 0; k < groups && rc == 0; k++) {
		long ns = f->dir;
		char *where = NULL;
		if (by_file) {
			/* model.safetensors -> model/, or the file's whole name when
			 * the stem is no safe folder name (".safetensors" -> "") */
			const char *file = base_name(f->st[k]->rel);
			char *stem = strndup(file, strlen(file) - strlen(ST_SUFFIX));
			ns = stem ? tpfs_tree_add_folder(&L->m->tree, f->dir, stem, file,
							 f->st[k]->mtime)
				  : -ENOMEM;
			free(stem);
			where = f->st[k]->display;
		}
		size_t n;
		struct entry *v = ns >= 0 ? entries_of(by_file ? &f->st[k] : f->st,
						       by_file ? 1 : f->nst, &n)
					  : NULL;
		if (!v)
			return tpfs_fail(L->e, -ENOMEM, "out of memory");
		rc = add_namespace(L, (uint32_t)ns, where ? where : f->display, v, n);
		free(v);
	}
	return rc;
}

/* The tensor's card at .tpfs/info/<its path, .npy replaced by .txt>. */
static int add_info(struct loader *L, uint32_t info, struct tpfs_tensor *t)
{
	size_t len;
	char *card = tpfs_info_render(t, NULL, &len);
	if (!card)
		return -ENOMEM;
	free(card);
	t->info_size = len;
	long dir = info;
	char *p = t->path;
	for (char *slash; (slash = strchr(p, '/')) != NULL && dir >= 0; p = slash + 1) {
		*slash = '\0';
		dir = tpfs_tree_dir(&L->m->tree, (uint32_t)dir, p, t->part[0].src->mtime);
		*slash = '/';
	}
	char name[256];
	snprintf(name, sizeof(name), "%.*s.txt", (int)(strlen(p) - strlen(".npy")), p);
	long leaf = dir < 0 ? dir
			    : tpfs_tree_leaf(&L->m->tree, (uint32_t)dir, name, TPFS_NODE_INFO,
					     t, t->part[0].src->mtime);
	if (leaf >= 0) /* a card tells about the values: the tensor's own bits */
		L->m->tree.nodes[leaf].perm = L->m->tree.nodes[t->node].perm;
	/* A tensor folder called x.txt beside a tensor x.npy would clash here:
	 * that rare card is left out rather than the mount refused. */
	if (leaf == -EEXIST)
		tpfs_log(LOG_DEBUG, "no info card for %s: its name is taken", t->path);
	return leaf < 0 && leaf != -EEXIST ? (int)leaf : 0;
}

static void warn_raw(const struct tpfs_model *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->ntensors; i++)
		n += m->tensors[i].part[0].st->dtype == TPFS_DT_F6_E2M3 ||
		     m->tensors[i].part[0].st->dtype == TPFS_DT_F6_E3M2;
	if (n)
		tpfs_log(LOG_WARNING,
			 "%zu F6 tensor%s served as raw bytes (|u1): the Safetensors "
			 "format does not define how 6-bit values are packed",
			 n, n == 1 ? " is" : "s are");
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int build(struct loader *L, const char *path)
{
	struct tpfs_model *m = L->m;
	struct stat st;
	if (stat(path, &st) < 0)
		return tpfs_fail(L->e, -errno, "%s: %s", m->display_root, strerror(errno));
	/* A single file is named .safetensors by the user (its link target may
	 * be a blob without the suffix). */
	if (!S_ISDIR(st.st_mode) &&
	    !(S_ISREG(st.st_mode) && tpfs_ends_with(m->display_root, ST_SUFFIX)))
		return tpfs_fail(L->e, -EINVAL, "%s: not a folder or a .safetensors file",
				 m->display_root);
	int rc = tpfs_tree_init(&m->tree, st.st_mtim);
	if (rc < 0)
		return tpfs_fail(L->e, rc, "out of memory");
	/* The root takes the source folder's bits (a single file's, with x
	 * where it has r); tpfs's own files follow the root. */
	mode_t rbits = st.st_mode & 0444;
	m->tree.nodes[0].perm = (uint16_t)(S_ISDIR(st.st_mode) ? st.st_mode & 0555
							       : rbits | rbits >> 2);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	long hidden = tpfs_tree_dir(&m->tree, 0, HIDDEN_DIR, now);
	long info = hidden > 0 ? tpfs_tree_dir(&m->tree, (uint32_t)hidden, "info", now) : -1;
	if (hidden > 0)
		tpfs_tree_seal(&m->tree, (uint32_t)hidden);
	if (hidden < 0 || info < 0 ||
	    tpfs_tree_leaf(&m->tree, 0, MANIFEST_NAME, TPFS_NODE_MANIFEST, NULL,
			   st.st_mtim) < 0 ||
	    tpfs_tree_leaf(&m->tree, (uint32_t)hidden, "stats", TPFS_NODE_STATS, NULL,
			   now) < 0)
		return tpfs_fail(L->e, -ENOMEM, "out of memory");

	if (S_ISDIR(st.st_mode)) {
		rc = walk(L, path, "", m->display_root, 0, &st, NULL);
	} else {
		struct folder *f = add_folder(L, 0, m->display_root, st.st_mtim);
		struct tpfs_source *s;
		rc = f ? source_open(L, path, base_name(m->display_root), m->display_root,
					 true, &s)
		       : tpfs_fail(L->e, -ENOMEM, "out of memory");
		if (rc == 0 && !push_ptr(&L->folders[0].st, &L->folders[0].nst, s))
			rc = tpfs_fail(L->e, -ENOMEM, "out of memory");
	}
	if (rc < 0)
		return rc;

	size_t total = 0;
	for (size_t i = 0; i < m->nsources; i++)
		if (m->sources[i]->st)
			total += m->sources[i]->st->ntensors;
	/* Room for one more tensor per MXFP4 pair. */
	m->tensors = calloc(total + total / 2 + 1, sizeof(*m->tensors));
	L->tensor_node = calloc(total + total / 2 + 1, sizeof(*L->tensor_node));
	if (!m->tensors || !L->tensor_node)
		return tpfs_fail(L->e, -ENOMEM, "out of memory");
	/* Deepest folders first: a folder's own tensors take their names before
	 * tensors of a folder above that reach into it ("sub/w"). */
	for (size_t i = L->nfolders; i-- > 0 && rc == 0;)
		rc = add_folder_tensors(L, &L->folders[i]);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < m->ntensors && rc == 0; i++) {
		struct tpfs_tensor *t = &m->tensors[i];
		t->node = (uint32_t)L->tensor_node[i];
		t->path = tpfs_tree_path(&m->tree, t->node);
		rc = t->path ? add_info(L, (uint32_t)info, t) : -ENOMEM;
	}
	if (rc < 0 || tpfs_tree_finish(&m->tree) < 0)
		return tpfs_fail(L->e, -ENOMEM, "out of memory");
	m->manifest = tpfs_manifest_render(m, NULL, NULL, &m->manifest_len);
	if (!m->manifest)
		return tpfs_fail(L->e, -ENOMEM, "out of memory");
	warn_raw(m);
	if (!m->ntensors)
		tpfs_log(LOG_WARNING, "%s holds no .safetensors file: the mount shows only "
			 "its other files", m->display_root);
	if (m->opt.cache_size && m->opt.cache_size < m->opt.block_size)
		tpfs_log(LOG_WARNING, "cache_size is smaller than block_size: no converted "
			 "block will stay cached");
	return 0;
}

int tpfs_model_open(const char *path, const struct tpfs_options *opt,
		    struct tpfs_model **out, struct tpfs_error *e)
{
	*out = NULL;
	raise_fd_limit();
	int rc = tpfs_options_check(opt, e);
	if (rc < 0)
		return rc;
	struct tpfs_model *m = calloc(1, sizeof(*m));
	if (!m)
		return tpfs_fail(e, -ENOMEM, "out of memory");
	m->opt = *opt;
	m->display_root = strdup(path);
	m->root = realpath(path, NULL);
	if (!m->display_root) {
		tpfs_model_close(m);
		return tpfs_fail(e, -ENOMEM, "out of memory");
	}
	/* Trailing slashes would double up in messages. */
	for (size_t n = strlen(m->display_root); n > 1 && m->display_root[n - 1] == '/';)
		m->display_root[--n] = '\0';
	if (!m->root) {
		int err = errno;
		tpfs_model_close(m);
		return tpfs_fail(e, -err, "%s: %s", path, strerror(err));
	}
	struct loader L = {.m = m, .e = e};
	tpfs_log_hold();
	rc = build(&L, m->root);
	tpfs_log_release(rc == 0);
	for (size_t i = 0; i < L.nfolders; i++) {
		free(L.folders[i].display);
		free(L.folders[i].st);
		free(L.folders[i].idx);
	}
	free(L.folders);
	free(L.tensor_node);
	if (rc < 0) {
		tpfs_model_close(m);
		return rc;
	}
	*out = m;
	return 0;
}

void tpfs_model_close(struct tpfs_model *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->ntensors; i++) {
		free(m->tensors[i].npy_header);
		free(m->tensors[i].path);
		free(m->tensors[i].shape);
		free(m->tensors[i].owned_name);
	}
	free(m->tensors);
	for (size_t i = 0; i < m->nsources; i++)
		source_free(m->sources[i]);
	free(m->sources);
	tpfs_tree_free(&m->tree);
	free(m->manifest);
	free(m->root);
	free(m->display_root);
	free(m);
}

/* A fault says only that a mapped page could not be brought in: the file
 * shrank, or the filesystem under it failed (a disk error, a network mount
 * whose server or connection is gone). It is not examined here to tell
 * which: on a failing filesystem that could wait as long as the read did,
 * with the reader's reply still to send. */
void tpfs_source_faulted(struct tpfs_source *s)
{
	if (!atomic_exchange(&s->stale, true))
		tpfs_log(LOG_ERR, "%s could not be read (it shrank, or the filesystem it "
			 "is on failed); its files now fail with EIO (remount to read "
			 "them again)", s->display);
}

int tpfs_source_check(struct tpfs_source *s)
{
	if (atomic_load_explicit(&s->stale, memory_order_relaxed))
		return -EIO;
	struct stat st;
	int ok = (s->fd >= 0 ? fstat(s->fd, &st) : stat(s->path, &st)) == 0;
	if (ok && (uint64_t)st.st_size == s->size && st.st_mtim.tv_sec == s->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == s->mtime.tv_nsec && st.st_nlink > 0 &&
	    (uint64_t)st.st_dev == s->dev && (uint64_t)st.st_ino == s->ino)
		return 0;
	if (!atomic_exchange(&s->stale, true)) {
		if (!ok)
			tpfs_log(LOG_ERR, "%s can no longer be examined (%s); its files now "
				 "fail with EIO", s->display, strerror(errno));
		else if (st.st_nlink == 0 || (uint64_t)st.st_ino != s->ino)
			tpfs_log(LOG_ERR, "%s was deleted or replaced while mounted; its "
				 "files now fail with EIO (remount to see the new one)",
				 s->display);
		else
			tpfs_log(LOG_ERR, "%s changed while mounted (size %" PRIu64
				 " -> %lld); its files now fail with EIO (remount to see the "
				 "new contents)",
				 s->display, s->size, (long long)st.st_size);
	}
	return -EIO;
}
