/*
 * Paths and the files and folders they name: joining, comparing, counting a
 * folder's entries, making folders, removing ACLs, writing a file whole. No
 * state.
 */
#ifndef TPFS_PATH_H
#define TPFS_PATH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

/* Join a and b with one '/' (an empty side yields the other); malloc'd. */
char *tpfs_path_join(const char *a, const char *b);

/* The path the kernel gives for what fd is open on (/proc/self/fd), links
 * resolved: malloc'd, or NULL with errno set. */
char *tpfs_path_of_fd(int fd);

/* Whether s ends with suffix. */
bool tpfs_path_has_suffix(const char *s, const char *suffix);

/* Whether the absolute, resolved path is dir or lies below it. */
bool tpfs_path_within(const char *dir, const char *path);

/* The entries of a folder other than ".", ".." and ignore (may be NULL);
 * -1 when it cannot be read. */
long tpfs_path_entries(const char *path, const char *ignore);

/* The same of the folder open as fd (left open, its offset shared). */
long tpfs_path_entries_fd(int fd, const char *ignore);

/* Remove the POSIX ACL of the file or folder open as fd (not O_PATH), and
 * a folder's default ACL, so that its mode says who may use it (and a
 * folder gives nothing made in it an ACL). Returns 0 (also when it had
 * none, or its filesystem has none) or a negative errno. */
int tpfs_path_drop_acl(int fd);

/* mkdir -p of the folder that holds path's last part: each missing folder
 * is made (mode 0755, within the umask) by mkdirat in the one above it,
 * held open. The folders path names that exist are followed, links
 * included, as by mkdir -p; a folder made here, and everything below it,
 * is never reached through a link. A folder made here has no ACL (an
 * inherited one is removed). Returns an fd of that folder (O_PATH or
 * read-only, to use as a dirfd) with path's last part in name ("." for
 * "/"), or a negative errno. */
int tpfs_path_mkdir_parent(const char *path, char name[NAME_MAX + 1]);

/* mkdir -p (tpfs_path_mkdir_parent, then the last part likewise; a folder
 * of that name is fine, and may be a link). Returns 0 or a negative errno. */
int tpfs_path_mkdir(const char *path);

/* write(2) to the open file until done. Returns 0 or a negative errno. */
int tpfs_path_write_all(int fd, const void *p, size_t n);

#endif
