/*
 * Loading a model: walk the source folder (following symlinks to files, as
 * Hugging Face cache snapshots are made of them; a folder is walked once, at
 * its own place, never through a link), open and map every regular file,
 * validate every Safetensors header and index, then build the tree in two
 * passes: first the real folders and passed-through files, so that they keep
 * their names, then the tensors, folder by folder in name order.
 */
#include "tpfs/model.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tpfs/guard.h"
#include "tpfs/log.h"
#include "tpfs/error.h"
#include "tpfs/arena.h"
#include "tpfs/path.h"
#include "tpfs/mountinfo.h"

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

/* The chain of folders being walked, to detect loops (bind mounts). */
struct ancestry {
	uint64_t dev, ino;
	const struct ancestry *up;
};

struct loader {
	struct tpfs_model *m;
	struct tpfs_error *e;
	struct folder *folders;
	size_t nfolders;
	const struct tpfs_source **warned; /* files that closed a folder, said once */
	size_t nwarned;
	size_t skipped_st;                 /* .safetensors names that could not be opened */
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

/* An entry that the mount does not reach the way the source's own path
 * does (through a link) loses what the folders on its real path may stop
 * (see perm.h), and so does the folder that shows it: looking it up there
 * tells its size, times and owner, which directly needs search on those
 * folders. */
/* Set folder dir's perm to p, saying why (what, naming display) when that
 * closes it to users who may list the source's folder: a user who gets
 * "Permission denied" then finds the reason in the log. */
static int narrow_folder(struct loader *L, uint32_t dir, const struct tpfs_perm *p,
			 const char *display, const char *what)
{
	struct tpfs_tree *tree = &L->m->tree;
	if (p->mode != tpfs_tree_perm(tree, dir)->mode && what && L->m->opt.shared) {
		char *path = tpfs_tree_path(tree, dir);
		tpfs_log(LOG_WARNING, "%s %s: %s%s is served only to them (see \"Who may "
			 "read what\" in the README)", display, what,
			 path && *path ? "the folder " : "the mount's root",
			 path && *path ? path : "");
		free(path);
	}
	return tpfs_tree_set_perm(tree, dir, p) < 0 ? tpfs_error(L->e, -ENOMEM, "out of memory")
						    : 0;
}

static int narrow_linked(struct loader *L, uint32_t parent, struct tpfs_perm *p,
			 const struct tpfs_perm_chain *ch, const char *display)
{
	tpfs_perm_narrow_chain(L->m->perms, p, ch);
	struct tpfs_perm pp = *tpfs_tree_perm(&L->m->tree, parent);
	tpfs_perm_narrow_chain(L->m->perms, &pp, ch);
	return narrow_folder(L, parent, &pp, display,
			     "leads into a folder that fewer users may enter than the one "
			     "that shows it");
}

/* The chain above what fd is open on, or a message naming display. */
static int chain_or_fail(struct loader *L, int fd, const char *display,
			 const struct tpfs_perm_chain **ch)
{
	*ch = tpfs_perm_chain_above_fd(L->m->perms, fd);
	return *ch ? 0 : tpfs_source_chain_error(L->e, display, errno);
}

/* Open a source file of the model (tpfs_source_open) and keep it. */
static int add_source(struct loader *L, int dirfd, const char *name, const char *path,
		      const char *rel, const char *display, bool safetensors,
		      struct tpfs_source **out)
{
	int rc = tpfs_source_open(dirfd, name, path, rel, display, safetensors,
				  L->m->perms, out, L->e);
	if (rc == 0 && !push_ptr(&L->m->sources, &L->m->nsources, *out)) {
		tpfs_source_close(*out);
		rc = tpfs_error(L->e, -ENOMEM, "out of memory");
	}
	return rc;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read the entry names of the folder open as fd, sorted. */
static int list_dir(int fd, const char *display, char ***names, size_t *n,
		    struct tpfs_error *e)
{
	*names = NULL;
	*n = 0;
	int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = own >= 0 ? fdopendir(own) : NULL;
	if (!d) {
		int err = errno;
		if (own >= 0)
			close(own);
		return tpfs_error(e, -err, "%s: cannot open folder: %s", display,
				 strerror(err));
	}
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *copy = strdup(de->d_name);
		if (!copy || !push_ptr(names, n, copy)) {
			free(copy);
			rc = tpfs_error(e, -ENOMEM, "out of memory");
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

/* A tpfs mount inside the source would be read as a model of .npy files
 * (and its .tpfs/stats cannot be mapped). */
static bool is_tpfs_mount(const char *real)
{
	struct tpfs_mountinfo mi;
	return tpfs_mountinfo_find(real, &mi) && strcmp(mi.type, TPFS_MOUNTINFO_TYPE) == 0;
}

/* A folder entry's path (for later checks), path under the root and path
 * for messages. */
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

/* Whether the chain ends at folder a: an entry whose chain above ends
 * elsewhere is not where the source's path shows it (a link, or a folder
 * swapped for one while the model loads). */
static bool chain_ends_at(const struct tpfs_perm_chain *ch, const struct ancestry *a)
{
	const struct tpfs_perm_folder *f = &ch->v[ch->n - 1];
	return f->dev == a->dev && f->ino == a->ino;
}

static int walk(struct loader *L, int fd, const char *path, const char *rel,
		const char *display, uint32_t dir, const struct stat *self,
		const struct ancestry *up);

/* Mirror the open folder sfd (st) as name in dir, then walk it. */
static int enter(struct loader *L, int sfd, const struct stat *st, const struct child *ch,
		 uint32_t dir, const char *name, const struct ancestry *here)
{
	long node = tpfs_tree_dir(&L->m->tree, dir, name, st->st_mtim);
	if (node < 0)
		return tpfs_error(L->e, (int)node, "out of memory");
	struct tpfs_perm p = tpfs_perm_served(tpfs_perm_from_stat(st, sfd, NULL), true);
	const struct tpfs_perm_chain *above;
	int rc = chain_or_fail(L, sfd, ch->display, &above);
	if (rc == 0 && !chain_ends_at(above, here))
		rc = narrow_linked(L, dir, &p, above, ch->display);
	if (rc == 0 && tpfs_tree_set_perm(&L->m->tree, (uint32_t)node, &p) < 0)
		rc = tpfs_error(L->e, -ENOMEM, "out of memory");
	return rc < 0 ? rc
		      : walk(L, sfd, ch->path, ch->rel, ch->display, (uint32_t)node, st, here);
}

/* Say that display, a link to the folder real of the source, is skipped. */
static int skip_link(struct loader *L, const char *display, const char *real)
{
	const char *rel = real + strlen(L->m->root);
	char *to = tpfs_path_join(L->m->display_root, rel + (*rel == '/'));
	if (!to)
		return tpfs_error(L->e, -ENOMEM, "out of memory");
	tpfs_log(LOG_WARNING, "skipping %s: a link to the folder %s (a folder is shown at "
		 "its own place only)", display, to);
	free(to);
	return 0;
}

/* Open the subfolder name of the folder open as fd and, unless it is one
 * to leave out (said why), walk it. */
static int walk_sub(struct loader *L, int fd, const char *path, const char *rel,
		    const char *display, uint32_t dir, const struct ancestry *here,
		    const char *name)
{
	struct child ch;
	if (!child_of(&ch, path, rel, display, name)) {
		child_free(&ch);
		return tpfs_error(L->e, -ENOMEM, "out of memory");
	}
	int rc = 0;
	struct stat st;
	char *real = NULL, proc[32];
	int sfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* a link, which O_NOFOLLOW refuses, is opened only to say where it leads */
	bool link = sfd < 0 && (errno == ENOTDIR || errno == ELOOP);
	if (link)
		sfd = openat(fd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", sfd);
	bool loop = false;
	if (sfd >= 0 && fstat(sfd, &st) == 0 && (real = tpfs_path_of_fd(sfd)))
		for (const struct ancestry *a = here; a; a = a->up)
			loop |= a->dev == (uint64_t)st.st_dev && a->ino == (uint64_t)st.st_ino;
	if (!real && errno == ENOMEM)
		rc = tpfs_error(L->e, -ENOMEM, "out of memory");
	else if (!real)
		tpfs_log(LOG_WARNING, "skipping %s: %s", ch.display, strerror(errno));
	else if ((uint64_t)st.st_dev != here->dev && is_tpfs_mount(real))
		tpfs_log(LOG_WARNING, "skipping %s: a tpfs mount", ch.display);
	/* Links to files may lead anywhere (Hugging Face's snapshots link into
	 * a blob store), but a linked folder outside the source would mirror
	 * what is not the model, and one inside it is shown at its own place:
	 * followed, folders linking to each other would be walked once per
	 * path through them, as many as 2^n for n folders. */
	else if (!tpfs_path_within(L->m->root, real))
		tpfs_log(LOG_WARNING, "skipping %s: a link to a folder outside %s",
			 ch.display, L->m->display_root);
	else if (link)
		rc = skip_link(L, ch.display, real);
	else if (loop) /* a bind mount */
		tpfs_log(LOG_WARNING, "skipping %s: it leads back to a folder above it",
			 ch.display);
	else if (tpfs_tree_lookup(&L->m->tree, dir, name) >= 0)
		tpfs_log(LOG_WARNING, "skipping %s: the mount shows its own %s there",
			 ch.display, name);
	else if (access(proc, R_OK | X_OK) < 0)
		tpfs_log(LOG_WARNING, "skipping %s: %s", ch.display, strerror(errno));
	else
		rc = enter(L, sfd, &st, &ch, dir, name, here);
	free(real);
	if (sfd >= 0)
		close(sfd);
	child_free(&ch);
	return rc;
}

/* Walk the folder open as fd (self: its fstat), reached as path and
 * mirrored as node dir. Entries are opened relative to fd and examined
 * once open, so that what is served is what was examined, whatever is
 * renamed or swapped for a link meanwhile; subfolders are walked after the
 * folder's files, in name order. */
static int walk(struct loader *L, int fd, const char *path, const char *rel,
		const char *display, uint32_t dir, const struct stat *self,
		const struct ancestry *up)
{
	struct ancestry here = {self->st_dev, self->st_ino, up};
	char **names;
	size_t n;
	int rc = list_dir(fd, display, &names, &n, L->e);
	size_t fi = L->nfolders;
	if (rc == 0 && !add_folder(L, dir, display, self->st_mtim))
		rc = tpfs_error(L->e, -ENOMEM, "out of memory");
	const char **subs = calloc(n + 1, sizeof(*subs));
	size_t nsubs = 0;
	if (rc == 0 && !subs)
		rc = tpfs_error(L->e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *name = names[i];
		struct child ch;
		struct stat st;
		if (!child_of(&ch, path, rel, display, name)) {
			rc = tpfs_error(L->e, -ENOMEM, "out of memory");
		} else if (fstatat(fd, name, &st, 0) < 0) {
			tpfs_log(LOG_WARNING, "skipping %s: %s", ch.display, strerror(errno));
			L->skipped_st += tpfs_path_has_suffix(name, ST_SUFFIX);
		} else if (S_ISDIR(st.st_mode)) {
			subs[nsubs++] = name;
		} else if (S_ISREG(st.st_mode)) {
			bool is_st = tpfs_path_has_suffix(name, ST_SUFFIX);
			struct tpfs_source *s = NULL;
			if (!is_st && tpfs_tree_lookup(&L->m->tree, dir, name) >= 0) {
				tpfs_log(LOG_WARNING, "skipping %s: the mount shows its own %s "
					 "there", ch.display, name);
			} else {
				rc = add_source(L, fd, name, ch.path, ch.rel, ch.display, is_st,
						&s);
				/* a model is refused whole rather than served in part,
				 * but a file beside it that tpfs may not read is left out */
				if (rc == -EACCES && !is_st) {
					tpfs_log(LOG_WARNING, "skipping %s: %s", ch.display,
						 strerror(EACCES));
					rc = 0;
				}
				if (rc == 0 && s && !chain_ends_at(s->chain, &here))
					rc = narrow_linked(L, dir, &s->perm, s->chain, ch.display);
			}
			struct folder *f = &L->folders[fi];
			if (rc == 0 && s && is_st && !push_ptr(&f->st, &f->nst, s))
				rc = tpfs_error(L->e, -ENOMEM, "out of memory");
			if (rc == 0 && s && !is_st) {
				long leaf = tpfs_tree_leaf(&L->m->tree, dir, name,
							   TPFS_NODE_FILE, s);
				if (leaf < 0 || tpfs_tree_set_perm(&L->m->tree, (uint32_t)leaf,
								   &s->perm) < 0)
					rc = tpfs_error(L->e, -ENOMEM, "out of memory");
				else if (tpfs_path_has_suffix(name, INDEX_SUFFIX) &&
					 !push_ptr(&f->idx, &f->nidx, s))
					rc = tpfs_error(L->e, -ENOMEM, "out of memory");
			}
		} else {
			tpfs_log(LOG_DEBUG, "skipping %s: not a regular file or folder",
				 ch.display);
		}
		child_free(&ch);
	}
	for (size_t i = 0; i < nsubs && rc == 0; i++)
		rc = walk_sub(L, fd, path, rel, display, dir, &here, subs[i]);
	free(subs);
	free_names(names, n);
	return rc;
}

/* The index of the shard of f whose file is called name, or -1 (f's
 * shards are in name order). */
static long shard_named(const struct folder *f, const char *name)
{
	size_t lo = 0, hi = f->nst;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(base_name(f->st[mid]->rel), name);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* An index's weight_map and the shard headers must say the same thing. */
static int check_index(struct loader *L, const struct folder *f,
		       const struct tpfs_source *x)
{
	if (x->size > TPFS_ST_MAX_HEADER)
		return tpfs_error(L->e, -EINVAL, "%s: index larger than %llu bytes",
				 x->display, TPFS_ST_MAX_HEADER);
	char *text = malloc(x->size + 1);
	if (!text)
		return tpfs_error(L->e, -ENOMEM, "out of memory");
	int copied = x->size ? tpfs_guard_copy(text, x->map, x->size) : 0;
	/* the copy mapped the file's pages in: they are not ours to keep */
	if (x->size)
		madvise((void *)x->map, x->size, MADV_DONTNEED);
	if (copied < 0) {
		free(text);
		return tpfs_error(L->e, -EIO, "%s: cannot read (it shrank)", x->display);
	}
	struct tpfs_st_index *ix;
	int rc = tpfs_st_index_parse(x->display, text, x->size, &ix, L->e);
	if (rc < 0)
		return rc;
	/* Every entry names a shard of this folder that holds the tensor. The
	 * shards come in name order (the walk sorts a folder's entries). */
	bool *named = calloc(f->nst + 1, sizeof(*named));
	if (!named)
		rc = tpfs_error(L->e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < ix->n && rc == 0; i++) {
		const char *tn = ix->v[i].tensor, *fn = ix->v[i].file;
		long k = shard_named(f, fn);
		if (k < 0) {
			rc = tpfs_error(L->e, -EINVAL,
					"%s: weight_map puts tensor '%s' in '%s', which is not a "
					".safetensors file of %s",
					x->display, tn, fn, f->display);
		} else if (!tpfs_st_find(f->st[k]->st, tn)) {
			const struct tpfs_source *holder = NULL;
			for (size_t h = 0; h < f->nst && !holder; h++)
				if (tpfs_st_find(f->st[h]->st, tn))
					holder = f->st[h];
			rc = tpfs_error(L->e, -EINVAL,
					"%s: weight_map puts tensor '%s' in %s, which has no such "
					"tensor%s%s%s",
					x->display, tn, fn, holder ? " (it is in " : "",
					holder ? base_name(holder->rel) : "", holder ? ")" : "");
		} else {
			named[k] = true;
		}
	}
	/* Every tensor of a shard the index names is in the weight_map. */
	for (size_t k = 0; k < f->nst && rc == 0; k++) {
		const struct tpfs_source *s = f->st[k];
		const char *sb = base_name(s->rel);
		for (size_t t = 0; named[k] && t < s->st->ntensors && rc == 0; t++) {
			const char *tn = s->st->tensors[t].name;
			const char *fn = tpfs_st_index_find(ix, tn);
			if (!fn)
				rc = tpfs_error(L->e, -EINVAL,
						"%s: tensor '%s' of %s is missing from the "
						"weight_map",
						x->display, tn, sb);
			else if (strcmp(fn, sb) != 0)
				rc = tpfs_error(L->e, -EINVAL,
						"%s: weight_map puts tensor '%s' in %s, but it is "
						"in %s",
						x->display, tn, fn, sb);
		}
	}
	free(named);
	tpfs_st_index_free(ix);
	return rc;
}

/* A tensor of one of a namespace's files, before the namespace's tensors
 * are made. */
struct entry {
	const struct tpfs_st_tensor *st;
	struct tpfs_source *src;
};

/* Whether the n items of v are in order already (then no sort is needed). */
static bool sorted(const void *v, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	for (size_t i = 1; i < n; i++)
		if (cmp((const char *)v + (i - 1) * size, (const char *)v + i * size) > 0)
			return false;
	return true;
}

static int cmp_entries(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->st->name, y->st->name);
	return c ? c : strcmp(x->src->rel, y->src->rel);
}

static int cmp_tensors(const void *a, const void *b)
{
	const struct tpfs_tensor *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->part[0].src->rel, y->part[0].src->rel);
}

/* A tensor is readable by whoever may read every file it comes from; the
 * folders that show its name (from the namespace folder down to its own)
 * let through no more than that either, since its name and shape come from
 * those files' headers, nor more than may search the namespace folder
 * (reading a file there needs it; listing a folder does not). */
static int serve_tensor(struct loader *L, uint32_t node, uint32_t ns,
			const struct tpfs_tensor *t)
{
	struct tpfs_tree *tree = &L->m->tree;
	struct tpfs_perm p = t->part[0].src->perm;
	if (t->part[1].st)
		tpfs_perm_narrow(L->m->perms, &p, &t->part[1].src->perm, TPFS_PERM_READ);
	int rc = tpfs_tree_set_perm(tree, node, &p);
	const struct tpfs_perm nsp = *tpfs_tree_perm(tree, ns);
	for (uint32_t d = node; rc == 0 && d != ns;) {
		d = tree->nodes[d].parent;
		struct tpfs_perm dp = *tpfs_tree_perm(tree, d);
		for (int i = 0; i < 2 && t->part[i].st; i++)
			tpfs_perm_narrow(L->m->perms, &dp, &t->part[i].src->perm,
					 TPFS_PERM_READ);
		/* said once a file; -o by_file gives its tensors their own folder */
		const struct tpfs_source *s = t->part[0].src;
		bool said = false;
		for (size_t k = 0; k < L->nwarned; k++)
			said |= L->warned[k] == s;
		bool closes = dp.mode != tpfs_tree_perm(tree, d)->mode;
		if (closes && !said && !push_ptr(&L->warned, &L->nwarned, (void *)s))
			return tpfs_error(L->e, -ENOMEM, "out of memory");
		tpfs_perm_narrow(L->m->perms, &dp, &nsp, TPFS_PERM_SEARCH);
		rc = narrow_folder(L, d, &dp, s->display,
				   closes && !said ? "is readable by fewer users than may "
						     "list the folder that shows its tensors "
						     "(-o by_file gives them a folder of "
						     "their own)"
						   : NULL);
	}
	return rc;
}

/* Fill in a tensor whose name and parts are set, and give it its place in
 * the tree under the folder ns. */
static int add_tensor(struct loader *L, uint32_t ns, struct tpfs_tensor *t)
{
	struct tpfs_model *m = L->m;
	struct tpfs_source *s = t->part[0].src;
	int rc = tpfs_tensor_init(t, &m->opt, &m->arena);
	if (rc == -ENOMEM)
		return tpfs_error(L->e, -ENOMEM, "out of memory");
	if (rc < 0)
		return tpfs_error(L->e, rc, "%s: tensor '%s': cannot build the .npy header",
				  s->display, t->name);
	if (t->ndim > 32)
		tpfs_log(LOG_WARNING, "%s: tensor '%s' has %u dimensions; NumPy 1.x loads at "
			 "most 32", s->display, t->name, t->ndim);
	bool renamed;
	long node = tpfs_tree_add_tensor(&m->tree, ns, t->name, t, s->mtime, &renamed);
	if (node < 0)
		return tpfs_error(L->e, (int)node, "out of memory");
	if (renamed) {
		char *path = tpfs_tree_path(&m->tree, (uint32_t)node);
		if (!path)
			return tpfs_error(L->e, -ENOMEM, "out of memory");
		tpfs_log(LOG_WARNING, "%s: tensor '%s' is served as %s: its own name is "
			 "taken", s->display, t->name, path);
		free(path);
	}
	t->node = (uint32_t)node;
	return serve_tensor(L, (uint32_t)node, ns, t) < 0
		       ? tpfs_error(L->e, -ENOMEM, "out of memory") : 0;
}

/* "model.safetensors", or "the MXFP4 pair w_blocks/w_scales (model.safetensors)". */
static void describe(const struct tpfs_part *p, char *buf, size_t len)
{
	if (p[1].st)
		snprintf(buf, len, "the MXFP4 pair %s/%s (%s)", p[0].st->name, p[1].st->name,
			 base_name(p[0].src->rel));
	else
		snprintf(buf, len, "%s", base_name(p[0].src->rel));
}

static int name_clash(struct loader *L, const char *where, const char *name,
		      const struct tpfs_part *a, const struct tpfs_part *b)
{
	char da[512], db[512];
	describe(a, da, sizeof(da));
	describe(b, db, sizeof(db));
	return tpfs_error(L->e, -EINVAL,
			 "%s: tensor '%s' is in both %s and %s (rule: the .safetensors "
			 "files of one folder share one namespace); mount with -o by_file "
			 "to show each file's tensors in a folder of its own",
			 where, name, da, db);
}

static const struct entry *find_entry(const struct entry *v, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid].st->name, name);
		if (c == 0)
			return &v[mid]; /* names are unique by now */
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* If entry i is the _blocks half of a GPT-OSS MXFP4 pair (X_blocks with
 * X_scales, or X.blocks with X.scales, both U8), append the pair's tensor
 * as X and return the scales entry (through *scales); 0, or an error for
 * a pair whose shapes disagree. */
static int pair_at(struct loader *L, const char *where, const struct entry *v, size_t n,
		   size_t i, const struct entry **scales)
{
	*scales = NULL;
	const char *name = v[i].st->name;
	size_t len = strlen(name);
	if (len < 8 || strcmp(name + len - 6, "blocks") != 0 ||
	    (name[len - 7] != '_' && name[len - 7] != '.'))
		return 0;
	char *scales_name = malloc(len + 1);
	if (!scales_name)
		return tpfs_error(L->e, -ENOMEM, "out of memory");
	snprintf(scales_name, len + 1, "%.*s%cscales", (int)(len - 7), name, name[len - 7]);
	const struct entry *sc = find_entry(v, n, scales_name);
	free(scales_name);
	const struct tpfs_st_tensor *b = v[i].st, *s = sc ? sc->st : NULL;
	if (!s || b->dtype != TPFS_DT_U8 || s->dtype != TPFS_DT_U8)
		return 0;
	bool agree = b->ndim >= 2 && b->shape[b->ndim - 1] == 16 && s->ndim == b->ndim - 1;
	for (uint32_t k = 0; agree && k < s->ndim; k++)
		agree = s->shape[k] == b->shape[k];
	if (!agree) {
		char bs[256], ss[256];
		tpfs_st_shape_str(b->shape, b->ndim, bs, sizeof(bs));
		tpfs_st_shape_str(s->shape, s->ndim, ss, sizeof(ss));
		return tpfs_error(L->e, -EINVAL,
				 "%s: MXFP4 pair '%s' %s and '%s' %s do not agree (rule: "
				 "blocks [..., G, 16] and scales [..., G] with the same leading "
				 "dimensions)",
				 where, b->name, bs, s->name, ss);
	}
	const char *base = tpfs_arena_strndup(&L->m->arena, name, len - 7);
	if (!base)
		return tpfs_error(L->e, -ENOMEM, "out of memory");
	struct tpfs_tensor *t = &L->m->tensors[L->m->ntensors++];
	*t = (struct tpfs_tensor){.name = base,
				  .part = {{b, v[i].src}, {s, sc->src}}};
	*scales = sc;
	return 0;
}

/* Make the tensors of the n entries of one namespace (sorted) and give them
 * their places under the folder ns: the file tensors' names must be
 * distinct, then the MXFP4 pairs are found (hiding their halves unless
 * mxfp4=both), and the names served must be distinct too. */
static int add_namespace(struct loader *L, uint32_t ns, const char *where,
			 const struct entry *v, size_t n)
{
	struct tpfs_model *m = L->m;
	for (size_t i = 1; i < n; i++)
		if (strcmp(v[i - 1].st->name, v[i].st->name) == 0)
			return name_clash(L, where, v[i].st->name,
					  (struct tpfs_part[]){{v[i - 1].st, v[i - 1].src}, {0}},
					  (struct tpfs_part[]){{v[i].st, v[i].src}, {0}});
	bool *hidden = calloc(n + 1, sizeof(*hidden));
	if (!hidden)
		return tpfs_error(L->e, -ENOMEM, "out of memory");
	size_t first = m->ntensors;
	int rc = 0;
	if (tpfs_conv_mxfp4(&m->opt)) { /* mxfp4=raw: the pairs stay two U8 tensors */
		bool both = m->opt.mxfp4 == TPFS_OUT_BOTH;
		for (size_t i = 0; i < n && rc == 0; i++) {
			const struct entry *sc;
			rc = pair_at(L, where, v, n, i, &sc);
			if (sc && !both)
				hidden[i] = hidden[sc - v] = true;
		}
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		if (!hidden[i])
			m->tensors[m->ntensors++] = (struct tpfs_tensor){
				.name = v[i].st->name, .part = {{v[i].st, v[i].src}}};
	free(hidden);
	struct tpfs_tensor *t = m->tensors + first;
	size_t k = m->ntensors - first;
	if (rc == 0 && !sorted(t, k, sizeof(*t), cmp_tensors))
		qsort(t, k, sizeof(*t), cmp_tensors);
	for (size_t i = 1; i < k && rc == 0; i++)
		if (strcmp(t[i - 1].name, t[i].name) == 0)
			rc = name_clash(L, where, t[i].name, t[i - 1].part, t[i].part);
	for (size_t i = 0; i < k && rc == 0; i++)
		rc = add_tensor(L, ns, &t[i]);
	return rc;
}

/* Entries for the tensors of the given files, sorted. */
static struct entry *entries_of(struct tpfs_source *const *files, size_t nfiles,
				size_t *n)
{
	size_t total = 0;
	for (size_t k = 0; k < nfiles; k++)
		total += files[k]->st->ntensors;
	struct entry *v = malloc((total + 1) * sizeof(*v));
	if (!v)
		return NULL;
	*n = 0;
	for (size_t k = 0; k < nfiles; k++)
		for (size_t t = 0; t < files[k]->st->ntensors; t++)
			v[(*n)++] = (struct entry){&files[k]->st->tensors[t], files[k]};
	/* one file's tensors come sorted already */
	if (!sorted(v, *n, sizeof(*v), cmp_entries))
		qsort(v, *n, sizeof(*v), cmp_entries);
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
			return tpfs_error(L->e, -ENOMEM, "out of memory");
		rc = add_namespace(L, (uint32_t)ns, where ? where : f->display, v, n);
		free(v);
	}
	return rc;
}

/* manifest.json tells the names, shapes and metadata in every .safetensors
 * file, the paths of those files and the names of the folders that hold
 * tensors: it is served as the root, narrowed by each of those files (read)
 * and by every folder on their paths and the tensors' (list and search), so
 * that only who may read all it describes reads it; a file without tensors
 * counts too. Each distinct permission is applied once. */
static int serve_manifest(struct loader *L, uint32_t manifest)
{
	struct tpfs_model *m = L->m;
	struct tpfs_tree *tree = &m->tree;
	struct tpfs_perm p = *tpfs_tree_perm(tree, 0);
	p.mode &= 0444; /* a file: read bits only */
	p.dir = false;
	bool *seen = calloc(tree->nperms + 1, sizeof(*seen));
	if (!seen)
		return -ENOMEM;
	for (size_t i = 0; i < m->ntensors; i++)
		for (uint32_t d = m->tensors[i].node; d != 0;) {
			d = tree->nodes[d].parent;
			seen[tree->nodes[d].perm] = true;
		}
	for (size_t i = 0; i < L->nfolders; i++)
		for (uint32_t d = L->folders[i].dir; L->folders[i].nst;) {
			seen[tree->nodes[d].perm] = true;
			if (d == 0)
				break;
			d = tree->nodes[d].parent;
		}
	for (size_t i = 0; i < tree->nperms; i++)
		if (seen[i])
			tpfs_perm_narrow(m->perms, &p, &tree->perms[i],
					 TPFS_PERM_READ | TPFS_PERM_SEARCH);
	free(seen);
	for (size_t i = 0; i < m->nsources; i++)
		if (m->sources[i]->st)
			tpfs_perm_narrow(m->perms, &p, &m->sources[i]->perm, TPFS_PERM_READ);
	return tpfs_tree_set_perm(tree, manifest, &p);
}

/* .tpfs/stats counts what is read anywhere in the mount (a private
 * tensor's overflows, the bytes converted from it), and df's totals are of
 * everything: both are for who may read every entry and list every folder
 * it serves, manifest.json included. */
static int serve_stats(struct loader *L, uint32_t manifest, uint32_t stats)
{
	struct tpfs_tree *tree = &L->m->tree;
	struct tpfs_perm p = *tpfs_tree_perm(tree, manifest);
	unsigned char *need = calloc(tree->nperms, sizeof(*need));
	if (!need)
		return -ENOMEM;
	for (size_t i = 0; i < tree->nnodes; i++)
		if (i != stats)
			need[tree->nodes[i].perm] |= tree->nodes[i].kind == TPFS_NODE_DIR
							     ? TPFS_PERM_READ | TPFS_PERM_SEARCH
							     : TPFS_PERM_READ;
	for (size_t i = 0; i < tree->nperms; i++)
		if (need[i])
			tpfs_perm_narrow(L->m->perms, &p, &tree->perms[i], need[i]);
	free(need);
	return tpfs_tree_set_perm(tree, stats, &p);
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

/* A model with no tensor: a wrong path (no .safetensors file at all) and
 * files that hold none are different mistakes. */
static void warn_empty(const struct tpfs_model *m, bool folder, size_t skipped)
{
	size_t files = 0;
	for (size_t i = 0; i < m->nsources; i++)
		files += m->sources[i]->st != NULL;
	if (!folder)
		tpfs_log(LOG_WARNING, "%s holds no tensor: the mount shows only manifest.json",
			 m->display_root);
	else if (!files && skipped)
		tpfs_log(LOG_WARNING, "%s holds no .safetensors file that tpfs could open (%zu "
			 "skipped: see above)", m->display_root, skipped);
	else if (!files)
		tpfs_log(LOG_WARNING, "%s holds no .safetensors file: the mount shows only "
			 "its other files", m->display_root);
	else
		tpfs_log(LOG_WARNING, "%s has %zu .safetensors file%s, %s: the mount shows "
			 "only its other files", m->display_root, files, files == 1 ? "" : "s",
			 files == 1 ? "which holds no tensor" : "none of which holds a tensor");
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Build the model of the folder or file open as rootfd (O_PATH). */
static int build(struct loader *L, int rootfd)
{
	struct tpfs_model *m = L->m;
	struct stat st;
	char proc[32];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", rootfd);
	if (fstat(rootfd, &st) < 0)
		return tpfs_error(L->e, -errno, "%s: %s", m->display_root, strerror(errno));
	/* A single file is named .safetensors by the user (its link target may
	 * be a blob without the suffix). */
	if (!S_ISDIR(st.st_mode) &&
	    !(S_ISREG(st.st_mode) && tpfs_path_has_suffix(m->display_root, ST_SUFFIX)))
		return tpfs_error(L->e, -EINVAL, "%s: not a folder or a .safetensors file",
				 m->display_root);
	int rc = tpfs_tree_init(&m->tree, st.st_mtim);
	if (rc < 0)
		return tpfs_error(L->e, rc, "out of memory");
	/* The root is served as the source folder (a single file's, with x
	 * where it has r), narrowed by the folders above it; tpfs's own entries
	 * follow the root. */
	struct tpfs_perm root = tpfs_perm_served(tpfs_perm_from_stat(&st, -1, proc), true);
	const struct tpfs_perm_chain *up;
	rc = chain_or_fail(L, rootfd, m->display_root, &up);
	if (rc < 0)
		return rc;
	struct tpfs_perm own = root;
	tpfs_perm_narrow_chain(m->perms, &root, up);
	if (root.mode != own.mode && m->opt.shared)
		tpfs_log(LOG_WARNING, "a folder above %s lets fewer users through than it "
			 "does: the mount is served only to them (see \"Who may read what\" "
			 "in the README)", m->display_root);
	if (tpfs_tree_set_perm(&m->tree, 0, &root) < 0)
		return tpfs_error(L->e, -ENOMEM, "out of memory");
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	long hidden = tpfs_tree_dir(&m->tree, 0, HIDDEN_DIR, now);
	long info = hidden > 0 ? tpfs_tree_dir(&m->tree, (uint32_t)hidden, "info", now) : -1;
	if (hidden > 0)
		tpfs_tree_seal(&m->tree, (uint32_t)hidden);
	long manifest = tpfs_tree_leaf(&m->tree, 0, MANIFEST_NAME, TPFS_NODE_MANIFEST,
				       NULL);
	long stats = hidden > 0 ? tpfs_tree_leaf(&m->tree, (uint32_t)hidden, "stats",
						 TPFS_NODE_STATS, NULL)
				: -1;
	if (info < 0 || manifest < 0 || stats < 0)
		return tpfs_error(L->e, -ENOMEM, "out of memory");

	if (S_ISDIR(st.st_mode)) {
		int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = fd < 0 ? tpfs_error(L->e, -errno, "%s: cannot open folder: %s",
					 m->display_root, strerror(errno))
			    : walk(L, fd, m->root, "", m->display_root, 0, &st, NULL);
		if (fd >= 0)
			close(fd);
	} else {
		struct folder *f = add_folder(L, 0, m->display_root, st.st_mtim);
		struct tpfs_source *s;
		rc = f ? add_source(L, AT_FDCWD, proc, m->root, base_name(m->display_root),
				    m->display_root, true, &s)
		       : tpfs_error(L->e, -ENOMEM, "out of memory");
		if (rc == 0 && !push_ptr(&L->folders[0].st, &L->folders[0].nst, s))
			rc = tpfs_error(L->e, -ENOMEM, "out of memory");
	}
	if (rc < 0)
		return rc;

	size_t total = 0;
	for (size_t i = 0; i < m->nsources; i++)
		if (m->sources[i]->st)
			total += m->sources[i]->st->ntensors;
	/* Room for one more tensor per MXFP4 pair (mxfp4=both); what is not
	 * used of a large allocation is never touched, and costs nothing. */
	m->tensors = calloc(total + total / 2 + 1, sizeof(*m->tensors));
	if (!m->tensors)
		return tpfs_error(L->e, -ENOMEM, "out of memory");
	/* Deepest folders first: a folder's own tensors take their names before
	 * tensors of a folder above that reach into it ("sub/w"). */
	for (size_t i = L->nfolders; i-- > 0 && rc == 0;)
		rc = add_folder_tensors(L, &L->folders[i]);
	if (rc < 0)
		return rc;
	/* tpfs's own folders are served as the root, as it is now that every
	 * tensor has narrowed it. */
	const struct tpfs_perm *rp = tpfs_tree_perm(&m->tree, 0);
	if (tpfs_tree_set_perm(&m->tree, (uint32_t)hidden, rp) < 0 ||
	    tpfs_tree_set_perm(&m->tree, (uint32_t)info, rp) < 0 ||
	    serve_manifest(L, (uint32_t)manifest) < 0 ||
	    serve_stats(L, (uint32_t)manifest, (uint32_t)stats) < 0 ||
	    tpfs_tree_finish(&m->tree) < 0)
		return tpfs_error(L->e, -ENOMEM, "out of memory");
	m->info = (uint32_t)info;
	m->stats = (uint32_t)stats;
	warn_raw(m);
	if (!m->ntensors)
		warn_empty(m, S_ISDIR(st.st_mode), L->skipped_st);
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
		return tpfs_error(e, -ENOMEM, "out of memory");
	m->opt = *opt;
	m->display_root = strdup(path);
	int rootfd = open(path, O_PATH | O_CLOEXEC);
	m->root = rootfd < 0 ? NULL : tpfs_path_of_fd(rootfd);
	if (!m->display_root) {
		if (rootfd >= 0)
			close(rootfd);
		tpfs_model_close(m);
		return tpfs_error(e, -ENOMEM, "out of memory");
	}
	/* Trailing slashes would double up in messages. */
	for (size_t n = strlen(m->display_root); n > 1 && m->display_root[n - 1] == '/';)
		m->display_root[--n] = '\0';
	if (!m->root) {
		int err = errno;
		if (rootfd >= 0)
			close(rootfd);
		tpfs_model_close(m);
		return tpfs_error(e, -err, "%s: %s", path, strerror(err));
	}
	m->perms = tpfs_perm_ctx_create();
	if (!m->perms) {
		close(rootfd);
		tpfs_model_close(m);
		return tpfs_error(e, -ENOMEM, "out of memory");
	}
	struct loader L = {.m = m, .e = e};
	tpfs_log_hold();
	rc = build(&L, rootfd);
	close(rootfd);
	tpfs_log_release(rc == 0);
	for (size_t i = 0; i < L.nfolders; i++) {
		free(L.folders[i].display);
		free(L.folders[i].st);
		free(L.folders[i].idx);
	}
	free(L.folders);
	free(L.warned);
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
	free(m->tensors);
	for (size_t i = 0; i < m->nsources; i++)
		tpfs_source_close(m->sources[i]);
	free(m->sources);
	tpfs_tree_free(&m->tree);
	tpfs_perm_ctx_destroy(m->perms);
	tpfs_arena_free(&m->arena);
	free(m->root);
	free(m->display_root);
	free(m);
}


