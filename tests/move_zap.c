// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A kernel reproducer, not a test of upager (not in tests/TESTS: when it
 * reproduces, a thread is left spinning in the kernel until the process
 * dies): UFFDIO_MOVE out of a range that MADV_DONTNEED is zapping at the
 * same moment does not come back.
 *
 * The setting is upager's eviction (src/engine/evict.c): a region of
 * private anonymous memory registered MISSING on uffd A, which has
 * EVENT_REMOVE and a thread reading it; a sink registered MISSING on
 * uffd B, which has no events.  One thread fills the region (UFFDIO_COPY
 * on A), moves its pages into the sink (UFFDIO_MOVE on B, source holes
 * allowed) and back (UFFDIO_MOVE on A), in a loop; another drops the
 * region with MADV_DONTNEED in a loop: its REMOVE is read by A's thread,
 * then the kernel zaps the range, beside the moves.
 *
 * Seen on 6.18 (2 vCPUs): the move never returns (8 runs of 8, within a
 * second or two); the thread spins in the kernel, in move_pages() and
 * move_pages_ptes() taking and dropping the page-table lock (perf), with
 * a CPU to itself until a fatal signal.  With MOVE_ZAP_APART=1 the moves
 * take the first half of the range and the zaps the second, in the same
 * page table: no hang (3 runs of 10 s): the hazard is the same pages.
 * The watchdog reports a hang ("FAIL watchdog") and ends the process,
 * exit status 1; 0 when every move returned for MOVE_ZAP_SECONDS
 * (default 10).
 *
 *   build/tests/move_zap
 */
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define PG 4096ul
#define NPAGES 16

struct run {
	char *region, *sink, *data;
	size_t moved, zapped; /* [0, moved) moves, [zapped, NPAGES) zaps */
	int a, b;
	atomic_bool stop;
	atomic_ulong moves, zaps, removes, calls;
	atomic_int tid; /* the mover's */
};

/* A's reader: REMOVEs are only counted; a fault gets a zero page. */
static void on_event(struct t_handler *h, const struct upager_ll_event *ev)
{
	struct run *r = t_handler_arg(h);
	uintptr_t page;
	size_t done;

	if (ev->kind == UPAGER_LL_EVENT_REMOVE) {
		atomic_fetch_add(&r->removes, 1);
		return;
	}
	if (ev->kind != UPAGER_LL_EVENT_PAGEFAULT)
		return;
	page = ev->pagefault.address & ~(PG - 1);
	upager_ll_zeropage(r->a, (void *)page, PG, 0, &done);
}

/*
 * Move [src, src+len) to dst through @fd, holes allowed, until all of it
 * was looked at: -EAGAIN with progress is a short move (resume after
 * it), without is an event pending on the source's uffd (try again).
 */
static void move_all(struct run *r, struct t_watch *w, int fd, char *dst,
		     char *src, size_t len)
{
	for (size_t off = 0; off < len && !atomic_load(&r->stop);) {
		size_t done = 0;
		int ret;

		t_watch_begin(w, 0);
		ret = upager_ll_move(fd, dst + off, src + off, len - off,
				     UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &done);
		t_watch_end(w, 0);
		atomic_fetch_add(&r->calls, 1);
		off += done;
		if (ret == 0)
			break;
		if (ret == -EEXIST) /* filled meanwhile: leave that page */
			off += PG;
		else if (ret != -EAGAIN)
			FAIL("UFFDIO_MOVE: %s", strerror(-ret));
		else if (!done) /* for A's reader */
			sched_yield();
	}
}

/*
 * Where the mover is: its calls of UFFDIO_MOVE not counting up over
 * 100 ms, and its system time growing, say one call spins in the kernel
 * (not a loop of -EAGAIN in ours).
 */
