/*
 * libFuzzer target for tensor names becoming paths: the rules of the
 * README's "Names" (tree.c), as a model folder applies them (model.c).
 *
 * The input is a flags byte (bit 0: by_file; bits 1-2: mxfp4=f32, raw, both,
 * f32) and then records separated by NUL bytes, each a tag byte and a name.
 * The tag's low 3 bits say what the name is (tags 010 to 017 in octal are
 * the plain cases), bits 4 to 7 are parameters:
 *   0, 1  a tensor in root shard 0 or 1 (model-00001-of-00002.safetensors,
 *         model-00002-of-00002.safetensors)
 *   2     a tensor in sub/model.safetensors
 *   3     an MXFP4 pair NAME_blocks, NAME_scales: bit 4 puts the blocks in
 *         root shard 1, bit 5 the scales; bit 6 writes '.' for '_'; bit 7
 *         gives shapes that disagree
 *   4, 5  a passed-through file, or an empty folder, at NAME (a relative
 *         path; skipped where the disk would not take it)
 *   6     the stem of root shard 0's file name (bit 4: shard 1's), for by_file
 *   7     a tensor in both root shards
 *
 * Each input is tried twice. First on a tree alone, with every name as
 * bytes (invalid UTF-8, names the header parser refuses): every
 * tpfs_tree_add_tensor succeeds. Then, when the headers are valid, as a
 * folder written to a temporary folder (in /dev/shm where there is one)
 * and opened with tpfs_model_open: the model is refused exactly when a
 * namespace holds one name twice (or may be when an MXFP4 pair is
 * involved), with a one-line message; otherwise every tensor written is
 * served once (or hidden as half of a pair), at the place the rules give.
 *
 * Both check the tree's invariants (check_tree): every node reachable from
 * the root by its path, its parent a folder that comes before it (so no
 * cycles), (parent, name) unique, every component non-empty, not "." or
 * "..", without '/' and at most 255 bytes, manifest.json and .tpfs
 * tpfs's own with no tensor inside .tpfs, and, once finished, each folder's
 * children exactly its nodes, sorted. And each tensor's place (check_placed):
 * its name split on '/' below its namespace folder, every component valid
 * by rule 1, or the rest of the name from some component as one file in the
 * folder the components before it lead to, named by rule 2 (escaped, cut
 * before a %XX or UTF-8 character, hashed) with rule 3's smallest free ~N.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "tpfs/file.h"
#include "tpfs/manifest.h"
#include "tpfs/model.h"
#include "tpfs/safetensors.h"
#include "tpfs/tree.h"
#include "tpfs/error.h"
#include "tpfs/buf.h"
#include "tpfs/path.h"

#define NAME_MAX_BYTES 255
#define MAX_RECORDS 48

/* ---- The tree's invariants: the only code here that reads the tree. ---- */

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Rule 1's test of one component (extra: ".npy" on the last). */
static bool safe_component(const char *s, size_t n, size_t extra)
{
	if (n == 0 || n + extra > NAME_MAX_BYTES)
		return false;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (is_control((unsigned char)s[i]))
			return false;
	return true;
}

/* The node at path, looked up component by component from the root. */
static long node_at(const struct tpfs_tree *t, const char *path)
{
	long at = 0;
	char comp[NAME_MAX_BYTES + 2];
	for (const char *p = path; *p && at >= 0;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n > NAME_MAX_BYTES)
			return -1;
		memcpy(comp, p, n);
		comp[n] = '\0';
		at = tpfs_tree_lookup(t, (uint32_t)at, comp);
		p = slash ? slash + 1 : p + n;
	}
	return at;
}

