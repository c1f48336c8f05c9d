// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager bench: runs the benchmark, a program of its own (bench/).  It is
 * looked for beside this binary as the build tree lays it out
 * (bench/upager-bench), then where `make install` puts it relative to the
 * installed binary (../libexec/upager/upager-bench), so a prefix moved
 * as a whole keeps working.  The arguments go through untouched: the
 * benchmark parses them and prints its own --help.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmds.h"

static const char *const where[] = {
	"bench/upager-bench",		   /* the build tree */
	"../libexec/upager/upager-bench", /* an install */
};

int cmd_bench(int argc, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX * 2];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	(void)argc;
	if (n < 0)
		return cli_error("bench", "cannot find this program: "
					  "/proc/self/exe: %s",
				 strerror(errno));
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (slash)
		slash[1] = '\0';
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", self, where[i]);
		if (access(path, X_OK) == 0) {
			argv[0] = path;
			execv(path, argv);
			return cli_error("bench", "%s: %s", path,
					 strerror(errno));
		}
	}
	return cli_error("bench", "upager-bench is not installed: not in "
				  "%s%s nor %s%s",
			 self, where[0], self, where[1]);
}
