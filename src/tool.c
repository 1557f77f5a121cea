/*
 * ls and cat, and what the subcommands share (see tool.h).
 */
#include "tool.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tpfs/buf.h"
#include "tpfs/card.h"
#include "tpfs/file.h"
#include "tpfs/guard.h"
#include "tpfs/log.h"
#include "tpfs/manifest.h"
#include "tpfs/model.h"
#include "tpfs/error.h"
#include "tpfs/size.h"
#include "tpfs/path.h"

/* Parse [-o LIST] and the flags t takes, and up to t->max_pos positionals.
 * Returns 0, or 2 after printing the mistake. */
static int parse(const struct tpfs_tool *t, int argc, char **argv, struct tpfs_tool_args *a)
{
	const char *cmd = t->name;
	memset(a, 0, sizeof(*a));
	tpfs_options_defaults(&a->opt);
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		struct tpfs_error e;
		bool human = t->flags & TPFS_TOOL_HUMAN;
		if ((strcmp(s, "-h") == 0 && !human) || strcmp(s, "--help") == 0) {
			a->help = true;
		} else if ((strcmp(s, "-h") == 0 || strcmp(s, "--human-readable") == 0) && human) {
			a->human = true;
		} else if (strncmp(s, "-o", 2) == 0) {
			const char *list = s[2] ? s + 2 : v;
			if (!s[2])
				i++;
			if (!list || tpfs_options_parse(&a->opt, list, NULL, NULL, NULL, &e) < 0) {
				fprintf(stderr, "tpfs %s: %s\n", cmd,
					list ? e.msg : "-o needs a list of options");
				return 2;
			}
		} else if (strcmp(s, "--json") == 0 && (t->flags & TPFS_TOOL_JSON)) {
			a->json = true;
		} else if (strcmp(s, "--resume") == 0 && (t->flags & TPFS_TOOL_CONVERT)) {
			a->resume = true;
		} else if (strcmp(s, "--jobs") == 0 && (t->flags & TPFS_TOOL_CONVERT)) {
			char *end;
			a->jobs = v ? strtol(v, &end, 10) : 0;
			if (!v || *end || a->jobs < 1 || a->jobs > 256) {
				fprintf(stderr, "tpfs %s: --jobs needs a number from 1 to 256\n", cmd);
				return 2;
			}
			i++;
		} else if (strcmp(s, "--shard-size") == 0 && (t->flags & TPFS_TOOL_CONVERT)) {
			if (!v || tpfs_size_parse(v, &a->shard_size) < 0 || !a->shard_size) {
				fprintf(stderr, "tpfs %s: --shard-size needs a size such as 1.8G\n",
					cmd);
				return 2;
			}
			i++;
		} else if (s[0] == '-' && s[1]) {
			fprintf(stderr, "tpfs %s: unknown flag '%s' (see 'tpfs %s --help')\n", cmd,
				s, cmd);
			return 2;
		} else if (a->npos < t->max_pos) {
			a->pos[a->npos++] = s;
		} else {
			fprintf(stderr, "tpfs %s: unexpected argument '%s'\n", cmd, s);
			return 2;
		}
	}
	return 0;
}

int tpfs_tool_main(const struct tpfs_tool *t, int argc, char **argv)
{
	struct tpfs_tool_args a;
	int rc = parse(t, argc, argv, &a);
	if (rc == 0 && a.help) {
		printf("usage: tpfs %s %s\n\n%s", t->name, t->args, t->about);
		return 0;
	}
	if (rc == 0 && a.npos < t->min_pos) {
		fprintf(stderr, "tpfs %s: %s\n", t->name,
			a.npos ? "too few arguments" : "arguments missing");
		rc = 2;
	}
	if (rc) {
		fprintf(stderr, "usage: tpfs %s %s\n", t->name, t->args);
		return rc;
	}
	return t->run(&a);
}

