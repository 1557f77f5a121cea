/*
 * The -o options: those that change what tpfs serves, shared by the mount
 * and every tool, and the mount's own words (kernel options such as
 * allow_other, and fstab's words, which are ignored), which main.c hands to
 * libfuse. Plain data; no locks.
 */
#ifndef TPFS_OPTIONS_H
#define TPFS_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "tpfs/error.h"
#include "tpfs/buf.h"

#define TPFS_DEFAULT_CACHE_SIZE (256ULL << 20)
#define TPFS_DEFAULT_BLOCK_SIZE (1ULL << 20)
#define TPFS_MIN_BLOCK_SIZE (64ULL << 10)
#define TPFS_MAX_BLOCK_SIZE (64ULL << 20)

/* What a floating source type is served as. Not every value is valid for
 * every option; tpfs_options_apply says which are. */
enum tpfs_out {
	TPFS_OUT_AUTO,  /* the type's default (dtype=auto) */
	TPFS_OUT_F32,
	TPFS_OUT_F16,
	TPFS_OUT_BF16,  /* bfloat16 bits, descr |V2 */
	TPFS_OUT_RAW,   /* the stored bits */
	TPFS_OUT_BOTH,  /* mxfp4 only: the dequantized tensor and the raw pair */
};

struct tpfs_options {
	uint64_t cache_size;  /* bound on converted bytes kept in memory */
	uint64_t block_size;  /* conversion unit, in output bytes */
	bool by_file;         /* one folder per .safetensors file */
	bool shared;          /* a mount other users may enter (allow_other):
				 loading says what permissions close to them */
	bool direct_io;       /* a mount's -o direct_io: tensor files bypass
				 the kernel's page cache */
	enum tpfs_out bf16;   /* f32 (default), f16, raw */
	enum tpfs_out fp8;    /* f16 (default), f32, raw */
	enum tpfs_out mxfp4;  /* f32 (default), f16, bf16, raw, both */
	enum tpfs_out dtype;  /* auto (default), f32, f16 */
	/* which of the four were given explicitly, for conflict checks */
	bool bf16_set, fp8_set, mxfp4_set;
};

void tpfs_options_defaults(struct tpfs_options *o);

/* Apply one option, "key" or "key=value". Returns 0 when applied, 1 when the
 * key is not one of these options (the caller may know it), or -EINVAL with
 * e naming the option, the bad value and the valid ones. */
int tpfs_options_apply(struct tpfs_options *o, const char *opt,
		       struct tpfs_error *e);

/* Apply a comma-separated list. An option that is not one of these is
 * offered to other(opt, ctx) when given (the mount's own options); if it is
 * not taken, the list is refused with e naming the option and the valid
 * ones, followed by `extra` (the caller's own, or NULL). Without other, a
 * word tpfs_options_mount takes is refused as for the mount only. Then checks the
 * options as a whole (tpfs_options_check). Returns 0 or -EINVAL. */
int tpfs_options_parse(struct tpfs_options *o, const char *list,
		       bool (*other)(const char *opt, void *ctx), void *ctx,
		       const char *extra, struct tpfs_error *e);

/* Check the options as a whole once all are applied: dtype=f32 or f16 may not
 * be combined with a bf16, fp8 or mxfp4 value that contradicts it. Returns 0
 * or -EINVAL with e saying which two conflict. */
int tpfs_options_check(const struct tpfs_options *o, struct tpfs_error *e);

/* The options as a JSON object (for manifest.json). */
void tpfs_options_json(const struct tpfs_options *o, struct tpfs_buf *b);

/* The mount's own options, collected by tpfs_options_mount. */
struct tpfs_mount_opts {
	char kernel[1024];  /* ",allow_other,nodev...": for the kernel mount */
	bool overflow;      /* more than kernel holds: the mount must refuse */
	bool direct_io;     /* direct_io: tensor files bypass the page cache */
};

/* An `other` for tpfs_options_parse (ctx: a zeroed struct tpfs_mount_opts):
 * takes direct_io, setting direct_io; the options passed to the kernel
 * (allow_other, allow_root, auto_unmount, nodev, nosuid, noexec, dev, suid,
 * exec, atime, noatime, sync, async, dirsync), appending them to kernel;
 * and fstab's words, which it drops (ro, rw, defaults, auto, noauto, user,
 * users, nouser, owner, group, _netdev, nofail, relatime, norelatime,
 * strictatime, nodiratime, default_permissions, x-*, comment=*). Returns
 * whether it took opt. */
bool tpfs_options_mount(const char *opt, void *ctx);

/* The `extra` for tpfs_options_parse with tpfs_options_mount: direct_io,
 * every option it passes to the kernel and a word on those it drops. */
const char *tpfs_options_mount_words(void);

/* Help text, one option a line, for --help. */
const char *tpfs_options_help(void);

/* The spelling of a value ("f32", "raw"...). */
const char *tpfs_options_out_name(enum tpfs_out v);

#endif
