// SPDX-License-Identifier: LGPL-2.1-or-later
/* Numbers in /proc and /sys, and the 2 MiB hugetlb pool (see sysfs.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "sysfs.h"

#define NR_HUGE "/proc/sys/vm/nr_hugepages"
#define HUGE_2M "/sys/kernel/mm/hugepages/hugepages-2048kB/"

long sys_read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

bool sys_write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

long hugetlb_unpromised(void)
{
	long fr = sys_read_long(HUGE_2M "free_hugepages");
	long rs = sys_read_long(HUGE_2M "resv_hugepages");

	return fr < 0 || rs < 0 ? -1 : fr - rs;
}

/*
 * The pool is the machine's: test suites of two checkouts, or a test and
 * the benchmark, may raise it at once.  So each process adds what it
 * needs on top of what is there and takes exactly that off at exit,
 * under a lock that makes each read-and-write one step; pages free when
 * it looks are no promise (another process may be about to map them).
 */
#define HUGE_LOCK "/tmp/upager-hugetlb.lock"

static long hugetlb_added; /* pages this process put in the pool */

static int huge_lock(void)
{
	int fd = open(HUGE_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

void hugetlb_restore(void)
{
	int fd;
	long nr;

	if (!hugetlb_added)
		return;
	fd = huge_lock();
	nr = sys_read_long(NR_HUGE);
	if (nr >= 0 && sys_write_long(NR_HUGE, nr > hugetlb_added
						      ? nr - hugetlb_added
						      : 0))
		hugetlb_added = 0;
	if (fd >= 0)
		close(fd);
}

int hugetlb_reserve(size_t n)
{
	static bool registered;
	long nr, av, got, want;
	int fd, ret = 0;

	if (sys_read_long(NR_HUGE) < 0 || hugetlb_unpromised() < 0)
		return -ENOTSUP;
	if (!registered) {
		atexit(hugetlb_restore);
		registered = true;
	}
	fd = huge_lock();
	nr = sys_read_long(NR_HUGE);
	/* Free pages count as ours only up to what we added. */
	av = hugetlb_unpromised();
	want = (long)n - (av < hugetlb_added ? av : hugetlb_added);
	if (want <= 0) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (!sys_write_long(NR_HUGE, nr + want)) {
		ret = -EPERM;
	} else {
		/* The kernel may find fewer free 2 MiB blocks than asked. */
		got = sys_read_long(NR_HUGE) - nr;
		if (got > 0)
			hugetlb_added += got;
		if (got < want)
			ret = -ENOMEM;
	}
	if (fd >= 0)
		close(fd);
	return ret;
}