static void told(void *arg)
{
	struct run *r = arg;
	unsigned long calls = atomic_load(&r->calls);
	char path[64], line[512];
	FILE *f;

	fprintf(stderr,
		"after %lu rounds of moves, %lu zaps (%lu REMOVEs read)\n",
		atomic_load(&r->moves), atomic_load(&r->zaps),
		atomic_load(&r->removes));
	for (int i = 0; i < 2; i++) {
		if (i)
			usleep(100 * 1000);
		snprintf(path, sizeof(path), "/proc/self/task/%d/stat",
			 atomic_load(&r->tid));
		f = fopen(path, "r");
		if (f && fgets(line, sizeof(line), f)) {
			unsigned long ut = 0, st = 0;
			char state = '?', *p = strrchr(line, ')');

			if (p)
				sscanf(p + 2, "%c %*s %*s %*s %*s %*s %*s %*s "
					      "%*s %*s %*s %lu %lu",
				       &state, &ut, &st);
			fprintf(stderr,
				"mover: state %c, utime %lu stime %lu ticks, "
				"%lu UFFDIO_MOVE calls returned\n",
				state, ut, st, atomic_load(&r->calls));
		}
		if (f)
			fclose(f);
	}
	if (atomic_load(&r->calls) == calls)
		fprintf(stderr, "one UFFDIO_MOVE has not returned\n");
}

static void *mover(void *arg)
{
	struct run *r = arg;
	struct t_watch *w = t_watch_new(1, 3000,
					"UFFDIO_MOVE beside MADV_DONTNEED did "
					"not return in 3 s",
					told, r);

	atomic_store(&r->tid, gettid());
	while (!atomic_load(&r->stop)) {
		size_t done;
		int ret;

		for (size_t off = 0; off < NPAGES * PG; off += PG) {
			ret = upager_ll_copy(r->a, r->region + off,
					     r->data + off, PG, 0, &done);
			if (ret && ret != -EEXIST && ret != -EAGAIN)
				FAIL("UFFDIO_COPY: %s", strerror(-ret));
		}
		move_all(r, w, r->b, r->sink, r->region, r->moved * PG);
		move_all(r, w, r->a, r->region, r->sink, r->moved * PG);
		/* What could not go back (the region was filled first). */
		madvise(r->sink, NPAGES * PG, MADV_DONTNEED);
		atomic_fetch_add(&r->moves, 1);
	}
	t_watch_free(w);
	return NULL;
}

static void *zapper(void *arg)
{
	struct run *r = arg;

	while (!atomic_load(&r->stop)) {
		if (madvise(r->region + r->zapped * PG,
			    (NPAGES - r->zapped) * PG, MADV_DONTNEED) < 0)
			FAIL("madvise: %s", strerror(errno));
		atomic_fetch_add(&r->zaps, 1);
	}
	return NULL;
}

int main(void)
{
	const char *env = getenv("MOVE_ZAP_SECONDS");
	unsigned int secs = env ? (unsigned int)atoi(env) : 10;
	struct run r = {0};
	struct t_handler *h;
	pthread_t tm, tz;
	uint64_t ioctls;

	if (getenv("MOVE_ZAP_APART")) {
		r.moved = NPAGES / 2;
		r.zapped = NPAGES / 2;
	} else {
		r.moved = NPAGES;
	}
	r.a = t_uffd(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_MOVE,
		     UPAGER_LL_NONBLOCK);
	r.b = t_uffd(UFFD_FEATURE_MOVE, UPAGER_LL_NONBLOCK);
	r.region = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	r.sink = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	r.data = malloc(NPAGES * PG);
	CHECK(r.region != MAP_FAILED && r.sink != MAP_FAILED && r.data,
	      "mmap");
	/* Small pages, as upager's units: no THP to split. */
	madvise(r.region, NPAGES * PG, MADV_NOHUGEPAGE);
	madvise(r.sink, NPAGES * PG, MADV_NOHUGEPAGE);
	t_fill(r.data, NPAGES * PG, 1);
	CHECK_RET(upager_ll_register(r.a, r.region, NPAGES * PG,
				     UFFDIO_REGISTER_MODE_MISSING, &ioctls),
		  0);
	t_need_ioctls(ioctls, 1ull << _UFFDIO_MOVE, "the region");
	CHECK_RET(upager_ll_register(r.b, r.sink, NPAGES * PG,
				     UFFDIO_REGISTER_MODE_MISSING, &ioctls),
		  0);
	h = t_handler_start(r.a, on_event, &r);
	CHECK(!pthread_create(&tm, NULL, mover, &r) &&
		      !pthread_create(&tz, NULL, zapper, &r),
	      "pthread_create");
	sleep(secs);
	atomic_store(&r.stop, true);
	pthread_join(tm, NULL);
	pthread_join(tz, NULL);
	t_handler_stop(h);
	printf("%u s: %lu rounds of moves, %lu zaps (%lu REMOVEs read), no "
	       "hang\n",
	       secs, atomic_load(&r.moves), atomic_load(&r.zaps),
	       atomic_load(&r.removes));
	return 0;
}
