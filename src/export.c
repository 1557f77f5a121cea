/*
 * tpfs convert: the tree a mount shows, written to a folder, for hosts
 * without FUSE.
 *
 * OUT/.tpfs-convert, the journal, makes a run safe to cut at any point. Its
 * first line is "tpfs-convert 2"; each further line is
 *
 *     FINGERPRINT WHAT SIZE PATH
 *
 * WHAT is the XXH3-64 (16 hex digits) of a file written, "tmp" for a file
 * about to be written under its temporary name, or "dir" for a folder about
 * to be created; PATH is relative to OUT, with the bytes up to ' ', '%' and
 * DEL written %XX, and plain (no part empty, "." or ".."; a journal with
 * another path is refused, as it could lead out of OUT). A line is appended before what it announces appears (a
 * file's hash before the rename that names the file), so every path convert
 * ever created under OUT is in the journal, and only those are ever removed.
 * A run
 *   1. reads the journal, rewrites it compacted (a temporary file renamed
 *      over it), and removes manifest.json, which says the output is whole;
 *   2. creates the plan's folders and writes its files, keeping each file
 *      whose latest record has this run's fingerprint and whose bytes still
 *      hash as recorded;
 *   3. once every file is in place: removes temporary files, the files
 *      earlier runs wrote that this plan lacks (when they still hash as one
 *      of their records) and then their folders if empty; rewrites the
 *      journal with this run's files and folders only; and writes
 *      manifest.json, last.
 */
#include "tool.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "tpfs/buf.h"
#include "tpfs/size.h"
#include "tpfs/path.h"
#include "tpfs/perm.h"

#define JOURNAL ".tpfs-convert"
#define JOURNAL_HEAD "tpfs-convert 2"
#define PARTIAL ".tpfs-partial"
#define MANIFEST "manifest.json"
#define MIB (1024.0 * 1024)

/* The signal (SIGINT or SIGTERM) that asked a run to stop, or 0: workers
 * take no new file once it is set, and drop the one they are writing. */
static atomic_int stop_signal;

static void on_stop(int sig)
{
	atomic_store(&stop_signal, sig);
}

/* From now on SIGINT and SIGTERM stop the run cleanly; a second one has its
 * default effect, at once (the journal makes that safe too). */
static void catch_stop(void)
{
	struct sigaction sa = {.sa_handler = on_stop, .sa_flags = SA_RESTART | SA_RESETHAND};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

struct job {
	uint32_t node;
	char *rel;          /* path under OUT */
	mode_t mode;        /* what it is written with (see out_perm) */
	uint64_t size;
	char hash[17];      /* XXH3-64 of the bytes written, hex */
	enum { TODO, SKIPPED, WRITTEN, FAILED } state;
};

enum rec_kind { REC_FILE, REC_TMP, REC_DIR };

struct record {
	char *rel;
	enum rec_kind kind;
	char fp[17];        /* the fingerprint of the run that wrote the line */
	char hash[17];      /* REC_FILE */
	uint64_t size;      /* REC_FILE */
	size_t line;        /* order in the journal: a later line wins */
};

struct convert {
	struct tpfs_view *view;
	const char *out;
	char fp[17];                  /* this run's fingerprint */
	size_t unit;                  /* bytes read at once */
	struct job *jobs;
	size_t njobs;
	char **dirs;                  /* the plan's folders, sorted: parents first */
	bool *dir_recorded;           /* in the journal (earlier, or created now) */
	mode_t *dir_modes;
	size_t ndirs;
	mode_t out_mode;              /* OUT itself, when this run makes it */
	mode_t list_mode;             /* the journal and manifest.json (every name) */
	mode_t umask;
	atomic_size_t next;           /* the next job to take */
	atomic_size_t done;
	atomic_size_t running;        /* workers not yet finished */
	atomic_uint_fast64_t bytes;   /* bytes written or verified so far */
	uint64_t total;
	struct record *records;       /* earlier runs', by path, then line */
	size_t nrecords;
	FILE *journal;
	pthread_mutex_t journal_lock;
	int lock_fd;                  /* OUT, locked for this run */
	struct timespec t0;           /* when writing began */
	bool tty;
	int progress_len;             /* of the longest progress line shown */
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* mode, without the group bits when the file's group is not the one the
 * mode was planned for (a set-group-ID folder gives its own). */
static mode_t for_group(mode_t mode, gid_t gid)
{
	return gid == getegid() ? mode : mode & ~(mode_t)070;
}

/* Give the file or folder open as fd its planned mode, and no ACL: one
 * inherited from a default ACL above, or given since, lets in users its
 * mode does not (the group bits are then only its mask), and a folder's
 * default ACL gives one to what is made in it. */
static int set_mode(int fd, mode_t mode)
{
	struct stat st;
	int rc = tpfs_path_drop_acl(fd);
	if (rc < 0)
		return rc;
	if (fstat(fd, &st) < 0)
		return -errno;
	mode = for_group(mode, st.st_gid);
	if ((st.st_mode & 07777) == mode)
		return 0;
	return fchmod(fd, mode) < 0 ? -errno : 0;
}

static int cmp_records(const void *a, const void *b)
{
	const struct record *x = a, *y = b;
	int c = strcmp(x->rel, y->rel);
	return c ? c : x->line < y->line ? -1 : x->line > y->line;
}

static int cmp_jobs_by_path(const void *a, const void *b)
{
	return strcmp(((const struct job *)a)->rel, ((const struct job *)b)->rel);
}

static int cmp_jobs_by_size(const void *a, const void *b)
{
	const struct job *x = a, *y = b;
	return x->size < y->size ? 1 : x->size > y->size ? -1 : strcmp(x->rel, y->rel);
}

static void hash_hex(XXH64_hash_t h, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* The XXH3-64 of the file open as fd, which must be size bytes long.
 * Returns 0, or -1 when it is not, cannot be read, or memory is short. */
static int hash_fd(int fd, uint64_t size, unsigned char *buf, size_t unit, char out[17])
{
	struct stat st;
	XXH3_state_t *h = NULL;
	bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		  (uint64_t)st.st_size == size && (h = XXH3_createState()) != NULL;
	if (ok)
		XXH3_64bits_reset(h);
	for (uint64_t at = 0; ok && at < size;) {
		ssize_t got = pread(fd, buf, unit, (off_t)at);
		ok = got > 0 && !atomic_load(&stop_signal);
		if (ok) {
			XXH3_64bits_update(h, buf, (size_t)got);
			at += (uint64_t)got;
		}
	}
	if (ok)
		hash_hex(XXH3_64bits_digest(h), out);
	XXH3_freeState(h);
	return ok ? 0 : -1;
}

/* ---- files under OUT ------------------------------------------------------ */

/*
 * convert is often run by root, into an OUT that others may reach. Whoever
 * could change a folder convert writes in could put a link there and send
 * convert's writes, renames, mode changes or removals anywhere, so OUT and
 * every folder below it that convert uses must be the caller's alone:
 * owned by them and writable by no one else (own_dir). OUT itself is
 * opened from the folder above it without following a link (whoever may
 * change that folder could otherwise point OUT at a folder of root's), and
 * everything under OUT is reached from OUT's folder held open (lock_fd),
 * one folder at a time and never through a symbolic link; a temporary
 * file is made new (O_EXCL | O_NOFOLLOW) once whatever had its name is
 * removed (a link itself, never what it points to).
 */

/* Whether rel is a plain path below a folder: not empty, not absolute, and
 * no part of it empty, "." or "..". */
static bool plain_path(const char *rel)
{
	for (const char *s = rel;; s++) {
		size_t n = strcspn(s, "/");
		if (n == 0 || (s[0] == '.' && (n == 1 || (n == 2 && s[1] == '.'))))
			return false;
		s += n;
		if (!*s)
			return true;
	}
}

/* A folder refused, its reason said (refuse_dir). */
#define REFUSED (-4096)

/* Say why the folder named by rel's first len bytes is refused. */
static int refuse_dir(const struct convert *c, const char *rel, size_t len, const char *why)
{
	tpfs_tool_say(stderr, "tpfs convert: %s%s%.*s: %s: OUT and the folders in it must be "
		      "owned by the user running convert and not writable by group or "
		      "others, and none may be a symbolic link",
		      c->out, len ? "/" : "", (int)len, rel, why);
	return REFUSED;
}

/* 0 when the folder open as fd (rel's first len bytes name it) is the
 * caller's alone, else REFUSED or a negative errno. */
static int own_dir(const struct convert *c, int fd, const char *rel, size_t len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid != geteuid())
		return refuse_dir(c, rel, len, "owned by another user");
	if (st.st_mode & 022) /* with an ACL, the group bits are its mask */
		return refuse_dir(c, rel, len,
				  tpfs_perm_from_stat(&st, fd, NULL).acl
					  ? "writable by group or others, or by users or groups "
					    "its ACL names"
					  : "writable by group or others");
	return 0;
}

/* Folder name of the folder dfd, opened without following a link; rel's
 * first len bytes name it under OUT. Returns its fd or a negative errno
 * (-ENOENT when there is none, REFUSED when something else has the name or
 * the folder is not the caller's alone). */
static int open_dir(const struct convert *c, int dfd, const char *name, const char *rel,
		    size_t len)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
		struct stat st;
		bool link = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode);
		return refuse_dir(c, rel, len, link ? "a symbolic link" : "not a folder");
	}
	if (fd < 0)
		return -errno;
	int rc = own_dir(c, fd, rel, len);
	if (rc < 0)
		close(fd);
	return rc < 0 ? rc : fd;
}

