/*
 * ls, cat and convert: the model as the mount would show it, without FUSE.
 * They open the model with the same options and read through the same
 * primitive (tpfs_file_read), so what they print and write is byte for byte
 * what a mount serves.
 */
#include "tools.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "tpfs/file.h"
#include "tpfs/guard.h"
#include "tpfs/log.h"
#include "tpfs/model.h"

#define CHUNK ((size_t)8 << 20)
#define JOURNAL ".tpfs-convert"
#define PARTIAL ".tpfs-partial"

struct args {
	const char *pos[3];
	int npos;
	struct tpfs_options opt;
	bool json, resume, help;
	long jobs;
	uint64_t shard_size;
};

/* Parse [-o LIST] [--json] [--jobs N] [--shard-size SIZE] [--resume] and
 * positionals. Returns 0, or 2 after printing an error. */
static int parse(int argc, char **argv, const char *cmd, int max_pos, struct args *a)
{
	memset(a, 0, sizeof(*a));
	tpfs_options_defaults(&a->opt);
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		struct tpfs_error e;
		if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			a->help = true;
		} else if (strncmp(s, "-o", 2) == 0) {
			const char *list = s[2] ? s + 2 : v;
			if (!s[2])
				i++;
			if (!list || tpfs_options_parse(&a->opt, list, NULL, NULL, NULL, &e) < 0) {
				fprintf(stderr, "tpfs %s: %s\n", cmd,
					list ? e.msg : "-o needs a list of options");
				return 2;
			}
		} else if (strcmp(s, "--json") == 0 && strcmp(cmd, "ls") == 0) {
			a->json = true;
		} else if (strcmp(s, "--resume") == 0 && strcmp(cmd, "convert") == 0) {
			a->resume = true;
		} else if (strcmp(s, "--jobs") == 0 && strcmp(cmd, "convert") == 0) {
			char *end;
			a->jobs = v ? strtol(v, &end, 10) : 0;
			if (!v || *end || a->jobs < 1 || a->jobs > 256) {
				fprintf(stderr, "tpfs convert: --jobs needs a number from 1 to 256\n");
				return 2;
			}
			i++;
		} else if (strcmp(s, "--shard-size") == 0 && strcmp(cmd, "convert") == 0) {
			if (!v || tpfs_parse_size(v, &a->shard_size) < 0 || !a->shard_size) {
				fprintf(stderr, "tpfs convert: --shard-size needs a size such as "
						"1.8G\n");
				return 2;
			}
			i++;
		} else if (s[0] == '-' && s[1]) {
			fprintf(stderr, "tpfs %s: unknown flag '%s' (see 'tpfs %s --help')\n", cmd,
				s, cmd);
			return 2;
		} else if (a->npos < max_pos) {
			a->pos[a->npos++] = s;
		} else {
			fprintf(stderr, "tpfs %s: unexpected argument '%s'\n", cmd, s);
			return 2;
		}
	}
	return 0;
}

static int open_model(const char *cmd, const struct args *a, struct tpfs_model **m,
		      struct tpfs_fs **fs)
{
	struct tpfs_error e;
	*fs = NULL;
	if (tpfs_guard_install() < 0 || tpfs_model_open(a->pos[0], &a->opt, m, &e) < 0) {
		fprintf(stderr, "tpfs %s: %s\n", cmd, e.msg);
		return 1;
	}
	*fs = tpfs_fs_create(*m);
	if (!*fs) {
		fprintf(stderr, "tpfs %s: out of memory\n", cmd);
		tpfs_model_close(*m);
		return 1;
	}
	return 0;
}

static void close_model(struct tpfs_model *m, struct tpfs_fs *fs)
{
	tpfs_fs_destroy(fs);
	tpfs_model_close(m);
}

/* A tensor by name, by path, or by path without ".npy". */
static const struct tpfs_tensor *find_tensor(const struct tpfs_model *m, const char *key)
{
	size_t k = strlen(key);
	for (size_t i = 0; i < m->ntensors; i++) {
		const struct tpfs_tensor *t = &m->tensors[i];
		size_t p = strlen(t->path);
		if (strcmp(t->name, key) == 0 || strcmp(t->path, key) == 0 ||
		    (p == k + 4 && strncmp(t->path, key, k) == 0))
			return t;
	}
	return NULL;
}

/* What the tools read at once: at most one block, so that a read pins at
 * most the two blocks it straddles. */
static size_t read_unit(const struct tpfs_model *m)
{
	return m->opt.block_size < CHUNK ? (size_t)m->opt.block_size : CHUNK;
}

static int write_all(int fd, const void *p, size_t n)
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

/* ---- ls ----------------------------------------------------------------- */

