// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * UFFD_FEATURE_SIGBUS: a missing-page fault in a registered range raises
 * SIGBUS in the faulting thread instead of queueing a message (the uffd
 * stays empty: a non-blocking read is -EAGAIN), for reads and writes.
 * Once the page is installed with UFFDIO_COPY it reads back the data.
 */
#include <unistd.h>

#include "harness.h"

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);
	struct uffd_msg msg;
	struct t_mem m;
	size_t pg, done;
	char *src;
	int fd = t_uffd(UFFD_FEATURE_SIGBUS | t_features_missing(type),
			UPAGER_LL_NONBLOCK);

	t_mem_map(&m, type, 2);
	pg = m.page;
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_MISSING, NULL),
		  0);
	src = aligned_alloc(pg, pg);
	CHECK(src != NULL, "aligned_alloc");

	for (size_t i = 0; i < 2; i++) {
		CHECK(t_read_sigbus(m.addr + i * pg + 7),
		      "page %zu: no SIGBUS on read", i);
		CHECK(t_write_sigbus(m.addr + i * pg + 7),
		      "page %zu: no SIGBUS on write", i);
		/* Again: nothing changed, the page is still missing. */
		CHECK(t_read_sigbus(m.addr + i * pg), "page %zu: no SIGBUS", i);
		CHECK_RET(upager_ll_read(fd, &msg, 1), -EAGAIN);
	}

	t_fill(src, pg, 5);
	CHECK_RET(upager_ll_copy(fd, m.addr, src, pg, 0, &done), 0);
	CHECK(!t_read_sigbus(m.addr), "SIGBUS on an installed page");
	CHECK(t_verify(m.addr, pg, 5), "installed page differs");
	CHECK(!t_write_sigbus(m.addr + 8), "SIGBUS writing an installed page");
	/* The other page still raises SIGBUS. */
	CHECK(t_read_sigbus(m.addr + pg), "page 1: no SIGBUS");
	CHECK_RET(upager_ll_read(fd, &msg, 1), -EAGAIN);

	free(src);
	t_mem_unmap(&m);
	close(fd);
	return 0;
}
