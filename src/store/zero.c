// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The zero store: every page reads as zeros.  "zero" has no end, which
 * suits a region that only wants demand-zero memory served by a handler;
 * "zero:1G" ends after 1 GiB, so that reads past it fail as they would
 * past the end of a file.  The smallest complete store: only the
 * mandatory slots and the zero_run() hint that lets a handler install
 * its pages with UFFDIO_ZEROPAGE instead of copying.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "engine/store_call.h"
#include "store/builtin.h"

static int zero_open(const char *arg, struct upager_store **out)
{
	uint64_t npages = UPAGER_STORE_UNBOUNDED, size;
	struct upager_store *s;
	int ret;

	if (*arg) {
		ret = parse_size(arg, &size);
		if (ret)
			return ret;
		if (!size)
			return -EINVAL;
		npages = store_pages(size);
	}
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ops = &store_zero_ops;
	s->npages = npages;
	s->flags = UPAGER_STORE_SIGNAL_SAFE;
	*out = s;
	return 0;
}

static int zero_fetch(struct upager_store *s, uint64_t pgoff, void *dst,
		      size_t npages)
{
	(void)s;
	(void)pgoff;
	memset(dst, 0, npages * UPAGER_STORE_PAGE);
	return 0;
}

static size_t zero_zero_run(struct upager_store *s, uint64_t pgoff,
			    size_t npages)
{
	(void)s;
	(void)pgoff;
	return npages;
}

static void zero_close(struct upager_store *s)
{
	free(s);
}

const struct upager_store_ops store_zero_ops = {
	.size = sizeof(struct upager_store_ops),
	.name = "zero",
	.help = "zero[:SIZE]  pages of zeros (K/M/G/T suffixes; no end "
		"without SIZE)",
	.open = zero_open,
	.fetch = zero_fetch,
	.close = zero_close,
	.zero_run = zero_zero_run,
};
