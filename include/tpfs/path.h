/*
 * Paths and the files and folders they name: joining, comparing, counting a
 * folder's entries, making folders, writing a file whole. No state.
 */
#ifndef TPFS_PATH_H
#define TPFS_PATH_H

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

/* mkdir -p, mode 0755. Returns 0 or a negative errno. */
int tpfs_path_mkdir(const char *path);

/* write(2) to the open file until done. Returns 0 or a negative errno. */
int tpfs_path_write_all(int fd, const void *p, size_t n);

#endif
