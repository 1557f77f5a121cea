/*
 * libFuzzer target for the -o option parser, as the mount runs it
 * (tpfs_options_parse taking the kernel's and fstab's words with
 * tpfs_options_mount) and as ls, cat and convert run it (no mount words).
 * The input, up to its first NUL, is one option list. The outcome is
 * checked against a model of the README's option table written here:
 * - the list is accepted exactly when every option in it is valid and
 *   dtype= contradicts no bf16=, fp8= or mxfp4= value given; the last value
 *   of each option wins; block_size is a power of two from 64K to 64M;
 *   every value is one its option takes; tpfs_options_check agrees;
 * - the kernel options kept are the list's kernel words, in order, and
 *   "too many" is flagged exactly when they do not fit; direct_io, the
 *   mount's own word, is set exactly when the list has it;
 * - the tools accept a subset of what the mount accepts, with the same result;
 * - a refusal is one line, without control characters, naming the first bad
 *   option (or the two that conflict);
 * - the options' JSON (manifest.json's "options"), read back as an option
 *   list, gives the same options and the same JSON.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "tpfs/options.h"
#include "tpfs/error.h"
#include "tpfs/buf.h"
#include "tpfs/size.h"

static const char *const kernel_words[] = {
	"allow_other", "allow_root", "auto_unmount", "nodev", "nosuid", "noexec",
	"dev", "suid", "exec", "atime", "noatime", "sync", "async", "dirsync", NULL,
};
static const char *const ignored_words[] = {
	"ro", "rw", "defaults", "auto", "noauto", "user", "users", "nouser",
	"owner", "group", "_netdev", "nofail", "relatime", "norelatime",
	"strictatime", "nodiratime", "default_permissions", NULL,
};

/* The four typed options: their keys, the values each takes, the field. */
enum { BF16, FP8, MXFP4, DTYPE, NTYPED };
static const char *const typed_key[NTYPED] = {"bf16", "fp8", "mxfp4", "dtype"};
static const char *const typed_valid[NTYPED][6] = {
	{"f32", "f16", "raw", NULL},
	{"f16", "f32", "raw", NULL},
	{"f32", "f16", "bf16", "raw", "both", NULL},
	{"auto", "f32", "f16", NULL},
};
static const char *const typed_default[NTYPED] = {"f32", "f16", "f32", "auto"};

static enum tpfs_out typed_value(const struct tpfs_options *o, int k)
{
	return k == BF16 ? o->bf16 : k == FP8 ? o->fp8 : k == MXFP4 ? o->mxfp4 : o->dtype;
}