static void check_tree(const struct tpfs_tree *t, bool finished)
{
	size_t n = t->nnodes;
	FUZZ_CHECK(n >= 1 && t->nodes[0].kind == TPFS_NODE_DIR &&
			   strcmp(t->nodes[0].name, "") == 0 && t->nodes[0].parent == 0,
		   "the root");
	long hidden = tpfs_tree_lookup(t, 0, ".tpfs");
	long manifest = tpfs_tree_lookup(t, 0, "manifest.json");
	FUZZ_CHECK(hidden > 0 && t->nodes[hidden].kind == TPFS_NODE_DIR &&
			   (t->nodes[hidden].flags & TPFS_NODE_SEALED),
		   ".tpfs is not tpfs's folder");
	FUZZ_CHECK(manifest > 0 && t->nodes[manifest].kind == TPFS_NODE_MANIFEST,
		   "manifest.json is not the manifest");
	bool *inside = calloc(n, sizeof(*inside));
	for (size_t i = 1; i < n; i++) {
		const struct tpfs_node *x = &t->nodes[i];
		const char *name = x->name;
		size_t len = strlen(name);
		/* A parent comes before its children (tpfs_tree_finish relies on
		 * it): so the parent chain ends at the root, without cycles. */
		FUZZ_CHECK(x->parent < i && t->nodes[x->parent].kind == TPFS_NODE_DIR,
			   "node %zu '%s': parent %u", i, name, x->parent);
		FUZZ_CHECK(len >= 1 && len <= NAME_MAX_BYTES && strcmp(name, ".") != 0 &&
				   strcmp(name, "..") != 0 && !strchr(name, '/'),
			   "node %zu: bad component '%s' (%zu bytes)", i, name, len);
		FUZZ_CHECK(tpfs_tree_lookup(t, x->parent, name) == (long)i,
			   "node %zu '%s' is not what its name finds (two of that name?)", i,
			   name);
		/* .tpfs holds folders and stats, and they are nowhere else. */
		inside[i] = (long)i == hidden || inside[x->parent];
		bool own = x->kind == TPFS_NODE_STATS;
		FUZZ_CHECK(inside[i] ? own || x->kind == TPFS_NODE_DIR : !own,
			   "node %zu '%s' of kind %d %s .tpfs", i, name, (int)x->kind,
			   inside[i] ? "inside" : "outside");
		char *path = tpfs_tree_path(t, (uint32_t)i);
		FUZZ_CHECK(path && node_at(t, path) == (long)i, "node %zu: path '%s' leads elsewhere",
			   i, path ? path : "(null)");
		free(path);
	}
	free(inside);
	if (!finished)
		return;
	/* Each folder's children are exactly the nodes whose parent it is,
	 * sorted; every node but the root is someone's child once. */
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		if (t->nodes[i].kind != TPFS_NODE_DIR)
			continue;
		const struct tpfs_dir *x = tpfs_tree_dir_of(t, (uint32_t)i);
		FUZZ_CHECK((size_t)x->child0 + x->nchild <= n - 1, "node %zu: children out of range",
			   i);
		for (uint32_t k = 0; k < x->nchild; k++) {
			uint32_t c = t->children[x->child0 + k];
			FUZZ_CHECK(c > 0 && c < n && t->nodes[c].parent == i,
				   "node %zu: child %u is not its own", i, c);
			FUZZ_CHECK(k == 0 || strcmp(t->nodes[t->children[x->child0 + k - 1]].name,
						    t->nodes[c].name) < 0,
				   "node %zu: children not sorted at '%s'", i, t->nodes[c].name);
		}
		total += x->nchild;
	}
	FUZZ_CHECK(total == n - 1, "%zu children for %zu nodes", total, n);
}

/* Rule 2's escape, written here from the README: '%', '/' and control
 * bytes as %XX. */
static char *escape(const char *s)
{
	char *out = malloc(3 * strlen(s) + 1), *o = out;
	*o = '\0';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		o += *p == '%' || *p == '/' || is_control(*p) ? sprintf(o, "%%%02X", *p)
							       : sprintf(o, "%c", *p);
	return out;
}

/* The name rules 2 and 3 give for base (escaped), full (what is hashed),
 * suffix number k (0: none) and ext: base~k+ext when it fits in 255 bytes,
 * else the longest prefix of base that leaves room for ~ and 16 hex digits
 * and cuts no %XX and no UTF-8 character. */
static void fitted(const char *base, const char *full, unsigned k, const char *ext,
		   char out[NAME_MAX_BYTES + 2])
{
	char suffix[16] = "";
	if (k)
		snprintf(suffix, sizeof(suffix), "~%u", k);
	size_t extra = strlen(suffix) + strlen(ext), n = strlen(base);
	if (n + extra <= NAME_MAX_BYTES) {
		snprintf(out, NAME_MAX_BYTES + 2, "%s%s%s", base, suffix, ext);
		return;
	}
	size_t q = NAME_MAX_BYTES - extra - 17;
	while (q > 0 && ((base[q] & 0xc0) == 0x80 || base[q - 1] == '%' ||
			 (q >= 2 && base[q - 2] == '%')))
		q--;
	snprintf(out, NAME_MAX_BYTES + 2, "%.*s~%016llx%s%s", (int)q, base,
		 (unsigned long long)XXH3_64bits(full, strlen(full)), suffix, ext);
}