static void shape_text(const uint64_t *d, uint32_t n, char *buf, size_t len)
{
	tpfs_shape_str(d, n, buf, len);
}

/* 12345678 -> "12,345,678" */
static const char *grouped(uint64_t v, char *buf, size_t len)
{
	char digits[32];
	int n = snprintf(digits, sizeof(digits), "%" PRIu64, v);
	size_t at = 0;
	for (int i = 0; i < n && at + 2 < len; i++) {
		if (i && (n - i) % 3 == 0)
			buf[at++] = ',';
		buf[at++] = digits[i];
	}
	buf[at] = '\0';
	return buf;
}

static void print_table(const struct tpfs_model *m)
{
	static const char *const head[] = {"NAME", "DTYPE", "SHAPE", "PARAMS", "BYTES",
					   "SERVED", "NPY BYTES", "FILE"};
	enum { COLS = 8 };
	bool tty = isatty(STDOUT_FILENO);
	size_t n = m->ntensors;
	char *(*cell)[COLS] = calloc(n + 1, sizeof(*cell));
	size_t width[COLS] = {0};
	if (!cell) {
		fprintf(stderr, "tpfs ls: out of memory\n");
		return;
	}
	uint64_t params = 0, source = 0, served = 0;
	size_t per_dtype[TPFS_DT_COUNT + 1] = {0};
	for (size_t i = 0; i < n; i++) {
		const struct tpfs_tensor *t = &m->tensors[i];
		char sh[256], s2[256];
		shape_text(t->shape, t->ndim, sh, sizeof(sh));
		uint64_t bytes = 0;
		for (int k = 0; k < 2 && t->part[k].st; k++)
			bytes += t->part[k].st->end - t->part[k].st->begin;
		snprintf(s2, sizeof(s2), "%s", t->part[0].src->rel);
		const char *v[COLS] = {t->name, t->source_dtype, sh, NULL, NULL, t->descr, NULL, s2};
		char num[3][32];
		snprintf(num[0], 32, "%" PRIu64, t->nelem);
		snprintf(num[1], 32, "%" PRIu64, bytes);
		snprintf(num[2], 32, "%" PRIu64, t->npy_size);
		v[3] = num[0];
		v[4] = num[1];
		v[6] = num[2];
		for (int c = 0; c < COLS; c++) {
			cell[i][c] = strdup(v[c]);
			size_t w = strlen(v[c]);
			width[c] = w > width[c] ? w : width[c];
		}
		params += t->nelem;
		source += bytes;
		served += t->npy_size;
		per_dtype[t->part[1].st ? TPFS_DT_COUNT : t->part[0].st->dtype]++;
	}
	for (int c = 0; c < COLS; c++)
		width[c] = strlen(head[c]) > width[c] ? strlen(head[c]) : width[c];
	for (size_t i = 0; i <= n; i++) {
		for (int c = 0; c < COLS; c++) {
			const char *v = i == 0 ? head[c] : cell[i - 1][c];
			bool right = c == 3 || c == 4 || c == 6;
			if (!tty)
				printf("%s%s", v ? v : "", c + 1 < COLS ? "\t" : "\n");
			else if (c + 1 == COLS)
				printf("%s\n", v ? v : "");
			else
				printf(right ? "%*s  " : "%-*s  ", (int)width[c], v ? v : "");
		}
	}
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < COLS; c++)
			free(cell[i][c]);
	free(cell);
	char a[32], b[32], c[32];
	printf("%s%zu tensors, %s parameters, %s bytes stored, %s bytes served\n",
	       tty ? "" : "# ", n, grouped(params, a, sizeof(a)), grouped(source, b, sizeof(b)),
	       grouped(served, c, sizeof(c)));
	printf("%sdtypes:", tty ? "" : "# ");
	for (int d = 0; d <= TPFS_DT_COUNT; d++)
		if (per_dtype[d])
			printf(" %s %zu", d == TPFS_DT_COUNT ? "MXFP4"
						: tpfs_dtype_info((enum tpfs_dtype)d)->name,
			       per_dtype[d]);
	printf("\n");
}