void tpfs_tool_say(FILE *f, const char *fmt, ...)
{
	struct tpfs_buf raw = {0}, line = {0};
	va_list ap;
	va_start(ap, fmt);
	tpfs_buf_vprintf(&raw, fmt, ap);
	va_end(ap);
	char *text = tpfs_buf_take(&raw, NULL);
	tpfs_buf_escape(&line, text ? text : "out of memory", "");
	tpfs_buf_puts(&line, "\n");
	free(text);
	text = tpfs_buf_take(&line, NULL);
	fputs(text ? text : "out of memory\n", f);
	free(text);
}

int tpfs_tool_open(const char *cmd, const struct tpfs_tool_args *a, struct tpfs_model **m,
		   struct tpfs_view **view)
{
	struct tpfs_error e;
	*view = NULL;
	if (tpfs_guard_install() < 0 || tpfs_model_open(a->pos[0], &a->opt, m, &e) < 0) {
		fprintf(stderr, "tpfs %s: %s\n", cmd, e.msg);
		return 1;
	}
	*view = tpfs_view_create(*m);
	if (!*view) {
		fprintf(stderr, "tpfs %s: out of memory\n", cmd);
		tpfs_model_close(*m);
		return 1;
	}
	return 0;
}

void tpfs_tool_close(struct tpfs_model *m, struct tpfs_view *view)
{
	tpfs_view_destroy(view);
	tpfs_model_close(m);
}

/* The tensor at a path of the tree, or NULL. */
static const struct tpfs_tensor *tensor_at(const struct tpfs_model *m, const char *path)
{
	char *copy = strdup(path);
	long node = copy ? 0 : -1;
	for (char *p = copy, *slash; node >= 0 && p; p = slash ? slash + 1 : NULL) {
		slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		node = tpfs_tree_lookup(&m->tree, (uint32_t)node, p);
	}
	free(copy);
	return node > 0 && m->tree.nodes[node].kind == TPFS_NODE_TENSOR
		       ? m->tree.nodes[node].payload : NULL;
}

