/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Numbers in /proc and /sys, and the 2 MiB hugetlb pool: shared by the
 * CLI (features), the benchmark and the test harness, which reserve pages
 * for a run and give them back at exit.
 */
#ifndef UPAGER_SYSFS_H
#define UPAGER_SYSFS_H

#include <stdbool.h>
#include <stddef.h>

/* The number @path holds, or -1 when it can't be read. */
long sys_read_long(const char *path);
bool sys_write_long(const char *path, long v);

/* Free 2 MiB pages no mapping has a reservation on, or -1. */
long hugetlb_unpromised(void);
/*
 * Make sure @n 2 MiB pages are free for this process, adding them to the
 * pool on top of what is there: other processes may use the pool at the
 * same time, so free pages count as this process's only up to what it
 * added itself.  The first call registers an atexit() handler that takes
 * off what the process added (hugetlb_restore() does it earlier).  0,
 * -ENOTSUP (no 2 MiB hugetlb here), -EPERM (can't write the sysctl: not
 * root) or -ENOMEM (the kernel found too few pages).
 */
int hugetlb_reserve(size_t n);
void hugetlb_restore(void);

#endif
