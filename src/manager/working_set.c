// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Working sets (the REAP and FaaSnap technique): an export that records
 * notes, per client, the export pages its regions fill for a first-touch
 * fault (the engine's on_touch), in order, and writes them to a trace
 * when the client goes; an export that replays hands each region the
 * trace's pages inside it as a prefetch list, so the workers install
 * them in the background while faults go first.
 *
 * Recording runs on the fault path of every worker: an entry is one
 * atomic add and a store into an array sized, at the attach, for every
 * page of the client's regions on that export (mapped as it fills), so
 * nothing there allocates or locks and nothing overflows.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "manager/manager.h"

#define PG 4096

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Bytes per fill unit of @w: 0 means the page size of its memory. */
static size_t fill_of(const struct want *w)
{
	if (w->fill)
		return w->fill;
	return w->memtype == UPAGER_MEM_HUGETLB ? 2u << 20 : PG;
}

static void on_touch(void *arg, struct upager_region *r, size_t off)
{
	struct ws_touch *t = arg;
	struct ws_rec *rec = t->rec;
	uint64_t ns = mono_ns() - rec->t0;
	uint64_t i =
	    atomic_fetch_add_explicit(&rec->n, t->pages, memory_order_relaxed);

	(void)r;
	for (unsigned int k = 0; k < t->pages && i + k < rec->cap; k++)
		rec->e[i + k] =
		    (struct upager_trace_entry){t->pgoff + off / PG + k, ns};
}

static struct ws_rec *rec_for(struct client *c, const struct want *w,
			      unsigned int n, struct export *ex)
{
	struct ws_rec *rec;
	uint64_t cap = 0;

	for (rec = c->recs; rec; rec = rec->next)
		if (rec->ex == ex)
			return rec;
	for (unsigned int i = 0; i < n; i++)
		if (w[i].ex == ex)
			cap += w[i].len / PG;
	rec = calloc(1, sizeof(*rec));
	if (!rec)
		return NULL;
	rec->map_len = cap * sizeof(*rec->e);
	rec->e = mmap(NULL, rec->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (rec->e == MAP_FAILED) {
		free(rec);
		return NULL;
	}
	rec->ex = ex;
	rec->cap = cap;
	rec->t0 = mono_ns();
	rec->next = c->recs;
	c->recs = rec;
	return rec;
}

int ws_record(struct client *c, const struct want *w, unsigned int n,
	      unsigned int i, struct upager_map_params *mp)
{
	struct ws_touch *t = &c->touch[i];

	if (!w[i].ex->record_dir)
		return 0;
	t->rec = rec_for(c, w, n, w[i].ex);
	if (!t->rec)
		return -ENOMEM;
	t->pgoff = w[i].offset / PG;
	t->pages = (unsigned int)(fill_of(&w[i]) / PG);
	mp->on_touch = on_touch;
	mp->touch_arg = t;
	mp->readahead_max = (size_t)-1;
	mp->fault_around = (size_t)-1;
	return 0;
}

int ws_replay(struct client *c, const struct want *w, struct upager_region *r)
{
	const struct upager_trace *t = w->ex->replay;
	uint64_t first = w->offset / PG, pages = w->len / PG, k = 0;
	size_t fill = fill_of(w);
	uint64_t *offs;
	int ret;

	if (!t)
		return 0;
	offs = malloc((t->count ? t->count : 1) * sizeof(*offs));
	if (!offs)
		return -ENOMEM;
	for (uint64_t i = 0; i < t->count; i++) {
		uint64_t p = t->entries[i].page;

		if (p >= first && p - first < pages)
			offs[k++] = (p - first) * PG / fill * fill;
	}
	ret = k ? upager_region_prefetch(r, offs, k) : 0;
	free(offs);
	if (!ret && k)
		mgr_event(c->m, c, UPAGER_EV_NOTE, NULL, 0,
			  "replaying %" PRIu64 " pages of the working set of "
			  "'%s' into [%#" PRIx64 ", +%#" PRIx64 ")",
			  k, w->ex->name, w->addr, w->len);
	return ret;
}

/* Write @rec's trace; 0 or -errno, @path set. */
static int rec_write(struct client *c, struct ws_rec *rec, char *path,
		     size_t len, uint64_t *pages)
{
	struct upager_trace t = {.export_pages = rec->ex->store->npages};
	uint64_t n = atomic_load(&rec->n);
	int ret;

	snprintf(path, len, "%s/%s.%d.%" PRIu64 ".trace", rec->ex->record_dir,
		 rec->ex->name, (int)c->cred.pid, c->id);
	snprintf(t.export_name, sizeof(t.export_name), "%s", rec->ex->name);
	t.count = n < rec->cap ? n : rec->cap;
	t.entries = malloc((t.count ? t.count : 1) * sizeof(*t.entries));
	if (!t.entries)
		return -ENOMEM;
	memcpy(t.entries, rec->e, t.count * sizeof(*t.entries));
	/* Two regions over the same pages, workers' clocks a hair apart. */
	ret = upager_trace_normalize(&t);
	if (!ret)
		ret = upager_trace_write(path, &t);
	*pages = t.count;
	free(t.entries);
	return ret;
}

void ws_release(struct client *c)
{
	while (c->recs) {
		struct ws_rec *rec = c->recs;
		char path[4200];
		uint64_t pages = 0;
		int ret;

		c->recs = rec->next;
		if (c->state == C_ATTACHED) {
			ret = rec_write(c, rec, path, sizeof(path), &pages);
			if (ret)
				mgr_event(c->m, c, UPAGER_EV_NOTE, NULL, ret,
					  "recording the working set of '%s' "
					  "to %s: %s",
					  rec->ex->name, path, strerror(-ret));
			else
				mgr_event(c->m, c, UPAGER_EV_NOTE, NULL, 0,
					  "recorded %" PRIu64 " pages of '%s' "
					  "to %s",
					  pages, rec->ex->name, path);
		}
		munmap(rec->e, rec->map_len);
		free(rec);
	}
}
