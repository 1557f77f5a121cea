/*
 * The -o options against the README's "Options (-o)" and "Conversion
 * options" tables: every option and value they list is accepted and sets
 * what it says, sizes read as documented (binary units, fractions), bad
 * values, unknown options and conflicting pairs are refused with a message
 * that says why, the mount's own words go to the kernel in order or are
 * dropped, and the JSON form reads back with cJSON field by field.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "tpfs/options.h"

static struct tpfs_options defaults(void)
{
	struct tpfs_options o;
	tpfs_options_defaults(&o);
	return o;
}

/* Field by field (memcmp would compare padding too). */
static bool same(const struct tpfs_options *a, const struct tpfs_options *b)
{
	return a->cache_size == b->cache_size && a->block_size == b->block_size &&
	       a->by_file == b->by_file && a->bf16 == b->bf16 && a->fp8 == b->fp8 &&
	       a->mxfp4 == b->mxfp4 && a->dtype == b->dtype && a->bf16_set == b->bf16_set &&
	       a->fp8_set == b->fp8_set && a->mxfp4_set == b->mxfp4_set;
}

/* Apply one option that must be accepted. */
static void ok(struct tpfs_options *o, const char *opt)
{
	struct tpfs_error e = {{0}};
	int rc = tpfs_options_apply(o, opt, &e);
	CHECKF(rc == 0, "%s: %d (%s)", opt, rc, e.msg);
}

/* Apply one option that must be refused; its message in e. */
static void refused(struct tpfs_options *o, const char *opt, struct tpfs_error *e)
{
	int rc = tpfs_options_apply(o, opt, e);
	CHECKF(rc == -EINVAL, "%s: %d, not -EINVAL", opt, rc);
}

static void defaults_are_the_documented_ones(void)
{
	/* README: cache_size 256M, block_size 1M, one namespace per folder,
	 * bf16=f32, fp8=f16, mxfp4=f32, dtype=auto, nothing given explicitly */
	struct tpfs_options o;
	memset(&o, 0xa5, sizeof(o));
	tpfs_options_defaults(&o);
	CHECK(o.cache_size == 256ull * 1024 * 1024);
	CHECK(o.block_size == 1024ull * 1024);
	CHECK(!o.by_file);
	CHECK(o.bf16 == TPFS_OUT_F32);
	CHECK(o.fp8 == TPFS_OUT_F16);
	CHECK(o.mxfp4 == TPFS_OUT_F32);
	CHECK(o.dtype == TPFS_OUT_AUTO);
	CHECK(!o.bf16_set && !o.fp8_set && !o.mxfp4_set);
	struct tpfs_error e;
	CHECK(tpfs_options_check(&o, &e) == 0);
}

/* The values of the Conversion options table, and the field each sets. */
static const struct {
	const char *key;
	const char *values[6];
} conversion_table[] = {
	{"bf16", {"f32", "f16", "raw"}},
	{"fp8", {"f16", "f32", "raw"}},
	{"mxfp4", {"f32", "f16", "bf16", "raw", "both"}},
	{"dtype", {"auto", "f32", "f16"}},
};

static enum tpfs_out out_of(const char *v)
{
	return strcmp(v, "auto") == 0   ? TPFS_OUT_AUTO
	       : strcmp(v, "f32") == 0  ? TPFS_OUT_F32
	       : strcmp(v, "f16") == 0  ? TPFS_OUT_F16
	       : strcmp(v, "bf16") == 0 ? TPFS_OUT_BF16
	       : strcmp(v, "raw") == 0  ? TPFS_OUT_RAW
				       : TPFS_OUT_BOTH;
}

static void every_conversion_value_in_the_readme_is_accepted_and_set(void)
{
	for (size_t k = 0; k < sizeof(conversion_table) / sizeof(conversion_table[0]); k++) {
		const char *key = conversion_table[k].key;
		for (const char *const *v = conversion_table[k].values; *v; v++) {
			struct tpfs_options o = defaults(), before = o;
			char opt[64];
			snprintf(opt, sizeof(opt), "%s=%s", key, *v);
			ok(&o, opt);
			enum tpfs_out want = out_of(*v);
			/* the option's own field takes the value and is marked
			 * given; every other field is as it was */
			if (strcmp(key, "bf16") == 0) {
				CHECKF(o.bf16 == want && o.bf16_set, "%s", opt);
				before.bf16 = want, before.bf16_set = true;
			} else if (strcmp(key, "fp8") == 0) {
				CHECKF(o.fp8 == want && o.fp8_set, "%s", opt);
				before.fp8 = want, before.fp8_set = true;
			} else if (strcmp(key, "mxfp4") == 0) {
				CHECKF(o.mxfp4 == want && o.mxfp4_set, "%s", opt);
				before.mxfp4 = want, before.mxfp4_set = true;
			} else {
				CHECKF(o.dtype == want, "%s", opt);
				before.dtype = want;
			}
			CHECKF(same(&o, &before), "%s changed another field",
			       opt);
			CHECKF(strcmp(tpfs_options_out_name(want), *v) == 0, "%s", *v);
		}
	}
}

