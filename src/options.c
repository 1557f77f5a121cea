/*
 * Parsing of the -o options: the serving options (key=value) and the words
 * the mount passes to the kernel or ignores.
 */
#include "tpfs/options.h"
#include "tpfs/error.h"
#include "tpfs/buf.h"
#include "tpfs/size.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const out_names[] = {
	[TPFS_OUT_AUTO] = "auto", [TPFS_OUT_F32] = "f32", [TPFS_OUT_F16] = "f16",
	[TPFS_OUT_BF16] = "bf16", [TPFS_OUT_RAW] = "raw", [TPFS_OUT_BOTH] = "both",
};

const char *tpfs_options_out_name(enum tpfs_out v)
{
	return out_names[v];
}

void tpfs_options_defaults(struct tpfs_options *o)
{
	memset(o, 0, sizeof(*o));
	o->cache_size = TPFS_DEFAULT_CACHE_SIZE;
	o->block_size = TPFS_DEFAULT_BLOCK_SIZE;
	o->bf16 = TPFS_OUT_F32;
	o->fp8 = TPFS_OUT_F16;
	o->mxfp4 = TPFS_OUT_F32;
	o->dtype = TPFS_OUT_AUTO;
}

static bool key_is(const char *opt, const char *key, const char **value)
{
	size_t n = strlen(key);
	if (strncmp(opt, key, n) != 0)
		return false;
	if (opt[n] == '\0') {
		*value = NULL;
		return true;
	}
	if (opt[n] == '=') {
		*value = opt + n + 1;
		return true;
	}
	return false;
}

/* Set *out from value if it is one of the valid spellings (a
 * NULL-terminated list), else explain. */
static int pick(const char *key, const char *value, const char *const *valid,
		enum tpfs_out *out, struct tpfs_error *e)
{
	for (const char *const *v = valid; value && *v; v++) {
		if (strcmp(value, *v) == 0) {
			for (int i = 0; i <= TPFS_OUT_BOTH; i++)
				if (strcmp(out_names[i], *v) == 0)
					*out = (enum tpfs_out)i;
			return 0;
		}
	}
	char list[128] = "";
	for (const char *const *v = valid; *v; v++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 v == valid ? "" : ", ", *v);
	return tpfs_error(e, -EINVAL, "option %s=%s: valid values are %s", key,
			 value ? value : "", list);
}

int tpfs_options_apply(struct tpfs_options *o, const char *opt,
		       struct tpfs_error *e)
{
	static const char *const bf16_valid[] = {"f32", "f16", "raw", NULL};
	static const char *const fp8_valid[] = {"f16", "f32", "raw", NULL};
	static const char *const mxfp4_valid[] = {"f32", "f16", "bf16", "raw", "both", NULL};
	static const char *const dtype_valid[] = {"auto", "f32", "f16", NULL};
	const char *v;
	if (key_is(opt, "cache_size", &v)) {
		if (!v || tpfs_size_parse(v, &o->cache_size) < 0)
			return tpfs_error(e, -EINVAL,
					 "option cache_size=%s: expected a size such as 512M or 2G",
					 v ? v : "");
		return 0;
	}
	if (key_is(opt, "block_size", &v)) {
		uint64_t bs;
		if (!v || tpfs_size_parse(v, &bs) < 0 || bs < TPFS_MIN_BLOCK_SIZE ||
		    bs > TPFS_MAX_BLOCK_SIZE || (bs & (bs - 1)))
			return tpfs_error(e, -EINVAL,
					 "option block_size=%s: expected a power of two from 64K "
					 "to 64M",
					 v ? v : "");
		o->block_size = bs;
		return 0;
	}
	if (key_is(opt, "by_file", &v)) {
		if (v)
			return tpfs_error(e, -EINVAL, "option by_file takes no value");
		o->by_file = true;
		return 0;
	}
	if (key_is(opt, "bf16", &v)) {
		o->bf16_set = true;
		return pick("bf16", v, bf16_valid, &o->bf16, e);
	}
	if (key_is(opt, "fp8", &v)) {
		o->fp8_set = true;
		return pick("fp8", v, fp8_valid, &o->fp8, e);
	}
	if (key_is(opt, "mxfp4", &v)) {
		o->mxfp4_set = true;
		return pick("mxfp4", v, mxfp4_valid, &o->mxfp4, e);
	}
	if (key_is(opt, "dtype", &v))
		return pick("dtype", v, dtype_valid, &o->dtype, e);
	return 1;
}

int tpfs_options_parse(struct tpfs_options *o, const char *list,
		       bool (*other)(const char *opt, void *ctx), void *ctx,
		       const char *extra, struct tpfs_error *e)
{
	char *copy = strdup(list);
	if (!copy)
		return tpfs_error(e, -ENOMEM, "out of memory");
	int rc = 0;
	for (char *save = NULL, *opt = strtok_r(copy, ",", &save); opt && rc == 0;
	     opt = strtok_r(NULL, ",", &save)) {
		rc = tpfs_options_apply(o, opt, e);
		if (rc == 1 && !other) {
			struct tpfs_mount_opts unused;
			memset(&unused, 0, sizeof(unused));
			if (tpfs_options_mount(opt, &unused))
				rc = tpfs_error(e, -EINVAL,
						"option '%s' is a mount option: only 'tpfs mount' "
						"takes it",
						opt);
		}
		if (rc == 1)
			rc = other && other(opt, ctx)
				     ? 0
				     : tpfs_error(e, -EINVAL,
						 "unknown option '%s'; valid options: "
						 "cache_size=SIZE, block_size=SIZE, by_file, "
						 "bf16=f32|f16|raw, fp8=f16|f32|raw, "
						 "mxfp4=f32|f16|bf16|raw|both, dtype=auto|f32|f16%s",
						 opt, extra ? extra : "");
	}
	free(copy);
	return rc < 0 ? rc : tpfs_options_check(o, e);
}

