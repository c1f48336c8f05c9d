// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Named stores.  The engine decides what to do by which slots a store
 * has (direct(), zero_run(), attach()...), so a label has exactly the
 * slots of the store inside, and its flags: a region over it is filled
 * as one over the store itself would be.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "manager/label.h"

struct label {
	struct upager_store s;
	struct upager_store_ops ops;
	struct upager_store *inner;
	char name[48];
};

static struct upager_store *inner(struct upager_store *s)
{
	return ((struct label *)s)->inner;
}

static int l_fetch(struct upager_store *s, uint64_t pgoff, void *dst,
		   size_t npages)
{
	struct upager_store *in = inner(s);

	return in->ops->fetch(in, pgoff, dst, npages);
}

static void l_close(struct upager_store *s)
{
	(void)s; /* the manager frees labels; the store inside is shared */
}

static const void *l_direct(struct upager_store *s, uint64_t pgoff,
			    size_t npages)
{
	struct upager_store *in = inner(s);

	return in->ops->direct(in, pgoff, npages);
}

static size_t l_zero_run(struct upager_store *s, uint64_t pgoff,
			 size_t npages)
{
	struct upager_store *in = inner(s);

	return in->ops->zero_run(in, pgoff, npages);
}

static int l_writeback(struct upager_store *s, uint64_t pgoff,
		       const void *src, size_t npages)
{
	struct upager_store *in = inner(s);

	return in->ops->writeback(in, pgoff, src, npages);
}

static int l_attach(struct upager_store *s, struct upager_region *r)
{
	struct upager_store *in = inner(s);

	return in->ops->attach(in, r);
}

static void l_detach(struct upager_store *s, struct upager_region *r)
{
	struct upager_store *in = inner(s);

	in->ops->detach(in, r);
}

static void l_release(struct upager_store *s, uint64_t pgoff, size_t npages)
{
	struct upager_store *in = inner(s);

	in->ops->release(in, pgoff, npages);
}

/* Does @ops, of its declared size, have the slot at @off set? */
static bool has(const struct upager_store_ops *ops, size_t off)
{
	return ops->size >= off + sizeof(void *) &&
	       *(void *const *)((const char *)ops + off);
}

#define SLOT(name, fn)                                                 \
	do {                                                           \
		if (has(in->ops, offsetof(struct upager_store_ops, name))) \
			l->ops.name = fn;                              \
	} while (0)

struct upager_store *label_store_new(struct upager_store *in,
				     const char *name)
{
	struct label *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->inner = in;
	l->ops.size = sizeof(l->ops);
	l->ops.name = l->name;
	l->ops.help = in->ops->help;
	l->ops.fetch = l_fetch;
	l->ops.close = l_close;
	SLOT(direct, l_direct);
	SLOT(zero_run, l_zero_run);
	SLOT(writeback, l_writeback);
	SLOT(attach, l_attach);
	SLOT(detach, l_detach);
	SLOT(release, l_release);
	l->s.ops = &l->ops;
	l->s.npages = in->npages;
	l->s.flags = in->flags;
	return &l->s;
}

void label_store_free(struct upager_store *s)
{
	free(s);
}
