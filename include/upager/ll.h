/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * upager low-level API: a typed mirror of the userfaultfd(2) kernel
 * interface.
 *
 * Contract for every function here, without exception: the return value
 * is 0, a non-negative count or file descriptor, or a negative errno.
 * errno itself is never the channel.  Every call is thread-safe in the
 * sense the kernel gives: any thread may issue resolution ioctls on a uffd
 * concurrently with any other.  No call allocates memory or keeps state
 * except upager_ll_probe(), which opens and closes its own descriptor.
 */
#ifndef UPAGER_LL_H
#define UPAGER_LL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <upager/uapi.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* ---- opening a userfaultfd ------------------------------------------- */

/* Flags for upager_ll_open(). */
#define UPAGER_LL_NONBLOCK (1u << 0)  /* O_NONBLOCK on the new fd */
#define UPAGER_LL_NOCLOEXEC (1u << 1) /* leave O_CLOEXEC off (default on) */
/* Only faults raised from user mode are reported (UFFD_USER_MODE_ONLY). */
#define UPAGER_LL_USER_MODE_ONLY (1u << 2)
#define UPAGER_LL_VIA_SYSCALL (1u << 3) /* never fall back to the device */
#define UPAGER_LL_VIA_DEVICE (1u << 4)  /* only /dev/userfaultfd */

/* How upager_ll_open() obtained its descriptor. */
enum upager_ll_path {
	UPAGER_LL_PATH_SYSCALL = 1,
	/* the syscall with UFFD_USER_MODE_ONLY added, because the process is
	 * unprivileged and vm.unprivileged_userfaultfd is 0 */
	UPAGER_LL_PATH_SYSCALL_USER_ONLY,
	UPAGER_LL_PATH_DEVICE, /* /dev/userfaultfd, USERFAULTFD_IOC_NEW */
};

/*
 * Open a userfaultfd.  Tries userfaultfd(2); when the kernel refuses it
 * with EPERM, retries with UFFD_USER_MODE_ONLY (which the sysctl allows
 * unprivileged callers), then falls back to /dev/userfaultfd, whose access
 * is governed by the device node's permissions instead of the sysctl.
 * The descriptor still needs upager_ll_api() before anything else.
 * @path, if not NULL, receives how the fd was obtained.
 * Returns the fd, or -EPERM / -ENOSYS / -ENOENT / -EMFILE / -EINVAL.
 */
int upager_ll_open(unsigned int flags, enum upager_ll_path *path);

/* ---- the UFFDIO_API handshake ---------------------------------------- */

struct upager_ll_api_info {
	uint64_t features; /* features the kernel enabled on this fd */
	uint64_t ioctls;   /* bit (1 << _UFFDIO_x) per fd-wide ioctl */
	uint64_t missing;  /* on -EOPNOTSUPP: requested features it lacks */
};

/*
 * UFFDIO_API with @features requested.  The kernel accepts the handshake
 * once per fd.  When it refuses because a requested feature is missing,
 * upager probes a separate fd to find which, stores them in info->missing
 * and returns -EOPNOTSUPP; upager_ll_feature_name() names each bit.
 * @info may be NULL.  Returns 0, -EOPNOTSUPP, -EINVAL (handshake already
 * done, or a feature combination the kernel rejects), -EFAULT, -EPERM
 * (UFFD_FEATURE_EVENT_FORK needs CAP_SYS_PTRACE when the fd is user-mode
 * only).
 */
int upager_ll_api(int fd, uint64_t features, struct upager_ll_api_info *info);

/* ---- what the running kernel offers ---------------------------------- */

enum upager_ll_memtype {
	UPAGER_LL_MEM_ANON,
	UPAGER_LL_MEM_SHMEM,
	UPAGER_LL_MEM_HUGETLB,
	UPAGER_LL_MEM_COUNT,
};

/* Room for memory types to come in struct upager_ll_probe's arrays. */
#define UPAGER_LL_MEM_SLOTS 8

