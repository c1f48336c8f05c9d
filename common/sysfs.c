// SPDX-License-Identifier: LGPL-2.1-or-later
/* Numbers in /proc and /sys, and the 2 MiB hugetlb pool (see sysfs.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "sysfs.h"

#define NR_HUGE "/proc/sys/vm/nr_hugepages"
#define HUGE_2M "/sys/kernel/mm/hugepages/hugepages-2048kB/"

static long hugetlb_old = -1; /* nr_hugepages before our first raise */

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

void hugetlb_restore(void)
{
	if (hugetlb_old >= 0 && sys_write_long(NR_HUGE, hugetlb_old))
		hugetlb_old = -1;
}

int hugetlb_reserve(size_t n)
{
	long nr = sys_read_long(NR_HUGE), av = hugetlb_unpromised();
	static bool registered;

	if (nr < 0 || av < 0)
		return -ENOTSUP;
	if ((size_t)av >= n)
		return 0;
	if (hugetlb_old < 0)
		hugetlb_old = nr;
	if (!registered) {
		atexit(hugetlb_restore);
		registered = true;
	}
	if (!sys_write_long(NR_HUGE, nr + (long)(n - (size_t)av)))
		return -EPERM;
	return hugetlb_unpromised() < (long)n ? -ENOMEM : 0;
}
