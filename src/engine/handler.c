// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Handlers: one uffd, the region table, and the threads that serve it.
 *
 * A worker reads a batch of messages in one read(2), resolves each under
 * the table's read lock, and wakes once per merged range when the batch
 * had more than one fault.  It polls only after a read found nothing, so
 * a busy worker costs one syscall per batch plus the installs.
 *
 * Between batches workers fill read-ahead jobs from a shared ring: the
 * rest of a window whose first chunk the faulting worker filled, and the
 * window after it.  Faults come first: a worker reads the uffd again
 * after each job.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/engine.h"
#include "base/util.h"

static void default_on_error(void *arg, struct upager_region *r,
			     uint64_t addr, int err, const char *what)
{
	(void)arg;
	fprintf(stderr, "upager: %s at %#llx%s: %s\n", what,
		(unsigned long long)addr, r ? "" : " (no region)",
		strerror(-err));
}

/* The features this kernel offers, from a descriptor of our own. */
static int kernel_features(uint64_t *features)
{
	struct upager_ll_api_info info;
	int fd = upager_ll_open(0, NULL), ret;

	if (fd < 0)
		return fd;
	ret = upager_ll_api(fd, 0, &info);
	close(fd);
	*features = info.features;
	return ret;
}

static int open_uffd(uint64_t features)
{
	int fd = upager_ll_open(UPAGER_LL_NONBLOCK, NULL), ret;

	if (fd < 0)
		return fd;
	ret = upager_ll_api(fd, features, NULL);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

/* What a handler asks for, when the kernel has it. */
#define HANDLER_FEATURES                                                   \
	(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MISSING_HUGETLBFS |     \
	 UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_MINOR_HUGETLBFS |         \
	 UFFD_FEATURE_POISON | UFFD_FEATURE_MOVE)

struct upager_handler *upager_handler_new(const struct upager_handler_params *params,
					  int *err)
{
	struct upager_handler_params p = { .size = sizeof(p) };
	struct upager_handler *h;
	pthread_rwlockattr_t attr;
	long ncpu;
	int ret;

	if (params)
		memcpy(&p, params,
		       params->size < sizeof(p) ? params->size : sizeof(p));
	h = calloc(1, sizeof(*h));
	if (!h) {
		ret = -ENOMEM;
		goto fail;
	}
	h->uffd = h->sig_uffd = h->stopfd = h->workfd = -1;
	h->retired = &h->retired_own;
	ret = kernel_features(&h->features);
	if (ret < 0)
		goto fail;
	h->features &= HANDLER_FEATURES;
	h->uffd = open_uffd(h->features);
	if (h->uffd < 0) {
		ret = h->uffd;
		goto fail;
	}
	h->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	h->workfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->stopfd < 0 || h->workfd < 0) {
		ret = -errno;
		goto fail;
	}
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	h->nthreads = p.threads ? p.threads
				: (unsigned int)(ncpu < 1 ? 1 : ncpu > 4 ? 4 : ncpu);
	h->batch = p.batch ? p.batch : 32;
	if (h->batch > 64)
		h->batch = 64;
	h->on_error = p.on_error ? p.on_error : default_on_error;
	h->error_arg = p.error_arg;
	/* A writer (map/unmap) must not starve behind a stream of batches. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&h->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&h->run_lock, NULL);
	pthread_cond_init(&h->run_cond, NULL);
	pthread_mutex_init(&h->job_lock, NULL);
	if (p.stats_name) {
		ret = stats_publish_open(h, p.stats_name);
		if (ret < 0) {
			upager_handler_free(h);
			h = NULL;
			goto fail;
		}
	}
	return h;
fail:
	if (h) {
		if (h->uffd >= 0)
			close(h->uffd);
		if (h->stopfd >= 0)
			close(h->stopfd);
		if (h->workfd >= 0)
			close(h->workfd);
		free(h);
	}
	if (err)
		*err = ret;
	return NULL;
}

int handler_sig_uffd(struct upager_handler *h)
{
	int fd;

	pthread_mutex_lock(&h->run_lock);
	if (h->sig_uffd < 0) {
		fd = open_uffd(h->features | UFFD_FEATURE_SIGBUS);
		if (fd >= 0)
			h->sig_uffd = fd;
	}
	fd = h->sig_uffd;
	pthread_mutex_unlock(&h->run_lock);
	return fd;
}

int upager_handler_fd(struct upager_handler *h)
{
	return h->uffd;
}

/* ---- the region table -------------------------------------------------- */

/* Caller holds h->lock (either way). */
struct upager_region *handler_lookup(struct upager_handler *h, uint64_t addr)
{
	size_t lo = 0, hi = h->nregions;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct upager_region *r = h->regions[mid];

		if (addr < (uintptr_t)r->addr)
			hi = mid;
		else if (addr >= (uintptr_t)r->addr + r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

int handler_add_region(struct upager_handler *h, struct upager_region *r)
{
	size_t i;

	pthread_rwlock_wrlock(&h->lock);
	if (h->nregions == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 8;
		void *n = realloc(h->regions, cap * sizeof(*h->regions));

		if (!n) {
			pthread_rwlock_unlock(&h->lock);
			return -ENOMEM;
		}
		h->regions = n;
		h->cap = cap;
	}
	for (i = h->nregions; i > 0 && h->regions[i - 1]->addr > r->addr; i--)
		h->regions[i] = h->regions[i - 1];
	h->regions[i] = r;
	h->nregions++;
	pthread_rwlock_unlock(&h->lock);
	return 0;
}

/* ---- read-ahead jobs ---------------------------------------------------- */

/*
 * Queue units [u, u+n) of @r, claimed by the caller, for any worker.
 * False when the ring is full: the caller fills them itself.
 */
bool handler_queue(struct upager_handler *h, struct upager_region *r,
		   size_t u, size_t n)
{
	uint64_t one = 1;
	unsigned int k;

	pthread_mutex_lock(&h->job_lock);
	k = atomic_load_explicit(&h->njobs, memory_order_relaxed);
	if (k == RA_JOBS) {
		pthread_mutex_unlock(&h->job_lock);
		return false;
	}
	h->jobs[(h->job_head + k) % RA_JOBS] = (struct ra_job){ r, u, n };
	atomic_store_explicit(&h->njobs, k + 1, memory_order_relaxed);
	pthread_mutex_unlock(&h->job_lock);
	/* Wakes one idle worker; a busy one finds the job after its batch. */
	if (write(h->workfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		h->on_error(h->error_arg, r, 0, -errno, "waking a worker");
	return true;
}

static bool job_pop(struct upager_handler *h, struct ra_job *j)
{
	bool got = false;

	pthread_mutex_lock(&h->job_lock);
	if (h->njobs) {
		*j = h->jobs[h->job_head];
		h->job_head = (h->job_head + 1) % RA_JOBS;
		atomic_store_explicit(&h->njobs, h->njobs - 1,
				      memory_order_relaxed);
		got = true;
	}
	pthread_mutex_unlock(&h->job_lock);
	return got;
}

/* Drop @r's queued jobs (caller holds h->lock for writing). */
static void job_purge(struct upager_handler *h, struct upager_region *r)
{
	unsigned int kept = 0, n;

	pthread_mutex_lock(&h->job_lock);
	n = h->njobs;
	for (unsigned int i = 0; i < n; i++) {
		struct ra_job j = h->jobs[(h->job_head + i) % RA_JOBS];

		if (j.r != r)
			h->jobs[(h->job_head + kept++) % RA_JOBS] = j;
	}
	atomic_store_explicit(&h->njobs, kept, memory_order_relaxed);
	pthread_mutex_unlock(&h->job_lock);
}

void handler_remove_region(struct upager_handler *h, struct upager_region *r)
{
	pthread_rwlock_wrlock(&h->lock);
	job_purge(h, r);
	for (size_t i = 0; i < h->nregions; i++) {
		if (h->regions[i] != r)
			continue;
		memmove(&h->regions[i], &h->regions[i + 1],
			(h->nregions - i - 1) * sizeof(*h->regions));
		h->nregions--;
		break;
	}
	stats_add(h->retired, r->st);
	pthread_rwlock_unlock(&h->lock);
}

/* ---- serving ----------------------------------------------------------- */

static void on_event(struct upager_handler *h, struct filler *f,
		     const struct uffd_msg *m, struct upager_region *r,
		     uint64_t t0)
{
	uint64_t addr = m->arg.pagefault.address;

	if (m->event != UFFD_EVENT_PAGEFAULT)
		return; /* no non-cooperative events are asked for */
	if (!r) {
		/*
		 * Only a region being unmapped can fault here without an
		 * entry; waking lets the thread retry once it is gone.
		 */
		STAT_ADD(h->retired, faults_stray, 1);
		h->on_error(h->error_arg, NULL, addr, -EFAULT,
			    "fault outside every region");
		upager_ll_wake(h->uffd,
			       (void *)(uintptr_t)(addr & ~(uint64_t)4095),
			       4096);
		return;
	}
	region_fault(r, f, addr,
		     m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR, t0);
}

/* Resolve a batch of @n messages under the table's read lock. */
static void serve_batch(struct upager_handler *h, struct filler *f,
			const struct uffd_msg *msgs, int n)
{
	uint64_t t0 = now_ns();

	f->dontwake = n > 1;
	pthread_rwlock_rdlock(&h->lock);
	for (int i = 0; i < n; i++) {
		struct upager_region *r =
			handler_lookup(h, msgs[i].arg.pagefault.address);
		size_t need = r ? r->ra_max * r->fill : 0;

		if (need > f->cap && filler_reserve(f, need) < 0 && r &&
		    r->fill > f->cap)
			filler_reserve(f, r->fill);
		on_event(h, f, &msgs[i], r, t0);
	}
	pthread_rwlock_unlock(&h->lock);
	filler_flush(f);
}

/* Fill one queued read-ahead job; false when there was none. */
static bool serve_job(struct upager_handler *h, struct filler *f)
{
	struct ra_job j;

	if (!atomic_load_explicit(&h->njobs, memory_order_relaxed))
		return false;
	pthread_rwlock_rdlock(&h->lock);
	/* Popped under the lock: an unmap purges the region's jobs first. */
	if (!job_pop(h, &j)) {
		pthread_rwlock_unlock(&h->lock);
		return false;
	}
	f->dontwake = false;
	if (j.n * j.r->fill > f->cap)
		filler_reserve(f, j.n * j.r->fill);
	region_job(j.r, f, j.u, j.n);
	pthread_rwlock_unlock(&h->lock);
	return true;
}

static int epoll_add(int ep, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/*
 * Serve until the stop eventfd fires.  The staging buffer is sized for the
 * largest read-ahead window of any region and grown on demand.
 */
static int serve(struct upager_handler *h)
{
	struct uffd_msg msgs[64];
	struct filler f = { .worker = true };
	bool drained = true;
	int ret = 0, ep;

	/*
	 * Each server waits in an epoll set of its own with the uffd and the
	 * job doorbell added EPOLLEXCLUSIVE: one fault or one job wakes one
	 * worker, not all of them (a herd costs a context switch per idle
	 * worker).  The stop eventfd is not exclusive: stopping wakes all.
	 */
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return -errno;
	if (epoll_add(ep, h->uffd, EPOLLIN | EPOLLEXCLUSIVE) < 0 ||
	    epoll_add(ep, h->workfd, EPOLLIN | EPOLLEXCLUSIVE) < 0 ||
	    epoll_add(ep, h->stopfd, EPOLLIN) < 0) {
		ret = -errno;
		close(ep);
		return ret;
	}
	for (;;) {
		struct epoll_event ev;
		uint64_t count;
		int n;

		if (atomic_load_explicit(&h->stopping, memory_order_relaxed))
			break;
		/*
		 * A read that returned less than a full batch emptied the
		 * queue: with no job either, wait in epoll rather than pay
		 * for a read that finds nothing.  After a full batch, or a
		 * job, read again at once.
		 */
		if (drained && !atomic_load_explicit(&h->njobs,
						     memory_order_relaxed)) {
			n = epoll_wait(ep, &ev, 1, -1);
			if (n < 0 && errno != EINTR) {
				ret = -errno;
				break;
			}
			if (n > 0 && ev.data.fd == h->stopfd)
				break;
			/* The doorbell only wakes: the ring holds the jobs. */
			if (n > 0 && ev.data.fd == h->workfd &&
			    read(h->workfd, &count, sizeof(count)) < 0 &&
			    errno != EAGAIN) {
				ret = -errno;
				break;
			}
		}
		n = upager_ll_read(h->uffd, msgs, h->batch);
		if (n == -EAGAIN || n == -EINTR) {
			drained = true;
			serve_job(h, &f);
			continue;
		}
		if (n < 0) {
			ret = n;
			h->on_error(h->error_arg, NULL, 0, n,
				    "reading the userfaultfd");
			break;
		}
		drained = (unsigned int)n < h->batch;
		serve_batch(h, &f, msgs, n);
		serve_job(h, &f);
	}
	if (f.buf)
		munmap(f.buf, f.cap);
	close(ep);
	return ret;
}

static void *worker_main(void *arg)
{
	serve(arg);
	return NULL;
}

int upager_handler_run(struct upager_handler *h)
{
	int ret;

	pthread_mutex_lock(&h->run_lock);
	h->runners++;
	pthread_mutex_unlock(&h->run_lock);
	ret = serve(h);
	pthread_mutex_lock(&h->run_lock);
	h->runners--;
	pthread_cond_broadcast(&h->run_cond);
	pthread_mutex_unlock(&h->run_lock);
	return ret;
}

int upager_handler_start(struct upager_handler *h)
{
	int ret = 0;

	pthread_mutex_lock(&h->run_lock);
	if (h->running) {
		pthread_mutex_unlock(&h->run_lock);
		return -EALREADY;
	}
	h->threads = calloc(h->nthreads, sizeof(*h->threads));
	if (!h->threads) {
		pthread_mutex_unlock(&h->run_lock);
		return -ENOMEM;
	}
	for (; h->running < h->nthreads; h->running++) {
		ret = -pthread_create(&h->threads[h->running], NULL,
				      worker_main, h);
		if (ret)
			break;
	}
	pthread_mutex_unlock(&h->run_lock);
	if (ret)
		upager_handler_stop(h);
	return ret;
}

int upager_handler_stop(struct upager_handler *h)
{
	uint64_t one = 1, drain;
	int ret = 0;

	pthread_mutex_lock(&h->run_lock);
	/*
	 * The flag stops a server that never finds its queue empty; the
	 * eventfd wakes one blocked in poll().  Both stay set until every
	 * worker and every run() caller has returned.
	 */
	atomic_store(&h->stopping, true);
	if (write(h->stopfd, &one, sizeof(one)) != sizeof(one))
		ret = -errno;
	for (unsigned int i = 0; i < h->running; i++)
		pthread_join(h->threads[i], NULL);
	h->running = 0;
	free(h->threads);
	h->threads = NULL;
	while (h->runners)
		pthread_cond_wait(&h->run_cond, &h->run_lock);
	if (read(h->stopfd, &drain, sizeof(drain)) < 0 && errno != EAGAIN &&
	    !ret)
		ret = -errno;
	atomic_store(&h->stopping, false);
	pthread_mutex_unlock(&h->run_lock);
	return ret;
}

void upager_handler_free(struct upager_handler *h)
{
	if (!h)
		return;
	upager_handler_stop(h);
	while (h->nregions)
		upager_unmap(h->regions[h->nregions - 1]);
	stats_publish_close(h);
	close(h->uffd);
	if (h->sig_uffd >= 0)
		close(h->sig_uffd);
	close(h->stopfd);
	close(h->workfd);
	pthread_rwlock_destroy(&h->lock);
	pthread_mutex_destroy(&h->job_lock);
	pthread_mutex_destroy(&h->run_lock);
	pthread_cond_destroy(&h->run_cond);
	free(h->regions);
	free(h);
}

void upager_handler_stats(struct upager_handler *h, struct upager_stats *s)
{
	struct upager_stats one;

	pthread_rwlock_rdlock(&h->lock);
	stats_read(h->retired, s);
	for (size_t i = 0; i < h->nregions; i++) {
		stats_read(h->regions[i]->st, &one);
		stats_add(s, &one);
	}
	pthread_rwlock_unlock(&h->lock);
}
