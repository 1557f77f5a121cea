/*
 * The virtual tree: every directory and file the mount shows, as a table of
 * nodes indexed from 0 (the root). It holds names, kinds, the folder
 * structure and each node's permissions; what a node's bytes are is
 * file.c's business. A node is 32 bytes and its name lives in the tree's
 * arena, so that a model of a million tensors stays small.
 *
 * Built once, single-threaded, by model.c; immutable afterwards and then
 * safe to read from any thread.
 *
 * Tensor names become paths here (tpfs_tree_add_tensor), following the rules
 * the README documents under "Names":
 *   1. The name is split on '/' when every component is non-empty, not "."
 *      or "..", free of control characters (bytes below 0x20 and 0x7f), and
 *      at most 255 bytes long (the last one with ".npy" appended), and when
 *      no component clashes with a file or with tpfs's own folder (.tpfs),
 *      and the last with nothing.
 *   2. Otherwise the whole name becomes one file in the namespace folder:
 *      '%', '/' and control bytes are written as %XX (uppercase hex) and
 *      ".npy" is appended; a result over 255 bytes keeps its first 234 bytes
 *      and appends '~' and the 16 hex digits of the name's XXH3-64 hash.
 *   3. If that file name is taken too, "~N" goes before ".npy", with the
 *      smallest N >= 1 that is free; a name that the suffix would take past
 *      255 bytes is cut as in rule 2, shorter by the suffix's length.
 */
#ifndef TPFS_TREE_H
#define TPFS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tpfs/perm.h"
#include "tpfs/arena.h"

enum tpfs_node_kind {
	TPFS_NODE_DIR,
	TPFS_NODE_TENSOR,    /* a .npy served from a tensor */
	TPFS_NODE_FILE,      /* a source file passed through */
	TPFS_NODE_MANIFEST,  /* manifest.json */
	TPFS_NODE_STATS,     /* .tpfs/stats */
	TPFS_NODE_CARD,      /* .tpfs/info/<path>.txt: a tensor's card (file.c) */
};

/* Rule 1 splits names of at most this many bytes and components. */
#define TPFS_TREE_MAX_SPLIT 1024
#define TPFS_TREE_MAX_DEPTH 64

#define TPFS_NODE_SEALED 1        /* dirs: tpfs's own, no tensor goes inside */
#define TPFS_NODE_HAS_TENSORS 2   /* dirs: a tensor below (after finish) */

struct tpfs_node {
	const char *name;        /* path component, in the arena; "" for the root */
	void *payload;           /* the tensor or source, by kind */
	uint32_t parent;         /* the root is its own parent */
	uint32_t perm;           /* owner, group and bits served: an index into
				    perms; a new node takes its parent's */
	uint32_t dir;            /* dirs: index into dirs */
	uint8_t kind;            /* enum tpfs_node_kind */
	uint8_t flags;
};

struct tpfs_dir {
	struct timespec mtime;
	uint32_t child0;         /* after finish: children[child0 .. + nchild), */
	uint32_t nchild;         /* sorted by name */
};

struct tpfs_tree {
	struct tpfs_node *nodes;
	size_t nnodes;
	struct tpfs_dir *dirs;
	size_t ndirs;
	uint32_t *children;      /* after tpfs_tree_finish */
	struct tpfs_perm *perms; /* each distinct one once; 0 lets only root in */
	size_t nperms;
	/* private */
	size_t cap, dircap;
	struct tpfs_arena names;
	uint32_t *slots;         /* open-addressing (parent, name) -> index + 1 */
	size_t nslots;
	uint32_t *perm_slots;    /* open-addressing perm -> index + 1 */
	size_t nperm_slots;
};

/* Start a tree holding just the root. Returns 0 or -ENOMEM. */
int tpfs_tree_init(struct tpfs_tree *t, struct timespec root_mtime);

/* Accepts a zeroed or half-built tree. */
void tpfs_tree_free(struct tpfs_tree *t);

/* The child of parent called name, or -ENOENT. */
long tpfs_tree_lookup(const struct tpfs_tree *t, uint32_t parent, const char *name);

/* The directory parent/name, created if absent. Returns its index, -EEXIST
 * when a non-directory has that name, or -ENOMEM. */
long tpfs_tree_dir(struct tpfs_tree *t, uint32_t parent, const char *name,
		   struct timespec mtime);

/* Mark a directory as tpfs's own: tensors never go inside it. */
void tpfs_tree_seal(struct tpfs_tree *t, uint32_t dir);

/* A new folder for one file's tensors (by_file): called name when that is a
 * safe component (rule 1's tests), otherwise fallback escaped by rule 2;
 * made unique by rule 3. */
long tpfs_tree_add_folder(struct tpfs_tree *t, uint32_t parent, const char *name,
			  const char *fallback, struct timespec mtime);

/* A new leaf. Returns its index, -EEXIST if the name is taken, or -ENOMEM. */
long tpfs_tree_leaf(struct tpfs_tree *t, uint32_t parent, const char *name,
		    enum tpfs_node_kind kind, void *payload);

/* Place a tensor's .npy under the namespace folder ns by the rules above
 * (folders it makes get mtime). Returns the new leaf's index or -ENOMEM;
 * *renamed (if not NULL) tells whether rule 3 had to add a suffix. */
long tpfs_tree_add_tensor(struct tpfs_tree *t, uint32_t ns, const char *name,
			  void *payload, struct timespec mtime, bool *renamed);

/* The permissions node is served with. */
const struct tpfs_perm *tpfs_tree_perm(const struct tpfs_tree *t, uint32_t node);

/* Serve node with p. Returns 0 or -ENOMEM. */
int tpfs_tree_set_perm(struct tpfs_tree *t, uint32_t node, const struct tpfs_perm *p);

/* Sort every directory's children by name and pack them, and mark the
 * folders with a tensor below. Returns 0 or -ENOMEM. */
int tpfs_tree_finish(struct tpfs_tree *t);

/* The directory record of a directory node. */
static inline const struct tpfs_dir *tpfs_tree_dir_of(const struct tpfs_tree *t,
						      uint32_t node)
{
	return &t->dirs[t->nodes[node].dir];
}

/* The node's path relative to the root ("" for the root), malloc'd. */
char *tpfs_tree_path(const struct tpfs_tree *t, uint32_t node);

#endif