int tpfs_cmd_ls(int argc, char **argv)
{
	struct args a;
	if (parse(argc, argv, "ls", 2, &a))
		return 2;
	if (a.help || a.npos < 1) {
		printf("usage: tpfs ls SRC [TENSOR] [--json] [-o OPT[,OPT...]]\n\n"
		       "Lists the tensors tpfs would serve for SRC without mounting it:\n"
		       "name, source dtype, shape, parameters, stored bytes, the dtype and\n"
		       ".npy size served, and the file; totals at the end. --json prints\n"
		       "manifest.json instead. With TENSOR (a name or a path), prints that\n"
		       "tensor's info card, statistics included (reads the tensor once).\n"
		       "The -o options are the mount's conversion options.\n");
		return a.help ? 0 : 2;
	}
	struct tpfs_model *m;
	struct tpfs_fs *fs;
	if (open_model("ls", &a, &m, &fs))
		return 1;
	int rc = 0;
	if (a.npos == 2) {
		const struct tpfs_tensor *t = find_tensor(m, a.pos[1]);
		const char *text;
		size_t len;
		int err = t ? tpfs_file_info(fs, (size_t)(t - m->tensors), &text, &len) : 0;
		if (!t) {
			fprintf(stderr, "tpfs ls: %s: no tensor '%s' ('tpfs ls %s' lists them)\n",
				a.pos[0], a.pos[1], a.pos[0]);
			rc = 1;
		} else if (err < 0) {
			fprintf(stderr, "tpfs ls: %s: %s\n", t->name, strerror(-err));
			rc = 1;
		} else {
			fwrite(text, 1, len, stdout);
		}
	} else if (a.json) {
		fwrite(m->manifest, 1, m->manifest_len, stdout);
	} else {
		print_table(m);
	}
	close_model(m, fs);
	return rc;
}

/* ---- cat ---------------------------------------------------------------- */

int tpfs_cmd_cat(int argc, char **argv)
{
	struct args a;
	if (parse(argc, argv, "cat", 2, &a))
		return 2;
	if (a.help || a.npos != 2) {
		printf("usage: tpfs cat SRC TENSOR [-o OPT[,OPT...]] > TENSOR.npy\n\n"
		       "Writes one tensor's .npy (TENSOR is a name or a path) to standard\n"
		       "output: the bytes a mount with the same options serves.\n");
		return a.help ? 0 : 2;
	}
	if (isatty(STDOUT_FILENO)) {
		fprintf(stderr, "tpfs cat: standard output is a terminal; redirect it to a "
				"file or a pipe\n");
		return 2;
	}
	struct tpfs_model *m;
	struct tpfs_fs *fs;
	if (open_model("cat", &a, &m, &fs))
		return 1;
	const struct tpfs_tensor *t = find_tensor(m, a.pos[1]);
	size_t unit = read_unit(m);
	unsigned char *buf = t ? malloc(unit) : NULL;
	int rc = 0;
	if (!t) {
		fprintf(stderr, "tpfs cat: %s: no tensor '%s' ('tpfs ls %s' lists them)\n",
			a.pos[0], a.pos[1], a.pos[0]);
		rc = 1;
	} else if (!buf) {
		fprintf(stderr, "tpfs cat: out of memory\n");
		rc = 1;
	}
	for (uint64_t off = 0; rc == 0 && off < t->npy_size;) {
		ssize_t got = tpfs_file_read(fs, t->node, off, unit, buf);
		int err = got <= 0 ? (got < 0 ? (int)-got : EIO) : -write_all(1, buf, (size_t)got);
		if (err) {
			fprintf(stderr, "tpfs cat: %s: %s\n", t->name, strerror(err));
			rc = 1;
		}
		off += got > 0 ? (uint64_t)got : 0;
	}
	free(buf);
	close_model(m, fs);
	return rc;
}

/* ---- convert ------------------------------------------------------------ */

/*
 * OUT/.tpfs-convert, the journal: the line "tpfs-convert 2", then a line
 * "FINGERPRINT XXH3 SIZE PATH" for each file as it is written or verified,
 * appended and synced at once; a later line for a path replaces the earlier
 * ones. Every path in it was written by tpfs convert, so a run whose plan no
 * longer has it may remove it; its file is trusted again only under the same
 * fingerprint. Each run starts by rewriting the journal with one line a path
 * (nothing is forgotten when a run is cut short), and a complete run ends
 * with only its own files in it.
 */
#define JOURNAL_HEAD "tpfs-convert 2"

struct job {
	uint32_t node;
	char *rel;          /* path under OUT */
	uint64_t size;
	char hash[17];      /* XXH3-64 of the bytes written, hex */
	enum { TODO, SKIPPED, WRITTEN, FAILED } state;
};

struct record {
	char *rel;
	uint64_t size;
	char hash[17];
	char fp[17];        /* the fingerprint of the run that wrote it */
	size_t line;
};

struct convert {
	struct tpfs_fs *fs;
	const char *out;
	const char *fp;               /* this run's fingerprint */
	size_t unit;                  /* bytes read at once */
	struct job *jobs;
	size_t njobs;
	atomic_size_t next;           /* the next job to take */
	atomic_uint_fast64_t bytes;   /* bytes written or verified so far */
	atomic_size_t done;
	uint64_t total;
	struct record *records;       /* from earlier runs, one a path, by path */
	size_t nrecords;
	FILE *journal;
	pthread_mutex_t journal_lock;
	bool tty;
};

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

