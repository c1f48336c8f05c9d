/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The upager command's subcommands, one file each (cmd_*.c). */
#ifndef UPAGER_TOOLS_CMDS_H
#define UPAGER_TOOLS_CMDS_H

struct cli_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int cmd_features(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_trace(int argc, char **argv);

#endif