/* A tensor by name, by path, or by path without ".npy". */
static const struct tpfs_tensor *find_tensor(const struct tpfs_model *m, const char *key)
{
	for (size_t i = 0; i < m->ntensors; i++)
		if (strcmp(m->tensors[i].name, key) == 0)
			return &m->tensors[i];
	const struct tpfs_tensor *t = tensor_at(m, key);
	char *npy = t ? NULL : malloc(strlen(key) + 5);
	if (npy) {
		sprintf(npy, "%s.npy", key);
		t = tensor_at(m, npy);
		free(npy);
	}
	return t;
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

enum { COLS = 8 };

/* The cells of a tensor's row: pointers into the tensor and into the row. */
struct row {
	const char *v[COLS];
	char shape[256], num[3][24];
	char *name, *file;    /* written as messages write them (tpfs_tool_say) */
	uint64_t bytes;       /* stored */
};

/* A byte count as digits, or as `ls -h` shows it. */
static const char *bytes_text(uint64_t n, bool human, char *buf, size_t len)
{
	if (human)
		return tpfs_size_human(n, buf, len);
	snprintf(buf, len, "%" PRIu64, n);
	return buf;
}

static char *escaped(const char *s)
{
	struct tpfs_buf b = {0};
	tpfs_buf_escape(&b, s, "");
	return tpfs_buf_take(&b, NULL);
}

static void row_free(struct row *r)
{
	free(r->name);
	free(r->file);
}

/* false when out of memory */
static bool row_of(const struct tpfs_tensor *t, bool human, struct row *r)
{
	r->name = escaped(t->name);
	r->file = escaped(t->part[0].src->rel);
	tpfs_st_shape_str(t->shape, t->ndim, r->shape, sizeof(r->shape));
	r->bytes = 0;
	for (int k = 0; k < 2 && t->part[k].st; k++)
		r->bytes += t->part[k].st->end - t->part[k].st->begin;
	snprintf(r->num[0], sizeof(r->num[0]), "%" PRIu64, t->nelem);
	bytes_text(r->bytes, human, r->num[1], sizeof(r->num[1]));
	bytes_text(tpfs_tensor_npy_size(t), human, r->num[2], sizeof(r->num[2]));
	const char *v[COLS] = {r->name, tpfs_tensor_source_dtype(t), r->shape, r->num[0],
			       r->num[1], tpfs_tensor_descr(t), r->num[2], r->file};
	memcpy(r->v, v, sizeof(v));
	return r->name && r->file;
}

static void print_row(const char *const *v, const size_t *width, bool tty)
{
	for (int c = 0; c < COLS; c++) {
		bool right = c == 3 || c == 4 || c == 6;
		if (!tty)
			printf("%s%s", v[c], c + 1 < COLS ? "\t" : "\n");
		else if (c + 1 == COLS)
			printf("%s\n", v[c]);
		else
			printf(right ? "%*s  " : "%-*s  ", (int)width[c], v[c]);
	}
}

/* a and b (na and nb bytes) in natural order: a run of digits against a
 * run of digits by its value ("layers.2" before "layers.10"), other bytes
 * by their value, and where one name has a digit or its end and the other
 * any other byte, the first before ("w" before "w1" before "w_bias", "a1"
 * before "a.1"), as if each name were its list of texts and numbers. Names
 * equal so ("a01", "a1") compare by their bytes. */
static int natural_cmp(const char *a, size_t na, const char *b, size_t nb)
{
	size_t i = 0, k = 0;
	while (i < na || k < nb) {
		/* 0: the end, 1: a digit, 2: any other byte */
		int ra = i == na ? 0 : isdigit((unsigned char)a[i]) ? 1 : 2;
		int rb = k == nb ? 0 : isdigit((unsigned char)b[k]) ? 1 : 2;
		if (ra != rb)
			return ra - rb;
		if (ra == 2 && a[i] != b[k])
			return (unsigned char)a[i] - (unsigned char)b[k];
		if (ra == 2) {
			i++, k++;
			continue;
		}
		while (i < na && a[i] == '0')
			i++;
		while (k < nb && b[k] == '0')
			k++;
		size_t da = i, db = k;
		while (da < na && isdigit((unsigned char)a[da]))
			da++;
		while (db < nb && isdigit((unsigned char)b[db]))
			db++;
		if (da - i != db - k)
			return da - i < db - k ? -1 : 1;
		int c = memcmp(a + i, b + k, da - i);
		if (c)
			return c;
		i = da, k = db;
	}
	int c = memcmp(a, b, na < nb ? na : nb);
	return c ? c : na < nb ? -1 : na > nb;
}

/* The bytes of a tensor's source path that name its namespace: its
 * folder, or with by_file its file. */
static size_t namespace_len(const struct tpfs_model *m, const struct tpfs_tensor *t)
{
	const char *rel = t->part[0].src->rel, *slash = strrchr(rel, '/');
	return m->opt.by_file ? strlen(rel) : slash ? (size_t)(slash - rel) : 0;
}

/* Tensors listed folder by folder (or file by file, with by_file), by
 * name, each in natural order. */
static int cmp_listed(const void *x, const void *y, void *model)
{
	const struct tpfs_model *m = model;
	const struct tpfs_tensor *a = &m->tensors[*(const size_t *)x];
	const struct tpfs_tensor *b = &m->tensors[*(const size_t *)y];
	int c = natural_cmp(a->part[0].src->rel, namespace_len(m, a), b->part[0].src->rel,
			    namespace_len(m, b));
	return c ? c : natural_cmp(a->name, strlen(a->name), b->name, strlen(b->name));
}

/* Two passes over the tensors, the first for the column widths, so that a
 * model of a million tensors is listed in the memory of one row (and its
 * order). Returns 0 or -ENOMEM. */
static int print_table(const struct tpfs_model *m, bool human)
{
	static const char *const head[COLS] = {"NAME", "DTYPE", "SHAPE", "PARAMS", "BYTES",
					       "SERVED", "NPY BYTES", "FILE"};
	bool tty = isatty(STDOUT_FILENO);
	size_t n = m->ntensors, width[COLS];
	uint64_t params = 0, source = 0, served = 0;
	size_t per_dtype[TPFS_DT_COUNT + 1] = {0};
	size_t *order = malloc((n + 1) * sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), cmp_listed, (void *)m);
	for (int c = 0; c < COLS; c++)
		width[c] = strlen(head[c]);
	struct row r;
	bool ok = true;
	for (size_t i = 0; ok && tty && i < n; i++) {
		ok = row_of(&m->tensors[i], human, &r);
		for (int c = 0; ok && c < COLS; c++)
			width[c] = strlen(r.v[c]) > width[c] ? strlen(r.v[c]) : width[c];
		row_free(&r);
	}
	if (ok)
		print_row(head, width, tty);
	for (size_t i = 0; ok && i < n; i++) {
		const struct tpfs_tensor *t = &m->tensors[order[i]];
		ok = row_of(t, human, &r);
		if (ok)
			print_row(r.v, width, tty);
		row_free(&r);
		params += t->nelem;
		source += r.bytes;
		served += tpfs_tensor_npy_size(t);
		per_dtype[t->part[1].st ? TPFS_DT_COUNT : t->part[0].st->dtype]++;
	}
	free(order);
	if (!ok)
		return -ENOMEM;
	char a[32], b[32], c[32];
	if (human)
		printf("%s%zu tensors, %s parameters, %s stored, %s served\n", tty ? "" : "# ", n,
		       grouped(params, a, sizeof(a)), tpfs_size_human(source, b, sizeof(b)),
		       tpfs_size_human(served, c, sizeof(c)));
	else
		printf("%s%zu tensors, %s parameters, %s bytes stored, %s bytes served\n",
		       tty ? "" : "# ", n, grouped(params, a, sizeof(a)),
		       grouped(source, b, sizeof(b)), grouped(served, c, sizeof(c)));
	printf("%sdtypes:", tty ? "" : "# ");
	for (int d = 0; d <= TPFS_DT_COUNT; d++)
		if (per_dtype[d])
			printf(" %s %zu", d == TPFS_DT_COUNT ? "MXFP4"
						: tpfs_dtype_info((enum tpfs_dtype)d)->name,
			       per_dtype[d]);
	printf("\n");
	return 0;
}

