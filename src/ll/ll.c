// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The low-level layer: one function per userfaultfd operation.  See
 * include/upager/ll.h for the contracts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "upager/ll.h"
#include "base/util.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

static int open_syscall(unsigned int kflags)
{
	long fd = syscall(__NR_userfaultfd, kflags);

	return fd < 0 ? -errno : (int)fd;
}

static int open_device(unsigned int kflags)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	int fd;

	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, kflags);
	fd = fd < 0 ? -errno : fd;
	close(dev);
	return fd;
}

int upager_ll_open(unsigned int flags, enum upager_ll_path *path)
{
	unsigned int kflags = 0;
	int fd = -ENOSYS;

	if (!(flags & UPAGER_LL_NOCLOEXEC))
		kflags |= O_CLOEXEC;
	if (flags & UPAGER_LL_NONBLOCK)
		kflags |= O_NONBLOCK;
	if (flags & UPAGER_LL_USER_MODE_ONLY)
		kflags |= UFFD_USER_MODE_ONLY;
	if ((flags & UPAGER_LL_VIA_SYSCALL) && (flags & UPAGER_LL_VIA_DEVICE))
		return -EINVAL;

	if (!(flags & UPAGER_LL_VIA_DEVICE)) {
		fd = open_syscall(kflags);
		if (fd >= 0) {
			if (path)
				*path = UPAGER_LL_PATH_SYSCALL;
			return fd;
		}
		/*
		 * vm.unprivileged_userfaultfd=0 refuses unprivileged callers
		 * with EPERM unless they give up kernel-mode faults.
		 */
		if (fd == -EPERM && !(kflags & UFFD_USER_MODE_ONLY)) {
			fd = open_syscall(kflags | UFFD_USER_MODE_ONLY);
			if (fd >= 0) {
				if (path)
					*path = UPAGER_LL_PATH_SYSCALL_USER_ONLY;
				return fd;
			}
			fd = -EPERM;
		}
		if (flags & UPAGER_LL_VIA_SYSCALL)
			return fd;
	}
	/*
	 * The device keeps the syscall's error when it does not exist, so the
	 * caller learns why the syscall failed rather than that an optional
	 * node is absent.
	 */
	{
		int dfd = open_device(kflags);

		if (dfd >= 0) {
			if (path)
				*path = UPAGER_LL_PATH_DEVICE;
			return dfd;
		}
		if ((flags & UPAGER_LL_VIA_DEVICE) || dfd != -ENOENT)
			return dfd;
	}
	return fd;
}

static int raw_api(int fd, uint64_t features, struct uffdio_api *api)
{
	memset(api, 0, sizeof(*api));
	api->api = UFFD_API;
	api->features = features;
	return xioctl(fd, UFFDIO_API, api);
}

int upager_ll_api(int fd, uint64_t features, struct upager_ll_api_info *info)
{
	struct uffdio_api api;
	int ret = raw_api(fd, features, &api);

	if (info)
		memset(info, 0, sizeof(*info));
	if (ret == 0) {
		if (info) {
			info->features = api.features;
			info->ioctls = api.ioctls;
		}
		return 0;
	}
	/*
	 * EINVAL covers both "feature unknown" and "handshake done twice";
	 * only a probe on a fresh fd tells them apart.
	 */
	if (ret == -EINVAL && features) {
		int pfd = upager_ll_open(0, NULL);
		uint64_t missing;

		if (pfd < 0)
			return ret;
		if (raw_api(pfd, 0, &api) < 0) {
			close(pfd);
			return ret;
		}
		close(pfd);
		missing = features & ~api.features;
		if (missing) {
			if (info)
				info->missing = missing;
			return -EOPNOTSUPP;
		}
	}
	return ret;
}

static const char *const feature_names[] = {
	"PAGEFAULT_FLAG_WP", "EVENT_FORK",    "EVENT_REMAP",
	"EVENT_REMOVE",	     "MISSING_HUGETLBFS", "MISSING_SHMEM",
	"EVENT_UNMAP",	     "SIGBUS",	      "THREAD_ID",
	"MINOR_HUGETLBFS",   "MINOR_SHMEM",   "EXACT_ADDRESS",
	"WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED", "POISON",
	"WP_ASYNC",	     "MOVE",
};

const char *upager_ll_feature_name(uint64_t bit)
{
	for (unsigned int i = 0; i < ARRAY_SIZE(feature_names); i++)
		if (bit == (1ull << i))
			return feature_names[i];
	return NULL;
}

