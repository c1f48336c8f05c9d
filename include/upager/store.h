/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * upager page stores: where a region's pages come from.
 *
 * A store fills buffers; it knows nothing of userfaultfd, so each store
 * can be tested alone.  Stores address their data in 4 KiB pages
 * (UPAGER_STORE_PAGE) whatever the fill unit of the region reading them.
 * A store is chosen by the prefix of a spec string ("zero",
 * "file:/data/img", "mem:64M"), SQLite-VFS style: upager ships zero, file
 * and mem, and a user can register their own ops table.
 */
#ifndef UPAGER_STORE_H
#define UPAGER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

#define UPAGER_STORE_PAGE 4096u
#define UPAGER_STORE_UNBOUNDED UINT64_MAX

/* Store flags (struct upager_store.flags). */
/*
 * fetch() (and direct(), zero_run() if present) are async-signal-safe:
 * no locks, no allocation, only async-signal-safe syscalls.  Required for
 * regions in in-thread mode, where the faulting thread fetches from its
 * own SIGBUS handler, unless the store has fetch_signal().
 */
#define UPAGER_STORE_SIGNAL_SAFE (1u << 0)
/*
 * Reading pages beyond the ones asked for costs little (memory, the page
 * cache): regions over such a store fill around a random fault by
 * default (upager_map_params.fault_around).
 */
#define UPAGER_STORE_CHEAP (1u << 1)

struct upager_store;
struct upager_region;

/*
 * The ops table of a kind of store.  Append-only: new optional slots are
 * added at the end and @size tells which ones a table has.  Optional
 * slots may be NULL.  Every slot but open() may be called from several
 * handler threads at once and must be thread-safe.
 */
struct upager_store_ops {
	uint32_t size; /* sizeof(struct upager_store_ops) at build time */
	const char *name; /* "file": the spec is "file" or "file:ARG" */
	const char *help; /* one line: "file:PATH[,direct]  pages of a file" */
	/*
	 * Open from @arg, the part of the spec after "name:" ("" when
	 * none).  On success store a new store in *@out (its ops, npages
	 * and flags set) and return 0; else -errno (-EINVAL for a malformed
	 * @arg).
	 */
	int (*open)(const char *arg, struct upager_store **out);
	/*
	 * Fill @dst with @npages pages starting at page @pgoff.  The range
	 * lies inside the store (callers check against npages).  0 or
	 * -errno; a short read is an error (-EIO), never zeros.
	 */
	int (*fetch)(struct upager_store *s, uint64_t pgoff, void *dst,
		     size_t npages);
	void (*close)(struct upager_store *s);
	/*
	 * Optional: the address of @npages pages at @pgoff in memory that
	 * stays valid and unchanged while the store is open, or NULL.  Lets
	 * a handler install pages straight from the store with no staging
	 * copy (the mem store).
	 */
	const void *(*direct)(struct upager_store *s, uint64_t pgoff,
			      size_t npages);
	/*
	 * Optional hint: how many pages from @pgoff (at most @npages) are
	 * known to read as zeros (a hole in a sparse file); 0 when unknown.
	 * The handler installs such runs with UFFDIO_ZEROPAGE.
	 */
	size_t (*zero_run)(struct upager_store *s, uint64_t pgoff,
			   size_t npages);
	/* Optional: write @npages pages from @src at @pgoff.  0 or -errno. */
	int (*writeback)(struct upager_store *s, uint64_t pgoff,
			 const void *src, size_t npages);
	/*
	 * Optional, for stores that push pages nobody asked for (a remote
	 * store receiving a background stream): called by upager_map() once
	 * the region is live, and by upager_unmap() before it goes.  Between
	 * the two the store may call upager_region_install() from its own
	 * threads.  attach() returns 0 or -errno (the map then fails);
	 * -EBUSY when the store serves one region at most and has one.
	 */
	int (*attach)(struct upager_store *s, struct upager_region *r);
	void (*detach)(struct upager_store *s, struct upager_region *r);
	/*
	 * Optional: the handler is done with a range direct() gave it (the
	 * pages are installed).  A store that maps its data on demand may
	 * unmap it here, so the memory is not held twice (the file store
	 * drops its mapping of the range; the page cache stays and can be
	 * reclaimed or dropped).
	 */
	void (*release)(struct upager_store *s, uint64_t pgoff, size_t npages);
	/*
	 * Optional: the store's pages are a file whose page cache is memory
	 * (tmpfs, a memfd): its descriptor, valid while the store is open,
	 * and in *@offset the byte offset of page 0 in it; -errno when not
	 * (-EOPNOTSUPP).  A region over such a store maps the file itself,
	 * privately (copy-on-write), and a fault maps the page that is
	 * already in memory with UFFDIO_CONTINUE: no copy, no allocation
	 * (UPAGER_MAP_COPY asks for the copying path instead).
	 */
	int (*memfile)(struct upager_store *s, uint64_t *offset);
	/*
	 * Optional: fetch() made async-signal-safe (no locks, no
	 * allocation, only async-signal-safe syscalls), for a store whose
	 * fetch() is not (a client library that locks or allocates, as
	 * libmemcached does).  Regions over such a store may run in-thread
	 * (UPAGER_MAP_IN_THREAD), and their fills call it instead of
	 * fetch().  Same arguments, returns and thread-safety as fetch().
	 * A store whose fetch() is itself async-signal-safe sets
	 * UPAGER_STORE_SIGNAL_SAFE instead.
	 */
	int (*fetch_signal)(struct upager_store *s, uint64_t pgoff, void *dst,
			    size_t npages);
};

