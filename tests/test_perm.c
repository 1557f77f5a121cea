/*
 * The served-permission rule, checked against a model of the kernel's own
 * decision (owner bits for the owner, else group bits for a member of the
 * group, else other bits; with an ACL, anyone but the owner may be denied)
 * over every user of a small universe: whatever the narrowed entry lets a
 * user do, that user could do on the entry and on the object directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "tpfs/perm.h"

/* Users and groups that no database knows, so that nothing is assumed of
 * who belongs where. */
static const uint32_t uids[] = {40001, 40002, 40003};
static const uint32_t gids[] = {40011, 40012, 40013};

struct user {
	uint32_t uid;
	unsigned groups; /* bit i: member of gids[i] */
};

static bool in_group(const struct user *u, uint32_t gid)
{
	for (int i = 0; i < 3; i++)
		if ((u->groups >> i & 1) && gids[i] == gid)
			return true;
	return false;
}

/* The kernel's decision for a user without capabilities. */
static bool allows(const struct user *u, const struct tpfs_perm *o, unsigned need)
{
	unsigned bits;
	if (u->uid == o->uid)
		bits = o->mode >> 6 & 7;
	else if (o->acl)
		return false; /* a named entry may deny this user */
	else if (in_group(u, o->gid))
		bits = o->mode >> 3 & 7;
	else
		bits = o->mode & 7;
	return (bits & need) == need;
}

static void narrowing_never_lets_anyone_past_what_they_could_do(void)
{
	struct tpfs_perm_ctx *c = tpfs_perm_ctx_create();
	long checked = 0, kept = 0;
	for (int eu = 0; eu < 2; eu++)
	for (int eg = 0; eg < 2; eg++)
	for (int ou = 0; ou < 2; ou++)
	for (int og = 0; og < 2; og++)
	for (unsigned em = 0; em < 8; em++)
	for (int acl = 0; acl < 2; acl++)
	for (unsigned om = 0; om < 01000; om++)
	for (unsigned need = 1; need <= 5; need += need == 1 ? 3 : 1) {
		/* e: a served file with read bits in each class of em */
		struct tpfs_perm e = {uids[eu], gids[eg], 0, false, false, 0};
		for (int k = 0; k < 3; k++)
			if (em >> k & 1)
				e.mode |= (uint16_t)(04 << (3 * k));
		struct tpfs_perm o = {uids[ou], gids[og], (uint16_t)om, acl, true, 0};
		struct tpfs_perm n = e;
		tpfs_perm_narrow(c, &n, &o, need);
		CHECK(n.uid == e.uid && n.gid == e.gid && (n.mode & ~e.mode) == 0);
		for (int ui = 0; ui < 3; ui++)
			for (unsigned g = 0; g < 8; g++) {
				struct user u = {uids[ui], g};
				bool through = allows(&u, &n, TPFS_PERM_READ);
				bool direct = allows(&u, &e, TPFS_PERM_READ) && allows(&u, &o, need);
				CHECKF(!through || direct,
				       "e %o %u:%u, o %o %u:%u acl %d need %u: user %u groups %u",
				       e.mode, e.uid, e.gid, o.mode, o.uid, o.gid, acl, need, u.uid,
				       g);
				checked++;
				kept += through;
			}
	}
	CHECK(checked > 1000000 && kept > checked / 20);
	tpfs_perm_ctx_destroy(c);
}

/* tpfs_perm_lets decides as the kernel does for served entries (no ACLs),
 * whether the group is the caller's primary one or a supplementary one. */