/* The card of t, with the statistics s, as one JSON object on a line: the
 * tensor's manifest record and the card's own members (card.h). */
static int print_card_json(const struct tpfs_model *m, const struct tpfs_tensor *t,
			   const struct tpfs_card_stats *s)
{
	char *path = tpfs_tree_path(&m->tree, t->node);
	if (!path)
		return -ENOMEM;
	struct tpfs_buf b = {0};
	tpfs_buf_puts(&b, "{");
	tpfs_manifest_tensor(&b, t, path);
	tpfs_buf_puts(&b, ", ");
	tpfs_card_json(&b, t, s);
	tpfs_buf_puts(&b, "}\n");
	free(path);
	size_t len;
	char *text = tpfs_buf_take(&b, &len);
	if (!text)
		return -ENOMEM;
	fwrite(text, 1, len, stdout);
	free(text);
	return 0;
}

static int run_ls(const struct tpfs_tool_args *a)
{
	if (a->human && (a->json || a->npos == 2)) {
		fprintf(stderr, "tpfs ls: -h sizes the table's bytes: it does not go with --json "
				"or TENSOR\n");
		return 2;
	}
	struct tpfs_model *m;
	struct tpfs_view *view;
	if (tpfs_tool_open("ls", a, &m, &view))
		return 1;
	int rc = 0;
	if (a->npos == 2) {
		const struct tpfs_tensor *t = find_tensor(m, a->pos[1]);
		const char *text;
		size_t len;
		const struct tpfs_card_stats *s;
		int err = t ? tpfs_file_card(view, (size_t)(t - m->tensors), &text, &len, &s)
			    : 0;
		if (!t) {
			tpfs_tool_say(stderr, "tpfs ls: %s: no tensor '%s' ('tpfs ls %s' lists "
				      "them)", a->pos[0], a->pos[1], a->pos[0]);
			rc = 1;
		} else if (err == 0 && a->json) {
			err = print_card_json(m, t, s);
		} else if (err == 0) {
			fwrite(text, 1, len, stdout);
		}
		if (err < 0) {
			tpfs_tool_say(stderr, "tpfs ls: %s: %s", t->name, strerror(-err));
			rc = 1;
		}
	} else if (a->json) {
		fflush(stdout);
		int err = tpfs_manifest_write(m, NULL, NULL, STDOUT_FILENO);
		if (err < 0) {
			fprintf(stderr, "tpfs ls: %s\n", strerror(-err));
			rc = 1;
		}
	} else if (print_table(m, a->human) < 0) {
		fprintf(stderr, "tpfs ls: out of memory\n");
		rc = 1;
	}
	tpfs_tool_close(m, view);
	return rc;
}

