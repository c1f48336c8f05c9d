// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Immediate errors of the install calls, with *done == 0 on each: COPY
 * and ZEROPAGE outside any registered range are -ENOENT (WAKE there is 0:
 * it only walks the fd's wait queue); an unaligned dst or a zero length is
 * -EINVAL; an unknown COPY mode bit is -EINVAL; a COPY whose source is
 * unreadable is -EFAULT; ZEROPAGE on hugetlb is -EINVAL (the kernel does
 * not grant it there).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define DONE_POISON ((size_t)0xdeadbeef)

/* Run an install call, expect @want and *done == 0. */
#define CHECK_INSTALL(call, want)                                         \
	do {                                                              \
		done = DONE_POISON;                                       \
		CHECK_RET(call, want);                                    \
		CHECK(done == 0, "%s: done %zu", #call, done);            \
	} while (0)

int main(void)
{
	const uint64_t missing = UFFDIO_REGISTER_MODE_MISSING;
	struct t_mem m, hm;
	char *src, *unreadable, *plain, *gone;
	uint64_t ioctls;
	size_t done;
	int fd = t_uffd(0, 0), hfd;

	t_mem_map(&m, UPAGER_LL_MEM_ANON, 4);
	CHECK_RET(upager_ll_register(fd, m.addr, m.len, missing, NULL), 0);
	src = aligned_alloc(4096, 2 * 4096);
	CHECK(src != NULL, "aligned_alloc");
	t_fill(src, 2 * 4096, 1);
	plain = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unreadable =
		mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(plain != MAP_FAILED && unreadable != MAP_FAILED &&
		      gone != MAP_FAILED,
	      "mmap: %s", strerror(errno));
	CHECK(munmap(gone, 4096) == 0, "munmap");

	/* Mapped but not registered, and not mapped at all. */
	CHECK_INSTALL(upager_ll_copy(fd, plain, src, 4096, 0, &done), -ENOENT);
	CHECK_INSTALL(upager_ll_zeropage(fd, plain, 4096, 0, &done), -ENOENT);
	CHECK_INSTALL(upager_ll_copy(fd, gone, src, 4096, 0, &done), -ENOENT);
	CHECK_INSTALL(upager_ll_zeropage(fd, gone, 4096, 0, &done), -ENOENT);
	/* A range that runs off the end of the registered one. */
	CHECK_INSTALL(upager_ll_copy(fd, m.addr + m.len - 4096, src, 2 * 4096,
				     0, &done), -ENOENT);
	/* WAKE validates the range only; nobody waits there, nothing to do. */
	CHECK_RET(upager_ll_wake(fd, plain, 4096), 0);
	CHECK_RET(upager_ll_wake(fd, gone, 4096), 0);
	CHECK(plain[0] == 0, "unregistered page not zero");

	/* Bad arguments. */
	CHECK_INSTALL(upager_ll_copy(fd, m.addr + 8, src, 4096, 0, &done),
		      -EINVAL);
	CHECK_INSTALL(upager_ll_zeropage(fd, m.addr + 8, 4096, 0, &done),
		      -EINVAL);
	CHECK_RET(upager_ll_wake(fd, m.addr + 8, 4096), -EINVAL);
	CHECK_INSTALL(upager_ll_copy(fd, m.addr, src, 0, 0, &done), -EINVAL);
	CHECK_INSTALL(upager_ll_zeropage(fd, m.addr, 0, 0, &done), -EINVAL);
	CHECK_RET(upager_ll_wake(fd, m.addr, 0), -EINVAL);
	CHECK_INSTALL(upager_ll_copy(fd, m.addr, src, 100, 0, &done), -EINVAL);
	CHECK_INSTALL(upager_ll_copy(fd, m.addr, src, 4096, 1ull << 5, &done),
		      -EINVAL);
	CHECK_INSTALL(upager_ll_zeropage(fd, m.addr, 4096,
					 UFFDIO_ZEROPAGE_MODE_DONTWAKE << 1,
					 &done), -EINVAL);

	/*
	 * An unreadable source: the atomic copy fails, the kernel retries
	 * with a sleeping copy_from_user() outside its locks, and that fails
	 * too.
	 */
	CHECK_INSTALL(upager_ll_copy(fd, m.addr, unreadable, 4096, 0, &done),
		      -EFAULT);
	/* Nothing was installed by any of the above. */
	CHECK_RET(upager_ll_copy(fd, m.addr, src, 2 * 4096, 0, &done), 0);
	CHECK(done == 2 * 4096, "done %zu", done);
	CHECK(t_verify(m.addr, 2 * 4096, 1), "copied pages differ");

	/* hugetlb: ZEROPAGE is not among the ioctls granted, and refused. */
	hfd = t_uffd(UFFD_FEATURE_MISSING_HUGETLBFS, 0);
	t_mem_map(&hm, UPAGER_LL_MEM_HUGETLB, 1);
	CHECK_RET(upager_ll_register(hfd, hm.addr, hm.len, missing, &ioctls),
		  0);
	CHECK(!(ioctls & (1ull << _UFFDIO_ZEROPAGE)),
	      "hugetlb ZEROPAGE granted");
	CHECK_INSTALL(upager_ll_zeropage(hfd, hm.addr, hm.len, 0, &done),
		      -EINVAL);

	t_mem_unmap(&hm);
	close(hfd);
	munmap(plain, 4096);
	munmap(unreadable, 4096);
	free(src);
	t_mem_unmap(&m);
	close(fd);
	return 0;
}
