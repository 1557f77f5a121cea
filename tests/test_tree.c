/*
 * Tensor names to paths, checked against the rules as the README states them
 * (split on '/', flatten and %XX-escape unsafe names, hash names that are too
 * long, ~N on clashes), with the expected paths written out by hand.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "check.h"
#include "tpfs/tree.h"

static struct tpfs_tree tree;
static const struct timespec T0 = {1700000000, 0};

static void setup(void)
{
	CHECK(tpfs_tree_init(&tree, T0) == 0);
	/* What model.c puts there before any tensor. */
	CHECK(tpfs_tree_leaf(&tree, 0, "manifest.json", TPFS_NODE_MANIFEST, NULL) > 0);
	long hidden = tpfs_tree_dir(&tree, 0, ".tpfs", T0);
	CHECK(hidden > 0);
	tpfs_tree_seal(&tree, (uint32_t)hidden);
	CHECK(tpfs_tree_leaf(&tree, 0, "config.json", TPFS_NODE_FILE, NULL) > 0);
	CHECK(tpfs_tree_leaf(&tree, 0, "w.npy", TPFS_NODE_FILE, NULL) > 0);
}

/* Adds the tensor and checks where it landed. */
static void lands(const char *name, const char *want)
{
	long i = tpfs_tree_add_tensor(&tree, 0, name, NULL, T0, NULL);
	CHECKF(i > 0, "'%s' not added (%ld)", name, i);
	if (i <= 0)
		return;
	char *p = tpfs_tree_path(&tree, (uint32_t)i);
	CHECKF(p && strcmp(p, want) == 0, "'%s' -> '%s', expected '%s'", name,
	       p ? p : "(null)", want);
	CHECK(tree.nodes[i].kind == TPFS_NODE_TENSOR);
	free(p);
}

static void slashes_make_folders(void)
{
	setup();
	lands("model.embed_tokens.weight", "model.embed_tokens.weight.npy");
	lands("encoder/layer_0/kernel", "encoder/layer_0/kernel.npy");
	lands("encoder/layer_0/bias", "encoder/layer_0/bias.npy");
	lands("encoder/norm", "encoder/norm.npy");
	long enc = tpfs_tree_lookup(&tree, 0, "encoder");
	CHECK(enc > 0 && tree.nodes[enc].kind == TPFS_NODE_DIR);
	tpfs_tree_free(&tree);
}

static void unicode_spaces_and_percent_are_kept(void)
{
	setup();
	lands("\xc3\xa9mbed/\xe6\x9d\x83\xe9\x87\x8d weight",
	      "\xc3\xa9mbed/\xe6\x9d\x83\xe9\x87\x8d weight.npy");
	lands("with space", "with space.npy");
	lands("100%/x", "100%/x.npy");
	lands("-dash", "-dash.npy");
	tpfs_tree_free(&tree);
}

