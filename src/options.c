/*
 * Parsing of the serving options (-o key=value).
 */
#include "tpfs/options.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

void tpfs_options_defaults(struct tpfs_options *o)
{
	memset(o, 0, sizeof(*o));
	o->cache_size = TPFS_DEFAULT_CACHE_SIZE;
	o->block_size = TPFS_DEFAULT_BLOCK_SIZE;
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

int tpfs_options_apply(struct tpfs_options *o, const char *opt,
		       struct tpfs_error *e)
{
	const char *v;
	if (key_is(opt, "cache_size", &v)) {
		if (!v || tpfs_parse_size(v, &o->cache_size) < 0)
			return tpfs_fail(e, -EINVAL,
					 "option cache_size=%s: expected a size such as 512M or 2G",
					 v ? v : "");
		return 0;
	}
	if (key_is(opt, "block_size", &v)) {
		uint64_t bs;
		if (!v || tpfs_parse_size(v, &bs) < 0 || bs < TPFS_MIN_BLOCK_SIZE ||
		    bs > TPFS_MAX_BLOCK_SIZE || (bs & (bs - 1)))
			return tpfs_fail(e, -EINVAL,
					 "option block_size=%s: expected a power of two from 64K "
					 "to 64M",
					 v ? v : "");
		o->block_size = bs;
		return 0;
	}
	if (key_is(opt, "by_file", &v)) {
		if (v)
			return tpfs_fail(e, -EINVAL, "option by_file takes no value");
		o->by_file = true;
		return 0;
	}
	return 1;
}

void tpfs_options_json(const struct tpfs_options *o, struct tpfs_buf *b)
{
	tpfs_buf_printf(b,
			"{\"cache_size\": %" PRIu64 ", \"block_size\": %" PRIu64
			", \"by_file\": %s}",
			o->cache_size, o->block_size, o->by_file ? "true" : "false");
}

const char *tpfs_options_help(void)
{
	return "    cache_size=SIZE   memory for converted blocks (K/M/G suffixes; "
	       "default 256M)\n"
	       "    block_size=SIZE   conversion unit, a power of two from 64K to "
	       "64M (default 1M)\n"
	       "    by_file           one folder per .safetensors file instead of "
	       "one namespace per folder\n";
}
