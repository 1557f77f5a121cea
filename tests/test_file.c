/*
 * The read primitive: every byte of every virtual file, read at awkward
 * offsets and lengths, equals the same byte of the whole file as computed
 * here (the .npy header from the format's dict literal, the data from the
 * source bytes); a cache smaller than one tensor still serves it; a source
 * truncated or replaced under the model gives -EIO while the rest still reads.
 */
#include <cjson/cJSON.h>

#include "check.h"
#include "fixture.h"
#include "tpfs/file.h"
#include "tpfs/guard.h"
#include "tpfs/error.h"

#define NB 150000 /* BF16 elements of the big tensor */

/* Random bytes for the tensors. */
static void fill(unsigned char *b, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (unsigned char)(seed >> 16);
	}
}

/* The model the tests read: u8odd (7 bytes, so that big's source is
 * misaligned), big (BF16, converted over many blocks), f32, scalar (a 0-d
 * F64) and empty (BF16 with no element), in one file. */
static struct fx_st model;

static void make_model(void)
{
	static unsigned char u8odd[7], big[2 * NB], f32[4000], scalar[8];
	fill(u8odd, sizeof(u8odd), 1);
	fill(big, sizeof(big), 2);
	fill(f32, sizeof(f32), 3);
	fill(scalar, sizeof(scalar), 4);
	fx_st_add(&model, "u8odd", "U8", "[7]", u8odd, sizeof(u8odd));
	fx_st_add(&model, "big", "BF16", "[300,500]", big, sizeof(big));
	fx_st_add(&model, "f32", "F32", "[1000]", f32, sizeof(f32));
	fx_st_add(&model, "scalar", "F64", "[]", scalar, sizeof(scalar));
	fx_st_add(&model, "empty", "BF16", "[0,5]", NULL, 0);
}

static void write_model(const char *d)
{
	CHECK(fx_st_write(&model, d, "model.safetensors") == 0);
	CHECK(fx_write(d, "config.json", "{\"hidden\": 8}\n", 14) == 0);
}

/* The whole .npy as NumPy would write it. */
static unsigned char *expected_npy(const char *descr, const char *shape,
				   const unsigned char *data, size_t n, size_t item_in,
				   bool bf16, size_t *len)
{
	char dict[256];
	int dl = snprintf(dict, sizeof(dict),
			  "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
			  shape);
	size_t hl = ((size_t)dl + 11 + 63) / 64 * 64;
	size_t out_item = bf16 ? 4 : item_in;
	*len = hl + n * out_item;
	unsigned char *b = malloc(*len + 1);
	memcpy(b, "\x93NUMPY\x01\x00", 8);
	b[8] = (unsigned char)((hl - 10) & 0xff);
	b[9] = (unsigned char)((hl - 10) >> 8);
	memcpy(b + 10, dict, (size_t)dl);
	memset(b + 10 + dl, ' ', hl - 11 - (size_t)dl);
	b[hl - 1] = '\n';
	for (size_t i = 0; i < n; i++) {
		if (bf16) {
			/* bf16 bits are the high half of the float32 */
			b[hl + 4 * i] = 0;
			b[hl + 4 * i + 1] = 0;
			b[hl + 4 * i + 2] = data[2 * i];
			b[hl + 4 * i + 3] = data[2 * i + 1];
		} else {
			memcpy(b + hl + i * item_in, data + i * item_in, item_in);
		}
	}
	return b;
}

static uint32_t node(struct tpfs_model *m, const char *name)
{
	long i = tpfs_tree_lookup(&m->tree, 0, name);
	CHECKF(i > 0, "no %s", name);
	return i > 0 ? (uint32_t)i : 0;
}

