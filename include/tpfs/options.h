/*
 * The -o options that change what tpfs serves, shared by the mount and every
 * tool. Options that only concern the kernel mount (allow_other, ...) live in
 * main.c. Plain data; no locks.
 */
#ifndef TPFS_OPTIONS_H
#define TPFS_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "tpfs/util.h"

#define TPFS_DEFAULT_CACHE_SIZE (256ULL << 20)
#define TPFS_DEFAULT_BLOCK_SIZE (1ULL << 20)
#define TPFS_MIN_BLOCK_SIZE (64ULL << 10)
#define TPFS_MAX_BLOCK_SIZE (64ULL << 20)

struct tpfs_options {
	uint64_t cache_size;  /* bound on converted bytes kept in memory */
	uint64_t block_size;  /* conversion unit, in output bytes */
	bool by_file;         /* one folder per .safetensors file */
};

void tpfs_options_defaults(struct tpfs_options *o);

/* Apply one option, "key" or "key=value". Returns 0 when applied, 1 when the
 * key is not one of these options (the caller may know it), or -EINVAL with
 * e naming the option, the bad value and the valid ones. */
int tpfs_options_apply(struct tpfs_options *o, const char *opt,
		       struct tpfs_error *e);

/* The options as a JSON object (for manifest.json). */
void tpfs_options_json(const struct tpfs_options *o, struct tpfs_buf *b);

/* Help text, one option a line, for --help. */
const char *tpfs_options_help(void);

#endif
