// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * UFFDIO_POISON (UFFD_FEATURE_POISON): a fault a handler resolves with
 * POISON wakes the faulting thread into SIGBUS, and every later access
 * raises SIGBUS again without a new fault message.  A page poisoned
 * before anyone touches it raises SIGBUS too.  POISON over a present page
 * (or over poison) is -EEXIST and leaves it alone; a COPY replaces the
 * poison.  On anonymous memory, MADV_DONTNEED
 * drops the poison marker: the page faults again as missing and can be
 * resolved with a COPY.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

struct ctx {
	struct t_mem *m;
	bool poison; /* resolve by POISON, else by COPY of a pattern */
	char *buf;
	unsigned long faults;
};

static void on_fault(struct t_handler *h, const struct upager_ll_event *ev)
{
	struct ctx *c = t_handler_arg(h);
	size_t pg = c->m->page, done;
	uint64_t off;
	char *dst;

	CHECK(ev->kind == UPAGER_LL_EVENT_PAGEFAULT, "event %s",
	      upager_ll_event_name(ev->kind));
	off = (ev->pagefault.address - (uintptr_t)c->m->addr) &
	      ~(uint64_t)(pg - 1);
	CHECK(off < c->m->len, "fault outside the area");
	dst = c->m->addr + off;
	__atomic_add_fetch(&c->faults, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&c->poison, __ATOMIC_SEQ_CST)) {
		CHECK_RET(upager_ll_poison(t_handler_uffd(h), dst, pg, 0,
					   &done), 0);
	} else {
		t_fill(c->buf, pg, off / pg + 1000);
		CHECK_RET(upager_ll_copy(t_handler_uffd(h), dst, c->buf, pg, 0,
					 &done), 0);
	}
	CHECK(done == pg, "done %zu", done);
}

static unsigned long faults(struct ctx *c)
{
	return __atomic_load_n(&c->faults, __ATOMIC_SEQ_CST);
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);
	struct t_mem m;
	struct ctx c = { .m = &m, .poison = true };
	struct t_handler *h;
	uint64_t ioctls;
	size_t pg, done;
	char *src;
	int fd = t_uffd(UFFD_FEATURE_POISON | t_features_missing(type), 0);

	t_mem_map(&m, type, 3);
	pg = m.page;
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_MISSING, &ioctls),
		  0);
	t_need_ioctls(ioctls, 1ull << _UFFDIO_POISON, "POISON");
	c.buf = aligned_alloc(pg, pg);
	src = aligned_alloc(pg, pg);
	CHECK(c.buf != NULL && src != NULL, "aligned_alloc");

	h = t_handler_start(fd, on_fault, &c);

	/* Page 0: the fault is resolved by POISON; the reader gets SIGBUS. */
	CHECK(t_read_sigbus(m.addr + 5), "no SIGBUS after POISON");
	CHECK(faults(&c) == 1, "%lu faults", faults(&c));
	CHECK(t_read_sigbus(m.addr), "poisoned page read without SIGBUS");
	CHECK(t_write_sigbus(m.addr + 9),
	      "poisoned page written without SIGBUS");
	CHECK(faults(&c) == 1, "%lu faults: the poison did not stick",
	      faults(&c));

	/* Page 1: present, then POISON is refused and changes nothing. */
	t_fill(src, pg, 1);
	CHECK_RET(upager_ll_copy(fd, m.addr + pg, src, pg, 0, &done), 0);
	done = 12345;
	CHECK_RET(upager_ll_poison(fd, m.addr + pg, pg, 0, &done), -EEXIST);
	CHECK(done == 0, "done %zu", done);
	CHECK(!t_read_sigbus(m.addr + pg), "present page raises SIGBUS");
	CHECK(t_verify(m.addr + pg, pg, 1), "present page changed");

	/* Page 2: poisoned before any access; no fault message either. */
	CHECK_RET(upager_ll_poison(fd, m.addr + 2 * pg, pg, 0, &done), 0);
	CHECK(done == pg, "done %zu", done);
	CHECK(t_read_sigbus(m.addr + 2 * pg), "pre-poisoned page: no SIGBUS");
	CHECK(faults(&c) == 1, "%lu faults", faults(&c));
	/*
	 * A poison marker counts as present for POISON, but COPY may replace
	 * it (the kernel lets an install overwrite a pte marker), which is
	 * how a pager can bring a poisoned page back.
	 */
	CHECK_RET(upager_ll_poison(fd, m.addr + 2 * pg, pg, 0, &done), -EEXIST);
	t_fill(src, pg, 2);
	CHECK_RET(upager_ll_copy(fd, m.addr + 2 * pg, src, pg, 0, &done), 0);
	CHECK(!t_read_sigbus(m.addr + 2 * pg), "SIGBUS after COPY over poison");
	CHECK(t_verify(m.addr + 2 * pg, pg, 2), "COPY over poison differs");

	if (type == UPAGER_LL_MEM_ANON) {
		/* The marker is zapped like a pte: page 0 is missing again. */
		__atomic_store_n(&c.poison, false, __ATOMIC_SEQ_CST);
		CHECK(madvise(m.addr, pg, MADV_DONTNEED) == 0, "madvise: %s",
		      strerror(errno));
		CHECK(!t_read_sigbus(m.addr), "SIGBUS after MADV_DONTNEED");
		CHECK(faults(&c) == 2, "%lu faults, want a new one",
		      faults(&c));
		CHECK(t_verify(m.addr, pg, 1000), "page 0 not the COPY");
	}
	CHECK(t_handler_stop(h) == faults(&c), "events vs faults");

	free(src);
	free(c.buf);
	t_mem_unmap(&m);
	close(fd);
	return 0;
}
