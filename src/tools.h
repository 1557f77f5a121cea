/*
 * The subcommands that need no FUSE: ls, cat and convert (tools.c). Each
 * takes the arguments after its name and returns the process exit status.
 */
#ifndef TPFS_TOOLS_H
#define TPFS_TOOLS_H

int tpfs_cmd_ls(int argc, char **argv);
int tpfs_cmd_cat(int argc, char **argv);
int tpfs_cmd_convert(int argc, char **argv);

#endif
