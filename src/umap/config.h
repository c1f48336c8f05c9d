/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* UMap's environment, read once (include/upager/umap.h has the rules). */
#ifndef UPAGER_UMAP_CONFIG_H
#define UPAGER_UMAP_CONFIG_H

#include <stdint.h>

struct umap_config {
	uint64_t page_size;	   /* UMAP_PAGESIZE, bytes */
	uint64_t buf_pages;	   /* UMAP_BUFSIZE, pages per mapping */
	uint64_t fillers;	   /* UMAP_PAGE_FILLERS */
	uint64_t evictors;	   /* UMAP_PAGE_EVICTORS */
	uint64_t max_fault_events; /* UMAP_MAX_FAULT_EVENTS */
	uint64_t read_ahead;	   /* UMAP_READ_AHEAD, pages */
	int high_water;		   /* UMAP_EVICT_HIGH_WATER_THRESHOLD, % */
	int low_water;		   /* UMAP_EVICT_LOW_WATER_THRESHOLD, % */
};

/*
 * The configuration: read from the environment at the first call that
 * finds it valid, the same ever after.  0, or -EINVAL after printing on
 * stderr which variable is wrong and why (read again at the next call).
 * Any thread.
 */
int umap_config(struct umap_config *out);

#endif
