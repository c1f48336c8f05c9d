/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The published-statistics file: /dev/shm/upager-PID-NAME, one per
 * handler created with stats_name.  The library updates the counters in
 * place with relaxed atomics, so publishing costs nothing on the fault
 * path; `upager stat` reads the file (src/engine/stat_read.c).  Native
 * layout, versioned by magic + version.  Every version starts with the
 * magic, the version, the pid and the name as below.  Changing the layout
 * means a new STATS_VERSION, and a frozen copy of the old layout in
 * stat_read.c, which reads files of processes still running an older
 * library by their own version.
 */
#ifndef UPAGER_STATS_PAGE_H
#define UPAGER_STATS_PAGE_H

#include <stdint.h>

#include "upager/upager.h"

#define STATS_MAGIC 0x7473726567617075ull /* "upagerst" */
#define STATS_VERSION 2 /* 2: upager_stats grew (events, spurious, reserved) */
#define STATS_SLOTS 64
#define STATS_DIR "/dev/shm"
#define STATS_PREFIX "upager-"

struct stats_slot {
	uint64_t used; /* 1 while a region owns it (written last) */
	uint64_t addr;
	uint64_t len;
	uint64_t fill;
	char store[48];	  /* the store's kind */
	char memtype[16];
	struct upager_stats st;
};

struct stats_page {
	uint64_t magic;
	uint32_t version;
	uint32_t pid;
	char name[64];
	uint64_t threads;
	struct upager_stats retired; /* unmapped regions and stray faults */
	struct stats_slot slot[STATS_SLOTS];
};

#endif