int upager_ll_feature_list(uint64_t features, char *buf, size_t len)
{
	size_t n = 0;

	if (len)
		buf[0] = '\0';
	for (unsigned int i = 0; i < 64; i++) {
		const char *name = upager_ll_feature_name(1ull << i);
		char unknown[16];
		int w;

		if (!(features & (1ull << i)))
			continue;
		if (!name) {
			snprintf(unknown, sizeof(unknown), "bit%u", i);
			name = unknown;
		}
		w = snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0,
			     "%s%s", n ? ", " : "", name);
		n += (size_t)w;
	}
	return (int)n;
}

const char *upager_ll_ioctl_name(unsigned int nr)
{
	switch (nr) {
	case _UFFDIO_REGISTER:
		return "REGISTER";
	case _UFFDIO_UNREGISTER:
		return "UNREGISTER";
	case _UFFDIO_WAKE:
		return "WAKE";
	case _UFFDIO_COPY:
		return "COPY";
	case _UFFDIO_ZEROPAGE:
		return "ZEROPAGE";
	case _UFFDIO_MOVE:
		return "MOVE";
	case _UFFDIO_WRITEPROTECT:
		return "WRITEPROTECT";
	case _UFFDIO_CONTINUE:
		return "CONTINUE";
	case _UFFDIO_POISON:
		return "POISON";
	case _UFFDIO_API:
		return "API";
	}
	return NULL;
}

const char *upager_ll_memtype_name(enum upager_ll_memtype t)
{
	static const char *const names[] = { "anon", "shmem", "hugetlb" };

	return (unsigned int)t < ARRAY_SIZE(names) ? names[t] : NULL;
}

/* One page (or one huge page) of @t, not populated; MAP_FAILED on error. */
static void *probe_area(enum upager_ll_memtype t, size_t *len)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;

	*len = (size_t)sysconf(_SC_PAGESIZE);
	if (t == UPAGER_LL_MEM_SHMEM)
		flags = MAP_SHARED | MAP_ANONYMOUS;
	if (t == UPAGER_LL_MEM_HUGETLB) {
		/* NORESERVE: registering must work with no huge page free. */
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
			MAP_HUGE_2MB | MAP_NORESERVE;
		*len = 2u << 20;
	}
	return mmap(NULL, *len, PROT_READ | PROT_WRITE, flags, -1, 0);
}

static void probe_memtype(struct upager_ll_probe *p, enum upager_ll_memtype t,
			  uint64_t features)
{
	static const uint64_t modes[] = { UFFDIO_REGISTER_MODE_MISSING,
					  UFFDIO_REGISTER_MODE_WP,
					  UFFDIO_REGISTER_MODE_MINOR };
	size_t len;
	void *area = probe_area(t, &len);
	int fd;

	if (area == MAP_FAILED)
		return;
	fd = upager_ll_open(0, NULL);
	if (fd >= 0 && upager_ll_api(fd, features, NULL) == 0) {
		for (unsigned int i = 0; i < ARRAY_SIZE(modes); i++) {
			uint64_t ioctls = 0;

			if (upager_ll_register(fd, area, len, modes[i],
					       &ioctls) < 0)
				continue;
			p->register_modes[t] |= modes[i];
			p->range_ioctls[t] |= ioctls;
			upager_ll_unregister(fd, area, len);
		}
	}
	if (fd >= 0)
		close(fd);
	munmap(area, len);
}

_Static_assert(UPAGER_LL_MEM_COUNT <= UPAGER_LL_MEM_SLOTS,
	       "struct upager_ll_probe has no room for another memory type");

/* UFFDIO_API for @features alone on a descriptor of its own. */
static int probe_feature(uint64_t features)
{
	struct uffdio_api api;
	int fd = upager_ll_open(0, NULL), ret;

	if (fd < 0)
		return fd;
	ret = raw_api(fd, features, &api);
	close(fd);
	return ret;
}

