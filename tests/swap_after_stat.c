/*
 * An LD_PRELOAD library for one test: right after fstatat finds the entry
 * named $TPFS_SWAP_NAME, the file $TPFS_SWAP_WITH is renamed over it, once.
 * A user who may write in the source folder can do that at this moment by
 * chance; here it happens every time, so that tpfs examines one file and
 * then opens another.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int fstatat(int dirfd, const char *name, struct stat *st, int flags)
{
	static int (*real)(int, const char *, struct stat *, int);
	static int done;
	if (!real)
		real = (int (*)(int, const char *, struct stat *, int))dlsym(RTLD_NEXT,
									     "fstatat");
	int rc = real(dirfd, name, st, flags);
	const char *swap = getenv("TPFS_SWAP_NAME"), *with = getenv("TPFS_SWAP_WITH");
	if (rc == 0 && !done && swap && with && strcmp(name, swap) == 0) {
		done = 1;
		if (renameat(AT_FDCWD, with, dirfd, name) < 0)
			perror("swap_after_stat: renameat");
	}
	return rc;
}
