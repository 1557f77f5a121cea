/*
 * Source files: opening, and the checks that they are still what was
 * loaded (see source.h).
 */
#include "tpfs/source.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tpfs/log.h"

/* Open the file name of the folder dirfd for reading, links followed, if it
 * is a regular file. It is examined through an O_PATH descriptor first, and
 * opened only then: opening a FIFO or a device (a file swapped for one, or
 * a link turned to /dev/watchdog or a terminal, since the folder was read)
 * can be the harm itself. Returns the descriptor (st: its fstat), -EINVAL
 * if it is not a regular file, or another negative errno. */
static int open_regular(int dirfd, const char *name, struct stat *st)
{
	int path = openat(dirfd, name, O_PATH | O_CLOEXEC);
	if (path < 0)
		return -errno;
	struct stat seen;
	int fd = fstat(path, &seen) < 0 ? -errno : S_ISREG(seen.st_mode) ? 0 : -EINVAL;
	if (fd == 0) {
		char proc[32];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", path);
		fd = open(proc, O_RDONLY | O_NOCTTY | O_CLOEXEC);
		if (fd < 0) {
			fd = -errno;
		} else if (fstat(fd, st) < 0 || st->st_dev != seen.st_dev ||
			   st->st_ino != seen.st_ino) {
			close(fd);
			fd = -ESTALE; /* not the file examined */
		}
	}
	close(path);
	return fd;
}

int tpfs_source_open(int dirfd, const char *name, const char *path, const char *rel,
		     const char *display, bool safetensors, struct tpfs_perm_ctx *ctx,
		     struct tpfs_source **out, struct tpfs_error *e)
{
	struct tpfs_source *s = calloc(1, sizeof(*s));
	if (!s)
		return tpfs_error(e, -ENOMEM, "out of memory");
	s->fd = -1;
	s->rel = strdup(rel);
	s->display = strdup(display);
	s->path = strdup(path);
	int rc;
	struct stat st;
	if (!s->rel || !s->display || !s->path) {
		rc = tpfs_error(e, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = open_regular(dirfd, name, &st);
	if (rc < 0) {
		rc = rc == -EINVAL ? tpfs_error(e, rc, "%s: no longer a regular file", display)
				   : tpfs_error(e, rc, "%s: cannot open: %s", display,
						strerror(-rc));
		goto fail;
	}
	s->fd = rc;
	s->size = (uint64_t)st.st_size;
	s->own = tpfs_perm_from_stat(&st, s->fd, NULL);
	s->perm = tpfs_perm_served(s->own, false);
	s->chain = tpfs_perm_chain_above_fd(ctx, s->fd);
	if (!s->chain) {
		rc = tpfs_source_chain_error(e, display, errno);
		goto fail;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->mtime = st.st_mtim;
	if (safetensors) {
		rc = tpfs_st_read(s->fd, display, s->size, &s->st, e);
		if (rc < 0)
			goto fail;
	} else if (s->size) {
		void *p = mmap(NULL, s->size, PROT_READ, MAP_SHARED, s->fd, 0);
		if (p == MAP_FAILED) {
			rc = tpfs_error(e, -errno, "%s: cannot map: %s", display,
				       strerror(errno));
			goto fail;
		}
		s->map = p;
	}
	if (!safetensors) {
		close(s->fd);
		s->fd = -1;
	}
	*out = s;
	return 0;
fail:
	tpfs_source_close(s);
	return rc;
}

int tpfs_source_chain_error(struct tpfs_error *e, const char *display, int err)
{
	if (err == EAGAIN)
		return tpfs_error(e, -err, "%s: it or a folder above it was moved while the "
				  "model loaded; try again", display);
	return tpfs_error(e, -err, "%s: cannot examine the folders above it: %s", display,
			  strerror(err));
}

void tpfs_source_close(struct tpfs_source *s)
{
	if (!s)
		return;
	if (s->map)
		munmap((void *)s->map, s->size);
	if (s->fd >= 0)
		close(s->fd);
	tpfs_st_free(s->st);
	free(s->rel);
	free(s->display);
	free(s->path);
	free(s);
}

/* Mark s stale, logging why once. */
static int went_stale(struct tpfs_source *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int went_stale(struct tpfs_source *s, const char *fmt, ...)
{
	if (!atomic_exchange(&s->stale, true)) {
		char why[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		tpfs_log(LOG_ERR, "%s %s; its files now fail with EIO (remount to serve it "
			 "again)", s->display, why);
	}
	return -EIO;
}

/* A fault says only that a mapped page could not be brought in: the file
 * shrank, or the filesystem under it failed (a disk error, a network mount
 * whose server or connection is gone). It is not examined here to tell
 * which: on a failing filesystem that could wait as long as the read did,
 * with the reader's reply still to send. */
void tpfs_source_faulted(struct tpfs_source *s)
{
	went_stale(s, "could not be read (it shrank, or the filesystem it is on failed)");
}

int tpfs_source_check(struct tpfs_source *s)
{
	if (atomic_load_explicit(&s->stale, memory_order_relaxed))
		return -EIO;
	struct stat st;
	if ((s->fd >= 0 ? fstat(s->fd, &st) : stat(s->path, &st)) < 0)
		return went_stale(s, "can no longer be examined (%s)", strerror(errno));
	if (st.st_nlink == 0 || (uint64_t)st.st_ino != s->ino ||
	    (uint64_t)st.st_dev != s->dev)
		return went_stale(s, "was deleted or replaced while mounted");
	if ((uint64_t)st.st_size != s->size || st.st_mtim.tv_sec != s->mtime.tv_sec ||
	    st.st_mtim.tv_nsec != s->mtime.tv_nsec)
		return went_stale(s, "changed while mounted (size %" PRIu64 " -> %lld)",
				  s->size, (long long)st.st_size);
	if ((uint32_t)st.st_uid != s->own.uid || (uint32_t)st.st_gid != s->own.gid ||
	    (st.st_mode & 0777) != s->own.mode)
		return went_stale(s, "changed owner, group or mode while mounted");
	return 0;
}

/* Whether s, or a folder above it, is seen to let fewer users through
 * than when it was loaded: 0 no, 1 yes (another owner, group, mode or
 * ACL), or a negative errno when it cannot be examined (gone, or on a
 * failing filesystem). */
static int perms_changed(struct tpfs_source *s)
{
	struct stat st;
	if ((s->fd >= 0 ? fstat(s->fd, &st) : stat(s->path, &st)) < 0)
		return -errno;
	struct tpfs_perm now = tpfs_perm_from_stat(&st, s->fd, s->path);
	if (now.uid != s->own.uid || now.gid != s->own.gid || now.mode != s->own.mode ||
	    now.acl != s->own.acl)
		return 1;
	return tpfs_perm_chain_check(s->chain);
}

int tpfs_source_check_access(struct tpfs_source *s)
{
	int rc = tpfs_source_check(s);
	if (rc < 0)
		return rc;
	rc = perms_changed(s);
	if (rc < 0)
		return went_stale(s, "or a folder above it can no longer be examined (%s)",
				  strerror(-rc));
	if (rc > 0)
		return went_stale(s, "or a folder above it changed owner, group, mode or ACL "
				  "while mounted");
	return 0;
}

int tpfs_source_check_perms(struct tpfs_source *s)
{
	if (perms_changed(s) <= 0)
		return 0;
	went_stale(s, "or a folder above it changed owner, group, mode or ACL while "
		   "mounted");
	return -EIO;
}
