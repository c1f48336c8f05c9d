// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * image-restore: restore through the image: store against the raw file
 * it was made from, on the memory of real programs (issue 11).
 *
 * The memory image is made first (or taken from --raw FILE): python3
 * building a heap of dicts, lists and strings, and cc1 compiling a
 * generated C file, are each stopped once grown, and every readable
 * private mapping of theirs is read through /proc/PID/mem, a page at a
 * time (pages the kernel cannot read are left out).  Their pages, one
 * program after the other, are the raw file.  It is then written as an
 * image with zstd and LZ4 at two chunk sizes, and a region over each
 * (and over file:RAW) is read in full, every byte of every page summed
 * and the sum checked against the raw file's: sequentially and in a
 * random page order, with the page cache warm and cold (dropped with
 * posix_fadvise() after fdatasync()).  Reported per case: the ratio,
 * the time to write the image, and each restore's time and its rate in
 * bytes of memory restored per second.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <upager/image.h>
#include <upager/upager.h>

#include "cli.h"

#define PAGE 4096u

struct opts {
	const char *dir, *raw;
	uint64_t max; /* bytes of memory image at most */
	unsigned int rounds;
	uint64_t throttle; /* bytes/s of reads from the disk of --dir, or 0 */
	bool json, quick;
};

static void die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_verror(1, "image-restore", fmt, ap);
	va_end(ap);
	exit(1);
}

/* ---- the memory image ---------------------------------------------------- */

/* Append the readable private pages of @pid to @fd; bytes written. */
static uint64_t dump_pid(pid_t pid, int fd, uint64_t room)
{
	char path[64], line[512], page[PAGE];
	uint64_t done = 0;
	FILE *maps;
	int mem;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	mem = open(path, O_RDONLY);
	if (!maps || mem < 0)
		die("%s: %s", path, strerror(errno));
	while (done < room && fgets(line, sizeof(line), maps)) {
		unsigned long lo, hi;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
		    perms[0] != 'r' || perms[3] != 'p' ||
		    strstr(line, "[vvar") || strstr(line, "[vsyscall"))
			continue;
		for (unsigned long a = lo; a < hi && done < room; a += PAGE) {
			if (pread(mem, page, PAGE, (off_t)a) != PAGE)
				continue;
			if (write(fd, page, PAGE) != PAGE)
				die("writing the raw image: %s",
				    strerror(errno));
			done += PAGE;
		}
	}
	fclose(maps);
	close(mem);
	return done;
}

/* Start "sh -c @cmd", wait @secs, stop the process named @comm under it. */
static pid_t start_stopped(const char *cmd, const char *comm, unsigned int secs,
			   pid_t *shell)
{
	char path[64], name[64];
	pid_t sh = fork();

	if (sh < 0)
		die("fork: %s", strerror(errno));
	if (!sh) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	*shell = sh;
	sleep(secs);
	/* The program is the shell itself (exec) or one of its children. */
	for (pid_t p = sh; p < sh + 4096; p++) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/comm", (int)p);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f) &&
		    !strncmp(name, comm, strlen(comm))) {
			fclose(f);
			kill(p, SIGSTOP);
			return p;
		}
		fclose(f);
	}
	return -1;
}

static uint64_t dump_program(const char *cmd, const char *comm, int fd,
			     uint64_t room, bool json)
{
	pid_t shell, pid = start_stopped(cmd, comm, 2, &shell);
	uint64_t n = 0;

	if (pid > 0) {
		n = dump_pid(pid, fd, room);
		kill(pid, SIGKILL);
	}
	kill(shell, SIGKILL);
	waitpid(shell, NULL, 0);
	if (!json)
		fprintf(stderr, "image-restore: %s: %" PRIu64 " MiB%s\n", comm,
			n >> 20, pid > 0 ? "" : " (not found running)");
	return n;
}

/* A C file that keeps cc1 busy for a few seconds. */
static void write_c_source(const char *path, unsigned int nfuncs)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die("%s: %s", path, strerror(errno));
	for (unsigned int i = 0; i < nfuncs; i++)
		fprintf(f,
			"static int t%u[64];\nint f%u(int x) { int s = 0; "
			"for (int i = 0; i < 64; i++) { t%u[i] = x * i + %u; "
			"s += t%u[(i * 7) %% 64] ^ (s >> 3); } return s; }\n",
			i, i, i, i, i);
	fclose(f);
}

