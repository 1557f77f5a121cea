/*
 * manifest.json: the authoritative list of what the mount serves, rendered
 * once at mount time. Numbers are written as integers (never through a
 * double), so offsets past 2^53 would stay exact.
 */
#include <inttypes.h>

#include "tpfs/model.h"

static void render_part(struct tpfs_buf *b, const struct tpfs_part *p)
{
	tpfs_buf_puts(b, "{\"name\": ");
	tpfs_buf_json_string(b, p->st->name);
	tpfs_buf_puts(b, ", \"file\": ");
	tpfs_buf_json_string(b, p->src->rel);
	tpfs_buf_printf(b, ", \"range\": [%" PRIu64 ", %" PRIu64 "], \"dtype\": \"%s\", "
			   "\"shape\": ",
			p->st->begin, p->st->end, tpfs_dtype_info(p->st->dtype)->name);
	tpfs_buf_shape(b, p->st->shape, p->st->ndim);
	tpfs_buf_puts(b, "}");
}

static void render_tensor(struct tpfs_buf *b, const struct tpfs_tensor *t,
			  const char *path)
{
	const struct tpfs_st_tensor *st = t->part[0].st;
	tpfs_buf_puts(b, "    {\"name\": ");
	tpfs_buf_json_string(b, t->name);
	tpfs_buf_puts(b, ", \"path\": ");
	tpfs_buf_json_string(b, path);
	tpfs_buf_puts(b, ", \"dtype\": ");
	tpfs_buf_json_string(b, t->descr);
	tpfs_buf_puts(b, ", \"shape\": ");
	tpfs_buf_shape(b, t->shape, t->ndim);
	tpfs_buf_printf(b, ", \"source_dtype\": \"%s\", \"source_shape\": ", t->source_dtype);
	tpfs_buf_shape(b, st->shape, st->ndim);
	tpfs_buf_puts(b, ", \"source_file\": ");
	tpfs_buf_json_string(b, t->part[0].src->rel);
	tpfs_buf_printf(b, ", \"source_range\": [%" PRIu64 ", %" PRIu64 "]", st->begin,
			st->end);
	if (t->part[1].st) {
		tpfs_buf_puts(b, ", \"sources\": [");
		render_part(b, &t->part[0]);
		tpfs_buf_puts(b, ", ");
		render_part(b, &t->part[1]);
		tpfs_buf_puts(b, "]");
	}
	tpfs_buf_printf(b, ", \"npy_bytes\": %" PRIu64 ", \"conversion\": \"%s\", "
			   "\"exact\": %s}",
			t->npy_size, t->conv->name, t->conv->exact ? "true" : "false");
}

char *tpfs_manifest_render(const struct tpfs_model *m, const char *const *paths,
			   const char *extra, size_t *len)
{
	struct tpfs_buf b = {0};
	tpfs_buf_puts(&b, "{\n  \"tpfs_version\": \"" TPFS_VERSION "\",\n  \"source\": ");
	tpfs_buf_json_string(&b, m->root);
	tpfs_buf_puts(&b, ",\n  \"options\": ");
	tpfs_options_json(&m->opt, &b);
	tpfs_buf_puts(&b, ",\n  \"files\": [");
	bool first = true;
	for (size_t i = 0; i < m->nsources; i++) {
		const struct tpfs_source *s = m->sources[i];
		if (!s->st)
			continue;
		tpfs_buf_puts(&b, first ? "\n    {\"path\": " : ",\n    {\"path\": ");
		first = false;
		tpfs_buf_json_string(&b, s->rel);
		tpfs_buf_printf(&b, ", \"bytes\": %" PRIu64 ", \"tensors\": %zu", s->size,
				s->st->ntensors);
		if (s->st->meta == TPFS_ST_META_NULL)
			tpfs_buf_puts(&b, ", \"metadata\": null");
		else if (s->st->meta == TPFS_ST_META_MAP)
			tpfs_buf_printf(&b, ", \"metadata\": %s", s->st->metadata_json);
		tpfs_buf_puts(&b, "}");
	}
	tpfs_buf_puts(&b, first ? "],\n  \"tensors\": [" : "\n  ],\n  \"tensors\": [");
	for (size_t i = 0; i < m->ntensors; i++) {
		tpfs_buf_puts(&b, i ? ",\n" : "\n");
		render_tensor(&b, &m->tensors[i], paths ? paths[i] : m->tensors[i].path);
	}
	tpfs_buf_puts(&b, m->ntensors ? "\n  ]" : "]");
	if (extra)
		tpfs_buf_printf(&b, ",\n  \"convert\": %s", extra);
	tpfs_buf_puts(&b, "\n}\n");
	return tpfs_buf_take(&b, len);
}