int upager_ll_probe(struct upager_ll_probe *out)
{
	struct upager_ll_probe p = { .size = sizeof(p) };
	struct uffdio_api api;
	int fd, ret;

	if (out->size < sizeof(out->size))
		return -EINVAL;
	fd = upager_ll_open(0, &p.path);
	if (fd < 0)
		return fd;
	ret = raw_api(fd, 0, &api);
	close(fd);
	if (ret < 0)
		return ret;
	/* With features 0 the kernel reports everything it supports. */
	p.features = api.features;
	p.ioctls = api.ioctls;
	/*
	 * One refused feature fails the whole handshake, so each is asked
	 * for alone: EVENT_FORK without CAP_SYS_PTRACE must not make the
	 * rest look absent.
	 */
	for (unsigned int i = 0; i < 64; i++) {
		uint64_t bit = 1ull << i;

		if (!(p.features & bit))
			continue;
		ret = probe_feature(bit);
		if (ret == 0)
			p.available |= bit;
		else if (ret == -EPERM)
			p.refused |= bit;
	}
	/*
	 * Some features cannot be enabled together on one fd (WP_ASYNC
	 * changes what a WP fault is), so the per-memtype probe asks for the
	 * rest of what this process may have.
	 */
	for (int t = 0; t < UPAGER_LL_MEM_COUNT; t++)
		probe_memtype(&p, (enum upager_ll_memtype)t,
			      p.available & ~(uint64_t)UFFD_FEATURE_WP_ASYNC);
	return output_copy(out, &p, sizeof(p));
}

const char *upager_ll_feature_privilege(uint64_t bit)
{
	/*
	 * userfaultfd_api() refuses EVENT_FORK with EPERM unless the caller
	 * is capable(CAP_SYS_PTRACE); no other feature is checked.
	 */
	return bit == UFFD_FEATURE_EVENT_FORK ? "CAP_SYS_PTRACE" : NULL;
}

int upager_ll_register(int fd, void *addr, size_t len, uint64_t mode,
		       uint64_t *ioctls)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};
	int ret = xioctl(fd, UFFDIO_REGISTER, &reg);

	if (ret == 0 && ioctls)
		*ioctls = reg.ioctls;
	return ret;
}

int upager_ll_unregister(int fd, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	return xioctl(fd, UFFDIO_UNREGISTER, &r);
}

/*
 * The kernel reports progress in a result field that holds either the
 * bytes done or a negative errno, and fails the ioctl with EAGAIN when it
 * did part of the range.  The ioctl's own errno is the error; the field is
 * only trusted for a count when it is positive.
 */
static int install_result(int ret, int64_t field, size_t *done)
{
	if (done)
		*done = field > 0 ? (size_t)field : 0;
	return ret;
}

int upager_ll_copy(int fd, void *dst, const void *src, size_t len,
		   uint64_t mode, size_t *done)
{
	struct uffdio_copy c = {
		.dst = (uintptr_t)dst,
		.src = (uintptr_t)src,
		.len = len,
		.mode = mode,
	};
	int ret = xioctl(fd, UFFDIO_COPY, &c);

	return install_result(ret, c.copy, done);
}

int upager_ll_zeropage(int fd, void *dst, size_t len, uint64_t mode,
		       size_t *done)
{
	struct uffdio_zeropage z = {
		.range = { .start = (uintptr_t)dst, .len = len },
		.mode = mode,
	};
	int ret = xioctl(fd, UFFDIO_ZEROPAGE, &z);

	return install_result(ret, z.zeropage, done);
}

int upager_ll_continue(int fd, void *dst, size_t len, uint64_t mode,
		       size_t *done)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)dst, .len = len },
		.mode = mode,
	};
	int ret = xioctl(fd, UFFDIO_CONTINUE, &c);

	return install_result(ret, c.mapped, done);
}

int upager_ll_poison(int fd, void *dst, size_t len, uint64_t mode,
		     size_t *done)
{
	struct uffdio_poison p = {
		.range = { .start = (uintptr_t)dst, .len = len },
		.mode = mode,
	};
	int ret = xioctl(fd, UFFDIO_POISON, &p);

	return install_result(ret, p.updated, done);
}

int upager_ll_move(int fd, void *dst, void *src, size_t len, uint64_t mode,
		   size_t *done)
{
	struct uffdio_move m = {
		.dst = (uintptr_t)dst,
		.src = (uintptr_t)src,
		.len = len,
		.mode = mode,
	};
	int ret = xioctl(fd, UFFDIO_MOVE, &m);

	return install_result(ret, m.move, done);
}

int upager_ll_wake(int fd, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	return xioctl(fd, UFFDIO_WAKE, &r);
}

int upager_ll_writeprotect(int fd, void *addr, size_t len, uint64_t mode)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	return xioctl(fd, UFFDIO_WRITEPROTECT, &wp);
}