static char *out_path(const struct convert *c, const char *rel, const char *suffix)
{
	char *p;
	return asprintf(&p, "%s/%s%s", c->out, rel, suffix ? suffix : "") < 0 ? NULL : p;
}

static int mkdir_parents(const char *path)
{
	char *p = strdup(path);
	int rc = p ? 0 : -ENOMEM;
	for (char *s = p ? p + 1 : NULL; s && *s && rc == 0; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			rc = -errno;
		*s = '/';
	}
	free(p);
	return rc;
}

static int sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd < 0 || fsync(fd) < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	return rc;
}

static void hash_hex(XXH64_hash_t h, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* The XXH3-64 of the file at path, which must be size bytes long. Returns 0,
 * or -1 when it is not, cannot be read, or memory is short. */
static int hash_file(const char *path, uint64_t size, unsigned char *buf, size_t unit,
		     char out[17])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	XXH3_state_t *h = NULL;
	bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		  (uint64_t)st.st_size == size && (h = XXH3_createState()) != NULL;
	if (ok)
		XXH3_64bits_reset(h);
	for (uint64_t at = 0; ok && at < size;) {
		ssize_t got = pread(fd, buf, unit, (off_t)at);
		ok = got > 0;
		if (ok) {
			XXH3_64bits_update(h, buf, (size_t)got);
			at += (uint64_t)got;
		}
	}
	if (ok)
		hash_hex(XXH3_64bits_digest(h), out);
	XXH3_freeState(h);
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* Read the journal into c->records, keeping the last line of each path.
 * Returns 0, -EINVAL for a file that is no journal of this format, or
 * -ENOMEM. */
static int load_journal(struct convert *c, FILE *j)
{
	char line[8192];
	if (!fgets(line, sizeof(line), j) || strcmp(line, JOURNAL_HEAD "\n") != 0)
		return -EINVAL;
	size_t cap = 0;
	for (size_t n = 1; fgets(line, sizeof(line), j); n++) {
		struct record r = {.line = n};
		char rel[4096];
		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%16s %16s %" SCNu64 " %4095[^\n]", r.fp, r.hash, &r.size,
			   rel) != 4)
			continue; /* a line cut short */
		if (c->nrecords == cap) {
			cap = cap ? 2 * cap : 64;
			struct record *grown = realloc(c->records, cap * sizeof(*grown));
			if (!grown)
				return -ENOMEM;
			c->records = grown;
		}
		if (!(r.rel = strdup(rel)))
			return -ENOMEM;
		c->records[c->nrecords++] = r;
	}
	if (c->nrecords)
		qsort(c->records, c->nrecords, sizeof(*c->records), cmp_records);
	size_t kept = 0;
	for (size_t i = 0; i < c->nrecords; i++) {
		if (i + 1 < c->nrecords && strcmp(c->records[i].rel, c->records[i + 1].rel) == 0)
			free(c->records[i].rel); /* a later line replaced it */
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
	char *path = out_path(c, JOURNAL, NULL), *tmp = out_path(c, JOURNAL, PARTIAL);
	FILE *f = path && tmp ? fopen(tmp, "w") : NULL;
	int rc = f ? 0 : -errno;
	if (f) {
		fprintf(f, "%s\n", JOURNAL_HEAD);
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%s %s %" PRIu64 " %s\n", r[i].fp, r[i].hash, r[i].size,
				r[i].rel);
		if (fflush(f) != 0 || fdatasync(fileno(f)) < 0)
			rc = -errno;
		if (fclose(f) != 0 && rc == 0)
			rc = -errno;
	}
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0)
		rc = sync_dir(c->out);
	if (c->journal)
		fclose(c->journal);
	c->journal = rc == 0 ? fopen(path, "a") : NULL;
	if (rc == 0 && !c->journal)
		rc = -errno;
	if (rc < 0) {
		fprintf(stderr, "tpfs convert: %s/%s: %s\n", c->out, JOURNAL, strerror(-rc));
		if (tmp)
			unlink(tmp);
	}
	free(path);
	free(tmp);
	return rc;
}

static void journal_add(struct convert *c, const struct job *j)
{
	pthread_mutex_lock(&c->journal_lock);
	fprintf(c->journal, "%s %s %" PRIu64 " %s\n", c->fp, j->hash, j->size, j->rel);
	fflush(c->journal);
	fdatasync(fileno(c->journal));
	pthread_mutex_unlock(&c->journal_lock);
}

static int cmp_record_paths(const void *a, const void *b)
{
	return strcmp(((const struct record *)a)->rel, ((const struct record *)b)->rel);
}

