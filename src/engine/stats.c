// SPDX-License-Identifier: LGPL-2.1-or-later
/* Statistics: counters, the latency histogram, and their publication in a
 * shared-memory file for `upager stat`. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "base/util.h"
#include "engine/stats_page.h"

#define NFIELDS (sizeof(struct upager_stats) / sizeof(uint64_t))

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void stats_latency(struct upager_stats *st, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned int b = us ? 64 - (unsigned int)__builtin_clzll(us) : 0;

	if (b >= UPAGER_LAT_BUCKETS)
		b = UPAGER_LAT_BUCKETS - 1;
	STAT_ADD(st, lat_hist[b], 1);
}

void stats_add(struct upager_stats *dst, const struct upager_stats *src)
{
	uint64_t *d = (uint64_t *)dst;
	const uint64_t *s = (const uint64_t *)src;

	for (size_t i = 0; i < NFIELDS; i++)
		__atomic_fetch_add(&d[i], __atomic_load_n(&s[i], __ATOMIC_RELAXED),
				   __ATOMIC_RELAXED);
}

void stats_read(const struct upager_stats *src, struct upager_stats *dst)
{
	const uint64_t *s = (const uint64_t *)src;
	uint64_t *d = (uint64_t *)dst;

	for (size_t i = 0; i < NFIELDS; i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

double upager_stats_percentile(const struct upager_stats *s, double p)
{
	uint64_t total = 0, seen = 0;

	for (int i = 0; i < UPAGER_LAT_BUCKETS; i++)
		total += s->lat_hist[i];
	if (!total)
		return 0;
	for (int i = 0; i < UPAGER_LAT_BUCKETS; i++) {
		seen += s->lat_hist[i];
		if ((double)seen >= p / 100.0 * (double)total)
			return (double)(1ull << i);
	}
	return (double)(1ull << (UPAGER_LAT_BUCKETS - 1));
}

/*
 * Create @path, the owner's only (it holds the regions' addresses), and
 * hold a lock on it for the handler's life.  A file already there under
 * our pid that nobody holds was left by a dead process whose pid we got
 * (one killed with SIGKILL never removes its file): it is replaced.  A
 * held one is a live handler's of that name: -EEXIST.
 */
static int publish_create(const char *path)
{
	for (int tries = 0; tries < 2; tries++) {
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

		if (fd >= 0) {
			/* Nobody else has it open yet: cannot fail. */
			flock(fd, LOCK_EX | LOCK_NB);
			return fd;
		}
		if (errno != EEXIST)
			return -errno;
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 && errno == ENOENT)
			continue; /* gone meanwhile */
		if (fd < 0)
			return -EEXIST;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			return -EEXIST;
		}
		unlink(path);
		close(fd);
	}
	return -EEXIST;
}

int stats_publish_open(struct upager_handler *h, const char *name)
{
	struct stats_page *pg;
	int fd;

	if (!*name || strchr(name, '/') || strlen(name) >= sizeof(pg->name))
		return -EINVAL;
	snprintf(h->pub_path, sizeof(h->pub_path), STATS_DIR "/" STATS_PREFIX
		 "%d-%s", (int)getpid(), name);
	fd = publish_create(h->pub_path);
	if (fd < 0)
		return fd;
	if (ftruncate(fd, sizeof(*pg)) < 0) {
		int ret = -errno;

		close(fd);
		unlink(h->pub_path);
		return ret;
	}
	pg = mmap(NULL, sizeof(*pg), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (pg == MAP_FAILED) {
		close(fd);
		unlink(h->pub_path);
		return -ENOMEM;
	}
	h->pub_fd = fd;
	pg->version = STATS_VERSION;
	pg->pid = (uint32_t)getpid();
	snprintf(pg->name, sizeof(pg->name), "%s", name);
	pg->threads = h->nthreads;
	stats_add(&pg->retired, h->retired);
	__atomic_store_n(&pg->magic, STATS_MAGIC, __ATOMIC_RELEASE);
	h->pub = pg;
	h->retired = &pg->retired;
	return 0;
}

void stats_publish_close(struct upager_handler *h)
{
	if (!h->pub)
		return;
	stats_read(h->retired, &h->retired_own);
	h->retired = &h->retired_own;
	munmap(h->pub, sizeof(*h->pub));
	unlink(h->pub_path);
	close(h->pub_fd);
	h->pub = NULL;
}

static const char *memtype_name(enum upager_memtype t)
{
	static const char *const names[] = { "anon", "shmem", "hugetlb" };

	return names[t];
}

struct upager_stats *stats_publish_region(struct upager_handler *h,
					  struct upager_region *r, int *slot)
{
	*slot = -1;
	if (!h->pub)
		return &r->own;
	for (int i = 0; i < STATS_SLOTS; i++) {
		struct stats_slot *s = &h->pub->slot[i];
		uint64_t free_slot = 0;

		if (!__atomic_compare_exchange_n(&s->used, &free_slot, 2, false,
						 __ATOMIC_ACQUIRE,
						 __ATOMIC_RELAXED))
			continue;
		memset(&s->st, 0, sizeof(s->st));
		s->addr = (uintptr_t)r->addr;
		s->len = r->len;
		s->fill = r->fill;
		snprintf(s->store, sizeof(s->store), "%s", r->store->ops->name);
		snprintf(s->memtype, sizeof(s->memtype), "%s",
			 memtype_name(r->memtype));
		__atomic_store_n(&s->used, 1, __ATOMIC_RELEASE);
		*slot = i;
		return &s->st;
	}
	return &r->own; /* more regions than slots: not published */
}

void stats_publish_release(struct upager_handler *h, int slot)
{
	if (slot >= 0 && h->pub)
		__atomic_store_n(&h->pub->slot[slot].used, 0, __ATOMIC_RELEASE);
}
