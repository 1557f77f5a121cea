/*
 * The base modules about sizes, paths and mounts: size (parsing sizes as
 * the README writes them, refusing the rest; formatting), path (joining,
 * suffixes, "within" on whole components, counting entries, mkdir -p
 * and its folders' ACLs, writing a file whole) and mountinfo (what is
 * mounted where, checked against /proc/self/mounts and, as root, a tmpfs
 * mounted here on a folder whose name has a space, a tab and a backslash).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "tpfs/mountinfo.h"
#include "tpfs/path.h"
#include "tpfs/size.h"

/* ---- size ---------------------------------------------------------------- */

static void sizes_parse_digits_fractions_and_binary_units(void)
{
	static const struct {
		const char *text;
		uint64_t bytes;
	} t[] = {
		{"0", 0},
		{"1", 1},
		{"4096", 4096},
		{"007", 7},
		{"1B", 1},
		{"1K", 1024},
		{"1k", 1024},
		{"1KB", 1024},
		{"1KiB", 1024},
		{"1kib", 1024},
		{"1M", 1 << 20},
		{"256M", 256ull << 20},
		{"256MiB", 256ull << 20},
		{"1.5G", 1610612736ull},
		{"1.50g", 1610612736ull},
		{"2T", 2ull << 40},
		{"0.5K", 512},
		{"1.25M", 1310720},
		{"0.0009765625K", 1},
		{"16777215T", 16777215ull << 40}, /* the largest whole T below 2^64 */
		{"9007199254740992", 9007199254740992ull},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t v = 12345;
		int rc = tpfs_size_parse(t[i].text, &v);
		CHECKF(rc == 0 && v == t[i].bytes, "'%s': %d, %llu", t[i].text, rc,
		       (unsigned long long)v);
	}
}

static void sizes_refuse_what_is_not_one(void)
{
	static const char *const bad[] = {
		"",     "1.",   ".5",  "-1",   "+1",   "1e3",  "1E3",  "1Q",   "16E",
		"16P",  " 1",   "1 ",  "1 K",  "0x10", "1KK",  "1iB",  "1KiBB", "1Bi",
		"inf",  "nan",  "1,5", "1.5.5", "K",   "B",    "1.K",  "16777216T",
		"99999999999999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 0;
		CHECKF(tpfs_size_parse(bad[i], &v) == -EINVAL, "'%s' accepted as %llu", bad[i],
		       (unsigned long long)v);
	}
	uint64_t v;
	CHECK(tpfs_size_parse(NULL, &v) == -EINVAL);
}

static void sizes_format_with_binary_units(void)
{
	static const struct {
		uint64_t n;
		const char *text;
	} t[] = {
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1.00 KiB"},
		{1536, "1.50 KiB"},
		{1 << 20, "1.00 MiB"},
		{1610612736ull, "1.50 GiB"},
		{5ull << 38, "1.25 TiB"},
		{1ull << 50, "1024.00 TiB"}, /* TiB is the largest unit */
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char buf[32];
		const char *r = tpfs_size_format(t[i].n, buf, sizeof(buf));
		CHECKF(r == buf && strcmp(buf, t[i].text) == 0, "%llu: '%s'",
		       (unsigned long long)t[i].n, buf);
	}
	char small[5];
	tpfs_size_format(1536, small, sizeof(small));
	CHECK(strcmp(small, "1.50") == 0); /* cut, terminated */
}

static void checked_arithmetic_sees_overflow(void)
{
	uint64_t r;
	CHECK(tpfs_size_mul(1ull << 32, 1ull << 31, &r) && r == 1ull << 63);
	CHECK(!tpfs_size_mul(1ull << 32, 1ull << 32, &r));
	CHECK(tpfs_size_add(UINT64_MAX - 1, 1, &r) && r == UINT64_MAX);
	CHECK(!tpfs_size_add(UINT64_MAX, 1, &r));
}

/* ---- path ---------------------------------------------------------------- */

