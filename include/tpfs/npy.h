/*
 * The NumPy .npy header: magic, version, a Python dict literal with descr,
 * fortran_order and shape, padded with spaces and a newline so that the data
 * starts at a multiple of 64 bytes, as NumPy's own writer does. Pure
 * functions; thread-safe.
 */
#ifndef TPFS_NPY_H
#define TPFS_NPY_H

#include <stddef.h>
#include <stdint.h>

#define TPFS_NPY_ALIGN 64

/* The header for an array of the given descr and shape. Version 1.0 is
 * used unless the dict exceeds what its 16-bit length can say, then 2.0.
 * Returns its length (a multiple of TPFS_NPY_ALIGN), having written it to
 * buf when cap is enough (buf may be NULL with cap 0, to learn the length),
 * or a negative errno. */
long tpfs_npy_header(const char *descr, const uint64_t *shape, uint32_t ndim,
		     uint8_t *buf, size_t cap);

#endif
