/*
 * Sizes: checked arithmetic on byte counts, and sizes as people write and
 * read them ("256M", "1.50 GiB"). Pure functions.
 */
#ifndef TPFS_SIZE_H
#define TPFS_SIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Checked arithmetic: return false on overflow. */
static inline bool tpfs_size_mul(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_mul_overflow(a, b, r);
}

static inline bool tpfs_size_add(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_add_overflow(a, b, r);
}

/* Parse "256M", "1.5G", "4096", "64KiB": digits with an optional fraction,
 * then an optional binary unit K, M, G or T (case-insensitive, optionally
 * followed by B or iB). Returns 0 or -EINVAL. */
int tpfs_size_parse(const char *s, uint64_t *out);

/* Format n bytes as "1.50 GiB" into buf. Returns buf. */
const char *tpfs_size_format(uint64_t n, char *buf, size_t len);

/* Format n bytes as `ls -h` does, with binary units: "512 B", "1.5 KiB"
 * (one decimal below 10), "12 MiB", each rounded up, so that a size is
 * never shown smaller than it is. Returns buf. */
const char *tpfs_size_human(uint64_t n, char *buf, size_t len);

#endif