/* Compare reads of [off, off+len) with the expectation, for many pairs. */
static void reads_agree(struct tpfs_view *view, uint32_t n, const unsigned char *want,
			size_t size)
{
	struct tpfs_view_attr a;
	CHECK(tpfs_view_stat(view, n, &a) == 0 && a.size == size);
	unsigned char *buf = malloc(size + 70000);
	ssize_t got = tpfs_file_read(view, n, 0, size + 1000, buf);
	CHECKF(got == (ssize_t)size, "whole read gave %zd of %zu", got, size);
	CHECK(got < 0 || memcmp(buf, want, size) == 0);
	const size_t offs[] = {0, 1, 63, 64, 65, 127, 128, 129, 4095, 65535, 65536,
			       65537, 65536 + 128, 131072 + 127, size / 2, size - 1,
			       size, size + 5};
	const size_t lens[] = {1, 2, 3, 7, 64, 4095, 65536, 65537, 131073, 400000};
	int bad = 0;
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
			size_t off = offs[i], len = lens[k];
			if (off > size + 5 || len > size + 65536)
				continue;
			size_t expect = off >= size ? 0 : (size - off < len ? size - off : len);
			got = tpfs_file_read(view, n, off, len, buf);
			if (got != (ssize_t)expect || memcmp(buf, want + (off < size ? off : 0),
							     expect) != 0) {
				if (bad++ < 5)
					fprintf(stderr, "  read(%zu, %zu) -> %zd\n", off, len, got);
			}
		}
	}
	uint32_t x = 99;
	for (int r = 0; r < 300; r++) {
		x = x * 1664525u + 1013904223u;
		size_t off = x % (size + 1);
		x = x * 1664525u + 1013904223u;
		size_t len = x % 70000;
		size_t expect = size - off < len ? size - off : len;
		got = tpfs_file_read(view, n, off, len, buf);
		if (got != (ssize_t)expect || memcmp(buf, want + off, expect) != 0)
			bad++;
	}
	CHECKF(bad == 0, "%d reads disagreed", bad);
	free(buf);
}

static struct tpfs_model *open_model(const char *d, uint64_t cache, uint64_t block)
{
	struct tpfs_options o;
	tpfs_options_defaults(&o);
	o.cache_size = cache;
	o.block_size = block;
	struct tpfs_model *m = NULL;
	struct tpfs_error e = {{0}};
	CHECKF(tpfs_model_open(d, &o, &m, &e) == 0, "%s", e.msg);
	return m;
}

static void every_file_reads_the_same_at_any_offset(void)
{
	char *d = fx_tmpdir();
	write_model(d);
	/* Two 64 KiB blocks of cache for a 600 KB converted tensor. */
	struct tpfs_model *m = open_model(d, 2 * (65536 + 1024), 65536);
	struct tpfs_view *view = m ? tpfs_view_create(m) : NULL;
	if (!view) {
		CHECK(0);
		fx_rmtree(d);
		return;
	}
	size_t len;
	unsigned char *w;

	w = expected_npy("<f4", "(300, 500)", fx_st_data(&model, "big"), NB, 2, true, &len);
	reads_agree(view, node(m, "big.npy"), w, len);
	free(w);
	w = expected_npy("<f4", "(1000,)", fx_st_data(&model, "f32"), 1000, 4, false, &len);
	reads_agree(view, node(m, "f32.npy"), w, len);
	free(w);
	w = expected_npy("|u1", "(7,)", fx_st_data(&model, "u8odd"), 7, 1, false, &len);
	reads_agree(view, node(m, "u8odd.npy"), w, len);
	free(w);
	w = expected_npy("<f8", "()", fx_st_data(&model, "scalar"), 1, 8, false, &len);
	reads_agree(view, node(m, "scalar.npy"), w, len);
	free(w);
	w = expected_npy("<f4", "(0, 5)", NULL, 0, 2, true, &len);
	reads_agree(view, node(m, "empty.npy"), w, len);
	free(w);
	reads_agree(view, node(m, "config.json"), (const unsigned char *)"{\"hidden\": 8}\n",
		    14);
	/* the manifest read piece by piece at any offset, as written whole */
	FILE *f = tmpfile();
	CHECK(f && tpfs_manifest_write(m, NULL, NULL, fileno(f)) == 0);
	long ml = f ? ftell(f) : 0;
	unsigned char *whole = malloc((size_t)ml + 1);
	if (f)
		rewind(f);
	CHECK(ml > 0 && whole && fread(whole, 1, (size_t)ml, f) == (size_t)ml);
	CHECK(whole && strncmp((char *)whole, "{\n  \"tpfs_version\"", 18) == 0);
	reads_agree(view, node(m, "manifest.json"), whole, (size_t)ml);
	free(whole);
	if (f)
		fclose(f);

	size_t sl;
	char *stats = tpfs_view_stats_json(view, &sl);
	cJSON *j = cJSON_Parse(stats);
	CHECK(j != NULL);
	if (j) {
		const char *keys[] = {"reads", "bytes_served", "cache_hits", "cache_misses",
				      "cache_evictions", "bytes_converted", "errors"};
		for (size_t i = 0; i < 7; i++)
			CHECKF(cJSON_IsNumber(cJSON_GetObjectItem(j, keys[i])), "%s", keys[i]);
		CHECK(cJSON_GetObjectItem(j, "cache_evictions")->valuedouble > 0);
		CHECK(cJSON_GetObjectItem(j, "bytes_converted")->valuedouble >= 4.0 * NB);
		CHECK(cJSON_GetObjectItem(j, "errors")->valuedouble == 0);
		CHECK(cJSON_GetObjectItem(j, "cache_bytes")->valuedouble <=
		      cJSON_GetObjectItem(j, "cache_capacity")->valuedouble);
	}
	cJSON_Delete(j);
	free(stats);
	tpfs_view_destroy(view);
	tpfs_model_close(m);
	fx_rmtree(d);
}

