// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The mem store: an image in this process's memory, zeroed at first, that
 * the caller fills through upager_store_mem_data() ("mem:64M" by spec).
 * It is the store for tests and for pages produced in memory (a snapshot
 * taken, a decompressed image), and the one store that offers direct(): a
 * handler can install from the image itself with no staging copy.
 * upager_store_mem_wrap() puts the same store over memory the caller
 * owns, such as a live region a page server exports.
 *
 * fetch(), direct() and writeback() are a memcpy() or an addition, with
 * no lock: memcpy() is async-signal-safe (POSIX.1-2024 lists it, and
 * glibc's has always been), so the store is SIGNAL_SAFE.  A writeback
 * racing a fetch of the same page would tear it; the engine never does
 * both at once on one page (it claims pages before moving them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/util.h"
#include "engine/store_call.h"
#include "store/builtin.h"

struct mem_store {
	struct upager_store s;
	char *data;
	size_t len;
	bool owned; /* mapped here, not by upager_store_mem_wrap()'s caller */
};

static struct mem_store *to_mem(struct upager_store *s)
{
	return (struct mem_store *)s;
}

struct upager_store *upager_store_mem_new(uint64_t len, int *err)
{
	uint64_t npages = store_pages(len);
	struct mem_store *m = NULL;
	int ret = 0;

	if (!len) {
		ret = -EINVAL;
		goto out;
	}
	if (npages > SIZE_MAX / UPAGER_STORE_PAGE) {
		ret = -ENOMEM;
		goto out;
	}
	m = malloc(sizeof(*m));
	if (!m) {
		ret = -ENOMEM;
		goto out;
	}
	/*
	 * An anonymous mapping, not malloc(): zeroed, page aligned, and
	 * only the pages written cost memory.
	 */
	m->len = npages * UPAGER_STORE_PAGE;
	m->data = mmap(NULL, m->len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m->data == MAP_FAILED) {
		ret = -errno;
		free(m);
		m = NULL;
		goto out;
	}
	m->owned = true;
	m->s.ops = &store_mem_ops;
	m->s.npages = npages;
	m->s.flags = UPAGER_STORE_SIGNAL_SAFE | UPAGER_STORE_CHEAP;
out:
	if (err)
		*err = ret;
	return m ? &m->s : NULL;
}

struct upager_store *upager_store_mem_wrap(void *addr, uint64_t len, int *err)
{
	struct mem_store *m = NULL;
	int ret = -EINVAL;

	if (!addr || !len || len % UPAGER_STORE_PAGE || (size_t)len != len)
		goto out;
	ret = -ENOMEM;
	m = malloc(sizeof(*m));
	if (!m)
		goto out;
	ret = 0;
	m->data = addr;
	m->len = (size_t)len;
	m->owned = false;
	m->s.ops = &store_mem_ops;
	m->s.npages = len / UPAGER_STORE_PAGE;
	m->s.flags = UPAGER_STORE_SIGNAL_SAFE | UPAGER_STORE_CHEAP;
out:
	if (err)
		*err = ret;
	return m ? &m->s : NULL;
}

void *upager_store_mem_data(struct upager_store *s)
{
	return s && s->ops == &store_mem_ops ? to_mem(s)->data : NULL;
}

static int mem_open(const char *arg, struct upager_store **out)
{
	uint64_t len;
	int ret = parse_size(arg, &len);

	if (ret)
		return ret;
	*out = upager_store_mem_new(len, &ret);
	return ret;
}

static int mem_fetch(struct upager_store *s, uint64_t pgoff, void *dst,
		     size_t npages)
{
	memcpy(dst, to_mem(s)->data + pgoff * UPAGER_STORE_PAGE,
	       npages * UPAGER_STORE_PAGE);
	return 0;
}

static const void *mem_direct(struct upager_store *s, uint64_t pgoff,
			      size_t npages)
{
	(void)npages;
	return to_mem(s)->data + pgoff * UPAGER_STORE_PAGE;
}

static int mem_writeback(struct upager_store *s, uint64_t pgoff,
			 const void *src, size_t npages)
{
	memcpy(to_mem(s)->data + pgoff * UPAGER_STORE_PAGE, src,
	       npages * UPAGER_STORE_PAGE);
	return 0;
}

static void mem_close(struct upager_store *s)
{
	struct mem_store *m = to_mem(s);

	if (m->owned)
		munmap(m->data, m->len);
	free(m);
}

const struct upager_store_ops store_mem_ops = {
	.size = sizeof(struct upager_store_ops),
	.name = "mem",
	.help = "mem:SIZE  an image in memory, zeroed (K/M/G/T suffixes)",
	.open = mem_open,
	.fetch = mem_fetch,
	.close = mem_close,
	.direct = mem_direct,
	.writeback = mem_writeback,
};