static void make_raw(const struct opts *o, const char *raw)
{
	char src[512], cmd[1200];
	int fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	uint64_t n;

	if (fd < 0)
		die("%s: %s", raw, strerror(errno));
	n = dump_program("exec python3 -c \"import json, re, collections, "
			 "random, decimal; d = {str(i): [i, str(i) * 3, "
			 "{'k': i / 7}] for i in range(400000)}; "
			 "s = json.dumps(d)[:20000000]; "
			 "import time; time.sleep(60)\"",
			 "python3", fd, o->max / 2, o->json);
	snprintf(src, sizeof(src), "%s/upager-image-restore.c", o->dir);
	write_c_source(src, o->quick ? 3000 : 20000);
	snprintf(cmd, sizeof(cmd), "exec gcc -O2 -S -o /dev/null %s", src);
	n += dump_program(cmd, "cc1", fd, o->max - n, o->json);
	unlink(src);
	if (fsync(fd) || close(fd))
		die("%s: %s", raw, strerror(errno));
	if (n < 16 * PAGE)
		die("only %" PRIu64 " bytes of program memory read", n);
}

/* ---- a throttled disk ------------------------------------------------- */

static char cgroup[128];

static void write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, s, strlen(s)) < 0)
		die("%s: %s", path, strerror(errno));
	close(fd);
}

/*
 * Move this process (its region workers too) into a cgroup v1 blkio
 * group that reads the disk of @dir at @bps at most: a network volume's
 * rate on a disk the host caches.  Page-cache hits are not throttled, so
 * only the cold rows change.
 */
static void throttle(const char *dir, uint64_t bps)
{
	char path[256], val[64];
	struct stat st;

	if (stat(dir, &st))
		die("--dir %s: %s", dir, strerror(errno));
	snprintf(cgroup, sizeof(cgroup), "/sys/fs/cgroup/blkio/upager-image-%d",
		 (int)getpid());
	if (mkdir(cgroup, 0755))
		die("--throttle needs cgroup v1 blkio: %s: %s", cgroup,
		    strerror(errno));
	snprintf(path, sizeof(path), "%s/blkio.throttle.read_bps_device",
		 cgroup);
	snprintf(val, sizeof(val), "%u:%u %" PRIu64, major(st.st_dev),
		 minor(st.st_dev), bps);
	write_str(path, val);
	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	snprintf(val, sizeof(val), "%d", (int)getpid());
	write_str(path, val);
}

static void unthrottle(void)
{
	char val[32];

	if (!*cgroup)
		return;
	snprintf(val, sizeof(val), "%d", (int)getpid());
	write_str("/sys/fs/cgroup/blkio/cgroup.procs", val);
	rmdir(cgroup);
}

/* ---- restores ------------------------------------------------------------ */

static uint64_t sum_file(const char *path, uint64_t *len)
{
	uint64_t s = 0, v;
	int fd = open(path, O_RDONLY);
	char buf[1 << 16];
	ssize_t n;

	*len = 0;
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i + 8 <= n; i += 8) {
			memcpy(&v, buf + i, 8);
			s += v;
		}
		*len += (uint64_t)n;
	}
	close(fd);
	return s;
}

/* Read @path once, so that its pages are in the cache. */
static void warm_cache(const char *path)
{
	uint64_t len;

	sum_file(path, &len);
}

static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fdatasync(fd) ||
	    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED))
		die("dropping the cache of %s: %s", path, strerror(errno));
	close(fd);
}

/*
 * Map @spec over @len bytes and read every page (@random: in a shuffled
 * order); the seconds it took.  The sum of every word must be @want.
 */
static double restore(const char *spec, uint64_t len, bool random,
		      uint64_t want)
{
	size_t npages = len / PAGE, *order = NULL;
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	uint64_t sum = 0, v;
	double t0, t;
	char *p;
	int err;

	s = upager_store_open(spec, &err);
	if (!s)
		die("%s: %s", spec, strerror(-err));
	h = upager_handler_new(NULL, &err);
	if (!h)
		die("handler: %s", strerror(-err));
	if (random) {
		order = malloc(npages * sizeof(*order));
		if (!order)
			die("out of memory");
		for (size_t i = 0; i < npages; i++)
			order[i] = i;
		srand(1);
		for (size_t i = npages - 1; i > 0; i--) {
			size_t j = (size_t)rand() % (i + 1), x = order[i];

			order[i] = order[j];
			order[j] = x;
		}
	}
	p = upager_map(h, s, len, NULL, &r, &err);
	if (!p || (err = upager_handler_start(h)))
		die("map %s: %s", spec, strerror(-err));
	t0 = cli_now();
	for (size_t i = 0; i < npages; i++) {
		const char *pg = p + (order ? order[i] : i) * PAGE;

		for (size_t k = 0; k < PAGE; k += 8) {
			memcpy(&v, pg + k, 8);
			sum += v;
		}
	}
	t = cli_now() - t0;
	upager_unmap(r);
	upager_handler_free(h);
	upager_store_close(s);
	free(order);
	if (sum != want)
		die("%s: the pages read back wrong", spec);
	return t;
}

