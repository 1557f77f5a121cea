/*
 * The served-permission rule (see perm.h): class-by-class narrowing, ACL
 * detection, the owner's groups from the group database, and the chains of
 * folders above the sources.
 */
#include "tpfs/perm.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

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

struct tpfs_perm tpfs_perm_from_stat(const struct stat *st, int fd, const char *path)
{
	return (struct tpfs_perm){(uint32_t)st->st_uid, (uint32_t)st->st_gid,
				  (uint16_t)(st->st_mode & 0777), has_acl(fd, path),
				  S_ISDIR(st->st_mode)};
}

struct tpfs_perm tpfs_perm_served(struct tpfs_perm p, bool as_folder)
{
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
	for (int i = 0; i < 3; i++) {
		int k = classes[i];
		if ((e->mode >> k) & 07 && !class_passes(c, e, k, o, need))
			e->mode &= (uint16_t)~(07 << k);
	}
}

bool tpfs_perm_same(const struct tpfs_perm *a, const struct tpfs_perm *b)
{
	return a->uid == b->uid && a->gid == b->gid && a->mode == b->mode &&
	       a->acl == b->acl && a->dir == b->dir;
}

static size_t chain_slot(const struct tpfs_perm_ctx *c, const char *dir)
{
	size_t at = XXH3_64bits(dir, strlen(dir)) & (c->cap - 1);
	while (c->chains[at] && strcmp(c->chains[at]->dir, dir) != 0)
		at = (at + 1) & (c->cap - 1);
	return at;
}

static int chains_grow(struct tpfs_perm_ctx *c)
{
	struct tpfs_perm_ctx bigger = {.cap = c->cap ? c->cap * 2 : 64};
	bigger.chains = calloc(bigger.cap, sizeof(*bigger.chains));
	if (!bigger.chains)
		return -ENOMEM;
	for (size_t i = 0; i < c->cap; i++)
		if (c->chains[i])
			bigger.chains[chain_slot(&bigger, c->chains[i]->dir)] = c->chains[i];
	free(c->chains);
	c->chains = bigger.chains;
	c->cap = bigger.cap;
	return 0;
}

static int examine(const char *dir, struct tpfs_perm_folder *f)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	f->perm = tpfs_perm_from_stat(&st, -1, dir);
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	return 0;
}

const struct tpfs_perm_chain *tpfs_perm_chain_of(struct tpfs_perm_ctx *c,
						 const char *dir)
{
	if (c->cap) {
		size_t at = chain_slot(c, dir);
		if (c->chains[at])
			return c->chains[at];
	}
	/* "/" ends the chain; otherwise the parent's chain and one more. The
	 * parent's chain goes in first, so that the room checked below is
	 * the room left once the whole path above is in the table. */
	const struct tpfs_perm_chain *up = NULL;
	const char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		char *parent = strndup(dir, (size_t)(slash - dir));
		up = parent ? tpfs_perm_chain_of(c, parent) : NULL;
		free(parent);
		if (!up)
			return NULL;
	} else if (strcmp(dir, "/") != 0) {
		up = tpfs_perm_chain_of(c, "/");
		if (!up)
			return NULL;
	}
	if ((c->nchains + 1) * 2 > c->cap && chains_grow(c) < 0) {
		errno = ENOMEM;
		return NULL;
	}
	struct tpfs_perm_chain *ch = calloc(1, sizeof(*ch));
	size_t n = up ? up->n + 1 : 1;
	if (ch) {
		ch->dir = strdup(dir);
		ch->v = malloc(n * sizeof(*ch->v));
	}
	if (!ch || !ch->dir || !ch->v) {
		chain_free(ch);
		errno = ENOMEM;
		return NULL;
	}
	if (up)
		memcpy(ch->v, up->v, up->n * sizeof(*ch->v));
	ch->n = n;
	int rc = examine(dir, &ch->v[n - 1]);
	if (rc < 0) {
		chain_free(ch);
		errno = -rc;
		return NULL;
	}
	c->chains[chain_slot(c, dir)] = ch;
	c->nchains++;
	return ch;
}

const struct tpfs_perm_chain *tpfs_perm_chain_above(struct tpfs_perm_ctx *c,
						    const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = !slash || slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
	const struct tpfs_perm_chain *ch = dir ? tpfs_perm_chain_of(c, dir) : NULL;
	free(dir);
	if (!dir)
		errno = ENOMEM;
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
		int err = examine(i == 0 ? "/" : path, &now);
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
