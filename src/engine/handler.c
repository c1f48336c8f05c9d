// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Handlers: the uffds, the threads that serve them, and the job ring.
 *
 * A worker waits in an epoll set of its own holding every uffd the
 * handler serves (its own process's, and forked children's), reads a
 * batch of messages in one read(2), handles the events in it first and
 * then the faults, and wakes once per merged range when the batch had
 * more than one fault.  It polls only after a read found nothing, so a
 * busy worker costs one syscall per batch plus the installs.
 *
 * Between batches workers fill read-ahead jobs from a shared ring (the
 * rest of a window whose first chunk the faulting worker filled, and the
 * window after it), then batches of regions' prefetch lists.  Faults
 * come first: a worker looks at its uffds again after each job or batch.
 *
 * No lock is held while a region is filled: a fault pins its region
 * (users) under its space's table lock, and unpins it after.  A worker
 * about to wait in a slow store gives up its seat, and a spare worker
 * takes it when no seated one is left (handler_seat()).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/util.h"
#include "engine/engine.h"

/* epoll names: spaces by id (self is 0), the handler's own fds above. */
#define ID_STOP UINT64_MAX
#define ID_WORK (UINT64_MAX - 1)
#define ID_TIMER (UINT64_MAX - 2)
#define ID_LISTEN (UINT64_MAX - 3) /* park_ep: a fault waits, none seated */
#define ID_PIDFD (1ull << 62) /* | a space's id: its process exited */

/* Append @s, or the number @v in @base, to the line at @p. */
static char *put_str(char *p, char *end, const char *s)
{
	while (*s && p < end)
		*p++ = *s++;
	return p;
}

static char *put_num(char *p, char *end, uint64_t v, unsigned int base)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n && p < end)
		*p++ = digits[--n];
	return p;
}

/*
 * One line to stderr, built without stdio or strerror(): the in-thread
 * path reports from a SIGBUS handler, where only async-signal-safe
 * calls may be made (strerrorname_np() reads a constant table).
 */
static void default_on_error(void *arg, struct upager_region *r,
			     uint64_t addr, int err, const char *what)
{
	char line[256], *p = line, *end = line + sizeof(line) - 1;
	const char *name = strerrorname_np(-err);

	(void)arg;
	p = put_str(p, end, "upager: ");
	p = put_str(p, end, what);
	p = put_str(p, end, " at 0x");
	p = put_num(p, end, addr, 16);
	if (!r)
		p = put_str(p, end, " (no region)");
	p = put_str(p, end, ": ");
	if (name) {
		p = put_str(p, end, name);
	} else {
		p = put_str(p, end, "error ");
		p = put_num(p, end, (uint64_t)-(int64_t)err, 10);
	}
	*p++ = '\n';
	if (write(STDERR_FILENO, line, (size_t)(p - line)) < 0)
		return; /* nowhere left to report to */
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
	 UFFD_FEATURE_POISON | UFFD_FEATURE_MOVE |                         \
	 UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_REMAP |            \
	 UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_THREAD_ID |               \
	 UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
/* The in-thread uffd: no events, which no thread would be there to read. */
#define SIGBUS_FEATURES                                                    \
	(UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_POISON |            \
	 UFFD_FEATURE_MOVE | UFFD_FEATURE_SIGBUS)

/*
 * The main uffd: with EVENT_FORK when the process may have it (it needs
 * CAP_SYS_PTRACE), else without; regions then are not inherited.
 */
static int open_main(struct upager_handler *h, uint64_t kernel)
{
	uint64_t want = kernel & HANDLER_FEATURES;
	int fd = -EPERM;

	if (kernel & UFFD_FEATURE_EVENT_FORK)
		fd = open_uffd(want | UFFD_FEATURE_EVENT_FORK);
	if (fd >= 0) {
		h->features = want | UFFD_FEATURE_EVENT_FORK;
		return fd;
	}
	if (fd != -EPERM)
		return fd;
	fd = open_uffd(want);
	h->features = want;
	return fd;
}

static int epoll_add(int ep, int fd, uint64_t id, uint32_t events);

struct upager_handler *upager_handler_new(const struct upager_handler_params *params,
					  int *err)
{
	struct upager_handler_params p = { .size = sizeof(p) };
	struct upager_handler *h = NULL;
	uint64_t kernel;
	long ncpu;
	int ret, fd;

	ret = params_copy(&p, sizeof(p), params);
	if (!ret && (p.poll_us > 10000 || p.evictors > 16 ||
		     p.wake > UPAGER_WAKE_ONE))
		ret = -EINVAL;
	if (ret < 0)
		goto fail;
	ret = kernel_features(&kernel);
	if (ret < 0)
		goto fail;
	h = calloc(1, sizeof(*h));
	if (!h) {
		ret = -ENOMEM;
		goto fail;
	}
	h->sig_uffd = h->stopfd = h->workfd = h->timerfd = -1;
	h->park_ep = h->listen_ep = -1;
	h->retired = &h->retired_own;
	fd = open_main(h, kernel);
	if (fd < 0) {
		ret = fd;
		free(h);
		h = NULL;
		goto fail;
	}
	space_init(&h->self, h, fd, true);
	h->self.features = h->features;
	pthread_rwlock_init(&h->spaces_lock, NULL);
	pthread_mutex_init(&h->fork_lock, NULL);
	pthread_mutex_init(&h->run_lock, NULL);
	pthread_cond_init(&h->run_cond, NULL);
	pthread_mutex_init(&h->idle_lock, NULL);
	pthread_cond_init(&h->idle_cond, NULL);
	pthread_mutex_init(&h->job_lock, NULL);
	pthread_mutex_init(&h->stray_lock, NULL);
	pthread_mutex_init(&h->ev_lock, NULL);
	pthread_cond_init(&h->ev_cond, NULL);
	h->self_mem = -1;
	h->evict_uffd = -1;
	h->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	h->workfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	h->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	h->park_ep = epoll_create1(EPOLL_CLOEXEC);
	h->listen_ep = epoll_create1(EPOLL_CLOEXEC);
	h->probe = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	if (h->probe == MAP_FAILED) {
		h->probe = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	if (h->stopfd < 0 || h->workfd < 0 || h->timerfd < 0 ||
	    h->park_ep < 0 || h->listen_ep < 0 ||
	    madvise(h->probe, 4096, MADV_DONTFORK) < 0 ||
	    epoll_add(h->listen_ep, h->self.uffd, 0, EPOLLIN) < 0 ||
	    epoll_add(h->park_ep, h->stopfd, ID_STOP, EPOLLIN) < 0 ||
	    epoll_add(h->park_ep, h->listen_ep, ID_LISTEN, 0) < 0) {
		ret = -errno;
		goto fail;
	}
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	h->nthreads = p.threads ? p.threads
				: (unsigned int)(ncpu < 1 ? 1 : ncpu > 4 ? 4 : ncpu);
	if (h->nthreads > 32)
		h->nthreads = 32;
	h->batch = p.batch ? p.batch : 32;
	if (h->batch > 64)
		h->batch = 64;
	h->poll_ns = (uint64_t)p.poll_us * 1000;
	h->pin = p.pin_workers;
	h->fault_wake = EPOLLIN | (p.wake == UPAGER_WAKE_ONE ? EPOLLEXCLUSIVE
							   : 0);
	h->ev_max = p.evictors ? p.evictors : 1;
	atomic_store(&h->ev_paused, true); /* until start() or run() */
	h->on_error = p.on_error ? p.on_error : default_on_error;
	h->error_arg = p.error_arg;
	h->spare_max = p.spare_workers < 0    ? 0
		       : p.spare_workers == 0 ? 64
		       : p.spare_workers > 64 ? 64
					      : (unsigned int)p.spare_workers;
	if (p.stats_name) {
		ret = stats_publish_open(h, p.stats_name);
		if (ret < 0)
			goto fail;
	}
	return h;
fail:
	upager_handler_free(h);
	if (err)
		*err = ret;
	return NULL;
}

int handler_sig_uffd(struct upager_handler *h)
{
	int fd;

	pthread_mutex_lock(&h->run_lock);
	if (h->sig_uffd < 0) {
		fd = open_uffd((h->features & SIGBUS_FEATURES) |
			       UFFD_FEATURE_SIGBUS);
		if (fd >= 0)
			h->sig_uffd = fd;
	}
	fd = h->sig_uffd;
	pthread_mutex_unlock(&h->run_lock);
	return fd;
}

int upager_handler_fd(struct upager_handler *h)
{
	return h->self.uffd;
}

/* ---- the spaces of forked children --------------------------------------- */

static int epoll_add(int ep, int fd, uint64_t id, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = id };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/*
 * The sweep runs once a second while there are children or dead spaces
 * to look after.  Called with spaces_lock held for writing, so the timer
 * follows the lists; arming it again would push the next sweep a second
 * away, and spaces that come and go faster would never be reaped
 * (tests/foreign_reap.c).
 */
static void arm_sweep(struct upager_handler *h, bool on)
{
	struct itimerspec its = { { on, 0 }, { on, 0 } };

	if (h->sweep_armed != on && !timerfd_settime(h->timerfd, 0, &its, NULL))
		h->sweep_armed = on;
}

/* Add @sp's uffd, and its process's pidfd, to the epoll set @ep. */
static void epoll_add_space(int ep, struct upager_space *sp)
{
	epoll_add(ep, sp->uffd, sp->id, sp->h->fault_wake);
	if (sp->pidfd >= 0)
		epoll_add(ep, sp->pidfd, sp->id | ID_PIDFD,
			  EPOLLIN | EPOLLEXCLUSIVE);
}

int handler_adopt(struct upager_handler *h, struct upager_space *sp)
{
	pthread_rwlock_wrlock(&h->spaces_lock);
	sp->id = ++h->next_id;
	sp->next = h->children;
	h->children = sp;
	arm_sweep(h, true);
	pthread_rwlock_unlock(&h->spaces_lock);

	pthread_mutex_lock(&h->run_lock);
	for (unsigned int i = 0; i < h->neps; i++)
		epoll_add_space(h->eps[i], sp);
	epoll_add(h->listen_ep, sp->uffd, sp->id, EPOLLIN);
	pthread_mutex_unlock(&h->run_lock);
	return 0;
}

/* Into the graveyard once out of service, and released if foreign. */
static void bury(struct upager_handler *h, struct upager_space *sp)
{
	pthread_rwlock_wrlock(&h->spaces_lock);
	if (sp->unlisted && !sp->buried &&
	    (!sp->foreign || atomic_load(&sp->released))) {
		sp->buried = true;
		sp->next = h->graveyard;
		h->graveyard = sp;
		arm_sweep(h, true);
	}
	pthread_rwlock_unlock(&h->spaces_lock);
}

/*
 * Take @sp out of service: no epoll set wakes for it and no lookup finds
 * it.  It goes to the graveyard, and reap() frees it once no worker
 * holds it; a space adopted from another process only once the manager
 * released it (it holds the handle), when this is called again.  Two
 * threads may drop one space at once (its process exited while its last
 * region was being unmapped): it is buried only once the one that took
 * it out of service is done with it, as reap() may free it then.
 */
void handler_drop(struct upager_handler *h, struct upager_space *sp)
{
	struct upager_space **p;
	bool was = false;

	if (atomic_compare_exchange_strong(&sp->dropped, &was, true)) {
		pthread_rwlock_wrlock(&h->spaces_lock);
		for (p = &h->children; *p && *p != sp; p = &(*p)->next)
			;
		if (*p)
			*p = sp->next;
		pthread_rwlock_unlock(&h->spaces_lock);

		pthread_mutex_lock(&h->run_lock);
		for (unsigned int i = 0; i < h->neps; i++) {
			epoll_ctl(h->eps[i], EPOLL_CTL_DEL, sp->uffd, NULL);
			if (sp->pidfd >= 0)
				epoll_ctl(h->eps[i], EPOLL_CTL_DEL, sp->pidfd,
					  NULL);
		}
		epoll_ctl(h->listen_ep, EPOLL_CTL_DEL, sp->uffd, NULL);
		pthread_mutex_unlock(&h->run_lock);
		pthread_rwlock_wrlock(&h->spaces_lock);
		sp->unlisted = true;
		pthread_rwlock_unlock(&h->spaces_lock);
	}
	bury(h, sp);
}

/* Find an adopted space by its epoll name and hold it. */
static struct upager_space *space_hold(struct upager_handler *h, uint64_t id)
{
	struct upager_space *sp;

	pthread_rwlock_rdlock(&h->spaces_lock);
	for (sp = h->children; sp && sp->id != id; sp = sp->next)
		;
	if (sp)
		atomic_fetch_add(&sp->users, 1);
	pthread_rwlock_unlock(&h->spaces_lock);
	return sp;
}

static void space_release(struct upager_space *sp)
{
	if (!sp->self)
		atomic_fetch_sub(&sp->users, 1);
}

/* Is anything of @sp in use by a fill or a worker? */
static bool space_busy(struct upager_space *sp)
{
	if (atomic_load(&sp->users))
		return true;
	for (struct upager_region *c = sp->owned; c; c = c->next_owned)
		if (atomic_load(&c->users))
			return true;
	return false;
}

/*
 * Free the dropped spaces no worker holds: their regions (forked copies,
 * unlinked from their roots here) and their uffd, whose release gives
 * the child's memory back to the kernel.  @wait: the caller may block
 * (no worker runs), so every one goes.
 */
static void reap(struct upager_handler *h, bool wait)
{
	struct upager_space *keep = NULL, *sp, *next;

	pthread_rwlock_wrlock(&h->spaces_lock);
	sp = h->graveyard;
	h->graveyard = NULL;
	pthread_rwlock_unlock(&h->spaces_lock);
	for (; sp; sp = next) {
		struct upager_region *c, *cn;

		next = sp->next;
		pthread_mutex_lock(&h->fork_lock);
		if (!wait && space_busy(sp)) {
			pthread_mutex_unlock(&h->fork_lock);
			sp->next = keep;
			keep = sp;
			continue;
		}
		c = sp->owned;
		sp->owned = NULL;
		for (cn = c; cn; cn = cn->next_owned) {
			struct upager_region **q = &cn->root->children;

			while (*q && *q != cn)
				q = &(*q)->sibling;
			if (*q)
				*q = cn->sibling;
		}
		pthread_mutex_unlock(&h->fork_lock);
		for (; c; c = cn) {
			cn = c->next_owned;
			space_remove(sp, c);
			region_wait_idle(c);
			region_free(c);
		}
		close(sp->uffd);
		space_destroy(sp);
		mem_free(sp, sizeof(*sp));
	}
	if (keep) {
		pthread_rwlock_wrlock(&h->spaces_lock);
		for (sp = keep; sp->next; sp = sp->next)
			;
		sp->next = h->graveyard;
		h->graveyard = keep;
		pthread_rwlock_unlock(&h->spaces_lock);
	}
}

/*
 * Once a second while there are children: a child that exited without
 * faulting again is found by asking its uffd about a page it cannot
 * have (the probe page is MADV_DONTFORK): -ENOENT while it lives,
 * -ESRCH once its memory is gone.  Then the dead are reaped.
 */
static void sweep(struct upager_handler *h)
{
	struct upager_space *dead[16];
	unsigned int n = 0;

	pthread_rwlock_rdlock(&h->spaces_lock);
	for (struct upager_space *sp = h->children; sp && n < ARRAY_SIZE(dead);
	     sp = sp->next) {
		/*
		 * Not a process of another's: the probe page could be one it
		 * registered; its exit shows on its pidfd or at an install.
		 */
		if (sp->foreign)
			continue;
		if (upager_ll_writeprotect(sp->uffd, h->probe, 4096, 0) ==
		    -ESRCH) {
			atomic_fetch_add(&sp->users, 1);
			dead[n++] = sp;
		}
	}
	pthread_rwlock_unlock(&h->spaces_lock);
	for (unsigned int i = 0; i < n; i++) {
		space_exited(dead[i]);
		space_release(dead[i]);
	}
	reap(h, false);
	pthread_rwlock_wrlock(&h->spaces_lock);
	if (!h->children && !h->graveyard)
		arm_sweep(h, false);
	pthread_rwlock_unlock(&h->spaces_lock);
}

/* ---- read-ahead jobs ---------------------------------------------------- */

/*
 * Queue units [u, u+n) of @r, claimed by the caller, for any worker.
 * False when the ring is full: the caller fills them itself.
 */
static bool job_queue(struct filler *f, struct upager_region *r, size_t u,
		      size_t n)
{
	struct upager_handler *h = f->h;
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

/* Take the next job, its region pinned (unmap purges first, see below). */
static bool job_pop(struct upager_handler *h, struct ra_job *j)
{
	bool got = false;

	pthread_mutex_lock(&h->job_lock);
	if (h->njobs) {
		*j = h->jobs[h->job_head];
		h->job_head = (h->job_head + 1) % RA_JOBS;
		atomic_store_explicit(&h->njobs, h->njobs - 1,
				      memory_order_relaxed);
		atomic_fetch_add(&j->r->users, 1);
		got = true;
	}
	pthread_mutex_unlock(&h->job_lock);
	return got;
}

/* ---- prefetch lists (prefetch.c) ------------------------------------------ */

/* Take @r off the prefetch list, if it is on it.  Under job_lock. */
static void pf_unlink(struct upager_handler *h, struct upager_region *r)
{
	struct upager_region **q, *prev = NULL;

	if (!r->pf_listed)
		return;
	for (q = &h->pf_head; *q != r; q = &(*q)->pf_link)
		prev = *q;
	*q = r->pf_link;
	if (h->pf_tail == r)
		h->pf_tail = prev;
	r->pf_link = NULL;
	r->pf_listed = false;
	atomic_fetch_sub_explicit(&h->npf, 1, memory_order_relaxed);
}

/* List @r, its prefetch list set, and wake a worker for it. */
void handler_prefetch(struct upager_handler *h, struct upager_region *r)
{
	uint64_t one = 1;

	pthread_mutex_lock(&h->job_lock);
	if (h->pf_tail)
		h->pf_tail->pf_link = r;
	else
		h->pf_head = r;
	h->pf_tail = r;
	r->pf_listed = true;
	atomic_fetch_add_explicit(&h->npf, 1, memory_order_relaxed);
	pthread_mutex_unlock(&h->job_lock);
	if (write(h->workfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		h->on_error(h->error_arg, r, 0, -errno, "waking a worker");
}

/*
 * One batch of the first listed region's prefetch list, the region
 * pinned; it goes to the back of the list (regions take turns), or off
 * it when its list is done.  False when no region has one.
 */
static bool serve_prefetch(struct upager_handler *h, struct filler *f)
{
	struct upager_region *r;
	bool more;

	if (!atomic_load_explicit(&h->npf, memory_order_relaxed))
		return false;
	pthread_mutex_lock(&h->job_lock);
	r = h->pf_head;
	if (r) {
		atomic_fetch_add(&r->users, 1);
		if (r->pf_link) {
			h->pf_head = r->pf_link;
			h->pf_tail->pf_link = r;
			h->pf_tail = r;
			r->pf_link = NULL;
		}
	}
	pthread_mutex_unlock(&h->job_lock);
	if (!r)
		return false;
	more = !atomic_load(&r->closing) && prefetch_step(r, f);
	filler_flush(f);
	if (!more) {
		pthread_mutex_lock(&h->job_lock);
		pf_unlink(h, r);
		pthread_mutex_unlock(&h->job_lock);
	}
	region_put(r);
	return true;
}

/*
 * Drop @r's queued jobs and take it off the prefetch list, after it left
 * its table: from then on no job pins it, so waiting for its users
 * covers every fill of it.  The units those jobs claimed go back, woken.
 */
void handler_purge_jobs(struct upager_handler *h, struct upager_region *r)
{
	struct ra_job gone[RA_JOBS];
	unsigned int kept = 0, ngone = 0, n;
	struct filler f = { 0 };

	pthread_mutex_lock(&h->job_lock);
	n = h->njobs;
	for (unsigned int i = 0; i < n; i++) {
		struct ra_job j = h->jobs[(h->job_head + i) % RA_JOBS];

		if (j.r == r)
			gone[ngone++] = j;
		else
			h->jobs[(h->job_head + kept++) % RA_JOBS] = j;
	}
	atomic_store_explicit(&h->njobs, kept, memory_order_relaxed);
	pf_unlink(h, r);
	pthread_mutex_unlock(&h->job_lock);
	for (unsigned int i = 0; i < ngone; i++) {
		fill_settle(r, &f, gone[i].u, gone[i].n, UNIT_ABSENT);
		fill_wake(r, &f, gone[i].u, gone[i].n);
	}
}

/* ---- seats -------------------------------------------------------------- */

static int serve(struct upager_handler *h, bool spare);

static void *spare_main(void *arg)
{
	struct upager_handler *h = arg;

	thread_name(pthread_self(), "spare");
	serve(h, true);
	pthread_mutex_lock(&h->run_lock);
	atomic_fetch_sub(&h->spares, 1);
	pthread_cond_broadcast(&h->run_cond);
	pthread_mutex_unlock(&h->run_lock);
	return NULL;
}

/*
 * Start (@on) or stop the parked spares' listening for faults.  The
 * listen set holds every space's uffd; it sits in the parked spares'
 * set, armed one-shot while the seats are empty, so a parked spare
 * wakes only for a fault (or event) that comes meanwhile, not for every
 * call into a slow store (most are back in tens of microseconds: a
 * spare woken for each cost a fault over memcached a third more,
 * tests/spare_quiet).  Arming it while a fault waits wakes one at once.
 * Caller holds run_lock.
 */
static void spare_listen(struct upager_handler *h, bool on)
{
	struct epoll_event ev = { .events = on ? EPOLLIN | EPOLLONESHOT : 0,
				  .data.u64 = ID_LISTEN };

	epoll_ctl(h->park_ep, EPOLL_CTL_MOD, h->listen_ep, &ev);
}

/*
 * A server leaves its seat (@leave) before a call into a slow store, or
 * takes it back after.  The last seated server to leave starts a spare
 * when none is parked, and has the parked ones listen, so that a fault
 * on another region always finds a server; the first one back stops
 * them.  The seats are counted again under run_lock: a leave and a
 * return that cross leave the listening as the seats are.
 */
void handler_seat(struct upager_handler *h, bool leave)
{
	pthread_attr_t attr;
	pthread_t t;

	if (!leave) {
		if (atomic_fetch_add(&h->seated, 1) != 0)
			return;
		pthread_mutex_lock(&h->run_lock);
		if (atomic_load(&h->seated) > 0)
			spare_listen(h, false);
		pthread_mutex_unlock(&h->run_lock);
		return;
	}
	if (atomic_fetch_sub(&h->seated, 1) != 1 ||
	    atomic_load(&h->stopping))
		return;
	pthread_mutex_lock(&h->run_lock);
	h->vacancies++;
	if (!h->parked && atomic_load(&h->spares) < h->spare_max &&
	    !atomic_load(&h->stopping)) {
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		atomic_fetch_add(&h->spares, 1);
		if (pthread_create(&t, &attr, spare_main, h))
			atomic_fetch_sub(&h->spares, 1);
		else
			h->parked++; /* it parks first */
		pthread_attr_destroy(&attr);
	}
	if (h->parked && atomic_load(&h->seated) <= 0)
		spare_listen(h, true);
	pthread_mutex_unlock(&h->run_lock);
}

/* A spare may go when more servers are seated than there are regulars. */
static bool spare_surplus(struct upager_handler *h)
{
	int regulars;

	pthread_mutex_lock(&h->run_lock);
	regulars = (int)(h->running + h->runners);
	pthread_mutex_unlock(&h->run_lock);
	return atomic_load(&h->seated) > regulars;
}

#define SPARE_WAIT_NS (1000ull * 1000 * 1000)

/*
 * A spare parks until a fault comes while no server is seated (true:
 * seated again) or a second passes in which the seats never emptied and
 * are not empty now (false: it leaves; also at stop).  @seated: it
 * leaves a seat to park (a surplus spare); else it is a new one, which
 * its creator counted parked.  Every change of the parked count and the
 * seats here is made under run_lock with the listening set to match, so
 * a leave that finds a spare parked can count on it.  Its epoll set
 * stays, so it serves again at once.
 */
static bool spare_wait(struct upager_handler *h, bool seated)
{
	uint64_t until = now_ns() + SPARE_WAIT_NS, seen;
	bool called = false, leave = false;

	pthread_mutex_lock(&h->run_lock);
	if (seated) {
		h->parked++;
		/* The seats may have emptied since it was surplus. */
		if (atomic_fetch_sub(&h->seated, 1) <= 1)
			spare_listen(h, true);
	}
	seen = h->vacancies;
	pthread_mutex_unlock(&h->run_lock);
	while (!called && !leave) {
		struct epoll_event ev;
		uint64_t now = now_ns();

		if (atomic_load(&h->stopping))
			break;
		if (now >= until) {
			/* Stores still slow, if back before a fault came. */
			pthread_mutex_lock(&h->run_lock);
			leave = seen == h->vacancies &&
				atomic_load(&h->seated) > 0;
			if (leave)
				h->parked--;
			seen = h->vacancies;
			pthread_mutex_unlock(&h->run_lock);
			until = now + SPARE_WAIT_NS;
			continue;
		}
		if (epoll_wait(h->park_ep, &ev, 1,
			       (int)((until - now + 999999) / 1000000)) > 0)
			called = ev.data.u64 == ID_LISTEN;
	}
	if (leave)
		return false;
	pthread_mutex_lock(&h->run_lock);
	h->parked--;
	if (called)
		atomic_fetch_add(&h->seated, 1);
	pthread_mutex_unlock(&h->run_lock);
	return called;
}

/* ---- serving ------------------------------------------------------------ */

/*
 * A fault at an address in no region of its space.  Usually a race: the
 * region was just unmapped, or it moved (mremap) and the REMAP event is
 * still queued behind this fault; the thread is woken and comes again.
 * A page that keeps faulting for 100 ms, across reads that emptied the
 * queue, lies in memory no region covers any more (a region grown in
 * place with mremap, part of one moved away): it is poisoned, so the
 * thread gets SIGBUS instead of spinning.  POISON itself waits (-EAGAIN)
 * while an event is pending.
 */
static void stray(struct upager_handler *h, struct upager_space *sp, uint64_t addr)
{
	uint64_t page = addr & ~(uint64_t)4095, now = now_ns();
	uint64_t drains = atomic_load(&sp->drains);
	unsigned int i;
	bool poison = false;

	STAT_ADD(h->retired, faults_stray, 1);
	pthread_mutex_lock(&h->stray_lock);
	for (i = 0; i < STRAYS; i++)
		if (h->strays[i].sp == sp && h->strays[i].page == page)
			break;
	if (i == STRAYS || now - h->strays[i].last > 1000000000ull) {
		if (i == STRAYS)
			i = h->stray_next++ % STRAYS;
		h->strays[i].sp = sp;
		h->strays[i].page = page;
		h->strays[i].drains = drains;
		h->strays[i].first = now;
	} else if (drains > h->strays[i].drains &&
		   now - h->strays[i].first > 100000000ull) {
		poison = true;
		h->strays[i].sp = NULL;
	}
	h->strays[i].last = now;
	pthread_mutex_unlock(&h->stray_lock);
	if (poison) {
		/*
		 * Unless a region was mapped there since (the program
		 * unmapped one and mapped another at the same address):
		 * upager_map() registers and lists it under rd_lock.
		 */
		struct upager_region *r;
		int ret = -ENOENT;

		rdlock_shared(&sp->rd_lock);
		r = space_get(sp, addr);
		if (!r) {
			/* Told first: the thread may see its SIGBUS at once. */
			h->on_error(h->error_arg, NULL, addr, -EFAULT,
				    "fault outside every region; poisoned");
			ret = upager_ll_poison(sp->uffd,
					       (void *)(uintptr_t)page, 4096,
					       0, NULL);
		}
		rdlock_shared_end(&sp->rd_lock);
		if (r)
			region_put(r);
		if (!ret)
			return;
	}
	upager_ll_wake(sp->uffd, (void *)(uintptr_t)page, 4096);
}

/* Keep fault @m of @sp for serve_deferred(); false when there is no room. */
static bool defer(struct filler *f, struct upager_space *sp,
		  const struct uffd_msg *m)
{
	if (f->ndeferred == DEFERRED_MAX)
		return false;
	if (!sp->self)
		atomic_fetch_add(&sp->users, 1);
	f->deferred[f->ndeferred].sp = sp;
	f->deferred[f->ndeferred++].msg = *m;
	return true;
}

/*
 * One fault.  @batch: it came with others, whose wakes wait for the end
 * of the batch: a fault on a slow store's region is then kept for later
 * (serve_deferred()), so that the batch's other faults are not answered
 * only after a fetch that may take seconds.
 */
static void on_fault(struct upager_handler *h, struct filler *f,
		     struct upager_space *sp, const struct uffd_msg *m,
		     uint64_t t0, bool batch)
{
	struct fault ft = {
		.addr = m->arg.pagefault.address,
		.minor = m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR,
		.wp = m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP,
		.t0 = t0,
	};
	struct upager_region *r = space_get(sp, ft.addr);
	size_t need;

	if (!r) {
		stray(h, sp, ft.addr);
		return;
	}
	if (atomic_load(&r->closing) ||
	    (batch && !(r->store->flags & UPAGER_STORE_CHEAP) &&
	     defer(f, sp, m))) {
		/* Closing: upager_unmap() wakes it, into a closed range. */
		region_put(r);
		return;
	}
	if (sp->features & UFFD_FEATURE_THREAD_ID)
		ft.tid = (pid_t)m->arg.pagefault.feat.ptid;
	need = r->ra_max * r->fill;
	if (need > f->cap && filler_reserve(f, need) < 0 && r->fill > f->cap)
		filler_reserve(f, r->fill);
	region_fault(r, f, &ft);
	region_put(r);
}

static void on_event(struct upager_space *sp, const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_FORK:
		event_fork(sp, (int)m->arg.fork.ufd);
		break;
	case UFFD_EVENT_REMOVE:
		event_remove(sp, m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_UNMAP:
		event_unmap(sp, m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_REMAP:
		event_remap(sp, m->arg.remap.from, m->arg.remap.to,
			    m->arg.remap.len);
		break;
	}
}

/*
 * Read up to @max messages of @sp and handle the events among them, in
 * the order the kernel queued them (under read_lock and rd_lock, see
 * struct upager_space).  Events go before the faults read with them: a
 * fault read in the same batch as the REMAP or UNMAP that explains it
 * then finds the table as it now is.  Returns what upager_ll_read() did.
 */
static int read_events(struct upager_space *sp, struct uffd_msg *msgs, size_t max)
{
	bool excl;
	int n;

	pthread_mutex_lock(&sp->read_lock);
	/* Counted under read_lock (space_add()). */
	excl = atomic_load(&sp->guarded_reads) > 0;
	if (excl)
		rdlock_excl(&sp->rd_lock);
	n = upager_ll_read(sp->uffd, msgs, max);
	for (int i = 0; i < n; i++) {
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			continue;
		if (!excl) {
			rdlock_excl(&sp->rd_lock);
			excl = true;
		}
		on_event(sp, &msgs[i]);
	}
	if (excl)
		rdlock_excl_end(&sp->rd_lock);
	pthread_mutex_unlock(&sp->read_lock);
	return n;
}

/* The faults of a batch of @n messages from @sp. */
static void serve_batch(struct upager_handler *h, struct filler *f,
			struct upager_space *sp, const struct uffd_msg *msgs, int n)
{
	uint64_t t0 = now_ns();

	f->dontwake = n > 1;
	for (int i = 0; i < n; i++)
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			on_fault(h, f, sp, &msgs[i], t0, n > 1);
	filler_flush(f);
	f->dontwake = false;
}

/*
 * An install waits (-EAGAIN) until the event the kernel holds for it is
 * read: read it here, as this worker may be the only one left to.  The
 * faults read with it are kept for the worker's loop.
 */
static bool pump(struct filler *f, struct upager_space *sp)
{
	struct upager_handler *h = f->h;
	struct uffd_msg msgs[16];
	size_t room = DEFERRED_MAX - f->ndeferred;
	int n;

	if (atomic_load(&h->stopping))
		return false;
	if (!room)
		return true;
	n = read_events(sp, msgs,
			room < ARRAY_SIZE(msgs) ? room : ARRAY_SIZE(msgs));
	for (int i = 0; i < n; i++)
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			defer(f, sp, &msgs[i]);
	return true;
}

/* The faults a pump read while this worker was filling. */
static void serve_deferred(struct upager_handler *h, struct filler *f)
{
	while (f->ndeferred) {
		struct deferred d = f->deferred[--f->ndeferred];

		on_fault(h, f, d.sp, &d.msg, now_ns(), false);
		filler_flush(f);
		space_release(d.sp);
	}
}

/* Fill job @j, taken off the ring with its region pinned. */
static void run_job(struct filler *f, const struct ra_job *j)
{
	if (j->n * j->r->fill > f->cap)
		filler_reserve(f, j->n * j->r->fill);
	if (atomic_load(&j->r->closing)) {
		fill_settle(j->r, f, j->u, j->n, UNIT_ABSENT);
		fill_wake(j->r, f, j->u, j->n);
	} else {
		STAT_ADD(j->r->st, ra_pages, region_job(j->r, f, j->u, j->n));
	}
	filler_flush(f);
	region_put(j->r);
}

/* Fill one queued read-ahead job; false when there was none. */
static bool serve_job(struct upager_handler *h, struct filler *f)
{
	struct ra_job j;

	if (!atomic_load_explicit(&h->njobs, memory_order_relaxed) ||
	    !job_pop(h, &j))
		return false;
	run_job(f, &j);
	return true;
}

bool handler_run_job_of(struct upager_handler *h, struct filler *f,
			struct upager_region *r, size_t u)
{
	unsigned int n, kept = 0;
	struct ra_job j;
	bool found = false;

	if (!atomic_load_explicit(&h->njobs, memory_order_relaxed))
		return false;
	pthread_mutex_lock(&h->job_lock);
	n = h->njobs;
	for (unsigned int i = 0; i < n; i++) {
		struct ra_job k = h->jobs[(h->job_head + i) % RA_JOBS];

		if (!found && k.r == r && u >= k.u && u - k.u < k.n) {
			j = k;
			found = true;
			continue;
		}
		h->jobs[(h->job_head + kept++) % RA_JOBS] = k;
	}
	if (found) {
		atomic_store_explicit(&h->njobs, kept, memory_order_relaxed);
		atomic_fetch_add(&r->users, 1);
	}
	pthread_mutex_unlock(&h->job_lock);
	if (found)
		run_job(f, &j);
	return found;
}

/*
 * Read and serve one batch of @sp's; returns false when the read found
 * the queue empty (after this read, so is every event read before it).
 */
static bool serve_space(struct upager_handler *h, struct filler *f,
			struct upager_space *sp, struct uffd_msg *msgs)
{
	int n = read_events(sp, msgs, h->batch);

	if (n < (int)h->batch)
		atomic_fetch_add(&sp->drains, 1);
	if (n == -EAGAIN || n == -EINTR)
		return false;
	if (n < 0) {
		h->on_error(h->error_arg, NULL, 0, n, "reading a userfaultfd");
		if (!sp->self)
			space_exited(sp);
		return false;
	}
	serve_batch(h, f, sp, msgs, n);
	return n == (int)h->batch;
}

/*
 * A new epoll set with the handler's fds and every space's uffd (a
 * spare's without the job doorbell: it takes no jobs).
 */
static int server_epoll(struct upager_handler *h, bool spare)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), ret = 0;

	if (ep < 0)
		return -errno;
	pthread_mutex_lock(&h->run_lock);
	/*
	 * One job wakes one worker, not all of them (a herd costs a context
	 * switch per idle worker); a fault as the handler was asked
	 * (fault_wake); stopping wakes all.
	 */
	if (h->neps == ARRAY_SIZE(h->eps) ||
	    epoll_add(ep, h->self.uffd, 0, h->fault_wake) < 0 ||
	    (!spare &&
	     epoll_add(ep, h->workfd, ID_WORK, EPOLLIN | EPOLLEXCLUSIVE) < 0) ||
	    epoll_add(ep, h->timerfd, ID_TIMER, EPOLLIN | EPOLLEXCLUSIVE) < 0 ||
	    epoll_add(ep, h->stopfd, ID_STOP, EPOLLIN) < 0) {
		ret = h->neps == ARRAY_SIZE(h->eps) ? -EMFILE : -errno;
	} else {
		pthread_rwlock_rdlock(&h->spaces_lock);
		for (struct upager_space *sp = h->children; sp; sp = sp->next)
			epoll_add_space(ep, sp);
		pthread_rwlock_unlock(&h->spaces_lock);
		h->eps[h->neps++] = ep;
		if (!spare) /* a spare starts parked */
			atomic_fetch_add(&h->seated, 1);
	}
	pthread_mutex_unlock(&h->run_lock);
	if (ret < 0)
		close(ep);
	return ret < 0 ? ret : ep;
}

/* @seated: the server leaves a seat (a spare may end parked). */
static void server_close(struct upager_handler *h, int ep, bool seated)
{
	pthread_mutex_lock(&h->run_lock);
	for (unsigned int i = 0; i < h->neps; i++) {
		if (h->eps[i] == ep) {
			h->eps[i] = h->eps[--h->neps];
			break;
		}
	}
	if (seated)
		atomic_fetch_sub(&h->seated, 1);
	pthread_mutex_unlock(&h->run_lock);
	close(ep);
}

#define READY_MAX 8

/*
 * poll_us: look at the epoll set without sleeping until something is
 * ready or the time is up (the stop eventfd is in the set too).  A fault
 * that comes meanwhile is read without the wake-up of a sleeping thread,
 * which costs far more than the looking on some machines (a VM's
 * cross-CPU wake-up).  Returns what epoll_wait() found, 0 at the end.
 */
static int poll_events(struct upager_handler *h, int ep,
		       struct epoll_event *evs, int max)
{
	uint64_t until;
	int n;

	if (!h->poll_ns)
		return 0;
	until = now_ns() + h->poll_ns;
	do
		n = epoll_wait(ep, evs, max, 0);
	while (!n && now_ns() < until);
	return n;
}

/*
 * Serve until the stop eventfd fires (a spare: also once it is surplus).
 * The staging buffer is sized for the largest read-ahead window of any
 * region and grown on demand.
 */
static int serve(struct upager_handler *h, bool spare)
{
	struct uffd_msg msgs[64];
	struct filler f = { .h = h, .queue = job_queue, .pump = pump };
	struct upager_space *ready[READY_MAX];
	unsigned int nready = 0;
	/* A new spare is counted parked by its creator until it parks. */
	bool self_pending = true, seated = !spare, counted = spare;
	int ret = 0, ep = server_epoll(h, spare);

	if (ep < 0)
		goto uncount;
	for (;;) {
		struct epoll_event evs[8];
		uint64_t count;
		int n;

		if (atomic_load_explicit(&h->stopping, memory_order_relaxed))
			break;
		if (spare && (!seated || spare_surplus(h))) {
			counted = false;
			seated = spare_wait(h, seated);
			if (!seated)
				break;
		}
		if (!self_pending && !nready && !f.ndeferred) {
			/*
			 * With background work waiting, only look: faults
			 * (of any space, this process's or another's) go
			 * before the next job or prefetch batch.  Without,
			 * poll a while (poll_us), then sleep.
			 */
			bool work =
				!spare &&
				(atomic_load_explicit(&h->njobs,
						      memory_order_relaxed) ||
				 atomic_load_explicit(&h->npf,
						      memory_order_relaxed));

			if (work)
				n = epoll_wait(ep, evs, ARRAY_SIZE(evs), 0);
			else if (spare ||
				 !(n = poll_events(h, ep, evs, ARRAY_SIZE(evs))))
				n = epoll_wait(ep, evs, ARRAY_SIZE(evs), -1);
			if (n < 0 && errno != EINTR) {
				ret = -errno;
				break;
			}
			for (int i = 0; i < n; i++) {
				uint64_t id = evs[i].data.u64;
				struct upager_space *sp;

				if (id == ID_STOP)
					goto out;
				if (id == ID_WORK || id == ID_TIMER) {
					/* The ring holds the jobs. */
					if (read(id == ID_WORK ? h->workfd
							       : h->timerfd,
						 &count, sizeof(count)) > 0 &&
					    id == ID_TIMER)
						sweep(h);
					continue;
				}
				if (!id) {
					self_pending = true;
					continue;
				}
				if (id & ID_PIDFD) {
					sp = space_hold(h, id & ~ID_PIDFD);
					if (sp) {
						space_exited(sp);
						space_release(sp);
					}
					continue;
				}
				sp = nready < READY_MAX ? space_hold(h, id)
							: NULL;
				if (sp)
					ready[nready++] = sp;
			}
		}
		if (self_pending)
			self_pending = serve_space(h, &f, &h->self, msgs);
		for (unsigned int i = 0; i < nready;) {
			if (serve_space(h, &f, ready[i], msgs)) {
				i++;
				continue;
			}
			space_release(ready[i]);
			ready[i] = ready[--nready];
		}
		serve_deferred(h, &f);
		/*
		 * Spares serve faults only: read-ahead from a slow store is
		 * left to the regular workers, not given threads of its own.
		 */
		if (!spare && !serve_job(h, &f))
			serve_prefetch(h, &f);
	}
out:
	for (unsigned int i = 0; i < nready; i++)
		space_release(ready[i]);
	serve_deferred(h, &f);
	filler_release(&f);
	server_close(h, ep, seated);
uncount:
	if (counted) { /* stopped, or no epoll set, before it parked */
		pthread_mutex_lock(&h->run_lock);
		h->parked--;
		pthread_mutex_unlock(&h->run_lock);
	}
	return ep < 0 ? ep : ret;
}

static void *worker_main(void *arg)
{
	/*
	 * Its short sleeps as asked: fill_mm_wait()'s, of a few µs, would
	 * take the default 50 µs of slack more.
	 */
	prctl(PR_SET_TIMERSLACK, 1UL);
	serve(arg, false);
	return NULL;
}

int upager_handler_run(struct upager_handler *h)
{
	int ret;

	pthread_mutex_lock(&h->run_lock);
	h->runners++;
	pthread_mutex_unlock(&h->run_lock);
	evict_resume(h);
	ret = serve(h, false);
	pthread_mutex_lock(&h->run_lock);
	h->runners--;
	pthread_cond_broadcast(&h->run_cond);
	pthread_mutex_unlock(&h->run_lock);
	return ret;
}

/*
 * Worker @i, pinned to the i-th (in turn) of the CPUs in @allowed, the
 * caller's, unless NULL.  0 or -errno of pthread_create().
 */
static int worker_start(struct upager_handler *h, unsigned int i,
			const cpu_set_t *allowed)
{
	pthread_attr_t attr, *ap = NULL;
	cpu_set_t one;
	int ret;

	if (allowed) {
		int n = CPU_COUNT(allowed);

		CPU_ZERO(&one);
		for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, allowed) && seen++ == (int)(i % n)) {
				CPU_SET(cpu, &one);
				break;
			}
		pthread_attr_init(&attr);
		pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
		ap = &attr;
	}
	ret = -pthread_create(&h->threads[i], ap, worker_main, h);
	if (ap)
		pthread_attr_destroy(ap);
	if (!ret)
		thread_name(h->threads[i], "w%u", i);
	return ret;
}

int upager_handler_start(struct upager_handler *h)
{
	cpu_set_t allowed;
	bool pin;
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
	pin = h->pin && sched_getaffinity(0, sizeof(allowed), &allowed) == 0 &&
	      CPU_COUNT(&allowed) > 0;
	for (; h->running < h->nthreads; h->running++) {
		ret = worker_start(h, h->running, pin ? &allowed : NULL);
		if (ret)
			break;
	}
	pthread_mutex_unlock(&h->run_lock);
	if (ret)
		upager_handler_stop(h);
	else
		evict_resume(h);
	return ret;
}

int upager_handler_stop(struct upager_handler *h)
{
	uint64_t one = 1, drain;
	int ret = 0;

	/* While the workers still read: an evictor's drop may wait for one. */
	evict_pause(h);
	pthread_mutex_lock(&h->run_lock);
	/*
	 * The flag stops a server that never finds its queue empty; the
	 * eventfd wakes one blocked in epoll.  Both stay set until every
	 * worker, spare and run() caller has returned.
	 */
	atomic_store(&h->stopping, true);
	if (write(h->stopfd, &one, sizeof(one)) != sizeof(one))
		ret = -errno;
	pthread_mutex_unlock(&h->run_lock);
	for (unsigned int i = 0; i < h->running; i++)
		pthread_join(h->threads[i], NULL);
	pthread_mutex_lock(&h->run_lock);
	h->running = 0;
	free(h->threads);
	h->threads = NULL;
	while (h->runners || atomic_load(&h->spares))
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
	struct upager_space *sp;

	if (!h)
		return;
	if (h->self.uffd > 0) {
		upager_handler_stop(h);
		while (h->roots)
			region_unmap(h->roots, true);
		evict_stop(h);
		/*
		 * Other processes' spaces the manager did not release, and
		 * children whose roots are gone (they hold no region).
		 */
		pthread_rwlock_rdlock(&h->spaces_lock);
		sp = h->children;
		pthread_rwlock_unlock(&h->spaces_lock);
		while (sp) {
			if (sp->foreign)
				upager_space_release(sp);
			else
				handler_drop(h, sp);
			pthread_rwlock_rdlock(&h->spaces_lock);
			sp = h->children;
			pthread_rwlock_unlock(&h->spaces_lock);
		}
		reap(h, true);
		stats_publish_close(h);
		close(h->self.uffd);
		space_destroy(&h->self);
	}
	if (h->sig_uffd >= 0)
		close(h->sig_uffd);
	if (h->stopfd >= 0)
		close(h->stopfd);
	if (h->workfd >= 0)
		close(h->workfd);
	if (h->timerfd >= 0)
		close(h->timerfd);
	if (h->park_ep >= 0)
		close(h->park_ep);
	if (h->listen_ep >= 0)
		close(h->listen_ep);
	if (h->probe)
		munmap(h->probe, 4096);
	if (h->self_mem >= 0)
		close(h->self_mem);
	if (h->zeros)
		munmap(h->zeros, ZEROS);
	pthread_rwlock_destroy(&h->spaces_lock);
	pthread_mutex_destroy(&h->fork_lock);
	pthread_mutex_destroy(&h->job_lock);
	pthread_mutex_destroy(&h->stray_lock);
	pthread_mutex_destroy(&h->ev_lock);
	pthread_cond_destroy(&h->ev_cond);
	pthread_mutex_destroy(&h->run_lock);
	pthread_cond_destroy(&h->run_cond);
	pthread_mutex_destroy(&h->idle_lock);
	pthread_cond_destroy(&h->idle_cond);
	free(h);
}

void upager_handler_stats(struct upager_handler *h, struct upager_stats *s)
{
	struct upager_stats one;

	pthread_rwlock_rdlock(&h->self.lock);
	stats_read(h->retired, s);
	for (size_t i = 0; i < h->self.nregions; i++) {
		stats_read(h->self.regions[i]->st, &one);
		stats_add(s, &one);
	}
	pthread_rwlock_unlock(&h->self.lock);
}