static const struct record *record_of(const struct convert *c, const char *rel)
{
	struct record key = {.rel = (char *)rel};
	return c->nrecords ? bsearch(&key, c->records, c->nrecords, sizeof(key),
				     cmp_record_paths)
			   : NULL;
}

/* A file of an earlier run is kept if this run's fingerprint wrote it and
 * it still has the recorded size and hash, which j takes. */
static bool verified(struct convert *c, struct job *j, unsigned char *buf)
{
	const struct record *r = record_of(c, j->rel);
	if (!r || strcmp(r->fp, c->fp) != 0 || r->size != j->size)
		return false;
	char *path = out_path(c, j->rel, NULL);
	bool ok = path && hash_file(path, j->size, buf, c->unit, j->hash) == 0 &&
		  strcmp(j->hash, r->hash) == 0;
	free(path);
	return ok;
}

/* Write one file under a temporary name, then give it its name. */
static int write_job(struct convert *c, struct job *j, unsigned char *buf)
{
	char *tmp = out_path(c, j->rel, PARTIAL), *path = out_path(c, j->rel, NULL);
	int fd = tmp && path ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
	int rc = fd < 0 ? (tmp && path ? -errno : -ENOMEM) : 0;
	XXH3_state_t *h = rc == 0 ? XXH3_createState() : NULL;
	if (rc == 0 && !h)
		rc = -ENOMEM;
	if (h)
		XXH3_64bits_reset(h);
	for (uint64_t at = 0; at < j->size && rc == 0;) {
		ssize_t got = tpfs_file_read(c->fs, j->node, at, c->unit, buf);
		rc = got <= 0 ? (got < 0 ? (int)got : -EIO) : write_all(fd, buf, (size_t)got);
		if (rc == 0) {
			XXH3_64bits_update(h, buf, (size_t)got);
			at += (uint64_t)got;
			atomic_fetch_add(&c->bytes, (uint64_t)got);
		}
	}
	if (h)
		hash_hex(XXH3_64bits_digest(h), j->hash);
	XXH3_freeState(h);
	if (fd >= 0) {
		if (rc == 0 && fdatasync(fd) < 0)
			rc = -errno;
		if (close(fd) < 0 && rc == 0)
			rc = -errno;
	}
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		fprintf(stderr, "%stpfs convert: %s: %s\n", c->tty ? "\n" : "", j->rel,
			strerror(-rc));
		if (tmp)
			unlink(tmp);
	}
	free(tmp);
	free(path);
	return rc;
}

static void *worker(void *arg)
{
	struct convert *c = arg;
	unsigned char *buf = malloc(c->unit);
	for (size_t i; buf && (i = atomic_fetch_add(&c->next, 1)) < c->njobs;) {
		struct job *j = &c->jobs[i];
		if (verified(c, j, buf)) {
			j->state = SKIPPED;
			atomic_fetch_add(&c->bytes, j->size);
		} else {
			j->state = write_job(c, j, buf) == 0 ? WRITTEN : FAILED;
		}
		if (j->state != FAILED)
			journal_add(c, j);
		atomic_fetch_add(&c->done, 1);
		if (!c->tty && j->state != FAILED) {
			char sz[32];
			printf("%s %s (%s)\n", j->state == SKIPPED ? "kept" : "wrote", j->rel,
			       tpfs_format_size(j->size, sz, sizeof(sz)));
			fflush(stdout);
		}
	}
	if (!buf)
		fprintf(stderr, "tpfs convert: out of memory\n");
	free(buf);
	return NULL;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void progress(struct convert *c, const struct timespec *t0)
{
	uint64_t b = atomic_load(&c->bytes);
	double s = seconds_since(t0), rate = s > 0 ? (double)b / s : 0;
	double eta = rate > 0 ? (double)(c->total - b) / rate : 0;
	int filled = c->total ? (int)(30.0 * (double)b / (double)c->total) : 30;
	char x[32], y[32];
	fprintf(stderr, "\r[%-30.*s] %s / %s  %.0f MB/s  ETA %d:%02d  files %zu/%zu ",
		filled, "##############################", tpfs_format_size(b, x, sizeof(x)),
		tpfs_format_size(c->total, y, sizeof(y)), rate / 1e6, (int)eta / 60,
		(int)eta % 60, atomic_load(&c->done), c->njobs);
}

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
		XXH3_64bits_update(h, t->path, strlen(t->path) + 1);
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

/* path made absolute with its existing part resolved (OUT need not exist
 * yet), or NULL. */
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
	if (r && asprintf(&out, "%s%s%s", r, *tail && strcmp(r, "/") != 0 ? "/" : "", tail) < 0)
		out = NULL;
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
	size_t n = s ? strlen(s) : 0;
	bool inside = s && o && strncmp(o, s, n) == 0 &&
		      (o[n] == '\0' || o[n] == '/' || strcmp(s, "/") == 0);
	free(s);
	free(o);
	return inside;
}

