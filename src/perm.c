/*
 * The served-permission rule (see perm.h): class-by-class narrowing, ACL
 * detection, the owner's groups from the group database, and the chains of
 * folders above the sources.
 */
#include "tpfs/perm.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include "tpfs/mountinfo.h"
#include "tpfs/path.h"

#define ACL_XATTR "system.posix_acl_access"

/* The owner, group and other bits of a class, each shifted to the owner's
 * place for testing. */
enum { OWNER = 6, GROUP = 3, OTHER = 0 };

struct groups {
	uint32_t uid;
	bool known;            /* the user is in the database */
	int n;
	gid_t *v;
};

struct tpfs_perm_ctx {
	struct groups *users;
	size_t nusers;
	struct tpfs_perm_chain **chains; /* open addressing by dir */
	size_t nchains, cap;
};

struct tpfs_perm_ctx *tpfs_perm_ctx_create(void)
{
	return calloc(1, sizeof(struct tpfs_perm_ctx));
}

static void chain_free(struct tpfs_perm_chain *ch)
{
	if (!ch)
		return;
	free(ch->dir);
	free(ch->v);
	free(ch);
}

void tpfs_perm_ctx_destroy(struct tpfs_perm_ctx *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nusers; i++)
		free(c->users[i].v);
	free(c->users);
	for (size_t i = 0; i < c->cap; i++)
		chain_free(c->chains[i]);
	free(c->chains);
	free(c);
}

static bool has_acl(int fd, const char *path)
{
	ssize_t n = fd >= 0 ? fgetxattr(fd, ACL_XATTR, NULL, 0)
			    : getxattr(path, ACL_XATTR, NULL, 0);
	/* The kernel keeps no xattr for an ACL that the mode says in full. An
	 * error other than "none here" (ENODATA, ENOTSUP) is taken as one. */
	return n > 0 || (n < 0 && errno != ENODATA && errno != ENOTSUP);
}

/* The one user a FUSE mount lets in when it lacks allow_other (the kernel
 * refuses everyone else, root included, whatever the bits say): its id + 1,
 * or 0. */
static uint64_t fuse_user(const struct stat *st)
{
	/* From mountinfo, not statfs: a statfs waits on a FUSE server that
	 * stopped answering. FUSE mounts have anonymous devices (major 0),
	 * fuseblk ones a block device. */
	struct tpfs_mountinfo mi;
	if (!tpfs_mountinfo_of_dev(st->st_dev, &mi) || strncmp(mi.type, "fuse", 4) != 0 ||
	    mi.allow_other)
		return 0;
	return mi.user_id >= 0 ? (uint64_t)mi.user_id + 1 : 1;
}

struct tpfs_perm tpfs_perm_from_stat(const struct stat *st, int fd, const char *path)
{
	return (struct tpfs_perm){(uint32_t)st->st_uid, (uint32_t)st->st_gid,
				  (uint16_t)(st->st_mode & 0777), has_acl(fd, path),
				  S_ISDIR(st->st_mode), fuse_user(st)};
}

/* p as the kernel lets users through it: on a FUSE mount without
 * allow_other, an ACL letting in that mount's user alone. */
static struct tpfs_perm effective(struct tpfs_perm p)
{
	if (!p.fuse_user)
		return p;
	uint32_t user = (uint32_t)(p.fuse_user - 1);
	unsigned bits = p.uid == user ? (p.mode >> 6) & 07
			: p.acl	      ? 0
				      : (p.mode >> 3) & p.mode & 07;
	p.uid = user;
	p.mode = (uint16_t)(bits << 6);
	p.acl = true;
	p.fuse_user = 0;
	return p;
}

struct tpfs_perm tpfs_perm_served(struct tpfs_perm p, bool as_folder)
{
	p = effective(p);
	uint16_t r = p.mode & 0444;
	if (!as_folder)
		p.mode = r;
	else if (p.dir)
		p.mode &= 0555;
	else /* a file shown as a folder: searching it is reading its names */
		p.mode = (uint16_t)(r | r >> 2);
	if (p.acl)
		p.mode &= 0700;
	return p;
}

