/*
 * Safetensors header reader and validator.
 *
 * A Safetensors file is an 8-byte little-endian header length N, N bytes of
 * UTF-8 JSON, then the data buffer. Every rule of the format is checked here,
 * each with its own message; a header that passes describes a data buffer
 * that its tensors tile exactly, so later code never re-checks bounds.
 *
 * Not here: mapping, opening folders, name escaping (model.c, tree.c).
 * Parsing keeps no global state; the result is immutable and may be shared
 * freely.
 */
#ifndef TPFS_SAFETENSORS_H
#define TPFS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "tpfs/dtype.h"
#include "tpfs/error.h"
#include "tpfs/arena.h"

#define TPFS_ST_MAX_HEADER 100000000ULL
/* The most dimensions a tensor may have: NumPy 2 reads up to 64 (NumPy 1
 * up to 32); more is no tensor anyone made, and its shape costs memory. */
#define TPFS_ST_MAX_DIMS 64

struct tpfs_st_tensor {
	const char *name;         /* in the header's text */
	const uint64_t *shape;    /* ndim entries (NULL when ndim == 0) */
	uint64_t nelem;           /* product of shape; 1 for 0-d */
	uint64_t begin;           /* absolute byte offsets in the file */
	uint64_t end;
	uint32_t ndim;
	enum tpfs_dtype dtype;
};

enum tpfs_st_meta {
	TPFS_ST_META_ABSENT,
	TPFS_ST_META_NULL,
	TPFS_ST_META_MAP,
};

struct tpfs_st_header {
	uint64_t file_size;
	uint64_t header_len;      /* N */
	uint64_t data_start;      /* 8 + N */
	size_t ntensors;
	struct tpfs_st_tensor *tensors; /* sorted by name (bytewise) */
	enum tpfs_st_meta meta;
	char *metadata_json;      /* the __metadata__ object as compact JSON, or NULL */
	/* private: what the tensors point into */
	char *text;               /* the header's JSON, strings unescaped in place */
	struct tpfs_arena arena;  /* the shapes */
};

/* Parse and validate the header of a file of file_size bytes whose first
 * len bytes are in bytes (len must cover 8 + N, or the whole file if
 * shorter). file names the file in messages. On success *out owns a new
 * header (free with tpfs_st_free) and 0 is returned; otherwise a negative
 * errno and e describes the first rule broken. */
int tpfs_st_parse(const char *file, const void *bytes, size_t len,
		  uint64_t file_size, struct tpfs_st_header **out,
		  struct tpfs_error *e);

/* Read the header of an open file with pread (no data byte is read) and
 * parse it as above. */
int tpfs_st_read(int fd, const char *file, uint64_t file_size,
		 struct tpfs_st_header **out, struct tpfs_error *e);

/* Find a tensor by name (binary search); NULL if absent. */
const struct tpfs_st_tensor *tpfs_st_find(const struct tpfs_st_header *h,
					   const char *name);

/* Accepts NULL. */
void tpfs_st_free(struct tpfs_st_header *h);

/* A sharded checkpoint's index (model.safetensors.index.json): the
 * weight_map from tensor name to shard file name. */
struct tpfs_st_index_entry {
	const char *tensor;
	const char *file;
};

struct tpfs_st_index {
	size_t n;
	struct tpfs_st_index_entry *v; /* sorted by tensor name */
	char *text;                    /* private: what they point into */
};

/* Parse an index file's JSON text of len bytes in json (malloc'd, with room
 * for one more byte), which this takes in every case: the entries point
 * into it. Returns 0 and a new index in *out, or a negative errno with e
 * naming the file and the problem. */
int tpfs_st_index_parse(const char *file, char *json, size_t len,
			struct tpfs_st_index **out, struct tpfs_error *e);

/* The shard file the index maps name to, or NULL. */
const char *tpfs_st_index_find(const struct tpfs_st_index *ix, const char *name);

/* Accepts NULL. */
void tpfs_st_index_free(struct tpfs_st_index *ix);

/* Format a shape as "[2, 3]" into buf. Returns buf. */
const char *tpfs_st_shape_str(const uint64_t *shape, uint32_t ndim, char *buf,
			   size_t len);

#endif
