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
#include <unistd.h>

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

int tpfs_path_mkdir(const char *path)
{
	char *p = strdup(path);
	int rc = p ? 0 : -ENOMEM;
	for (char *s = p ? p + 1 : NULL; s && rc == 0; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		struct stat st;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			rc = -errno;
		else if (!c && (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)))
			rc = -EEXIST; /* as mkdir -p: something else has the name */
		*s = c;
		if (!c)
			break;
	}
	free(p);
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
