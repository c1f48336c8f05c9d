// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * UMap's environment in libupager-umap: the umapcfg_get_*() calls give
 * UMap's defaults with no variable set (capped at the engine's limits),
 * the values set, 0 as the default, counts above the limits as the
 * limits; a bad value of each variable (not a number, signed, empty,
 * overflowing, out of range, a page size that is no power of two, a low
 * mark not below the high one) makes umap() fail with EINVAL and say on
 * stderr which variable, and the getters return 0.  Each case runs in a
 * fresh process (this program again, with argv[1] "child" and the case's
 * environment), since the configuration is read once per process.
 */
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <upager/umap.h>

#include "harness.h"

/* Child: print the getters, then what umap() of a file did. */
static int child(void)
{
	char path[256];
	void *p;
	int fd;

	printf("%llu %llu %llu %llu %llu %llu %d %d %ld\n",
	       (unsigned long long)umapcfg_get_umap_page_size(),
	       (unsigned long long)umapcfg_get_max_pages_in_buffer(),
	       (unsigned long long)umapcfg_get_num_fillers(),
	       (unsigned long long)umapcfg_get_num_evictors(),
	       (unsigned long long)umapcfg_get_max_fault_events(),
	       (unsigned long long)umapcfg_get_read_ahead(),
	       umapcfg_get_evict_high_water_threshold(),
	       umapcfg_get_evict_low_water_threshold(),
	       umapcfg_get_system_page_size());
	if (!getenv("T_MAP"))
		return 0;
	fd = t_tmp_file(path, sizeof(path), 1 << 20, 0);
	unlink(path);
	errno = 0;
	p = umap(NULL, 1 << 20, PROT_READ | PROT_WRITE, UMAP_PRIVATE, fd, 0);
	printf("%s\n", p == UMAP_FAILED ? strerrorname_np(errno) : "mapped");
	return 0;
}

struct run {
	char out[512];
	char err[2048];
};

/* This program as a child with @env (NULL-terminated "NAME=value"). */
static void run(char *const env[], struct run *r)
{
	int out[2], err[2], status;
	ssize_t n;
	pid_t pid;

	CHECK(!pipe(out) && !pipe(err), "pipe");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (!pid) {
		char *argv[] = {(char *)"umap_config", (char *)"child", NULL};

		dup2(out[1], 1);
		dup2(err[1], 2);
		execve("/proc/self/exe", argv, env);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	n = read(out[0], r->out, sizeof(r->out) - 1);
	r->out[n > 0 ? n : 0] = 0;
	n = read(err[0], r->err, sizeof(r->err) - 1);
	r->err[n > 0 ? n : 0] = 0;
	close(out[0]);
	close(err[0]);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		  !WEXITSTATUS(status),
	      "child: status %#x, stderr: %s", status, r->err);
}

/*
 * The getters under @env: @want in the order child() prints them, the
 * buffer (free memory decides its default) only when @want[1] is not 0.
 */
static void check_values(char *const env[], const unsigned long long *want)
{
	unsigned long long got[9];
	struct run r;

	run(env, &r);
	CHECK(sscanf(r.out, "%llu %llu %llu %llu %llu %llu %llu %llu %llu",
		     &got[0], &got[1], &got[2], &got[3], &got[4], &got[5],
		     &got[6], &got[7], &got[8]) == 9,
	      "output: %s", r.out);
	for (int i = 0; i < 9; i++)
		CHECK(got[i] == want[i] || (i == 1 && !want[1] && got[1] >= 4),
		      "%s: value %d is %llu, want %llu (output: %s)",
		      env[0] ? env[0] : "(empty environment)", i, got[i],
		      want[i], r.out);
	CHECK(!*r.err, "stderr: %s", r.err);
}

static unsigned long long min_ull(unsigned long long a, unsigned long long b)
{
	return a < b ? a : b;
}