static void by_file_sets_by_file_and_takes_no_value(void)
{
	struct tpfs_options o = defaults();
	ok(&o, "by_file");
	CHECK(o.by_file);
	struct tpfs_error e;
	o = defaults();
	refused(&o, "by_file=1", &e);
	CHECK_CONTAINS(e.msg, "by_file");
	refused(&o, "by_file=", &e);
}

static void sizes_take_binary_units_fractions_and_zero(void)
{
	static const struct {
		const char *text;
		uint64_t bytes;
	} t[] = {
		{"4096", 4096},
		{"0", 0}, /* README: 0 converts on every read */
		{"512M", 512ull << 20},
		{"1.5G", 1610612736ull},
		{"1.5g", 1610612736ull},
		{"0.5K", 512},
		{"2K", 2048},
		{"2KiB", 2048},
		{"2KB", 2048},
		{"3MB", 3ull << 20},
		{"3MiB", 3ull << 20},
		{"1T", 1ull << 40},
		{"1.25T", 5ull << 38},
		{"2G", 2ull << 30},
		{"10G", 10ull << 30},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct tpfs_options o = defaults();
		char opt[64];
		snprintf(opt, sizeof(opt), "cache_size=%s", t[i].text);
		ok(&o, opt);
		CHECKF(o.cache_size == t[i].bytes, "%s: %llu, not %llu", opt,
		       (unsigned long long)o.cache_size, (unsigned long long)t[i].bytes);
	}
	static const char *const bad[] = {"", "M", "-1", "1.", ".5", "1e3", "0x10",
					  "1 M", "1Q", "1MM", "2P", "16E", "abc"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tpfs_options o = defaults();
		struct tpfs_error e;
		char opt[64];
		snprintf(opt, sizeof(opt), "cache_size=%s", bad[i]);
		refused(&o, opt, &e);
		CHECK_CONTAINS(e.msg, "cache_size");
		CHECK_CONTAINS(e.msg, "expected a size");
	}
	struct tpfs_options o = defaults();
	struct tpfs_error e;
	refused(&o, "cache_size", &e);
}

static void block_size_is_a_power_of_two_from_64K_to_64M(void)
{
	/* every power of two in range, in bytes and with a unit */
	for (uint64_t bs = 64 << 10; bs <= 64 << 20; bs *= 2) {
		struct tpfs_options o = defaults();
		char opt[64];
		snprintf(opt, sizeof(opt), "block_size=%llu", (unsigned long long)bs);
		ok(&o, opt);
		CHECKF(o.block_size == bs, "%s", opt);
		o = defaults();
		if (bs < 1 << 20)
			snprintf(opt, sizeof(opt), "block_size=%lluK",
				 (unsigned long long)(bs >> 10));
		else
			snprintf(opt, sizeof(opt), "block_size=%lluM",
				 (unsigned long long)(bs >> 20));
		ok(&o, opt);
		CHECKF(o.block_size == bs, "%s", opt);
	}
	struct tpfs_options o = defaults();
	ok(&o, "block_size=0.5M");
	CHECK(o.block_size == 512 << 10);
	static const char *const bad[] = {"3M",    "32K",   "128M",  "65535", "65537",
					  "96K",   "0",     "1",     "48M",   "63.5K",
					  "",      "1G",    "64M1",  "-64K"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tpfs_error e;
		char opt[64];
		snprintf(opt, sizeof(opt), "block_size=%s", bad[i]);
		o = defaults();
		refused(&o, opt, &e);
		CHECK_CONTAINS(e.msg, opt);
		CHECK_CONTAINS(e.msg, "a power of two from 64K to 64M");
		CHECKF(o.block_size == TPFS_DEFAULT_BLOCK_SIZE, "%s changed block_size", opt);
	}
}

