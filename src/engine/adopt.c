// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Another process's memory: a uffd it set up and handed over (SCM_RIGHTS)
 * becomes a space of the handler, and regions over the ranges it
 * registered are served like the handler's own.  What differs: the
 * memory is not ours (nothing to mmap, register, unmap or close), the
 * space lives until the manager releases it, and the process's exit is
 * watched with a pidfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "base/util.h"
#include "engine/engine.h"

/* The highest user address on 5-level page tables: nothing maps above. */
#define USER_TOP (1ull << 56)

/* Is @fd a userfaultfd, and has UFFDIO_API been done on it? */
static int check_uffd(struct upager_handler *h, int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -EBADF;
	link[n] = 0;
	if (strcmp(link, "anon_inode:[userfaultfd]"))
		return -EBADF;
	/*
	 * Any ioctl but UFFDIO_API is -EINVAL before the handshake; a wake
	 * (of a page of ours, nothing of the process's waits there) is 0
	 * after it and changes nothing.
	 */
	return upager_ll_wake(fd, h->probe, 4096) < 0 ? -EINVAL : 0;
}

struct upager_space *upager_space_adopt(struct upager_handler *h, int uffd,
					const struct upager_space_params *params,
					int *err)
{
	struct upager_space_params p = { .size = sizeof(p) };
	struct upager_space *sp = NULL;
	int ret, pidfd = -1, fl;

	ret = params_copy(&p, sizeof(p), params);
	if (!ret && p.pid < 0)
		ret = -EINVAL;
	if (!ret)
		ret = check_uffd(h, uffd);
	if (!ret && ((fl = fcntl(uffd, F_GETFL)) < 0 ||
		     fcntl(uffd, F_SETFL, fl | O_NONBLOCK) < 0))
		ret = -errno;
	if (!ret && p.pid) {
		pidfd = pidfd_open(p.pid, 0);
		if (pidfd < 0)
			ret = -errno;
	}
	if (!ret && !(sp = mem_alloc(sizeof(*sp))))
		ret = -ENOMEM;
	if (!ret && (ret = space_init(sp, h, uffd, false)) < 0) {
		mem_free(sp, sizeof(*sp));
		sp = NULL;
	}
	if (ret) {
		if (pidfd >= 0)
			close(pidfd);
		if (uffd >= 0)
			close(uffd);
		if (err)
			*err = ret;
		return NULL;
	}
	sp->foreign = true;
	sp->features = p.features;
	sp->pid = p.pid;
	sp->pidfd = pidfd;
	sp->on_exit = p.on_exit;
	sp->exit_arg = p.exit_arg;
	handler_adopt(h, sp);
	return sp;
}

struct upager_region *upager_space_map(struct upager_space *sp,
				       struct upager_store *s, uint64_t addr,
				       size_t len,
				       const struct upager_map_params *params,
				       int *err)
{
	struct upager_map_params p = { .size = sizeof(p) };
	struct upager_handler *h = sp->h;
	struct upager_region *r = NULL;
	int ret;

	ret = params_copy(&p, sizeof(p), params);
	/* What needs the memory to be ours: a memfd, a SIGBUS handler of
	 * ours in the faulting thread, pages moved out of our buffers. */
	if (!ret && (p.memtype == UPAGER_MEM_SHMEM || p.flags || p.budget ||
		     p.fork == UPAGER_FORK_DONTFORK))
		ret = -EINVAL;
	if (!ret)
		ret = region_check_params(s, len, &p, sp->features);
	if (!ret && (addr % p.fill || addr >= USER_TOP ||
		     len > USER_TOP - addr))
		ret = -EINVAL;
	if (!ret && atomic_load(&sp->dead))
		ret = -ESRCH;
	if (!ret && !(r = region_alloc(h)))
		ret = -ENOMEM;
	if (!ret) {
		r->sp = sp;
		r->store = s;
		r->addr = (char *)(uintptr_t)addr;
		r->len = len;
		r->fill = p.fill;
		r->nunits = len / p.fill;
		r->memtype = p.memtype;
		r->fork = p.fork;
		r->remove = p.remove;
		r->store_pgoff = p.store_offset / UPAGER_STORE_PAGE;
		r->uffd = sp->uffd;
		region_setup(r, s, &p);
		ret = region_state_alloc(r);
	}
	if (!ret) {
		r->st = stats_publish_region(h, r, &r->stats_slot);
		/* Workers may read the space already (see space_add()). */
		space_hold_events(sp);
		ret = space_add(sp, r);
		space_release_events(sp);
		if (ret < 0)
			stats_publish_release(h, r->stats_slot);
	}
	if (ret) {
		if (r)
			region_free(r);
		if (err)
			*err = ret;
		return NULL;
	}
	pthread_mutex_lock(&h->fork_lock);
	r->next_owned = sp->owned;
	sp->owned = r;
	pthread_mutex_unlock(&h->fork_lock);
	return r;
}

int upager_space_release(struct upager_space *sp)
{
	struct upager_handler *h = sp->h;
	struct upager_region *r;

	for (;;) {
		pthread_mutex_lock(&h->fork_lock);
		r = sp->owned;
		pthread_mutex_unlock(&h->fork_lock);
		if (!r)
			break;
		upager_unmap(r);
	}
	atomic_store(&sp->released, true);
	handler_drop(h, sp);
	return 0;
}

pid_t upager_space_pid(struct upager_space *sp)
{
	return sp->pid;
}
