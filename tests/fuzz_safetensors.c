/*
 * libFuzzer target for the Safetensors header and index parsers: any input
 * is either refused with a message or yields a header whose tensors tile the
 * data buffer exactly, with byte lengths that match their shapes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tpfs/safetensors.h"
#include "tpfs/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_begin(const void *a, const void *b)
{
	const struct tpfs_st_tensor *x = *(const struct tpfs_st_tensor *const *)a;
	const struct tpfs_st_tensor *y = *(const struct tpfs_st_tensor *const *)b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tpfs_st_header *h = NULL;
	struct tpfs_error e;
	if (tpfs_st_parse("fuzz", data, size, size, &h, &e) == 0) {
		const struct tpfs_st_tensor **v = malloc((h->ntensors + 1) * sizeof(*v));
		for (size_t i = 0; i < h->ntensors; i++) {
			const struct tpfs_st_tensor *t = &h->tensors[i];
			unsigned bits = tpfs_dtype_info(t->dtype)->bits;
			if (t->end < t->begin || (t->end - t->begin) * 8 != t->nelem * bits)
				abort();
			if (i && strcmp(h->tensors[i - 1].name, t->name) >= 0)
				abort();
			v[i] = t;
		}
		qsort(v, h->ntensors, sizeof(*v), cmp_begin);
		uint64_t at = h->data_start;
		for (size_t i = 0; i < h->ntensors; i++) {
			if (v[i]->begin != at)
				abort();
			at = v[i]->end;
		}
		if (at != size)
			abort();
		free(v);
		tpfs_st_free(h);
	} else if (h != NULL || !e.msg[0]) {
		abort();
	}
	struct tpfs_st_index *ix = NULL;
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	if (tpfs_st_index_parse("fuzz", copy, size, &ix, &e) == 0)
		tpfs_st_index_free(ix);
	return 0;
}