static void unsafe_names_are_flattened_and_escaped(void)
{
	setup();
	lands("a//b", "a%2F%2Fb.npy");
	lands("../etc/passwd", "..%2Fetc%2Fpasswd.npy");
	lands("./x", ".%2Fx.npy");
	lands("x/.", "x%2F..npy");
	lands("x/", "x%2F.npy");
	lands("/abs", "%2Fabs.npy");
	lands(".", "..npy");
	lands("..", "...npy");
	lands("", ".npy");
	lands("tab\there", "tab%09here.npy");
	lands("new\nline/x", "new%0Aline%2Fx.npy");
	lands("del\x7f", "del%7F.npy");
	/* Once flattened, '%' is escaped too, so the escape can be undone. */
	lands("50%/../y", "50%25%2F..%2Fy.npy");
	/* No path escapes the mount: nothing created above the root. */
	CHECK(tpfs_tree_lookup(&tree, 0, "..") == -ENOENT);
	CHECK(tpfs_tree_lookup(&tree, 0, "etc") == -ENOENT);
	tpfs_tree_free(&tree);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void long_names_are_cut_and_hashed(void)
{
	setup();
	char *ok = repeat('a', 251); /* 251 + ".npy" = 255: fits */
	char want[600];
	snprintf(want, sizeof(want), "%s.npy", ok);
	lands(ok, want);
	char *over = repeat('b', 252);
	snprintf(want, sizeof(want), "%.234s~%016llx.npy", over,
		 (unsigned long long)XXH3_64bits(over, strlen(over)));
	lands(over, want);
	CHECK(strlen(want) == 255);
	/* A long folder component flattens the whole name. */
	char *dir = repeat('c', 256);
	char name[600];
	snprintf(name, sizeof(name), "%s/w", dir);
	snprintf(want, sizeof(want), "%.234s~%016llx.npy", name,
		 (unsigned long long)XXH3_64bits(name, strlen(name)));
	lands(name, want);
	free(ok);
	free(over);
	free(dir);
	tpfs_tree_free(&tree);
}

static void cut_never_splits_an_escape_or_a_character(void)
{
	setup();
	for (int lead = 0; lead < 3; lead++) {
		/* "x..x", many '%' (3 bytes each once escaped), and a trailing
		 * '/' that makes the name unsafe, hence flattened. */
		char name[200];
		memset(name, 'x', (size_t)lead);
		memset(name + lead, '%', 120);
		strcpy(name + lead + 120, "/");
		long i = tpfs_tree_add_tensor(&tree, 0, name, NULL, T0, NULL);
		CHECK(i > 0);
		if (i <= 0)
			continue;
		const char *f = tree.nodes[i].name;
		const char *tilde = strrchr(f, '~');
		CHECK(tilde && strlen(f) <= 255);
		for (const char *p = f; tilde && p < tilde; p++)
			if (*p == '%')
				CHECK(tilde - p >= 3 && p[1] == '2' && p[2] == '5');
	}
	/* Two-byte characters: the cut lands between them. */
	char name[600] = "";
	for (int k = 0; k < 150; k++)
		strcat(name, "\xc3\xa9");
	strcat(name, "/");
	long i = tpfs_tree_add_tensor(&tree, 0, name, NULL, T0, NULL);
	CHECK(i > 0);
	const char *f = i > 0 ? tree.nodes[i].name : "~";
	size_t prefix = (size_t)(strrchr(f, '~') - f);
	CHECK(prefix % 2 == 0 && prefix <= 234);
	tpfs_tree_free(&tree);
}

static void clashes_get_a_numbered_suffix(void)
{
	setup();
	/* w.npy is a passed-through file: the tensor w must not replace it. */
	lands("w", "w~1.npy");
	lands("manifest.json", "manifest.json.npy");
	/* A tensor folder cannot go where a file is... */
	lands("layer", "layer.npy");
	lands("layer.npy/x", "layer.npy%2Fx.npy");
	/* ...nor a file where a folder is. */
	lands("q.npy/a", "q.npy/a.npy");
	lands("q", "q~1.npy");
	/* The hidden folder is tpfs's own. */
	lands(".tpfs/stats", ".tpfs%2Fstats.npy");
	/* A flat name already taken by a real name. */
	lands("a%2Fb", "a%2Fb.npy");
	lands("a/../b", "a%2F..%2Fb.npy");
	lands("a/./b", "a%2F.%2Fb.npy");
	lands("a//b", "a%2F%2Fb.npy");
	lands("a%2F%2Fb", "a%252F%252Fb.npy");
	lands("a%2F/", "a%252F%2F.npy");
	tpfs_tree_free(&tree);
}

/* A clash inside a folder that the name entered keeps the tensor in that
 * folder: where a name lands never depends on what is in a folder it did
 * not enter, which readers of its parent may be unable to list. */
static void a_clash_stays_in_the_folder_it_happens_in(void)
{
	setup();
	long priv = tpfs_tree_dir(&tree, 0, "priv", T0);
	CHECK(priv > 0);
	CHECK(tpfs_tree_leaf(&tree, (uint32_t)priv, "x.npy", TPFS_NODE_FILE, NULL) > 0);
	CHECK(tpfs_tree_leaf(&tree, (uint32_t)priv, "f.json", TPFS_NODE_FILE, NULL) > 0);
	lands("priv/x", "priv/x~1.npy");
	lands("priv/y", "priv/y.npy");
	lands("priv/f.json/z", "priv/f.json%2Fz.npy");
	lands("priv/x.npy/deep/z", "priv/x.npy%2Fdeep%2Fz.npy");
	/* made folders too */
	lands("made/a/b", "made/a/b.npy");
	lands("made/a/b", "made/a/b~1.npy");
	lands("made/a/b.npy/c", "made/a/b.npy%2Fc.npy");
	/* an unsafe component anywhere: the whole name, flat, where it started */
	lands("priv/../x", "priv%2F..%2Fx.npy");
	tpfs_tree_free(&tree);
}

/* Rule 2 for an ASCII name over 255 bytes with '/' its only byte to
 * escape: the first 234 bytes of the escaped name, less a %XX cut in two,
 * then '~', the name's XXH3-64 in hex and .npy. */
static void flat_long(const char *name, char *want, size_t size)
{
	char *flat = malloc(3 * strlen(name) + 1);
	size_t f = 0;
	for (const char *p = name; *p; p++)
		f += (size_t)sprintf(flat + f, *p == '/' ? "%%2F" : "%c", *p);
	int cut = 234;
	if (flat[cut - 1] == '%')
		cut -= 1;
	else if (flat[cut - 2] == '%')
		cut -= 2;
	snprintf(want, size, "%.*s~%016llx.npy", cut, flat,
		 (unsigned long long)XXH3_64bits(name, strlen(name)));
	free(flat);
}

/* Rule 1 splits at most 64 components and 1024 bytes: deeper or longer
 * names are one file (rule 2), so no path is too long to open. */
static void very_deep_or_long_names_stay_flat(void)
{
	setup();
	char name[2048], want[4096];
	size_t n = 0;
	for (int i = 0; i < 64; i++)
		n += (size_t)snprintf(name + n, sizeof(name) - n, i ? "/d" : "d");
	snprintf(want, sizeof(want), "%s.npy", name);
	lands(name, want); /* 64 components: split */
	snprintf(name + n, sizeof(name) - n, "/e");
	flat_long(name, want, sizeof(want));
	lands(name, want); /* 65: one file */
	memset(name, 'x', 1025);
	name[1025] = '\0';
	for (int i = 1; i < 5; i++)
		name[i * 200] = '/';
	flat_long(name, want, sizeof(want));
	lands(name, want); /* 1025 bytes: one file */
	name[1024] = '\0';
	snprintf(want, sizeof(want), "%s.npy", name);
	lands(name, want); /* 1024 bytes: split */
	tpfs_tree_free(&tree);
}

static void file_folders_are_safe_names(void)
{
	setup();
	const struct {
		const char *stem, *file, *want;
	} cases[] = {
		{"model", "model.safetensors", "model"},
		{"model", "model.safetensors", "model~1"},
		{"config.json", "config.json.safetensors", "config.json~1"},
		/* stems that are no safe folder name: the file's whole name */
		{"", ".safetensors", ".safetensors"},
		{".", "..safetensors", "..safetensors"},
		{"..", "...safetensors", "...safetensors"},
		{"a\tb", "a\tb.safetensors", "a%09b.safetensors"},
		/* a safe stem is kept as it is, '%' too */
		{"50%", "50%.safetensors", "50%"},
		{"a%2Fb", "a%2Fb.safetensors", "a%2Fb"},
		{"a%2Fb", "a%2Fb.safetensors", "a%2Fb~1"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long n = tpfs_tree_add_folder(&tree, 0, cases[i].stem, cases[i].file, T0);
		CHECKF(n > 0 && strcmp(tree.nodes[n].name, cases[i].want) == 0,
		       "'%s' -> '%s'", cases[i].file, n > 0 ? tree.nodes[n].name : "?");
		CHECK(n > 0 && tree.nodes[n].kind == TPFS_NODE_DIR);
	}
	CHECK(tpfs_tree_leaf(&tree, 0, "model", TPFS_NODE_FILE, NULL) == -EEXIST);
	tpfs_tree_free(&tree);
}

static void suffixes_never_pass_255_bytes(void)
{
	setup();
	/* A 251-byte name fits as name.npy; a real file takes that name first. */
	char *name = repeat('n', 251);
	char file[300];
	snprintf(file, sizeof(file), "%s.npy", name);
	CHECK(tpfs_tree_leaf(&tree, 0, file, TPFS_NODE_FILE, NULL) > 0);
	bool renamed = false;
	long i = tpfs_tree_add_tensor(&tree, 0, name, NULL, T0, &renamed);
	CHECK(i > 0 && renamed);
	if (i > 0) {
		const char *got = tree.nodes[i].name;
		char want[300];
		snprintf(want, sizeof(want), "%.232s~%016llx~1.npy", name,
			 (unsigned long long)XXH3_64bits(name, strlen(name)));
		CHECKF(strcmp(got, want) == 0, "got %s", got);
		CHECK(strlen(got) == 255);
	}
	/* Many clashes on one long folder name. */
	char *dir = repeat('d', 255);
	for (int k = 0; k < 12; k++) {
		long n = tpfs_tree_add_folder(&tree, 0, dir, dir, T0);
		CHECK(n > 0 && strlen(tree.nodes[n].name) <= 255);
	}
	free(name);
	free(dir);
	tpfs_tree_free(&tree);
}

static void finished_tree_lists_children_sorted(void)
{
	setup();
	const char *names[] = {"zeta", "alpha", "mid/x", "mid/a", "Beta"};
	for (int i = 0; i < 5; i++)
		tpfs_tree_add_tensor(&tree, 0, names[i], NULL, T0, NULL);
	CHECK(tpfs_tree_finish(&tree) == 0);
	const struct tpfs_dir *root = tpfs_tree_dir_of(&tree, 0);
	const char *want[] = {".tpfs", "Beta.npy", "alpha.npy", "config.json",
			      "manifest.json", "mid", "w.npy", "zeta.npy"};
	CHECK(root->nchild == 8);
	for (uint32_t i = 0; i < root->nchild && i < 8; i++)
		CHECKF(strcmp(tree.nodes[tree.children[root->child0 + i]].name, want[i]) == 0,
		       "child %u is %s", i, tree.nodes[tree.children[root->child0 + i]].name);
	/* .tpfs and mid are folders; only mid has a tensor below it */
	CHECK(tree.nodes[0].flags & TPFS_NODE_HAS_TENSORS);
	CHECK(!(tree.nodes[tpfs_tree_lookup(&tree, 0, ".tpfs")].flags & TPFS_NODE_HAS_TENSORS));
	long mid = tpfs_tree_lookup(&tree, 0, "mid");
	CHECK(mid > 0 && tpfs_tree_dir_of(&tree, (uint32_t)mid)->nchild == 2);
	CHECK(mid > 0 && strcmp(tree.nodes[tree.children[tpfs_tree_dir_of(&tree, (uint32_t)mid)
								     ->child0]].name,
				"a.npy") == 0);
	char *p = tpfs_tree_path(&tree, 0);
	CHECK(p && strcmp(p, "") == 0);
	free(p);
	tpfs_tree_free(&tree);
}

static void many_entries_in_one_folder_stay_fast_to_look_up(void)
{
	setup();
	char name[64];
	for (int i = 0; i < 100000; i++) {
		snprintf(name, sizeof(name), "layers.%d.weight", i);
		CHECK(tpfs_tree_add_tensor(&tree, 0, name, NULL, T0, NULL) > 0);
	}
	CHECK(tpfs_tree_finish(&tree) == 0);
	for (int i = 0; i < 100000; i += 997) {
		snprintf(name, sizeof(name), "layers.%d.weight.npy", i);
		CHECK(tpfs_tree_lookup(&tree, 0, name) > 0);
	}
	tpfs_tree_free(&tree);
}

int main(void)
{
	RUN(slashes_make_folders);
	RUN(unicode_spaces_and_percent_are_kept);
	RUN(unsafe_names_are_flattened_and_escaped);
	RUN(long_names_are_cut_and_hashed);
	RUN(cut_never_splits_an_escape_or_a_character);
	RUN(clashes_get_a_numbered_suffix);
	RUN(a_clash_stays_in_the_folder_it_happens_in);
	RUN(very_deep_or_long_names_stay_flat);
	RUN(file_folders_are_safe_names);
	RUN(suffixes_never_pass_255_bytes);
	RUN(finished_tree_lists_children_sorted);
	RUN(many_entries_in_one_folder_stay_fast_to_look_up);
	return check_done();
}
