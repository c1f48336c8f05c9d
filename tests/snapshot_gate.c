// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Snapshots while the program writes and drops pages, on a handler with
 * one worker.  The snapshot holds the region's gate for writing while it
 * write-protects the region; an event queued meanwhile (the program's
 * MADV_DONTNEED) makes that protection answer EAGAIN until a worker
 * reads it, and the only worker may be waiting on the gate's read side
 * for a write fault.  Every snapshot must still succeed: upager.h's
 * -EAGAIN is for a map that kept changing for a second or more, and one
 * thread dropping one page leaves it still between two of its drops
 * (two threads dropping throughout did make it -EAGAIN, once in 24
 * runs).  Stops at the first failure (each can take seconds).
 * Prints the longest the gate was held (held_ns) and the longest single
 * write, for the record only: both depend on when the dropper leaves
 * the map still, and no bound on them holds on a busy machine.
 * T_SNAPS: how many (default 6).
 *
 * Runs on anon and shmem (argv[1]).
 */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG    4096
#define LEN   (32u << 20)

struct load {
	char *p;
	atomic_bool stop;
	_Atomic uint64_t worst_ns; /* the longest single write */
	atomic_ulong drops;
};

static void *writer(void *arg)
{
	struct load *l = arg;

	for (size_t off = 0; !atomic_load(&l->stop);
	     off = (off + PG) % (LEN - (1u << 20))) {
		uint64_t t0 = t_now_ns(), d;

		l->p[off]++;
		d = t_now_ns() - t0;
		if (d > atomic_load(&l->worst_ns))
			atomic_store(&l->worst_ns, d);
	}
	return NULL;
}

static void *dropper(void *arg)
{
	struct load *l = arg;

	while (!atomic_load(&l->stop)) {
		CHECK_RET(madvise(l->p + LEN - PG, PG, MADV_DONTNEED), 0);
		atomic_fetch_add(&l->drops, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .flags = UPAGER_MAP_TRACK_WRITES};
	struct upager_handler *h = t_upager_handler(1, NULL, NULL);
	struct upager_store *s, *dst;
	struct upager_region *r;
	struct load l = {0};
	pthread_t tw, td;
	int err, bad = 0, first = 0, done = 0;
	/* Each can take seconds here, tens under TSan: CI's take fewer. */
	int snaps = getenv("T_SNAPS") ? atoi(getenv("T_SNAPS")) : 6;
	uint64_t worst_snap = 0, worst_held = 0;

	s = upager_store_mem_new(LEN, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	dst = upager_store_mem_new(LEN, &err);
	CHECK(dst, "mem store: %s", strerror(-err));
	l.p = upager_map(h, s, LEN, &mp, &r, &err);
	if (!l.p && err == -EOPNOTSUPP)
		SKIP("write tracking needs UFFD_FEATURE_PAGEFAULT_FLAG_WP");
	CHECK(l.p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(!pthread_create(&tw, NULL, writer, &l), "thread");
	CHECK(!pthread_create(&td, NULL, dropper, &l), "thread");
	for (int i = 0; i < snaps; i++) {
		uint64_t t0 = t_now_ns(), d;
		struct upager_snapshot_info in = {.size = sizeof(in)};
		int ret = upager_region_snapshot(r, dst, 0, &in);

		d = t_now_ns() - t0;
		done++;
		if (d > worst_snap)
			worst_snap = d;
		if (in.held_ns > worst_held)
			worst_held = in.held_ns;
		if (ret < 0) {
			bad++;
			if (!first)
				first = ret;
			break; /* a failure can take seconds: one is enough */
		}
	}
	atomic_store(&l.stop, true);
	pthread_join(tw, NULL);
	pthread_join(td, NULL);
	printf("%d snapshots, %d failed (first: %s), %lu drops; longest "
	       "snapshot %.1f ms (gate held %.2f ms), longest write %.1f ms\n",
	       done, bad, first ? strerror(-first) : "none",
	       atomic_load(&l.drops), worst_snap / 1e6, worst_held / 1e6,
	       atomic_load(&l.worst_ns) / 1e6);
	CHECK(!bad, "%d of %d snapshots failed, the first with %s", bad, done,
	      strerror(-first));
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	upager_store_close(dst);
	return 0;
}