static void options_refuse_bad_and_conflicting_values(void)
{
	struct tpfs_options o;
	tpfs_options_defaults(&o);
	struct tpfs_error e;
	CHECK(tpfs_options_apply(&o, "bf16=f64", &e) == -EINVAL);
	CHECK_CONTAINS(e.msg, "option bf16=f64: valid values are f32, f16, raw");
	CHECK(tpfs_options_apply(&o, "fp8=bf16", &e) == -EINVAL);
	CHECK_CONTAINS(e.msg, "option fp8=bf16: valid values are f16, f32, raw");
	CHECK(tpfs_options_apply(&o, "mxfp4=fp8", &e) == -EINVAL);
	CHECK_CONTAINS(e.msg, "f32, f16, bf16, raw, both");
	CHECK(tpfs_options_apply(&o, "dtype=raw", &e) == -EINVAL);
	CHECK_CONTAINS(e.msg, "option dtype=raw: valid values are auto, f32, f16");
	CHECK(tpfs_options_apply(&o, "dtype", &e) == -EINVAL);
	CHECK(tpfs_options_apply(&o, "dtype=", &e) == -EINVAL);
	CHECK(tpfs_options_apply(&o, "bf16=F32", &e) == -EINVAL);
	CHECK(tpfs_options_apply(&o, "nosuchoption=1", &e) == 1);
	CHECK(tpfs_options_apply(&o, "bf16x=f32", &e) == 1);
	CHECK(tpfs_options_apply(&o, "cache_sizes=1G", &e) == 1);
	CHECK(tpfs_options_apply(&o, "", &e) == 1);
	o = defaults();
	ok(&o, "dtype=f16");
	ok(&o, "bf16=raw");
	CHECK(tpfs_options_check(&o, &e) == -EINVAL);
	CHECK_CONTAINS(e.msg, "dtype=f16 and bf16=raw conflict");
	o = defaults();
	ok(&o, "dtype=f32");
	ok(&o, "fp8=f16");
	CHECK(tpfs_options_check(&o, &e) == -EINVAL);
	CHECK_CONTAINS(e.msg, "dtype=f32 and fp8=f16 conflict");
}

/* README: dtype=f32 or f16 with a bf16, fp8 or mxfp4 value that contradicts
 * it is a conflict; mxfp4=both names which files are shown, not a type, so
 * it never contradicts; values left at their defaults never do. */
static void conflicts_are_exactly_the_contradicting_pairs(void)
{
	const char *dtypes[] = {"auto", "f32", "f16"};
	for (size_t d = 0; d < 3; d++) {
		for (size_t k = 0; k < 3; k++) { /* bf16, fp8, mxfp4 */
			const char *key = conversion_table[k].key;
			for (const char *const *v = conversion_table[k].values; *v; v++) {
				bool conflict = d != 0 && strcmp(*v, dtypes[d]) != 0 &&
						strcmp(*v, "both") != 0;
				/* either order in one list */
				for (int order = 0; order < 2; order++) {
					struct tpfs_options o = defaults();
					struct tpfs_error e = {{0}};
					char list[64];
					if (order)
						snprintf(list, sizeof(list), "%s=%s,dtype=%s", key,
							 *v, dtypes[d]);
					else
						snprintf(list, sizeof(list), "dtype=%s,%s=%s",
							 dtypes[d], key, *v);
					int rc = tpfs_options_parse(&o, list, NULL, NULL, NULL, &e);
					CHECKF(rc == (conflict ? -EINVAL : 0), "%s: %d (%s)", list,
					       rc, e.msg);
					char words[64];
					snprintf(words, sizeof(words), "dtype=%s and %s=%s conflict",
						 dtypes[d], key, *v);
					if (conflict)
						CHECK_CONTAINS(e.msg, words);
				}
			}
		}
		/* the defaults (fp8=f16, bf16 and mxfp4 f32) are not given */
		struct tpfs_options o = defaults();
		struct tpfs_error e;
		char list[32];
		snprintf(list, sizeof(list), "dtype=%s", dtypes[d]);
		CHECKF(tpfs_options_parse(&o, list, NULL, NULL, NULL, &e) == 0, "%s", list);
	}
	struct tpfs_options o = defaults();
	struct tpfs_error e;
	CHECK(tpfs_options_parse(&o, "dtype=f16,fp8=f16,mxfp4=f16,bf16=f16", NULL, NULL, NULL,
				 &e) == 0);
	o = defaults();
	CHECK(tpfs_options_parse(&o, "bf16=raw,fp8=raw,mxfp4=both", NULL, NULL, NULL, &e) ==
	      0);
	o = defaults();
	CHECK(tpfs_options_parse(&o, "dtype=f16,mxfp4=both", NULL, NULL, NULL, &e) == 0);
	CHECK(o.dtype == TPFS_OUT_F16 && o.mxfp4 == TPFS_OUT_BOTH);
}

