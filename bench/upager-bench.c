// SPDX-License-Identifier: LGPL-2.1-or-later
/* upager-bench: `upager bench` as a program of its own, for scripts that
 * run benchmarks from bench/.  The benchmark lives in tools/cmd_bench.c. */
#include "cli.h"

int main(int argc, char **argv)
{
	return cmd_bench(argc, argv);
}
