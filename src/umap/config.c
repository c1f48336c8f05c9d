// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * UMap's environment variables, parsed as UMap documents them (0 is the
 * default, as UMap reads it) but checked: a value upager can't honour is
 * an error naming the variable, not a silent default.  Counts above the
 * engine's limits (threads, batch) are capped there, because UMap's own
 * defaults (one thread per CPU, 256 events) would exceed them on a big
 * machine and a program tuned for UMap must still run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <upager/umap.h>

#include "config.h"

#define SYS_PAGE 4096u
#define MAX_PAGE (1ull << 30)
/* The engine's limits (upager_handler_params). */
#define MAX_FILLERS  32u
#define MAX_EVICTORS 16u
#define MAX_BATCH    64u
/* upager_map_params.budget: at least 4 fill units. */
#define MIN_BUF_PAGES 4u

struct var {
	const char *name;
	uint64_t def; /* when unset or 0 */
	uint64_t min; /* below it: refused */
	uint64_t max; /* above it: refused */
	uint64_t cap; /* above it (and up to max): taken as cap */
};

static void bad(const struct var *v, const char *val, const char *why)
{
	fprintf(stderr, "umap: %s=\"%s\": %s\n", v->name, val, why);
}

/* The value of @v in the environment.  0 or -EINVAL (told on stderr). */
static int read_var(const struct var *v, uint64_t *out)
{
	const char *val = getenv(v->name);
	char why[96];
	uint64_t n = 0;

	if (!val) {
		*out = v->def < v->cap ? v->def : v->cap;
		return 0;
	}
	if (!*val) {
		bad(v, val, "empty (unset it for the default)");
		return -EINVAL;
	}
	for (const char *c = val; *c; c++) {
		unsigned int d = (unsigned int)(*c - '0');

		if (d > 9) {
			bad(v, val, "not a decimal number");
			return -EINVAL;
		}
		if (n > (UINT64_MAX - d) / 10) {
			bad(v, val, "too large");
			return -EINVAL;
		}
		n = n * 10 + d;
	}
	if (!n) {
		*out = v->def < v->cap ? v->def : v->cap;
		return 0;
	}
	if (n < v->min || n > v->max) {
		snprintf(why, sizeof(why),
			 "out of range (%llu..%llu, or 0 for the default)",
			 (unsigned long long)v->min,
			 (unsigned long long)v->max);
		bad(v, val, why);
		return -EINVAL;
	}
	*out = n < v->cap ? n : v->cap;
	return 0;
}

static uint64_t online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (uint64_t)n : 16;
}

/* UMap's default buffer: 90% of the free memory, in its pages. */
static uint64_t default_buf_pages(uint64_t page_size)
{
	long free_pages = sysconf(_SC_AVPHYS_PAGES);
	uint64_t n;

	n = free_pages > 0 ? (uint64_t)free_pages * SYS_PAGE / 10 * 9 : 0;
	n /= page_size;
	return n > MIN_BUF_PAGES ? n : MIN_BUF_PAGES;
}

static int load(struct umap_config *c)
{
	uint64_t cpus = online_cpus(), hw, lw;
	struct var v;
	int ret;

	v = (struct var){"UMAP_PAGESIZE", SYS_PAGE, SYS_PAGE, MAX_PAGE,
			 MAX_PAGE};
	ret = read_var(&v, &c->page_size);
	if (!ret && (c->page_size & (c->page_size - 1))) {
		bad(&v, getenv(v.name), "not a power of two");
		ret = -EINVAL;
	}
	if (ret)
		return ret;
	v = (struct var){"UMAP_BUFSIZE", default_buf_pages(c->page_size),
			 MIN_BUF_PAGES, SIZE_MAX / c->page_size, UINT64_MAX};
	ret = read_var(&v, &c->buf_pages);
	v = (struct var){"UMAP_PAGE_FILLERS", cpus, 1, UINT64_MAX, MAX_FILLERS};
	ret = ret ?: read_var(&v, &c->fillers);
	v = (struct var){"UMAP_PAGE_EVICTORS", cpus, 1, UINT64_MAX,
			 MAX_EVICTORS};
	ret = ret ?: read_var(&v, &c->evictors);
	v = (struct var){"UMAP_MAX_FAULT_EVENTS", 256, 1, UINT64_MAX,
			 MAX_BATCH};
	ret = ret ?: read_var(&v, &c->max_fault_events);
	v = (struct var){"UMAP_READ_AHEAD", 0, 0, SIZE_MAX / c->page_size,
			 UINT64_MAX};
	ret = ret ?: read_var(&v, &c->read_ahead);
	v = (struct var){"UMAP_EVICT_HIGH_WATER_THRESHOLD", 90, 1, 100, 100};
	ret = ret ?: read_var(&v, &hw);
	if (ret)
		return ret;
	v = (struct var){"UMAP_EVICT_LOW_WATER_THRESHOLD", 70, 1, hw - 1,
			 UINT64_MAX};
	/* The default low mark under a high one set at 70 or less. */
	if (hw <= v.def)
		v.def = hw / 2;
	if (hw == 1 || !v.def) {
		fprintf(stderr,
			"umap: UMAP_EVICT_HIGH_WATER_THRESHOLD=%llu: "
			"leaves no room for the low mark below it\n",
			(unsigned long long)hw);
		return -EINVAL;
	}
	ret = read_var(&v, &lw);
	if (ret)
		return ret;
	c->high_water = (int)hw;
	c->low_water = (int)lw;
	return 0;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct umap_config cached;
static bool loaded;

int umap_config(struct umap_config *out)
{
	int ret = 0;

	pthread_mutex_lock(&lock);
	if (!loaded)
		ret = load(&cached);
	loaded = !ret;
	if (!ret)
		*out = cached;
	pthread_mutex_unlock(&lock);
	return ret;
}

/* The umapcfg_get_*() calls: the values in use, or 0 (told on stderr). */
#define GETTER(type, name, field)                                              \
	type name(void)                                                        \
	{                                                                      \
		struct umap_config c;                                          \
		return umap_config(&c) ? 0 : (type)c.field;                    \
	}
GETTER(uint64_t, umapcfg_get_umap_page_size, page_size)
GETTER(uint64_t, umapcfg_get_max_pages_in_buffer, buf_pages)
GETTER(uint64_t, umapcfg_get_num_fillers, fillers)
GETTER(uint64_t, umapcfg_get_num_evictors, evictors)
GETTER(uint64_t, umapcfg_get_max_fault_events, max_fault_events)
GETTER(uint64_t, umapcfg_get_read_ahead, read_ahead)
GETTER(int, umapcfg_get_evict_low_water_threshold, low_water)
GETTER(int, umapcfg_get_evict_high_water_threshold, high_water)

long umapcfg_get_system_page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}
