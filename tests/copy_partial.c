// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A multi-page install that stops part way: a 4-page COPY whose 3rd page
 * is already present.  The kernel installs pages 0 and 1, reports their
 * bytes in uffdio_copy.copy and fails the ioctl with EAGAIN, so
 * upager_ll_copy() returns -EAGAIN with *done == 2 pages.  Those two pages
 * hold the new data, the present page is untouched, the 4th page is still
 * missing, and resuming at dst + *done meets -EEXIST (done 0).  The same
 * for ZEROPAGE on anonymous memory.
 */
#include <unistd.h>

#include "harness.h"

#define NPAGES 4

static void copy_case(enum upager_ll_memtype type)
{
	struct t_mem m;
	size_t pg, resume, done = 0;
	char *src;
	int fd = t_uffd(t_features_missing(type), 0);

	t_mem_map(&m, type, NPAGES);
	pg = m.page;
	src = aligned_alloc(pg, NPAGES * pg);
	CHECK(src != NULL, "aligned_alloc");
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_MISSING, NULL),
		  0);

	/* Page 2 first, with its own pattern. */
	t_fill(src, pg, 100);
	CHECK_RET(upager_ll_copy(fd, m.addr + 2 * pg, src, pg, 0, &done), 0);
	CHECK(done == pg, "done %zu", done);

	for (size_t i = 0; i < NPAGES; i++)
		t_fill(src + i * pg, pg, i);
	CHECK_RET(upager_ll_copy(fd, m.addr, src, m.len, 0, &done), -EAGAIN);
	CHECK(done == 2 * pg, "done %zu, want %zu", done, 2 * pg);
	CHECK(t_verify(m.addr, pg, 0), "page 0 differs");
	CHECK(t_verify(m.addr + pg, pg, 1), "page 1 differs");
	CHECK(t_verify(m.addr + 2 * pg, pg, 100), "present page changed");

	/* Resuming where it stopped: the first page there is present. */
	resume = done;
	done = 12345;
	CHECK_RET(upager_ll_copy(fd, m.addr + resume, src + resume,
				 m.len - resume, 0, &done), -EEXIST);
	CHECK(done == 0, "done %zu", done);
	/* Past it, the rest goes in. */
	CHECK_RET(upager_ll_copy(fd, m.addr + 3 * pg, src + 3 * pg, pg, 0,
				 &done), 0);
	CHECK(done == pg, "done %zu", done);
	CHECK(t_verify(m.addr + 3 * pg, pg, 3), "page 3 differs");
	CHECK(t_verify(m.addr + 2 * pg, pg, 100), "present page changed");

	free(src);
	t_mem_unmap(&m);
	close(fd);
}

static bool all_zero(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void zeropage_case(void)
{
	struct t_mem m;
	size_t pg, resume, done = 0;
	char *src;
	int fd = t_uffd(0, 0);

	t_mem_map(&m, UPAGER_LL_MEM_ANON, NPAGES);
	pg = m.page;
	src = aligned_alloc(pg, pg);
	CHECK(src != NULL, "aligned_alloc");
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_MISSING, NULL),
		  0);
	t_fill(src, pg, 100);
	CHECK_RET(upager_ll_copy(fd, m.addr + 2 * pg, src, pg, 0, &done), 0);

	CHECK_RET(upager_ll_zeropage(fd, m.addr, m.len, 0, &done), -EAGAIN);
	CHECK(done == 2 * pg, "done %zu, want %zu", done, 2 * pg);
	CHECK(all_zero(m.addr, 2 * pg), "zeroed pages not zero");
	CHECK(t_verify(m.addr + 2 * pg, pg, 100), "present page changed");
	resume = done;
	done = 12345;
	CHECK_RET(upager_ll_zeropage(fd, m.addr + resume, m.len - resume, 0,
				     &done), -EEXIST);
	CHECK(done == 0, "done %zu", done);

	free(src);
	t_mem_unmap(&m);
	close(fd);
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);

	copy_case(type);
	if (type == UPAGER_LL_MEM_ANON)
		zeropage_case();
	return 0;
}
