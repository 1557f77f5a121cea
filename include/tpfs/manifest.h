/*
 * manifest.json: the authoritative list of what a mount serves. It is made
 * of pieces (the top with the options and files, one record per tensor, the
 * end) rendered on demand: a mount keeps only each piece's offset, so a
 * model of a million tensors does not hold its manifest's hundreds of
 * megabytes in memory. Numbers are written as integers (never through a
 * double), so offsets past 2^53 stay exact.
 *
 * A layout is immutable once made; reading it is thread-safe.
 */
#ifndef TPFS_MANIFEST_H
#define TPFS_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tpfs/model.h"

struct tpfs_buf;
struct tpfs_manifest;

/* Measure the manifest of a model whose tree is finished: each piece is
 * rendered once and only its length kept. NULL on allocation failure. */
struct tpfs_manifest *tpfs_manifest_create(const struct tpfs_model *m);

/* Accepts NULL. */
void tpfs_manifest_destroy(struct tpfs_manifest *mf);

uint64_t tpfs_manifest_size(const struct tpfs_manifest *mf);

/* Copy bytes [off, off + len) of the manifest into buf (clipped at its
 * end). Returns the bytes copied or -ENOMEM. */
ssize_t tpfs_manifest_read(const struct tpfs_manifest *mf, uint64_t off, size_t len,
			   void *buf);

/* The members of tensor t's record in the manifest ("name": ... "exact":
 * ..., without braces) into b, with path as its path. */
void tpfs_manifest_tensor(struct tpfs_buf *b, const struct tpfs_tensor *t, const char *path);

/* Write the whole manifest of m to fd: paths, when not NULL, replaces each
 * tensor's path (tpfs convert's shard folders); extra, when not NULL, is a
 * JSON value added as "convert". Returns 0 or a negative errno. */
int tpfs_manifest_write(const struct tpfs_model *m, const char *const *paths,
			const char *extra, int fd);

#endif