/* ---- cat ---------------------------------------------------------------- */

static int run_cat(const struct tpfs_tool_args *a)
{
	if (isatty(STDOUT_FILENO)) {
		fprintf(stderr, "tpfs cat: standard output is a terminal; redirect it to a "
				"file or a pipe\n");
		return 2;
	}
	struct tpfs_model *m;
	struct tpfs_view *view;
	if (tpfs_tool_open("cat", a, &m, &view))
		return 1;
	const struct tpfs_tensor *t = find_tensor(m, a->pos[1]);
	size_t unit = tpfs_tool_read_unit(m);
	unsigned char *buf = t ? malloc(unit) : NULL;
	int rc = 0;
	if (!t) {
		tpfs_tool_say(stderr, "tpfs cat: %s: no tensor '%s' ('tpfs ls %s' lists them)",
			      a->pos[0], a->pos[1], a->pos[0]);
		rc = 1;
	} else if (!buf) {
		fprintf(stderr, "tpfs cat: out of memory\n");
		rc = 1;
	}
	for (uint64_t off = 0; rc == 0 && off < tpfs_tensor_npy_size(t);) {
		ssize_t got = tpfs_file_read(view, t->node, off, unit, buf);
		int err = got <= 0 ? (got < 0 ? (int)-got : EIO) : -tpfs_path_write_all(1, buf, (size_t)got);
		if (err) {
			tpfs_tool_say(stderr, "tpfs cat: %s: %s", t->name, strerror(err));
			rc = 1;
		}
		off += got > 0 ? (uint64_t)got : 0;
	}
	free(buf);
	tpfs_tool_close(m, view);
	return rc;
}

const struct tpfs_tool tpfs_tool_ls = {
	"ls", "SRC [TENSOR] [--json] [-h] [-o OPT[,OPT...]]",
	"Lists the tensors tpfs would serve for SRC without mounting it:\n"
	"name, source dtype, shape, parameters, stored bytes, the dtype and\n"
	".npy size served, and the file; totals at the end. The rows go folder\n"
	"by folder (file by file with -o by_file), by name, in natural order:\n"
	"digits compare by value (layers.2 before layers.10).\n"
	"With TENSOR (a name or a path), prints that tensor's info card,\n"
	"statistics included (reads the tensor once).\n"
	"  --json   manifest.json instead of the table, in its own order, which\n"
	"           programs may rely on: names by their bytes, as the mount\n"
	"           lists them. With TENSOR, the card as one JSON object: the\n"
	"           tensor's manifest record with \"parameters\", \"bytes\" and\n"
	"           \"stats\" (min, max, mean, std, nan, inf, first, last; null\n"
	"           where the card says n/a; \"nan\", \"inf\" and \"-inf\" as strings;\n"
	"           a complex value as [real, imaginary])\n"
	"  -h, --human-readable\n"
	"           the table's bytes as ls -h shows them (1.5 KiB, 12 MiB;\n"
	"           1024-based, rounded up)\n"
	"  -o ...   the mount's conversion options\n",
	1, 2, TPFS_TOOL_JSON | TPFS_TOOL_HUMAN, run_ls,
};

const struct tpfs_tool tpfs_tool_cat = {
	"cat", "SRC TENSOR [-o OPT[,OPT...]] > TENSOR.npy",
	"Writes one tensor's .npy (TENSOR is a name or a path) to standard\n"
	"output: the bytes a mount with the same options serves.\n",
	2, 2, 0, run_cat,
};
