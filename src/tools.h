/*
 * The subcommands that need no FUSE: ls and cat (tools.c) and convert
 * (export.c). Each takes the arguments after its name and returns the
 * process exit status. They open the model with the mount's options and
 * read through the mount's primitive (tpfs_file_read), so what they print
 * and write is byte for byte what a mount serves.
 */
#ifndef TPFS_TOOLS_H
#define TPFS_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpfs/file.h"
#include "tpfs/model.h"
#include "tpfs/options.h"

int tpfs_cmd_ls(int argc, char **argv);
int tpfs_cmd_cat(int argc, char **argv);
int tpfs_cmd_convert(int argc, char **argv);

/* ---- shared by the subcommands ---- */

#define TPFS_TOOL_CHUNK ((size_t)8 << 20) /* the most a tool reads at once */

struct args {
	const char *pos[3];
	int npos;
	struct tpfs_options opt;
	bool json, resume, help;
	long jobs;
	uint64_t shard_size;
};

/* Parse [-o LIST] [--json] [--jobs N] [--shard-size SIZE] [--resume] (the
 * flags cmd takes) and up to max_pos positionals. Returns 0, or 2 after
 * printing an error. */
int tpfs_tool_args(int argc, char **argv, const char *cmd, int max_pos, struct args *a);

/* Open a->pos[0] with a->opt; 1 after printing an error. */
int tpfs_tool_open(const char *cmd, const struct args *a, struct tpfs_model **m,
		   struct tpfs_view **view);
void tpfs_tool_close(struct tpfs_model *m, struct tpfs_view *view);

/* What a tool reads at once: at most one block, so that a read pins at most
 * the two blocks it straddles. */
size_t tpfs_tool_read_unit(const struct tpfs_model *m);

#endif
