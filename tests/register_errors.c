// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * UFFDIO_REGISTER refusals on each memory type: an unaligned start or
 * length, a zero length, a range with nothing mapped in it, a range owned
 * by another uffd (-EBUSY), a mode of 0 or with an unknown bit, MINOR on
 * anonymous memory, and (hugetlb) a start or length that is 4 KiB but not
 * huge-page aligned: all -EINVAL unless said otherwise.  A range with a
 * hole is registered around the hole; unregistering a range that is not
 * registered is 0, and unregistering through another uffd is refused.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define MISSING UFFDIO_REGISTER_MODE_MISSING

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);
	uint64_t features = t_features_missing(type);
	struct t_mem m;
	int fd = t_uffd(features, 0), fd2 = t_uffd(features, 0);
	size_t pg;
	char *a, *h;

	/*
	 * One area: pages 0-3 for the alignment and ownership cases, 4-6 to
	 * punch holes in.  (Two hugetlb t_mem_map()s would not do: the
	 * harness counts reserved huge pages as free.)
	 */
	t_mem_map(&m, type, 7);
	a = m.addr;
	pg = m.page;
	h = a + 4 * pg;

	CHECK_RET(upager_ll_register(fd, a + 1, pg, MISSING, NULL), -EINVAL);
	CHECK_RET(upager_ll_register(fd, a, 0, MISSING, NULL), -EINVAL);
	CHECK_RET(upager_ll_register(fd, a, pg + 1, MISSING, NULL), -EINVAL);
	CHECK_RET(upager_ll_register(fd, a, pg, 0, NULL), -EINVAL);
	CHECK_RET(upager_ll_register(fd, a, pg, MISSING | (1ull << 3), NULL),
		  -EINVAL);
	if (type == UPAGER_LL_MEM_ANON) {
		CHECK_RET(upager_ll_register(fd, a, pg,
					     UFFDIO_REGISTER_MODE_MINOR, NULL),
			  -EINVAL);
	} else {
		/* The contrast: MINOR is a shmem / hugetlb mode. */
		uint64_t ioctls = 0;

		CHECK_RET(upager_ll_register(fd, a, pg,
					     UFFDIO_REGISTER_MODE_MINOR,
					     &ioctls), 0);
		CHECK(ioctls & (1ull << _UFFDIO_CONTINUE), "no CONTINUE");
		CHECK_RET(upager_ll_unregister(fd, a, pg), 0);
	}
	if (type == UPAGER_LL_MEM_HUGETLB) {
		/* validate_range() passes, the huge page checks do not. */
		CHECK_RET(upager_ll_register(fd, a + 4096, pg, MISSING, NULL),
			  -EINVAL);
		CHECK_RET(upager_ll_register(fd, a, 4096, MISSING, NULL),
			  -EINVAL);
		CHECK_RET(upager_ll_register(fd, a, pg + 4096, MISSING, NULL),
			  -EINVAL);
	}

	/* Not registered anywhere: unregistering is a no-op. */
	CHECK_RET(upager_ll_unregister(fd, a, 4 * pg), 0);

	/* One owner per range. */
	CHECK_RET(upager_ll_register(fd, a, 2 * pg, MISSING, NULL), 0);
	CHECK_RET(upager_ll_register(fd2, a, 2 * pg, MISSING, NULL), -EBUSY);
	CHECK_RET(upager_ll_register(fd2, a + pg, 2 * pg, MISSING, NULL),
		  -EBUSY);
	/* Registering again on the owner is fine (nothing to change). */
	CHECK_RET(upager_ll_register(fd, a, 2 * pg, MISSING, NULL), 0);
	/*
	 * Since the 2025 fix "userfaultfd: prevent unregistering VMAs through
	 * a different userfaultfd" the kernel refuses this with EINVAL;
	 * before it, any uffd could unregister any range.
	 */
	CHECK_RET(upager_ll_unregister(fd2, a, 2 * pg), -EINVAL);
	CHECK_RET(upager_ll_register(fd2, a, pg, MISSING, NULL), -EBUSY);
	CHECK_RET(upager_ll_unregister(fd, a, 2 * pg), 0);
	CHECK_RET(upager_ll_register(fd2, a, 2 * pg, MISSING, NULL), 0);
	CHECK_RET(upager_ll_unregister(fd2, a, 2 * pg), 0);

	/*
	 * Holes: the kernel walks the VMAs inside the range and never checks
	 * that they are contiguous, so a range with an unmapped page in the
	 * middle is registered around it (both sides are now owned).
	 */
	CHECK(munmap(h + pg, pg) == 0, "munmap: %s", strerror(errno));
	CHECK_RET(upager_ll_register(fd, h, 3 * pg, MISSING, NULL), 0);
	CHECK_RET(upager_ll_register(fd2, h, pg, MISSING, NULL), -EBUSY);
	CHECK_RET(upager_ll_register(fd2, h + 2 * pg, pg, MISSING, NULL),
		  -EBUSY);
	CHECK_RET(upager_ll_unregister(fd, h, 3 * pg), 0);
	/*
	 * Nothing mapped at all: vma_find() finds no VMA in [start, end) and
	 * the kernel says EINVAL.  (Kernels before the maple tree, < 6.1,
	 * said ENOMEM when no VMA followed start at all.)
	 */
	CHECK(munmap(h, 3 * pg) == 0, "munmap: %s", strerror(errno));
	CHECK_RET(upager_ll_register(fd, h, 3 * pg, MISSING, NULL), -EINVAL);
	CHECK_RET(upager_ll_register(fd, h + pg, pg, MISSING, NULL), -EINVAL);

	/* munmap() of the already unmapped tail is harmless. */
	t_mem_unmap(&m);
	close(fd2);
	close(fd);
	return 0;
}
