// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Map a file through upager and sum it: the region is filled on first
 * touch from a file: store by a handler's worker threads, with read-ahead.
 * The handler publishes its statistics, so while the program holds the
 * mapping (HOLD_SECONDS) `upager stat` shows them.
 *
 *   mapfile FILE [HOLD_SECONDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <upager/upager.h>

static void die(const char *what, int err)
{
	fprintf(stderr, "mapfile: %s: %s\n", what, strerror(-err));
	exit(1);
}

int main(int argc, char **argv)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .stats_name = "mapfile" };
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	struct upager_stats st;
	uint64_t sum = 0;
	char spec[4096];
	size_t len;
	uint64_t *p;
	int err;

	if (argc < 2) {
		fprintf(stderr, "usage: mapfile FILE [HOLD_SECONDS]\n");
		return 2;
	}
	snprintf(spec, sizeof(spec), "file:%s", argv[1]);
	s = upager_store_open(spec, &err);
	if (!s)
		die(argv[1], err);
	h = upager_handler_new(&hp, &err);
	if (!h)
		die("handler", err);
	len = s->npages * UPAGER_STORE_PAGE;
	p = upager_map(h, s, len, NULL, &r, &err);
	if (!p)
		die("upager_map", err);
	err = upager_handler_start(h);
	if (err < 0)
		die("upager_handler_start", err);

	for (size_t i = 0; i < len / sizeof(*p); i++)
		sum += p[i];

	upager_region_stats(r, &st);
	printf("sum %llu pages %zu\n", (unsigned long long)sum, len / 4096);
	fflush(stdout);
	if (argc > 2)
		sleep((unsigned int)atoi(argv[2]));
	upager_unmap(r);
	upager_handler_free(h);
	upager_store_close(s);
	return 0;
}
