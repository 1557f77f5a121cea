/*
 * The subcommands that need no FUSE: ls and cat (tool.c) and convert
 * (export.c). Each takes the arguments after its name and returns the
 * process exit status. They open the model with the mount's options and
 * read through the mount's primitive (tpfs_file_read), so what they print
 * and write is byte for byte what a mount serves.
 */
#ifndef TPFS_TOOL_H
#define TPFS_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tpfs/file.h"
#include "tpfs/model.h"
#include "tpfs/options.h"

/* The flags a tool takes besides -o and --help (and -h, unless it takes
 * TPFS_TOOL_HUMAN). */
#define TPFS_TOOL_JSON 1        /* --json */
#define TPFS_TOOL_CONVERT 2     /* --jobs N, --shard-size SIZE, --resume */
#define TPFS_TOOL_HUMAN 4       /* -h, --human-readable (then only --help is help) */

#define TPFS_TOOL_CHUNK ((size_t)8 << 20) /* the most a tool reads at once */

struct tpfs_tool_args {
	const char *pos[3];
	int npos;
	struct tpfs_options opt;
	bool json, resume, help, human;
	long jobs;
	uint64_t shard_size;
};

/* A subcommand that reads a model without FUSE. */
struct tpfs_tool {
	const char *name;
	const char *args;       /* its arguments, as the usage line shows them */
	const char *about;      /* what --help says after the usage line */
	int min_pos, max_pos;   /* positional arguments */
	unsigned flags;         /* TPFS_TOOL_* */
	int (*run)(const struct tpfs_tool_args *a);
};

extern const struct tpfs_tool tpfs_tool_ls, tpfs_tool_cat; /* tool.c */
extern const struct tpfs_tool tpfs_export_convert;        /* export.c */

/* Run tool t on the arguments after its name: --help prints its usage to
 * standard output; a usage mistake prints one line and the usage line to
 * standard error, with exit status 2. Returns the exit status. */
int tpfs_tool_main(const struct tpfs_tool *t, int argc, char **argv);

/* Open a->pos[0] with a->opt; 1 after printing an error. */
int tpfs_tool_open(const char *cmd, const struct tpfs_tool_args *a, struct tpfs_model **m,
		   struct tpfs_view **view);
void tpfs_tool_close(struct tpfs_model *m, struct tpfs_view *view);

/* Print one line to f: the formatted text, its control bytes and DEL
 * written %XX as messages write them (the names in it come from the
 * source), then a newline. */
void tpfs_tool_say(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What a tool reads at once: at most one block, so that a read pins at most
 * the two blocks it straddles. */
size_t tpfs_tool_read_unit(const struct tpfs_model *m);

#endif