static void join_puts_one_slash_between(void)
{
	static const struct {
		const char *a, *b, *want;
	} t[] = {
		{"a", "b", "a/b"},
		{"a/", "b", "a/b"},
		{"/x/y", "z.npy", "/x/y/z.npy"},
		{"/", "x", "/x"},
		{"", "b", "b"},
		{"a", "", "a"},
		{NULL, "b", "b"},
		{"a", NULL, "a"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *p = tpfs_path_join(t[i].a, t[i].b);
		CHECKF(p && strcmp(p, t[i].want) == 0, "%s + %s: %s", t[i].a ? t[i].a : "NULL",
		       t[i].b ? t[i].b : "NULL", p ? p : "NULL");
		free(p);
	}
}

static void suffixes_match_at_the_end_only(void)
{
	CHECK(tpfs_path_has_suffix("model.safetensors", ".safetensors"));
	CHECK(tpfs_path_has_suffix(".safetensors", ".safetensors"));
	CHECK(!tpfs_path_has_suffix("safetensors", ".safetensors"));
	CHECK(!tpfs_path_has_suffix("a.safetensors.tmp", ".safetensors"));
	CHECK(!tpfs_path_has_suffix("", ".npy"));
	CHECK(tpfs_path_has_suffix("x", ""));
	CHECK(tpfs_path_has_suffix("", ""));
	CHECK(!tpfs_path_has_suffix("a.NPY", ".npy"));
}

static void within_compares_whole_components(void)
{
	static const struct {
		const char *dir, *path;
		bool within;
	} t[] = {
		{"/a/b", "/a/b", true},
		{"/a/b", "/a/b/c", true},
		{"/a/b", "/a/b/c/d.npy", true},
		{"/a/b", "/a/bc", false},
		{"/a/b", "/a/b.old/c", false},
		{"/a/b", "/a", false},
		{"/a/b", "/", false},
		{"/a/b/c", "/a/b", false},
		{"/a/b", "/A/b", false},
		{"/a/b", "/x/a/b", false},
		{"/", "/", true},
		{"/", "/x", true},
		{"/", "/x/y", true},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECKF(tpfs_path_within(t[i].dir, t[i].path) == t[i].within, "%s in %s",
		       t[i].path, t[i].dir);
}

static void entries_count_all_but_dot_dotdot_and_the_ignored(void)
{
	char *d = fx_tmpdir();
	CHECK(d != NULL);
	if (!d)
		return;
	CHECK(tpfs_path_entries(d, NULL) == 0);
	CHECK(fx_write(d, "a", "x", 1) == 0 && fx_write(d, ".hidden", "x", 1) == 0 &&
	      fx_write(d, "sub/b", "x", 1) == 0 && fx_symlink(d, "link", "nowhere") == 0);
	CHECK(tpfs_path_entries(d, NULL) == 4);
	CHECK(tpfs_path_entries(d, ".hidden") == 3);
	CHECK(tpfs_path_entries(d, "absent") == 4);
	char *sub = fx_path(d, "sub"), *file = fx_path(d, "a"), *none = fx_path(d, "none");
	CHECK(tpfs_path_entries(sub, NULL) == 1);
	CHECK(tpfs_path_entries(sub, "b") == 0);
	CHECK(tpfs_path_entries(file, NULL) == -1);
	CHECK(tpfs_path_entries(none, NULL) == -1);
	int fd = open(d, O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0 && tpfs_path_entries_fd(fd, ".hidden") == 3);
	CHECK(tpfs_path_entries_fd(fd, NULL) == 4); /* read again from the start */
	if (fd >= 0)
		close(fd);
	fd = open(file, O_RDONLY);
	CHECK(fd >= 0 && tpfs_path_entries_fd(fd, NULL) == -1);
	if (fd >= 0)
		close(fd);
	free(sub);
	free(file);
	free(none);
	fx_rmtree(d);
}

static bool is_dir(const char *dir, const char *rel, mode_t *mode)
{
	char *p = fx_path(dir, rel);
	struct stat st;
	bool ok = p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	if (ok && mode)
		*mode = st.st_mode & 07777;
	free(p);
	return ok;
}

static void mkdir_makes_every_missing_folder(void)
{
	char *d = fx_tmpdir();
	CHECK(d != NULL);
	if (!d)
		return;
	mode_t old = umask(022);
	char *p = fx_path(d, "a/b/c");
	CHECK(tpfs_path_mkdir(p) == 0);
	mode_t mode = 0;
	CHECK(is_dir(d, "a", &mode) && mode == 0755);
	CHECK(is_dir(d, "a/b", NULL) && is_dir(d, "a/b/c", &mode) && mode == 0755);
	CHECK(tpfs_path_mkdir(p) == 0); /* already there */
	free(p);
	p = fx_path(d, "a/x//y/");
	CHECK(tpfs_path_mkdir(p) == 0);
	CHECK(is_dir(d, "a/x/y", NULL));
	free(p);
	/* the umask applies, as to mkdir(2) */
	umask(077);
	p = fx_path(d, "private");
	CHECK(tpfs_path_mkdir(p) == 0 && is_dir(d, "private", &mode) && mode == 0700);
	free(p);
	umask(old);
	/* a file in the way: below it and in its place */
	CHECK(fx_write(d, "file", "x", 1) == 0);
	p = fx_path(d, "file/sub");
	CHECK(tpfs_path_mkdir(p) == -ENOTDIR);
	free(p);
	p = fx_path(d, "file");
	int rc = tpfs_path_mkdir(p);
	CHECKF(rc == -EEXIST, "mkdir -p over a file gave %d, not -EEXIST", rc);
	free(p);
	fx_rmtree(d);
}

static bool has_xattr(const char *dir, const char *rel, const char *name)
{
	char *p = fx_path(dir, rel);
	bool has = p && getxattr(p, name, NULL, 0) >= 0;
	free(p);
	return has;
}

/* Whether fd is open on the folder dir/rel. */
static bool is_fd_of(int fd, const char *dir, const char *rel)
{
	char *p = fx_path(dir, rel);
	struct stat a, b;
	bool same = p && fstat(fd, &a) == 0 && stat(p, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino;
	free(p);
	return same;
}

static void mkdir_parent_makes_folders_without_acls_and_follows_what_exists(void)
{
	char *d = fx_tmpdir();
	CHECK(d != NULL);
	if (!d)
		return;
	/* what is made in d inherits an ACL letting uid 65534 in */
	static const unsigned grant[5][3] = {{1, 7, ~0u}, {2, 7, 65534}, {4, 5, ~0u},
					     {0x10, 7, ~0u}, {0x20, 5, ~0u}};
	bool acls = fx_acl(d, "system.posix_acl_default", grant, 5) == 0;
	if (!acls)
		printf("     (no POSIX ACLs here: %s)\n", strerror(errno));
	char name[NAME_MAX + 1] = "";
	char *p = fx_path(d, "a/b//c/");
	int fd = tpfs_path_mkdir_parent(p, name);
	CHECK(fd >= 0 && strcmp(name, "c") == 0 && is_fd_of(fd, d, "a/b"));
	CHECK(is_dir(d, "a/b", NULL) && !is_dir(d, "a/b/c", NULL));
	static const char *const made[] = {"a", "a/b"};
	for (int i = 0; i < 2 && acls; i++)
		CHECKF(!has_xattr(d, made[i], "system.posix_acl_access") &&
			       !has_xattr(d, made[i], "system.posix_acl_default"),
		       "%s kept an inherited ACL", made[i]);
	if (fd >= 0)
		close(fd);
	free(p);
	/* mkdir -p's last folder, too */
	p = fx_path(d, "m");
	CHECK(tpfs_path_mkdir(p) == 0 && is_dir(d, "m", NULL));
	CHECK(!acls || !has_xattr(d, "m", "system.posix_acl_access"));
	free(p);
	/* an existing folder named through a link is followed */
	CHECK(fx_symlink(d, "l", "a") == 0);
	p = fx_path(d, "l/x/y");
	fd = tpfs_path_mkdir_parent(p, name);
	CHECK(fd >= 0 && strcmp(name, "y") == 0 && is_fd_of(fd, d, "a/x"));
	if (fd >= 0)
		close(fd);
	free(p);
	fd = tpfs_path_mkdir_parent("/", name);
	CHECK(fd >= 0 && strcmp(name, ".") == 0 && is_fd_of(fd, "", ""));
	if (fd >= 0)
		close(fd);
	CHECK(tpfs_path_mkdir_parent("", name) == -ENOENT);
	fx_rmtree(d);
}

static void write_all_writes_everything_or_says_why(void)
{
	FILE *f = tmpfile();
	CHECK(f != NULL);
	if (!f)
		return;
	size_t n = 3 << 20;
	unsigned char *want = malloc(n), *got = malloc(n);
	for (size_t i = 0; i < n; i++)
		want[i] = (unsigned char)(i * 31 + 7);
	CHECK(tpfs_path_write_all(fileno(f), want, n) == 0);
	CHECK(tpfs_path_write_all(fileno(f), want, 0) == 0);
	CHECK(tpfs_path_write_all(fileno(f), "end", 3) == 0);
	rewind(f);
	CHECK(fread(got, 1, n, f) == n && memcmp(got, want, n) == 0);
	char end[4] = "";
	CHECK(fread(end, 1, 4, f) == 3 && memcmp(end, "end", 3) == 0);
	fclose(f);
	/* a file open for reading, and a closed descriptor */
	int fd = open("/dev/null", O_RDONLY);
	CHECK(fd >= 0 && tpfs_path_write_all(fd, "x", 1) == -EBADF);
	close(fd);
	CHECK(tpfs_path_write_all(fd, "x", 1) == -EBADF);
	/* a full device */
	fd = open("/dev/full", O_WRONLY);
	if (fd >= 0) {
		CHECK(tpfs_path_write_all(fd, "x", 1) == -ENOSPC);
		close(fd);
	}
	free(want);
	free(got);
}

/* ---- mountinfo ----------------------------------------------------------- */

/* The type of the last mount on point in /proc/self/mounts (another file,
 * another format: "source point type options 0 0", octal escapes), or "". */
static void mounts_type(const char *point, char *type, size_t cap)
{
	type[0] = '\0';
	FILE *f = fopen("/proc/self/mounts", "r");
	if (!f)
		return;
	char line[8192];
	while (fgets(line, sizeof(line), f)) {
		char src[4096], pt[4096], ty[256];
		if (sscanf(line, "%4095s %4095s %255s", src, pt, ty) == 3 && strcmp(pt, point) == 0)
			snprintf(type, cap, "%s", ty);
	}
	fclose(f);
}

static void the_root_is_a_mount_point_and_a_plain_folder_is_not(void)
{
	struct tpfs_mountinfo mi;
	memset(&mi, 0, sizeof(mi));
	CHECK(tpfs_mountinfo_find("/", &mi));
	char want[256];
	mounts_type("/", want, sizeof(want));
	CHECKF(mi.type[0] && strcmp(mi.type, want) == 0, "'%s', /proc/self/mounts '%s'",
	       mi.type, want);
	unsigned maj, min;
	char rest;
	CHECKF(sscanf(mi.dev, "%u:%u%c", &maj, &min, &rest) == 2, "dev '%s'", mi.dev);
	memset(&mi, 0, sizeof(mi));
	CHECK(tpfs_mountinfo_find("/proc", &mi) && strcmp(mi.type, "proc") == 0);
	char *d = fx_tmpdir();
	CHECK(d && !tpfs_mountinfo_find(d, &mi));
	CHECK(!tpfs_mountinfo_find("/no/such/folder", &mi));
	fx_rmtree(d);
}

static void a_tmpfs_on_an_odd_name_is_found_with_its_source(void)
{
	char *d = fx_tmpdir();
	char *point = d ? fx_path(d, "with space\tand\\slash") : NULL;
	CHECK(point && mkdir(point, 0755) == 0);
	if (!point || mount("tpfs test src", point, "tmpfs", 0, "size=64k") != 0) {
		printf("skip  a tmpfs cannot be mounted here (%s)\n", strerror(errno));
		free(point);
		fx_rmtree(d);
		return;
	}
	struct tpfs_mountinfo mi;
	memset(&mi, 0, sizeof(mi));
	CHECK(tpfs_mountinfo_find(point, &mi));
	CHECKF(strcmp(mi.type, "tmpfs") == 0, "'%s'", mi.type);
	CHECKF(strcmp(mi.source, "tpfs test src") == 0, "'%s'", mi.source);
	/* a folder inside it is not a mount point */
	char *inside = fx_path(point, "in");
	CHECK(inside && mkdir(inside, 0755) == 0 && !tpfs_mountinfo_find(inside, &mi));
	free(inside);
	/* a second mount on top is the one described */
	if (mount("the top one", point, "tmpfs", 0, "size=64k") == 0) {
		CHECK(tpfs_mountinfo_find(point, &mi) && strcmp(mi.source, "the top one") == 0);
		umount(point);
	}
	CHECK(umount(point) == 0);
	CHECK(!tpfs_mountinfo_find(point, &mi));
	free(point);
	fx_rmtree(d);
}

/* A mount point longer than any line buffer: its tail, which a user can
 * fill with words, is no line of its own. */
static void a_long_line_is_one_mount_and_super_options_are_read(void)
{
	char long_point[12000] = "/x/bobdir/";
	size_t n = strlen(long_point);
	for (int i = 0; i < 2295; i++, n += 4)
		memcpy(long_point + n, "\\040", 4);
	long_point[n] = '\0';
	char *text = NULL;
	CHECK(asprintf(&text,
		       "21 1 0:20 / %s 4 5 /x/victim rw,relatime shared:1 - fuse.tpfs src rw\n"
		       "22 1 0:21 / /x/victim rw,relatime shared:2 - tmpfs victimfs rw\n"
		       "23 1 0:50 / /mnt/ssh rw,nosuid - fuse.sshfs me@host:/m "
		       "rw,user_id=1000,group_id=1000\n"
		       "24 1 0:51 / /mnt/shared rw - fuse.sshfs h:/m "
		       "rw,user_id=0,group_id=0,allow_other\n",
		       long_point) > 0);
	struct tpfs_mountinfo mi;
	FILE *f = fmemopen(text, strlen(text), "r");
	CHECK(f && tpfs_mountinfo_scan(f, "/x/victim", NULL, &mi));
	CHECKF(strcmp(mi.type, "tmpfs") == 0 && strcmp(mi.dev, "0:21") == 0, "'%s' %s", mi.type,
	       mi.dev);
	rewind(f);
	char want[12000] = "/x/bobdir/";
	memset(want + 10, ' ', 2295);
	want[10 + 2295] = '\0';
	CHECK(tpfs_mountinfo_scan(f, want, NULL, &mi) && strcmp(mi.type, "fuse.tpfs") == 0);
	rewind(f);
	CHECK(tpfs_mountinfo_scan(f, NULL, "0:50", &mi));
	CHECKF(!mi.allow_other && mi.user_id == 1000, "%d %lld", mi.allow_other,
	       (long long)mi.user_id);
	rewind(f);
	CHECK(tpfs_mountinfo_scan(f, NULL, "0:51", &mi) && mi.allow_other && mi.user_id == 0);
	rewind(f);
	CHECK(tpfs_mountinfo_scan(f, NULL, "0:21", &mi) && !mi.allow_other && mi.user_id == -1);
	rewind(f);
	CHECK(!tpfs_mountinfo_scan(f, NULL, "0:99", &mi));
	if (f)
		fclose(f);
	free(text);
}

int main(void)
{
	RUN(sizes_parse_digits_fractions_and_binary_units);
	RUN(sizes_refuse_what_is_not_one);
	RUN(sizes_format_with_binary_units);
	RUN(checked_arithmetic_sees_overflow);
	RUN(join_puts_one_slash_between);
	RUN(suffixes_match_at_the_end_only);
	RUN(within_compares_whole_components);
	RUN(entries_count_all_but_dot_dotdot_and_the_ignored);
	RUN(mkdir_makes_every_missing_folder);
	RUN(mkdir_parent_makes_folders_without_acls_and_follows_what_exists);
	RUN(write_all_writes_everything_or_says_why);
	RUN(the_root_is_a_mount_point_and_a_plain_folder_is_not);
	RUN(a_tmpfs_on_an_odd_name_is_found_with_its_source);
	RUN(a_long_line_is_one_mount_and_super_options_are_read);
	return check_done();
}