static void lets_decides_as_the_kernel(void)
{
	long checked = 0;
	for (int ou = 0; ou < 3; ou++)
	for (int og = 0; og < 3; og++)
	for (unsigned om = 0; om < 01000; om++)
	for (unsigned need = 1; need <= 5; need += need == 1 ? 3 : 1)
	for (int ui = 0; ui < 3; ui++)
	for (unsigned g = 0; g < 8; g++) {
		struct tpfs_perm o = {uids[ou], gids[og], (uint16_t)om, false, true, 0};
		struct user u = {uids[ui], g};
		uint32_t sup[3];
		size_t n = 0;
		for (int i = 1; i < 3; i++)
			if (g >> i & 1)
				sup[n++] = gids[i];
		/* gids[0] as the primary group when the user is in it */
		uint32_t primary = g & 1 ? gids[0] : 50000;
		bool want = allows(&u, &o, need);
		CHECKF(tpfs_perm_lets(&o, u.uid, primary, sup, n, need) == want,
		       "o %o %u:%u need %u: user %u groups %u", om, o.uid, o.gid, need, u.uid, g);
		checked++;
	}
	struct tpfs_perm closed = {uids[0], gids[0], 0, false, true, 0};
	CHECK(tpfs_perm_lets(&closed, 0, 0, NULL, 0, TPFS_PERM_READ | TPFS_PERM_SEARCH));
	CHECK(checked > 100000);
}

static void same_owner_and_group_narrow_class_by_class(void)
{
	struct tpfs_perm_ctx *c = tpfs_perm_ctx_create();
	for (unsigned om = 0; om < 01000; om++) {
		struct tpfs_perm e = {uids[0], gids[0], 0444, false, false, 0};
		struct tpfs_perm o = {uids[0], gids[0], (uint16_t)om, false, true, 0};
		tpfs_perm_narrow(c, &e, &o, TPFS_PERM_SEARCH);
		unsigned want = 0;
		for (int k = 0; k < 3; k++)
			if (om >> (3 * k) & 1)
				want |= 04u << (3 * k);
		CHECKF(e.mode == want, "folder %o: %o, not %o", om, e.mode, want);
	}
	/* everyone may search: nothing is lost, whoever owns it */
	struct tpfs_perm e = {uids[0], gids[0], 0444, false, false, 0};
	struct tpfs_perm o = {uids[1], gids[1], 0755, false, true, 0};
	tpfs_perm_narrow(c, &e, &o, TPFS_PERM_SEARCH);
	CHECK(e.mode == 0444);
	tpfs_perm_ctx_destroy(c);
}

static void root_owned_entries_keep_the_owner_class(void)
{
	struct tpfs_perm_ctx *c = tpfs_perm_ctx_create();
	struct tpfs_perm e = {0, 0, 0444, false, false, 0};
	struct tpfs_perm o = {uids[0], gids[0], 0, false, true, 0};
	tpfs_perm_narrow(c, &e, &o, TPFS_PERM_SEARCH);
	CHECK(e.mode == 0400);
	tpfs_perm_ctx_destroy(c);
}

static void the_owner_counts_in_the_groups_the_database_gives(void)
{
	/* nobody (65534) is in its own primary group by the database; a
	 * folder open to that group only lets its files' owner through */
	struct tpfs_perm_ctx *c = tpfs_perm_ctx_create();
	struct tpfs_perm e = {65534, 0, 0400, false, false, 0};
	struct tpfs_perm o = {0, 65534, 0710, false, true, 0};
	tpfs_perm_narrow(c, &e, &o, TPFS_PERM_SEARCH);
	CHECK(e.mode == 0400);
	struct tpfs_perm unknown = {uids[0], 0, 0400, false, false, 0};
	tpfs_perm_narrow(c, &unknown, &o, TPFS_PERM_SEARCH);
	CHECK(unknown.mode == 0);
	tpfs_perm_ctx_destroy(c);
}

static void served_bits_are_read_and_search_only(void)
{
	struct tpfs_perm f = {1, 1, 0777, false, false, 0};
	CHECK(tpfs_perm_served(f, false).mode == 0444);
	CHECK(tpfs_perm_served(f, true).mode == 0444 + 0111);
	struct tpfs_perm w = {1, 1, 0622, false, false, 0};
	CHECK(tpfs_perm_served(w, false).mode == 0400);
	/* a file shown as a folder: search where it may be read */
	CHECK(tpfs_perm_served(w, true).mode == 0500);
	struct tpfs_perm d = {1, 1, 0751, false, true, 0};
	CHECK(tpfs_perm_served(d, true).mode == 0551);
	struct tpfs_perm zero = {1, 1, 0, false, true, 0};
	CHECK(tpfs_perm_served(zero, true).mode == 0);
	struct tpfs_perm acl = {1, 1, 0755, true, true, 0};
	CHECK(tpfs_perm_served(acl, true).mode == 0500);
}

