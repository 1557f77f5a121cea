/*
 * FUSE low-level operations over the virtual tree.
 *
 * The tree is immutable while mounted, so entries and attributes are cached
 * by the kernel for a day and file pages are kept across opens
 * (keep_cache). Reads reply with the spans of tpfs_file_spans as an iovec:
 * cache blocks, bytes read from a source into the read's buffer, a
 * passed-through file's mapping, with no further copy in this process.
 * Only .tpfs/stats changes; it is opened with direct_io and served from a
 * snapshot taken at open. With -o direct_io, tensor files are opened with
 * direct_io too and keep nothing in the page cache.
 */
#include "fuse_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tpfs/file.h"
#include "tpfs/log.h"
#include "tpfs/perm.h"

#define TIMEOUT (24.0 * 3600)

struct snapshot {
	char *data;
	size_t len;
};

static struct tpfs_view *view_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Inode -> entry id. For an inode this mount never handed out, or a
 * non-directory where want_dir, replies with the error and returns -1. */
static long id_of(fuse_req_t req, struct tpfs_view *v, fuse_ino_t ino, bool want_dir)
{
	if (ino < 1 || !tpfs_view_valid(v, ino - 1)) {
		fuse_reply_err(req, ESTALE);
		return -1;
	}
	struct tpfs_view_attr a;
	if (want_dir && (tpfs_view_stat(v, (uint32_t)(ino - 1), &a) < 0 ||
			 a.kind != TPFS_NODE_DIR)) {
		fuse_reply_err(req, ENOTDIR);
		return -1;
	}
	return (long)ino - 1;
}

/* st for entry id; its kind in *kind. Returns 0 or a negative errno. */
static int fill_attr(struct tpfs_view *v, uint32_t id, struct stat *st,
		     enum tpfs_node_kind *kind)
{
	struct tpfs_view_attr a;
	int rc = tpfs_view_stat(v, id, &a);
	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)tpfs_view_ino(v, id);
	st->st_uid = a.uid;
	st->st_gid = a.gid;
	st->st_mode = (a.kind == TPFS_NODE_DIR ? S_IFDIR : S_IFREG) | a.mode;
	st->st_nlink = a.nlink;
	st->st_size = (off_t)a.size;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_blksize = TPFS_IO_SIZE;
	st->st_atim = st->st_mtim = st->st_ctim = a.mtime;
	*kind = a.kind;
	return rc;
}

/* Attributes are cached for a day: only .tpfs/stats changes. */
static double attr_timeout(enum tpfs_node_kind kind)
{
	return kind == TPFS_NODE_STATS ? 0 : TIMEOUT;
}