static bool in(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* What the README's table says the list should give. */
struct expect {
	bool ok;
	const char *bad;         /* the first invalid option, if any */
	int conflict;            /* the typed option dtype= contradicts, or -1 */
	uint64_t cache_size, block_size;
	bool by_file;
	const char *typed[NTYPED];
	bool typed_given[NTYPED];
	char kernel[8192];       /* what the mount keeps, in full */
	bool direct_io;          /* the mount's own word was given */
};

/* opt is one of the serving options' keys ("key" or "key=..."). */
static bool serving_key(const char *opt, const char **key)
{
	static const char *const keys[] = {"cache_size", "block_size", "by_file", "bf16",
					   "fp8", "mxfp4", "dtype", NULL};
	for (const char *const *k = keys; *k; k++) {
		size_t n = strlen(*k);
		if (strncmp(opt, *k, n) == 0 && (opt[n] == '\0' || opt[n] == '=')) {
			*key = *k;
			return true;
		}
	}
	return false;
}

/* Apply one option to the model; false if it is invalid. */
static bool model_apply(struct expect *x, const char *opt, bool mount)
{
	const char *key;
	if (!serving_key(opt, &key)) {
		if (!mount)
			return false;
		if (strcmp(opt, "direct_io") == 0) {
			x->direct_io = true;
			return true;
		}
		if (in(kernel_words, opt)) {
			size_t n = strlen(x->kernel);
			snprintf(x->kernel + n, sizeof(x->kernel) - n, ",%s", opt);
			return true;
		}
		return in(ignored_words, opt) || starts(opt, "x-") || starts(opt, "comment=");
	}
	const char *v = opt[strlen(key)] == '=' ? opt + strlen(key) + 1 : NULL;
	if (strcmp(key, "by_file") == 0) {
		x->by_file |= v == NULL;
		return v == NULL;
	}
	if (strcmp(key, "cache_size") == 0)
		return v && tpfs_size_parse(v, &x->cache_size) == 0;
	if (strcmp(key, "block_size") == 0) {
		uint64_t bs;
		if (!v || tpfs_size_parse(v, &bs) < 0)
			return false;
		for (int shift = 16; shift <= 26; shift++)
			if (bs == 1ULL << shift) {
				x->block_size = bs;
				return true;
			}
		return false;
	}
	for (int k = 0; k < NTYPED; k++) {
		if (strcmp(key, typed_key[k]) != 0)
			continue;
		/* a bad value still counts as given: it refuses the list anyway */
		x->typed_given[k] = true;
		if (!v || !in(typed_valid[k], v))
			return false;
		x->typed[k] = typed_valid[k][0];
		for (int i = 0; typed_valid[k][i]; i++)
			if (strcmp(typed_valid[k][i], v) == 0)
				x->typed[k] = typed_valid[k][i];
		return true;
	}
	abort(); /* every serving key is handled above */
}

/* The model's verdict on a NUL-terminated list; tokens is scratch space. */
static void model(struct expect *x, const char *list, bool mount, char *tokens)
{
	memset(x, 0, sizeof(*x));
	x->ok = true;
	x->conflict = -1;
	x->cache_size = TPFS_DEFAULT_CACHE_SIZE;
	x->block_size = TPFS_DEFAULT_BLOCK_SIZE;
	for (int k = 0; k < NTYPED; k++)
		x->typed[k] = typed_default[k];
	strcpy(tokens, list);
	for (char *save = NULL, *t = strtok_r(tokens, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		if (!model_apply(x, t, mount)) {
			x->ok = false;
			x->bad = list + (t - tokens);
			return;
		}
	}
	if (strcmp(x->typed[DTYPE], "auto") != 0)
		for (int k = BF16; k <= MXFP4 && x->conflict < 0; k++)
			if (x->typed_given[k] && strcmp(x->typed[k], x->typed[DTYPE]) != 0 &&
			    strcmp(x->typed[k], "both") != 0)
				x->conflict = k;
	x->ok = x->conflict < 0;
}

/* One line a terminal shows as it is: no control bytes. */
static bool one_line(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* Whether msg names the option: the start of its key (the part before
 * '='), control bytes written %XX as messages write them. */
static bool names(const char *msg, const char *opt)
{
	char want[3 * 32 + 1] = "";
	size_t n = 0;
	for (const char *p = opt; *p && *p != ',' && *p != '=' && p - opt < 32; p++) {
		unsigned char c = (unsigned char)*p;
		n += (size_t)snprintf(want + n, sizeof(want) - n,
				      c < 0x20 || c == 0x7f ? "%%%02X" : "%c", c);
	}
	return strstr(msg, want) != NULL;
}

static bool same(const struct tpfs_options *a, const struct tpfs_options *b)
{
	return a->cache_size == b->cache_size && a->block_size == b->block_size &&
	       a->by_file == b->by_file && a->bf16 == b->bf16 && a->fp8 == b->fp8 &&
	       a->mxfp4 == b->mxfp4 && a->dtype == b->dtype;
}

/* Checks the parser's result against the model's. */
static void check_outcome(const struct expect *x, int rc, const struct tpfs_options *o,
			  const struct tpfs_error *e, const char *list)
{
	FUZZ_CHECK((rc == 0) == x->ok, "'%s': rc %d, expected %s (%s)", list, rc,
		   x->ok ? "success" : "refusal", rc ? e->msg : "");
	if (rc != 0) {
		FUZZ_CHECK(rc == -EINVAL, "'%s': rc %d", list, rc);
		FUZZ_CHECK(e->msg[0] && one_line(e->msg) && strlen(e->msg) < TPFS_ERR_MAX,
			   "'%s': message '%s'", list, e->msg);
		if (x->bad) {
			FUZZ_CHECK(names(e->msg, x->bad), "'%s': '%s' does not name '%.40s'",
				   list, e->msg, x->bad);
		} else {
			char a[32], b[32];
			snprintf(a, sizeof(a), "dtype=%s", x->typed[DTYPE]);
			snprintf(b, sizeof(b), "%s=%s", typed_key[x->conflict],
				 x->typed[x->conflict]);
			FUZZ_CHECK(strstr(e->msg, a) && strstr(e->msg, b),
				   "'%s': '%s' does not name %s and %s", list, e->msg, a, b);
		}
		return;
	}
	struct tpfs_error e2;
	FUZZ_CHECK(tpfs_options_check(o, &e2) == 0, "'%s': %s", list, e2.msg);
	FUZZ_CHECK(o->cache_size == x->cache_size, "'%s': cache_size %llu", list,
		   (unsigned long long)o->cache_size);
	FUZZ_CHECK(o->block_size == x->block_size && o->block_size >= TPFS_MIN_BLOCK_SIZE &&
			   o->block_size <= TPFS_MAX_BLOCK_SIZE &&
			   !(o->block_size & (o->block_size - 1)),
		   "'%s': block_size %llu", list, (unsigned long long)o->block_size);
	FUZZ_CHECK(o->by_file == x->by_file, "'%s': by_file", list);
	for (int k = 0; k < NTYPED; k++) {
		enum tpfs_out v = typed_value(o, k);
		FUZZ_CHECK(v >= TPFS_OUT_AUTO && v <= TPFS_OUT_BOTH &&
				   in(typed_valid[k], tpfs_options_out_name(v)) &&
				   strcmp(tpfs_options_out_name(v), x->typed[k]) == 0,
			   "'%s': %s=%d, expected %s", list, typed_key[k], (int)v, x->typed[k]);
	}
	FUZZ_CHECK(o->bf16_set == x->typed_given[BF16] && o->fp8_set == x->typed_given[FP8] &&
			   o->mxfp4_set == x->typed_given[MXFP4],
		   "'%s': which options were given", list);
}

/* The options' JSON read back as an option list: the same options and the
 * same JSON. A bf16, fp8 or mxfp4 value that dtype contradicts can only be
 * an unset default (else the list was refused), so it is left out. */
static void check_json_round_trip(const struct tpfs_options *o)
{
	struct tpfs_buf b = {0};
	tpfs_options_json(o, &b);
	char *json = tpfs_buf_take(&b, NULL);
	FUZZ_CHECK(json, "no JSON");
	cJSON *j = cJSON_Parse(json);
	FUZZ_CHECK(cJSON_IsObject(j) && cJSON_GetArraySize(j) == 7, "JSON %s", json);
	const cJSON *cs = cJSON_GetObjectItemCaseSensitive(j, "cache_size");
	const cJSON *bs = cJSON_GetObjectItemCaseSensitive(j, "block_size");
	const cJSON *bf = cJSON_GetObjectItemCaseSensitive(j, "by_file");
	FUZZ_CHECK(cJSON_IsNumber(cs) && cJSON_IsNumber(bs) && cJSON_IsBool(bf), "JSON %s",
		   json);
	char list[512];
	int n = snprintf(list, sizeof(list), "cache_size=%.0f,block_size=%.0f%s",
			 cs->valuedouble, bs->valuedouble, cJSON_IsTrue(bf) ? ",by_file" : "");
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
	FUZZ_CHECK(cJSON_IsString(dt), "JSON %s", json);
	for (int k = 0; k < NTYPED; k++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, typed_key[k]);
		FUZZ_CHECK(cJSON_IsString(v) && in(typed_valid[k], v->valuestring), "JSON %s",
			   json);
		bool contradicts = k != DTYPE && strcmp(dt->valuestring, "auto") != 0 &&
				   strcmp(v->valuestring, dt->valuestring) != 0 &&
				   strcmp(v->valuestring, "both") != 0;
		if (contradicts) {
			FUZZ_CHECK(strcmp(v->valuestring, typed_default[k]) == 0,
				   "JSON %s: %s contradicts dtype", json, typed_key[k]);
			continue;
		}
		n += snprintf(list + n, sizeof(list) - (size_t)n, ",%s=%s", typed_key[k],
			      v->valuestring);
	}
	cJSON_Delete(j);
	struct tpfs_options back;
	struct tpfs_error e;
	tpfs_options_defaults(&back);
	FUZZ_CHECK(tpfs_options_parse(&back, list, NULL, NULL, NULL, &e) == 0,
		   "'%s' (from %s) refused: %s", list, json, e.msg);
	FUZZ_CHECK(same(&back, o), "'%s' is not %s", list, json);
	tpfs_options_json(&back, &b);
	char *again = tpfs_buf_take(&b, NULL);
	FUZZ_CHECK(again && strcmp(again, json) == 0, "%s became %s", json, again);
	free(again);
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *list = malloc(size + 1), *scratch = malloc(size + 1);
	memcpy(list, data, size);
	list[size] = '\0';
	struct expect x;

	/* As the mount parses it. */
	struct tpfs_options mo;
	struct tpfs_mount_opts kopts;
	memset(&kopts, 0, sizeof(kopts));
	struct tpfs_error me = {{0}};
	tpfs_options_defaults(&mo);
	int mrc = tpfs_options_parse(&mo, list, tpfs_options_mount, &kopts, ", and more", &me);
	model(&x, list, true, scratch);
	check_outcome(&x, mrc, &mo, &me, list);
	if (mrc == 0) {
		size_t want = strlen(x.kernel);
		FUZZ_CHECK(kopts.overflow == (want >= sizeof(kopts.kernel)),
			   "'%s': overflow %d for %zu bytes", list, kopts.overflow, want);
		FUZZ_CHECK(kopts.overflow || strcmp(kopts.kernel, x.kernel) == 0,
			   "'%s': kernel options '%s', expected '%s'", list, kopts.kernel,
			   x.kernel);
		FUZZ_CHECK(kopts.direct_io == x.direct_io, "'%s': direct_io %d, expected %d",
			   list, kopts.direct_io, x.direct_io);
		check_json_round_trip(&mo);
	}

	/* As ls, cat and convert parse it: no mount words. */
	struct tpfs_options to;
	struct tpfs_error te = {{0}};
	tpfs_options_defaults(&to);
	int trc = tpfs_options_parse(&to, list, NULL, NULL, NULL, &te);
	model(&x, list, false, scratch);
	check_outcome(&x, trc, &to, &te, list);
	FUZZ_CHECK(trc != 0 || (mrc == 0 && same(&to, &mo) && to.bf16_set == mo.bf16_set &&
				 to.fp8_set == mo.fp8_set && to.mxfp4_set == mo.mxfp4_set),
		   "'%s': the tools accept what the mount refuses", list);

	free(list);
	free(scratch);
	return 0;
}
