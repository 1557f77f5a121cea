/*
 * Who may read what through a mount: the one rule for the owner, group and
 * permission bits of every served entry. A mount shared with allow_other
 * must never let a user read (bytes, names, statistics, metadata) what the
 * same user could not read from the source directly.
 *
 * The kernel checks a served entry's bits itself (default_permissions), with
 * the user's class (owner, group, other) relative to the entry's owner and
 * group, exactly as it does for the source. So an entry is served with its
 * source's owner, group and read bits (search bits too for a folder), and
 * then narrowed: it loses the bits of every class of its users that is not
 * sure to be let through by something else the direct path needs, namely
 * every folder above the source that the mount does not mirror itself
 * (those above the source root, and those a symlink leads through), and
 * every other file an entry is made of or shows the names of.
 *
 * "Sure" is decided from the three classes alone, without knowing who is
 * in a group: a class passes an object only if every class its users may
 * hold on that object grants what is needed. The one exception is the
 * owner, whose groups are taken from the system's group database. An
 * object with an extended POSIX ACL lets through its owner only, by its
 * owner bits (named entries may deny anyone else). Narrowing only ever
 * clears bits.
 *
 * A tpfs_perm_ctx caches the owners' group lists and the chains of folders
 * above the sources while a model loads (single-threaded); the chains stay
 * with it for the model's lifetime, and checking one is thread-safe.
 */
#ifndef TPFS_PERM_H
#define TPFS_PERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define TPFS_PERM_READ 04
#define TPFS_PERM_SEARCH 01

struct tpfs_perm {
	uint32_t uid, gid;
	uint16_t mode; /* permission bits, within 0777 */
	bool acl;      /* an extended POSIX access ACL */
	bool dir;      /* a folder */
	uint64_t fuse_user; /* on a FUSE mount without allow_other, which lets
			       in the user it was mounted by alone whatever
			       the bits say: that user's id + 1; else 0 */
};

struct tpfs_perm_ctx;

/* Returns NULL on allocation failure. */
struct tpfs_perm_ctx *tpfs_perm_ctx_create(void);

/* Accepts NULL. */
void tpfs_perm_ctx_destroy(struct tpfs_perm_ctx *c);

/* The owner, group, mode and ACL of an object from its stat, with fd (>= 0)
 * or path (links followed) to look for an ACL and for the filesystem it is
 * on. An object on a FUSE mount without allow_other is taken as having an
 * ACL that lets in that mount's user alone, by the bits that user is sure
 * to have (its owner's, if that user owns it; else both the group's and
 * the others'). */
struct tpfs_perm tpfs_perm_from_stat(const struct stat *st, int fd, const char *path);

/* The bits an entry made from this object starts with: read bits for a
 * file, read and search bits for a folder, the owner's only when an ACL
 * may deny anyone else. A file serving as a folder (the mount's root when
 * the source is one file) gets search bits where it has read bits. */
struct tpfs_perm tpfs_perm_served(struct tpfs_perm p, bool as_folder);

/* Keep in e only the classes whose every user is sure to hold all the bits
 * of need (TPFS_PERM_READ, TPFS_PERM_SEARCH or both) on o. */
void tpfs_perm_narrow(struct tpfs_perm_ctx *c, struct tpfs_perm *e,
		      const struct tpfs_perm *o, unsigned need);

/* The folders from "/" down to a source's folder as they were when the
 * model was loaded: to narrow by, and to notice when one of them is changed
 * to let fewer users through (chmod, chown, setfacl) while mounted. */
struct tpfs_perm_folder {
	struct tpfs_perm perm;
	uint64_t dev, ino;     /* which folder it was */
};

struct tpfs_perm_chain {
	char *dir;                   /* absolute, no links */
	size_t n;
	struct tpfs_perm_folder *v;  /* "/", then each folder down to dir */
};

/* The chain of the folder open as dirfd (O_PATH will do): the folders its
 * ".." leads through up to "/", each as it is when first met, so that no
 * link, rename or swap between a path and what it names can put another
 * folder in the chain. Recorded by device and inode on first use and kept
 * by c until it is destroyed. NULL with errno set when a folder cannot be
 * examined, EAGAIN when one was moved while the chain was made. */
const struct tpfs_perm_chain *tpfs_perm_chain_of_fd(struct tpfs_perm_ctx *c, int dirfd);

/* The chain of the folder holding what fd is open on: a folder's "..", a
 * file's folder by the file's path in /proc, checked to hold that very file
 * under that name (EAGAIN otherwise). As tpfs_perm_chain_of_fd. */
const struct tpfs_perm_chain *tpfs_perm_chain_above_fd(struct tpfs_perm_ctx *c, int fd);

/* Narrow e by every folder of the chain, each needing search. */
void tpfs_perm_narrow_chain(struct tpfs_perm_ctx *c, struct tpfs_perm *e,
			    const struct tpfs_perm_chain *ch);

/* Whether every folder of the chain still has the owner, group, mode and
 * ACL flag it had: 0 when it does, 1 when one changed, or a negative errno
 * when one cannot be examined (gone, on a failing filesystem, or the path
 * now leads to another folder, as when a mount went away).
 * Thread-safe (a stat and an ACL probe per folder). */
int tpfs_perm_chain_check(const struct tpfs_perm_chain *ch);

/* Whether a caller (uid, gid and its n supplementary groups) may do need
 * (TPFS_PERM_READ, TPFS_PERM_SEARCH or both) on an entry served as p, as
 * the kernel decides it from the bits: root always may; otherwise the
 * owner's bits for the owner, the group's for a member, else the others'. */
bool tpfs_perm_lets(const struct tpfs_perm *p, uint32_t uid, uint32_t gid,
		    const uint32_t *groups, size_t n, unsigned need);

/* Whether a and b are the same in every field. */
bool tpfs_perm_same(const struct tpfs_perm *a, const struct tpfs_perm *b);

#endif