/* Data served as stored is read from the source into the caller's buffer,
 * at its place in the read; the header comes from elsewhere. */
static void spans_of_stored_data_are_read_into_place(void)
{
	char *d = fx_tmpdir();
	write_model(d);
	struct tpfs_model *m = open_model(d, 1 << 20, 1 << 20);
	struct tpfs_view *view = tpfs_view_create(m);
	struct tpfs_file_spans sp;
	uint32_t f = node(m, "f32.npy");
	const struct tpfs_tensor *t = m->tree.nodes[f].payload;
	char into[1000];
	ssize_t got = tpfs_file_spans_get(view, f, 100, 1000, into, &sp);
	CHECK(got == 1000 && sp.n == 2 && sp.npins == 0);
	size_t head = t->npy_header_len - 100;
	CHECK(sp.v[0].len == head && sp.v[0].ptr != into);
	CHECK(sp.v[1].ptr == into + head && sp.v[1].len == 1000 - head);
	/* the tensor's first bytes, as the fixture wrote them */
	unsigned char want[4000];
	fill(want, sizeof(want), 3);
	CHECK(memcmp(into + head, want, 1000 - head) == 0);
	tpfs_file_spans_put(view, &sp);
	tpfs_view_destroy(view);
	tpfs_model_close(m);
	fx_rmtree(d);
}

/* A read over more blocks than a reply has spans for: the spans stop at
 * TPFS_FILE_MAX_SPANS and say so; a copy still gets every byte. */
static void spans_that_run_out_say_so(void)
{
	char *d = fx_tmpdir();
	enum { N = 640000 }; /* BF16 values: 2.56 MB of float32, 40 blocks of 64 KiB */
	unsigned char *raw = malloc(2 * N);
	for (size_t i = 0; i < N; i++) { /* bf16 of i % 256: float32 bits i % 256 << 16 */
		raw[2 * i] = (unsigned char)(i % 256);
		raw[2 * i + 1] = 0x3f;
	}
	CHECK(fx_write_st(d, "model.safetensors",
			  "{\"w\":{\"dtype\":\"BF16\",\"shape\":[640000],"
			  "\"data_offsets\":[0,1280000]}}",
			  raw, 2 * N) == 0);
	struct tpfs_model *m = open_model(d, 1 << 20, 65536);
	struct tpfs_view *view = tpfs_view_create(m);
	uint32_t w = node(m, "w.npy");
	const struct tpfs_tensor *t = m->tree.nodes[w].payload;
	struct tpfs_file_spans sp;
	size_t len = 4 * N;
	unsigned char *buf = malloc(len);
	ssize_t got = tpfs_file_spans_get(view, w, 0, len, (char *)buf, &sp);
	/* the header, then one span per block */
	CHECK(sp.partial && sp.n == TPFS_FILE_MAX_SPANS);
	CHECK(got == (ssize_t)(t->npy_header_len + (TPFS_FILE_MAX_SPANS - 1) * 65536));
	tpfs_file_spans_put(view, &sp);
	got = tpfs_file_spans_get(view, w, t->npy_header_len + 4 * (N - 10), len, (char *)buf,
				  &sp);
	CHECK(got == 40 && !sp.partial); /* the end of the file is no shortfall */
	tpfs_file_spans_put(view, &sp);
	CHECK(tpfs_file_read(view, w, t->npy_header_len, len, buf) == (ssize_t)len);
	int bad = 0;
	for (size_t i = 0; i < N; i++) {
		uint32_t v;
		memcpy(&v, buf + 4 * i, 4);
		bad += v != ((uint32_t)0x3f00u | (uint32_t)(i % 256)) << 16;
	}
	CHECK(bad == 0);
	free(buf);
	free(raw);
	tpfs_view_destroy(view);
	tpfs_model_close(m);
	fx_rmtree(d);
}