/* The user's groups from the database (primary included), looked up once. */
static const struct groups *groups_of(struct tpfs_perm_ctx *c, uint32_t uid)
{
	for (size_t i = 0; i < c->nusers; i++)
		if (c->users[i].uid == uid)
			return &c->users[i];
	struct groups *grown = realloc(c->users, (c->nusers + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	c->users = grown;
	struct groups *g = &c->users[c->nusers];
	*g = (struct groups){.uid = uid};
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res) == 0 && res) {
		int n = 64;
		for (int tries = 0; tries < 4; tries++) {
			gid_t *v = malloc((size_t)n * sizeof(*v));
			if (!v)
				break;
			int want = n;
			if (getgrouplist(pw.pw_name, pw.pw_gid, v, &want) >= 0) {
				g->v = v;
				g->n = want;
				g->known = true;
				break;
			}
			free(v);
			n = want > n ? want : n * 2;
		}
	}
	c->nusers++;
	return g;
}

/* Whether the database puts uid in gid. */
static bool member(struct tpfs_perm_ctx *c, uint32_t uid, uint32_t gid)
{
	const struct groups *g = groups_of(c, uid);
	for (int i = 0; g && g->known && i < g->n; i++)
		if (g->v[i] == (gid_t)gid)
			return true;
	return false;
}

/* Whether o's bits of class k hold every bit of need. */
static bool grants(const struct tpfs_perm *o, int k, unsigned need)
{
	return ((o->mode >> k) & need) == need;
}

/* Whether every user of e's class k is sure to hold need on o. */
static bool class_passes(struct tpfs_perm_ctx *c, const struct tpfs_perm *e, int k,
			 const struct tpfs_perm *o, unsigned need)
{
	if (k == OWNER) {
		if (e->uid == 0) /* root reads and searches whatever the bits say */
			return true;
		if (o->uid == e->uid)
			return grants(o, OWNER, need);
		if (o->acl)
			return false;
		/* the owner is in o's group or not, by the database; if not, the
		 * group bits must still do, as a process may carry more groups */
		return grants(o, GROUP, need) &&
		       (member(c, e->uid, o->gid) || grants(o, OTHER, need));
	}
	if (o->acl)
		return false;
	/* A user of e's group or other class is not e's owner, and so may be
	 * o's owner unless o has e's owner; may be in o's group (a member of
	 * e's group surely is when the groups are the same, and a user of the
	 * other class surely is not); and may be in neither. */
	bool same_gid = o->gid == e->gid;
	if (o->uid != e->uid && !grants(o, OWNER, need))
		return false;
	if ((k == GROUP || !same_gid) && !grants(o, GROUP, need))
		return false;
	if ((k == OTHER || !same_gid) && !grants(o, OTHER, need))
		return false;
	return true;
}

void tpfs_perm_narrow(struct tpfs_perm_ctx *c, struct tpfs_perm *e,
		      const struct tpfs_perm *o, unsigned need)
{
	static const int classes[] = {OWNER, GROUP, OTHER};
	struct tpfs_perm eo = effective(*o);
	for (int i = 0; i < 3; i++) {
		int k = classes[i];
		if ((e->mode >> k) & 07 && !class_passes(c, e, k, &eo, need))
			e->mode &= (uint16_t)~(07 << k);
	}
}

bool tpfs_perm_lets(const struct tpfs_perm *p, uint32_t uid, uint32_t gid,
		    const uint32_t *groups, size_t n, unsigned need)
{
	if (uid == 0)
		return true;
	bool member = gid == p->gid;
	for (size_t i = 0; i < n && !member; i++)
		member = groups[i] == p->gid;
	int k = uid == p->uid ? OWNER : member ? GROUP : OTHER;
	return ((p->mode >> k) & need) == need;
}

bool tpfs_perm_same(const struct tpfs_perm *a, const struct tpfs_perm *b)
{
	return a->uid == b->uid && a->gid == b->gid && a->mode == b->mode &&
	       a->acl == b->acl && a->dir == b->dir && a->fuse_user == b->fuse_user;
}

