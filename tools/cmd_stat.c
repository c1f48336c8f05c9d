// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager stat: live statistics of running handlers.  A handler created
 * with a stats_name keeps its counters in /dev/shm/upager-PID-NAME; this
 * command reads them through the library's reader (<upager/stat.h>), so
 * reading costs the running process nothing and a file that is not what
 * it should be is an error naming it, never a crash.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <upager/stat.h>
#include <upager/upager.h>

#include "cli.h"
#include "stats_json.h"
#include "cmds.h"

struct stat_opts {
	bool json;
	long pid; /* 0: every process */
	struct json j;
	int shown;
	int errors; /* files that could not be read */
};

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
	       "), prefetched %" PRIu64 "\n",
	       indent, s->ra_pages, s->ra_used, s->ra_wasted, s->prefetch_pages);
	printf("%sEEXIST races %" PRIu64 ", EAGAIN retries %" PRIu64
	       ", store errors %" PRIu64 "\n",
	       indent, s->eexist, s->eagain, s->store_errors);
	if (s->faults_wp || s->pages_evicted || s->snapshot_pages)
		printf("%swrite faults %" PRIu64 ", pages dirtied %" PRIu64
		       ", evicted %" PRIu64 ", written back %" PRIu64
		       " (errors %" PRIu64 "), snapshot pages %" PRIu64 "\n",
		       indent, s->faults_wp, s->pages_dirtied, s->pages_evicted,
		       s->pages_written, s->writeback_errors,
		       s->snapshot_pages);
	printf("%sservice time p50 %.0f us, p99 %.0f us\n", indent,
	       upager_stats_percentile(s, 50), upager_stats_percentile(s, 99));
}

static void show(struct stat_opts *o, const struct upager_stat *st)
{
	struct upager_stat_info info = { .size = sizeof(info) };
	struct upager_stats tot, rs;

	upager_stat_info(st, &info);
	upager_stat_total(st, &tot);
	if (o->json) {
		json_obj_open(&o->j, NULL);
		json_u64(&o->j, "pid", info.pid);
		json_str(&o->j, "name", info.name);
		json_u64(&o->j, "threads", info.threads);
		json_stats(&o->j, "total", &tot);
		json_arr_open(&o->j, "regions");
	} else {
		printf("%spid %u handler '%s' (%" PRIu64 " workers)\n",
		       o->shown ? "\n" : "", info.pid, info.name, info.threads);
		text_stats("  ", &tot);
	}
	for (unsigned int i = 0; i < info.nregions; i++) {
		struct upager_stat_region r = { .size = sizeof(r) };

		upager_stat_region(st, i, &r, &rs);
		if (o->json) {
			json_obj_open(&o->j, NULL);
			json_u64(&o->j, "addr", r.addr);
			json_u64(&o->j, "len", r.len);
			json_u64(&o->j, "fill", r.fill);
			json_str(&o->j, "store", r.store);
			json_str(&o->j, "memtype", r.memtype);
			json_stats(&o->j, "stats", &rs);
			json_obj_close(&o->j);
		} else {
			printf("  region %#" PRIx64 " %.1f MiB, %s, fill %" PRIu64
			       " KiB, store %s\n",
			       r.addr, (double)r.len / (1 << 20), r.memtype,
			       r.fill >> 10, r.store);
			text_stats("    ", &rs);
		}
	}
	if (o->json) {
		json_arr_close(&o->j);
		json_obj_close(&o->j);
	}
	o->shown++;
}

/* upager_stat_list()'s callback: one file. */
static int show_file(const char *path, int pid, const char *name, void *arg)
{
	struct stat_opts *o = arg;
	struct upager_stat *st;
	const char *why;
	int err;

	(void)name;
	if (kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
		unlink(path); /* its process died without cleaning up */
		return 0;
	}
	st = upager_stat_read(path, &why, &err);
	if (!st) {
		/*
		 * Being created, or gone since it was listed: not there yet
		 * or any more.  Another user's file is theirs, unless its
		 * process was asked for by name.
		 */
		if (err == -EAGAIN || err == -ENOENT ||
		    (err == -EACCES && !o->pid))
			return 0;
		cli_error("stat", "%s: %s%s%s", path, strerror(-err),
			  why ? ": " : "", why ? why : "");
		o->errors++;
		return 0;
	}
	show(o, st);
	upager_stat_free(st);
	return 0;
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
	int c, ret;

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
	if (o.json) {
		json_begin(&o.j, stdout);
		json_arr_open(&o.j, "handlers");
	}
	ret = upager_stat_list((int)o.pid, show_file, &o);
	if (o.json) {
		json_arr_close(&o.j);
		json_end(&o.j);
	}
	if (ret < 0)
		return cli_error("stat", "/dev/shm: %s", strerror(-ret));
	if (o.errors)
		return 1;
	if (!o.json && !o.shown && o.pid) {
		printf("no upager statistics published by pid %ld\n", o.pid);
		return 1;
	}
	if (!o.json && !o.shown)
		printf("no upager statistics published\n");
	return 0;
}
