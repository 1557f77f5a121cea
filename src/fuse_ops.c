/*
 * FUSE low-level operations over the virtual tree.
 *
 * The tree is immutable while mounted, so entries and attributes are cached
 * by the kernel for a day and file pages are kept across opens
 * (keep_cache). Reads reply with the spans of tpfs_file_spans as an iovec:
 * data served as stored goes from the source mapping to the kernel with no
 * copy in this process. Only .tpfs/stats changes; it is opened with
 * direct_io and served from a snapshot taken at open.
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

#define TIMEOUT (24.0 * 3600)

struct snapshot {
	char *data;
	size_t len;
};

static struct tpfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Inode -> node index. For an inode this mount never handed out, or a
 * non-directory where want_dir, replies with the error and returns -1. */
static long node_of(fuse_req_t req, struct tpfs_fs *fs, fuse_ino_t ino,
		    bool want_dir)
{
	if (ino < 1 || ino > fs->model->tree.nnodes) {
		fuse_reply_err(req, ESTALE);
		return -1;
	}
	if (want_dir && fs->model->tree.nodes[ino - 1].kind != TPFS_NODE_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return -1;
	}
	return (long)ino - 1;
}

static void fill_attr(struct tpfs_fs *fs, uint32_t idx, struct stat *st)
{
	const struct tpfs_node *n = &fs->model->tree.nodes[idx];
	memset(st, 0, sizeof(*st));
	st->st_ino = idx + 1;
	st->st_uid = getuid();
	st->st_gid = getgid();
	if (n->kind == TPFS_NODE_DIR) {
		st->st_mode = S_IFDIR | n->perm;
		st->st_nlink = 2 + n->nsubdirs;
	} else {
		st->st_mode = S_IFREG | n->perm;
		st->st_nlink = 1;
	}
	if (n->kind == TPFS_NODE_STATS) {
		size_t len = 0;
		free(tpfs_fs_stats_json(fs, &len));
		st->st_size = (off_t)len;
	} else {
		st->st_size = (off_t)tpfs_node_size(fs, idx);
	}
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_blksize = TPFS_IO_SIZE;
	st->st_atim = st->st_mtim = st->st_ctim = n->mtime;
}