/* The node under parent is named by fitted() with the smallest k whose name
 * was free: every smaller k's name is taken. */
static void check_fitted(const struct tpfs_tree *t, long node, const char *base,
			 const char *full, const char *ext)
{
	const char *got = t->nodes[node].name;
	uint32_t parent = t->nodes[node].parent;
	char want[NAME_MAX_BYTES + 2];
	for (unsigned k = 0;; k++) {
		fitted(base, full, k, ext, want);
		if (strcmp(got, want) == 0)
			return;
		FUZZ_CHECK(tpfs_tree_lookup(t, parent, want) >= 0,
			   "'%s' is named '%s', but '%s' is free", full, got, want);
	}
}

/* The tensor name was placed at node under its namespace folder ns: split
 * by rule 1; or, when a component is unsafe, one file in ns by rules 2 and
 * 3; or, when a component met a file or a taken name, the rest of the name
 * from that component as one file by rules 2 and 3 in the folder the
 * components before it lead to. */
static void check_placed(const struct tpfs_tree *t, uint32_t ns, const char *name,
			 long node)
{
	FUZZ_CHECK(node > 0 && (size_t)node < t->nnodes &&
			   t->nodes[node].kind == TPFS_NODE_TENSOR,
		   "tensor '%s' at node %ld", name, node);
	/* rule 1 takes at most 1024 bytes and 64 components */
	bool split = strlen(name) <= 1024;
	for (const char *p = name, *slash; split; p = slash + 1) {
		slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		split = safe_component(p, n, slash ? 0 : 4);
		if (!slash)
			break;
	}
	size_t depth = 1;
	for (const char *p = name; *p; p++)
		depth += *p == '/';
	split = split && depth <= 64;
	/* Down the components from ns as far as the node's folder. */
	uint32_t parent = t->nodes[node].parent;
	long at = ns;
	const char *rest = name;
	while (split && at != (long)parent) {
		const char *slash = strchr(rest, '/');
		FUZZ_CHECK(slash, "tensor '%s' at '%s' is not below the folders its name "
				  "enters", name, t->nodes[node].name);
		char comp[NAME_MAX_BYTES + 2];
		snprintf(comp, sizeof(comp), "%.*s", (int)(slash - rest), rest);
		at = tpfs_tree_lookup(t, (uint32_t)at, comp);
		FUZZ_CHECK(at >= 0 && t->nodes[at].kind == TPFS_NODE_DIR,
			   "tensor '%s': no folder '%s' on its way", name, comp);
		rest = slash + 1;
	}
	FUZZ_CHECK(at == (long)parent, "tensor '%s' at '%s' is neither split nor flat in "
				       "its folder", name, t->nodes[node].name);
	char leaf[NAME_MAX_BYTES + 2];
	snprintf(leaf, sizeof(leaf), "%s.npy", rest);
	if (split && !strchr(rest, '/') && strcmp(t->nodes[node].name, leaf) == 0)
		return; /* rule 1 all the way */
	char *base = escape(rest);
	check_fitted(t, node, base, name, ".npy");
	free(base);
}

/* A by_file folder: the stem when rule 1 takes it, else the file's escaped
 * name; then rule 3. */
static void check_file_folder(const struct tpfs_tree *t, long node, const char *stem,
			      const char *file)
{
	FUZZ_CHECK(node > 0 && t->nodes[node].kind == TPFS_NODE_DIR, "folder of %s", file);
	bool safe = safe_component(stem, strlen(stem), 0);
	char *base = safe ? strdup(stem) : escape(file);
	check_fitted(t, node, base, safe ? stem : file, "");
	free(base);
}

/* ---- The input ---- */

enum { SHARD0, SHARD1, SHARD_SUB, NSHARDS };

struct tensor_rec {
	const char *name;        /* NUL-terminated, in the input copy */
	char *owned;             /* the pair halves' names */
	int shard;
	bool pair_half, wide;    /* wide: a scales half that disagrees */
};

struct input {
	bool by_file;
	int mxfp4;               /* 0: f32, 1: raw, 2: both */
	char *copy;
	struct tensor_rec tensors[3 * MAX_RECORDS];
	size_t ntensors;
	const char *paths[MAX_RECORDS];  /* passed-through files and folders */
	bool is_dir[MAX_RECORDS];
	size_t npaths;
	const char *bases[MAX_RECORDS];  /* pair names, for the tree alone */
	size_t nbases;
	const char *stem[2];
};