static void truncated_source_gives_eio_and_the_rest_still_reads(void)
{
	char *d = fx_tmpdir();
	write_model(d);
	struct tpfs_model *m = open_model(d, 1 << 20, 65536);
	struct tpfs_view *view = tpfs_view_create(m);
	char *p = fx_path(d, "model.safetensors");
	CHECK(truncate(p, 1000) == 0);
	static unsigned char buf[1 << 20];
	CHECK(tpfs_file_read(view, node(m, "f32.npy"), 0, 4096, buf) == -EIO);
	CHECK(tpfs_file_read(view, node(m, "big.npy"), 0, 1 << 20, buf) == -EIO);
	CHECK(tpfs_file_read(view, node(m, "config.json"), 0, 100, buf) == 14);
	CHECK(tpfs_file_read(view, node(m, "manifest.json"), 0, 10, buf) == 10);
	/* Only what the daemon answered counts: the copies above do not. */
	CHECK(atomic_load(&view->reads) == 0 && atomic_load(&view->errors) == 0);
	tpfs_view_count_read(view, -EIO);
	tpfs_view_count_read(view, 14);
	CHECK(atomic_load(&view->reads) == 2 && atomic_load(&view->errors) == 1 &&
	      atomic_load(&view->bytes_served) == 14);
	free(p);
	tpfs_view_destroy(view);
	tpfs_model_close(m);
	fx_rmtree(d);
}

static struct tpfs_source *source_named(struct tpfs_model *m, const char *rel)
{
	for (size_t i = 0; i < m->nsources; i++)
		if (strcmp(m->sources[i]->rel, rel) == 0)
			return m->sources[i];
	return NULL;
}

static void mapping_past_a_truncation_faults_into_eio(void)
{
	char *d = fx_tmpdir();
	write_model(d);
	struct tpfs_model *m = open_model(d, 1 << 20, 65536);
	struct tpfs_view *view = tpfs_view_create(m);
	struct tpfs_source *cfg = source_named(m, "config.json");
	static unsigned char buf[1 << 20];
	/* A passed-through file is mapped; the mapping faults past the cut
	 * and the guard turns the fault into EIO. */
	char *p = fx_path(d, "config.json");
	CHECK(truncate(p, 0) == 0);
	CHECK(cfg->map && tpfs_guard_copy(buf, cfg->map, 14) == -EIO);
	CHECK(tpfs_file_read(view, node(m, "config.json"), 0, 14, buf) == -EIO);
	/* Tensor sources are read, not mapped. */
	CHECK(source_named(m, "model.safetensors")->map == NULL);
	free(p);
	tpfs_view_destroy(view);
	tpfs_model_close(m);
	fx_rmtree(d);
}

/* The freshness check happens before a read; a truncation between the
 * check and the read makes the read come up short. Simulated by telling
 * the model the file always had its new size and time stamp: then only
 * the length pread returns stands between the read and garbage. */
static void fault_past_the_freshness_check_gives_eio(void)
{
	char *d = fx_tmpdir();
	write_model(d);
	struct tpfs_model *m = open_model(d, 1 << 20, 65536);
	struct tpfs_view *view = tpfs_view_create(m);
	char *p = fx_path(d, "model.safetensors");
	CHECK(truncate(p, 4096) == 0);
	struct stat st;
	CHECK(stat(p, &st) == 0);
	struct tpfs_source *s = source_named(m, "model.safetensors");
	s->size = (uint64_t)st.st_size;
	s->mtime = st.st_mtim;
	CHECK(tpfs_source_check(s) == 0);
	static unsigned char buf[1 << 20];
	/* converted: the fill's read of the source comes up short */
	CHECK(tpfs_file_read(view, node(m, "big.npy"), 100000, 4096, buf) == -EIO);
	/* stored: the read into place comes up short */
	CHECK(tpfs_file_read(view, node(m, "f32.npy"), 1000, 1000, buf) == -EIO);
	/* and the source is marked as changed from then on */
	CHECK(atomic_load(&s->stale));
	free(p);
	tpfs_view_destroy(view);
	tpfs_model_close(m);
	fx_rmtree(d);
}

static void replaced_source_gives_eio(void)
{
	char *d = fx_tmpdir();
	write_model(d);
	struct tpfs_model *m = open_model(d, 1 << 20, 65536);
	struct tpfs_view *view = tpfs_view_create(m);
	CHECK(fx_st_write(&model, d, "new.safetensors") == 0);
	char *from = fx_path(d, "new.safetensors"), *to = fx_path(d, "model.safetensors");
	CHECK(rename(from, to) == 0);
	static unsigned char buf[4096];
	CHECK(tpfs_file_read(view, node(m, "f32.npy"), 0, 4096, buf) == -EIO);
	free(from);
	free(to);
	tpfs_view_destroy(view);
	tpfs_model_close(m);
	fx_rmtree(d);
}

