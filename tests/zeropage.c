// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * UFFDIO_ZEROPAGE on anon and shmem: a handler thread resolves MISSING
 * faults with zero pages; read faults then see zeros, write faults land
 * on a zeroed page.  Also DONTWAKE followed by an explicit WAKE, and
 * -EEXIST (with nothing changed) over a present page.
 */
#include <unistd.h>

#include "harness.h"

struct ctx {
	struct t_mem *m;
	bool dontwake;
};

static void on_fault(struct t_handler *h, const struct upager_ll_event *ev)
{
	struct ctx *c = t_handler_arg(h);
	uint64_t mode = c->dontwake ? UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0;
	size_t page = c->m->page, done;
	char *dst;

	CHECK(ev->kind == UPAGER_LL_EVENT_PAGEFAULT, "event %s",
	      upager_ll_event_name(ev->kind));
	dst = (char *)(uintptr_t)(ev->pagefault.address &
				  ~(uint64_t)(page - 1));
	CHECK(dst >= c->m->addr && dst < c->m->addr + c->m->len,
	      "fault at %p outside the area", (void *)dst);
	CHECK_RET(upager_ll_zeropage(t_handler_uffd(h), dst, page, mode, &done),
		  0);
	CHECK(done == page, "done %zu", done);
	if (c->dontwake)
		CHECK_RET(upager_ll_wake(t_handler_uffd(h), dst, page), 0);
}

static bool all_zero(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void run(enum upager_ll_memtype type, bool dontwake)
{
	const size_t npages = 32;
	struct t_mem m;
	struct ctx c = { .m = &m, .dontwake = dontwake };
	struct t_handler *h;
	uint64_t ioctls;
	size_t done;
	int fd = t_uffd(t_features_missing(type), 0);

	t_mem_map(&m, type, npages);
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_MISSING, &ioctls),
		  0);
	t_need_ioctls(ioctls, 1ull << _UFFDIO_ZEROPAGE, "ZEROPAGE");

	h = t_handler_start(fd, on_fault, &c);
	/* Even pages: read faults.  Odd pages: write faults. */
	for (size_t i = 0; i < npages; i++) {
		char *p = m.addr + i * m.page;

		if (i % 2 == 0) {
			CHECK(all_zero(p, m.page), "page %zu not zero", i);
		} else {
			p[100] = (char)i;
			CHECK(p[100] == (char)i, "write lost on page %zu", i);
			p[100] = 0;
			CHECK(all_zero(p, m.page), "page %zu not zero", i);
		}
	}
	CHECK(t_handler_stop(h) == npages, "one fault per page");

	/* Over a present page: -EEXIST, the page keeps what it holds. */
	m.addr[1] = 42;
	CHECK_RET(upager_ll_zeropage(fd, m.addr, m.page, 0, &done), -EEXIST);
	CHECK(done == 0, "done %zu", done);
	CHECK(m.addr[1] == 42, "page 0 changed");
	/* A zero page installed but never written is present too. */
	CHECK_RET(upager_ll_zeropage(fd, m.addr + 2 * m.page, m.page, 0, &done),
		  -EEXIST);

	t_mem_unmap(&m);
	close(fd);
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);

	run(type, false);
	run(type, true);
	return 0;
}
