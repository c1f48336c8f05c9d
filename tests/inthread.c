// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread mode (UPAGER_MAP_IN_THREAD) with no worker ever started: the
 * faulting thread fills its own page from upager's SIGBUS handler.
 *
 * - four threads read every page of a region over a mem store, each in
 *   its own order, so they also meet on units: every page holds the
 *   store's pattern, every fault was resolved in-thread
 *   (faults_inthread == faults) and every page was filled once;
 * - a fault the kernel takes in kernel mode raises no SIGBUS: read(2)
 *   from a pipe into a missing page, and write(2) from one, fail with
 *   EFAULT (as upager.h documents); after upager_region_prefault() the
 *   same calls work and the rest of the page holds the store's data;
 * - a SIGBUS that is not a missing page of an upager region (a mapping
 *   of a file past its end) reaches the handler the program installed
 *   before the first in-thread region, with its address and BUS_ADRERR,
 *   while in-thread faults never reach it.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <upager/upager.h>

#include "harness.h"

#define PG 4096
#define NAPP 4

static struct {
	sigjmp_buf jmp;
	volatile sig_atomic_t calls;
	void *volatile addr;
	volatile int code;
} mine;

static void my_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	mine.calls++;
	mine.addr = si->si_addr;
	mine.code = si->si_code;
	siglongjmp(mine.jmp, 1);
}

struct app {
	const char *p;
	size_t npages;
	unsigned int k;
	pthread_t t;
};

static void *app_main(void *arg)
{
	struct app *a = arg;

	/* Thread k starts at its own quarter and strides by a prime. */
	for (size_t n = 0; n < a->npages; n++) {
		size_t i = (a->k * a->npages / NAPP + n * 7) % a->npages;

		CHECK(t_verify(a->p + i * PG, PG, i), "thread %u: page %zu",
		      a->k, i);
	}
	return NULL;
}

static void syscalls(struct upager_region *r, char *p, size_t fill)
{
	char ref[PG], msg[100];
	size_t k = upager_region_len(r) / PG - 1; /* untouched so far */
	int fd[2];

	memset(msg, 0x5a, sizeof(msg));
	CHECK(pipe(fd) == 0, "pipe: %s", strerror(errno));
	CHECK(write(fd[1], msg, sizeof(msg)) == sizeof(msg), "write(2)");
	errno = 0;
	CHECK(read(fd[0], p + k * PG, sizeof(msg)) < 0 && errno == EFAULT,
	      "read(2) into a missing page: %s", strerror(errno));
	errno = 0;
	CHECK(write(fd[1], p + k * PG, sizeof(msg)) < 0 && errno == EFAULT,
	      "write(2) from a missing page: %s", strerror(errno));

	CHECK_RET(upager_region_prefault(r, k * PG / fill * fill, fill), 0);
	CHECK(read(fd[0], p + k * PG, sizeof(msg)) == sizeof(msg),
	      "read(2) into a prefaulted page: %s", strerror(errno));
	CHECK(!memcmp(p + k * PG, msg, sizeof(msg)), "read(2) data");
	t_fill(ref, PG, k);
	CHECK(!memcmp(p + k * PG + sizeof(msg), ref + sizeof(msg),
		      PG - sizeof(msg)),
	      "the rest of the prefaulted page");
	CHECK(write(fd[1], p + k * PG, PG) == PG, "write(2) from it: %s",
	      strerror(errno));
	close(fd[0]);
	close(fd[1]);
}

static void chain(void)
{
	char path[] = "/tmp/upager-inthread-XXXXXX";
	int fd = mkstemp(path);
	volatile char *f;

	CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	CHECK(ftruncate(fd, PG) == 0, "ftruncate: %s", strerror(errno));
	f = mmap(NULL, 2 * PG, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(f != MAP_FAILED, "mmap: %s", strerror(errno));
	(void)f[0];
	if (!sigsetjmp(mine.jmp, 1)) {
		(void)f[PG]; /* past the end of the file */
		FAIL("no SIGBUS past the end of a file");
	}
	CHECK(mine.calls == 1 && mine.addr == (void *)(f + PG) &&
		      mine.code == BUS_ADRERR,
	      "our handler: %d calls, addr %p (want %p), code %d",
	      (int)mine.calls, mine.addr, (void *)(f + PG), mine.code);
	munmap((void *)f, 2 * PG);
	close(fd);
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype t = t_memtype(argc, argv);
	struct sigaction sa = { .sa_sigaction = my_sigbus,
				.sa_flags = SA_SIGINFO };
	struct upager_map_params mp = { .size = sizeof(mp),
					.flags = UPAGER_MAP_IN_THREAD };
	size_t len = 4 << 20;
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	struct upager_stats st;
	struct app apps[NAPP];
	char *img, *p;
	int err;

	if (t == UPAGER_LL_MEM_HUGETLB) {
		struct t_mem m; /* reserves the pages, restored at exit */

		len = 8 << 20;
		t_mem_map(&m, UPAGER_LL_MEM_HUGETLB, len >> 21);
		t_mem_unmap(&m);
		mp.memtype = UPAGER_MEM_HUGETLB;
	}
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGBUS, &sa, NULL) == 0, "sigaction: %s",
	      strerror(errno));

	h = upager_handler_new(NULL, &err);
	CHECK(h, "handler: %s", strerror(-err));
	s = upager_store_mem_new(len, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	img = upager_store_mem_data(s);
	for (size_t i = 0; i < len / PG; i++)
		t_fill(img + i * PG, PG, i);
	/*
	 * Skipped only when the kernel lacks what in-thread mode needs,
	 * asked here without the library: upager_map() also says
	 * -EOPNOTSUPP for reasons of its own, which must fail the test.
	 */
	close(t_uffd(UFFD_FEATURE_SIGBUS | t_features_missing(t), 0));
	p = upager_map(h, s, len, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));

	/* All but the last unit, which syscalls() needs untouched. */
	for (unsigned int k = 0; k < NAPP; k++) {
		apps[k] = (struct app){ .p = p, .k = k,
					.npages = (len - (len >> 2)) / PG };
		CHECK(pthread_create(&apps[k].t, NULL, app_main, &apps[k]) == 0,
		      "pthread_create");
	}
	for (unsigned int k = 0; k < NAPP; k++)
		pthread_join(apps[k].t, NULL);
	CHECK(mine.calls == 0, "our SIGBUS handler saw an in-thread fault");
	upager_region_stats(r, &st);
	CHECK(st.faults_inthread >= 1 && st.faults_inthread == st.faults,
	      "%llu faults, %llu in-thread",
	      (unsigned long long)st.faults,
	      (unsigned long long)st.faults_inthread);
	CHECK(st.pages_filled == (len - (len >> 2)) / PG,
	      "%llu pages filled", (unsigned long long)st.pages_filled);
	CHECK(st.store_errors == 0 && st.ra_pages == 0, "stats");

	syscalls(r, p, t == UPAGER_LL_MEM_HUGETLB ? 2u << 20 : PG);
	chain();

	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	return 0;
}
