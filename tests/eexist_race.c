// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Two resolvers race to UFFDIO_COPY the same page, page after page, while
 * a reader thread faults on it.  Each time exactly one COPY wins (0, the
 * whole page done) and the other gets -EEXIST with done 0, and the reader
 * sees exactly the winner's pattern, never a mix and never the loser's.
 */
#include <pthread.h>
#include <unistd.h>

#include "harness.h"

enum { A, B, READER, NTHREADS };

struct race {
	struct t_mem *m;
	int fd;
	size_t npages;
	pthread_barrier_t start, end;
	int ret[2];
	size_t done[2];
	char *src[2];
};

/* Resolver @who's pattern for page @i. */
static uint64_t seed(size_t i, int who)
{
	return i * 2 + (uint64_t)who + 1;
}

struct resolver {
	struct race *r;
	int who;
};

static void *resolver_main(void *p)
{
	struct resolver *rs = p;
	struct race *r = rs->r;
	size_t pg = r->m->page;

	for (size_t i = 0; i < r->npages; i++) {
		t_fill(r->src[rs->who], pg, seed(i, rs->who));
		pthread_barrier_wait(&r->start);
		r->ret[rs->who] = upager_ll_copy(r->fd, r->m->addr + i * pg,
						 r->src[rs->who], pg, 0,
						 &r->done[rs->who]);
		pthread_barrier_wait(&r->end);
	}
	return NULL;
}

static void *reader_main(void *p)
{
	struct race *r = p;
	size_t pg = r->m->page;
	unsigned long wins[2] = { 0, 0 };

	for (size_t i = 0; i < r->npages; i++) {
		volatile char *page = r->m->addr + i * pg;
		int w;

		pthread_barrier_wait(&r->start);
		/* Fault (or not, if a resolver was quicker) and block. */
		(void)page[pg / 2];
		pthread_barrier_wait(&r->end);

		CHECK((r->ret[A] == 0) != (r->ret[B] == 0),
		      "page %zu: results %d and %d", i, r->ret[A], r->ret[B]);
		w = r->ret[A] == 0 ? A : B;
		wins[w]++;
		CHECK_RET(r->ret[!w], -EEXIST);
		CHECK(r->done[w] == pg && r->done[!w] == 0,
		      "page %zu: done %zu / %zu", i, r->done[w], r->done[!w]);
		CHECK(t_verify(r->m->addr + i * pg, pg, seed(i, w)),
		      "page %zu: not resolver %c's content", i, 'A' + w);
	}
	fprintf(stderr, "%zu pages: A won %lu, B won %lu\n", r->npages,
		wins[A], wins[B]);
	return NULL;
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);
	struct t_mem m;
	struct race r = { .m = &m };
	struct resolver rs[2] = { { &r, A }, { &r, B } };
	pthread_t th[NTHREADS];

	r.npages = type == UPAGER_LL_MEM_HUGETLB ? 32 : 2000;
	r.fd = t_uffd(t_features_missing(type), 0);
	t_mem_map(&m, type, r.npages);
	CHECK_RET(upager_ll_register(r.fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_MISSING, NULL),
		  0);
	for (int i = 0; i < 2; i++) {
		r.src[i] = aligned_alloc(m.page, m.page);
		CHECK(r.src[i] != NULL, "aligned_alloc");
	}
	pthread_barrier_init(&r.start, NULL, NTHREADS);
	pthread_barrier_init(&r.end, NULL, NTHREADS);

	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, resolver_main, &rs[i]) == 0,
		      "pthread_create");
	CHECK(pthread_create(&th[READER], NULL, reader_main, &r) == 0,
	      "pthread_create");
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);

	pthread_barrier_destroy(&r.start);
	pthread_barrier_destroy(&r.end);
	free(r.src[A]);
	free(r.src[B]);
	t_mem_unmap(&m);
	close(r.fd);
	return 0;
}
