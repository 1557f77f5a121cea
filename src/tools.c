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
	unsigned char *buf = t ? malloc(CHUNK) : NULL;
	int rc = 0;
	if (!t) {
		fprintf(stderr, "tpfs cat: %s: no tensor '%s' ('tpfs ls %s' lists them)\n",
			a.pos[0], a.pos[1], a.pos[0]);
		rc = 1;
	}
	for (uint64_t off = 0; buf && off < t->npy_size && rc == 0;) {
		ssize_t got = tpfs_file_read(fs, t->node, off, CHUNK, buf);
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
};

struct convert {
	struct tpfs_fs *fs;
	const char *out;
	struct job *jobs;
	size_t njobs;
	atomic_size_t next;           /* the next job to take */
	atomic_uint_fast64_t bytes;   /* bytes written or verified so far */
	atomic_size_t done;
	uint64_t total;
	struct record *records;       /* from a previous run, sorted by rel */
	size_t nrecords;
	FILE *journal;
	pthread_mutex_t journal_lock;
	bool tty;
};

static int cmp_records(const void *a, const void *b)
{
	return strcmp(((const struct record *)a)->rel, ((const struct record *)b)->rel);
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

static void hash_hex(XXH64_hash_t h, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* A file of a previous run is kept if it has the recorded size and hash,
 * which j takes. */
static bool verified(struct convert *c, struct job *j, unsigned char *buf)
{
	struct record key = {.rel = j->rel};
	const struct record *r =
		c->nrecords ? bsearch(&key, c->records, c->nrecords, sizeof(key), cmp_records)
			    : NULL;
	if (!r || r->size != j->size)
		return false;
	char *path = out_path(c, j->rel, NULL);
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	free(path);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != j->size) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	XXH3_state_t *h = XXH3_createState();
	XXH3_64bits_reset(h);
	bool ok = true;
	for (uint64_t at = 0; at < j->size && ok;) {
		ssize_t got = pread(fd, buf, CHUNK, (off_t)at);
		ok = got > 0;
		if (ok) {
			XXH3_64bits_update(h, buf, (size_t)got);
			at += (uint64_t)got;
		}
	}
	hash_hex(XXH3_64bits_digest(h), j->hash);
	XXH3_freeState(h);
	close(fd);
	return ok && strcmp(j->hash, r->hash) == 0;
}

/* Write one file under a temporary name, then give it its name. */
static int write_job(struct convert *c, struct job *j, unsigned char *buf)
{
	char *tmp = out_path(c, j->rel, PARTIAL), *path = out_path(c, j->rel, NULL);
	int fd = tmp ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
	int rc = fd < 0 ? -errno : 0;
	XXH3_state_t *h = XXH3_createState();
	XXH3_64bits_reset(h);
	for (uint64_t at = 0; at < j->size && rc == 0;) {
		ssize_t got = tpfs_file_read(c->fs, j->node, at, CHUNK, buf);
		rc = got <= 0 ? (got < 0 ? (int)got : -EIO) : write_all(fd, buf, (size_t)got);
		if (rc == 0) {
			XXH3_64bits_update(h, buf, (size_t)got);
			at += (uint64_t)got;
			atomic_fetch_add(&c->bytes, (uint64_t)got);
		}
	}
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
	unsigned char *buf = malloc(CHUNK);
	for (size_t i; buf && (i = atomic_fetch_add(&c->next, 1)) < c->njobs;) {
		struct job *j = &c->jobs[i];
		if (verified(c, j, buf)) {
			j->state = SKIPPED;
			atomic_fetch_add(&c->bytes, j->size);
		} else {
			j->state = write_job(c, j, buf) == 0 ? WRITTEN : FAILED;
		}
		if (j->state != FAILED) {
			pthread_mutex_lock(&c->journal_lock);
			fprintf(c->journal, "%s %" PRIu64 " %s\n", j->hash, j->size, j->rel);
			fflush(c->journal);
			fdatasync(fileno(c->journal));
			pthread_mutex_unlock(&c->journal_lock);
		}
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
 * the options that change bytes (not cache_size or block_size). */
static void fingerprint(const struct tpfs_model *m, char out[17])
{
	XXH3_state_t *h = XXH3_createState();
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
}

/* OUT must be new, empty, or a previous output (it has the journal). Loads
 * the journal's records when its fingerprint matches. */
static int prepare_out(struct convert *c, const char *fp)
{
	if (mkdir_parents(c->out) < 0 || (mkdir(c->out, 0755) < 0 && errno != EEXIST)) {
		fprintf(stderr, "tpfs convert: %s: %s\n", c->out, strerror(errno));
		return -1;
	}
	char *jpath = out_path(c, JOURNAL, NULL);
	FILE *j = jpath ? fopen(jpath, "r") : NULL;
	if (!j) {
		size_t n = 0;
		DIR *d = opendir(c->out);
		struct dirent *de;
		while (d && (de = readdir(d)) != NULL)
			n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
		if (d)
			closedir(d);
		if (!d || n) {
			fprintf(stderr, "tpfs convert: %s is not empty and holds no earlier tpfs "
					"convert output (no %s file); choose an empty or new folder\n",
				c->out, JOURNAL);
			free(jpath);
			return -1;
		}
	} else {
		char line[8192], jfp[64] = "";
		if (fgets(line, sizeof(line), j) && sscanf(line, "tpfs-convert 1 %63s", jfp) == 1 &&
		    strcmp(jfp, fp) == 0) {
			while (fgets(line, sizeof(line), j)) {
				struct record r = {0};
				char rel[4096];
				line[strcspn(line, "\n")] = '\0';
				if (sscanf(line, "%16s %" SCNu64 " %4095[^\n]", r.hash, &r.size, rel) != 3)
					continue;
				struct record *grown = realloc(c->records, (c->nrecords + 1) * sizeof(*grown));
				if (!grown || !(r.rel = strdup(rel))) {
					free(grown == c->records ? NULL : grown);
					break;
				}
				c->records = grown;
				c->records[c->nrecords++] = r;
			}
			if (c->nrecords > 1)
				qsort(c->records, c->nrecords, sizeof(*c->records), cmp_records);
		} else {
			fprintf(stderr, "tpfs convert: %s holds the output of another model or "
					"other options; rewriting it\n", c->out);
		}
		fclose(j);
	}
	/* Start the journal afresh; kept records are written back as kept. */
	c->journal = jpath ? fopen(jpath, "w") : NULL;
	free(jpath);
	if (!c->journal) {
		fprintf(stderr, "tpfs convert: %s: %s\n", c->out, strerror(errno));
		return -1;
	}
	fprintf(c->journal, "tpfs-convert 1 %s\n", fp);
	fflush(c->journal);
	return 0;
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

static int cmp_jobs_by_path(const void *a, const void *b)
{
	return strcmp(((const struct job *)a)->rel, ((const struct job *)b)->rel);
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
	int fd = text && tmp ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
	int rc = fd < 0 ? -errno : write_all(fd, text, len);
	if (fd >= 0 && (close(fd) < 0 || rc < 0 || rename(tmp, path) < 0) && rc == 0)
		rc = -errno;
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
		       "their XXH3 checksum; running again over OUT (or with --resume)\n"
		       "keeps the files that are complete and verified and redoes the rest.\n"
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
	fingerprint(m, fp);
	char **paths = calloc(m->ntensors + 1, sizeof(*paths));
	int rc = paths ? plan(&c, m, a.shard_size, paths) : -ENOMEM;
	if (rc < 0)
		fprintf(stderr, "tpfs convert: out of memory\n");
	else if (prepare_out(&c, fp) < 0)
		rc = -1;
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
		qsort(c.jobs, c.njobs, sizeof(*c.jobs), cmp_jobs_by_path);
		rc = write_manifest(&c, m, paths, fp);
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
