// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager-bench (also run as `upager bench`): what a fault costs through
 * upager, measured side by side with what the kernel does without it, in
 * one run.
 *
 *   A  4 KiB fault latency seen from the faulting thread: the kernel's
 *      anonymous first touch, a bare poll/read/COPY loop (the floor of any
 *      handler-thread design), upager with 1 and 2 workers, a bare
 *      SIGBUS handler (the floor of in-thread mode), upager in-thread.
 *   B  sequential demand paging from the mem store with read-ahead, vs
 *      the kernel's anonymous first touch over the same size.
 *   C  file reads (every word of each page checked; the byte-summing
 *      reader as a row of its own), sequential and random, warm and
 *      cold page cache, through a file: region vs a plain mmap of the
 *      same file, with each row's peak RSS; the floor (fresh private
 *      memory populated, the file pread in) and a copy of the file in
 *      /dev/shm (a mapped region, UFFDIO_CONTINUE, vs mmap) beside it.
 *   D  (measured with A) where a fault's time goes: context switches,
 *      read(2)s and CPU time per fault, from the kernel's per-thread
 *      counters (/proc/self/task/TID/{schedstat,status,io}).
 *
 * Rows run interleaved, in a rotating order, for several rounds; a table
 * shows the median of the per-round values.  Every measured access checks
 * one word of its page against the pattern the store holds, so a broken
 * engine fails the run (exit 1) instead of producing numbers.  Exit 2 for
 * a bad argument.
 *
 * A program of its own over the public API: the sections are
 * bench_a.c, bench_b.c and bench_c.c, the tables and JSON
 * bench_report.c, what they share bench_util.c; here, the arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <upager/store.h>

#include "bench.h"
#include "cli.h"

/* ---- arguments ----------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: upager bench [--quick] [--json] [--dir DIR] [--size SIZE]\n"
		"                    [--only A|B|C] [--rounds N] [--umap]\n"
		"\n"
		"Measure upager's fault path side by side with the kernel's own:\n"
		"  A  4 KiB fault latency (kernel first touch, bare uffd loop,\n"
		"     handler with 1 and 2 workers, bare SIGBUS handler,\n"
		"     in-thread) and D, the context switches, reads and CPU\n"
		"     time per fault\n"
		"  B  sequential demand paging from the mem store, read-ahead on\n"
		"  C  file reads through a file: region vs mmap, warm and cold\n"
		"     (every word of each page checked; a byte-summing reader\n"
		"     as a row of its own), with each row's peak RSS, beside\n"
		"     the floor (fresh memory populated, the file pread in)\n"
		"     and a copy of the file in /dev/shm (region vs mmap)\n"
		"\n"
		"  --quick      small sizes (tests, CI): a few seconds\n"
		"  --json       print one JSON object instead of the tables\n"
		"  --dir DIR    where C writes its file (default /var/tmp)\n"
		"  --size SIZE  C's file size, a multiple of 2M (K/M/G suffix;\n"
		"               default 2G, 256M with --quick)\n"
		"  --only S     run only section A, B or C (several: A,C)\n"
		"  --rounds N   rounds of each row, 1 to %d (default 3, 1 with\n"
		"               --quick)\n"
		"  --umap       C's UMap-comparable rows only (warm; sequential\n"
		"               and 100000 random 4K reads of a 2G file unless\n"
		"               --size says otherwise); implies --only C unless\n"
		"               --only is given\n"
		"\n"
		"Every access checks its page's content; exit 1 on a mismatch or\n"
		"an error, 2 on a bad argument.\n",
		MAX_ROUNDS);
}

static int __attribute__((format(printf, 1, 2))) bad_arg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_verror(2, "bench", fmt, ap);
	va_end(ap);
	return 2;
}

/* MemAvailable from /proc/meminfo, in bytes (0 when unknown). */
static uint64_t mem_available(void)
{
	char buf[4096];
	int64_t kb;

	if (slurp("/proc/meminfo", buf, sizeof(buf)) <= 0)
		return 0;
	kb = field(buf, "MemAvailable:");
	return kb < 0 ? 0 : (uint64_t)kb << 10;
}