int upager_ll_read(int fd, struct uffd_msg *msgs, size_t max)
{
	ssize_t n = read(fd, msgs, max * sizeof(*msgs));

	if (n < 0)
		return -errno;
	if (n % (ssize_t)sizeof(*msgs))
		return -EIO;
	return (int)(n / (ssize_t)sizeof(*msgs));
}

void upager_ll_decode(const struct uffd_msg *msg, struct upager_ll_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->raw_event = msg->event;
	switch (msg->event) {
	case UFFD_EVENT_PAGEFAULT:
		ev->kind = UPAGER_LL_EVENT_PAGEFAULT;
		ev->pagefault.address = msg->arg.pagefault.address;
		ev->pagefault.flags = msg->arg.pagefault.flags;
		ev->pagefault.write =
			msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE;
		ev->pagefault.wp =
			msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP;
		ev->pagefault.minor =
			msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR;
		ev->pagefault.tid = msg->arg.pagefault.feat.ptid;
		break;
	case UFFD_EVENT_FORK:
		ev->kind = UPAGER_LL_EVENT_FORK;
		ev->fork.uffd = (int)msg->arg.fork.ufd;
		break;
	case UFFD_EVENT_REMAP:
		ev->kind = UPAGER_LL_EVENT_REMAP;
		ev->remap.from = msg->arg.remap.from;
		ev->remap.to = msg->arg.remap.to;
		ev->remap.len = msg->arg.remap.len;
		break;
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		ev->kind = msg->event == UFFD_EVENT_REMOVE
				   ? UPAGER_LL_EVENT_REMOVE
				   : UPAGER_LL_EVENT_UNMAP;
		ev->range.start = msg->arg.remove.start;
		ev->range.end = msg->arg.remove.end;
		break;
	default:
		ev->kind = UPAGER_LL_EVENT_UNKNOWN;
	}
}

int upager_ll_read_events(int fd, struct upager_ll_event *evs, size_t max)
{
	struct uffd_msg msgs[64];
	int n;

	if (max > ARRAY_SIZE(msgs))
		max = ARRAY_SIZE(msgs);
	n = upager_ll_read(fd, msgs, max);
	for (int i = 0; i < n; i++)
		upager_ll_decode(&msgs[i], &evs[i]);
	return n;
}

const char *upager_ll_event_name(enum upager_ll_event_kind kind)
{
	switch (kind) {
	case UPAGER_LL_EVENT_PAGEFAULT:
		return "PAGEFAULT";
	case UPAGER_LL_EVENT_FORK:
		return "FORK";
	case UPAGER_LL_EVENT_REMAP:
		return "REMAP";
	case UPAGER_LL_EVENT_REMOVE:
		return "REMOVE";
	case UPAGER_LL_EVENT_UNMAP:
		return "UNMAP";
	case UPAGER_LL_EVENT_UNKNOWN:
		return "UNKNOWN";
	}
	return NULL;
}

int upager_ll_pagemap_open(void)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int upager_ll_pagemap_scan(int pagemap_fd, struct pm_scan_arg *arg)
{
	int ret;

	arg->size = sizeof(*arg);
	ret = ioctl(pagemap_fd, PAGEMAP_SCAN, arg);
	return ret < 0 ? -errno : ret;
}

int upager_ll_scan_written(int pagemap_fd, void *start, size_t len,
			   struct page_region *vec, size_t nvec, bool reset,
			   uint64_t *next)
{
	struct pm_scan_arg arg = {
		.flags = reset ? PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC
			       : 0,
		.start = (uintptr_t)start,
		.end = (uintptr_t)start + len,
		.vec = (uintptr_t)vec,
		.vec_len = nvec,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	int ret;

	/*
	 * With no vector the kernel would still protect what it finds
	 * (reset) and say nothing of it: written pages lost without a word.
	 */
	if (!vec || !nvec)
		return -EINVAL;
	ret = upager_ll_pagemap_scan(pagemap_fd, &arg);
	if (ret < 0 || !next)
		return ret;
	/*
	 * The walk stops early only when the vector is full, so a scan
	 * that returned less covered the whole range.  A full one stopped
	 * at walk_end, before the first region it had no room for, or went
	 * to the end.  Where it went to the end after its own 512-entry
	 * buffer filled once, the kernel (6.18) leaves walk_end where that
	 * buffer last filled, before the last region returned: a scan from
	 * there would report again what this one did.
	 */
	if ((size_t)ret < nvec)
		*next = arg.end;
	else
		*next = arg.walk_end > vec[ret - 1].end ? arg.walk_end
							 : vec[ret - 1].end;
	return ret;
}