static void entry_param(struct tpfs_view *v, uint32_t id, struct fuse_entry_param *e)
{
	enum tpfs_node_kind kind;
	memset(e, 0, sizeof(*e));
	fill_attr(v, id, &e->attr, &kind);
	e->ino = (fuse_ino_t)id + 1;
	e->generation = 1;
	e->entry_timeout = TIMEOUT;
	e->attr_timeout = attr_timeout(kind);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	tpfs_fuse_tune(conn);
	tpfs_log(LOG_DEBUG, "init: max_readahead %u, max_read %u, max_background %u",
		 conn->max_readahead, conn->max_read, conn->max_background);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tpfs_view *v = view_of(req);
	long p = id_of(req, v, parent, true);
	if (p < 0)
		return;
	long id = tpfs_view_lookup(v, (uint32_t)p, name);
	if (id < 0) {
		fuse_reply_err(req, (int)-id);
		return;
	}
	struct fuse_entry_param e;
	entry_param(v, (uint32_t)id, &e);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct tpfs_view *v = view_of(req);
	long id = id_of(req, v, ino, false);
	if (id < 0)
		return;
	struct stat st;
	enum tpfs_node_kind kind;
	int rc = fill_attr(v, (uint32_t)id, &st, &kind);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, attr_timeout(kind));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tpfs_view *v = view_of(req);
	long id = id_of(req, v, ino, false);
	if (id < 0)
		return;
	struct tpfs_view_attr a;
	int rc = tpfs_view_stat(v, (uint32_t)id, &a);
	if (rc == 0 && a.kind == TPFS_NODE_DIR)
		rc = -EISDIR;
	else if (rc == 0 && ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)))
		rc = -EROFS;
	/* The kernel has checked the served bits; the sources must still be
	 * as they were (the kernel's page cache would serve them otherwise). */
	if (rc == 0)
		rc = tpfs_file_open_check(v, (uint32_t)id);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (a.kind == TPFS_NODE_STATS) {
		struct snapshot *s = calloc(1, sizeof(*s));
		if (s)
			s->data = tpfs_view_stats_json(v, &s->len);
		if (!s || !s->data) {
			free(s);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fi->fh = (uint64_t)(uintptr_t)s;
		fi->direct_io = 1;
	} else if (tpfs_view_size_hidden(v, (uint32_t)id)) {
		fi->direct_io = 1; /* read past the size of 0 it shows */
	} else if (a.kind == TPFS_NODE_TENSOR && v->model->opt.direct_io) {
		/* -o direct_io: the reply lands in the reader's buffer, with no
		 * page-cache pages to allocate; the kernel refuses shared
		 * mappings (libfuse 3.14 cannot ask for FUSE_DIRECT_IO_ALLOW_MMAP) */
		fi->direct_io = 1;
	} else {
		fi->keep_cache = 1;
	}
	fuse_reply_open(req, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct snapshot *s = (struct snapshot *)(uintptr_t)fi->fh;
	if (s) {
		free(s->data);
		free(s);
	}
	fuse_reply_err(req, 0);
}

/* Counters move before each reply, so that a reader who looks at
 * .tpfs/stats after its read returned sees it counted. */
static void reply_err(fuse_req_t req, struct tpfs_view *v, int err)
{
	tpfs_view_count_read(v, -err);
	fuse_reply_err(req, err);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct tpfs_view *v = view_of(req);
	long idx = id_of(req, v, ino, false);
	if (idx < 0)
		return;
	/* What the read takes from a source (tensor data as stored) is read
	 * into buf; everything else is replied from where it lies. */
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		reply_err(req, v, ENOMEM);
		return;
	}
	struct snapshot *snap = (struct snapshot *)(uintptr_t)fi->fh;
	if (snap) {
		/* Reply from a copy: the reader may release the snapshot as soon
		 * as the kernel has the bytes, before this thread is back from
		 * writev (a race only a sanitizer sees, but it does). */
		size_t at = (uint64_t)off < snap->len ? (size_t)off : snap->len;
		size_t n = snap->len - at < size ? snap->len - at : size;
		memcpy(buf, snap->data + at, n);
		fuse_reply_buf(req, buf, n);
		free(buf);
		return;
	}
	struct tpfs_file_spans sp;
	ssize_t got = tpfs_file_spans_get(v, (uint32_t)idx, (uint64_t)off, size, buf, &sp);
	if (got >= 0 && !sp.partial) {
		/* Reply with the spans themselves: no copy here */
		struct iovec iov[TPFS_FILE_MAX_SPANS];
		for (size_t i = 0; i < sp.n; i++)
			iov[i] = (struct iovec){(void *)sp.v[i].ptr, sp.v[i].len};
		tpfs_view_count_read(v, got);
		int rc = fuse_reply_iov(req, iov, (int)sp.n);
		if (rc == -EFAULT) {
			/* A page of a passed-through file's mapping vanished
			 * under the kernel's copy (after tpfs_file_spans_get made
			 * it present): it failed the reader's request with EIO. */
			tpfs_view_count_error(v);
			tpfs_file_faulted(v, (uint32_t)idx);
		} else if (rc < 0 && rc != -ENOENT) {
			tpfs_view_count_error(v);
			tpfs_log(LOG_ERR, "read of inode %lu at %lld failed: %s",
				 (unsigned long)ino, (long long)off, strerror(-rc));
		}
		tpfs_file_spans_put(v, &sp);
		free(buf);
		return;
	}
	tpfs_file_spans_put(v, &sp);
	if (got >= 0) /* ran out of spans: reply with a copy */
		got = tpfs_file_read(v, (uint32_t)idx, (uint64_t)off, size, buf);
	if (got < 0) {
		reply_err(req, v, (int)-got);
	} else {
		tpfs_view_count_read(v, got);
		fuse_reply_buf(req, buf, (size_t)got);
	}
	free(buf);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tpfs_view *v = view_of(req);
	if (id_of(req, v, ino, true) < 0)
		return;
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* Offsets: 0 is ".", 1 is "..", 2 + k is the entry at position k. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       bool plus)
{
	struct tpfs_view *v = view_of(req);
	long id = id_of(req, v, ino, true);
	if (id < 0)
		return;
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	for (uint64_t k = (uint64_t)off;; k++) {
		uint32_t child = (uint32_t)id;
		const char *name = k == 0 ? "." : "..";
		char made[256];
		if (k >= 2) {
			uint64_t at = k - 2;
			if (tpfs_view_entry_at(v, (uint32_t)id, &at, &child, &name, made) < 0)
				break;
			k = at + 2;
		}
		struct fuse_entry_param e;
		entry_param(v, child, &e);
		size_t n;
		if (plus) {
			/* The kernel takes no reference on "." and ".." entries. */
			if (k < 2)
				e.ino = 0;
			n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
						   (off_t)k + 1);
		} else {
			n = fuse_add_direntry(req, buf + used, size - used, name, &e.attr,
					      (off_t)k + 1);
		}
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, true);
}

/* Whether the caller may read .tpfs/stats: statfs needs no permission
 * on the mount, but its totals tell how many entries and bytes the whole
 * mount holds, as the counters tell what was read anywhere in it. Groups
 * that cannot be read count as a refusal. */
static bool may_read_stats(fuse_req_t req, struct tpfs_view *v)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[256];
	uint32_t ids[256];
	int n = ctx->uid ? fuse_req_getgroups(req, 256, groups) : 0;
	if (n < 0 || n > 256)
		return false;
	for (int i = 0; i < n; i++)
		ids[i] = (uint32_t)groups[i];
	return tpfs_perm_lets(tpfs_tree_perm(&v->model->tree, v->model->stats),
			      (uint32_t)ctx->uid, (uint32_t)ctx->gid, ids, (size_t)n,
			      TPFS_PERM_READ);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct tpfs_view *v = view_of(req);
	uint64_t bytes = 0, entries = 0;
	if (may_read_stats(req, v))
		tpfs_view_totals(v, &bytes, &entries);
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	/* Read as a read-only filesystem that is not full: its size is what
	 * it serves, none of it counted as used and none free to write (df:
	 * Used 0, Avail 0, Use% "-"), likewise its entries. */
	sv.f_blocks = (bytes + 4095) / 4096;
	sv.f_bfree = sv.f_blocks;
	sv.f_files = entries;
	sv.f_ffree = entries;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* Everything that would change the tree. */
static void refuse(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	refuse(req);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	refuse(req);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	refuse(req);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	refuse(req);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link, (void)parent, (void)name;
	refuse(req);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	refuse(req);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	refuse(req);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)size, (void)off, (void)fi;
	refuse(req);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	refuse(req);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	refuse(req);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	refuse(req);
}

const struct fuse_lowlevel_ops tpfs_fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.create = op_create,
};