/* An access ACL giving uid 65534 nothing. */
static int deny_nobody(const char *path)
{
	static const unsigned e[5][3] = {{1, 7, ~0u}, {2, 0, 65534}, {4, 5, ~0u},
					 {0x10, 5, ~0u}, {0x20, 5, ~0u}};
	return fx_acl(path, "system.posix_acl_access", e, 5);
}

static void an_acl_is_seen(void)
{
	char *d = fx_tmpdir();
	char *p = fx_path(d, "f");
	CHECK(fx_write(d, "f", "x", 1) == 0);
	struct stat st;
	CHECK(stat(p, &st) == 0);
	CHECK(!tpfs_perm_from_stat(&st, -1, p).acl);
	if (deny_nobody(p) == 0) {
		CHECK(stat(p, &st) == 0);
		struct tpfs_perm got = tpfs_perm_from_stat(&st, -1, p);
		CHECK(got.acl);
		CHECK(tpfs_perm_served(got, false).mode == 0400);
	} else {
		printf("     (no POSIX ACLs here: %s)\n", strerror(errno));
	}
	free(p);
	fx_rmtree(d);
}

/* The chain of the folder at path, through a descriptor as the loader
 * gets it. */
static const struct tpfs_perm_chain *chain_at(struct tpfs_perm_ctx *c, const char *path)
{
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	const struct tpfs_perm_chain *ch = tpfs_perm_chain_of_fd(c, fd);
	int err = errno;
	close(fd);
	errno = err;
	return ch;
}

static void a_chain_holds_every_folder_and_notices_changes(void)
{
	char *d = fx_tmpdir();
	CHECK(fx_write(d, "a/b/f", "x", 1) == 0);
	char *ab = fx_path(d, "a/b"), *a = fx_path(d, "a");
	struct tpfs_perm_ctx *c = tpfs_perm_ctx_create();
	const struct tpfs_perm_chain *ch = chain_at(c, ab);
	CHECK(ch != NULL);
	if (ch) {
		size_t depth = 1;
		for (const char *s = ab + 1; *s; s++)
			depth += *s == '/';
		CHECK(ch->n == depth + 1);
		CHECK(ch->v[0].perm.dir && ch->v[ch->n - 1].perm.mode == 0755);
		CHECK(chain_at(c, ab) == ch);
		CHECK(tpfs_perm_chain_check(ch) == 0);
		CHECK(chmod(a, 0750) == 0);
		CHECK(tpfs_perm_chain_check(ch) == 1);
		CHECK(chmod(a, 0755) == 0);
		CHECK(tpfs_perm_chain_check(ch) == 0);
		/* another folder in its place is not it */
		char *moved = fx_path(d, "moved");
		CHECK(rename(ab, moved) == 0 && mkdir(ab, 0755) == 0);
		CHECK(tpfs_perm_chain_check(ch) == -ESTALE);
		CHECK(rmdir(ab) == 0 && rename(moved, ab) == 0);
		CHECK(tpfs_perm_chain_check(ch) == 0);
		free(moved);
		/* narrowing by it: a closed folder closes the entry to others */
		CHECK(chmod(a, 0700) == 0);
		const struct tpfs_perm_chain *closed = chain_at(c, a);
		struct tpfs_perm e = {0, 0, 0444, false, false, 0};
		if (closed)
			tpfs_perm_narrow_chain(c, &e, closed);
		CHECK(closed && e.mode == 0400);
	}
	errno = 0;
	CHECK(chain_at(c, "/no/such/folder") == NULL && errno == ENOENT);
	tpfs_perm_ctx_destroy(c);
	free(a);
	free(ab);
	fx_rmtree(d);
}