/* OUT must be new, empty, or a previous output (it has the journal); with
 * --resume, a previous output. Loads the journal, removes the manifest (it
 * says the output is whole, and comes back at the end of a complete run)
 * and starts the journal afresh. */
static int prepare_out(struct convert *c, bool resume)
{
	if (mkdir_parents(c->out) < 0 || (mkdir(c->out, 0755) < 0 && errno != EEXIST)) {
		fprintf(stderr, "tpfs convert: %s: %s\n", c->out, strerror(errno));
		return -1;
	}
	char *jpath = out_path(c, JOURNAL, NULL);
	FILE *j = jpath ? fopen(jpath, "r") : NULL;
	free(jpath);
	if (!j) {
		size_t n = 0;
		DIR *d = opendir(c->out);
		struct dirent *de;
		while (d && (de = readdir(d)) != NULL)
			n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
		if (d)
			closedir(d);
		if (resume) {
			fprintf(stderr, "tpfs convert: --resume: %s holds no earlier tpfs convert "
					"output (no %s file)\n", c->out, JOURNAL);
			return -1;
		}
		if (!d || n) {
			fprintf(stderr, "tpfs convert: %s is not empty and holds no earlier tpfs "
					"convert output (no %s file); choose an empty or new folder\n",
				c->out, JOURNAL);
			return -1;
		}
	} else {
		int rc = load_journal(c, j);
		fclose(j);
		if (rc < 0) {
			fprintf(stderr, "tpfs convert: %s/%s: %s\n", c->out, JOURNAL,
				rc == -EINVAL ? "not a journal of this tpfs (its first line is not \""
						JOURNAL_HEAD "\"); choose another folder"
					      : strerror(-rc));
			return -1;
		}
		size_t current = 0;
		for (size_t i = 0; i < c->nrecords; i++)
			current += strcmp(c->records[i].fp, c->fp) == 0;
		if (c->nrecords && !current)
			fprintf(stderr, "tpfs convert: %s holds the output of another model or "
					"other options; rewriting it\n", c->out);
	}
	char *mpath = out_path(c, "manifest.json", NULL);
	if (!mpath || (unlink(mpath) < 0 && errno != ENOENT)) {
		fprintf(stderr, "tpfs convert: %s/manifest.json: %s\n", c->out,
			strerror(mpath ? errno : ENOMEM));
		free(mpath);
		return -1;
	}
	free(mpath);
	return rewrite_journal(c, c->records, c->nrecords) < 0 ? -1 : 0;
}

/* rmdir the folders above path, up to OUT, while they are empty. */
static void remove_empty_parents(const struct convert *c, char *path)
{
	size_t top = strlen(c->out);
	for (size_t n = strlen(path); n > top; n--) {
		while (n > top && path[n - 1] != '/')
			n--;
		if (n <= top + 1) /* the slash after OUT itself */
			break;
		path[n - 1] = '\0';
		if (rmdir(path) < 0)
			break;
	}
}

static int remove_partial(const char *path, const struct stat *st, int type,
			  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	size_t n = strlen(path), k = strlen(PARTIAL);
	if (type == FTW_F && n > k && strcmp(path + n - k, PARTIAL) == 0)
		unlink(path);
	return 0;
}

/* After a complete run: remove the files earlier runs wrote that this run's
 * plan has not (when still as they were written), the folders that leaves
 * empty, and partial files. Jobs are sorted by path. */
static void remove_stale(struct convert *c, unsigned char *buf)
{
	size_t removed = 0;
	for (size_t i = 0; i < c->nrecords; i++) {
		const struct record *r = &c->records[i];
		struct job key = {.rel = r->rel};
		if (bsearch(&key, c->jobs, c->njobs, sizeof(key), cmp_jobs_by_path))
			continue;
		char *path = out_path(c, r->rel, NULL);
		char h[17];
		if (path && hash_file(path, r->size, buf, c->unit, h) == 0 &&
		    strcmp(h, r->hash) == 0 && unlink(path) == 0) {
			removed++;
			remove_empty_parents(c, path);
		} else if (path && access(path, F_OK) == 0) {
			fprintf(stderr, "tpfs convert: left %s in place: it changed after an "
					"earlier run wrote it\n", path);
		}
		free(path);
	}
	nftw(c->out, remove_partial, 16, FTW_PHYS);
	if (removed)
		printf("removed %zu file%s an earlier run wrote that this one does not\n",
		       removed, removed == 1 ? "" : "s");
}

