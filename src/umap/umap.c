// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * UMap's calls over upager's public API: one process-wide handler,
 * created by the first umap() and freed with the last mapping (no thread
 * outlives the mappings), and per mapping a region over the file store
 * of the caller's descriptor with UMap's buffer as its budget.  One lock
 * serializes the calls; the faults are the handler's and never take it,
 * so holding it across a write-back or a prefault waits for no one
 * holding it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <upager/umap.h>
#include <upager/upager.h>

#include "config.h"

#define PAGE UPAGER_STORE_PAGE

struct mapping {
	struct upager_region *r;
	struct upager_store *s;
	char *addr;
	size_t len;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct upager_handler *handler;
static struct mapping *maps;
static size_t nmaps, maps_cap;

static void say(const char *call, const char *what, int err)
{
	fprintf(stderr, "umap: %s: %s: %s\n", call, what, strerror(err));
}

/* UMap's calls answer as the system calls do: -1 and errno. */
static int unix_ret(int err)
{
	if (!err)
		return 0;
	errno = -err;
	return -1;
}

/* The mapping holding [@p, @p+@len), or NULL. */
static struct mapping *find(const char *p, size_t len)
{
	for (size_t i = 0; i < nmaps; i++)
		if (p >= maps[i].addr && len <= maps[i].len &&
		    (size_t)(p - maps[i].addr) <= maps[i].len - len)
			return &maps[i];
	return NULL;
}

static int handler_get(const struct umap_config *c)
{
	struct upager_handler_params hp = {
	    .size = sizeof(hp),
	    .threads = (unsigned int)c->fillers,
	    .batch = (unsigned int)c->max_fault_events,
	    .evictors = (unsigned int)c->evictors,
	    /*
	     * UMap's fillers are UMAP_PAGE_FILLERS threads, no more: no
	     * spares while one waits in the file.
	     */
	    .spare_workers = -1,
	};
	int err = 0;

	if (handler)
		return 0;
	handler = upager_handler_new(&hp, &err);
	if (!handler)
		return err;
	err = upager_handler_start(handler);
	if (err) {
		upager_handler_free(handler);
		handler = NULL;
	}
	return err;
}

/* The last mapping is gone: so are the threads. */
static void handler_put(void)
{
	if (nmaps || !handler)
		return;
	upager_handler_free(handler);
	handler = NULL;
}

/* A line on stderr saying what umap() can't take; -EINVAL. */
static int refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int refuse(const char *fmt, ...)
{
	va_list ap;

	fputs("umap: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -EINVAL;
}

static int check_args(const struct umap_config *c, void *addr, size_t len,
		      int prot, int flags, int fd, off_t offset)
{
	int fl;

	if (!len || len % c->page_size)
		return refuse("length %zu is not a multiple of UMAP_PAGESIZE "
			      "(%llu)",
			      len, (unsigned long long)c->page_size);
	if (!(prot & PROT_READ) || (prot & ~(PROT_READ | PROT_WRITE)))
		return refuse("prot %#x: PROT_READ, optionally with "
			      "PROT_WRITE, is supported",
			      prot);
	if (!(flags & UMAP_PRIVATE) || (flags & ~(UMAP_PRIVATE | UMAP_FIXED)))
		return refuse("flags %#x: UMAP_PRIVATE, optionally with "
			      "UMAP_FIXED, is supported",
			      flags);
	if ((flags & UMAP_FIXED) && (uintptr_t)addr % c->page_size)
		return refuse("UMAP_FIXED address %p is not aligned to "
			      "UMAP_PAGESIZE",
			      addr);
	if (offset < 0 || offset % PAGE)
		return refuse("offset %lld is not a multiple of %u",
			      (long long)offset, PAGE);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0) {
		fl = errno;
		fprintf(stderr, "umap: descriptor %d: %s\n", fd, strerror(fl));
		return -fl;
	}
	if ((prot & PROT_WRITE) && (fl & O_ACCMODE) != O_RDWR) {
		fprintf(stderr, "umap: PROT_WRITE needs a descriptor open "
				"for reading and writing (O_RDWR)\n");
		return -EACCES;
	}
	return 0;
}

static int maps_grow(void)
{
	struct mapping *m;
	size_t cap = maps_cap ? maps_cap * 2 : 8;

	if (nmaps < maps_cap)
		return 0;
	m = realloc(maps, cap * sizeof(*m));
	if (!m)
		return -ENOMEM;
	maps = m;
	maps_cap = cap;
	return 0;
}

/*
 * upager_map() picks the address; UMAP_FIXED moves the region where the
 * program wants it with mremap(), which the engine follows (EVENT_REMAP)
 * as it would the program's own: nothing is resident yet, so nothing
 * is copied.
 */
static int place(struct mapping *m, void *addr)
{
	void *p = mremap(m->addr, m->len, m->len, MREMAP_MAYMOVE | MREMAP_FIXED,
			 addr);

	if (p == MAP_FAILED)
		return -errno;
	m->addr = upager_region_addr(m->r);
	return m->addr == addr ? 0 : -EFAULT;
}

static int map_one(const struct umap_config *c, struct mapping *m, void *addr,
		   int prot, int flags, int fd, off_t offset)
{
	struct upager_map_params mp = {
	    .size = sizeof(mp),
	    .memtype = UPAGER_MEM_ANON,
	    .flags = UPAGER_MAP_TRACK_WRITES,
	    .fill = (size_t)c->page_size,
	    .readahead_max = c->read_ahead
				 ? (size_t)(c->read_ahead * c->page_size)
				 : (size_t)-1,
	    /* UMap reads what is asked and its read-ahead, no more. */
	    .fault_around = c->read_ahead ? 0 : (size_t)-1,
	    .budget = (size_t)(c->buf_pages * c->page_size),
	    .high_water = (unsigned int)c->high_water,
	    .low_water = (unsigned int)c->low_water,
	    .evict = UPAGER_EVICT_FIFO,
	};
	int err = 0;

	m->s = upager_store_file_fd(
	    fd, (uint64_t)offset, prot & PROT_WRITE ? 0 : UPAGER_FILE_READONLY,
	    &err);
	if (!m->s) {
		say("umap()", "the file's store", -err);
		return err;
	}
	m->addr = upager_map(handler, m->s, m->len, &mp, &m->r, &err);
	if (!m->addr) {
		if (err == -ERANGE)
			fprintf(stderr, "umap: the file is shorter than offset "
					"+ length\n");
		else
			say("umap()", "upager_map", -err);
		upager_store_close(m->s);
		return err == -ERANGE ? -EINVAL : err;
	}
	err = flags & UMAP_FIXED ? place(m, addr) : 0;
	if (!err && !(prot & PROT_WRITE) &&
	    mprotect(m->addr, m->len, PROT_READ))
		err = -errno;
	if (err) {
		say("umap()", "placing the mapping", -err);
		upager_unmap(m->r);
		upager_store_close(m->s);
	}
	return err;
}

void *umap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
	struct umap_config c;
	struct mapping m = {.len = length};
	int err;

