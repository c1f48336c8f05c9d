// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager-bench section B: sequential demand paging from the mem store
 * with read-ahead, against the kernel's anonymous first touch over the
 * same size.
 */
#include <inttypes.h>
#include <sys/mman.h>

#include <upager/upager.h>

#include "bench.h"

const struct row_def b_rows[B_N] = {
	[B_KERNEL] = { "kernel", "kernel anon first touch (write)", -1 },
	[B_KERNEL_READ] = { "kernel_read",
			    "kernel anon first touch (read: zero page)",
			    B_KERNEL },
	[B_RA2] = { "upager_ra_2", "upager mem, read-ahead 1M, 2 workers",
		    B_KERNEL },
	[B_RA1] = { "upager_ra_1", "upager mem, read-ahead 1M, 1 worker",
		    B_KERNEL },
};

/* ---- B: sequential demand paging ----------------------------------------- */

static void b_run(struct bench *b, int m, struct upager_store *s, int round)
{
	size_t len = b->o.b_bytes, n = len / PAGE;
	struct upager_stats st = { 0 };
	const char *what = b_rows[m].id;
	struct engine e;
	uint64_t wall;
	char *base;

	if (m == B_KERNEL || m == B_KERNEL_READ) {
		uint64_t flt = minflt_self();

		base = anon_map(what, len);
		wall = sweep(what, base, NULL, n,
			     m == B_KERNEL ? TOUCH_WRITE : TOUCH_READ, true,
			     NULL);
		st.faults = minflt_self() - flt;
		munmap(base, len);
	} else {
		engine_up(&e, what, s, len, m == B_RA2 ? 2 : 1, NULL, 0, 0, 0, 0,
			  UPAGER_MEM_ANON);
		wall = sweep(what, e.addr, NULL, n, TOUCH_WRITE, false, NULL);
		engine_down(&e, &st);
	}
	b->b_rate[m][round] = (double)len / GIB * 1e9 / (double)wall;
	b->b_faults[m] += st.faults;
}

void section_b(struct bench *b)
{
	struct upager_store *s;

	progress("[B] sequential demand paging: %d modes x %u round(s) x %" PRIu64
		 " MiB",
		 B_N, b->o.rounds, b->o.b_bytes / MIB);
	s = pattern_store(b->o.b_bytes);
	for (unsigned int r = 0; r < b->o.rounds; r++)
		for (int k = 0; k < B_N; k++)
			b_run(b, (int)(k + r) % B_N, s, (int)r);
	upager_store_close(s);
}