static void a_list_applies_every_option_and_the_last_value_wins(void)
{
	struct tpfs_options o = defaults();
	struct tpfs_error e = {{0}};
	int rc = tpfs_options_parse(&o,
				    "cache_size=1.5G,block_size=4M,by_file,bf16=f16,fp8=raw,"
				    "mxfp4=bf16,dtype=auto,bf16=raw",
				    NULL, NULL, NULL, &e);
	CHECKF(rc == 0, "%d %s", rc, e.msg);
	CHECK(o.cache_size == 1610612736ull);
	CHECK(o.block_size == 4ull << 20);
	CHECK(o.by_file);
	CHECK(o.bf16 == TPFS_OUT_RAW && o.fp8 == TPFS_OUT_RAW && o.mxfp4 == TPFS_OUT_BF16);
	CHECK(o.dtype == TPFS_OUT_AUTO);
	o = defaults();
	CHECK(tpfs_options_parse(&o, "", NULL, NULL, NULL, &e) == 0);
	struct tpfs_options d = defaults();
	CHECK(same(&o, &d));
	/* a bad value stops the list with its own message */
	rc = tpfs_options_parse(&o, "by_file,block_size=3M,nosuch", NULL, NULL, NULL, &e);
	CHECK(rc == -EINVAL);
	CHECK_CONTAINS(e.msg, "block_size=3M");
}

static void unknown_options_are_refused_with_the_list_of_valid_ones(void)
{
	const char *unknown[] = {"nosuch", "max_read=4096", "uid=0", "bf16x=f32",
				 "cache", "allow_otherx"};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		struct tpfs_options o = defaults();
		struct tpfs_error e = {{0}};
		char list[64], quoted[80];
		snprintf(list, sizeof(list), "by_file,%s", unknown[i]);
		CHECKF(tpfs_options_parse(&o, list, NULL, NULL, " or --jobs", &e) == -EINVAL,
		       "%s", list);
		snprintf(quoted, sizeof(quoted), "unknown option '%s'", unknown[i]);
		CHECK_CONTAINS(e.msg, quoted);
		/* every option of the README's table, with its values */
		CHECK_CONTAINS(e.msg, "cache_size=SIZE");
		CHECK_CONTAINS(e.msg, "block_size=SIZE");
		CHECK_CONTAINS(e.msg, "by_file");
		CHECK_CONTAINS(e.msg, "bf16=f32|f16|raw");
		CHECK_CONTAINS(e.msg, "fp8=f16|f32|raw");
		CHECK_CONTAINS(e.msg, "mxfp4=f32|f16|bf16|raw|both");
		CHECK_CONTAINS(e.msg, "dtype=auto|f32|f16");
		/* the caller's own, last */
		size_t n = strlen(e.msg);
		CHECKF(n >= 10 && strcmp(e.msg + n - 10, " or --jobs") == 0, "%s", e.msg);
	}
}

/* Without a mount's `other` (ls, cat, convert), the mount's words are
 * refused as such, not as unknown. */
static void the_tools_refuse_mount_words_as_mount_options(void)
{
	const char *words[] = {"direct_io", "allow_other", "auto_unmount", "ro",
			       "x-systemd.automount"};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		struct tpfs_options o = defaults();
		struct tpfs_error e = {{0}};
		char list[64], want[96];
		snprintf(list, sizeof(list), "by_file,%s", words[i]);
		CHECKF(tpfs_options_parse(&o, list, NULL, NULL, NULL, &e) == -EINVAL, "%s", list);
		snprintf(want, sizeof(want),
			 "option '%s' is a mount option: only 'tpfs mount' takes it", words[i]);
		CHECKF(strcmp(e.msg, want) == 0, "%s: '%s'", words[i], e.msg);
	}
}

/* The README's kernel words, in its order. */
static const char *const kernel_words[] = {
	"allow_other", "allow_root", "auto_unmount", "nodev", "nosuid", "noexec", "dev",
	"suid",        "exec",       "atime",        "noatime", "sync", "async", "dirsync",
};