static size_t chain_slot(const struct tpfs_perm_ctx *c, uint64_t dev, uint64_t ino)
{
	uint64_t key[2] = {dev, ino};
	size_t at = XXH3_64bits(key, sizeof(key)) & (c->cap - 1);
	while (c->chains[at]) {
		const struct tpfs_perm_folder *f = &c->chains[at]->v[c->chains[at]->n - 1];
		if (f->dev == dev && f->ino == ino)
			break;
		at = (at + 1) & (c->cap - 1);
	}
	return at;
}

static const struct tpfs_perm_chain *chain_known(const struct tpfs_perm_ctx *c,
						 const struct tpfs_perm_folder *f)
{
	return c->cap ? c->chains[chain_slot(c, f->dev, f->ino)] : NULL;
}

static int chains_grow(struct tpfs_perm_ctx *c)
{
	struct tpfs_perm_ctx bigger = {.cap = c->cap ? c->cap * 2 : 64};
	bigger.chains = calloc(bigger.cap, sizeof(*bigger.chains));
	if (!bigger.chains)
		return -ENOMEM;
	for (size_t i = 0; i < c->cap; i++) {
		struct tpfs_perm_chain *ch = c->chains[i];
		if (ch)
			bigger.chains[chain_slot(&bigger, ch->v[ch->n - 1].dev,
						 ch->v[ch->n - 1].ino)] = ch;
	}
	free(c->chains);
	c->chains = bigger.chains;
	c->cap = bigger.cap;
	return 0;
}

/* The folder whose status is st, with path for the ACL probe. */
static int examine_stat(const struct stat *st, const char *path,
			struct tpfs_perm_folder *f)
{
	if (!S_ISDIR(st->st_mode))
		return -ENOTDIR;
	f->perm = tpfs_perm_from_stat(st, -1, path);
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	return 0;
}

/* The folder open as fd. */
static int examine_fd(int fd, struct tpfs_perm_folder *f)
{
	struct stat st;
	char proc[32]; /* for the ACL probe, which O_PATH descriptors lack */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (fstat(fd, &st) < 0)
		return -errno;
	return examine_stat(&st, proc, f);
}

/* The folder at path. */
static int examine_path(const char *path, struct tpfs_perm_folder *f)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	return examine_stat(&st, path, f);
}

/* The folders of a chain, deepest first, met on the way up. */
struct climb {
	struct tpfs_perm_folder *v;
	size_t n;
};

/* From the folder open as dirfd up through "..", stopping at a folder with
 * a known chain (*known) or at "/" (its own ".."). */
static int climb(const struct tpfs_perm_ctx *c, int dirfd, struct climb *w,
		 const struct tpfs_perm_chain **known)
{
	int fd = dirfd, rc = 0;
	*known = NULL;
	for (;;) {
		struct tpfs_perm_folder f;
		rc = examine_fd(fd, &f);
		if (rc < 0 || (*known = chain_known(c, &f)))
			break;
		struct tpfs_perm_folder *grown = realloc(w->v, (w->n + 1) * sizeof(*grown));
		if (!grown) {
			rc = -ENOMEM;
			break;
		}
		w->v = grown;
		w->v[w->n++] = f;
		int up = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd != dirfd)
			close(fd);
		fd = up;
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			rc = -errno;
			break;
		}
		if ((uint64_t)st.st_dev == f.dev && (uint64_t)st.st_ino == f.ino)
			break;
	}
	if (fd >= 0 && fd != dirfd)
		close(fd);
	return rc;
}

/* dir cut after its first k components ("/" for none). */
static char *dir_prefix(const char *dir, size_t k)
{
	const char *p = dir;
	for (size_t i = 0; i < k && p; i++)
		p = strchr(p + 1, '/');
	size_t len = p ? (size_t)(p - dir) : strlen(dir);
	return len ? strndup(dir, len) : strdup("/");
}

static size_t components(const char *dir)
{
	size_t n = 0;
	for (const char *s = dir; *s; s++)
		n += *s == '/' && s[1] && s[1] != '/';
	return n;
}

