/*
 * bench-null-fuse: a FUSE file system that does no work, to measure what
 * FUSE itself costs a reader on this machine. It serves one file, null.npy,
 * a float32 .npy of SIZE MiB of data whose reads are answered from a buffer
 * of that size made at start (no lookup, no copy, no conversion in the
 * server; the bytes come from memory, as a page cache's would),
 * with the connection settings tpfs uses (tpfs_fuse_tune). Whatever
 * tools/bench-read.py measures through it is the most any FUSE server can
 * give here; tpfs's figures are read against it. Asserts nothing.
 *
 *   bench-null-fuse MNT SIZE_MIB      (runs in the foreground until unmounted)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../src/fuse_ops.h" /* tpfs_fuse_tune, TPFS_IO_SIZE */
#include "tpfs/npy.h"

#define HEADER 128

static const char NAME[] = "null.npy";
static uint8_t header[HEADER];
static char *served; /* the data bytes, touched at start */
static uint64_t size; /* of the file */

static void file_attr(struct stat *st, fuse_ino_t ino)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = ino == FUSE_ROOT_ID ? S_IFDIR | 0555 : S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = ino == FUSE_ROOT_ID ? 0 : (off_t)size;
	st->st_blksize = TPFS_IO_SIZE;
}

static void op_init(void *data, struct fuse_conn_info *conn)
{
	(void)data;
	tpfs_fuse_tune(conn);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent != FUSE_ROOT_ID || strcmp(name, NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = 2;
	e.attr_timeout = e.entry_timeout = 86400;
	file_attr(&e.attr, 2);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct stat st;
	file_attr(&st, ino);
	fuse_reply_attr(req, &st, 86400);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != 2) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* The bytes [off, off + n) of the file: the header, then zeros. */
static void op_read(fuse_req_t req, fuse_ino_t ino, size_t n, off_t off,
		    struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	uint64_t o = (uint64_t)off;
	if (o >= size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (n > size - o)
		n = (size_t)(size - o);
	struct iovec iov[2];
	int k = 0;
	if (o < HEADER) {
		size_t h = HEADER - o < n ? HEADER - (size_t)o : n;
		iov[k++] = (struct iovec){header + o, h};
		n -= h;
	}
	if (n > 0)
		iov[k++] = (struct iovec){served + (o > HEADER ? o - HEADER : 0), n};
	fuse_reply_iov(req, iov, k);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t n, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	char buf[256];
	struct stat st;
	size_t len = 0;
	if (off == 0) {
		file_attr(&st, 2);
		len = fuse_add_direntry(req, buf, sizeof(buf), NAME, &st, 1);
	}
	fuse_reply_buf(req, buf, len < n ? len : 0);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.open = op_open,
	.read = op_read,
	.readdir = op_readdir,
};

int main(int argc, char **argv)
{
	if (argc != 3 || atoll(argv[2]) <= 0) {
		fprintf(stderr, "usage: bench-null-fuse MNT SIZE_MIB\n");
		return 2;
	}
	size = (uint64_t)atoll(argv[2]) << 20;
	uint64_t shape[1] = {size / 4};
	size += HEADER;
	served = malloc(size - HEADER);
	if (!served || tpfs_npy_header("<f4", shape, 1, header, HEADER) != HEADER) {
		fprintf(stderr, "bench-null-fuse: out of memory\n");
		return 1;
	}
	memset(served, 0, size - HEADER); /* touched: no first-touch faults in reads */
	char *fargv[] = {argv[0], "-o", "ro,fsname=null,subtype=null", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	int rc = 1;
	if (se && fuse_session_mount(se, argv[1]) == 0) {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		rc = cfg && fuse_session_loop_mt(se, cfg) == 0 ? 0 : 1;
		fuse_loop_cfg_destroy(cfg);
		fuse_session_unmount(se);
	}
	if (se)
		fuse_session_destroy(se);
	free(served);
	return rc;
}