static void add_tensor_rec(struct input *in, const char *name, char *owned, int shard,
			   bool half, bool wide)
{
	in->tensors[in->ntensors++] = (struct tensor_rec){name, owned, shard, half, wide};
}

static void read_input(struct input *in, const uint8_t *data, size_t size)
{
	memset(in, 0, sizeof(*in));
	in->stem[0] = "model-00001-of-00002";
	in->stem[1] = "model-00002-of-00002";
	if (size == 0)
		return;
	in->by_file = data[0] & 1;
	in->mxfp4 = (data[0] >> 1) & 3;
	if (in->mxfp4 == 3)
		in->mxfp4 = 0;
	in->copy = malloc(size);
	memcpy(in->copy, data + 1, size - 1);
	in->copy[size - 1] = '\0';
	size_t nrec = 0;
	for (char *p = in->copy; p < in->copy + size - 1 && nrec < MAX_RECORDS;
	     p += strlen(p) + 1, nrec++) {
		if (!*p)
			continue;
		unsigned tag = (unsigned char)*p;
		const char *name = p + 1;
		switch (tag % 8) {
		case 0:
		case 1:
		case 2:
			add_tensor_rec(in, name, NULL, (int)(tag % 8), false, false);
			break;
		case 3: {
			char sep = tag & 0x40 ? '.' : '_';
			size_t n = strlen(name) + 8;
			char *b = malloc(n), *s = malloc(n);
			snprintf(b, n, "%s%cblocks", name, sep);
			snprintf(s, n, "%s%cscales", name, sep);
			add_tensor_rec(in, b, b, (tag >> 4) & 1, true, false);
			add_tensor_rec(in, s, s, (tag >> 5) & 1, true, (tag >> 7) & 1);
			in->bases[in->nbases++] = name;
			break;
		}
		case 4:
		case 5:
			in->is_dir[in->npaths] = tag % 8 == 5;
			in->paths[in->npaths++] = name;
			break;
		case 6: /* a file name has no '/' */
			if (!strchr(name, '/'))
				in->stem[(tag >> 4) & 1] = name;
			break;
		case 7:
			add_tensor_rec(in, name, NULL, SHARD0, false, false);
			add_tensor_rec(in, name, NULL, SHARD1, false, false);
			break;
		}
	}
}

static void free_input(struct input *in)
{
	for (size_t i = 0; i < in->ntensors; i++)
		free(in->tensors[i].owned);
	free(in->copy);
}

/* A relative path that the disk takes as it is: components of 1 to 255
 * bytes, not "." or "..", no empty ones; and no name that the loader reads
 * as a Safetensors file or index (it would refuse an empty one). */