int tpfs_options_check(const struct tpfs_options *o, struct tpfs_error *e)
{
	if (o->dtype == TPFS_OUT_AUTO)
		return 0;
	const struct {
		const char *key;
		bool set;
		enum tpfs_out value;
	} per_type[] = {
		{"bf16", o->bf16_set, o->bf16},
		{"fp8", o->fp8_set, o->fp8},
		{"mxfp4", o->mxfp4_set, o->mxfp4},
	};
	for (size_t i = 0; i < sizeof(per_type) / sizeof(per_type[0]); i++)
		/* mxfp4=both says which files to show, not their type */
		if (per_type[i].set && per_type[i].value != o->dtype &&
		    per_type[i].value != TPFS_OUT_BOTH)
			return tpfs_error(e, -EINVAL,
					 "options dtype=%s and %s=%s conflict: dtype casts every "
					 "floating tensor to %s; drop one of them",
					 out_names[o->dtype], per_type[i].key,
					 out_names[per_type[i].value], out_names[o->dtype]);
	return 0;
}

static const char *const kernel_opts[] = {
	"allow_other", "allow_root", "auto_unmount", "nodev", "nosuid", "noexec",
	"dev", "suid", "exec", "atime", "noatime", "sync", "async", "dirsync", NULL,
};

/* fstab's and mount(8)'s own words, and atime variants a read-only mount
 * has no use for (libfuse does not take them). */
static const char *const ignored_opts[] = {
	"ro", "rw", "defaults", "auto", "noauto", "user", "users", "nouser",
	"owner", "group", "_netdev", "nofail", "relatime", "norelatime",
	"strictatime", "nodiratime", "default_permissions", NULL,
};

static char mount_words[512];

static void make_mount_words(void)
{
	size_t n = (size_t)snprintf(mount_words, sizeof(mount_words), ", direct_io");
	for (const char *const *k = kernel_opts; *k; k++)
		n += (size_t)snprintf(mount_words + n, sizeof(mount_words) - n, ", %s", *k);
	snprintf(mount_words + n, sizeof(mount_words) - n,
		 "; fstab's words (ro, defaults, _netdev, x-*, ...) are accepted and ignored "
		 "(see 'tpfs mount --help')");
}

const char *tpfs_options_mount_words(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, make_mount_words);
	return mount_words;
}

static bool in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

bool tpfs_options_mount(const char *opt, void *ctx)
{
	struct tpfs_mount_opts *m = ctx;
	if (in_list(ignored_opts, opt) || strncmp(opt, "x-", 2) == 0 ||
	    strncmp(opt, "comment=", 8) == 0)
		return true;
	if (strcmp(opt, "direct_io") == 0) {
		m->direct_io = true;
		return true;
	}
	if (!in_list(kernel_opts, opt))
		return false;
	size_t n = strlen(m->kernel);
	if (n + strlen(opt) + 2 > sizeof(m->kernel)) {
		m->overflow = true;
		return true;
	}
	snprintf(m->kernel + n, sizeof(m->kernel) - n, ",%s", opt);
	return true;
}

void tpfs_options_json(const struct tpfs_options *o, struct tpfs_buf *b)
{
	tpfs_buf_printf(b,
			"{\"cache_size\": %" PRIu64 ", \"block_size\": %" PRIu64
			", \"by_file\": %s, \"bf16\": \"%s\", \"fp8\": \"%s\", "
			"\"mxfp4\": \"%s\", \"dtype\": \"%s\"}",
			o->cache_size, o->block_size, o->by_file ? "true" : "false",
			out_names[o->bf16], out_names[o->fp8], out_names[o->mxfp4],
			out_names[o->dtype]);
}

const char *tpfs_options_help(void)
{
	return "    cache_size=SIZE   memory for converted blocks, those read ahead "
	       "included\n"
	       "                      (K/M/G suffixes; default 256M)\n"
	       "    block_size=SIZE   conversion unit, a power of two from 64K to "
	       "64M (default 1M)\n"
	       "    by_file           one folder per .safetensors file instead of "
	       "one namespace per folder\n"
	       "    bf16=f32|f16|raw  BF16 as float32 (exact, default), float16 "
	       "(rounded) or raw\n"
	       "                      bits (descr |V2: jax.numpy.load sees "
	       "bfloat16)\n"
	       "    fp8=f16|f32|raw   FP8 as float16 (exact, default), float32, or "
	       "raw bits (|u1)\n"
	       "    mxfp4=f32|f16|bf16|raw|both\n"
	       "                      GPT-OSS MXFP4 pairs dequantized to float32 "
	       "(default), float16,\n"
	       "                      bfloat16 bits (|V2), left as the raw "
	       "_blocks/_scales pair, or both\n"
	       "    dtype=auto|f32|f16\n"
	       "                      cast every floating tensor to one type after "
	       "the rules above\n"
	       "                      (f16 rounds to nearest even; overflows count "
	       "in .tpfs/stats)\n";
}