/* Every store starts with this; the store's private state follows. */
struct upager_store {
	const struct upager_store_ops *ops;
	uint64_t npages;    /* size in pages, or UPAGER_STORE_UNBOUNDED */
	unsigned int flags; /* UPAGER_STORE_* */
};

/*
 * Make @ops findable by its name.  The table must outlive its use.
 * Returns 0, -EEXIST (the name is taken), -EINVAL (no name, open, fetch
 * or close, or @size too small).  Thread-safe.
 */
int upager_store_register(const struct upager_store_ops *ops);
/*
 * Make @ops unfindable again: stores already open from it keep working
 * (the table must outlive them).  Returns 0, -ENOENT (not registered),
 * -EPERM (a built-in kind), -EINVAL (@ops NULL).  Thread-safe.
 */
int upager_store_unregister(const struct upager_store_ops *ops);
/* The ops table registered under @name, or NULL.  Thread-safe. */
const struct upager_store_ops *upager_store_find(const char *name);
/*
 * Call @fn for each registered store kind (built-in ones first), e.g. to
 * list them in --help.  @fn may itself register, unregister, find or
 * open stores; kinds registered meanwhile are left for the next walk.
 * Returns 0, or -ENOMEM without calling @fn.  Thread-safe.
 */
int upager_store_foreach(void (*fn)(const struct upager_store_ops *ops,
				    void *arg),
			 void *arg);

/*
 * Open a store from a spec "NAME" or "NAME:ARG".  On error returns NULL
 * and sets *@err: -ENOENT when no store is named so, else the store's
 * open() error.  Thread-safe.
 */
struct upager_store *upager_store_open(const char *spec, int *err);
/*
 * Bounds-checked fetch: -ERANGE when [pgoff, pgoff+npages) is not inside
 * the store, else the store's fetch() result.
 */
int upager_store_fetch(struct upager_store *s, uint64_t pgoff, void *dst,
		       size_t npages);
/* Write back when the store can: -EOPNOTSUPP when it has no writeback. */
int upager_store_writeback(struct upager_store *s, uint64_t pgoff,
			   const void *src, size_t npages);
void upager_store_close(struct upager_store *s);

/*
 * The file store over an open descriptor @fd (the file: store, see
 * upager_store_open("file:PATH")), from byte @offset of the file on (a
 * multiple of UPAGER_STORE_PAGE, at most the file's size): the store's
 * size is the file's at open minus @offset.  The store works on its own
 * duplicate of @fd (close yours when you like) and never moves the file
 * position the two share, so it does not look for holes (they read as
 * zeros all the same, only without the zero-page shortcut).  A descriptor
 * opened with O_DIRECT makes the store read and write past the page
 * cache, whole aligned pages from aligned buffers; O_RDWR makes it
 * writable (writeback()) unless @flags has UPAGER_FILE_READONLY.  A
 * fetch that comes short (the file shrank) is -EIO, never zeros.  NULL
 * with *err = -EINVAL (unknown @flags, @offset misaligned or past the
 * end, not a regular file or block device, a filesystem that refuses
 * O_DIRECT or wants it aligned to more than a page, O_DIRECT and O_RDWR
 * over a size that is not whole pages), -EBADF (@fd is not open for
 * reading), -EISDIR, -ENOMEM, or fcntl()'s and fstat()'s errors.  Any
 * thread.
 */
#define UPAGER_FILE_READONLY (1u << 0) /* no writeback() over O_RDWR */
struct upager_store *upager_store_file_fd(int fd, uint64_t offset,
					  unsigned int flags, int *err);

/*
 * A size as store specs write it ("mem:64M", "zero:1G"): decimal digits
 * with an optional K, M, G or T suffix (powers of 1024, either case), and
 * nothing else.  For stores of one's own, so that their specs read sizes
 * as the built-in ones do.  0, -EINVAL (not such a size), -ERANGE (more
 * than 64 bits).  Any thread.
 */
int upager_store_parse_size(const char *str, uint64_t *out);

/*
 * The mem store: an in-memory image of @len bytes (rounded up to whole
 * pages), zeroed, that the caller fills through upager_store_mem_data().
 * Also opened by spec as "mem:SIZE" (K/M/G suffixes).  Its fetch() is
 * async-signal-safe and it offers direct().
 */
struct upager_store *upager_store_mem_new(uint64_t len, int *err);
/* The image of a mem store (NULL for another kind of store). */
void *upager_store_mem_data(struct upager_store *s);
/*
 * A mem store over @len bytes of existing memory at @addr (a multiple of
 * the page size), e.g. a live region of this process to export through a
 * page server (include/upager/remote.h): a postcopy migration source.  No
 * copy is made: fetch() and direct() read @addr as it is at that moment.
 * The caller keeps the memory mapped until upager_store_close(), which
 * leaves it alone.  NULL with *err = -EINVAL (NULL @addr, @len 0 or not a
 * multiple of UPAGER_STORE_PAGE), -ENOMEM.
 */
struct upager_store *upager_store_mem_wrap(void *addr, uint64_t len, int *err);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif
