/*
 * Loading model folders: the mirror of folders and passed-through files,
 * Hugging Face cache symlinks, sharded namespaces, index checks, duplicate
 * names and by_file, GPT-OSS MXFP4 pairs, raw F6, reserved names, links to
 * folders, and the
 * manifest's fields against offsets computed here from the headers written.
 */
#include <cjson/cJSON.h>

#include "check.h"
#include "fixture.h"
#include "tpfs/manifest.h"
#include "tpfs/model.h"
#include "tpfs/error.h"

static struct tpfs_options defaults(void)
{
	struct tpfs_options o;
	tpfs_options_defaults(&o);
	return o;
}

static struct tpfs_model *open_ok(const char *dir, const struct tpfs_options *o)
{
	struct tpfs_model *m = NULL;
	struct tpfs_error e = {{0}};
	int rc = tpfs_model_open(dir, o, &m, &e);
	CHECKF(rc == 0 && m, "refused: %s", e.msg);
	return m;
}

static void refused(const char *dir, const struct tpfs_options *o, const char *f1,
		    const char *f2)
{
	struct tpfs_model *m = NULL;
	struct tpfs_error e = {{0}};
	int rc = tpfs_model_open(dir, o, &m, &e);
	CHECK(rc < 0 && m == NULL);
	CHECK_CONTAINS(e.msg, f1);
	if (f2)
		CHECK_CONTAINS(e.msg, f2);
	CHECK(strchr(e.msg, '\n') == NULL);
}

/* The node at path (relative to the root), or -1. */
static long node_at(const struct tpfs_model *m, const char *path)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", path);
	long at = 0;
	for (char *save = NULL, *c = strtok_r(buf, "/", &save); c && at >= 0;
	     c = strtok_r(NULL, "/", &save))
		at = tpfs_tree_lookup(&m->tree, (uint32_t)at, c);
	return at;
}

static enum tpfs_node_kind kind_at(const struct tpfs_model *m, const char *path)
{
	long i = node_at(m, path);
	CHECKF(i >= 0, "no %s", path);
	return i >= 0 ? m->tree.nodes[i].kind : TPFS_NODE_DIR;
}

#define U8x4 "{\"%s\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}"

static void st_u8(const char *dir, const char *rel, const char *tensor)
{
	char json[512];
	snprintf(json, sizeof(json), U8x4, tensor);
	CHECK(fx_write_st(dir, rel, json, "abcd", 4) == 0);
}

/* manifest.json as a mount serves it, NUL-terminated; freed by the next
 * call (or leaked once at the end of the test run). */
static const char *manifest_text(const struct tpfs_model *m)
{
	static char *text;
	free(text);
	struct tpfs_manifest *mf = tpfs_manifest_create(m);
	uint64_t n = mf ? tpfs_manifest_size(mf) : 0;
	text = calloc(1, n + 1);
	/* read in uneven pieces, as a reader may */
	for (uint64_t at = 0; mf && text && at < n;) {
		ssize_t got = tpfs_manifest_read(mf, at, 333, text + at);
		CHECK(got > 0);
		if (got <= 0)
			break;
		at += (uint64_t)got;
	}
	tpfs_manifest_destroy(mf);
	CHECK(text && mf);
	return text ? text : "";
}

/* A tensor's path, freed by the next call. */
static const char *path_of(const struct tpfs_model *m, const struct tpfs_tensor *t)
{
	static char *path;
	free(path);
	path = t ? tpfs_tree_path(&m->tree, t->node) : NULL;
	return path ? path : "";
}

static const struct tpfs_tensor *tensor_named(const struct tpfs_model *m, const char *name)
{
	for (size_t i = 0; i < m->ntensors; i++)
		if (strcmp(m->tensors[i].name, name) == 0)
			return &m->tensors[i];
	return NULL;
}

static void folder_is_mirrored_with_passthrough_and_subfolders(void)
{
	char *d = fx_tmpdir();
	CHECK(fx_write(d, "config.json", "{\"a\": 1}\n", 9) == 0);
	CHECK(fx_write(d, "README.md", "# model\n", 8) == 0);
	CHECK(fx_write(d, "empty.txt", "", 0) == 0);
	st_u8(d, "model.safetensors", "embed");
	st_u8(d, "unet/diffusion_pytorch_model.safetensors", "conv.weight");
	st_u8(d, "unet/nested/deeper/w.safetensors", "enc/k");
	CHECK(fx_write(d, "unet/config.json", "{}", 2) == 0);
	struct tpfs_options o = defaults();
	struct tpfs_model *m = open_ok(d, &o);
	if (m) {
		CHECK(kind_at(m, "config.json") == TPFS_NODE_FILE);
		CHECK(kind_at(m, "README.md") == TPFS_NODE_FILE);
		CHECK(kind_at(m, "empty.txt") == TPFS_NODE_FILE);
		CHECK(kind_at(m, "embed.npy") == TPFS_NODE_TENSOR);
		CHECK(kind_at(m, "unet") == TPFS_NODE_DIR);
		CHECK(kind_at(m, "unet/conv.weight.npy") == TPFS_NODE_TENSOR);
		CHECK(kind_at(m, "unet/config.json") == TPFS_NODE_FILE);
		CHECK(kind_at(m, "unet/nested/deeper/enc/k.npy") == TPFS_NODE_TENSOR);
		CHECK(kind_at(m, "manifest.json") == TPFS_NODE_MANIFEST);
		CHECK(kind_at(m, ".tpfs/stats") == TPFS_NODE_STATS);
		CHECK(node_at(m, "model.safetensors") < 0);
		CHECK(m->ntensors == 3);
		const struct tpfs_tensor *t = tensor_named(m, "embed");
		CHECK(t && strcmp(path_of(m, t), "embed.npy") == 0);
		CHECK(t && strcmp(t->part[0].src->rel, "model.safetensors") == 0);
	}
	tpfs_model_close(m);
	fx_rmtree(d);
}

static void hugging_face_cache_symlinks_are_followed(void)
{
	char *d = fx_tmpdir();
	st_u8(d, "blobs/4f1c", "lm_head.weight");
	CHECK(fx_write(d, "blobs/9e0a", "{\"model_type\": \"x\"}", 20) == 0);
	CHECK(fx_symlink(d, "snapshots/rev1/model.safetensors", "../../blobs/4f1c") == 0);
	CHECK(fx_symlink(d, "snapshots/rev1/config.json", "../../blobs/9e0a") == 0);
	char *snap = fx_path(d, "snapshots/rev1");
	struct tpfs_options o = defaults();
	struct tpfs_model *m = open_ok(snap, &o);
	if (m) {
		CHECK(kind_at(m, "lm_head.weight.npy") == TPFS_NODE_TENSOR);
		CHECK(kind_at(m, "config.json") == TPFS_NODE_FILE);
		long c = node_at(m, "config.json");
		if (c >= 0)
			CHECK(((struct tpfs_source *)m->tree.nodes[c].payload)->size == 20);
		CHECK(strcmp(m->tensors[0].part[0].src->rel, "model.safetensors") == 0);
	}
	tpfs_model_close(m);
	/* One symlinked file as the source: named as the link, not the blob. */
	char *one = fx_path(d, "snapshots/rev1/model.safetensors");
	m = open_ok(one, &o);
	if (m) {
		CHECK(strcmp(m->tensors[0].part[0].src->rel, "model.safetensors") == 0);
		CHECK(kind_at(m, "lm_head.weight.npy") == TPFS_NODE_TENSOR);
		CHECK(node_at(m, "config.json") < 0);
	}
	tpfs_model_close(m);
	free(one);
	free(snap);
	fx_rmtree(d);
}

static void loops_and_broken_links_are_skipped(void)
{
	char *d = fx_tmpdir();
	st_u8(d, "model.safetensors", "w");
	CHECK(fx_symlink(d, "sub/up", "..") == 0);
	CHECK(fx_symlink(d, "dangling.json", "nowhere.json") == 0);
	CHECK(fx_write(d, "sub/ok.txt", "ok", 2) == 0);
	struct tpfs_options o = defaults();
	struct tpfs_model *m = open_ok(d, &o);
	if (m) {
		CHECK(kind_at(m, "sub/ok.txt") == TPFS_NODE_FILE);
		CHECK(node_at(m, "sub/up") < 0);
		CHECK(node_at(m, "dangling.json") < 0);
	}
	tpfs_model_close(m);
	fx_rmtree(d);
}

#define SHARD                                                                    \
	"{\"__metadata__\":{\"format\":\"pt\"},"                                        \
	"\"%s\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"               \
	"\"%s\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}"

static void write_shards(const char *d)
{
	char json[512];
	snprintf(json, sizeof(json), SHARD, "a", "b");
	CHECK(fx_write_st(d, "model-00001-of-00002.safetensors", json, "abcd", 4) == 0);
	snprintf(json, sizeof(json), SHARD, "c", "d");
	CHECK(fx_write_st(d, "model-00002-of-00002.safetensors", json, "efgh", 4) == 0);
}

static void write_index(const char *d, const char *map)
{
	char text[1024];
	snprintf(text, sizeof(text), "{\"metadata\":{\"total_size\":8},\"weight_map\":{%s}}",
		 map);
	CHECK(fx_write(d, "model.safetensors.index.json", text, strlen(text)) == 0);
}

#define S1 "\"model-00001-of-00002.safetensors\""
#define S2 "\"model-00002-of-00002.safetensors\""

static void sharded_folder_is_one_namespace(void)
{
	char *d = fx_tmpdir();
	write_shards(d);
	write_index(d, "\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2 ",\"d\":" S2);
	struct tpfs_options o = defaults();
	struct tpfs_model *m = open_ok(d, &o);
	if (m) {
		CHECK(m->ntensors == 4);
		for (int i = 0; i < 4; i++) {
			char want[8];
			snprintf(want, sizeof(want), "%c.npy", 'a' + i);
			CHECK(strcmp(path_of(m, &m->tensors[i]), want) == 0);
		}
		CHECK(kind_at(m, "model.safetensors.index.json") == TPFS_NODE_FILE);
	}
	tpfs_model_close(m);
	fx_rmtree(d);
}

static void index_that_disagrees_with_the_shards_is_refused(void)
{
	struct tpfs_options o = defaults();
	const struct {
		const char *map;
		const char *frag;
	} cases[] = {
		{"\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2 ",\"d\":\"model-00003-of-00003.safetensors\"",
		 "weight_map puts tensor 'd' in 'model-00003-of-00003.safetensors', which is "
		 "not a .safetensors file"},
		{"\"a\":" S1 ",\"b\":" S2 ",\"c\":" S2 ",\"d\":" S2,
		 "weight_map puts tensor 'b' in model-00002-of-00002.safetensors, which has no "
		 "such tensor (it is in model-00001-of-00002.safetensors)"},
		{"\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2,
		 "tensor 'd' of model-00002-of-00002.safetensors is missing from the weight_map"},
		{"\"a\":" S1 ",\"b\":" S1 ",\"c\":" S2 ",\"d\":" S2 ",\"e\":" S2,
		 "weight_map puts tensor 'e' in model-00002-of-00002.safetensors, which has no "
		 "such tensor"},
		{"\"a\":" S1 ",\"a\":" S1, "duplicate key 'a'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *d = fx_tmpdir();
		write_shards(d);
		write_index(d, cases[i].map);
		refused(d, &o, "model.safetensors.index.json: ", cases[i].frag);
		fx_rmtree(d);
	}
}

static void empty_index_is_refused(void)
{
	/* An empty file has no mapping: the index is refused for what it is,
	 * not read from a null pointer. */
	struct tpfs_options o = defaults();
	char *d = fx_tmpdir();
	write_shards(d);
	CHECK(fx_write(d, "model.safetensors.index.json", "", 0) == 0);
	refused(d, &o, "model.safetensors.index.json: the index is empty",
		"(rule: an index is a JSON object with a weight_map)");
	fx_rmtree(d);
}

static void duplicate_names_are_refused_unless_by_file(void)
{
	char *d = fx_tmpdir();
	st_u8(d, "model.safetensors", "x");
	st_u8(d, "adapter_model.safetensors", "x");
	st_u8(d, "model/inner.safetensors", "y");
	struct tpfs_options o = defaults();
	refused(d, &o, "tensor 'x' is in both adapter_model.safetensors and "
		       "model.safetensors",
		"-o by_file");
	o.by_file = true;
	struct tpfs_model *m = open_ok(d, &o);
	if (m) {
		CHECK(kind_at(m, "adapter_model/x.npy") == TPFS_NODE_TENSOR);
		/* "model" is a real folder: the file's folder takes the next name. */
		CHECK(kind_at(m, "model~1/x.npy") == TPFS_NODE_TENSOR);
		CHECK(kind_at(m, "model/inner/y.npy") == TPFS_NODE_TENSOR);
	}
	tpfs_model_close(m);
	fx_rmtree(d);
}

static void bad_header_refuses_the_whole_model(void)
{
	char *d = fx_tmpdir();
	st_u8(d, "good.safetensors", "w");
	CHECK(fx_write_st(d, "sub/bad.safetensors",
			  "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,3]}}",
			  "abc", 3) == 0);
	struct tpfs_options o = defaults();
	char want[4200];
	snprintf(want, sizeof(want), "%s/sub/bad.safetensors: tensor 'w': shape [4] of U8 "
				     "needs 4 bytes",
		 d);
	refused(d, &o, want, NULL);
	fx_rmtree(d);
}

static void every_dtype_is_served(void)
{
	char *d = fx_tmpdir();
	CHECK(fx_write_st(d, "model.safetensors",
			  "{\"f8\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]},"
			  "\"f6\":{\"dtype\":\"F6_E2M3\",\"shape\":[2,4],\"data_offsets\":[2,8]},"
			  "\"f4\":{\"dtype\":\"F4\",\"shape\":[3,2],\"data_offsets\":[8,11]},"
			  "\"u\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[11,13]}}",
			  "abcdefghijklm", 13) == 0);
	struct tpfs_options o = defaults();
	struct tpfs_model *m = open_ok(d, &o);
	if (m) {
		CHECK(m->ntensors == 4);
		const struct tpfs_tensor *f8 = tensor_named(m, "f8");
		CHECK(f8 && strcmp(tpfs_tensor_descr(f8), "<f2") == 0 && kind_at(m, "f8.npy") == TPFS_NODE_TENSOR);
		/* F6 packing is not defined by the format: its bytes, flat. */
		const struct tpfs_tensor *f6 = tensor_named(m, "f6");
		CHECK(f6 && strcmp(tpfs_tensor_descr(f6), "|u1") == 0 && f6->ndim == 1 && f6->shape[0] == 6);
		CHECK_CONTAINS(manifest_text(m), "\"conversion\": \"f6 bytes (raw; packing undefined)\"");
		/* F4: the shape counts values. */
		const struct tpfs_tensor *f4 = tensor_named(m, "f4");
		CHECK(f4 && f4->ndim == 2 && f4->shape[1] == 2 && f4->data_bytes == 12);
	}
	tpfs_model_close(m);
	fx_rmtree(d);
}

/* A GPT-OSS-shaped MXFP4 pair: blocks [E, R, G, 16], scales [E, R, G]. */
static void write_pair(const char *d, const char *rel, const char *base, char sep,
		       unsigned e, unsigned r, unsigned g, unsigned g_scales)
{
	unsigned nb = e * r * g * 16, ns = e * r * g_scales;
	char json[1024];
	snprintf(json, sizeof(json),
		 "{\"%s%cblocks\":{\"dtype\":\"U8\",\"shape\":[%u,%u,%u,16],\"data_offsets\":[0,%u]},"
		 "\"%s%cscales\":{\"dtype\":\"U8\",\"shape\":[%u,%u,%u],\"data_offsets\":[%u,%u]},"
		 "\"%s%cbias\":{\"dtype\":\"BF16\",\"shape\":[%u,%u],\"data_offsets\":[%u,%u]}}",
		 base, sep, e, r, g, nb, base, sep, e, r, g_scales, nb, nb + ns, base, sep, e, r,
		 nb + ns, nb + ns + 2 * e * r);
	size_t len = nb + ns + 2 * e * r;
	unsigned char *data = calloc(1, len);
	CHECK(fx_write_st(d, rel, json, data, len) == 0);
	free(data);
}

static void mxfp4_pairs_become_one_tensor(void)
{
	char *d = fx_tmpdir();
	write_pair(d, "model.safetensors", "model.layers.0.mlp.experts.gate_up_proj", '_', 2, 6, 3, 3);
	write_pair(d, "original/model.safetensors", "block.0.mlp.mlp1_weight", '.', 2, 4, 2, 2);
	struct tpfs_options o = defaults();
	struct tpfs_model *m = open_ok(d, &o);
	if (m) {
		const struct tpfs_tensor *t = tensor_named(m, "model.layers.0.mlp.experts.gate_up_proj");
		CHECK(t && t->part[1].st && strcmp(tpfs_tensor_source_dtype(t), "MXFP4") == 0);
		CHECK(t && t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 6 && t->shape[2] == 96);
		CHECK(t && t->data_bytes == 2 * 6 * 96 * 4 && strcmp(t->conv->name, "mxfp4->f32") == 0);
		CHECK(kind_at(m, "model.layers.0.mlp.experts.gate_up_proj.npy") == TPFS_NODE_TENSOR);
		CHECK(node_at(m, "model.layers.0.mlp.experts.gate_up_proj_blocks.npy") < 0);
		CHECK(node_at(m, "model.layers.0.mlp.experts.gate_up_proj_scales.npy") < 0);
		CHECK(kind_at(m, "model.layers.0.mlp.experts.gate_up_proj_bias.npy") == TPFS_NODE_TENSOR);
		/* The original layout's ".blocks"/".scales" names. */
		CHECK(kind_at(m, "original/block.0.mlp.mlp1_weight.npy") == TPFS_NODE_TENSOR);
		CHECK_CONTAINS(manifest_text(m), "\"source_dtype\": \"MXFP4\"");
		CHECK_CONTAINS(manifest_text(m), "\"sources\": [{\"name\": \"block.0.mlp.mlp1_weight.blocks\"");
	}
	tpfs_model_close(m);
	o.mxfp4 = TPFS_OUT_BOTH;
	o.mxfp4_set = true;
	m = open_ok(d, &o);
	if (m) {
		CHECK(kind_at(m, "model.layers.0.mlp.experts.gate_up_proj.npy") == TPFS_NODE_TENSOR);
		CHECK(kind_at(m, "model.layers.0.mlp.experts.gate_up_proj_blocks.npy") == TPFS_NODE_TENSOR);
		CHECK(kind_at(m, "model.layers.0.mlp.experts.gate_up_proj_scales.npy") == TPFS_NODE_TENSOR);
	}
	tpfs_model_close(m);
	o.mxfp4 = TPFS_OUT_RAW;
	m = open_ok(d, &o);
	if (m) {
		CHECK(node_at(m, "model.layers.0.mlp.experts.gate_up_proj.npy") < 0);
		CHECK(kind_at(m, "model.layers.0.mlp.experts.gate_up_proj_blocks.npy") == TPFS_NODE_TENSOR);
	}
	tpfs_model_close(m);
	fx_rmtree(d);
}

static void mxfp4_pairs_match_across_shards(void)
{
	char *d = fx_tmpdir();
	unsigned char data[2 * 3 * 16 + 2 * 3];
	memset(data, 0x21, sizeof(data));
	CHECK(fx_write_st(d, "model-00001-of-00002.safetensors",
			  "{\"x_blocks\":{\"dtype\":\"U8\",\"shape\":[2,3,16],\"data_offsets\":[0,96]}}",
			  data, 96) == 0);
	CHECK(fx_write_st(d, "model-00002-of-00002.safetensors",
			  "{\"x_scales\":{\"dtype\":\"U8\",\"shape\":[2,3],\"data_offsets\":[0,6]}}",
			  data, 6) == 0);
	struct tpfs_options o = defaults();
	struct tpfs_model *m = open_ok(d, &o);
	if (m) {
		const struct tpfs_tensor *t = tensor_named(m, "x");
		CHECK(t && t->part[0].src != t->part[1].src);
		CHECK(t && t->ndim == 2 && t->shape[1] == 96);
		CHECK(m->ntensors == 1);
	}
	tpfs_model_close(m);
	fx_rmtree(d);
}

static void mxfp4_pairs_that_disagree_are_refused(void)
{
	char *d = fx_tmpdir();
	write_pair(d, "model.safetensors", "w", '_', 2, 4, 3, 2);
	struct tpfs_options o = defaults();
	refused(d, &o, "MXFP4 pair 'w_blocks' [2, 4, 3, 16] and 'w_scales' [2, 4, 2] do not agree",
		NULL);
	fx_rmtree(d);
	d = fx_tmpdir();
	/* The pair's name taken by a plain tensor too. */
	write_pair(d, "a.safetensors", "w", '_', 1, 1, 1, 1);
	st_u8(d, "b.safetensors", "w");
	refused(d, &o, "tensor 'w' is in both the MXFP4 pair w_blocks/w_scales (a.safetensors) "
		       "and b.safetensors", NULL);
	fx_rmtree(d);
	/* One blocks tensor repeated in four shards, its scales in a fifth:
	 * refused before any pairing (which would otherwise make four pairs of
	 * five tensors). */
	d = fx_tmpdir();
	unsigned char data[16] = {0};
	for (int k = 0; k < 5; k++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "model-%05d-of-00005.safetensors", k + 1);
		CHECK(fx_write_st(d, rel,
				  k < 4 ? "{\"w_blocks\":{\"dtype\":\"U8\",\"shape\":[1,16],"
					  "\"data_offsets\":[0,16]}}"
					: "{\"w_scales\":{\"dtype\":\"U8\",\"shape\":[1],"
					  "\"data_offsets\":[0,1]}}",
				  data, k < 4 ? 16 : 1) == 0);
	}
	refused(d, &o, "tensor 'w_blocks' is in both model-00001-of-00005.safetensors and "
		       "model-00002-of-00005.safetensors", NULL);
	fx_rmtree(d);
}