	err = umap_config(&c);
	if (err)
		goto out;
	err = check_args(&c, addr, length, prot, flags, fd, offset);
	if (err)
		goto out;
	pthread_mutex_lock(&lock);
	err = maps_grow();
	err = err ?: handler_get(&c);
	err = err ?: map_one(&c, &m, addr, prot, flags, fd, offset);
	if (!err)
		maps[nmaps++] = m;
	handler_put();
	pthread_mutex_unlock(&lock);
out:
	if (err) {
		errno = -err;
		return UMAP_FAILED;
	}
	return m.addr;
}

/* Write @m back; an error is told, and stays dirty in memory. */
static int sync_one(const char *call, struct mapping *m)
{
	int err = upager_region_sync(m->r, 0, m->len);

	if (err)
		fprintf(stderr, "umap: %s: writing %p+%zu back: %s\n", call,
			(void *)m->addr, m->len, strerror(-err));
	return err;
}

int uunmap(void *addr, size_t length)
{
	struct mapping *m;
	int err = -EINVAL;

	pthread_mutex_lock(&lock);
	m = find(addr, length);
	if (!m || m->addr != addr || m->len != length) {
		fprintf(stderr,
			"umap: uunmap(%p, %zu): not a mapping of "
			"umap() (address and length as it returned)\n",
			addr, length);
		goto out;
	}
	/* A mapping whose pages can't go back stays, and so do they. */
	err = sync_one("uunmap", m);
	if (err)
		goto out;
	err = upager_unmap(m->r);
	if (err)
		say("uunmap()", "upager_unmap", -err);
	upager_store_close(m->s);
	*m = maps[--nmaps];
	handler_put();
out:
	pthread_mutex_unlock(&lock);
	return unix_ret(err);
}

int umap_flush(void)
{
	int err = 0, e;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nmaps; i++) {
		e = sync_one("umap_flush", &maps[i]);
		err = err ?: e;
	}
	pthread_mutex_unlock(&lock);
	return unix_ret(err);
}

int umap_has_write_support(void)
{
	return 1;
}

/* The units of @m's fill size covering [@p, @p+@len), as offsets. */
static void span(const struct mapping *m, size_t unit, const char *p,
		 size_t len, size_t *off, size_t *n)
{
	size_t start = (size_t)(p - m->addr) / unit * unit;
	size_t end = (size_t)(p - m->addr) + len;

	*off = start;
	*n = (end - start + unit - 1) / unit * unit;
}

void umap_prefetch(int npages, struct umap_prefetch_item *page_array)
{
	struct umap_config c;
	size_t off, n;
	int err;

	if (umap_config(&c))
		return;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < npages; i++) {
		const char *p = page_array[i].page_base_addr;
		struct mapping *m = find(p, 1);

		if (!m) {
			fprintf(stderr,
				"umap: umap_prefetch: %p is in no "
				"mapping\n",
				(const void *)p);
			continue;
		}
		span(m, (size_t)c.page_size, p, 1, &off, &n);
		err = upager_region_prefault(m->r, off, n);
		if (err)
			fprintf(stderr, "umap: umap_prefetch: %p: %s\n",
				(const void *)p, strerror(-err));
	}
	pthread_mutex_unlock(&lock);
}

void umap_fetch_and_pin(char *paddr, uint64_t size)
{
	struct umap_config c;
	struct mapping *m;
	size_t off, n;
	int err;

	if (umap_config(&c))
		return;
	pthread_mutex_lock(&lock);
	m = size <= SIZE_MAX ? find(paddr, (size_t)size) : NULL;
	if (!m) {
		fprintf(stderr,
			"umap: umap_fetch_and_pin(%p, %llu): not "
			"inside one mapping\n",
			(void *)paddr, (unsigned long long)size);
	} else {
		span(m, (size_t)c.page_size, paddr, (size_t)size, &off, &n);
		err = upager_region_pin(m->r, off, n);
		if (err)
			fprintf(stderr,
				"umap: umap_fetch_and_pin(%p, %llu): "
				"%s\n",
				(void *)paddr, (unsigned long long)size,
				strerror(-err));
	}
	pthread_mutex_unlock(&lock);
}