static void put_dir(const struct convert *c, int fd)
{
	if (fd >= 0 && fd != c->lock_fd)
		close(fd);
}

/* The folder under OUT that holds rel (a plain path), opened folder by
 * folder from OUT (open_dir); *name is rel's last part. Returns its fd, to
 * give back with put_dir, or a negative errno. */
static int dir_of(const struct convert *c, const char *rel, const char **name)
{
	int fd = plain_path(rel) ? c->lock_fd : -EINVAL;
	const char *s = rel;
	for (const char *slash; fd >= 0 && (slash = strchr(s, '/')) != NULL; s = slash + 1) {
		char part[NAME_MAX + 1];
		size_t n = (size_t)(slash - s);
		int next = n < sizeof(part) ? 0 : -ENAMETOOLONG;
		if (next == 0) {
			memcpy(part, s, n);
			part[n] = '\0';
			next = open_dir(c, fd, part, rel, (size_t)(slash - rel));
		}
		put_dir(c, fd);
		fd = next;
	}
	*name = s;
	return fd;
}

/* A file of folder dfd opened to read: never through a link, and without
 * waiting on a FIFO that has its name. */
static int open_read(int dfd, const char *name)
{
	return openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
}

#define TMP_NAME_SIZE (NAME_MAX + sizeof(PARTIAL))

/* name's temporary name, in buf (TMP_NAME_SIZE bytes); NULL when too long. */
static const char *tmp_name(char *buf, const char *name)
{
	int n = snprintf(buf, TMP_NAME_SIZE, "%s" PARTIAL, name);
	return n >= 0 && (size_t)n < TMP_NAME_SIZE ? buf : NULL;
}

/* Remove name's temporary file from folder dfd, if there. */
static int unlink_tmp(int dfd, const char *name)
{
	char buf[TMP_NAME_SIZE];
	const char *tmp = tmp_name(buf, name);
	if (!tmp)
		return -ENAMETOOLONG;
	return unlinkat(dfd, tmp, 0) < 0 && errno != ENOENT ? -errno : 0;
}

/* Make name's temporary file in folder dfd afresh, with mode. Returns its
 * fd (open to write) or a negative errno. */
static int create_tmp(int dfd, const char *name, mode_t mode)
{
	char buf[TMP_NAME_SIZE];
	const char *tmp = tmp_name(buf, name);
	int rc = unlink_tmp(dfd, name);
	int fd = rc == 0 ? openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				  0600)
			 : -1;
	if (rc == 0 && fd < 0)
		rc = -errno;
	if (rc == 0)
		rc = set_mode(fd, mode);
	if (rc < 0 && fd >= 0) {
		close(fd);
		unlinkat(dfd, tmp, 0);
	}
	return rc < 0 ? rc : fd;
}

/* Give name's temporary file in folder dfd its name. */
static int rename_tmp(int dfd, const char *name)
{
	char buf[TMP_NAME_SIZE];
	const char *tmp = tmp_name(buf, name);
	if (!tmp)
		return -ENAMETOOLONG;
	return renameat(dfd, tmp, dfd, name) < 0 ? -errno : 0;
}

/* ---- the journal ---------------------------------------------------------- */

/* Write one journal line; 0, or -ENOMEM with nothing written. */
static int put_record(FILE *f, const struct record *r)
{
	struct tpfs_buf b = {0};
	tpfs_buf_printf(&b, "%s %s %" PRIu64 " ", r->fp,
			r->kind == REC_FILE ? r->hash : r->kind == REC_TMP ? "tmp" : "dir",
			r->size);
	tpfs_buf_escape(&b, r->rel, "% ");
	tpfs_buf_puts(&b, "\n");
	char *line = tpfs_buf_take(&b, NULL);
	if (line)
		fputs(line, f);
	free(line);
	return line ? 0 : -ENOMEM;
}

/* Undo put_record's escapes in place; false for a malformed or empty path. */
static bool decode_path(char *s)
{
	char *w = s;
	for (const char *r = s; *r; r++) {
		unsigned v = 0;
		if (*r != '%') {
			*w++ = *r;
		} else if (isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2]) &&
			   sscanf(r + 1, "%2x", &v) == 1 && v) {
			*w++ = (char)v;
			r += 2;
		} else {
			return false;
		}
	}
	*w = '\0';
	return w != s;
}

static bool same_record(const struct record *a, const struct record *b)
{
	return a->kind == b->kind && a->size == b->size && strcmp(a->fp, b->fp) == 0 &&
	       strcmp(a->hash, b->hash) == 0;
}

/* Read the journal into c->records, sorted by path and line, a line that
 * repeats a later one left out. Returns 0, or -1 after saying why: a file
 * that is no journal of this format (a path in it that is not plain could
 * lead out of OUT), or memory short. */
static int load_journal(struct convert *c, FILE *j)
{
	char *line = NULL;
	size_t cap = 0, room = 0;
	ssize_t len = getline(&line, &cap, j);
	int rc = len < 0 || strcmp(line, JOURNAL_HEAD "\n") != 0 ? -EINVAL : 0;
	if (rc < 0)
		fprintf(stderr, "tpfs convert: %s/%s: not a journal of this tpfs (its first "
				"line is not \"" JOURNAL_HEAD "\"); choose another folder\n",
			c->out, JOURNAL);
	for (size_t n = 2; rc == 0 && (len = getline(&line, &cap, j)) > 0; n++) {
		struct record r = {.line = n};
		char what[17];
		int at = 0;
		if (line[len - 1] != '\n')
			continue; /* cut short */
		line[len - 1] = '\0';
		if (sscanf(line, "%16s %16s %" SCNu64 " %n", r.fp, what, &r.size, &at) != 3 ||
		    !at || !decode_path(line + at))
			continue;
		if (!plain_path(line + at)) {
			fprintf(stderr, "tpfs convert: %s/%s: line %zu: not a journal of this tpfs "
					"(a path in it is empty, absolute, or has an empty, '.' or "
					"'..' part); choose another folder\n",
				c->out, JOURNAL, n);
			rc = -EINVAL;
			break;
		}
		if (strcmp(what, "tmp") == 0)
			r.kind = REC_TMP;
		else if (strcmp(what, "dir") == 0)
			r.kind = REC_DIR;
		else if (strlen(what) == 16)
			memcpy(r.hash, what, sizeof(r.hash));
		else
			continue;
		if (c->nrecords == room) {
			room = room ? 2 * room : 64;
			struct record *grown = realloc(c->records, room * sizeof(*grown));
			if (!grown) {
				rc = -ENOMEM;
				break;
			}
			c->records = grown;
		}
		if (!(r.rel = strdup(line + at))) {
			rc = -ENOMEM;
			break;
		}
		c->records[c->nrecords++] = r;
	}
	free(line);
	if (rc == -ENOMEM)
		fprintf(stderr, "tpfs convert: out of memory\n");
	if (rc < 0)
		return -1;
	if (c->nrecords)
		qsort(c->records, c->nrecords, sizeof(*c->records), cmp_records);
	size_t kept = 0;
	for (size_t i = 0; i < c->nrecords; i++) {
		bool repeated = false;
		for (size_t k = i + 1; k < c->nrecords && !repeated &&
				       strcmp(c->records[k].rel, c->records[i].rel) == 0;
		     k++)
			repeated = same_record(&c->records[i], &c->records[k]);
		if (repeated)
			free(c->records[i].rel);
		else
			c->records[kept++] = c->records[i];
	}
	c->nrecords = kept;
	return 0;
}

/* Replace the journal with these records (a temporary file renamed over it)
 * and keep it open for appending. */
static int rewrite_journal(struct convert *c, const struct record *r, size_t n)
{
	/* it names every file: as private as manifest.json */
	int fd = create_tmp(c->lock_fd, JOURNAL, c->list_mode);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	int rc = f ? 0 : fd < 0 ? fd : -errno;
	if (!f && fd >= 0)
		close(fd);
	if (f) {
		fprintf(f, "%s\n", JOURNAL_HEAD);
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = put_record(f, &r[i]);
		if (rc == 0 && (fflush(f) != 0 || fdatasync(fileno(f)) < 0))
			rc = -errno;
	}
	if (rc == 0)
		rc = rename_tmp(c->lock_fd, JOURNAL);
	if (rc == 0 && fsync(c->lock_fd) < 0)
		rc = -errno;
	if (c->journal)
		fclose(c->journal);
	c->journal = rc == 0 ? f : NULL; /* the file now named the journal */
	if (rc < 0) {
		fprintf(stderr, "tpfs convert: %s/%s: %s\n", c->out, JOURNAL, strerror(-rc));
		if (f)
			fclose(f);
		unlink_tmp(c->lock_fd, JOURNAL);
	}
	return rc;
}

/* Append a line; synced when what it announces must not outlive it. */
static int journal_add(struct convert *c, enum rec_kind kind, const char *rel,
		       const char *hash, uint64_t size, bool sync)
{
	struct record r = {.rel = (char *)rel, .kind = kind, .size = size};
	snprintf(r.fp, sizeof(r.fp), "%s", c->fp);
	snprintf(r.hash, sizeof(r.hash), "%s", hash ? hash : "");
	pthread_mutex_lock(&c->journal_lock);
	int rc = put_record(c->journal, &r);
	if (rc == 0 && (fflush(c->journal) != 0 ||
			(sync && fdatasync(fileno(c->journal)) < 0)))
		rc = -errno;
	pthread_mutex_unlock(&c->journal_lock);
	return rc;
}

/* The records of path rel: returns their count, the first in *first. */
static size_t records_of(const struct convert *c, const char *rel,
			 const struct record **first)
{
	size_t lo = 0, hi = c->nrecords;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(c->records[mid].rel, rel) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t end = lo;
	while (end < c->nrecords && strcmp(c->records[end].rel, rel) == 0)
		end++;
	*first = c->records + lo;
	return end - lo;
}

/* ---- the plan ----------------------------------------------------------- */

/* What a file or folder of OUT is written with: no more than the mount
 * would serve it with, so that a private source stays private on disk. The
 * writer owns it: its group and other bits are those of the served entry's
 * that are sure to let through the same users (perm.h), and the writer
 * keeps read and write (and search on folders). Also within the umask. */
static struct tpfs_perm out_perm(bool dir)
{
	return (struct tpfs_perm){.uid = (uint32_t)geteuid(), .gid = (uint32_t)getegid(),
				  .mode = dir ? 0555 : 0444, .dir = dir};
}

static mode_t out_mode(const struct convert *c, const struct tpfs_perm *p)
{
	return (mode_t)((p->mode | (p->dir ? 0700 : 0600)) & ~c->umask);
}

/* Narrow folder rel's permissions in the plan (c->dirs sorted) by o. */
static void narrow_dir(struct convert *c, struct tpfs_perm_ctx *ctx, struct tpfs_perm *dirs,
		       const char *rel, const struct tpfs_perm *o, unsigned need)
{
	char **at = bsearch(&rel, c->dirs, c->ndirs, sizeof(*c->dirs), cmp_str);
	if (at)
		tpfs_perm_narrow(ctx, &dirs[at - c->dirs], o, need);
}

/* Every file's mode from its entry's; every folder's from the entries it
 * shows and the folder of the mount it stands for, if any (matched from
 * the file up: shard_000/sub/w.npy's shard_000/sub is the mount's sub, and
 * shard_000 its root); OUT's likewise. The journal and manifest.json name
 * every file with its size and checksum: theirs from the mount's
 * manifest.json, every file's entry and every folder of the mount above
 * one, so that only who may read every file and list every folder they
 * name may read them. */
