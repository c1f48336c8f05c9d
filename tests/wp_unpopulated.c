// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * UFFD_FEATURE_WP_UNPOPULATED on anonymous memory (kselftest
 * "wp-unpopulated"): WRITEPROTECT over never-touched pages of an area
 * registered WP only installs pte markers (PM_UFFD_WP in pagemap with no
 * page present).  A read then raises nothing and sees zeros; a write raises
 * a WP fault (wp and write flags), resolved by unprotecting; the write
 * lands.  Unprotecting an untouched marker clears it, and MADV_DONTNEED
 * drops it.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define PM_PRESENT (1ull << 63)

struct ctx {
	struct t_mem *m;
	unsigned long bad;
};

static void on_fault(struct t_handler *h, const struct upager_ll_event *ev)
{
	struct ctx *c = t_handler_arg(h);
	uint64_t addr = ev->pagefault.address & ~(uint64_t)(c->m->page - 1);

	CHECK(ev->kind == UPAGER_LL_EVENT_PAGEFAULT, "event %s",
	      upager_ll_event_name(ev->kind));
	if (!ev->pagefault.wp || !ev->pagefault.write)
		c->bad++;
	CHECK(addr - (uintptr_t)c->m->addr < c->m->len, "fault outside");
	CHECK_RET(upager_ll_writeprotect(t_handler_uffd(h), (void *)addr,
					 c->m->page, 0), 0);
}

int main(int argc, char **argv)
{
	const size_t npages = 16;
	struct t_mem m;
	struct ctx c = { .m = &m };
	struct t_handler *h;
	uint64_t v;
	int pm, fd;

	/* A fault nobody serves would hang: fail instead. */
	alarm(20);
	if (t_memtype(argc, argv) != UPAGER_LL_MEM_ANON)
		SKIP("WP_UNPOPULATED is about anonymous memory");
	fd = t_uffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP |
			    UFFD_FEATURE_WP_UNPOPULATED, 0);
	t_mem_map(&m, UPAGER_LL_MEM_ANON, npages);
	pm = upager_ll_pagemap_open();
	CHECK(pm >= 0, "pagemap: %s", strerror(-pm));
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_WP, NULL), 0);

	/* Markers on pte_none: protected, nothing present. */
	CHECK_RET(upager_ll_writeprotect(fd, m.addr, m.len,
					 UFFDIO_WRITEPROTECT_MODE_WP), 0);
	for (size_t i = 0; i < npages; i++) {
		v = t_pagemap_entry(pm, m.addr + i * m.page);
		CHECK((v & (PM_UFFD_WP | PM_PRESENT)) == PM_UFFD_WP,
		      "page %zu: pagemap %#llx", i, (unsigned long long)v);
	}

	h = t_handler_start(fd, on_fault, &c);

	/* Reads fault nothing and see zeros; they stay protected. */
	for (size_t i = 0; i < npages / 2; i++) {
		const volatile char *p = m.addr + i * m.page;

		for (size_t j = 0; j < m.page; j += 512)
			CHECK(p[j] == 0, "page %zu byte %zu", i, j);
		CHECK(t_pagemap_entry(pm, m.addr + i * m.page) & PM_UFFD_WP,
		      "page %zu lost wp on read", i);
	}
	CHECK(t_handler_stop(h) == 0, "reads raised faults");

	/*
	 * Writes, both to read-only zero pages and to untouched markers:
	 * one WP fault each.
	 */
	h = t_handler_start(fd, on_fault, &c);
	for (size_t i = 0; i < npages; i++)
		t_fill(m.addr + i * m.page, m.page, i);
	CHECK(t_handler_stop(h) == npages, "one WP fault per page");
	CHECK(c.bad == 0, "%lu faults without wp+write flags", c.bad);
	for (size_t i = 0; i < npages; i++) {
		CHECK(t_verify(m.addr + i * m.page, m.page, i), "page %zu", i);
		v = t_pagemap_entry(pm, m.addr + i * m.page);
		CHECK((v & (PM_UFFD_WP | PM_PRESENT)) == PM_PRESENT,
		      "page %zu: pagemap %#llx", i, (unsigned long long)v);
	}

	/* Unprotect removes an untouched marker; DONTNEED zaps one. */
	CHECK(madvise(m.addr, m.len, MADV_DONTNEED) == 0, "DONTNEED");
	CHECK_RET(upager_ll_writeprotect(fd, m.addr, m.page,
					 UFFDIO_WRITEPROTECT_MODE_WP), 0);
	CHECK(t_pagemap_entry(pm, m.addr) & PM_UFFD_WP, "no marker");
	CHECK_RET(upager_ll_writeprotect(fd, m.addr, m.page, 0), 0);
	CHECK(!(t_pagemap_entry(pm, m.addr) & PM_UFFD_WP), "marker kept");
	CHECK_RET(upager_ll_writeprotect(fd, m.addr, m.page,
					 UFFDIO_WRITEPROTECT_MODE_WP), 0);
	CHECK(madvise(m.addr, m.page, MADV_DONTNEED) == 0, "DONTNEED");
	CHECK(!(t_pagemap_entry(pm, m.addr) & PM_UFFD_WP), "marker not zapped");
	/* No marker, no fault (no handler runs: a fault would hang). */
	*m.addr = 1;
	CHECK(*m.addr == 1, "data");

	close(pm);
	t_mem_unmap(&m);
	close(fd);
	return 0;
}
