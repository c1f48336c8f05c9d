// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * UFFDIO_COPY on each memory type: a handler thread resolves MISSING
 * faults with patterned pages; every byte is checked.  Also DONTWAKE
 * followed by an explicit WAKE, and -EEXIST on an installed page.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

struct ctx {
	struct t_mem *m;
	char *buf;
	bool dontwake;
};

static void on_fault(struct t_handler *h, const struct upager_ll_event *ev)
{
	struct ctx *c = t_handler_arg(h);
	uint64_t off, mode = c->dontwake ? UFFDIO_COPY_MODE_DONTWAKE : 0;
	size_t done;
	char *dst;

	CHECK(ev->kind == UPAGER_LL_EVENT_PAGEFAULT, "event %s",
	      upager_ll_event_name(ev->kind));
	off = (ev->pagefault.address - (uintptr_t)c->m->addr) &
	      ~(uint64_t)(c->m->page - 1);
	dst = c->m->addr + off;
	t_fill(c->buf, c->m->page, off / c->m->page);
	CHECK_RET(upager_ll_copy(t_handler_uffd(h), dst, c->buf, c->m->page,
				 mode, &done), 0);
	CHECK(done == c->m->page, "done %zu", done);
	if (c->dontwake)
		CHECK_RET(upager_ll_wake(t_handler_uffd(h), dst, c->m->page), 0);
}

static void run(enum upager_ll_memtype type, bool dontwake)
{
	const size_t npages = type == UPAGER_LL_MEM_HUGETLB ? 4 : 64;
	struct t_mem m;
	struct ctx c = { .m = &m, .dontwake = dontwake };
	struct t_handler *h;
	uint64_t ioctls;
	size_t done;
	int fd = t_uffd(t_features_missing(type), 0);

	t_mem_map(&m, type, npages);
	c.buf = aligned_alloc(m.page, m.page);
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_MISSING, &ioctls),
		  0);
	CHECK(ioctls & (1ull << _UFFDIO_COPY), "COPY not granted");
	CHECK(ioctls & (1ull << _UFFDIO_WAKE), "WAKE not granted");

	h = t_handler_start(fd, on_fault, &c);
	for (size_t i = 0; i < npages; i++)
		CHECK(t_verify(m.addr + i * m.page, m.page, i), "page %zu", i);
	CHECK(t_handler_stop(h) == npages, "one fault per page");

	/* Installing over a present page is -EEXIST and changes nothing. */
	CHECK_RET(upager_ll_copy(fd, m.addr, c.buf, m.page, 0, &done), -EEXIST);
	CHECK(done == 0, "done %zu", done);
	CHECK(t_verify(m.addr, m.page, 0), "page 0 changed");

	free(c.buf);
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