static int plan_modes(struct convert *c, const struct tpfs_model *m)
{
	const struct tpfs_tree *tree = &m->tree;
	struct tpfs_perm_ctx *ctx = m->perms;
	struct tpfs_perm *dirs = malloc((c->ndirs + 1) * sizeof(*dirs));
	if (!dirs)
		return -ENOMEM;
	for (size_t i = 0; i < c->ndirs; i++)
		dirs[i] = out_perm(true);
	struct tpfs_perm top = out_perm(true), list = out_perm(false);
	for (size_t i = 0; i < c->njobs; i++) {
		struct job *j = &c->jobs[i];
		const struct tpfs_perm *served = tpfs_tree_perm(tree, j->node);
		struct tpfs_perm f = out_perm(false);
		tpfs_perm_narrow(ctx, &f, served, TPFS_PERM_READ);
		j->mode = out_mode(c, &f);
		tpfs_perm_narrow(ctx, &list, served, TPFS_PERM_READ);
		for (uint32_t d = j->node; d != 0;) {
			d = tree->nodes[d].parent;
			tpfs_perm_narrow(ctx, &list, tpfs_tree_perm(tree, d),
					 TPFS_PERM_READ | TPFS_PERM_SEARCH);
		}
		char *rel = strdup(j->rel);
		if (!rel) {
			free(dirs);
			return -ENOMEM;
		}
		uint32_t d = j->node;
		for (char *slash; (slash = strrchr(rel, '/')) != NULL;) {
			*slash = '\0';
			d = tree->nodes[d].parent;
			narrow_dir(c, ctx, dirs, rel, served, TPFS_PERM_READ);
			narrow_dir(c, ctx, dirs, rel, tpfs_tree_perm(tree, d),
				   TPFS_PERM_READ | TPFS_PERM_SEARCH);
		}
		free(rel);
		tpfs_perm_narrow(ctx, &top, served, TPFS_PERM_READ);
	}
	tpfs_perm_narrow(ctx, &top, tpfs_tree_perm(tree, 0), TPFS_PERM_READ | TPFS_PERM_SEARCH);
	long manifest = tpfs_tree_lookup(tree, 0, "manifest.json");
	if (manifest >= 0)
		tpfs_perm_narrow(ctx, &list, tpfs_tree_perm(tree, (uint32_t)manifest),
				 TPFS_PERM_READ);
	for (size_t i = 0; i < c->ndirs; i++)
		c->dir_modes[i] = out_mode(c, &dirs[i]);
	c->out_mode = out_mode(c, &top);
	c->list_mode = out_mode(c, &list);
	free(dirs);
	return 0;
}


/* The tree's files outside .tpfs, with tensors placed in shard_NNN/ folders
 * of at most shard bytes when shard is not 0 (a bigger tensor gets a
 * folder of its own); paths[i] is tensor i's path under OUT. Then the
 * folders the files need. */
static int plan(struct convert *c, const struct tpfs_model *m, uint64_t shard,
		char **paths)
{
	const struct tpfs_tree *tree = &m->tree;
	c->jobs = calloc(tree->nnodes, sizeof(*c->jobs));
	if (!c->jobs)
		return -ENOMEM;
	uint64_t used = 0;
	int k = 0;
	for (size_t i = 0; i < m->ntensors; i++) {
		const struct tpfs_tensor *t = &m->tensors[i];
		uint64_t size = tpfs_tensor_npy_size(t);
		if (shard && used && used + size > shard) {
			k++;
			used = 0;
		}
		used += size;
		char *path = tpfs_tree_path(tree, t->node);
		if (!path)
			return -ENOMEM;
		if (shard && asprintf(&paths[i], "shard_%03d/%s", k, path) < 0)
			paths[i] = NULL;
		if (shard)
			free(path);
		else
			paths[i] = path;
		if (!paths[i])
			return -ENOMEM;
	}
	size_t slashes = 0;
	for (uint32_t n = 1; n < tree->nnodes; n++) {
		const struct tpfs_node *node = &tree->nodes[n];
		if (node->kind != TPFS_NODE_TENSOR && node->kind != TPFS_NODE_FILE)
			continue; /* folders follow their files; the manifest comes last */
		struct job *j = &c->jobs[c->njobs];
		j->node = n;
		if (node->kind == TPFS_NODE_TENSOR) {
			const struct tpfs_tensor *t = node->payload;
			j->size = tpfs_tensor_npy_size(t);
			j->rel = strdup(paths[t - m->tensors]);
		} else {
			j->size = ((const struct tpfs_source *)node->payload)->size;
			j->rel = tpfs_tree_path(tree, n);
		}
		if (!j->rel)
			return -ENOMEM;
		for (const char *s = j->rel; *s; s++)
			slashes += *s == '/';
		c->njobs++;
		c->total += j->size;
	}
	c->dirs = calloc(slashes + 1, sizeof(*c->dirs));
	c->dir_recorded = calloc(slashes + 1, sizeof(*c->dir_recorded));
	c->dir_modes = calloc(slashes + 1, sizeof(*c->dir_modes));
	if (!c->dirs || !c->dir_recorded || !c->dir_modes)
		return -ENOMEM;
	for (size_t i = 0; i < c->njobs; i++)
		for (const char *s = strchr(c->jobs[i].rel, '/'); s; s = strchr(s + 1, '/'))
			if (!(c->dirs[c->ndirs++] = strndup(c->jobs[i].rel,
							    (size_t)(s - c->jobs[i].rel))))
				return -ENOMEM;
	qsort(c->dirs, c->ndirs, sizeof(*c->dirs), cmp_str);
	size_t kept = 0;
	for (size_t i = 0; i < c->ndirs; i++) {
		if (kept && strcmp(c->dirs[kept - 1], c->dirs[i]) == 0)
			free(c->dirs[i]);
		else
			c->dirs[kept++] = c->dirs[i];
	}
	c->ndirs = kept;
	return plan_modes(c, m);
}

static bool in_plan_dirs(const struct convert *c, const char *rel)
{
	return c->ndirs && bsearch(&rel, c->dirs, c->ndirs, sizeof(*c->dirs), cmp_str);
}

static bool in_plan_files(const struct convert *c, const char *rel)
{
	struct job key = {.rel = (char *)rel};
	return c->njobs && bsearch(&key, c->jobs, c->njobs, sizeof(key), cmp_jobs_by_path);
}

/* Paths convert cannot write: its own names, and two files (or a file and a
 * folder) in one place. Jobs are sorted by path. */
