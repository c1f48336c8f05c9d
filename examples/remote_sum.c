// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Map a page server's export and sum it: the region runs at once, faults
 * are answered urgently while the background stream installs the rest.
 * Read-ahead is off, as it should be for remote: stores (the server
 * pushes every page anyway).
 *
 *   upager serve --listen tcp:127.0.0.1:0 img=file:/var/tmp/img &
 *   remote_sum remote:127.0.0.1:PORT/img
 *
 * Prints "sum N pages P" (the 64-bit little-endian words added up), and
 * the transfer's statistics on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <upager/remote.h>
#include <upager/upager.h>

static void die(const char *what, int err)
{
	fprintf(stderr, "remote_sum: %s: %s\n", what, strerror(-err));
	exit(1);
}

int main(int argc, char **argv)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	struct upager_remote_stats st = { .size = sizeof(st) };
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	const uint64_t *p;
	uint64_t sum = 0;
	size_t len;
	int err;

	if (argc != 2) {
		fprintf(stderr, "usage: remote_sum remote:HOST:PORT[/NAME]\n");
		return 2;
	}
	/* Workers first: the region serves faults from its first touch. */
	h = upager_handler_new(NULL, &err);
	if (!h || (err = upager_handler_start(h)) < 0)
		die("handler", err);
	s = upager_store_open(argv[1], &err);
	if (!s)
		die(argv[1], err);
	len = s->npages * UPAGER_STORE_PAGE;
	p = upager_map(h, s, len, &mp, &r, &err);
	if (!p)
		die("upager_map", err);

	for (const uint64_t *w = p; w < p + len / sizeof(*p); w++)
		sum += *w;
	printf("sum %llu pages %llu\n", (unsigned long long)sum,
	       (unsigned long long)s->npages);

	if (upager_remote_stats(s, &st) == 0)
		fprintf(stderr,
			"pushed %llu, urgent %llu (p50 %.0f us, p99 %.0f us), "
			"zero %llu, duplicates %llu, reconnects %llu\n",
			(unsigned long long)st.pages_pushed,
			(unsigned long long)st.pages_urgent,
			upager_remote_percentile(&st, 50),
			upager_remote_percentile(&st, 99),
			(unsigned long long)st.pages_zero,
			(unsigned long long)st.duplicates,
			(unsigned long long)st.reconnects);
	upager_unmap(r);
	upager_handler_free(h);
	upager_store_close(s);
	return 0;
}
