/*
 * Paths and the files and folders they name (see path.h).
 */
#include "tpfs/path.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <linux/xattr.h>

char *tpfs_path_join(const char *a, const char *b)
{
	if (!a || !*a)
		return strdup(b);
	if (!b || !*b)
		return strdup(a);
	size_t la = strlen(a), lb = strlen(b);
	bool slash = a[la - 1] != '/';
	char *p = malloc(la + slash + lb + 1);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	if (slash)
		p[la] = '/';
	memcpy(p + la + slash, b, lb + 1);
	return p;
}

char *tpfs_path_of_fd(int fd)
{
	char proc[32];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (size_t cap = 256;; cap *= 2) {
		char *p = malloc(cap);
		ssize_t n = p ? readlink(proc, p, cap) : -1;
		if (n >= 0 && (size_t)n < cap) {
			p[n] = '\0';
			return p;
		}
		free(p);
		if (n < 0)
			return NULL;
	}
}

bool tpfs_path_has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

bool tpfs_path_within(const char *dir, const char *path)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/' || strcmp(dir, "/") == 0);
}

long tpfs_path_entries(const char *path, const char *ignore)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long n = fd < 0 ? -1 : tpfs_path_entries_fd(fd, ignore);
	if (fd >= 0)
		close(fd);
	return n;
}

long tpfs_path_entries_fd(int fd, const char *ignore)
{
	int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = own >= 0 ? fdopendir(own) : NULL;
	if (!d) {
		if (own >= 0)
			close(own);
		return -1;
	}
	rewinddir(d);
	long n = 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		     !(ignore && strcmp(de->d_name, ignore) == 0);
	closedir(d);
	return n;
}

int tpfs_path_drop_acl(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	/* ENODATA: none there; ENOTSUP: none on this filesystem */
	if (fremovexattr(fd, XATTR_NAME_POSIX_ACL_ACCESS) < 0 && errno != ENODATA &&
	    errno != ENOTSUP)
		return -errno;
	if (S_ISDIR(st.st_mode) && fremovexattr(fd, XATTR_NAME_POSIX_ACL_DEFAULT) < 0 &&
	    errno != ENODATA && errno != ENOTSUP)
		return -errno;
	return 0;
}

/* Make folder name in dfd (mode 0755, within the umask) and open it, as it
 * is: never through a link put in its place since, and without an ACL.
 * Returns its fd, or a negative errno (-EEXIST when the name is taken). */
static int make_dir(int dfd, const char *name)
{
	if (mkdirat(dfd, name, 0755) < 0)
		return -errno;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc = fd < 0 ? -errno : tpfs_path_drop_acl(fd);
	if (rc < 0 && fd >= 0)
		close(fd);
	return rc < 0 ? rc : fd;
}

/* Folder name in dfd, opened to be walked from (O_PATH); flags may add
 * O_NOFOLLOW. Returns its fd or a negative errno. */
static int walk_to(int dfd, const char *name, int flags)
{
	int fd = openat(dfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC | flags);
	return fd < 0 ? -errno : fd;
}

int tpfs_path_mkdir_parent(const char *path, char name[NAME_MAX + 1])
{
	if (!*path)
		return -ENOENT;
	int fd = walk_to(AT_FDCWD, *path == '/' ? "/" : ".", 0);
	bool made = false; /* a folder made here: what is below it is not followed */
	for (const char *s = path + strspn(path, "/"); fd >= 0;) {
		size_t n = strcspn(s, "/");
		if (n > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		snprintf(name, NAME_MAX + 1, "%.*s", n ? (int)n : 1, n ? s : ".");
		s += n;
		s += strspn(s, "/");
		if (!*s)
			return fd; /* name is the last part */
		bool below_made = made;
		int next = below_made ? -ENOENT : walk_to(fd, name, 0);
		if (next == -ENOENT) {
			next = make_dir(fd, name);
			made |= next >= 0;
		}
		if (next == -EEXIST) /* made meanwhile, by someone else */
			next = walk_to(fd, name, below_made ? O_NOFOLLOW : 0);
		close(fd);
		fd = next;
	}
	return fd;
}

int tpfs_path_mkdir(const char *path)
{
	char name[NAME_MAX + 1];
	int dfd = tpfs_path_mkdir_parent(path, name);
	int fd = dfd < 0 ? dfd : make_dir(dfd, name);
	int rc = fd < 0 ? fd : 0;
	struct stat st;
	if (fd == -EEXIST) /* as mkdir -p: fine if a folder has the name */
		rc = fstatat(dfd, name, &st, 0) == 0 && S_ISDIR(st.st_mode) ? 0 : -EEXIST;
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

int tpfs_path_write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}