struct result {
	const char *name;
	double ratio, write_s;
	double t[2][2]; /* [random][cold], seconds: the median round */
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void measure(const struct opts *o, const char *path, uint64_t len,
		    uint64_t want, struct result *res)
{
	char spec[700];

	snprintf(spec, sizeof(spec), "%s:%s",
		 strcmp(res->name, "raw") ? "image" : "file", path);
	for (int rnd = 0; rnd < 2; rnd++)
		for (int cold = 0; cold < 2; cold++) {
			double t[16];

			if (!cold)
				warm_cache(path);
			for (unsigned int k = 0; k < o->rounds; k++) {
				if (cold)
					drop_cache(path);
				t[k] = restore(spec, len, rnd, want);
			}
			qsort(t, o->rounds, sizeof(t[0]), cmp_double);
			res->t[rnd][cold] = t[o->rounds / 2];
		}
}

static int usage(void)
{
	printf("usage: image-restore [--raw FILE] [--dir DIR] [--max SIZE] "
	       "[--rounds N] [--throttle RATE]\n"
	       "                     [--quick] [--json]\n\n"
	       "Restore through image: (zstd, lz4; 64K and 256K chunks) "
	       "against file: of the\nsame memory, every byte read, "
	       "sequential and random, warm and cold cache.\n\n"
	       "  --raw FILE   the memory image to use (default: made from "
	       "python3 and cc1\n"
	       "               through /proc/PID/mem, kept in DIR)\n"
	       "  --dir DIR    where files go (default /var/tmp)\n"
	       "  --max SIZE   memory to read from the programs at most "
	       "(default 1G)\n"
	       "  --rounds N   runs per case, the median shown (default 3; "
	       "--quick 1)\n"
	       "  --quick      a smoke run: fewer functions for cc1, 1 round\n"
	       "  --throttle RATE  read the disk of DIR at RATE bytes/s at "
	       "most (K/M/G;\n"
	       "               cgroup v1 blkio): a network volume's rate\n"
	       "  --json       one JSON object\n");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"raw", required_argument, NULL, 'r'},
	    {"dir", required_argument, NULL, 'd'},
	    {"max", required_argument, NULL, 'm'},
	    {"rounds", required_argument, NULL, 'n'},
	    {"quick", no_argument, NULL, 'q'},
	    {"json", no_argument, NULL, 'j'},
	    {"throttle", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {0}};
	static const struct {
		const char *name;
		enum upager_image_codec codec;
		uint32_t chunk;
	} kinds[] = {
	    {"raw", 0, 0},
	    {"zstd-64k", UPAGER_IMAGE_ZSTD, 64 << 10},
	    {"zstd-256k", UPAGER_IMAGE_ZSTD, 256 << 10},
	    {"lz4-64k", UPAGER_IMAGE_LZ4, 64 << 10},
	    {"lz4-256k", UPAGER_IMAGE_LZ4, 256 << 10},
	};
	struct opts o = {.dir = "/var/tmp", .max = 1ull << 30, .rounds = 3};
	struct result res[5] = {0};
	char raw[512], img[600];
	uint64_t len, want, v;
	int c;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			o.raw = optarg;
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 'm':
			if (!cli_parse_u64("image-restore", "--max", optarg,
					   1 << 20, 1ull << 40, true, &o.max))
				return 2;
			break;
		case 'n':
			if (!cli_parse_u64("image-restore", "--rounds", optarg,
					   1, 15, false, &v))
				return 2;
			o.rounds = (unsigned int)v;
			break;
		case 'q':
			o.quick = true;
			o.rounds = 1;
			break;
		case 'j':
			o.json = true;
			break;
		case 't':
			if (!cli_parse_u64("image-restore", "--throttle",
					   optarg, 1 << 20, UINT64_MAX, true,
					   &o.throttle))
				return 2;
			break;
		case 'h':
			return usage();
		default:
			return cli_usage_error("image-restore",
					       "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error(
		    "image-restore", "unexpected argument '%s'", argv[optind]);
	if (o.raw) {
		snprintf(raw, sizeof(raw), "%s", o.raw);
	} else {
		snprintf(raw, sizeof(raw), "%s/upager-memory.raw", o.dir);
		make_raw(&o, raw);
	}
	if (o.throttle)
		throttle(o.dir, o.throttle);
	atexit(unthrottle);
	want = sum_file(raw, &len);
	len -= len % PAGE;
	if (len % 8 || !len)
		die("%s: not a whole number of pages", raw);
	for (size_t i = 0; i < 5; i++) {
		const char *path = raw;

		res[i].name = kinds[i].name;
		res[i].ratio = 1;
		if (kinds[i].codec) {
			struct upager_image_params p = {.size = sizeof(p),
							.codec = kinds[i].codec,
							.chunk_size =
							    kinds[i].chunk};
			struct upager_image_info in = {.size = sizeof(in)};
			struct upager_image_writer *w;
			struct upager_store *s;
			int fd = open(raw, O_RDONLY), err;
			char *buf = malloc(1 << 20);
			double t0 = cli_now();
			ssize_t n;

			snprintf(img, sizeof(img), "%s.%s", raw, kinds[i].name);
			w = upager_image_create(img, len, &p, &err);
			if (!w || fd < 0 || !buf)
				die("%s: %s", img, strerror(-err));
			for (uint64_t off = 0; off < len; off += (uint64_t)n) {
				n = pread(fd, buf,
					  len - off < (1 << 20) ? len - off
								: (1 << 20),
					  (off_t)off);
				if (n <= 0 ||
				    upager_image_write(w, buf, (size_t)n))
					die("writing %s", img);
			}
			if ((err = upager_image_commit(w)))
				die("%s: %s", img, strerror(-err));
			res[i].write_s = cli_now() - t0;
			upager_image_writer_free(w);
			close(fd);
			free(buf);
			s = upager_image_open(img, NULL, 0, &err);
			if (!s)
				die("%s: %s", img, strerror(-err));
			upager_image_info(s, &in);
			res[i].ratio =
			    (double)in.image_len / (double)in.file_len;
			upager_store_close(s);
			path = img;
		}
		if (!o.json)
			fprintf(stderr, "image-restore: %s...\n",
				kinds[i].name);
		measure(&o, path, len, want, &res[i]);
		if (kinds[i].codec)
			unlink(img);
	}
	if (o.json) {
		struct json j;

		json_begin(&j, stdout);
		json_u64(&j, "bytes", len);
		json_u64(&j, "rounds", o.rounds);
		json_u64(&j, "throttle_bps", o.throttle);
		json_arr_open(&j, "cases");
		for (size_t i = 0; i < 5; i++) {
			json_obj_open(&j, NULL);
			json_str(&j, "case", res[i].name);
			json_f64(&j, "ratio", res[i].ratio);
			json_f64(&j, "write_s", res[i].write_s);
			json_f64(&j, "seq_warm_s", res[i].t[0][0]);
			json_f64(&j, "seq_cold_s", res[i].t[0][1]);
			json_f64(&j, "rand_warm_s", res[i].t[1][0]);
			json_f64(&j, "rand_cold_s", res[i].t[1][1]);
			json_obj_close(&j);
		}
		json_arr_close(&j);
		json_end(&j);
	} else {
		printf("memory image: %" PRIu64 " MiB, %u round(s), median "
		       "shown; rate = MB of memory restored per second",
		       len >> 20, o.rounds);
		if (o.throttle)
			printf("; disk reads throttled to %" PRIu64 " MB/s",
			       o.throttle / 1000000);
		printf("\n\n");
		printf("%-10s %6s %8s | %-17s %-17s %-17s %-17s\n", "case",
		       "ratio", "write s", "seq warm s (MB/s)",
		       "seq cold s (MB/s)", "rand warm s (MB/s)",
		       "rand cold s (MB/s)");
		for (size_t i = 0; i < 5; i++) {
			printf("%-10s %6.2f %8.2f |", res[i].name, res[i].ratio,
			       res[i].write_s);
			for (int k = 0; k < 4; k++) {
				double t = res[i].t[k / 2][k % 2];

				printf(" %7.3f (%6.0f)  ", t,
				       t > 0 ? (double)len / t / 1e6 : 0);
			}
			printf("\n");
		}
	}
	if (!o.raw)
		unlink(raw);
	return 0;
}