/* The tree's files outside .tpfs, with tensors placed in shard_NNN/ folders
 * of at most shard bytes when shard is not 0 (a bigger tensor gets a
 * folder of its own). paths[i] is tensor i's path under OUT. */
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
		if (shard && used && used + t->npy_size > shard) {
			k++;
			used = 0;
		}
		used += t->npy_size;
		if (shard ? asprintf(&paths[i], "shard_%03d/%s", k, t->path) < 0
			  : !(paths[i] = strdup(t->path)))
			return -ENOMEM;
	}
	for (uint32_t n = 1; n < tree->nnodes; n++) {
		const struct tpfs_node *node = &tree->nodes[n];
		if (node->kind != TPFS_NODE_TENSOR && node->kind != TPFS_NODE_FILE)
			continue; /* folders follow their files; the manifest comes last */
		struct job *j = &c->jobs[c->njobs];
		j->node = n;
		j->size = tpfs_node_size(c->fs, n);
		if (node->kind == TPFS_NODE_TENSOR) {
			size_t i = (size_t)((const struct tpfs_tensor *)node->payload - m->tensors);
			j->rel = strdup(paths[i]);
		} else {
			j->rel = tpfs_tree_path(tree, n);
		}
		if (!j->rel)
			return -ENOMEM;
		c->njobs++;
		c->total += j->size;
	}
	return 0;
}

static int cmp_jobs_by_size(const void *a, const void *b)
{
	const struct job *x = a, *y = b;
	return x->size < y->size ? 1 : x->size > y->size ? -1 : strcmp(x->rel, y->rel);
}

/* OUT/manifest.json: the mount's, with the paths under OUT and a "convert"
 * section listing every file written with its size and XXH3-64. */
static int write_manifest(struct convert *c, const struct tpfs_model *m, char **paths,
			  const char *fp)
{
	struct tpfs_buf x = {0};
	tpfs_buf_printf(&x, "{\"fingerprint\": \"%s\", \"files\": [", fp);
	for (size_t i = 0; i < c->njobs; i++) {
		tpfs_buf_puts(&x, i ? ",\n    {\"path\": " : "\n    {\"path\": ");
		tpfs_buf_json_string(&x, c->jobs[i].rel);
		tpfs_buf_printf(&x, ", \"bytes\": %" PRIu64 ", \"xxh3\": \"%s\"}",
				c->jobs[i].size, c->jobs[i].hash);
	}
	tpfs_buf_puts(&x, "\n  ]}");
	char *extra = tpfs_buf_take(&x, NULL);
	size_t len;
	char *text = extra ? tpfs_manifest_render(m, (const char *const *)paths, extra, &len)
			   : NULL;
	free(extra);
	char *tmp = out_path(c, "manifest.json", PARTIAL), *path = out_path(c, "manifest.json", NULL);
	int rc = text && tmp && path ? 0 : -ENOMEM;
	int fd = rc == 0 ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
	if (rc == 0)
		rc = fd < 0 ? -errno : write_all(fd, text, len);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0)
		rc = sync_dir(c->out);
	if (rc < 0)
		fprintf(stderr, "tpfs convert: %s/manifest.json: %s\n", c->out, strerror(-rc));
	free(text);
	free(tmp);
	free(path);
	return rc;
}

