/*
 * ls and cat, and what the subcommands share (see tools.h).
 */
#include "tools.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tpfs/file.h"
#include "tpfs/guard.h"
#include "tpfs/log.h"
#include "tpfs/model.h"

int tpfs_tool_args(int argc, char **argv, const char *cmd, int max_pos, struct args *a)
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

int tpfs_tool_open(const char *cmd, const struct args *a, struct tpfs_model **m,
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

void tpfs_tool_close(struct tpfs_model *m, struct tpfs_fs *fs)
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

size_t tpfs_tool_read_unit(const struct tpfs_model *m)
{
	return m->opt.block_size < TPFS_TOOL_CHUNK ? (size_t)m->opt.block_size : TPFS_TOOL_CHUNK;
}

/* ---- ls ----------------------------------------------------------------- */

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
		tpfs_shape_str(t->shape, t->ndim, sh, sizeof(sh));
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
	if (tpfs_tool_args(argc, argv, "ls", 2, &a))
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
	if (tpfs_tool_open("ls", &a, &m, &fs))
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
	tpfs_tool_close(m, fs);
	return rc;
}

/* ---- cat ---------------------------------------------------------------- */

int tpfs_cmd_cat(int argc, char **argv)
{
	struct args a;
	if (tpfs_tool_args(argc, argv, "cat", 2, &a))
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
	if (tpfs_tool_open("cat", &a, &m, &fs))
		return 1;
	const struct tpfs_tensor *t = find_tensor(m, a.pos[1]);
	size_t unit = tpfs_tool_read_unit(m);
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
		int err = got <= 0 ? (got < 0 ? (int)-got : EIO) : -tpfs_write_all(1, buf, (size_t)got);
		if (err) {
			fprintf(stderr, "tpfs cat: %s: %s\n", t->name, strerror(err));
			rc = 1;
		}
		off += got > 0 ? (uint64_t)got : 0;
	}
	free(buf);
	tpfs_tool_close(m, fs);
	return rc;
}
