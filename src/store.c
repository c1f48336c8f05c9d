// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The store registry and the calls every store goes through.  See
 * include/upager/store.h for the contracts; the stores themselves live in
 * stores/, one file each.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "upager/store.h"
#include "internal.h"

/*
 * The registry is a singly linked list that only grows: nothing is ever
 * unlinked, and once linked a node changes only in the tail's next.  The
 * built-in stores are its first nodes from the start, so no one-time
 * initialisation is needed.
 */
struct kind {
	const struct upager_store_ops *ops;
	struct kind *next;
};

static struct kind builtins[] = {
	{ &store_zero_ops, &builtins[1] },
	{ &store_file_ops, &builtins[2] },
	{ &store_mem_ops, &builtins[3] },
	{ &store_remote_ops, NULL },
};

static pthread_mutex_t kinds_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kind *kinds_tail = &builtins[ARRAY_SIZE(builtins) - 1];

/* The kind named by the @len bytes at @name (not NUL-terminated there). */
static const struct upager_store_ops *find_locked(const char *name,
						  size_t len)
{
	for (struct kind *k = builtins; k; k = k->next)
		if (!strncmp(k->ops->name, name, len) && !k->ops->name[len])
			return k->ops;
	return NULL;
}

static const struct upager_store_ops *find(const char *name, size_t len)
{
	const struct upager_store_ops *ops;

	pthread_mutex_lock(&kinds_lock);
	ops = find_locked(name, len);
	pthread_mutex_unlock(&kinds_lock);
	return ops;
}

int upager_store_register(const struct upager_store_ops *ops)
{
	struct kind *k;
	int ret = 0;

	/*
	 * A name with ':' could never be opened: the spec ends the name at
	 * its first ':'.
	 */
	if (!ops ||
	    ops->size < offsetof(struct upager_store_ops, close) +
				sizeof(ops->close) ||
	    !ops->name || !*ops->name || strchr(ops->name, ':') ||
	    !ops->open || !ops->fetch || !ops->close)
		return -EINVAL;
	k = malloc(sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->ops = ops;
	k->next = NULL;

	pthread_mutex_lock(&kinds_lock);
	if (find_locked(ops->name, strlen(ops->name))) {
		ret = -EEXIST;
	} else {
		kinds_tail->next = k;
		kinds_tail = k;
	}
	pthread_mutex_unlock(&kinds_lock);
	if (ret)
		free(k);
	return ret;
}

const struct upager_store_ops *upager_store_find(const char *name)
{
	return name ? find(name, strlen(name)) : NULL;
}

void upager_store_foreach(void (*fn)(const struct upager_store_ops *ops,
				     void *arg),
			  void *arg)
{
	struct kind *last;

	pthread_mutex_lock(&kinds_lock);
	last = kinds_tail;
	pthread_mutex_unlock(&kinds_lock);

	/*
	 * Up to the tail seen under the lock, every next was written before
	 * that unlock and never again: walk unlocked, so that @fn may itself
	 * register, find or open stores.  Kinds registered meanwhile are
	 * left for the next walk.
	 */
	for (struct kind *k = builtins;; k = k->next) {
		fn(k->ops, arg);
		if (k == last)
			break;
	}
}

struct upager_store *upager_store_open(const char *spec, int *err)
{
	const struct upager_store_ops *ops;
	struct upager_store *s = NULL;
	const char *colon;
	int ret;

	if (!spec) {
		ret = -EINVAL;
		goto out;
	}
	colon = strchr(spec, ':');
	ops = find(spec, colon ? (size_t)(colon - spec) : strlen(spec));
	if (!ops) {
		ret = -ENOENT;
		goto out;
	}
	ret = ops->open(colon ? colon + 1 : "", &s);
out:
	if (err)
		*err = ret;
	return ret ? NULL : s;
}

/*
 * Is [@pgoff, @pgoff + @npages) inside @s, and the buffer it needs no
 * larger than memory can be?  Written so that no sum can wrap.
 */
static bool in_store(const struct upager_store *s, uint64_t pgoff,
		     size_t npages)
{
	return pgoff <= s->npages && npages <= s->npages - pgoff &&
	       npages <= SIZE_MAX / UPAGER_STORE_PAGE;
}

int upager_store_fetch(struct upager_store *s, uint64_t pgoff, void *dst,
		       size_t npages)
{
	if (!in_store(s, pgoff, npages))
		return -ERANGE;
	return s->ops->fetch(s, pgoff, dst, npages);
}

int upager_store_writeback(struct upager_store *s, uint64_t pgoff,
			   const void *src, size_t npages)
{
	if (!STORE_HAS(s->ops, writeback))
		return -EOPNOTSUPP;
	if (!in_store(s, pgoff, npages))
		return -ERANGE;
	return s->ops->writeback(s, pgoff, src, npages);
}

void upager_store_close(struct upager_store *s)
{
	if (s)
		s->ops->close(s);
}