/* The README's accepted-and-ignored words, with examples of x-* and
 * comment=*. */
static const char *const fstab_words[] = {
	"ro",        "rw",          "defaults",      "auto",       "noauto",
	"user",      "users",       "nouser",        "owner",      "group",
	"_netdev",   "nofail",      "relatime",      "norelatime", "strictatime",
	"nodiratime", "default_permissions", "x-systemd.automount", "x-gvfs-show",
	"x-",        "comment=systemd.automount", "comment=",
};

static void the_mount_keeps_kernel_words_in_order_and_drops_fstab_words(void)
{
	/* each kernel word alone goes to the kernel */
	for (size_t i = 0; i < sizeof(kernel_words) / sizeof(kernel_words[0]); i++) {
		struct tpfs_mount_opts m;
		memset(&m, 0, sizeof(m));
		CHECKF(tpfs_options_mount(kernel_words[i], &m), "%s", kernel_words[i]);
		char want[64];
		snprintf(want, sizeof(want), ",%s", kernel_words[i]);
		CHECKF(strcmp(m.kernel, want) == 0, "%s: '%s'", kernel_words[i], m.kernel);
		CHECK(!m.overflow);
	}
	/* each fstab word is taken and leaves nothing for the kernel */
	for (size_t i = 0; i < sizeof(fstab_words) / sizeof(fstab_words[0]); i++) {
		struct tpfs_mount_opts m;
		memset(&m, 0, sizeof(m));
		CHECKF(tpfs_options_mount(fstab_words[i], &m), "%s", fstab_words[i]);
		CHECKF(m.kernel[0] == '\0', "%s: '%s'", fstab_words[i], m.kernel);
	}
	/* direct_io is the mount's own: set, and nothing for the kernel */
	struct tpfs_mount_opts d;
	memset(&d, 0, sizeof(d));
	CHECK(tpfs_options_mount("direct_io", &d));
	CHECK(d.direct_io && d.kernel[0] == '\0');
	/* words that only look like them are not taken */
	const char *others[] = {"x", "xsystemd", "comment", "commentary=1", "max_read=4096",
				"uid=0", "allow_other=1", "RO", "noallow_other", "cache_size=1G",
				"direct_io=1", "direct_i", "direct_io_"};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		struct tpfs_mount_opts m;
		memset(&m, 0, sizeof(m));
		CHECKF(!tpfs_options_mount(others[i], &m), "%s", others[i]);
		CHECK(m.kernel[0] == '\0' && !m.direct_io);
	}
}

static void an_fstab_line_parses_with_the_mount_words(void)
{
	struct tpfs_options o = defaults();
	struct tpfs_mount_opts m;
	memset(&m, 0, sizeof(m));
	struct tpfs_error e = {{0}};
	int rc = tpfs_options_parse(&o,
				    "ro,nofail,noexec,x-systemd.automount,allow_other,"
				    "comment=a b,cache_size=1G,defaults,nodev,_netdev,"
				    "auto_unmount,direct_io,bf16=f16",
				    tpfs_options_mount, &m, NULL, &e);
	CHECKF(rc == 0, "%d %s", rc, e.msg);
	CHECK(strcmp(m.kernel, ",noexec,allow_other,nodev,auto_unmount") == 0);
	CHECK(m.direct_io);
	CHECK(o.cache_size == 1ull << 30 && o.bf16 == TPFS_OUT_F16);
	/* an unknown word is still refused, after the mount saw it */
	memset(&m, 0, sizeof(m));
	o = defaults();
	rc = tpfs_options_parse(&o, "ro,allow_other,uid=0", tpfs_options_mount, &m,
				NULL, &e);
	CHECK(rc == -EINVAL);
	CHECK_CONTAINS(e.msg, "unknown option 'uid=0'");
}

static void too_many_kernel_words_overflow_instead_of_being_cut(void)
{
	struct tpfs_mount_opts m;
	memset(&m, 0, sizeof(m));
	size_t n = 0;
	for (int i = 0; i < 200; i++) {
		CHECK(tpfs_options_mount("allow_other", &m));
		if (!m.overflow)
			n++;
	}
	CHECK(m.overflow);
	/* what is kept is whole words */
	CHECK(strlen(m.kernel) == n * strlen(",allow_other"));
	CHECK(strlen(m.kernel) < sizeof(m.kernel));
	for (size_t i = 0; i < n; i++)
		CHECK(strncmp(m.kernel + i * 12, ",allow_other", 12) == 0);
}