/*
 * What the kernel offers this process.  It starts with its size, not
 * reserved space: the probe grows with the kernel (each new feature or
 * memory type may bring a field), at no pace a fixed reserve could
 * follow.  Fields are only ever appended; the per-memory-type arrays
 * have room for UPAGER_LL_MEM_SLOTS types so that a new type appends
 * nothing.
 */
struct upager_ll_probe {
	/*
	 * In: sizeof(struct upager_ll_probe) as the caller was built.  Out:
	 * the bytes upager_ll_probe() filled (an older library fills less;
	 * the rest of a newer caller's struct is zeroed).
	 */
	uint32_t size;
	enum upager_ll_path path; /* how a fresh fd was opened */
	uint64_t features;	  /* every feature bit the kernel reported */
	/*
	 * Of those, the ones this process may enable: each feature is asked
	 * for alone on a descriptor of its own, so that one the kernel
	 * refuses hides no other.
	 */
	uint64_t available;
	/*
	 * Reported by the kernel but refused to this process for lack of a
	 * privilege (EPERM); upager_ll_feature_privilege() names it.  A bit
	 * in features that is in neither mask was refused for another
	 * reason.
	 */
	uint64_t refused;
	uint64_t ioctls; /* fd-wide ioctls */
	/*
	 * Range ioctls the kernel grants when a small area of each memory type
	 * is registered with MISSING (and WP, MINOR where the features allow),
	 * on a descriptor with every available feature but WP_ASYNC; 0 when
	 * that memory type could not be tried (e.g. no free hugetlb page:
	 * registering hugetlb needs no page, but the area does).
	 */
	uint64_t range_ioctls[UPAGER_LL_MEM_SLOTS];
	uint64_t register_modes[UPAGER_LL_MEM_SLOTS]; /* modes accepted */
};

/*
 * Fill @p, whose size field the caller sets, from descriptors of its own
 * (the handshake can be done only once per fd, so probing never consumes
 * the caller's): one per feature, then one per memory type, registering
 * a one-page area of each type to learn the range ioctls.  Any thread.
 * Returns 0, -EINVAL (@p->size smaller than the size field), or the
 * -errno of upager_ll_open() / UFFDIO_API on the first descriptor.
 */
int upager_ll_probe(struct upager_ll_probe *p);

/* Kernel name of one feature bit ("MOVE", "WP_ASYNC"...), or NULL. */
const char *upager_ll_feature_name(uint64_t bit);
/*
 * The privilege the kernel wants before it enables feature @bit, or NULL
 * when it wants none: "CAP_SYS_PTRACE" for UFFD_FEATURE_EVENT_FORK (the
 * child's memory is handed to whoever holds the descriptor, which is
 * what ptrace would allow), however the descriptor was opened.
 */
const char *upager_ll_feature_privilege(uint64_t bit);
/* Kernel name of one ioctl number, _UFFDIO_x ("COPY"...), or NULL. */
const char *upager_ll_ioctl_name(unsigned int nr);
/* Name of a memory type ("anon", "shmem", "hugetlb"). */
const char *upager_ll_memtype_name(enum upager_ll_memtype t);
/*
 * Write the names of the bits set in @features, separated by ", ", into
 * @buf (always NUL-terminated when @len > 0).  Returns the length the full
 * string needs, like snprintf().
 */
int upager_ll_feature_list(uint64_t features, char *buf, size_t len);

/* ---- ranges ----------------------------------------------------------- */

/*
 * UFFDIO_REGISTER [addr, addr+len) with @mode, a combination of
 * UFFDIO_REGISTER_MODE_MISSING / _WP / _MINOR.  @ioctls, if not NULL,
 * receives the range ioctls the kernel grants there (bit 1 << _UFFDIO_x).
 * A range that is only partly mapped is registered where it is mapped.
 * Returns 0, -EINVAL (unaligned, empty, mode not allowed for the memory
 * type, nothing mapped in the range; -ENOMEM for that before Linux 6.1),
 * -EBUSY (already registered with another uffd), -EPERM.
 */
int upager_ll_register(int fd, void *addr, size_t len, uint64_t mode,
		       uint64_t *ioctls);
