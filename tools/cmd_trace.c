// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager trace: the working-set traces upagerd records (--record), read
 * through the library's checked reader (<upager/trace.h>): what a trace
 * holds and when its pages were first touched, and several traces of one
 * export merged into one for --replay.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <upager/trace.h>

#include "cli.h"
#include "cmds.h"

#define STEPS 10

struct trace_opts {
	bool json, entries;
	const char *out; /* merge: the file to write */
	struct json j;
};

static int usage(void)
{
	printf("usage: upager trace [--json] [--entries] TRACE...\n"
	       "       upager trace --merge OUT TRACE...\n\n"
	       "Show working-set traces (upagerd --record NAME:DIR writes\n"
	       "them; docs/TRACE.md): the export, the pages first touched and\n"
	       "their size, the time from the first touch to the last, and a\n"
	       "timeline of first touches in %d equal steps of that time.\n\n"
	       "  --json          the same as one JSON object\n"
	       "  --entries       also every entry: page, ns after the attach\n"
	       "  --merge OUT     write one trace of every page the TRACEs\n"
	       "                  touched (traces of one export), each at its\n"
	       "                  earliest first touch, for upagerd --replay\n",
	       STEPS);
	return 0;
}

static void show_text(const char *path, const struct upager_trace *t,
		      const uint64_t *steps, uint64_t span, bool entries)
{
	uint64_t cum = 0;

	printf("%s: export '%s' (%" PRIu64 " pages, %.1f MiB)\n", path,
	       t->export_name, t->export_pages,
	       (double)t->export_pages * 4096 / (1 << 20));
	printf("  pages %" PRIu64 " (%.1f MiB, %.1f%% of the export), "
	       "first touches over %.3f ms\n",
	       t->count, (double)t->count * 4096 / (1 << 20),
	       t->export_pages
		   ? 100.0 * (double)t->count / (double)t->export_pages
		   : 0.0,
	       (double)span / 1e6);
	if (!t->count)
		return;
	printf("  %12s %10s %8s\n", "until (ms)", "pages", "total");
	for (int s = 0; s < STEPS; s++) {
		cum += steps[s];
		printf("  %12.3f %10" PRIu64 " %7.1f%%\n",
		       (double)span * (s + 1) / STEPS / 1e6, steps[s],
		       100.0 * (double)cum / (double)t->count);
	}
	for (uint64_t i = 0; entries && i < t->count; i++)
		printf("  %" PRIu64 " %" PRIu64 "\n", t->entries[i].page,
		       t->entries[i].ns);
}

static void show_json(struct trace_opts *o, const char *path,
		      const struct upager_trace *t, const uint64_t *steps,
		      uint64_t span)
{
	json_obj_open(&o->j, NULL);
	json_str(&o->j, "path", path);
	json_str(&o->j, "export", t->export_name);
	json_u64(&o->j, "export_pages", t->export_pages);
	json_u64(&o->j, "pages", t->count);
	json_u64(&o->j, "bytes", t->count * 4096);
	json_u64(&o->j, "span_ns", span);
	json_arr_open(&o->j, "timeline");
	for (int s = 0; s < STEPS && t->count; s++) {
		json_obj_open(&o->j, NULL);
		json_u64(&o->j, "until_ns", span * (s + 1) / STEPS);
		json_u64(&o->j, "pages", steps[s]);
		json_obj_close(&o->j);
	}
	json_arr_close(&o->j);
	if (o->entries) {
		json_arr_open(&o->j, "entries");
		for (uint64_t i = 0; i < t->count; i++) {
			json_arr_open(&o->j, NULL);
			json_u64(&o->j, NULL, t->entries[i].page);
			json_u64(&o->j, NULL, t->entries[i].ns);
			json_arr_close(&o->j);
		}
		json_arr_close(&o->j);
	}
	json_obj_close(&o->j);
}

static void show(struct trace_opts *o, const char *path,
		 const struct upager_trace *t)
{
	uint64_t steps[STEPS] = {0}, t0 = 0, span = 0;

	if (t->count) {
		t0 = t->entries[0].ns;
		span = t->entries[t->count - 1].ns - t0;
	}
	for (uint64_t i = 0; i < t->count; i++) {
		uint64_t d = t->entries[i].ns - t0;
		int s = span ? (int)((unsigned __int128)d * STEPS / span) : 0;

		steps[s < STEPS ? s : STEPS - 1]++;
	}
	if (o->json)
		show_json(o, path, t, steps, span);
	else
		show_text(path, t, steps, span, o->entries);
}

/* The merge of @in[0..n), written to o->out: NULL after an error. */
static struct upager_trace *merge(struct trace_opts *o,
				  struct upager_trace **in, int n)
{
	struct upager_trace *t;
	char why[256];
	int err;

	t = upager_trace_merge(in, (size_t)n, why, sizeof(why), &err);
	if (!t) {
		cli_error("trace", "merging: %s", why);
		return NULL;
	}
	err = upager_trace_write(o->out, t);
	if (err < 0) {
		upager_trace_free(t);
		cli_error("trace", "%s: %s", o->out, strerror(-err));
		return NULL;
	}
	return t;
}

int cmd_trace(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"entries", no_argument, NULL, 'e'},
	    {"merge", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {0}};
	struct trace_opts o = {0};
	struct upager_trace **in, *merged = NULL;
	int c, n, ret = 0;

	while ((c = getopt_long(argc, argv, "jeh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o.json = true;
			break;
		case 'e':
			o.entries = true;
			break;
		case 'm':
			o.out = optarg;
			break;
		case 'h':
			return usage();
		default:
			return cli_usage_error("trace", "unknown option");
		}
	}
	n = argc - optind;
	if (n < 1)
		return cli_usage_error("trace", "no TRACE given");
	in = calloc((size_t)n, sizeof(*in));
	if (!in)
		return cli_error("trace", "out of memory");
	for (int i = 0; i < n && !ret; i++) {
		char why[256];
		int err;

		in[i] =
		    upager_trace_read(argv[optind + i], why, sizeof(why), &err);
		if (!in[i])
			ret =
			    cli_error("trace", "%s: %s", argv[optind + i], why);
	}
	if (!ret && o.out && !(merged = merge(&o, in, n)))
		ret = 1;
	if (!ret) {
		if (o.json) {
			json_begin(&o.j, stdout);
			json_arr_open(&o.j, "traces");
		}
		if (merged)
			show(&o, o.out, merged);
		for (int i = 0; i < n && !merged; i++)
			show(&o, argv[optind + i], in[i]);
		if (o.json) {
			json_arr_close(&o.j);
			json_end(&o.j);
		}
	}
	upager_trace_free(merged);
	for (int i = 0; i < n; i++)
		upager_trace_free(in[i]);
	free(in);
	return ret;
}
