// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager stat: live statistics of running handlers.  A handler created
 * with a stats_name keeps its counters in /dev/shm/upager-PID-NAME (see
 * src/engine/stats_page.h); this command maps those files read-only, so reading
 * them costs the running process nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <upager/upager.h>

#include "cli.h"
#include "engine/stats_page.h"

struct stat_opts {
	bool json;
	long pid; /* 0: every process */
	struct json j;
	int shown;
};

static void sum_page(const struct stats_page *pg, struct upager_stats *tot)
{
	const uint64_t *src;
	uint64_t *dst = (uint64_t *)tot;

	memcpy(tot, &pg->retired, sizeof(*tot));
	for (int i = 0; i < STATS_SLOTS; i++) {
		if (__atomic_load_n(&pg->slot[i].used, __ATOMIC_ACQUIRE) != 1)
			continue;
		src = (const uint64_t *)&pg->slot[i].st;
		for (size_t k = 0; k < sizeof(*tot) / sizeof(uint64_t); k++)
			dst[k] += src[k];
	}
}

static void text_stats(const char *indent, const struct upager_stats *s)
{
	printf("%sfaults %" PRIu64 " (missing %" PRIu64 ", minor %" PRIu64
	       ", in-thread %" PRIu64 ", dup %" PRIu64 ", stray %" PRIu64 ")\n",
	       indent, s->faults, s->faults_missing, s->faults_minor,
	       s->faults_inthread, s->faults_dup, s->faults_stray);
	printf("%spages filled %" PRIu64 ", fetched %.1f MiB, zero pages %" PRIu64
	       "\n",
	       indent, s->pages_filled, (double)s->bytes_fetched / (1 << 20),
	       s->zero_pages);
	printf("%sread-ahead pages %" PRIu64 " (used %" PRIu64 ", wasted %" PRIu64
	       ")\n",
	       indent, s->ra_pages, s->ra_used, s->ra_wasted);
	printf("%sEEXIST races %" PRIu64 ", EAGAIN retries %" PRIu64
	       ", store errors %" PRIu64 "\n",
	       indent, s->eexist, s->eagain, s->store_errors);
	printf("%sservice time p50 %.0f us, p99 %.0f us\n", indent,
	       upager_stats_percentile(s, 50), upager_stats_percentile(s, 99));
}

static void json_stats(struct json *j, const char *key,
		       const struct upager_stats *s)
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
	json_f64(j, "latency_p50_us", upager_stats_percentile(s, 50));
	json_f64(j, "latency_p99_us", upager_stats_percentile(s, 99));
	json_arr_open(j, "latency_hist_us");
	for (int i = 0; i < UPAGER_LAT_BUCKETS; i++)
		json_u64(j, NULL, s->lat_hist[i]);
	json_arr_close(j);
	json_obj_close(j);
}

static void show(struct stat_opts *o, const struct stats_page *pg)
{
	struct upager_stats tot;

	sum_page(pg, &tot);
	if (o->json) {
		json_obj_open(&o->j, NULL);
		json_u64(&o->j, "pid", pg->pid);
		json_str(&o->j, "name", pg->name);
		json_u64(&o->j, "threads", pg->threads);
		json_stats(&o->j, "total", &tot);
		json_arr_open(&o->j, "regions");
	} else {
		printf("%spid %u handler '%s' (%" PRIu64 " workers)\n",
		       o->shown ? "\n" : "", pg->pid, pg->name, pg->threads);
		text_stats("  ", &tot);
	}
	for (int i = 0; i < STATS_SLOTS; i++) {
		const struct stats_slot *s = &pg->slot[i];

		if (__atomic_load_n(&s->used, __ATOMIC_ACQUIRE) != 1)
			continue;
		if (o->json) {
			json_obj_open(&o->j, NULL);
			json_u64(&o->j, "addr", s->addr);
			json_u64(&o->j, "len", s->len);
			json_u64(&o->j, "fill", s->fill);
			json_str(&o->j, "store", s->store);
			json_str(&o->j, "memtype", s->memtype);
			json_stats(&o->j, "stats", &s->st);
			json_obj_close(&o->j);
		} else {
			printf("  region %#" PRIx64 " %.1f MiB, %s, fill %" PRIu64
			       " KiB, store %s\n",
			       s->addr, (double)s->len / (1 << 20), s->memtype,
			       s->fill >> 10, s->store);
			text_stats("    ", &s->st);
		}
	}
	if (o->json) {
		json_arr_close(&o->j);
		json_obj_close(&o->j);
	}
	o->shown++;
}

/* Map one statistics file; NULL (and a reason) when it is not one. */
static const struct stats_page *open_page(const char *path)
{
	const struct stats_page *pg;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || (size_t)st.st_size != sizeof(*pg)) {
		close(fd);
		return NULL;
	}
	pg = mmap(NULL, sizeof(*pg), PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (pg == MAP_FAILED)
		return NULL;
	if (__atomic_load_n(&pg->magic, __ATOMIC_ACQUIRE) != STATS_MAGIC ||
	    pg->version != STATS_VERSION) {
		munmap((void *)pg, sizeof(*pg));
		return NULL;
	}
	return pg;
}

static int usage(void)
{
	printf("usage: upager stat [--json] [PID]\n\n"
	       "Live statistics of the upager handlers that publish them\n"
	       "(upager_handler_params.stats_name): faults by kind, pages and\n"
	       "bytes filled, zero pages, read-ahead used and wasted, EEXIST\n"
	       "races, store errors and fault service time, per handler and\n"
	       "per region.  Reads /dev/shm/upager-PID-NAME; files of processes\n"
	       "that are gone are removed.\n\n"
	       "  --json   one JSON object, for scripts\n");
	return 0;
}

int cmd_stat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct stat_opts o = { 0 };
	uint64_t pid;
	struct dirent *de;
	DIR *d;
	int c;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o.json = true;
			break;
		case 'h':
			return usage();
		default:
			return cli_usage_error("stat", "unknown option");
		}
	}
	if (optind < argc) {
		if (!cli_parse_u64("stat", "PID", argv[optind++], 1, INT32_MAX,
				   false, &pid))
			return 2;
		o.pid = (long)pid;
	}
	if (optind < argc)
		return cli_usage_error("stat", "unexpected argument '%s'",
				       argv[optind]);
	d = opendir(STATS_DIR);
	if (!d)
		return cli_error("stat", "%s: %s", STATS_DIR, strerror(errno));
	if (o.json) {
		json_begin(&o.j, stdout);
		json_arr_open(&o.j, "handlers");
	}
	while ((de = readdir(d))) {
		char path[512];
		const struct stats_page *pg;
		long fpid;

		if (strncmp(de->d_name, STATS_PREFIX, strlen(STATS_PREFIX)))
			continue;
		fpid = strtol(de->d_name + strlen(STATS_PREFIX), NULL, 10);
		if (o.pid && fpid != o.pid)
			continue;
		snprintf(path, sizeof(path), "%s/%s", STATS_DIR, de->d_name);
		if (fpid > 0 && kill((pid_t)fpid, 0) < 0 && errno == ESRCH) {
			unlink(path); /* its process died without cleaning up */
			continue;
		}
		pg = open_page(path);
		if (!pg)
			continue;
		show(&o, pg);
		munmap((void *)pg, sizeof(*pg));
	}
	closedir(d);
	if (o.json) {
		json_arr_close(&o.j);
		json_end(&o.j);
	} else if (!o.shown && o.pid) {
		printf("no upager statistics published by pid %ld\n", o.pid);
		return 1;
	} else if (!o.shown) {
		printf("no upager statistics published\n");
	}
	return 0;
}
