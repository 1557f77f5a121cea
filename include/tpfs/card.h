/*
 * Tensor info cards (.tpfs/info/<path>.txt, and `tpfs ls SRC TENSOR`): plain
 * text with a tensor's names, dtypes, shape and sizes, the min / max / mean
 * / std of its served values (finite values only) with its NaN and infinity
 * counts, and its first and last values, printed the way NumPy prints
 * scalars (shortest text that reads back as the same value).
 *
 * Every field has a fixed width, so a card's size is known before its
 * statistics are, and getattr never reads a tensor. This module owns the
 * cards: it accumulates, formats and keeps them; file.c provides the served
 * bytes to stream through them. A tpfs_stats belongs to one thread at a
 * time; tpfs_cards locks itself.
 */
#ifndef TPFS_CARD_H
#define TPFS_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpfs_buf;
struct tpfs_model;
struct tpfs_tensor;

#define TPFS_CARD_EDGE 3 /* first and last values shown */

struct tpfs_card_stats {
	char kind;             /* 'f' float, 'i' signed, 'u' unsigned, 'b' bool,
				  'c' complex, 'h' bfloat16 bits */
	unsigned size;         /* bytes per element */
	uint64_t count;        /* elements seen */
	uint64_t finite;       /* elements in min / max / mean / std */
	uint64_t nan, inf;
	double min, max;       /* floats and bools */
	int64_t imin, imax;    /* signed integers, exactly */
	uint64_t umin, umax;   /* unsigned integers, exactly */
	double mean, m2;       /* Welford's running mean and squared deviations */
	unsigned char first[TPFS_CARD_EDGE][16];
	unsigned char last[TPFS_CARD_EDGE][16]; /* a ring: last[count % EDGE] */
};

/* Start statistics for elements of the NumPy descr served. */
void tpfs_card_stats_init(struct tpfs_card_stats *s, const char *descr);

/* Account for n whole elements. */
void tpfs_card_stats_add(struct tpfs_card_stats *s, const void *data, size_t n);

/* The card of t, with the statistics s, or placeholders of the same widths
 * when s is NULL (to learn the size). malloc'd; NULL on allocation failure. */
char *tpfs_card_render(const struct tpfs_model *m, const struct tpfs_tensor *t,
		       const struct tpfs_card_stats *s, size_t *len);

/* The cards of a model's tensors, each made when first asked for and kept:
 * its size (known without reading the tensor) and its text (made by
 * streaming the tensor's served values once, a block at a time). Thread-safe:
 * concurrent callers for one card wait for one computation. */
struct tpfs_card_set;

/* Produces the served data bytes [block * bs, + n) of tensor i into buf
 * (bs: the model's block_size). Returns 0 or a negative errno. */
typedef int (*tpfs_card_read_fn)(void *ctx, size_t i, uint64_t block, void *buf,
				  size_t n);

/* NULL on allocation failure. */
struct tpfs_card_set *tpfs_card_set_create(const struct tpfs_model *m);

/* Accepts NULL. */
void tpfs_card_set_destroy(struct tpfs_card_set *c);

/* The size of tensor i's card in bytes; 0 when out of memory. */
uint64_t tpfs_card_set_size(struct tpfs_card_set *c, size_t i);

/* Tensor i's card and, when stats is not NULL, the statistics it shows,
 * valid until tpfs_card_set_destroy; made on the first call by reading the
 * tensor's served data with read(ctx, ...). Returns 0 or a negative errno
 * (the read's error, -ENOMEM, or -EIO for a card that outgrew its size,
 * which would be a bug). */
int tpfs_card_set_text(struct tpfs_card_set *c, size_t i, tpfs_card_read_fn read,
		       void *ctx, const char **text, size_t *len,
		       const struct tpfs_card_stats **stats);

/* The card of t with the statistics s as JSON members, for `tpfs ls SRC
 * TENSOR --json`: "parameters", "bytes" (the served data) and "stats", an
 * object of the card's values: "min", "max", "mean" and "std" (null where
 * the card says n/a), "nan" and "inf" (counts), "first" and "last"
 * (arrays; a complex value is [real, imaginary]). A value is the card's
 * text, a JSON number, except NaN and the infinities, which JSON lacks:
 * the strings "nan", "inf" and "-inf"; and bools, true and false. */
void tpfs_card_json(struct tpfs_buf *b, const struct tpfs_tensor *t,
		    const struct tpfs_card_stats *s);

/* Format one element of the given descr the way NumPy prints a scalar. */
void tpfs_card_format_value(const struct tpfs_card_stats *s, const void *elem, char *buf,
		       size_t len);

#endif