/* UFFDIO_UNREGISTER; wakes all faults waiting in the range.  0 or -errno. */
int upager_ll_unregister(int fd, void *addr, size_t len);

/* ---- resolving faults ------------------------------------------------- */
/*
 * The install calls share one contract.  They return 0 when the whole
 * range was done.  Otherwise they return -errno and, if @done is not
 * NULL, store in *@done the bytes that were done before the error, so a
 * caller can resume at dst + *done:
 *   -EAGAIN  partial: the kernel stopped early (the memory map changed
 *            under it, or a later page hit an error); *done may be > 0.
 *   -EEXIST  the first page is already present (another thread resolved
 *            it: a normal race for a multi-threaded handler).
 *   -ENOENT  the VMA is gone or is no longer registered.
 *   -ESRCH   the faulting process's mm is gone (non-cooperative case).
 *   -ENOSPC  same, on older kernels.
 *   -EINVAL  unaligned or out-of-range arguments, or a bad mode.
 *   -EFAULT  @src is not readable.
 * *done is always written, 0 on an immediate error.
 */

/* UFFDIO_COPY; @mode: UFFDIO_COPY_MODE_DONTWAKE, UFFDIO_COPY_MODE_WP. */
int upager_ll_copy(int fd, void *dst, const void *src, size_t len,
		   uint64_t mode, size_t *done);
/* UFFDIO_ZEROPAGE; @mode: UFFDIO_ZEROPAGE_MODE_DONTWAKE. */
int upager_ll_zeropage(int fd, void *dst, size_t len, uint64_t mode,
		       size_t *done);
/*
 * UFFDIO_CONTINUE: map the page already in the page cache (MINOR faults on
 * shmem / hugetlb).  @mode: UFFDIO_CONTINUE_MODE_DONTWAKE, _MODE_WP.
 * Needs UFFD_FEATURE_MINOR_SHMEM or _MINOR_HUGETLBFS.
 */
int upager_ll_continue(int fd, void *dst, size_t len, uint64_t mode,
		       size_t *done);
/*
 * UFFDIO_POISON: later accesses get SIGBUS.  @mode:
 * UFFDIO_POISON_MODE_DONTWAKE.  Needs UFFD_FEATURE_POISON.
 */
int upager_ll_poison(int fd, void *dst, size_t len, uint64_t mode,
		     size_t *done);
/*
 * UFFDIO_MOVE: move the pages of [src, src+len) to dst without copying;
 * src becomes unmapped.  Private anonymous memory only, src pages must not
 * be shared (after fork) or pinned.  @mode: UFFDIO_MOVE_MODE_DONTWAKE,
 * UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES (without it a hole in src is -ENOENT).
 * -EEXIST: a dst page is populated.  -EBUSY: a src page is pinned or
 * shared, or a THP could not be split.  Needs UFFD_FEATURE_MOVE.
 */
int upager_ll_move(int fd, void *dst, void *src, size_t len, uint64_t mode,
		   size_t *done);
/* UFFDIO_WAKE: wake threads waiting on [addr, addr+len).  0 or -errno. */
int upager_ll_wake(int fd, void *addr, size_t len);
/*
 * UFFDIO_WRITEPROTECT: @mode UFFDIO_WRITEPROTECT_MODE_WP protects the
 * range, 0 removes protection and wakes unless _MODE_DONTWAKE.  The range
 * must be registered with UFFDIO_REGISTER_MODE_WP.  0 or -errno (-ENOENT,
 * -EINVAL, -EAGAIN while the map changes).
 */
int upager_ll_writeprotect(int fd, void *addr, size_t len, uint64_t mode);

/* ---- events ----------------------------------------------------------- */

enum upager_ll_event_kind {
	UPAGER_LL_EVENT_PAGEFAULT = 1,
	UPAGER_LL_EVENT_FORK,
	UPAGER_LL_EVENT_REMAP,
	UPAGER_LL_EVENT_REMOVE,
	UPAGER_LL_EVENT_UNMAP,
	UPAGER_LL_EVENT_UNKNOWN, /* a kind this library does not know */
};