/* Deep folders: each level enters the table on the way down, so the table
 * must make room for the whole path, not for one entry. */
/* What is open is what counts: a file or folder reached through a link,
 * or whose path was swapped for another since it was opened, has the
 * chain of the folders that really hold it. */
static void chains_follow_what_is_open_not_its_path(void)
{
	char *d = fx_tmpdir();
	CHECK(fx_write(d, "private/in/f", "x", 1) == 0);
	CHECK(fx_write(d, "open/g", "x", 1) == 0);
	CHECK(fx_write(d, "private/in2/h", "x", 1) == 0);
	char *priv = fx_path(d, "private"), *in = fx_path(d, "private/in");
	char *in2 = fx_path(d, "private/in2");
	char *f = fx_path(d, "private/in/f"), *link = fx_path(d, "open/f");
	char *moved = fx_path(d, "open/in2");
	CHECK(chmod(priv, 0700) == 0 && symlink(f, link) == 0);
	struct tpfs_perm_ctx *c = tpfs_perm_ctx_create();
	/* a file through a link: the chain ends at the folder holding it */
	int fd = open(link, O_RDONLY | O_CLOEXEC);
	const struct tpfs_perm_chain *ch = fd >= 0 ? tpfs_perm_chain_above_fd(c, fd) : NULL;
	CHECK(ch && strcmp(ch->dir, in) == 0 && ch->v[ch->n - 2].perm.mode == 0700);
	/* a folder moved after it was opened: its chain is where it is now */
	int dfd = open(in2, O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(dfd >= 0 && rename(in2, moved) == 0);
	const struct tpfs_perm_chain *now = dfd >= 0 ? tpfs_perm_chain_of_fd(c, dfd) : NULL;
	CHECK(now && strcmp(now->dir, moved) == 0 && now->v[now->n - 2].perm.mode == 0755);
	/* a file no longer under the name it was opened by is refused */
	char *g = fx_path(d, "open/g");
	int gfd = open(g, O_RDONLY | O_CLOEXEC);
	errno = 0;
	CHECK(gfd >= 0 && unlink(g) == 0 && tpfs_perm_chain_above_fd(c, gfd) == NULL &&
	      errno == EAGAIN);
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (gfd >= 0)
		close(gfd);
	tpfs_perm_ctx_destroy(c);
	free(priv);
	free(in);
	free(in2);
	free(f);
	free(link);
	free(moved);
	free(g);
	fx_rmtree(d);
}

static void chains_of_deep_folders_fit_the_table(void)
{
	char *d = fx_tmpdir();
	char rel[2 * 200 + 8] = "";
	for (int i = 0; i < 200; i++)
		strcat(rel, "d/");
	strcat(rel, "f");
	CHECK(fx_write(d, rel, "x", 1) == 0);
	rel[strlen(rel) - 2] = '\0';
	char *deep = fx_path(d, rel);
	struct tpfs_perm_ctx *c = tpfs_perm_ctx_create();
	const struct tpfs_perm_chain *ch = chain_at(c, deep);
	CHECK(ch != NULL);
	if (ch) {
		size_t depth = 1;
		for (const char *s = deep + 1; *s; s++)
			depth += *s == '/';
		CHECK(ch->n == depth + 1 && depth > 200);
		CHECK(tpfs_perm_chain_check(ch) == 0);
	}
	tpfs_perm_ctx_destroy(c);
	free(deep);
	fx_rmtree(d);
}

int main(void)
{
	RUN(narrowing_never_lets_anyone_past_what_they_could_do);
	RUN(lets_decides_as_the_kernel);
	RUN(same_owner_and_group_narrow_class_by_class);
	RUN(root_owned_entries_keep_the_owner_class);
	RUN(the_owner_counts_in_the_groups_the_database_gives);
	RUN(served_bits_are_read_and_search_only);
	RUN(an_acl_is_seen);
	RUN(a_chain_holds_every_folder_and_notices_changes);
	RUN(chains_follow_what_is_open_not_its_path);
	RUN(chains_of_deep_folders_fit_the_table);
	return check_done();
}