int tpfs_cmd_convert(int argc, char **argv)
{
	struct args a;
	if (parse(argc, argv, "convert", 2, &a))
		return 2;
	if (a.help || a.npos != 2) {
		printf("usage: tpfs convert SRC OUT [-o OPT[,OPT...]] [--jobs N] "
		       "[--shard-size SIZE] [--resume]\n\n"
		       "Writes to OUT the tree a mount of SRC would show (manifest.json\n"
		       "included, .tpfs left out), for hosts without FUSE. Files are written\n"
		       "under a temporary name and renamed when complete, and recorded with\n"
		       "their XXH3 checksum; running again over OUT keeps the files that\n"
		       "are complete and verified, redoes the rest, and removes what an\n"
		       "earlier run wrote that this one does not. manifest.json is written\n"
		       "last: OUT is complete when it is there.\n"
		       "  --resume            refuse to start over: OUT must be an earlier output\n"
		       "  --jobs N            files converted at once (default: the cores)\n"
		       "  --shard-size SIZE   put tensors in shard_000/, shard_001/... folders\n"
		       "                      of at most SIZE each (e.g. 1.8G)\n"
		       "  -o ...              the mount's conversion options\n");
		return a.help ? 0 : 2;
	}
	struct tpfs_model *m;
	struct convert c = {.out = a.pos[1], .tty = isatty(STDERR_FILENO)};
	if (open_model("convert", &a, &m, &c.fs))
		return 1;
	pthread_mutex_init(&c.journal_lock, NULL);
	char fp[17];
	c.fp = fp;
	c.unit = read_unit(m);
	char **paths = calloc(m->ntensors + 1, sizeof(*paths));
	int rc = paths && fingerprint(m, fp) == 0 ? plan(&c, m, a.shard_size, paths) : -ENOMEM;
	if (rc < 0) {
		fprintf(stderr, "tpfs convert: out of memory\n");
	} else if (out_inside_src(a.pos[0], c.out)) {
		fprintf(stderr, "tpfs convert: %s is inside the source folder %s, where it would "
				"be read as part of the model; choose a folder outside it\n",
			c.out, a.pos[0]);
		rc = -1;
	} else if (prepare_out(&c, a.resume) < 0) {
		rc = -1;
	}
	/* Folders first (one thread), then the files, biggest first. */
	for (size_t i = 0; i < c.njobs && rc == 0; i++) {
		char *p = out_path(&c, c.jobs[i].rel, NULL);
		rc = p ? mkdir_parents(p) : -ENOMEM;
		if (rc < 0)
			fprintf(stderr, "tpfs convert: %s: %s\n", c.jobs[i].rel, strerror(-rc));
		free(p);
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (rc == 0) {
		qsort(c.jobs, c.njobs, sizeof(*c.jobs), cmp_jobs_by_size);
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		size_t n = (size_t)(a.jobs ? a.jobs : cores > 0 ? cores : 1);
		pthread_t *th = calloc(n, sizeof(*th));
		size_t started = 0;
		while (th && started < n && pthread_create(&th[started], NULL, worker, &c) == 0)
			started++;
		while (c.tty && atomic_load(&c.done) < c.njobs && started) {
			progress(&c, &t0);
			struct timespec nap = {0, 250000000};
			nanosleep(&nap, NULL);
		}
		for (size_t i = 0; i < started; i++)
			pthread_join(th[i], NULL);
		free(th);
		if (c.tty) {
			progress(&c, &t0);
			fputc('\n', stderr);
		}
		for (size_t i = 0; i < c.njobs; i++)
			rc |= c.jobs[i].state == FAILED || c.jobs[i].state == TODO ? -1 : 0;
		if (!started)
			fprintf(stderr, "tpfs convert: cannot start a thread\n");
	}
	if (rc == 0) {
		/* Complete: tidy up, keep only this run in the journal, and say
		 * so with the manifest. */
		qsort(c.jobs, c.njobs, sizeof(*c.jobs), cmp_jobs_by_path);
		unsigned char *buf = malloc(c.unit);
		struct record *now = calloc(c.njobs + 1, sizeof(*now));
		rc = buf && now ? 0 : -ENOMEM;
		if (rc == 0)
			remove_stale(&c, buf);
		for (size_t i = 0; rc == 0 && i < c.njobs; i++) {
			now[i] = (struct record){.rel = c.jobs[i].rel, .size = c.jobs[i].size};
			memcpy(now[i].hash, c.jobs[i].hash, sizeof(now[i].hash));
			memcpy(now[i].fp, fp, sizeof(now[i].fp));
		}
		if (rc == 0)
			rc = rewrite_journal(&c, now, c.njobs);
		else
			fprintf(stderr, "tpfs convert: out of memory\n");
		if (rc == 0)
			rc = write_manifest(&c, m, paths, fp);
		free(now);
		free(buf);
	}
	size_t written = 0, kept = 0;
	uint64_t params = 0;
	for (size_t i = 0; i < c.njobs; i++) {
		written += c.jobs[i].state == WRITTEN;
		kept += c.jobs[i].state == SKIPPED;
	}
	for (size_t i = 0; i < m->ntensors; i++)
		params += m->tensors[i].nelem;
	double s = seconds_since(&t0);
	char sz[32];
	if (rc == 0)
		printf("converted %s to %s: %zu files written, %zu kept from an earlier run, "
		       "%" PRIu64 " parameters, %s in %.1f s (%.0f MB/s)\n",
		       a.pos[0], c.out, written, kept, params,
		       tpfs_format_size(c.total, sz, sizeof(sz)), s,
		       s > 0 ? (double)atomic_load(&c.bytes) / s / 1e6 : 0.0);
	else if (c.njobs)
		fprintf(stderr, "tpfs convert: %zu of %zu files done; run the same command "
				"again to finish\n",
			written + kept, c.njobs);
	if (c.journal)
		fclose(c.journal);
	for (size_t i = 0; i < c.njobs; i++)
		free(c.jobs[i].rel);
	for (size_t i = 0; paths && i < m->ntensors; i++)
		free(paths[i]);
	for (size_t i = 0; i < c.nrecords; i++)
		free(c.records[i].rel);
	free(c.records);
	free(c.jobs);
	free(paths);
	pthread_mutex_destroy(&c.journal_lock);
	close_model(m, c.fs);
	return rc == 0 ? 0 : 1;
}
