/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UMap's C API over upager: libupager-umap (link -lupager-umap -lupager).
 *
 * LLNL's UMap maps a file into memory from user space: pages come in on
 * first touch, a buffer of at most UMAP_BUFSIZE pages stays resident,
 * and dirty pages go back to the file on eviction, umap_flush() and
 * uunmap().  A program written for UMap's header <umap/umap.h> builds
 * against this library with only its include and link flags changed
 * (pkg-config upager-umap: its -I makes <umap/umap.h> this header), from
 * C or C++.  docs/UMAP.md has the mapping onto upager and the
 * differences; in short:
 *
 *   int fd = open("data", O_RDWR | O_DIRECT);
 *   char *p = umap(NULL, len, PROT_READ | PROT_WRITE, UMAP_PRIVATE, fd, 0);
 *   ... p[0..len) reads the file, writes go back to it ...
 *   umap_flush();          // every dirty page written to its file
 *   uunmap(p, len);        // written back, then unmapped
 *
 * The configuration is UMap's environment (read once, at the first call
 * that needs it: later changes are not seen): UMAP_PAGESIZE (bytes per
 * page, a power of two from 4096 to 1 GiB; default 4096), UMAP_BUFSIZE
 * (resident pages per mapping, at least 4; default 90% of free memory),
 * UMAP_PAGE_FILLERS (threads that serve faults; default one per CPU, at
 * most 32), UMAP_PAGE_EVICTORS (threads that evict; default one per CPU,
 * at most 16), UMAP_EVICT_HIGH_WATER_THRESHOLD (percent of the buffer
 * where eviction starts, 1..100; default 90),
 * UMAP_EVICT_LOW_WATER_THRESHOLD (percent where it stops, below the high
 * mark; default 70, or half the high mark when that is 70 or less),
 * UMAP_READ_AHEAD (pages read ahead of a sequential stream; default 0, none),
 * UMAP_MAX_FAULT_EVENTS (faults read at once; default 256, at most 64 are).
 * Values are decimal; 0 means the default, as in UMap; counts above the
 * engine's limit are taken as the limit.  Anything else (not a number, out of
 * range) is refused: umap() prints which variable and why on stderr and fails
 * with EINVAL, and the umapcfg_get_*() calls print the same and return 0.
 *
 * Every call is thread-safe (one lock serializes them; the faults
 * themselves are served without it).  Kernel: userfaultfd with write
 * protection of anonymous memory (UFFD_FEATURE_PAGEFAULT_FLAG_WP) and
 * UFFDIO_MOVE (6.8).
 */
#ifndef UPAGER_UMAP_H
#define UPAGER_UMAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

#define UMAP_PRIVATE MAP_PRIVATE /* required in flags */
#define UMAP_FIXED   MAP_FIXED	 /* map at @addr, replacing what is there */
#define UMAP_FAILED  ((void *)-1)

/*
 * Map @length bytes of the file open at @fd from byte @offset on: the
 * file's data on first touch, writes written back to it (through @fd's
 * own flags: O_DIRECT is honoured) on eviction, umap_flush() and
 * uunmap().  @length is a multiple of UMAP_PAGESIZE; @offset of 4096 (UMap
 * itself ignores it); @prot PROT_READ, optionally with PROT_WRITE (which
 * needs @fd open O_RDWR); @flags UMAP_PRIVATE, optionally with
 * UMAP_FIXED (@addr then aligned to UMAP_PAGESIZE; without it @addr is
 * ignored).  @fd may be closed after the call.  The file must hold
 * @offset + @length bytes, and with O_DIRECT and PROT_WRITE a whole
 * number of 4 KiB pages.  Returns the address, or UMAP_FAILED with errno
 * EINVAL (the environment, a length, offset, prot or flags it cannot
 * take, the file too short: a line on stderr says which), EACCES
 * (PROT_WRITE over a descriptor not open for writing), EBADF, ENOMEM,
 * EOPNOTSUPP (the kernel lacks a feature), or another errno of the
 * engine or mremap().  Any thread.
 */
void *umap(void *addr, size_t length, int prot, int flags, int fd,
	   off_t offset);
/*
 * Write the mapping at @addr (as umap() returned it; @length its length)
 * back to its file, then unmap it.  0, or -1 with errno: EINVAL (no
 * mapping starts at @addr, or @length is not its length), or the error
 * of the write-back, which leaves the mapping in place (its dirty pages
 * are not dropped: call again, or copy them out), or of the unmap.
 * Any thread; not while another thread still touches the mapping.
 */
int uunmap(void *addr, size_t length);
/*
 * Write every dirty page of every mapping back to its file (msync-like:
 * on return the files hold what was written before the call).  0, or -1
 * with errno set to the first error (the pages that failed stay dirty
 * and resident).  Any thread.
 */
int umap_flush(void);
/* 1: mappings may be writable (PROT_WRITE) and are written back. */
int umap_has_write_support(void);

struct umap_prefetch_item {
	void *page_base_addr; /* an address in a mapping */
};
/*
 * Bring in the pages holding the @npages addresses of @page_array now,
 * from the calling thread; returns once they are resident (or evicted
 * again, when more than the buffer was asked for).  An address in no
 * mapping, or a read error, is told on stderr (the call has no return
 * value; the next touch of such a page meets the error as SIGBUS).
 */
void umap_prefetch(int npages, struct umap_prefetch_item *page_array);
/*
 * Bring in [@paddr, @paddr+@size) and keep it resident until uunmap():
 * eviction passes it over (it counts against the buffer).  Errors are
 * told on stderr, as for umap_prefetch().
 */
void umap_fetch_and_pin(char *paddr, uint64_t size);

/* The configuration in use (see above; 0 when the environment is bad). */
long umapcfg_get_system_page_size(void);
uint64_t umapcfg_get_umap_page_size(void);
uint64_t umapcfg_get_max_pages_in_buffer(void);
uint64_t umapcfg_get_num_fillers(void);
uint64_t umapcfg_get_num_evictors(void);
uint64_t umapcfg_get_max_fault_events(void);
uint64_t umapcfg_get_read_ahead(void);
int umapcfg_get_evict_low_water_threshold(void);
int umapcfg_get_evict_high_water_threshold(void);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif
