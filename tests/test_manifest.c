/*
 * manifest.json: read piece by piece at every offset it equals what
 * tpfs_manifest_write writes whole, and its size is the bytes written; the
 * whole parses with cJSON and lists every tensor of a small model with the
 * name, path, dtype, shape, source range (from the fixture's own offsets)
 * and .npy size (from the NPY format) expected; tpfs convert's paths and
 * extra section appear where given.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "fixture.h"
#include "tpfs/manifest.h"

static char *dir;
static struct tpfs_model *m;
static struct fx_st shard1, shard2, adapter;

/* The model: two shards of one folder (an MXFP4 pair split across them, a
 * name that needs escaping in JSON and in a path), a file with metadata in
 * a subfolder, and a passed-through config.json. */
static const char *const weird = "q\"uote\\back\nline";
static const char *const weird_json = "q\\\"uote\\\\back\\nline"; /* as written in JSON */
static uint64_t adapter_header; /* its header's length */

static bool make_model(void)
{
	static unsigned char bytes[4096];
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)(i * 7 + 3);
	fx_st_add(&shard1, "embed.weight", "BF16", "[4,3]", bytes, 24);
	fx_st_add(&shard1, "experts.w_blocks", "U8", "[2,2,16]", bytes + 24, 64);
	fx_st_add(&shard1, weird_json, "F32", "[2]", bytes + 88, 8);
	fx_st_add(&shard2, "experts.w_scales", "U8", "[2,2]", bytes + 96, 4);
	fx_st_add(&shard2, "norm", "F64", "[]", bytes + 100, 8);
	fx_st_add(&shard2, "ids", "I64", "[0,7]", NULL, 0);
	fx_st_add(&adapter, "lora/a", "F16", "[3,5]", bytes + 108, 30);
	dir = fx_tmpdir();
	if (!dir || fx_st_write(&shard1, dir, "model-00001-of-00002.safetensors") ||
	    fx_st_write(&shard2, dir, "model-00002-of-00002.safetensors") ||
	    fx_write(dir, "config.json", "{}\n", 3))
		return false;
	/* the adapter with a __metadata__ object, written from its header */
	const char *meta = "{\"__metadata__\":{\"format\":\"pt\",\"x\":\"y\"},";
	char json[sizeof(adapter.json) + 64];
	size_t ml = strlen(meta);
	memcpy(json, meta, ml);
	memcpy(json + ml, adapter.json + 1, adapter.jlen - 1); /* after its '{' */
	memcpy(json + ml + adapter.jlen - 1, "}", 2);
	adapter_header = strlen(json);
	if (fx_write_st(dir, "sub/adapter.safetensors", json, adapter.data, adapter.len))
		return false;
	struct tpfs_options o;
	tpfs_options_defaults(&o);
	struct tpfs_error e = {{0}};
	if (tpfs_model_open(dir, &o, &m, &e) != 0) {
		fprintf(stderr, "model: %s\n", e.msg);
		return false;
	}
	return true;
}

/* The whole manifest as tpfs_manifest_write writes it; malloc'd. */
static char *written(const char *const *paths, const char *extra, size_t *len)
{
	FILE *f = tmpfile();
	CHECK(f != NULL);
	if (!f)
		return NULL;
	int rc = tpfs_manifest_write(m, paths, extra, fileno(f));
	CHECKF(rc == 0, "write: %d", rc);
	long n = ftell(f);
	char *text = malloc((size_t)n + 1);
	rewind(f);
	if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
		CHECK(0);
		free(text);
		fclose(f);
		return NULL;
	}
	text[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return text;
}

static void reads_at_every_offset_equal_the_written_whole(void)
{
	struct tpfs_manifest *mf = tpfs_manifest_create(m);
	size_t len;
	char *whole = written(NULL, NULL, &len);
	CHECK(mf && whole);
	if (!mf || !whole) {
		tpfs_manifest_destroy(mf);
		free(whole);
		return;
	}
	CHECKF(tpfs_manifest_size(mf) == len, "size %llu, written %zu",
	       (unsigned long long)tpfs_manifest_size(mf), len);
	char *buf = malloc(len + 64);
	/* every offset, with lengths short enough to end inside a record and
	 * long enough to straddle several, and past the end (clipped) */
	const size_t lens[] = {1, 2, 3, 7, 64, 100, 333, 1000, len, len + 50};
	int bad = 0;
	for (size_t off = 0; off <= len + 2; off++) {
		for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
			size_t want = off >= len ? 0 : (len - off < lens[k] ? len - off : lens[k]);
			memset(buf, 0xee, len + 64);
			ssize_t got = tpfs_manifest_read(mf, off, lens[k], buf);
			if (got != (ssize_t)want || memcmp(buf, whole + (off < len ? off : 0), want) ||
			    (unsigned char)buf[want] != 0xee) {
				if (bad++ < 5)
					fprintf(stderr, "  read(%zu, %zu) -> %zd, not %zu\n", off,
						lens[k], got, want);
			}
		}
	}
	CHECKF(bad == 0, "%d reads disagreed", bad);
	/* every piece boundary the text shows (each tensor record starts a
	 * line with "    {"), read across with every split */
	for (const char *p = strstr(whole, "\n    {"); p; p = strstr(p + 1, "\n    {")) {
		size_t b = (size_t)(p - whole);
		for (size_t before = 0; before <= 8 && before <= b; before++) {
			for (size_t n = 1; n <= 16 && b - before + n <= len; n++) {
				ssize_t got = tpfs_manifest_read(mf, b - before, n, buf);
				CHECKF(got == (ssize_t)n && memcmp(buf, whole + b - before, n) == 0,
				       "read(%zu, %zu)", b - before, n);
			}
		}
	}
	CHECK(tpfs_manifest_read(mf, UINT64_MAX, 10, buf) == 0);
	CHECK(tpfs_manifest_read(mf, 0, 0, buf) == 0);
	free(buf);
	free(whole);
	tpfs_manifest_destroy(mf);
	tpfs_manifest_destroy(NULL);
}

static const cJSON *item(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	CHECKF(v != NULL, "no '%s'", key);
	return v;
}

static bool is_string(const cJSON *o, const char *key, const char *want)
{
	const cJSON *v = item(o, key);
	bool ok = cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
	if (!ok)
		fprintf(stderr, "  %s is %s, not '%s'\n", key,
			cJSON_IsString(v) ? v->valuestring : "not a string", want);
	return ok;
}

static bool is_number(const cJSON *o, const char *key, uint64_t want)
{
	const cJSON *v = item(o, key);
	bool ok = cJSON_IsNumber(v) && v->valuedouble == (double)want;
	if (!ok)
		fprintf(stderr, "  %s is %g, not %llu\n", key, v ? v->valuedouble : -1.0,
			(unsigned long long)want);
	return ok;
}

/* o[key] is a JSON array of these numbers. */
static bool is_list(const cJSON *o, const char *key, const uint64_t *want, int n)
{
	const cJSON *v = item(o, key);
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
		return false;
	for (int i = 0; i < n; i++) {
		const cJSON *x = cJSON_GetArrayItem(v, i);
		if (!cJSON_IsNumber(x) || x->valuedouble != (double)want[i])
			return false;
	}
	return true;
}

/* The size of a version 1.0 .npy, from the format: the magic, version and
 * length (10 bytes), the dict NumPy writes and a newline, padded with spaces
 * to a multiple of 64, then the data. */
static uint64_t npy_bytes(const char *descr, const char *shape, uint64_t data)
{
	char dict[256];
	int n = snprintf(dict, sizeof(dict),
			 "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
	return ((uint64_t)n + 11 + 63) / 64 * 64 + data;
}

/* Where a fixture's tensor lies in its file: after the 8-byte length and
 * the header (the fixture's JSON and its closing brace). */
static void range_of(const struct fx_st *f, const char *name, uint64_t header_len,
		     uint64_t len, uint64_t r[2])
{
	const unsigned char *p = fx_st_data(f, name);
	CHECKF(p != NULL, "no fixture tensor %s", name);
	r[0] = 8 + header_len + (uint64_t)(p ? p - f->data : 0);
	r[1] = r[0] + len;
}

struct want {
	const char *name, *path, *dtype, *npy_shape, *source_dtype, *file;
	const struct fx_st *fx;
	const char *fx_name;
	uint64_t header_len, bytes, data;
	uint64_t shape[3];
	int ndim;
};

static const cJSON *find_tensor(const cJSON *tensors, const char *name)
{
	const cJSON *t;
	cJSON_ArrayForEach(t, tensors)
	{
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
			return t;
	}
	CHECKF(0, "no tensor '%s' in the manifest", name);
	return NULL;
}

static void the_manifest_lists_every_tensor_as_the_fixture_made_it(void)
{
	size_t len;
	char *text = written(NULL, NULL, &len);
	cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
	CHECKF(j != NULL, "does not parse:\n%s", text ? text : "");
	if (!j) {
		free(text);
		return;
	}
	CHECK(is_string(j, "tpfs_version", TPFS_VERSION));
	CHECK(is_string(j, "source", m->root));
	const cJSON *o = item(j, "options");
	CHECK(is_number(o, "cache_size", 256 << 20) && is_number(o, "block_size", 1 << 20));
	CHECK(is_string(o, "bf16", "f32") && is_string(o, "dtype", "auto"));

	/* the Safetensors files (not config.json) */
	const cJSON *files = item(j, "files");
	CHECK(cJSON_GetArraySize(files) == 3);
	const struct {
		const char *path;
		const struct fx_st *fx;
		size_t tensors;
		uint64_t header;
	} wf[] = {
		{"model-00001-of-00002.safetensors", &shard1, 3, shard1.jlen + 1},
		{"model-00002-of-00002.safetensors", &shard2, 3, shard2.jlen + 1},
		{"sub/adapter.safetensors", &adapter, 1, adapter_header},
	};
	const cJSON *meta = NULL;
	for (size_t i = 0; i < 3; i++) {
		const cJSON *f = NULL, *x;
		cJSON_ArrayForEach(x, files)
		{
			const cJSON *p = cJSON_GetObjectItemCaseSensitive(x, "path");
			if (cJSON_IsString(p) && strcmp(p->valuestring, wf[i].path) == 0)
				f = x;
		}
		CHECKF(f != NULL, "no file %s", wf[i].path);
		if (!f)
			continue;
		uint64_t size = 8 + wf[i].header + wf[i].fx->len;
		CHECKF(is_number(f, "bytes", size), "%s", wf[i].path);
		CHECKF(is_number(f, "tensors", wf[i].tensors), "%s", wf[i].path);
		/* "metadata" only where the header has __metadata__ */
		const cJSON *md = cJSON_GetObjectItemCaseSensitive(f, "metadata");
		if (wf[i].fx == &adapter)
			meta = md;
		else
			CHECKF(md == NULL, "%s", wf[i].path);
	}
	cJSON *want_meta = cJSON_Parse("{\"format\":\"pt\",\"x\":\"y\"}");
	CHECK(meta && cJSON_Compare(meta, want_meta, true));
	cJSON_Delete(want_meta);

	/* the tensors: 6 served (the pair is one) */
	const cJSON *tensors = item(j, "tensors");
	CHECK(cJSON_GetArraySize(tensors) == 6);
	uint64_t h1 = shard1.jlen + 1, h2 = shard2.jlen + 1, ha = adapter_header;
	const struct want w[] = {
		{"embed.weight", "embed.weight.npy", "<f4", "(4, 3)", "BF16",
		 "model-00001-of-00002.safetensors", &shard1, "embed.weight", h1, 24, 48, {4, 3}, 2},
		{weird, "q\"uote\\back%0Aline.npy", "<f4", "(2,)", "F32",
		 "model-00001-of-00002.safetensors", &shard1, weird_json, h1, 8, 8, {2}, 1},
		{"experts.w", "experts.w.npy", "<f4", "(2, 64)", "MXFP4",
		 "model-00001-of-00002.safetensors", &shard1, "experts.w_blocks", h1, 64, 512,
		 {2, 64}, 2},
		{"norm", "norm.npy", "<f8", "()", "F64", "model-00002-of-00002.safetensors",
		 &shard2, "norm", h2, 8, 8, {0}, 0},
		{"ids", "ids.npy", "<i8", "(0, 7)", "I64", "model-00002-of-00002.safetensors",
		 &shard2, "ids", h2, 0, 0, {0, 7}, 2},
		{"lora/a", "sub/lora/a.npy", "<f2", "(3, 5)", "F16", "sub/adapter.safetensors",
		 &adapter, "lora/a", ha, 30, 30, {3, 5}, 2},
	};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		const cJSON *t = find_tensor(tensors, w[i].name);
		if (!t)
			continue;
		CHECKF(is_string(t, "path", w[i].path), "%s", w[i].name);
		CHECKF(is_string(t, "dtype", w[i].dtype), "%s", w[i].name);
		CHECKF(is_list(t, "shape", w[i].shape, w[i].ndim), "%s", w[i].name);
		CHECKF(is_string(t, "source_dtype", w[i].source_dtype), "%s", w[i].name);
		CHECKF(is_string(t, "source_file", w[i].file), "%s", w[i].name);
		uint64_t r[2];
		range_of(w[i].fx, w[i].fx_name, w[i].header_len, w[i].bytes, r);
		CHECKF(is_list(t, "source_range", r, 2), "%s", w[i].name);
		CHECKF(is_number(t, "npy_bytes", npy_bytes(w[i].dtype, w[i].npy_shape, w[i].data)),
		       "%s", w[i].name);
		CHECKF(cJSON_IsBool(item(t, "exact")), "%s", w[i].name);
		CHECKF(cJSON_IsString(item(t, "conversion")), "%s", w[i].name);
		/* only the pair lists its two sources */
		CHECKF((cJSON_GetObjectItemCaseSensitive(t, "sources") != NULL) ==
			       (strcmp(w[i].source_dtype, "MXFP4") == 0),
		       "%s", w[i].name);
	}
	const cJSON *bf = find_tensor(tensors, "embed.weight");
	CHECK(bf && is_string(bf, "conversion", "bf16->f32") && cJSON_IsTrue(item(bf, "exact")));
	CHECK(bf && is_list(bf, "source_shape", (const uint64_t[]){4, 3}, 2));

	/* the pair: its blocks first, then its scales, from the other shard */
	const cJSON *pair = find_tensor(tensors, "experts.w");
	if (pair) {
		CHECK(is_string(pair, "conversion", "mxfp4->f32"));
		CHECK(is_list(pair, "source_shape", (const uint64_t[]){2, 2, 16}, 3));
		const cJSON *src = item(pair, "sources");
		CHECK(cJSON_GetArraySize(src) == 2);
		const cJSON *bl = cJSON_GetArrayItem(src, 0), *sc = cJSON_GetArrayItem(src, 1);
		uint64_t r[2];
		CHECK(bl && is_string(bl, "name", "experts.w_blocks") &&
		      is_string(bl, "file", "model-00001-of-00002.safetensors") &&
		      is_string(bl, "dtype", "U8") &&
		      is_list(bl, "shape", (const uint64_t[]){2, 2, 16}, 3));
		range_of(&shard1, "experts.w_blocks", h1, 64, r);
		CHECK(bl && is_list(bl, "range", r, 2));
		CHECK(sc && is_string(sc, "name", "experts.w_scales") &&
		      is_string(sc, "file", "model-00002-of-00002.safetensors") &&
		      is_string(sc, "dtype", "U8") &&
		      is_list(sc, "shape", (const uint64_t[]){2, 2}, 2));
		range_of(&shard2, "experts.w_scales", h2, 4, r);
		CHECK(sc && is_list(sc, "range", r, 2));
	}
	CHECK(cJSON_GetObjectItemCaseSensitive(j, "convert") == NULL);
	cJSON_Delete(j);
	free(text);
}

static void convert_paths_and_extra_appear_where_given(void)
{
	/* tpfs convert's shard folders, one path per tensor in the model's
	 * order; a quote and a backslash must survive JSON */
	char **paths = calloc(m->ntensors, sizeof(*paths));
	for (size_t i = 0; paths && i < m->ntensors; i++)
		CHECK(asprintf(&paths[i], "shard_%03zu/t\"%zu\\.npy", i / 2, i) > 0);
	const char *extra = "{\"files\": [{\"path\": \"a.npy\", \"xxh3\": \"0123\"}], "
			    "\"shard_size\": 1932735283}";
	size_t len;
	char *text = written((const char *const *)paths, extra, &len);
	cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
	CHECKF(j != NULL, "does not parse:\n%s", text ? text : "");
	if (j) {
		const cJSON *tensors = item(j, "tensors");
		for (size_t i = 0; i < m->ntensors; i++) {
			const cJSON *t = find_tensor(tensors, m->tensors[i].name);
			CHECKF(t && is_string(t, "path", paths[i]), "%s", m->tensors[i].name);
		}
		cJSON *want = cJSON_Parse(extra);
		CHECK(cJSON_Compare(item(j, "convert"), want, true));
		cJSON_Delete(want);
	}
	/* the rest is as without them */
	size_t plain_len;
	char *plain = written(NULL, NULL, &plain_len);
	cJSON *p = plain ? cJSON_ParseWithLength(plain, plain_len) : NULL;
	CHECK(p && j && cJSON_Compare(item(p, "files"), item(j, "files"), true) &&
	      cJSON_Compare(item(p, "options"), item(j, "options"), true));
	cJSON_Delete(p);
	free(plain);
	cJSON_Delete(j);
	free(text);
	for (size_t i = 0; paths && i < m->ntensors; i++)
		free(paths[i]);
	free(paths);
}

static void a_model_without_tensors_has_empty_lists(void)
{
	char *d = fx_tmpdir();
	CHECK(d && fx_write_st(d, "empty.safetensors", "{}", NULL, 0) == 0);
	struct tpfs_options o;
	tpfs_options_defaults(&o);
	struct tpfs_model *em = NULL;
	struct tpfs_error e = {{0}};
	int rc = tpfs_model_open(d, &o, &em, &e);
	CHECKF(rc == 0, "%s", e.msg);
	struct tpfs_manifest *mf = rc == 0 ? tpfs_manifest_create(em) : NULL;
	if (mf) {
		uint64_t size = tpfs_manifest_size(mf);
		char *text = calloc(1, size + 1);
		CHECK(text && tpfs_manifest_read(mf, 0, size + 10, text) == (ssize_t)size);
		cJSON *j = text ? cJSON_Parse(text) : NULL;
		CHECKF(j != NULL, "does not parse:\n%s", text ? text : "");
		CHECK(j && cJSON_GetArraySize(item(j, "tensors")) == 0);
		CHECK(j && cJSON_GetArraySize(item(j, "files")) == 1);
		cJSON_Delete(j);
		free(text);
	}
	tpfs_manifest_destroy(mf);
	tpfs_model_close(em);
	fx_rmtree(d);
}

int main(void)
{
	if (make_model()) {
		RUN(reads_at_every_offset_equal_the_written_whole);
		RUN(the_manifest_lists_every_tensor_as_the_fixture_made_it);
		RUN(convert_paths_and_extra_appear_where_given);
	} else {
		check_failed++;
		printf("FAIL the model of the manifest tests opens\n");
	}
	RUN(a_model_without_tensors_has_empty_lists);
	tpfs_model_close(m);
	fx_st_free(&shard1);
	fx_st_free(&shard2);
	fx_st_free(&adapter);
	fx_rmtree(dir);
	return check_done();
}