/* Checks that need the whole command line; 0 or 2 (after a message). */
static int check_opts(struct opts *o, bool size_set)
{
	struct statvfs vfs;
	struct stat st;
	uint64_t avail, need;

	if (stat(o->dir, &st))
		return bad_arg("--dir '%s': %s", o->dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return bad_arg("--dir '%s': not a directory", o->dir);
	if (access(o->dir, W_OK | X_OK))
		return bad_arg("--dir '%s': not writable: %s", o->dir,
			       strerror(errno));
	if (!size_set)
		o->size = o->quick && !o->umap ? 256 * MIB : 2 * GIB;
	if (!(o->only & SEC_C))
		return 0;
	if (statvfs(o->dir, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < o->size + 64 * MIB)
		return bad_arg("--size %" PRIu64 "M: only %" PRIu64
			       "M free in --dir '%s'",
			       o->size / MIB,
			       (uint64_t)vfs.f_bavail * vfs.f_frsize / MIB,
			       o->dir);
	/*
	 * The page cache, a region and a mapping of the file at once; and
	 * the copy in /dev/shm but with --umap.
	 */
	avail = mem_available();
	need = (o->umap ? 3 : 4) * o->size;
	if (avail && need > avail)
		return bad_arg("--size %" PRIu64 "M: C needs about %dx the "
			       "file size in memory, and only %" PRIu64
			       "M is available",
			       o->size / MIB, o->umap ? 3 : 4, avail / MIB);
	return 0;
}

/* Which sections --only names: "A", "b", "A,C"...; 0 when malformed. */
static unsigned int parse_only(const char *val)
{
	unsigned int only = 0;

	for (const char *c = val; *c; c++) {
		if (*c == ',' && c != val && c[1] && c[1] != ',')
			continue;
		if (*c >= 'a' && *c <= 'c')
			only |= 1u << (*c - 'a');
		else if (*c >= 'A' && *c <= 'C')
			only |= 1u << (*c - 'A');
		else
			return 0;
	}
	return only;
}

/* 0, or 2 after a message naming the bad argument; -1: --help. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ .name = "quick", .val = 'q' },
		{ .name = "json", .val = 'j' },
		{ .name = "help", .val = 'h' },
		{ .name = "dir", .has_arg = required_argument, .val = 'd' },
		{ .name = "size", .has_arg = required_argument, .val = 's' },
		{ .name = "only", .has_arg = required_argument, .val = 'o' },
		{ .name = "rounds", .has_arg = required_argument, .val = 'r' },
		{ .name = "umap", .val = 'u' },
		{ 0 },
	};
	bool size_set = false, rounds_set = false, only_set = false;
	uint64_t v;
	int c;

	*o = (struct opts){ .dir = "/var/tmp",
			    .rounds = 3,
			    .only = SEC_A | SEC_B | SEC_C };
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			return -1;
		case 'q':
			o->quick = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 'u':
			o->umap = true;
			break;
		case 'd':
			if (!*optarg)
				return bad_arg("--dir: empty path");
			o->dir = optarg;
			break;
		case 's':
			if (upager_store_parse_size(optarg, &v))
				return bad_arg("--size '%s' is not a size (a "
					       "number with an optional K, M "
					       "or G suffix)",
					       optarg);
			if (v < 4 * MIB || v % (2 * MIB))
				return bad_arg("--size '%s': want a multiple "
					       "of 2M, at least 4M",
					       optarg);
			if (v / PAGE > UINT32_MAX)
				return bad_arg("--size '%s': too large",
					       optarg);
			o->size = v;
			size_set = true;
			break;
		case 'r':
			if (upager_store_parse_size(optarg, &v) || v < 1 ||
			    v > MAX_ROUNDS)
				return bad_arg("--rounds '%s': want a number "
					       "from 1 to %d",
					       optarg, MAX_ROUNDS);
			o->rounds = (unsigned int)v;
			rounds_set = true;
			break;
		case 'o':
			o->only = parse_only(optarg);
			if (!o->only)
				return bad_arg("--only '%s': want A, B or C "
					       "(or several, as in A,C)",
					       optarg);
			only_set = true;
			break;
		case ':':
			return bad_arg("%s needs a value", argv[optind - 1]);
		default:
			return bad_arg("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_arg("unexpected argument '%s'", argv[optind]);
	/* --quick is a smoke run (CI, tests): one round unless asked. */
	if (o->quick && !rounds_set)
		o->rounds = 1;
	o->a_pages = o->quick ? 2000 : 20000;
	o->b_bytes = o->quick ? 256 * MIB : GIB;
	o->c_reads = o->quick && !o->umap ? 20000 : 100000;
	if (o->umap && !only_set)
		o->only = SEC_C;
	o->c_cold_reads = o->quick ? 2000 : o->c_reads;
	return check_opts(o, size_set);
}

int main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	struct utsname u;
	int ret;

	if (!b)
		die("out of memory");
	ret = parse_args(argc, argv, &b->o);
	if (ret) {
		if (ret < 0)
			usage(stdout);
		free(b);
		return ret < 0 ? 0 : ret;
	}
	uname(&u);
	/* Line-buffered: the tables and the progress on stderr stay in order. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!b->o.json)
		printf("upager bench: %ld CPUs, kernel %s, %s%u round(s)\n\n",
		       sysconf(_SC_NPROCESSORS_ONLN), u.release,
		       b->o.quick ? "--quick, " : "", b->o.rounds);
	if (b->o.only & SEC_A)
		section_a(b);
	if (b->o.only & SEC_B)
		section_b(b);
	if (b->o.only & SEC_C)
		section_c(b);
	if (b->o.json)
		print_json(b, &u);
	else
		print_tables(b);
	free(b);
	return 0;
}
