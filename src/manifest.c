/*
 * manifest.json, piece by piece (see manifest.h).
 */
#include "tpfs/manifest.h"
#include "tpfs/buf.h"
#include "tpfs/path.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct tpfs_manifest {
	const struct tpfs_model *m;
	uint64_t *at;   /* piece k starts at at[k]; at[ntensors + 2] is the size */
};

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

void tpfs_manifest_tensor(struct tpfs_buf *b, const struct tpfs_tensor *t, const char *path)
{
	const struct tpfs_st_tensor *st = t->part[0].st;
	tpfs_buf_puts(b, "\"name\": ");
	tpfs_buf_json_string(b, t->name);
	tpfs_buf_puts(b, ", \"path\": ");
	tpfs_buf_json_string(b, path);
	tpfs_buf_puts(b, ", \"dtype\": ");
	tpfs_buf_json_string(b, tpfs_tensor_descr(t));
	tpfs_buf_puts(b, ", \"shape\": ");
	tpfs_buf_shape(b, t->shape, t->ndim);
	tpfs_buf_printf(b, ", \"source_dtype\": \"%s\", \"source_shape\": ",
			tpfs_tensor_source_dtype(t));
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
			   "\"exact\": %s",
			tpfs_tensor_npy_size(t), t->conv->name, t->conv->exact ? "true" : "false");
}

/* The top: everything before the first tensor's record. */
static void render_top(struct tpfs_buf *b, const struct tpfs_model *m)
{
	tpfs_buf_puts(b, "{\n  \"tpfs_version\": \"" TPFS_VERSION "\",\n  \"source\": ");
	tpfs_buf_json_string(b, m->root);
	tpfs_buf_puts(b, ",\n  \"options\": ");
	tpfs_options_json(&m->opt, b);
	tpfs_buf_puts(b, ",\n  \"files\": [");
	bool first = true;
	for (size_t i = 0; i < m->nsources; i++) {
		const struct tpfs_source *s = m->sources[i];
		if (!s->st)
			continue;
		tpfs_buf_puts(b, first ? "\n    {\"path\": " : ",\n    {\"path\": ");
		first = false;
		tpfs_buf_json_string(b, s->rel);
		tpfs_buf_printf(b, ", \"bytes\": %" PRIu64 ", \"tensors\": %zu", s->size,
				s->st->ntensors);
		if (s->st->meta == TPFS_ST_META_NULL)
			tpfs_buf_puts(b, ", \"metadata\": null");
		else if (s->st->meta == TPFS_ST_META_MAP)
			tpfs_buf_printf(b, ", \"metadata\": %s", s->st->metadata_json);
		tpfs_buf_puts(b, "}");
	}
	tpfs_buf_puts(b, first ? "],\n  \"tensors\": [" : "\n  ],\n  \"tensors\": [");
}

/* Piece k of the manifest into b (emptied first): the top, tensor k - 1's
 * record, or the end. Returns false when out of memory. */
static bool render_piece(struct tpfs_buf *b, const struct tpfs_model *m, size_t k,
			 const char *const *paths, const char *extra)
{
	b->len = 0;
	if (k == 0) {
		render_top(b, m);
	} else if (k <= m->ntensors) {
		size_t i = k - 1;
		char *path = paths ? NULL : tpfs_tree_path(&m->tree, m->tensors[i].node);
		if (!paths && !path)
			return false;
		tpfs_buf_puts(b, i ? ",\n" : "\n");
		tpfs_buf_puts(b, "    {");
		tpfs_manifest_tensor(b, &m->tensors[i], paths ? paths[i] : path);
		tpfs_buf_puts(b, "}");
		free(path);
	} else {
		tpfs_buf_puts(b, m->ntensors ? "\n  ]" : "]");
		if (extra)
			tpfs_buf_printf(b, ",\n  \"convert\": %s", extra);
		tpfs_buf_puts(b, "\n}\n");
	}
	return !b->oom;
}

struct tpfs_manifest *tpfs_manifest_create(const struct tpfs_model *m)
{
	struct tpfs_manifest *mf = calloc(1, sizeof(*mf));
	if (mf)
		mf->at = malloc((m->ntensors + 3) * sizeof(*mf->at));
	if (!mf || !mf->at) {
		tpfs_manifest_destroy(mf);
		return NULL;
	}
	mf->m = m;
	struct tpfs_buf b = {0};
	mf->at[0] = 0;
	for (size_t k = 0; k < m->ntensors + 2; k++) {
		if (!render_piece(&b, m, k, NULL, NULL)) {
			tpfs_buf_free(&b);
			tpfs_manifest_destroy(mf);
			return NULL;
		}
		mf->at[k + 1] = mf->at[k] + b.len;
	}
	tpfs_buf_free(&b);
	return mf;
}

void tpfs_manifest_destroy(struct tpfs_manifest *mf)
{
	if (!mf)
		return;
	free(mf->at);
	free(mf);
}

uint64_t tpfs_manifest_size(const struct tpfs_manifest *mf)
{
	return mf->at[mf->m->ntensors + 2];
}

ssize_t tpfs_manifest_read(const struct tpfs_manifest *mf, uint64_t off, size_t len,
			   void *buf)
{
	uint64_t size = tpfs_manifest_size(mf);
	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	/* the last piece starting at or before off */
	size_t lo = 0, hi = mf->m->ntensors + 2;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (mf->at[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	struct tpfs_buf b = {0};
	size_t done = 0;
	for (size_t k = lo; done < len; k++) {
		if (!render_piece(&b, mf->m, k, NULL, NULL)) {
			tpfs_buf_free(&b);
			return -ENOMEM;
		}
		size_t from = (size_t)(off + done - mf->at[k]);
		size_t take = b.len - from < len - done ? b.len - from : len - done;
		memcpy((char *)buf + done, b.data + from, take);
		done += take;
	}
	tpfs_buf_free(&b);
	return (ssize_t)done;
}

int tpfs_manifest_write(const struct tpfs_model *m, const char *const *paths,
			const char *extra, int fd)
{
	struct tpfs_buf b = {0};
	int rc = 0;
	for (size_t k = 0; k < m->ntensors + 2 && rc == 0; k++)
		rc = render_piece(&b, m, k, paths, extra) ? tpfs_path_write_all(fd, b.data, b.len)
							  : -ENOMEM;
	tpfs_buf_free(&b);
	return rc;
}