static int check_plan(const struct convert *c)
{
	for (size_t i = 0; i < c->njobs; i++) {
		const char *rel = c->jobs[i].rel;
		if (strcmp(rel, JOURNAL) == 0 || tpfs_path_has_suffix(rel, PARTIAL)) {
			tpfs_tool_say(stderr, "tpfs convert: cannot write %s: convert keeps the "
				      "names %s and *%s for itself; rename that file in the "
				      "source", rel, JOURNAL, PARTIAL);
			return -1;
		}
		if ((i && strcmp(rel, c->jobs[i - 1].rel) == 0) || in_plan_dirs(c, rel)) {
			tpfs_tool_say(stderr, "tpfs convert: two things of the output would be %s "
				      "(a tensor's shard folder and a source file); choose "
				      "another --shard-size or rename the file", rel);
			return -1;
		}
	}
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

/* The latest record of j's file when it is of this run's fingerprint and
 * size (the file may then be kept), else NULL. */
static const struct record *keepable(const struct convert *c, const struct job *j)
{
	const struct record *r;
	for (size_t n = records_of(c, j->rel, &r); n; n--)
		if (r[n - 1].kind == REC_FILE)
			return strcmp(r[n - 1].fp, c->fp) == 0 && r[n - 1].size == j->size
				       ? &r[n - 1]
				       : NULL;
	return NULL;
}

/* A file of an earlier run is kept if its latest record is of this run's
 * fingerprint and its bytes still hash as recorded (j takes the hash). */
static bool verified(struct convert *c, struct job *j, unsigned char *buf)
{
	const struct record *latest = keepable(c, j);
	if (!latest)
		return false;
	const char *name;
	int dfd = dir_of(c, j->rel, &name);
	int fd = dfd >= 0 ? open_read(dfd, name) : -1;
	bool ok = fd >= 0 && hash_fd(fd, j->size, buf, c->unit, j->hash) == 0 &&
		  strcmp(j->hash, latest->hash) == 0 && set_mode(fd, j->mode) == 0;
	if (fd >= 0)
		close(fd);
	put_dir(c, dfd);
	return ok;
}

/* Write one file under its temporary name, record it, then name it. */
static int write_job(struct convert *c, struct job *j, unsigned char *buf)
{
	const char *name;
	int dfd = dir_of(c, j->rel, &name);
	int rc = dfd < 0 ? dfd : journal_add(c, REC_TMP, j->rel, NULL, 0, false);
	int fd = rc == 0 ? create_tmp(dfd, name, j->mode) : -1;
	if (rc == 0 && fd < 0)
		rc = fd;
	XXH3_state_t *h = rc == 0 ? XXH3_createState() : NULL;
	if (rc == 0 && !h)
		rc = -ENOMEM;
	if (h)
		XXH3_64bits_reset(h);
	for (uint64_t at = 0; at < j->size && rc == 0;) {
		if (atomic_load(&stop_signal)) {
			rc = -EINTR; /* not an error to report: the run says it stopped */
			break;
		}
		ssize_t got = tpfs_file_read(c->view, j->node, at, c->unit, buf);
		rc = got <= 0 ? (got < 0 ? (int)got : -EIO) : tpfs_path_write_all(fd, buf, (size_t)got);
		if (rc == 0) {
			XXH3_64bits_update(h, buf, (size_t)got);
			at += (uint64_t)got;
			atomic_fetch_add(&c->bytes, (uint64_t)got);
		}
	}
	if (rc == 0)
		hash_hex(XXH3_64bits_digest(h), j->hash);
	XXH3_freeState(h);
	if (fd >= 0) {
		if (rc == 0 && fdatasync(fd) < 0)
			rc = -errno;
		if (close(fd) < 0 && rc == 0)
			rc = -errno;
	}
	if (rc == 0)
		rc = journal_add(c, REC_FILE, j->rel, j->hash, j->size, true);
	if (rc == 0)
		rc = rename_tmp(dfd, name);
	if (rc < 0 && rc != REFUSED && rc != -EINTR) {
		flockfile(stderr); /* one piece, between the progress lines */
		if (c->tty)
			fputc('\n', stderr);
		tpfs_tool_say(stderr, "tpfs convert: %s: %s", j->rel, strerror(-rc));
		funlockfile(stderr);
	}
	if (rc < 0 && dfd >= 0)
		unlink_tmp(dfd, name);
	put_dir(c, dfd);
	return rc;
}

static void *worker(void *arg)
{
	struct convert *c = arg;
	unsigned char *buf = malloc(c->unit);
	for (size_t i; buf && !atomic_load(&stop_signal) &&
		       (i = atomic_fetch_add(&c->next, 1)) < c->njobs;) {
		struct job *j = &c->jobs[i];
		int rc = 0;
		if (verified(c, j, buf)) {
			j->state = SKIPPED;
			atomic_fetch_add(&c->bytes, j->size);
		} else if ((rc = write_job(c, j, buf)) != -EINTR) {
			j->state = rc == 0 ? WRITTEN : FAILED;
		}
		if (j->state == TODO)
			break; /* stopped */
		atomic_fetch_add(&c->done, 1);
		if (!c->tty && j->state != FAILED) {
			char sz[32];
			tpfs_tool_say(stdout, "%s %s (%s)", j->state == SKIPPED ? "kept" : "wrote",
				      j->rel, tpfs_size_format(j->size, sz, sizeof(sz)));
			fflush(stdout);
		}
	}
	if (!buf)
		fprintf(stderr, "tpfs convert: out of memory\n");
	free(buf);
	atomic_fetch_sub(&c->running, 1);
	return NULL;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Whether every file was kept from an earlier run (none written). */
static bool all_kept(const struct convert *c)
{
	size_t kept = 0;
	for (size_t i = 0; i < c->njobs; i++)
		kept += c->jobs[i].state == SKIPPED;
	return c->njobs && kept == c->njobs;
}

/* The progress line, over the last one: bytes done and to do in MiB, the
 * rate, the time left ("--:--" until a second has passed and bytes were
 * done: a guess from less would swing; 0:00 once all are), files; at the
 * end of a run that kept every file, that instead of a rate. */
static void progress(struct convert *c, const struct timespec *t0, bool end)
{
	uint64_t b = atomic_load(&c->bytes);
	double s = seconds_since(t0), rate = s > 0 ? (double)b / s : 0;
	int filled = c->total ? (int)(30.0 * (double)b / (double)c->total) : 30;
	char tail[80];
	if (end && all_kept(c)) {
		snprintf(tail, sizeof(tail), "all %zu files already converted, kept", c->njobs);
	} else {
		char eta[16] = "--:--";
		double guess = b == c->total ? 0 : s >= 1 && b ? (double)(c->total - b) / rate : -1;
		int left = guess < 359999 ? (int)guess : 359999; /* at most 99:59:59 */
		if (left >= 3600)
			snprintf(eta, sizeof(eta), "%d:%02d:%02d", left / 3600, left / 60 % 60,
				 left % 60);
		else if (left >= 0)
			snprintf(eta, sizeof(eta), "%d:%02d", left / 60, left % 60);
		snprintf(tail, sizeof(tail), "%.1f MiB/s  ETA %s  files %zu/%zu", rate / MIB, eta,
			 atomic_load(&c->done), c->njobs);
	}
	/* padded to cover a longer line before it */
	int n = fprintf(stderr, "\r[%-30.*s] %.1f / %.1f MiB  %s", filled,
			"##############################", (double)b / MIB, (double)c->total / MIB,
			tail);
	if (n > 0 && n < c->progress_len)
		fprintf(stderr, "%*s", c->progress_len - n, "");
	c->progress_len = n > c->progress_len ? n : c->progress_len;
}

/* Create the plan's folders (parents first), each recorded before it
 * exists. */
static int make_dirs(struct convert *c)
{
	for (size_t i = 0; i < c->ndirs; i++) {
		const struct record *r;
		for (size_t n = records_of(c, c->dirs[i], &r); n; n--, r++)
			c->dir_recorded[i] |= r->kind == REC_DIR;
		const char *name, *rel = c->dirs[i];
		int dfd = dir_of(c, rel, &name);
		int fd = dfd < 0 ? dfd : open_dir(c, dfd, name, rel, strlen(rel));
		int rc = fd < 0 ? fd : 0;
		if (dfd >= 0 && rc == -ENOENT) {
			rc = journal_add(c, REC_DIR, rel, NULL, 0, true);
			if (rc == 0 && mkdirat(dfd, name, 0700) < 0)
				rc = -errno;
			if (rc == 0 && (fd = open_dir(c, dfd, name, rel, strlen(rel))) < 0)
				rc = fd;
			c->dir_recorded[i] = true;
		}
		if (rc == 0 && c->dir_recorded[i]) /* ours: as planned now */
			rc = set_mode(fd, c->dir_modes[i]);
		if (fd >= 0)
			close(fd);
		put_dir(c, dfd);
		if (rc < 0 && rc != REFUSED)
			tpfs_tool_say(stderr, "tpfs convert: %s/%s: %s", c->out, rel,
				      strerror(-rc));
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- the fingerprint and OUT -------------------------------------------- */

/* The fingerprint of what the output holds: every file's place, source,
 * byte range and conversion, each source file's size and time stamp, and
 * the options that change bytes (not cache_size or block_size). Returns 0
 * or -ENOMEM. */
static int fingerprint(const struct tpfs_model *m, char out[17])
{
	XXH3_state_t *h = XXH3_createState();
	if (!h)
		return -ENOMEM;
	XXH3_64bits_reset(h);
	const struct tpfs_options *o = &m->opt;
	int opts[5] = {o->by_file, (int)o->bf16, (int)o->fp8, (int)o->mxfp4, (int)o->dtype};
	XXH3_64bits_update(h, opts, sizeof(opts));
	for (size_t i = 0; i < m->ntensors; i++) {
		const struct tpfs_tensor *t = &m->tensors[i];
		char *path = tpfs_tree_path(&m->tree, t->node);
		if (!path) {
			XXH3_freeState(h);
			return -ENOMEM;
		}
		XXH3_64bits_update(h, path, strlen(path) + 1);
		free(path);
		XXH3_64bits_update(h, &t->conv->id, sizeof(t->conv->id));
		for (int k = 0; k < 2 && t->part[k].st; k++) {
			const struct tpfs_part *p = &t->part[k];
			uint64_t v[2] = {p->st->begin, p->st->end};
			XXH3_64bits_update(h, p->src->rel, strlen(p->src->rel) + 1);
			XXH3_64bits_update(h, v, sizeof(v));
		}
	}
	for (size_t i = 0; i < m->nsources; i++) {
		const struct tpfs_source *s = m->sources[i];
		uint64_t v[3] = {s->size, (uint64_t)s->mtime.tv_sec, (uint64_t)s->mtime.tv_nsec};
		XXH3_64bits_update(h, s->rel, strlen(s->rel) + 1);
		XXH3_64bits_update(h, v, sizeof(v));
	}
	hash_hex(XXH3_64bits_digest(h), out);
	XXH3_freeState(h);
	return 0;
}

/* Fold "." and ".." and repeated slashes of an absolute path, in place. */
static void fold_path(char *p)
{
	char *w = p;
	for (const char *r = p; *r;) {
		while (*r == '/')
			r++;
		size_t n = strcspn(r, "/");
		if (n == 0 || (n == 1 && r[0] == '.')) {
			/* nothing, or "." */
		} else if (n == 2 && r[0] == '.' && r[1] == '.') {
			while (w > p && *--w != '/')
				;
		} else {
			*w++ = '/';
			memmove(w, r, n);
			w += n;
		}
		r += n;
	}
	if (w == p)
		*w++ = '/';
	*w = '\0';
}

/* path made absolute, its existing part resolved and the rest folded: OUT
 * need not exist yet. NULL when that fails. */
static char *resolved(const char *path)
{
	char *head = strdup(path), *r = NULL;
	const char *tail = "";
	while (head && !(r = realpath(*head ? head : ".", NULL))) {
		char *slash = strrchr(head, '/');
		if (errno != ENOENT || !*head)
			break;
		tail = path + (slash ? slash - head + 1 : 0);
		if (slash == head)
			head[1] = '\0'; /* "/x": resolve "/" */
		else if (slash)
			*slash = '\0';
		else
			*head = '\0';
	}
	char *out = NULL;
	if (r && asprintf(&out, "%s/%s", r, tail) < 0)
		out = NULL;
	if (out)
		fold_path(out); /* r has no links, so ".." by text is right */
	free(r);
	free(head);
	return out;
}

/* OUT inside a SRC folder would become part of the source on the next run. */
static bool out_inside_src(const char *src, const char *out)
{
	struct stat st;
	if (stat(src, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	char *s = realpath(src, NULL), *o = resolved(out);
	bool inside = s && o && tpfs_path_within(s, o);
	free(s);
	free(o);
	return inside;
}

/* Whether OUT's filesystem has room for what this run will write, said
 * when it has not: every file but those an earlier run wrote that this one
 * will keep, as far as the journal and their sizes tell (their checksums
 * are checked later), each in whole blocks. OUT is open as fd, or, when fd
 * is negative, does not exist yet: its nearest existing folder tells. A
 * file replaced takes its room until its new version is complete, so it
 * counts whole. */
static bool room_for(const struct convert *c, int fd)
{
	struct statvfs fs;
	int rc = fd >= 0 ? fstatvfs(fd, &fs) : -1;
	char *p = fd >= 0 ? NULL : resolved(c->out);
	while (p && (rc = statvfs(p, &fs)) < 0 && errno == ENOENT && p[1]) {
		char *slash = strrchr(p, '/'); /* p is absolute */
		slash[slash == p] = '\0';    /* "/x" leaves "/" */
	}
	free(p);
	if (rc < 0)
		return true; /* cannot tell: the writes will */
	uint64_t need = 0, block = fs.f_frsize ? fs.f_frsize : 1;
	for (size_t i = 0; i < c->njobs; i++) {
		const struct job *j = &c->jobs[i];
		const char *name;
		struct stat st;
		int dfd = fd >= 0 && keepable(c, j) ? dir_of(c, j->rel, &name) : -1;
		bool kept = dfd >= 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISREG(st.st_mode) && (uint64_t)st.st_size == j->size;
		put_dir(c, dfd);
		if (!kept)
			need += (j->size + block - 1) / block * block;
	}
	uint64_t avail = (uint64_t)fs.f_bavail * fs.f_frsize;
	if (need <= avail)
		return true;
	fprintf(stderr, "tpfs convert: %s: need %.1f MiB for the files to write, %.1f MiB free "
			"on its filesystem; make room or choose another folder\n",
		c->out, ceil((double)need / MIB * 10) / 10, floor((double)avail / MIB * 10) / 10);
	return false;
}

/* Refuse --resume into an OUT without an earlier output. */
static int no_resume(const struct convert *c)
{
	fprintf(stderr, "tpfs convert: --resume: %s holds no earlier tpfs convert output (no "
			"%s file)\n",
		c->out, JOURNAL);
	return -1;
}

/* OUT must be the caller's alone and no link (open_dir), and new, empty,
 * or an earlier output (it has the journal); with --resume, an earlier
 * output. Nothing is made (OUT or the folders above it, as by mkdir -p)
 * before the room for the files is known. Locks OUT, loads the journal,
 * removes the manifest and starts the journal afresh. */
static int prepare_out(struct convert *c, bool resume)
{
	struct stat ost;
	if (lstat(c->out, &ost) < 0 && errno == ENOENT) {
		if (resume)
			return no_resume(c);
		if (!room_for(c, -1))
			return -1;
	}
	char name[NAME_MAX + 1];
	int dfd = tpfs_path_mkdir_parent(c->out, name), rc = dfd;
	bool made = false; /* private until it has its planned mode */
	if (dfd >= 0) {
		made = mkdirat(dfd, name, 0700) == 0;
		rc = !made && errno != EEXIST ? -errno : open_dir(c, dfd, name, "", 0);
		close(dfd);
	}
	if (rc < 0) {
		if (rc != REFUSED)
			fprintf(stderr, "tpfs convert: %s: %s\n", c->out, strerror(-rc));
		return -1;
	}
	c->lock_fd = rc;
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "tpfs convert: %s: %s\n", c->out,
			errno == EWOULDBLOCK ? "another tpfs convert is writing there"
					     : strerror(errno));
		return -1;
	}
	int jfd = open_read(c->lock_fd, JOURNAL);
	FILE *j = jfd >= 0 ? fdopen(jfd, "r") : NULL;
	if (!j && (jfd >= 0 || errno != ENOENT)) {
		fprintf(stderr, "tpfs convert: %s/%s: %s\n", c->out, JOURNAL, strerror(errno));
		if (jfd >= 0)
			close(jfd);
		return -1;
	}
	if (!j) {
		/* new or empty (but for a journal a cut first run began) */
		long n = tpfs_path_entries_fd(c->lock_fd, JOURNAL PARTIAL);
		if (resume)
			return no_resume(c);
		if (n != 0) {
			fprintf(stderr, "tpfs convert: %s is not empty and holds no earlier tpfs "
					"convert output (no %s file); choose an empty or new folder\n",
				c->out, JOURNAL);
			return -1;
		}
	} else {
		rc = load_journal(c, j);
		fclose(j);
		if (rc < 0)
			return -1;
	}
	if (!room_for(c, c->lock_fd))
		return -1;
	size_t files = 0, current = 0;
	for (size_t i = 0; i < c->nrecords; i++) {
		files += c->records[i].kind == REC_FILE;
		current += c->records[i].kind == REC_FILE && strcmp(c->records[i].fp, c->fp) == 0;
	}
	if (files && !current)
		fprintf(stderr, "tpfs convert: %s holds the output of another model or other "
				"options; rewriting it\n",
			c->out);
	if (unlinkat(c->lock_fd, MANIFEST, 0) < 0 && errno != ENOENT) {
		fprintf(stderr, "tpfs convert: %s/%s: %s\n", c->out, MANIFEST, strerror(errno));
		return -1;
	}
	/* OUT shows the names of what it holds: no more open than the mount's
	 * root; one that was there, never more open than it was, and kept to
	 * its owner if it had an ACL (whom it let in, its mode does not say). */
	struct stat st;
	rc = fstat(c->lock_fd, &st) < 0 ? -errno : 0;
	if (rc == 0) {
		bool acl = tpfs_perm_from_stat(&st, c->lock_fd, NULL).acl;
		mode_t was = made ? 0777 : st.st_mode & (acl ? 0700 : 0777);
		rc = set_mode(c->lock_fd, was & c->out_mode);
	}
	if (rc < 0) {
		fprintf(stderr, "tpfs convert: %s: %s\n", c->out, strerror(-rc));
		return -1;
	}
	return rewrite_journal(c, c->records, c->nrecords) < 0 ? -1 : 0;
}

/* ---- the end of a complete run ------------------------------------------ */

/* Remove the temporary files of every path ever recorded, the files
 * earlier runs wrote that this plan lacks (when they still hash as one of
 * their records: otherwise someone changed them, and they stay), then such
 * folders when empty. Jobs are sorted by path. */
static void remove_stale(struct convert *c, unsigned char *buf)
{
	const char *name;
	int dfd;
	for (size_t i = 0; i < c->njobs; i++) {
		if ((dfd = dir_of(c, c->jobs[i].rel, &name)) >= 0)
			unlink_tmp(dfd, name);
		put_dir(c, dfd);
	}
	unlink_tmp(c->lock_fd, MANIFEST);
	size_t removed = 0;
	for (size_t i = 0; i < c->nrecords;) {
		const struct record *r;
		size_t n = records_of(c, c->records[i].rel, &r);
		i += n;
		if ((dfd = dir_of(c, r->rel, &name)) < 0)
			continue; /* gone, or refused */
		unlink_tmp(dfd, name);
		int fd = in_plan_files(c, r->rel) || in_plan_dirs(c, r->rel) ? -1
									   : open_read(dfd, name);
		struct stat st;
		bool ours = false, any_file = false;
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
			for (size_t k = 0; k < n && !ours; k++) {
				char h[17];
				any_file |= r[k].kind == REC_FILE;
				ours = r[k].kind == REC_FILE && r[k].size == (uint64_t)st.st_size &&
				       hash_fd(fd, r[k].size, buf, c->unit, h) == 0 &&
				       strcmp(h, r[k].hash) == 0;
			}
			if (ours && unlinkat(dfd, name, 0) == 0)
				removed++;
			else if (any_file)
				tpfs_tool_say(stderr, "tpfs convert: left %s/%s in place: it changed "
					      "after an earlier run wrote it", c->out, r->rel);
		}
		if (fd >= 0)
			close(fd);
		put_dir(c, dfd);
	}
	/* folders: the deepest first, as they sort after their parents */
	for (size_t i = c->nrecords; i-- > 0;) {
		if (c->records[i].kind != REC_DIR || in_plan_dirs(c, c->records[i].rel))
			continue;
		if ((dfd = dir_of(c, c->records[i].rel, &name)) >= 0)
			unlinkat(dfd, name, AT_REMOVEDIR); /* stays if not empty */
		put_dir(c, dfd);
	}
	if (removed)
		printf("removed %zu file%s an earlier run wrote that this one does not\n",
		       removed, removed == 1 ? "" : "s");
}

/* The journal of a complete run: its files and the folders it recorded. */
static int final_journal(struct convert *c)
{
	struct record *now = calloc(c->njobs + c->ndirs + 1, sizeof(*now));
	if (!now) {
		fprintf(stderr, "tpfs convert: out of memory\n");
		return -ENOMEM;
	}
	size_t n = 0;
	for (size_t i = 0; i < c->ndirs; i++)
		if (c->dir_recorded[i])
			now[n++] = (struct record){.rel = c->dirs[i], .kind = REC_DIR};
	for (size_t i = 0; i < c->njobs; i++) {
		now[n] = (struct record){.rel = c->jobs[i].rel, .size = c->jobs[i].size};
		memcpy(now[n++].hash, c->jobs[i].hash, sizeof(now->hash));
	}
	for (size_t i = 0; i < n; i++)
		memcpy(now[i].fp, c->fp, sizeof(now->fp));
	int rc = rewrite_journal(c, now, n);
	free(now);
	return rc;
}

/* OUT/manifest.json: the mount's, with the paths under OUT and a "convert"
 * section listing every file written with its size and XXH3-64. */
static int write_manifest(struct convert *c, const struct tpfs_model *m, char **paths)
{
	struct tpfs_buf x = {0};
	tpfs_buf_printf(&x, "{\"fingerprint\": \"%s\", \"files\": [", c->fp);
	for (size_t i = 0; i < c->njobs; i++) {
		tpfs_buf_puts(&x, i ? ",\n    {\"path\": " : "\n    {\"path\": ");
		tpfs_buf_json_string(&x, c->jobs[i].rel);
		tpfs_buf_printf(&x, ", \"bytes\": %" PRIu64 ", \"xxh3\": \"%s\"}",
				c->jobs[i].size, c->jobs[i].hash);
	}
	tpfs_buf_puts(&x, "\n  ]}");
	char *extra = tpfs_buf_take(&x, NULL);
	int rc = extra ? 0 : -ENOMEM;
	int fd = rc == 0 ? create_tmp(c->lock_fd, MANIFEST, c->list_mode) : -1;
	if (rc == 0 && fd < 0)
		rc = fd;
	if (rc == 0)
		rc = tpfs_manifest_write(m, (const char *const *)paths, extra, fd);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0)
		rc = rename_tmp(c->lock_fd, MANIFEST);
	if (rc == 0 && fsync(c->lock_fd) < 0)
		rc = -errno;
	if (rc < 0) {
		fprintf(stderr, "tpfs convert: %s/%s: %s\n", c->out, MANIFEST, strerror(-rc));
		unlink_tmp(c->lock_fd, MANIFEST);
	}
	free(extra);
	return rc;
}

/* ---- the command ---------------------------------------------------------- */

/* Run the jobs on n threads, biggest first; 0 when every file is in place. */
static int run_jobs(struct convert *c, size_t n)
{
	qsort(c->jobs, c->njobs, sizeof(*c->jobs), cmp_jobs_by_size);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_t *th = calloc(n, sizeof(*th));
	size_t started = 0;
	for (; th && started < n; started++) {
		atomic_fetch_add(&c->running, 1);
		if (pthread_create(&th[started], NULL, worker, c) != 0) {
			atomic_fetch_sub(&c->running, 1);
			break;
		}
	}
	while (c->tty && atomic_load(&c->running) > 0) {
		progress(c, &t0, false);
		struct timespec nap = {0, 250000000};
		nanosleep(&nap, NULL);
	}
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
	if (c->tty) {
		progress(c, &t0, true);
		fputc('\n', stderr);
	}
	if (!started)
		fprintf(stderr, "tpfs convert: cannot start a thread\n");
	int rc = 0;
	for (size_t i = 0; i < c->njobs; i++)
		rc |= c->jobs[i].state == FAILED || c->jobs[i].state == TODO ? -1 : 0;
	qsort(c->jobs, c->njobs, sizeof(*c->jobs), cmp_jobs_by_path);
	return rc;
}

static void summary(const struct convert *c, const struct tpfs_model *m, const char *src,
		    int rc, bool ran)
{
	size_t written = 0, kept = 0;
	uint64_t params = 0;
	for (size_t i = 0; i < c->njobs; i++) {
		written += c->jobs[i].state == WRITTEN;
		kept += c->jobs[i].state == SKIPPED;
	}
	for (size_t i = 0; i < m->ntensors; i++)
		params += m->tensors[i].nelem;
	double s = seconds_since(&c->t0);
	char sz[32];
	int sig = atomic_load(&stop_signal);
	if (rc == 0 && all_kept(c))
		printf("converted %s to %s: all %zu files already converted, kept; %" PRIu64
		       " parameters, %s\n",
		       src, c->out, c->njobs, params, tpfs_size_format(c->total, sz, sizeof(sz)));
	else if (rc == 0)
		printf("converted %s to %s: %zu files written, %zu kept from an earlier run, "
		       "%" PRIu64 " parameters, %s in %.1f s (%.1f MiB/s)\n",
		       src, c->out, written, kept, params,
		       tpfs_size_format(c->total, sz, sizeof(sz)), s,
		       s > 0 ? (double)atomic_load(&c->bytes) / s / MIB : 0.0);
	else if (sig)
		fprintf(stderr, "tpfs convert: stopped by %s: %zu of %zu files done, partial files "
				"removed; run the same command again to finish\n",
			sig == SIGINT ? "SIGINT" : "SIGTERM", written + kept, c->njobs);
	else if (ran)
		fprintf(stderr, "tpfs convert: %zu of %zu files done; run the same command "
				"again to finish\n",
			written + kept, c->njobs);
}

/* A run's steps, each stopping it with its error said; *ran once files
 * are being written. */
static int convert(struct convert *c, const struct tpfs_model *m,
		   const struct tpfs_tool_args *a, char **paths, bool *ran)
{
	int rc = fingerprint(m, c->fp) == 0 ? plan(c, m, a->shard_size, paths) : -ENOMEM;
	if (rc < 0) {
		fprintf(stderr, "tpfs convert: out of memory\n");
		return rc;
	}
	qsort(c->jobs, c->njobs, sizeof(*c->jobs), cmp_jobs_by_path);
	if ((rc = check_plan(c)) < 0)
		return rc;
	if (out_inside_src(a->pos[0], c->out)) {
		fprintf(stderr, "tpfs convert: %s is inside the source folder %s, where it would "
				"be read as part of the model; choose a folder outside it\n",
			c->out, a->pos[0]);
		return -1;
	}
	catch_stop();
	if ((rc = prepare_out(c, a->resume)) < 0 || (rc = make_dirs(c)) < 0)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &c->t0);
	*ran = true;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	if ((rc = run_jobs(c, (size_t)(a->jobs ? a->jobs : cores > 0 ? cores : 1))) < 0 ||
	    atomic_load(&stop_signal))
		return rc < 0 ? rc : -EINTR;
	unsigned char *buf = malloc(c->unit);
	if (!buf) {
		fprintf(stderr, "tpfs convert: out of memory\n");
		return -ENOMEM;
	}
	remove_stale(c, buf);
	free(buf);
	if ((rc = final_journal(c)) < 0)
		return rc;
	return write_manifest(c, m, paths);
}

static int run_convert(const struct tpfs_tool_args *a)
{
	struct tpfs_model *m;
	struct convert c = {.out = a->pos[1], .tty = isatty(STDERR_FILENO), .lock_fd = -1};
	if (tpfs_tool_open("convert", a, &m, &c.view))
		return 1;
	pthread_mutex_init(&c.journal_lock, NULL);
	c.unit = tpfs_tool_read_unit(m);
	c.umask = umask(0);
	umask(c.umask);
	char **paths = calloc(m->ntensors + 1, sizeof(*paths));
	bool ran = false;
	int rc = paths ? convert(&c, m, a, paths, &ran) : -ENOMEM;
	if (!paths)
		fprintf(stderr, "tpfs convert: out of memory\n");
	summary(&c, m, a->pos[0], rc, ran);
	if (c.journal)
		fclose(c.journal);
	if (c.lock_fd >= 0)
		close(c.lock_fd);
	for (size_t i = 0; i < c.njobs; i++)
		free(c.jobs[i].rel);
	for (size_t i = 0; i < c.ndirs; i++)
		free(c.dirs[i]);
	for (size_t i = 0; paths && i < m->ntensors; i++)
		free(paths[i]);
	for (size_t i = 0; i < c.nrecords; i++)
		free(c.records[i].rel);
	free(c.records);
	free(c.jobs);
	free(c.dirs);
	free(c.dir_recorded);
	free(c.dir_modes);
	free(paths);
	pthread_mutex_destroy(&c.journal_lock);
	tpfs_tool_close(m, c.view);
	int sig = atomic_load(&stop_signal);
	return rc == 0 ? 0 : sig ? 128 + sig : 1;
}

const struct tpfs_tool tpfs_export_convert = {
	"convert", "SRC OUT [-o OPT[,OPT...]] [--jobs N] [--shard-size SIZE] [--resume]",
	"Writes to OUT the tree a mount of SRC would show (manifest.json\n"
	"included, .tpfs left out), for hosts without FUSE. Files are written\n"
	"under a temporary name and renamed when complete, and recorded with\n"
	"their XXH3 checksum; running again over OUT keeps the files that\n"
	"are complete and verified, redoes the rest, and removes what an\n"
	"earlier run wrote that this one does not. manifest.json is written\n"
	"last: OUT is complete when it is there. Nothing is written when\n"
	"OUT's filesystem has no room for the files to write. On a terminal,\n"
	"a progress line (MiB, MiB/s, time left). Ctrl-C (SIGINT) or SIGTERM\n"
	"stops it cleanly, with exit status 130 (143): the files done stay,\n"
	"and running the same command again finishes the job.\n"
	"  --resume            refuse to start over: OUT must be an earlier output\n"
	"  --jobs N            files converted at once (default: the cores)\n"
	"  --shard-size SIZE   put tensors in shard_000/, shard_001/... folders\n"
	"                      of at most SIZE each (e.g. 1.8G)\n"
	"  -o ...              the mount's conversion options\n",
	2, 2, TPFS_TOOL_CONVERT, run_convert,
};
