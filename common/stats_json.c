// SPDX-License-Identifier: LGPL-2.1-or-later
/* The engine's counters as JSON (see stats_json.h). */
#include "stats_json.h"

void json_stats(struct json *j, const char *key, const struct upager_stats *s)
{
	json_obj_open(j, key);
	json_u64(j, "faults", s->faults);
	json_u64(j, "faults_missing", s->faults_missing);
	json_u64(j, "faults_minor", s->faults_minor);
	json_u64(j, "faults_wp", s->faults_wp);
	json_u64(j, "faults_inthread", s->faults_inthread);
	json_u64(j, "faults_dup", s->faults_dup);
	json_u64(j, "faults_stray", s->faults_stray);
	json_u64(j, "pages_filled", s->pages_filled);
	json_u64(j, "bytes_fetched", s->bytes_fetched);
	json_u64(j, "zero_pages", s->zero_pages);
	json_u64(j, "ra_pages", s->ra_pages);
	json_u64(j, "ra_used", s->ra_used);
	json_u64(j, "ra_wasted", s->ra_wasted);
	json_u64(j, "eexist", s->eexist);
	json_u64(j, "eagain", s->eagain);
	json_u64(j, "store_errors", s->store_errors);
	json_u64(j, "faults_spurious", s->faults_spurious);
	json_u64(j, "pages_removed", s->pages_removed);
	json_u64(j, "forks", s->forks);
	json_u64(j, "remaps", s->remaps);
	json_u64(j, "pages_unmapped", s->pages_unmapped);
	json_u64(j, "prefetch_pages", s->prefetch_pages);
	json_u64(j, "pages_dirtied", s->pages_dirtied);
	json_u64(j, "pages_evicted", s->pages_evicted);
	json_u64(j, "pages_written", s->pages_written);
	json_u64(j, "writeback_errors", s->writeback_errors);
	json_u64(j, "snapshot_pages", s->snapshot_pages);
	json_f64(j, "latency_p50_us", upager_stats_percentile(s, 50));
	json_f64(j, "latency_p99_us", upager_stats_percentile(s, 99));
	json_arr_open(j, "latency_hist_us");
	for (int i = 0; i < UPAGER_LAT_BUCKETS; i++)
		json_u64(j, NULL, s->lat_hist[i]);
	json_arr_close(j);
	json_obj_close(j);
}