const struct tpfs_perm_chain *tpfs_perm_chain_of_fd(struct tpfs_perm_ctx *c, int dirfd)
{
	struct climb w = {0};
	const struct tpfs_perm_chain *known;
	int rc = climb(c, dirfd, &w, &known);
	char *dir = NULL;
	if (rc == 0 && w.n) {
		/* Each folder's path is dir cut after as many components as
		 * there are folders above it, as long as the two agree (a
		 * folder moved meanwhile makes them disagree). */
		dir = tpfs_path_of_fd(dirfd);
		if (!dir)
			rc = -errno;
		else if (components(dir) + 1 != (known ? known->n : 0) + w.n)
			rc = -EAGAIN;
	}
	/* The chains of the folders met, from the top down. */
	for (size_t i = w.n; rc == 0 && i-- > 0;) {
		size_t n = known ? known->n + 1 : 1;
		if ((c->nchains + 1) * 2 > c->cap && chains_grow(c) < 0) {
			rc = -ENOMEM;
			break;
		}
		struct tpfs_perm_chain *ch = calloc(1, sizeof(*ch));
		if (ch) {
			ch->dir = dir_prefix(dir, n - 1);
			ch->v = malloc(n * sizeof(*ch->v));
		}
		if (!ch || !ch->dir || !ch->v) {
			chain_free(ch);
			rc = -ENOMEM;
			break;
		}
		if (known)
			memcpy(ch->v, known->v, known->n * sizeof(*ch->v));
		ch->v[n - 1] = w.v[i];
		ch->n = n;
		c->chains[chain_slot(c, w.v[i].dev, w.v[i].ino)] = ch;
		c->nchains++;
		known = ch;
	}
	free(dir);
	free(w.v);
	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	return known;
}

const struct tpfs_perm_chain *tpfs_perm_chain_above_fd(struct tpfs_perm_ctx *c, int fd)
{
	struct stat st, named;
	if (fstat(fd, &st) < 0)
		return NULL;
	int dir = -1;
	if (S_ISDIR(st.st_mode)) {
		dir = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
	} else {
		/* A file's folder: the one its path names, if the file is
		 * there under that name (not moved since it was opened). */
		char *path = tpfs_path_of_fd(fd);
		char *slash = path ? strrchr(path, '/') : NULL;
		if (slash) {
			*slash = '\0';
			dir = open(slash == path ? "/" : path,
				   O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (dir >= 0 && (fstatat(dir, slash + 1, &named, AT_SYMLINK_NOFOLLOW) < 0 ||
					 named.st_dev != st.st_dev || named.st_ino != st.st_ino)) {
				close(dir);
				dir = -1;
				errno = EAGAIN;
			}
		} else if (path) {
			errno = EAGAIN; /* not a path: "anon_inode:..." */
		}
		free(path);
	}
	if (dir < 0)
		return NULL;
	const struct tpfs_perm_chain *ch = tpfs_perm_chain_of_fd(c, dir);
	int err = errno;
	close(dir);
	errno = err;
	return ch;
}

void tpfs_perm_narrow_chain(struct tpfs_perm_ctx *c, struct tpfs_perm *e,
			    const struct tpfs_perm_chain *ch)
{
	for (size_t i = 0; i < ch->n; i++)
		tpfs_perm_narrow(c, e, &ch->v[i].perm, TPFS_PERM_SEARCH);
}

int tpfs_perm_chain_check(const struct tpfs_perm_chain *ch)
{
	/* From the deepest folder up: folder i's path is dir cut after its
	 * i-th component. */
	char *path = strdup(ch->dir);
	if (!path)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = ch->n; i-- > 0 && rc == 0;) {
		struct tpfs_perm_folder now = {0};
		int err = examine_path(i == 0 ? "/" : path, &now);
		if (err < 0)
			rc = err;
		else if (now.dev != ch->v[i].dev || now.ino != ch->v[i].ino)
			rc = -ESTALE; /* another folder there now */
		else if (!tpfs_perm_same(&now.perm, &ch->v[i].perm))
			rc = 1;
		char *slash = strrchr(path, '/');
		if (slash)
			*(slash == path ? slash + 1 : slash) = '\0';
	}
	free(path);
	return rc;
}