/* The JSON object read back with cJSON: exactly the seven options. */
static void check_json(const struct tpfs_options *o, const char *bf16, const char *fp8,
		       const char *mxfp4, const char *dtype)
{
	struct tpfs_buf b = {0};
	tpfs_options_json(o, &b);
	size_t len;
	char *text = tpfs_buf_take(&b, &len);
	CHECK(text != NULL);
	if (!text)
		return;
	cJSON *j = cJSON_ParseWithLength(text, len);
	CHECKF(j && cJSON_IsObject(j), "not an object: %s", text);
	if (j) {
		CHECK(cJSON_GetArraySize(j) == 7);
		cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "cache_size");
		CHECK(cJSON_IsNumber(v) && v->valuedouble == (double)o->cache_size);
		v = cJSON_GetObjectItemCaseSensitive(j, "block_size");
		CHECK(cJSON_IsNumber(v) && v->valuedouble == (double)o->block_size);
		v = cJSON_GetObjectItemCaseSensitive(j, "by_file");
		CHECK(cJSON_IsBool(v) && cJSON_IsTrue(v) == o->by_file);
		const char *keys[] = {"bf16", "fp8", "mxfp4", "dtype"};
		const char *want[] = {bf16, fp8, mxfp4, dtype};
		for (int i = 0; i < 4; i++) {
			v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
			CHECKF(cJSON_IsString(v) && strcmp(v->valuestring, want[i]) == 0,
			       "%s in %s", keys[i], text);
		}
	}
	cJSON_Delete(j);
	free(text);
}

static void json_reads_back_field_by_field(void)
{
	struct tpfs_options o = defaults();
	check_json(&o, "f32", "f16", "f32", "auto");
	struct tpfs_error e;
	CHECK(tpfs_options_parse(&o, "cache_size=1.5G,block_size=64M,by_file,bf16=raw,"
				     "fp8=f32,mxfp4=both",
				 NULL, NULL, NULL, &e) == 0);
	check_json(&o, "raw", "f32", "both", "auto");
	o = defaults();
	CHECK(tpfs_options_parse(&o, "cache_size=0,dtype=f16,mxfp4=f16", NULL, NULL, NULL,
				 &e) == 0);
	check_json(&o, "f32", "f16", "f16", "f16");
	o = defaults();
	CHECK(tpfs_options_parse(&o, "cache_size=1T,mxfp4=bf16", NULL, NULL, NULL, &e) == 0);
	check_json(&o, "f32", "f16", "bf16", "auto");
}

static void help_mentions_every_option_and_value(void)
{
	const char *h = tpfs_options_help();
	CHECK_CONTAINS(h, "cache_size=SIZE");
	CHECK_CONTAINS(h, "block_size=SIZE");
	CHECK_CONTAINS(h, "by_file");
	CHECK_CONTAINS(h, "bf16=f32|f16|raw");
	CHECK_CONTAINS(h, "fp8=f16|f32|raw");
	CHECK_CONTAINS(h, "mxfp4=f32|f16|bf16|raw|both");
	CHECK_CONTAINS(h, "dtype=auto|f32|f16");
	/* the documented defaults and limits */
	CHECK_CONTAINS(h, "256M");
	CHECK_CONTAINS(h, "64K");
	CHECK_CONTAINS(h, "64M");
	/* whole lines */
	size_t n = strlen(h);
	CHECK(n > 0 && h[n - 1] == '\n');
}

int main(void)
{
	RUN(defaults_are_the_documented_ones);
	RUN(every_conversion_value_in_the_readme_is_accepted_and_set);
	RUN(by_file_sets_by_file_and_takes_no_value);
	RUN(sizes_take_binary_units_fractions_and_zero);
	RUN(block_size_is_a_power_of_two_from_64K_to_64M);
	RUN(options_refuse_bad_and_conflicting_values);
	RUN(conflicts_are_exactly_the_contradicting_pairs);
	RUN(a_list_applies_every_option_and_the_last_value_wins);
	RUN(unknown_options_are_refused_with_the_list_of_valid_ones);
	RUN(the_mount_keeps_kernel_words_in_order_and_drops_fstab_words);
	RUN(an_fstab_line_parses_with_the_mount_words);
	RUN(the_tools_refuse_mount_words_as_mount_options);
	RUN(too_many_kernel_words_overflow_instead_of_being_cut);
	RUN(json_reads_back_field_by_field);
	RUN(help_mentions_every_option_and_value);
	return check_done();
}
