/*
 * An LD_PRELOAD library for one mount test: fstat of the file named by
 * $TPFS_FROZEN_PATH keeps reporting the size and time it had at the first
 * call. tpfs's freshness check then misses a truncation, and only the SIGBUS
 * guard stands between a read of the lost pages and a dead daemon.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fstat(int fd, struct stat *st)
{
	static int (*real)(int, struct stat *);
	static struct stat first;
	static int seen;
	if (!real)
		real = (int (*)(int, struct stat *))dlsym(RTLD_NEXT, "fstat");
	int rc = real(fd, st);
	const char *frozen = getenv("TPFS_FROZEN_PATH");
	char link[64], path[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = rc == 0 && frozen ? readlink(link, path, sizeof(path) - 1) : -1;
	if (n > 0) {
		path[n] = '\0';
		if (strcmp(path, frozen) == 0 && !seen) {
			first = *st;
			seen = 1;
		} else if (strcmp(path, frozen) == 0) {
			st->st_size = first.st_size;
			st->st_mtim = first.st_mtim;
		}
	}
	return rc;
}