static void conflicting_options_are_refused(void)
{
	char *d = fx_tmpdir();
	st_u8(d, "model.safetensors", "w");
	struct tpfs_options o = defaults();
	o.dtype = TPFS_OUT_F16;
	o.bf16 = TPFS_OUT_RAW;
	o.bf16_set = true;
	refused(d, &o, "dtype=f16 and bf16=raw conflict", NULL);
	fx_rmtree(d);
}

/* Names with control bytes (a newline inside a tensor's name or an
 * option) must not break a refusal into two lines: they are written %XX. */
static void refusals_stay_one_line_whatever_the_names(void)
{
	char *d = fx_tmpdir();
	st_u8(d, "model-00001-of-00002.safetensors", "a\\nb\\u001b[31m");
	st_u8(d, "model-00002-of-00002.safetensors", "a\\nb\\u001b[31m");
	struct tpfs_options o = defaults();
	refused(d, &o, "tensor 'a%0Ab%1B[31m' is in both", NULL);
	fx_rmtree(d);
	struct tpfs_error e = {{0}};
	CHECK(tpfs_options_parse(&o, "cache_size=1G,new\nline", NULL, NULL, NULL, &e) < 0);
	CHECK_CONTAINS(e.msg, "unknown option 'new%0Aline'");
	CHECK(tpfs_options_parse(&o, "bf16=\t", NULL, NULL, NULL, &e) < 0);
	CHECK_CONTAINS(e.msg, "option bf16=%09: valid values are f32, f16, raw");
	CHECK(strchr(e.msg, '\t') == NULL);
}

static void reserved_names_in_the_source_are_hidden(void)
{
	char *d = fx_tmpdir();
	st_u8(d, "model.safetensors", "w");
	CHECK(fx_write(d, "manifest.json", "{\"old\": 1}", 10) == 0);
	CHECK(fx_write(d, ".tpfs/stats", "x", 1) == 0);
	CHECK(fx_write(d, "sub/manifest.json", "{}", 2) == 0);
	struct tpfs_options o = defaults();
	struct tpfs_model *m = open_ok(d, &o);
	if (m) {
		CHECK(kind_at(m, "manifest.json") == TPFS_NODE_MANIFEST);
		CHECK(kind_at(m, ".tpfs/stats") == TPFS_NODE_STATS);
		/* Only the root's names are reserved. */
		CHECK(kind_at(m, "sub/manifest.json") == TPFS_NODE_FILE);
	}
	tpfs_model_close(m);
	fx_rmtree(d);
}

static unsigned mode_of(const struct tpfs_model *m, long node)
{
	return tpfs_tree_perm(&m->tree, (uint32_t)node)->mode;
}

static void permissions_follow_the_source(void)
{
	char *d = fx_tmpdir();
	st_u8(d, "model.safetensors", "w");
	st_u8(d, "private/model.safetensors", "secret");
	CHECK(fx_write(d, "private/notes.txt", "x", 1) == 0);
	char *p = fx_path(d, "private/model.safetensors");
	CHECK(chmod(p, 0600) == 0);
	free(p);
	p = fx_path(d, "private");
	CHECK(chmod(p, 0750) == 0);
	free(p);
	p = fx_path(d, "private/notes.txt");
	CHECK(chmod(p, 0640) == 0);
	free(p);
	/* A root unlike both the default (0555) and the narrowed files, so that
	 * nothing passes by inheriting it. */
	CHECK(chmod(d, 0750) == 0);
	struct tpfs_options o = defaults();
	struct tpfs_model *m = open_ok(d, &o);
	if (m) {
		CHECK(tpfs_tree_finish(&m->tree) == 0);
		long w = node_at(m, "w.npy"), s = node_at(m, "private/secret.npy");
		long dir = node_at(m, "private"), notes = node_at(m, "private/notes.txt");
		CHECK(w > 0 && mode_of(m, w) == 0444);
		CHECK(s > 0 && mode_of(m, s) == 0400);
		/* private/ shows the names in a 0600 file: its group may no longer
		 * list it, though the folder is 0750 */
		CHECK(dir > 0 && mode_of(m, dir) == 0500);
		CHECK(notes > 0 && mode_of(m, notes) == 0440);
		struct stat root;
		CHECK(stat(d, &root) == 0);
		CHECK(mode_of(m, 0) == 0550 && (root.st_mode & 0777) == 0750);
		CHECK(tpfs_tree_perm(&m->tree, (uint32_t)w)->uid == root.st_uid);
	}
	tpfs_model_close(m);
	fx_rmtree(d);
}

static void a_folder_names_its_own_tensors_first(void)
{
	char *d = fx_tmpdir();
	st_u8(d, "model.safetensors", "sub/w");
	st_u8(d, "sub/model.safetensors", "w");
	struct tpfs_options o = defaults();
	struct tpfs_model *m = open_ok(d, &o);
	if (m) {
		const struct tpfs_tensor *own = NULL, *reaching = NULL;
		for (size_t i = 0; i < m->ntensors; i++) {
			if (strcmp(m->tensors[i].part[0].src->rel, "sub/model.safetensors") == 0)
				own = &m->tensors[i];
			else
				reaching = &m->tensors[i];
		}
		CHECK(own && strcmp(path_of(m, own), "sub/w.npy") == 0);
		/* sub/w.npy is taken: the parent's tensor stays in the folder
		 * it entered, numbered (rule 3) */
		CHECK(reaching && strcmp(path_of(m, reaching), "sub/w~1.npy") == 0);
	}
	tpfs_model_close(m);
	fx_rmtree(d);
}

/* Links to files are followed anywhere; links to folders are not: a
 * folder is shown at its own place only (a link named before it in the walk
 * does not take its place). */
static void linked_folders_are_skipped(void)
{
	char *d = fx_tmpdir();
	st_u8(d, "src/model.safetensors", "w");
	st_u8(d, "src/sub/model.safetensors", "v");
	CHECK(fx_write(d, "elsewhere/big.txt", "x", 1) == 0);
	st_u8(d, "blobs/abc", "linked");
	char *target = fx_path(d, "elsewhere"), *blob = fx_path(d, "blobs/abc");
	CHECK(fx_symlink(d, "src/outside", target) == 0);
	CHECK(fx_symlink(d, "src/inside", ".") == 0);
	CHECK(fx_symlink(d, "src/alias", "sub") == 0);
	CHECK(fx_symlink(d, "src/linked.safetensors", blob) == 0);
	char *src = fx_path(d, "src");
	struct tpfs_options o = defaults();
	struct tpfs_model *m = open_ok(src, &o);
	if (m) {
		CHECK(node_at(m, "outside") < 0);        /* a folder outside */
		CHECK(node_at(m, "inside") < 0);         /* the root */
		CHECK(node_at(m, "alias") < 0);          /* a folder inside */
		CHECK(kind_at(m, "sub/v.npy") == TPFS_NODE_TENSOR); /* at its own place */
		CHECK(kind_at(m, "linked.npy") == TPFS_NODE_TENSOR); /* a file anywhere */
	}
	tpfs_model_close(m);
	free(target);
	free(blob);
	free(src);
	fx_rmtree(d);
}