static double attr_timeout(const struct tpfs_fs *fs, uint32_t idx)
{
	return fs->model->tree.nodes[idx].kind == TPFS_NODE_STATS ? 0 : TIMEOUT;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Large sequential reads: the kernel may read ahead up to 1 MiB. */
	conn->max_readahead = TPFS_IO_SIZE;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* The source never changes while mounted: no need to revalidate pages. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->time_gran = 1;
	tpfs_log(LOG_DEBUG, "init: max_readahead %u, max_read %u, max_write %u",
		 conn->max_readahead, conn->max_read, conn->max_write);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tpfs_fs *fs = fs_of(req);
	long p = node_of(req, fs, parent, true);
	if (p < 0)
		return;
	long idx = tpfs_tree_lookup(&fs->model->tree, (uint32_t)p, name);
	if (idx < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = (fuse_ino_t)idx + 1;
	e.generation = 1;
	e.entry_timeout = TIMEOUT;
	e.attr_timeout = attr_timeout(fs, (uint32_t)idx);
	fill_attr(fs, (uint32_t)idx, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct tpfs_fs *fs = fs_of(req);
	long idx = node_of(req, fs, ino, false);
	if (idx < 0)
		return;
	struct stat st;
	fill_attr(fs, (uint32_t)idx, &st);
	fuse_reply_attr(req, &st, attr_timeout(fs, (uint32_t)idx));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tpfs_fs *fs = fs_of(req);
	long idx = node_of(req, fs, ino, false);
	if (idx < 0)
		return;
	const struct tpfs_node *n = &fs->model->tree.nodes[idx];
	if (n->kind == TPFS_NODE_DIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (n->kind == TPFS_NODE_STATS) {
		struct snapshot *s = calloc(1, sizeof(*s));
		if (s)
			s->data = tpfs_fs_stats_json(fs, &s->len);
		if (!s || !s->data) {
			free(s);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fi->fh = (uint64_t)(uintptr_t)s;
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
static void reply_err(fuse_req_t req, struct tpfs_fs *fs, int err)
{
	tpfs_fs_count_read(fs, -err);
	fuse_reply_err(req, err);
}

static void reply_copy(fuse_req_t req, struct tpfs_fs *fs, uint32_t idx,
		       size_t size, off_t off)
{
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		reply_err(req, fs, ENOMEM);
		return;
	}
	ssize_t got = tpfs_file_read(fs, idx, (uint64_t)off, size, buf);
	if (got < 0) {
		reply_err(req, fs, (int)-got);
	} else {
		tpfs_fs_count_read(fs, got);
		fuse_reply_buf(req, buf, (size_t)got);
	}
	free(buf);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct tpfs_fs *fs = fs_of(req);
	long idx = node_of(req, fs, ino, false);
	if (idx < 0)
		return;
	struct snapshot *snap = (struct snapshot *)(uintptr_t)fi->fh;
	if (snap) {
		/* Reply from a copy: the reader may release the snapshot as soon
		 * as the kernel has the bytes, before this thread is back from
		 * writev (a race only a sanitizer sees, but it does). */
		size_t at = (uint64_t)off < snap->len ? (size_t)off : snap->len;
		size_t n = snap->len - at < size ? snap->len - at : size;
		char *copy = malloc(n ? n : 1);
		if (copy) {
			memcpy(copy, snap->data + at, n);
			fuse_reply_buf(req, copy, n);
		} else {
			fuse_reply_err(req, ENOMEM);
		}
		free(copy);
		return;
	}
	struct tpfs_spans sp;
	ssize_t got = tpfs_file_spans(fs, (uint32_t)idx, (uint64_t)off, size, &sp);
	if (got >= 0 && !sp.partial) {
		/* Reply with the spans themselves: no copy here */
		struct iovec iov[TPFS_MAX_SPANS];
		for (size_t i = 0; i < sp.n; i++)
			iov[i] = (struct iovec){(void *)sp.v[i].ptr, sp.v[i].len};
		tpfs_fs_count_read(fs, got);
		int rc = fuse_reply_iov(req, iov, (int)sp.n);
		if (rc == -EFAULT) {
			/* A source page vanished under the kernel's copy (after
			 * tpfs_file_spans made it present): it failed the reader's
			 * request with EIO. */
			tpfs_fs_count_error(fs);
			tpfs_file_faulted(fs, (uint32_t)idx);
		} else if (rc < 0 && rc != -ENOENT) {
			tpfs_fs_count_error(fs);
			tpfs_log(LOG_ERR, "read of %s at %lld failed: %s",
				 fs->model->tree.nodes[idx].name, (long long)off,
				 strerror(-rc));
		}
		tpfs_spans_release(fs, &sp);
		return;
	}
	tpfs_spans_release(fs, &sp);
	if (got < 0)
		reply_err(req, fs, (int)-got);
	else
		reply_copy(req, fs, (uint32_t)idx, size, off); /* ran out of spans */
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tpfs_fs *fs = fs_of(req);
	if (node_of(req, fs, ino, true) < 0)
		return;
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* Offsets: 0 is ".", 1 is "..", 2 + i is the i-th child by name. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       bool plus)
{
	struct tpfs_fs *fs = fs_of(req);
	long idx = node_of(req, fs, ino, true);
	if (idx < 0)
		return;
	const struct tpfs_tree *t = &fs->model->tree;
	const struct tpfs_node *dir = &t->nodes[idx];
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	for (off_t k = off; k < (off_t)dir->nchild + 2; k++) {
		uint32_t child = k == 0 ? (uint32_t)idx
				 : k == 1 ? dir->parent
					  : t->children[dir->child0 + (k - 2)];
		const char *name = k == 0 ? "." : k == 1 ? ".." : t->nodes[child].name;
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		fill_attr(fs, child, &e.attr);
		size_t n;
		if (plus) {
			/* The kernel takes no reference on "." and ".." entries. */
			e.ino = k < 2 ? 0 : (fuse_ino_t)child + 1;
			e.generation = 1;
			e.entry_timeout = TIMEOUT;
			e.attr_timeout = attr_timeout(fs, child);
			n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
						   k + 1);
		} else {
			n = fuse_add_direntry(req, buf + used, size - used, name, &e.attr,
					      k + 1);
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

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct tpfs_fs *fs = fs_of(req);
	uint64_t bytes = 0;
	for (size_t i = 0; i < fs->model->tree.nnodes; i++)
		bytes += tpfs_node_size(fs, (uint32_t)i);
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = (bytes + 4095) / 4096;
	sv.f_files = fs->model->tree.nnodes;
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