static void check_defaults(void)
{
	char *env[] = {NULL};
	char *zeros[] = {(char *)"UMAP_PAGESIZE=0",
			 (char *)"UMAP_BUFSIZE=0",
			 (char *)"UMAP_PAGE_FILLERS=0",
			 (char *)"UMAP_PAGE_EVICTORS=0",
			 (char *)"UMAP_MAX_FAULT_EVENTS=0",
			 (char *)"UMAP_READ_AHEAD=0",
			 (char *)"UMAP_EVICT_HIGH_WATER_THRESHOLD=0",
			 (char *)"UMAP_EVICT_LOW_WATER_THRESHOLD=0",
			 NULL};
	unsigned long long cpus =
	    (unsigned long long)sysconf(_SC_NPROCESSORS_ONLN);
	unsigned long long want[] = {
	    4096, 0, min_ull(cpus, 32), min_ull(cpus, 16), 64, 0, 90, 70, 4096,
	};

	check_values(env, want);
	check_values(zeros, want);
}

static void check_set(void)
{
	char *env[] = {(char *)"UMAP_PAGESIZE=65536",
		       (char *)"UMAP_BUFSIZE=100",
		       (char *)"UMAP_PAGE_FILLERS=3",
		       (char *)"UMAP_PAGE_EVICTORS=2",
		       (char *)"UMAP_MAX_FAULT_EVENTS=16",
		       (char *)"UMAP_READ_AHEAD=4",
		       (char *)"UMAP_EVICT_HIGH_WATER_THRESHOLD=80",
		       (char *)"UMAP_EVICT_LOW_WATER_THRESHOLD=40",
		       NULL};
	char *caps[] = {(char *)"UMAP_PAGE_FILLERS=1000",
			(char *)"UMAP_PAGE_EVICTORS=99",
			(char *)"UMAP_MAX_FAULT_EVENTS=256",
			(char *)"UMAP_BUFSIZE=4",
			(char *)"UMAP_EVICT_HIGH_WATER_THRESHOLD=60",
			NULL};
	unsigned long long want[] = {65536, 100, 3, 2, 16, 4, 80, 40, 4096};
	/* Above the engine's limits: the limits; a low mark under 60. */
	unsigned long long want_caps[] = {4096, 4, 32, 16, 64, 0, 60, 30, 4096};

	check_values(env, want);
	check_values(caps, want_caps);
}

static void check_bad(const char *var, const char *value)
{
	char setting[128], *env[] = {setting, (char *)"T_MAP=1", NULL};
	struct run r;

	snprintf(setting, sizeof(setting), "%s=%s", var, value);
	run(env, &r);
	CHECK(!strncmp(r.out, "0 0 0 0 0 0 0 0 4096\n", 21),
	      "%s: the getters say %s", setting, r.out);
	CHECK(strstr(r.out, "\nEINVAL\n"), "%s: umap(): %s", setting, r.out);
	CHECK(strstr(r.err, var), "%s: stderr does not name it: %s", setting,
	      r.err);
}

int main(int argc, char **argv)
{
	static const char *const vars[] = {
	    "UMAP_PAGESIZE",
	    "UMAP_BUFSIZE",
	    "UMAP_PAGE_FILLERS",
	    "UMAP_PAGE_EVICTORS",
	    "UMAP_EVICT_HIGH_WATER_THRESHOLD",
	    "UMAP_EVICT_LOW_WATER_THRESHOLD",
	    "UMAP_READ_AHEAD",
	    "UMAP_MAX_FAULT_EVENTS",
	};
	static const char *const junk[] = {
	    "abc", "-1",  "+5",	  "",
	    " 5",  "12x", "0x10", "99999999999999999999999",
	};

	if (argc > 1 && !strcmp(argv[1], "child"))
		return child();
	check_defaults();
	check_set();
	for (size_t v = 0; v < sizeof(vars) / sizeof(vars[0]); v++)
		for (size_t j = 0; j < sizeof(junk) / sizeof(junk[0]); j++)
			check_bad(vars[v], junk[j]);
	check_bad("UMAP_PAGESIZE", "5000");
	check_bad("UMAP_PAGESIZE", "2048");
	check_bad("UMAP_PAGESIZE", "2147483648");
	check_bad("UMAP_BUFSIZE", "3");
	check_bad("UMAP_EVICT_HIGH_WATER_THRESHOLD", "101");
	check_bad("UMAP_EVICT_HIGH_WATER_THRESHOLD", "1");
	/* Not below the default high mark of 90. */
	check_bad("UMAP_EVICT_LOW_WATER_THRESHOLD", "90");
	return t_end();
}
