// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * MINOR faults (kselftest "minor" / "minor-wp"): an area registered MINOR
 * whose page cache is filled through the alias mapping.  Filling raises
 * nothing; the first read of each page through the registered mapping
 * raises a PAGEFAULT with the minor flag (not write, not wp), resolved by
 * UFFDIO_CONTINUE; the data is what the alias wrote.  CONTINUE over a
 * mapped page is -EEXIST; over an offset with no page in the page cache
 * it is -EFAULT (mfill_atomic_pte_continue() / hugetlb_mfill_atomic_pte()
 * turn "no folio" into -EFAULT).  With MINOR|WP, CONTINUE with
 * UFFDIO_CONTINUE_MODE_WP maps the page write-protected: reads pass, the
 * first write raises a WP fault.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

struct ctx {
	struct t_mem *m;
	bool apply_wp;
	unsigned long minor, wp, bad;
};

static void on_fault(struct t_handler *h, const struct upager_ll_event *ev)
{
	struct ctx *c = t_handler_arg(h);
	uint64_t off;
	size_t done;
	int fd = t_handler_uffd(h);

	CHECK(ev->kind == UPAGER_LL_EVENT_PAGEFAULT, "event %s",
	      upager_ll_event_name(ev->kind));
	off = (ev->pagefault.address - (uintptr_t)c->m->addr) &
	      ~(uint64_t)(c->m->page - 1);
	CHECK(off < c->m->len, "fault outside the area");
	if (ev->pagefault.minor && !ev->pagefault.wp && !ev->pagefault.write) {
		__atomic_add_fetch(&c->minor, 1, __ATOMIC_RELAXED);
		CHECK_RET(upager_ll_continue(fd, c->m->addr + off, c->m->page,
					     c->apply_wp ?
						     UFFDIO_CONTINUE_MODE_WP : 0,
					     &done), 0);
		CHECK(done == c->m->page, "done %zu", done);
	} else if (ev->pagefault.wp && ev->pagefault.write &&
		   !ev->pagefault.minor && c->apply_wp) {
		__atomic_add_fetch(&c->wp, 1, __ATOMIC_RELAXED);
		CHECK_RET(upager_ll_writeprotect(fd, c->m->addr + off,
						 c->m->page, 0), 0);
	} else {
		FAIL("unexpected fault flags %#llx",
		     (unsigned long long)ev->pagefault.flags);
	}
}

static void run(enum upager_ll_memtype type, bool wp)
{
	/* The last page is never put in the page cache. */
	const size_t npages = type == UPAGER_LL_MEM_HUGETLB ? 3 : 16;
	const size_t filled = npages - 1;
	uint64_t features = t_features_minor(type);
	uint64_t mode = UFFDIO_REGISTER_MODE_MINOR;
	struct t_mem m;
	struct ctx c = { .m = &m, .apply_wp = wp };
	struct t_handler *h;
	uint64_t ioctls;
	size_t done;
	int fd;

	if (wp) {
		features |= t_features_wp(type);
		mode |= UFFDIO_REGISTER_MODE_WP;
	}
	fd = t_uffd(features, 0);
	t_mem_map(&m, type, npages);
	CHECK_RET(upager_ll_register(fd, m.addr, m.len, mode, &ioctls), 0);
	t_need_ioctls(ioctls, 1ull << _UFFDIO_CONTINUE, "CONTINUE");
	h = t_handler_start(fd, on_fault, &c);

	/* Filling the page cache through the alias raises nothing. */
	for (size_t i = 0; i < filled; i++)
		t_fill(m.alias + i * m.page, m.page, i);
	CHECK(__atomic_load_n(&c.minor, __ATOMIC_RELAXED) == 0,
	      "alias writes raised faults");

	for (size_t i = 0; i < filled; i++)
		CHECK(t_verify(m.addr + i * m.page, m.page, i), "page %zu", i);
	if (wp) {
		/* Mapped write-protected: one WP fault on each first write. */
		for (size_t i = 0; i < filled; i++)
			t_fill(m.addr + i * m.page, m.page, 100 + i);
		for (size_t i = 0; i < filled; i++)
			CHECK(t_verify(m.alias + i * m.page, m.page, 100 + i),
			      "alias page %zu", i);
	}
	CHECK(t_handler_stop(h) == (wp ? 2 : 1) * filled, "fault count");
	CHECK(c.minor == filled && c.wp == (wp ? filled : 0),
	      "%lu minor, %lu wp faults", c.minor, c.wp);

	/* CONTINUE over a page that is mapped already. */
	CHECK_RET(upager_ll_continue(fd, m.addr, m.page, 0, &done), -EEXIST);
	CHECK(done == 0, "done %zu", done);
	/* CONTINUE where the page cache has nothing. */
	CHECK_RET(upager_ll_continue(fd, m.addr + filled * m.page, m.page, 0,
				     &done), -EFAULT);
	CHECK(done == 0, "done %zu", done);

	t_mem_unmap(&m);
	close(fd);
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);

	/* A fault nobody serves would hang: fail instead. */
	alarm(20);
	run(type, false);
	run(type, true);
	return 0;
}