static void missing_or_odd_sources_are_refused(void)
{
	char *d = fx_tmpdir();
	struct tpfs_options o = defaults();
	char *nope = fx_path(d, "nope");
	refused(nope, &o, nope, "No such file or directory");
	free(nope);
	/* A single file must be a .safetensors file. */
	CHECK(fx_write(d, "config.json", "{}", 2) == 0);
	char *cfg = fx_path(d, "config.json");
	refused(cfg, &o, "config.json: not a folder or a .safetensors file", NULL);
	CHECK(unlink(cfg) == 0);
	free(cfg);
	/* An empty folder is a valid, empty model. */
	struct tpfs_model *m = open_ok(d, &o);
	if (m)
		CHECK(m->ntensors == 0 && strlen(manifest_text(m)) > 0);
	tpfs_model_close(m);
	fx_rmtree(d);
}

static cJSON *item(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

static void manifest_lists_every_tensor_with_its_source(void)
{
	char *d = fx_tmpdir();
	const char *h1 = "{\"__metadata__\":{\"format\":\"pt\"},"
			 "\"layers/0/w\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
			 "\"bias\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]}}";
	unsigned char data[16] = {0};
	CHECK(fx_write_st(d, "a.safetensors", h1, data, 16) == 0);
	const char *h2 = "{\"__metadata__\":null,"
			 "\"e\":{\"dtype\":\"I64\",\"shape\":[0,4],\"data_offsets\":[0,0]}}";
	CHECK(fx_write_st(d, "b.safetensors", h2, NULL, 0) == 0);
	struct tpfs_options o = defaults();
	o.cache_size = 1 << 20;
	struct tpfs_model *m = open_ok(d, &o);
	cJSON *j = m ? cJSON_Parse(manifest_text(m)) : NULL;
	CHECK(j != NULL);
	if (j) {
		CHECK(item(item(j, "options"), "cache_size")->valuedouble == 1 << 20);
		const cJSON *files = item(j, "files");
		CHECK(cJSON_GetArraySize(files) == 2);
		const cJSON *fa = cJSON_GetArrayItem(files, 0);
		const cJSON *fb = cJSON_GetArrayItem(files, 1);
		CHECK(strcmp(item(fa, "path")->valuestring, "a.safetensors") == 0);
		CHECK(strcmp(item(item(fa, "metadata"), "format")->valuestring, "pt") == 0);
		CHECK(cJSON_IsNull(item(fb, "metadata")));
		const cJSON *ts = item(j, "tensors");
		CHECK(cJSON_GetArraySize(ts) == 3);
		/* Sorted by name: "bias", "e", "layers/0/w". */
		const cJSON *w = cJSON_GetArrayItem(ts, 2);
		CHECK(strcmp(item(w, "name")->valuestring, "layers/0/w") == 0);
		CHECK(strcmp(item(w, "path")->valuestring, "layers/0/w.npy") == 0);
		CHECK(strcmp(item(w, "dtype")->valuestring, "<f4") == 0);
		CHECK(strcmp(item(w, "source_dtype")->valuestring, "BF16") == 0);
		CHECK(strcmp(item(w, "source_file")->valuestring, "a.safetensors") == 0);
		CHECK(strcmp(item(w, "conversion")->valuestring, "bf16->f32") == 0);
		CHECK(cJSON_IsTrue(item(w, "exact")));
		const cJSON *shape = item(w, "shape");
		CHECK(cJSON_GetArraySize(shape) == 2 &&
		      cJSON_GetArrayItem(shape, 0)->valuedouble == 2 &&
		      cJSON_GetArrayItem(shape, 1)->valuedouble == 3);
		double data_start = 8 + (double)strlen(h1);
		const cJSON *r = item(w, "source_range");
		CHECK(cJSON_GetArrayItem(r, 0)->valuedouble == data_start);
		CHECK(cJSON_GetArrayItem(r, 1)->valuedouble == data_start + 12);
		/* A 59-byte dict with the 10-byte preamble and newline needs 128. */
		CHECK(item(w, "npy_bytes")->valuedouble == 128 + 6 * 4);
		const cJSON *b = cJSON_GetArrayItem(ts, 0);
		CHECK(cJSON_GetArraySize(item(b, "shape")) == 0);
		CHECK(strcmp(item(b, "conversion")->valuestring, "none") == 0);
		CHECK(item(b, "npy_bytes")->valuedouble == 128 + 4);
		const cJSON *e = cJSON_GetArrayItem(ts, 1);
		CHECK(strcmp(item(e, "dtype")->valuestring, "<i8") == 0);
		CHECK(item(e, "npy_bytes")->valuedouble == 128);
	}
	cJSON_Delete(j);
	tpfs_model_close(m);
	fx_rmtree(d);
}

int main(void)
{
	RUN(folder_is_mirrored_with_passthrough_and_subfolders);
	RUN(hugging_face_cache_symlinks_are_followed);
	RUN(loops_and_broken_links_are_skipped);
	RUN(sharded_folder_is_one_namespace);
	RUN(index_that_disagrees_with_the_shards_is_refused);
	RUN(empty_index_is_refused);
	RUN(duplicate_names_are_refused_unless_by_file);
	RUN(bad_header_refuses_the_whole_model);
	RUN(every_dtype_is_served);
	RUN(mxfp4_pairs_become_one_tensor);
	RUN(mxfp4_pairs_match_across_shards);
	RUN(mxfp4_pairs_that_disagree_are_refused);
	RUN(conflicting_options_are_refused);
	RUN(refusals_stay_one_line_whatever_the_names);
	RUN(reserved_names_in_the_source_are_hidden);
	RUN(permissions_follow_the_source);
	RUN(a_folder_names_its_own_tensors_first);
	RUN(linked_folders_are_skipped);
	RUN(missing_or_odd_sources_are_refused);
	RUN(manifest_lists_every_tensor_with_its_source);
	return check_done();
}
