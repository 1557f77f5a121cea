/*
 * Tensor info cards (.tpfs/info/<path>.txt, and `tpfs ls SRC TENSOR`): plain
 * text with a tensor's names, dtypes, shape and sizes, the min / max / mean
 * / std of its served values (finite values only) with its NaN and infinity
 * counts, and its first and last values, printed the way NumPy prints
 * scalars (shortest text that reads back as the same value).
 *
 * Every field has a fixed width, so a card's size is known before its
 * statistics are, and getattr never reads a tensor. This module only
 * accumulates and formats; file.c streams the served bytes through it.
 * Pure functions; a tpfs_stats belongs to one thread at a time.
 */
#ifndef TPFS_INFO_H
#define TPFS_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpfs_tensor;

#define TPFS_INFO_EDGE 3 /* first and last values shown */

struct tpfs_stats {
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
	unsigned char first[TPFS_INFO_EDGE][16];
	unsigned char last[TPFS_INFO_EDGE][16]; /* a ring: last[count % EDGE] */
};

/* Start statistics for elements of the NumPy descr served. */
void tpfs_stats_init(struct tpfs_stats *s, const char *descr);

/* Account for n whole elements. */
void tpfs_stats_add(struct tpfs_stats *s, const void *data, size_t n);

/* The card of t, with the statistics s, or placeholders of the same widths
 * when s is NULL (to learn the size). malloc'd; NULL on allocation failure. */
char *tpfs_info_render(const struct tpfs_tensor *t, const struct tpfs_stats *s,
		       size_t *len);

/* Format one element of the given descr the way NumPy prints a scalar. */
void tpfs_format_value(const struct tpfs_stats *s, const void *elem, char *buf,
		       size_t len);

#endif
