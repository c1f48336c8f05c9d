// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The spaces upager_space_release() drops are freed, and their uffds
 * closed, by the handler's sweep, a timer that fires once a second while
 * there is something to sweep.  Were every adopt and drop to set it
 * again to a second from now, a manager whose clients come and go more
 * often than once a second would never sweep: uffds and pidfds would
 * pile up until the process ran out of descriptors.
 *
 * Here: 100 spaces adopted and released, one every 30 ms (3 s); the
 * descriptors still open at the end must be about one second's worth
 * (33), not all of them.
 */
#include <dirent.h>
#include <fcntl.h>

#include "tstore.h"

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	CHECK(d, "/proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

int main(void)
{
	struct upager_handler *h;
	int base, err, held;

	t_deadline(30, "foreign_reap did not finish");
	h = t_upager_handler(1, NULL, NULL);
	CHECK_RET(upager_handler_start(h), 0);
	base = open_fds();
	for (int i = 0; i < 100; i++) {
		struct upager_space_params sp = { .size = sizeof(sp) };
		int fd = upager_ll_open(UPAGER_LL_NONBLOCK, NULL);
		struct upager_space *s;

		CHECK(fd >= 0 && upager_ll_api(fd, 0, NULL) == 0, "uffd");
		s = upager_space_adopt(h, fd, &sp, &err);
		CHECK(s, "adopt: %s", strerror(-err));
		CHECK_RET(upager_space_release(s), 0);
		t_sleep_ms(30);
	}
	held = open_fds() - base;
	printf("%d uffds of released spaces still open after 3 s of churn\n",
	       held);
	CHECK(held <= 50,
	      "%d of 100 released spaces still hold their uffd: the sweep "
	      "never ran while spaces came and went",
	      held);
	upager_handler_free(h);
	t_deadline(0, NULL);
	return 0;
}