static bool disk_path_ok(const char *p)
{
	if (!*p || tpfs_path_has_suffix(p, ".safetensors") ||
	    tpfs_path_has_suffix(p, ".safetensors.index.json"))
		return false;
	int depth = 0;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || n > NAME_MAX_BYTES || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.') || ++depth > 4)
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

/* ---- The tree alone: raw names ---- */

static const struct timespec T0 = {1700000000, 0};

/* What model.c puts in the tree before the walk. */
static void tree_start(struct tpfs_tree *t)
{
	FUZZ_CHECK(tpfs_tree_init(t, T0) == 0, "init");
	long hidden = tpfs_tree_dir(t, 0, ".tpfs", T0);
	FUZZ_CHECK(hidden > 0 && tpfs_tree_dir(t, (uint32_t)hidden, "info", T0) > 0, ".tpfs");
	tpfs_tree_seal(t, (uint32_t)hidden);
	FUZZ_CHECK(tpfs_tree_leaf(t, 0, "manifest.json", TPFS_NODE_MANIFEST, NULL) > 0 &&
			   tpfs_tree_leaf(t, (uint32_t)hidden, "stats", TPFS_NODE_STATS, NULL) > 0,
		   "tpfs's files");
}

/* A passed-through path as the walk adds it: folders, then the file; a name
 * the mount already shows (.tpfs, manifest.json) is skipped. */
static void tree_add_path(struct tpfs_tree *t, const char *path, bool dir)
{
	char *copy = strdup(path);
	long at = 0;
	char *p = copy;
	for (char *slash; (slash = strchr(p, '/')) != NULL && at >= 0; p = slash + 1) {
		*slash = '\0';
		at = tpfs_tree_dir(t, (uint32_t)at, p, T0);
		if (at >= 0 && (t->nodes[at].flags & TPFS_NODE_SEALED))
			at = -1;
	}
	if (at >= 0 && tpfs_tree_lookup(t, (uint32_t)at, p) < 0) {
		if (dir)
			tpfs_tree_dir(t, (uint32_t)at, p, T0);
		else
			tpfs_tree_leaf(t, (uint32_t)at, p, TPFS_NODE_FILE, NULL);
	}
	free(copy);
}

static void tree_alone(const struct input *in)
{
	struct tpfs_tree t;
	tree_start(&t);
	for (size_t i = 0; i < in->npaths; i++)
		if (disk_path_ok(in->paths[i]))
			tree_add_path(&t, in->paths[i], in->is_dir[i]);
	/* The namespaces: the root (or its files' folders) and sub/. */
	long sub = tpfs_tree_dir(&t, 0, "sub", T0);
	if (sub < 0)
		sub = tpfs_tree_add_folder(&t, 0, "sub", "sub", T0);
	FUZZ_CHECK(sub > 0, "sub");
	long ns[NSHARDS] = {0, 0, sub};
	for (int k = 0; in->by_file && k < 2; k++) {
		char file[2 * NAME_MAX_BYTES];
		snprintf(file, sizeof(file), "%s.safetensors", in->stem[k]);
		ns[k] = tpfs_tree_add_folder(&t, 0, in->stem[k], file, T0);
		FUZZ_CHECK(ns[k] > 0, "folder of %s", file);
		check_file_folder(&t, ns[k], in->stem[k], file);
	}
	/* Every name, as bytes, and the names pairs would add. */
	long *node = calloc(in->ntensors + in->nbases + 1, sizeof(*node));
	for (size_t i = 0; i < in->ntensors; i++) {
		const struct tensor_rec *r = &in->tensors[i];
		node[i] = tpfs_tree_add_tensor(&t, (uint32_t)ns[r->shard], r->name, (void *)r,
					       T0, NULL);
		FUZZ_CHECK(node[i] > 0, "tensor '%s' not added: %ld", r->name, node[i]);
	}
	for (size_t i = 0; i < in->nbases; i++) {
		node[in->ntensors + i] = tpfs_tree_add_tensor(&t, 0, in->bases[i],
							      (void *)&in->bases[i], T0, NULL);
		FUZZ_CHECK(node[in->ntensors + i] > 0, "tensor '%s' not added", in->bases[i]);
	}
	check_tree(&t, false);
	for (size_t i = 0; i < in->ntensors; i++)
		check_placed(&t, (uint32_t)ns[in->tensors[i].shard], in->tensors[i].name, node[i]);
	for (size_t i = 0; i < in->nbases; i++)
		check_placed(&t, 0, in->bases[i], node[in->ntensors + i]);
	FUZZ_CHECK(tpfs_tree_finish(&t) == 0, "finish");
	check_tree(&t, true);
	free(node);
	tpfs_tree_free(&t);
}

/* ---- The model: a folder on disk ---- */

static char *workdir;  /* this process's temporary folder */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void rm_workdir(void)
{
	if (workdir)
		rm_tree(workdir);
}

static void json_string(struct tpfs_buf *b, const char *s)
{
	tpfs_buf_puts(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\' || *p < 0x20)
			tpfs_buf_printf(b, "\\u%04x", *p);
		else
			tpfs_buf_append(b, p, 1);
	}
	tpfs_buf_puts(b, "\"");
}

/* One shard's bytes: the header for its tensors (U8 [1]; a pair's blocks
 * [1, 16] and scales [1], or [2] to disagree), then zeros. NULL when the
 * header parser refuses it (invalid UTF-8, a name twice, __metadata__). */
static uint8_t *shard_bytes(const struct input *in, int shard, size_t *len)
{
	struct tpfs_buf b = {0};
	tpfs_buf_puts(&b, "{");
	uint64_t at = 0;
	bool first = true;
	for (size_t i = 0; i < in->ntensors; i++) {
		const struct tensor_rec *r = &in->tensors[i];
		if (r->shard != shard)
			continue;
		bool blocks = r->pair_half && !r->wide && tpfs_path_has_suffix(r->name, "blocks");
		uint64_t n = blocks ? 16 : r->wide ? 2 : 1;
		if (!first)
			tpfs_buf_puts(&b, ",");
		first = false;
		json_string(&b, r->name);
		tpfs_buf_printf(&b, ":{\"dtype\":\"U8\",\"shape\":[%s],\"data_offsets\":[%llu,%llu]}",
				blocks ? "1,16" : r->wide ? "2" : "1", (unsigned long long)at,
				(unsigned long long)(at + n));
		at += n;
	}
	tpfs_buf_puts(&b, "}");
	size_t hlen;
	char *header = tpfs_buf_take(&b, &hlen);
	*len = 8 + hlen + at;
	uint8_t *bytes = calloc(1, *len);
	for (int i = 0; i < 8; i++)
		bytes[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
	memcpy(bytes + 8, header, hlen);
	free(header);
	struct tpfs_st_header *h = NULL;
	struct tpfs_error e;
	if (tpfs_st_parse("shard", bytes, *len, *len, &h, &e) < 0) {
		free(bytes);
		return NULL;
	}
	tpfs_st_free(h);
	return bytes;
}

static bool write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return false;
	bool ok = tpfs_path_write_all(fd, data, len) == 0;
	close(fd);
	return ok;
}

/* mkdir -p of path's folders (and of path itself when dir). */
static bool make_path(const char *root, const char *rel, bool dir, const void *data,
		      size_t len)
{
	char *full = tpfs_path_join(root, rel);
	bool ok = true;
	for (char *s = full + strlen(root) + 1; ok && (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		ok = mkdir(full, 0755) == 0 || errno == EEXIST;
		*s = '/';
	}
	if (ok)
		ok = dir ? mkdir(full, 0755) == 0 : write_file(full, data, len);
	free(full);
	return ok;
}

static const char *base_of(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* The entry at a path of the served view, or a negative errno. */
static long view_at(const struct tpfs_view *view, const char *path)
{
	char *copy = strdup(path);
	long at = 0;
	for (char *p = copy, *slash; at >= 0 && p; p = slash ? slash + 1 : NULL) {
		slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		at = tpfs_view_lookup(view, (uint32_t)at, p);
	}
	free(copy);
	return at;
}

/* Checks a loaded model against what was written. */
static void check_model(struct tpfs_model *m, const struct input *in)
{
	const struct tpfs_tree *t = &m->tree;
	struct tpfs_view *view = tpfs_view_create(m);
	FUZZ_CHECK(view != NULL, "no view");
	check_tree(t, true);
	long sub = tpfs_tree_lookup(t, 0, "sub");
	size_t ntensor_nodes = 0;
	for (size_t i = 0; i < t->nnodes; i++)
		ntensor_nodes += t->nodes[i].kind == TPFS_NODE_TENSOR;
	FUZZ_CHECK(ntensor_nodes == m->ntensors, "%zu tensors in %zu nodes", m->ntensors,
		   ntensor_nodes);
	for (size_t i = 0; i < m->ntensors; i++) {
		const struct tpfs_tensor *x = &m->tensors[i];
		const struct tpfs_source *src = x->part[0].src;
		long node = x->node;
		FUZZ_CHECK(node > 0 && (size_t)node < t->nnodes &&
				   t->nodes[node].kind == TPFS_NODE_TENSOR &&
				   t->nodes[node].payload == x,
			   "tensor '%s' is not at its node", x->name);
		char *path = tpfs_tree_path(t, (uint32_t)node);
		FUZZ_CHECK(path && node_at(t, path) == node && tpfs_path_has_suffix(path, ".npy"),
			   "tensor '%s': path '%s'", x->name, path);
		/* Its folder: the source's folder, or with by_file the file's
		 * folder inside it. */
		long folder = strchr(src->rel, '/') ? sub : 0;
		FUZZ_CHECK(folder >= 0, "no sub/ for %s", src->rel);
		long ns = folder;
		if (in->by_file) {
			ns = node;
			while (ns > 0 && t->nodes[ns].parent != (uint32_t)folder)
				ns = t->nodes[ns].parent;
			FUZZ_CHECK(ns > 0, "tensor '%s' outside its file's folder", x->name);
			const char *file = base_of(src->rel);
			char *stem = strndup(file, strlen(file) - strlen(".safetensors"));
			check_file_folder(t, ns, stem, file);
			free(stem);
		}
		check_placed(t, (uint32_t)ns, x->name, node);
		/* A pair is its halves' name, without the _blocks/_scales. */
		if (x->part[1].st) {
			size_t n = strlen(x->name);
			const char *b = x->part[0].st->name, *s = x->part[1].st->name;
			FUZZ_CHECK(strncmp(b, x->name, n) == 0 && strncmp(s, x->name, n) == 0 &&
					   (b[n] == '_' || b[n] == '.') && s[n] == b[n] &&
					   strcmp(b + n + 1, "blocks") == 0 &&
					   strcmp(s + n + 1, "scales") == 0 && in->mxfp4 != 1,
				   "pair '%s' of '%s' and '%s'", x->name, b, s);
		} else {
			FUZZ_CHECK(strcmp(x->name, x->part[0].st->name) == 0, "tensor '%s' is '%s'",
				   x->name, x->part[0].st->name);
		}
		/* Names are unique in a namespace. */
		for (size_t j = 0; j < i; j++) {
			const struct tpfs_tensor *y = &m->tensors[j];
			bool in_sub = strchr(src->rel, '/') != NULL;
			bool same_ns = in->by_file ? y->part[0].src == src
						   : (strchr(y->part[0].src->rel, '/') != NULL) == in_sub;
			FUZZ_CHECK(!same_ns || strcmp(x->name, y->name) != 0,
				   "tensor '%s' served twice", x->name);
		}
		/* Its card, unless a folder of cards took that name. */
		char card[4096];
		snprintf(card, sizeof(card), ".tpfs/info/%.*s.txt",
			 (int)(strlen(path) - strlen(".npy")), path);
		long c = view_at(view, card);
		struct tpfs_view_attr a;
		FUZZ_CHECK(c >= 0 && tpfs_view_stat(view, (uint32_t)c, &a) == 0 &&
				   (tpfs_view_tensor(view, (uint32_t)c) == x ||
				    a.kind == TPFS_NODE_DIR),
			   "card of '%s' at '%s' is missing or something else", x->name, card);
		free(path);
	}
	/* Every tensor written is served once, or hidden as half of a pair. */
	for (size_t k = 0; k < m->nsources; k++) {
		const struct tpfs_source *s = m->sources[k];
		for (size_t j = 0; s->st && j < s->st->ntensors; j++) {
			const struct tpfs_st_tensor *st = &s->st->tensors[j];
			size_t served = 0, halves = 0;
			for (size_t i = 0; i < m->ntensors; i++) {
				const struct tpfs_tensor *x = &m->tensors[i];
				served += !x->part[1].st && x->part[0].st == st;
				halves += x->part[1].st && (x->part[0].st == st || x->part[1].st == st);
			}
			FUZZ_CHECK(served == (halves == 0 || in->mxfp4 == 2) && halves <= 1,
				   "tensor '%s' of %s served %zu times, in %zu pairs", st->name,
				   s->rel, served, halves);
		}
	}
	/* manifest.json lists each tensor with its name and path. */
	struct tpfs_manifest *mf = tpfs_manifest_create(m);
	uint64_t mlen = mf ? tpfs_manifest_size(mf) : 0;
	char *text = malloc(mlen + 1);
	FUZZ_CHECK(mf && text && tpfs_manifest_read(mf, 0, mlen, text) == (ssize_t)mlen,
		   "manifest.json cannot be read");
	tpfs_manifest_destroy(mf);
	cJSON *j = cJSON_ParseWithLength(text, mlen);
	free(text);
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "tensors");
	FUZZ_CHECK(cJSON_GetArraySize(ts) == (int)m->ntensors, "manifest.json's tensors");
	for (size_t i = 0; i < m->ntensors; i++) {
		const cJSON *x = cJSON_GetArrayItem(ts, (int)i);
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(x, "name");
		const cJSON *path = cJSON_GetObjectItemCaseSensitive(x, "path");
		FUZZ_CHECK(cJSON_IsString(name) && cJSON_IsString(path) &&
				   strcmp(name->valuestring, m->tensors[i].name) == 0 &&
				   node_at(t, path->valuestring) == m->tensors[i].node,
			   "manifest.json's entry for '%s'", m->tensors[i].name);
	}
	cJSON_Delete(j);
	tpfs_view_destroy(view);
}

/* Whether a namespace holds one name in two files (the loader must refuse),
 * and whether pairing could refuse it (a _blocks/.blocks name). */
static void expect_refusal(const struct input *in, bool *must, bool *may)
{
	*must = *may = false;
	for (size_t i = 0; i < in->ntensors; i++) {
		const struct tensor_rec *a = &in->tensors[i];
		size_t n = strlen(a->name);
		if (in->mxfp4 != 1 && n >= 8 && strcmp(a->name + n - 6, "blocks") == 0 &&
		    (a->name[n - 7] == '_' || a->name[n - 7] == '.'))
			*may = true;
		for (size_t j = 0; j < i; j++) {
			const struct tensor_rec *b = &in->tensors[j];
			bool same_ns = in->by_file ? a->shard == b->shard
						   : (a->shard == SHARD_SUB) == (b->shard == SHARD_SUB);
			if (same_ns && a->shard != b->shard && strcmp(a->name, b->name) == 0)
				*must = true;
		}
	}
}

static void model_level(const struct input *in)
{
	/* Within one shard a name twice is the header parser's refusal. */
	for (size_t i = 0; i < in->ntensors; i++)
		for (size_t j = 0; j < i; j++)
			if (in->tensors[i].shard == in->tensors[j].shard &&
			    strcmp(in->tensors[i].name, in->tensors[j].name) == 0)
				return;
	char file0[2 * NAME_MAX_BYTES], file1[2 * NAME_MAX_BYTES];
	snprintf(file0, sizeof(file0), "%s.safetensors", in->stem[0]);
	snprintf(file1, sizeof(file1), "%s.safetensors", in->stem[1]);
	if (strlen(file0) > NAME_MAX_BYTES || strlen(file1) > NAME_MAX_BYTES ||
	    strcmp(file0, file1) == 0 ||
	    strcmp(file0, "sub") == 0 || strcmp(file1, "sub") == 0)
		return;
	char *files[NSHARDS] = {file0, file1, "sub/model.safetensors"};
	uint8_t *bytes[NSHARDS] = {0};
	size_t len[NSHARDS];
	bool ok = true, any_sub = false;
	for (size_t i = 0; i < in->ntensors; i++)
		any_sub |= in->tensors[i].shard == SHARD_SUB;
	for (int k = 0; k < NSHARDS && ok; k++)
		if (k != SHARD_SUB || any_sub)
			ok = (bytes[k] = shard_bytes(in, k, &len[k])) != NULL;
	char *root = tpfs_path_join(workdir, "m");
	if (ok && mkdir(root, 0755) == 0) {
		for (int k = 0; k < NSHARDS; k++)
			if (bytes[k])
				FUZZ_CHECK(make_path(root, files[k], false, bytes[k], len[k]),
					   "cannot write %s", files[k]);
		for (size_t i = 0; i < in->npaths; i++)
			if (disk_path_ok(in->paths[i]))
				make_path(root, in->paths[i], in->is_dir[i], "x", 1);
		struct tpfs_options o;
		tpfs_options_defaults(&o);
		o.by_file = in->by_file;
		o.mxfp4 = in->mxfp4 == 1 ? TPFS_OUT_RAW : in->mxfp4 == 2 ? TPFS_OUT_BOTH : TPFS_OUT_F32;
		struct tpfs_model *m = NULL;
		struct tpfs_error e = {{0}};
		int rc = tpfs_model_open(root, &o, &m, &e);
		bool must, may;
		expect_refusal(in, &must, &may);
		if (rc < 0) {
			FUZZ_CHECK(m == NULL && e.msg[0] && !strchr(e.msg, '\n') &&
					   !strchr(e.msg, '\r'),
				   "refusal message '%s'", e.msg);
			FUZZ_CHECK(rc == -EINVAL && (must || may), "refused: %s", e.msg);
		} else {
			FUZZ_CHECK(!must, "two tensors of one name accepted");
			check_model(m, in);
		}
		tpfs_model_close(m);
	}
	for (int k = 0; k < NSHARDS; k++)
		free(bytes[k]);
	rm_tree(root);
	free(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	struct stat st;
	const char *tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm"
									    : getenv("TMPDIR");
	if (asprintf(&workdir, "%s/tpfs-fuzz-XXXXXX", tmp ? tmp : "/tmp") < 0 ||
	    !mkdtemp(workdir))
		abort();
	atexit(rm_workdir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in;
	read_input(&in, data, size);
	tree_alone(&in);
	model_level(&in);
	free_input(&in);
	return 0;
}
