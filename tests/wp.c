// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Write-protect faults (kselftest "wp"): an area registered MISSING|WP is
 * populated write-protected, half by UFFDIO_COPY with UFFDIO_COPY_MODE_WP,
 * half by a plain COPY followed by UFFDIO_WRITEPROTECT.  Reading it raises
 * nothing; the first write to each page raises one PAGEFAULT with the wp
 * and write flags, which the handler resolves by removing the protection
 * (WRITEPROTECT mode 0 wakes the writer); the written data is there, also
 * through the alias mapping.  WRITEPROTECT on a range registered without
 * MODE_WP is -ENOENT.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

struct ctx {
	struct t_mem *m;
	unsigned long bad; /* faults without the wp or write flag */
};

static void on_fault(struct t_handler *h, const struct upager_ll_event *ev)
{
	struct ctx *c = t_handler_arg(h);
	uint64_t off;

	CHECK(ev->kind == UPAGER_LL_EVENT_PAGEFAULT, "event %s",
	      upager_ll_event_name(ev->kind));
	if (!ev->pagefault.wp || !ev->pagefault.write || ev->pagefault.minor)
		__atomic_add_fetch(&c->bad, 1, __ATOMIC_RELAXED);
	off = (ev->pagefault.address - (uintptr_t)c->m->addr) &
	      ~(uint64_t)(c->m->page - 1);
	CHECK(off < c->m->len, "fault outside the area");
	CHECK_RET(upager_ll_writeprotect(t_handler_uffd(h), c->m->addr + off,
					 c->m->page, 0), 0);
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);
	const size_t npages = type == UPAGER_LL_MEM_HUGETLB ? 4 : 32;
	struct t_mem m;
	struct ctx c = { .m = &m };
	struct t_handler *h;
	uint64_t ioctls;
	size_t done;
	char *buf, *last;
	int fd = t_uffd(t_features_wp(type), 0);

	/* A fault nobody serves would hang: fail instead. */
	alarm(20);
	t_mem_map(&m, type, npages);
	buf = aligned_alloc(m.page, m.page);
	CHECK(buf != NULL, "aligned_alloc");
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_MISSING |
					     UFFDIO_REGISTER_MODE_WP,
				     &ioctls), 0);
	t_need_ioctls(ioctls, 1ull << _UFFDIO_WRITEPROTECT, "WRITEPROTECT");

	/* Populate: even pages COPY_MODE_WP, odd pages COPY + WRITEPROTECT. */
	for (size_t i = 0; i < npages; i++) {
		char *dst = m.addr + i * m.page;

		t_fill(buf, m.page, i);
		CHECK_RET(upager_ll_copy(fd, dst, buf, m.page,
					 i % 2 ? 0 : UFFDIO_COPY_MODE_WP,
					 &done), 0);
		CHECK(done == m.page, "done %zu", done);
	}
	for (size_t i = 1; i < npages; i += 2)
		CHECK_RET(upager_ll_writeprotect(fd, m.addr + i * m.page,
						 m.page,
						 UFFDIO_WRITEPROTECT_MODE_WP),
			  0);

	h = t_handler_start(fd, on_fault, &c);

	/* Reads of write-protected pages raise nothing. */
	for (size_t i = 0; i < npages; i++)
		CHECK(t_verify(m.addr + i * m.page, m.page, i), "page %zu", i);

	/* The first write to each page raises one WP fault. */
	for (size_t i = 0; i < npages; i++)
		t_fill(m.addr + i * m.page, m.page, 1000 + i);
	CHECK(t_handler_stop(h) == npages, "one WP fault per page");
	CHECK(c.bad == 0, "%lu faults without wp+write flags", c.bad);
	for (size_t i = 0; i < npages; i++) {
		CHECK(t_verify(m.addr + i * m.page, m.page, 1000 + i),
		      "page %zu after write", i);
		if (m.alias)
			CHECK(t_verify(m.alias + i * m.page, m.page, 1000 + i),
			      "alias page %zu after write", i);
	}

	/*
	 * Unprotected pages take writes without faults (no handler runs now:
	 * a fault here would hang until the alarm).
	 */
	t_fill(m.addr, m.page, 7);
	CHECK(t_verify(m.addr, m.page, 7), "rewrite");

	/*
	 * WRITEPROTECT needs VM_UFFD_WP on every VMA of the range
	 * (mwriteprotect_range(): -ENOENT otherwise), whether protecting or
	 * not; a range registered MISSING only does not have it.  The last
	 * page is re-registered that way (no second hugetlb area needed).
	 */
	last = m.addr + (npages - 1) * m.page;
	CHECK_RET(upager_ll_unregister(fd, last, m.page), 0);
	CHECK_RET(upager_ll_register(fd, last, m.page,
				     UFFDIO_REGISTER_MODE_MISSING, &ioctls), 0);
	CHECK(!(ioctls & (1ull << _UFFDIO_WRITEPROTECT)),
	      "WRITEPROTECT granted without MODE_WP");
	CHECK_RET(upager_ll_writeprotect(fd, last, m.page,
					 UFFDIO_WRITEPROTECT_MODE_WP), -ENOENT);
	CHECK_RET(upager_ll_writeprotect(fd, last, m.page, 0), -ENOENT);
	/* ... and so is a range registered with no uffd at all. */
	CHECK_RET(upager_ll_unregister(fd, last, m.page), 0);
	CHECK_RET(upager_ll_writeprotect(fd, last, m.page,
					 UFFDIO_WRITEPROTECT_MODE_WP), -ENOENT);
	/* The page is untouched by all that. */
	t_fill(last, m.page, 8);
	CHECK(t_verify(last, m.page, 8), "last page");

	free(buf);
	t_mem_unmap(&m);
	close(fd);
	return 0;
}