/* The id of a path through the served view, or -1. */
static long entry(const struct tpfs_view *view, const char *path)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", path);
	long at = 0;
	for (char *save = NULL, *c = strtok_r(buf, "/", &save); c && at >= 0;
	     c = strtok_r(NULL, "/", &save))
		at = tpfs_view_lookup(view, (uint32_t)at, c);
	return at;
}

/* The names a folder of the view lists, joined with spaces. */
static void listing(const struct tpfs_view *view, long dir, char *out, size_t len)
{
	out[0] = '\0';
	uint32_t id;
	const char *name;
	char made[256];
	for (uint64_t k = 0; dir >= 0 && tpfs_view_entry_at(view, (uint32_t)dir, &k, &id, &name,
							    made) == 0; k++) {
		CHECK(tpfs_view_lookup(view, (uint32_t)dir, name) == id);
		snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? " " : "", name);
	}
}

static void info_mirrors_every_tensor_folder_with_a_card(void)
{
	char *d = fx_tmpdir();
	/* tensors a, sub/b and x; x.txt/y makes a folder that hides x's card;
	 * notes/ holds no tensor */
	CHECK(fx_write_st(d, "model.safetensors",
			  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
			  "\"sub/b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]},"
			  "\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]},"
			  "\"x.txt/y\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[3,4]}}",
			  "abcd", 4) == 0);
	CHECK(fx_write(d, "notes/n.md", "n", 1) == 0);
	struct tpfs_model *m = open_model(d, 1 << 20, 1 << 20);
	struct tpfs_view *view = m ? tpfs_view_create(m) : NULL;
	char got[512];
	if (view) {
		listing(view, entry(view, ".tpfs/info"), got, sizeof(got));
		CHECKF(strcmp(got, "a.txt sub x.txt") == 0, "'%s'", got);
		listing(view, entry(view, ".tpfs/info/sub"), got, sizeof(got));
		CHECKF(strcmp(got, "b.txt") == 0, "'%s'", got);
		listing(view, entry(view, ".tpfs/info/x.txt"), got, sizeof(got));
		CHECKF(strcmp(got, "y.txt") == 0, "'%s'", got);
		CHECK(entry(view, ".tpfs/info/notes") == -ENOENT);
		CHECK(entry(view, ".tpfs/info/a.npy") == -ENOENT);
		CHECK(entry(view, ".tpfs/info/sub/b.txt/z") == -ENOTDIR);
		struct tpfs_view_attr card, npy, dir, mirror;
		CHECK(tpfs_view_stat(view, (uint32_t)entry(view, ".tpfs/info/sub/b.txt"), &card) == 0);
		CHECK(tpfs_view_stat(view, (uint32_t)entry(view, "sub/b.npy"), &npy) == 0);
		CHECK(card.kind == TPFS_NODE_CARD && card.size > 100);
		CHECK(card.mode == npy.mode && card.uid == npy.uid && card.gid == npy.gid);
		CHECK(tpfs_view_stat(view, (uint32_t)entry(view, "sub"), &dir) == 0);
		CHECK(tpfs_view_stat(view, (uint32_t)entry(view, ".tpfs/info/sub"), &mirror) == 0);
		CHECK(mirror.kind == TPFS_NODE_DIR && mirror.mode == dir.mode);
		/* folders are not counted (nlink 1): a count would tell who may
		 * look one up but not list it how many folders it holds */
		CHECK(tpfs_view_stat(view, (uint32_t)entry(view, ".tpfs/info"), &mirror) == 0);
		CHECK(mirror.nlink == 1 && dir.nlink == 1);
		/* the card reads, names the tensor, and is as long as its size */
		char *text = malloc(card.size + 10);
		long b = entry(view, ".tpfs/info/sub/b.txt");
		CHECK(tpfs_file_read(view, (uint32_t)b, 0, card.size + 10, text) ==
		      (ssize_t)card.size);
		CHECK(strncmp(text, "tensor      sub/b\n", 18) == 0);
		free(text);
	}
	tpfs_view_destroy(view);
	tpfs_model_close(m);
	fx_rmtree(d);
}

int main(void)
{
	make_model();
	CHECK(tpfs_guard_install() == 0);
	RUN(every_file_reads_the_same_at_any_offset);
	RUN(spans_of_stored_data_are_read_into_place);
	RUN(spans_that_run_out_say_so);
	RUN(truncated_source_gives_eio_and_the_rest_still_reads);
	RUN(mapping_past_a_truncation_faults_into_eio);
	RUN(fault_past_the_freshness_check_gives_eio);
	RUN(replaced_source_gives_eio);
	RUN(info_mirrors_every_tensor_folder_with_a_card);
	fx_st_free(&model);
	return check_done();
}