struct upager_ll_event {
	enum upager_ll_event_kind kind;
	uint8_t raw_event; /* uffd_msg.event as read */
	union {
		struct {
			uint64_t address; /* page-aligned unless EXACT_ADDRESS */
			uint64_t flags;	  /* UFFD_PAGEFAULT_FLAG_* */
			bool write;
			bool wp;
			bool minor;
			uint32_t tid; /* with UFFD_FEATURE_THREAD_ID, else 0 */
		} pagefault;
		struct {
			int uffd; /* the child's uffd: the reader owns it */
		} fork;
		struct {
			uint64_t from;
			uint64_t to;
			uint64_t len;
		} remap;
		struct {
			uint64_t start; /* REMOVE and UNMAP: [start, end) */
			uint64_t end;
		} range;
	};
};

/*
 * One read(2) of up to @max messages into @msgs.  Returns the number of
 * messages, -EAGAIN when the fd is non-blocking and nothing is queued,
 * -EINTR, -EINVAL (handshake not done), -EBADF, or -EIO if the kernel
 * returned a partial message.
 */
int upager_ll_read(int fd, struct uffd_msg *msgs, size_t max);
/* Decode one message.  Never fails: unknown kinds decode as UNKNOWN. */
void upager_ll_decode(const struct uffd_msg *msg, struct upager_ll_event *ev);
/* Read and decode up to @max events; same returns as upager_ll_read(). */
int upager_ll_read_events(int fd, struct upager_ll_event *evs, size_t max);
/* Name of an event kind ("PAGEFAULT", "FORK"...). */
const char *upager_ll_event_name(enum upager_ll_event_kind kind);

/* ---- PAGEMAP_SCAN (WP_ASYNC dirty collection) ------------------------ */

/* Open /proc/self/pagemap read-only, O_CLOEXEC.  fd or -errno. */
int upager_ll_pagemap_open(void);
/*
 * The PAGEMAP_SCAN ioctl (Linux 6.7) on a pagemap fd; @arg->size is
 * filled in here.  Returns the number of page_region entries written to
 * arg->vec, or -errno: -EINVAL for bad masks or flags, or a start not
 * page-aligned; -EFAULT for an end before start or a range or vector
 * not in the address space; -EPERM when PM_SCAN_CHECK_WPASYNC meets a
 * VMA not registered WP_ASYNC; -ENOTTY before 6.7.  arg->walk_end tells
 * where the walk stopped when arg->vec filled, but see
 * upager_ll_scan_written(): where it went on to the end it may be stale.
 * Any thread.
 */
int upager_ll_pagemap_scan(int pagemap_fd, struct pm_scan_arg *arg);
/*
 * The common case of the above: the written (dirty) pages of
 * [start, start+len), PAGE_IS_WRITTEN, adjacent ones merged, into @vec
 * of @nvec regions.  With @reset the kernel write-protects the pages it
 * reports, atomically (PM_SCAN_WP_MATCHING), so that the next scan
 * reports only pages written after this one; the range must then be
 * registered WP with UFFD_FEATURE_WP_ASYNC (PM_SCAN_CHECK_WPASYNC).
 * When the pages do not fit in @vec, a scan of [*next, start+len) goes
 * on where this one stopped: @next, if not NULL, receives that address,
 * start+len once the range is done; a loop that calls again from *next
 * until it reaches the end reports each written page exactly once (not
 * the kernel's walk_end, which can be stale: tests/wp_async).
 * Returns the number of regions in @vec, or -EINVAL (@vec NULL or @nvec
 * 0: with @reset the kernel would protect pages and report none), or the
 * errors of upager_ll_pagemap_scan() (-EPERM: @reset on a range not
 * WP_ASYNC).  Linux 6.7 (PAGEMAP_SCAN).  Any thread.
 */
int upager_ll_scan_written(int pagemap_fd, void *start, size_t len,
			   struct page_region *vec, size_t nvec, bool reset,
			   uint64_t *next);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif
