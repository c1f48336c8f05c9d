// SPDX-License-Identifier: LGPL-2.1-or-later
/* upager: the command-line front end.  Each subcommand lives in its own
 * file (cmd_*.c) and takes its own --help. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"

static const struct cli_cmd cmds[] = {
	{ "features", "what this kernel and process can use", cmd_features },
	{ "demo", "the userfaultfd(2) man-page demo on upager", cmd_demo },
	{ "stat", "live statistics of running upager handlers", cmd_stat },
	{ "serve", "export page stores to remote: clients", cmd_serve },
	{ "migrate", "postcopy live migration of a region, verified", cmd_migrate },
	{ "bench", "fault cost side by side with the kernel's own", cmd_bench },
	{ "image", "page images: create, info, verify, cat; push into memcached",
	  cmd_image },
	{ "trace", "working-set traces upagerd records, shown or merged",
	  cmd_trace },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: upager COMMAND [ARGS]\n\n"
		   "user-space paging with userfaultfd(2)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f, "\n'upager COMMAND --help' describes each one.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "upager: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
