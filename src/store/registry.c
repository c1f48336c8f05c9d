// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The store registry and the calls every store goes through.  See
 * include/upager/store.h for the contracts; the stores themselves are
 * one file each, here and (remote) in src/net/.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "upager/store.h"
#include "base/util.h"
#include "engine/store_call.h"
#include "store/builtin.h"

/*
 * The built-in kinds (src/builtin.c) come first and never change; the
 * kinds users register follow in a list under kinds_lock.
 */
struct kind {
	const struct upager_store_ops *ops;
	struct kind *next;
};

static pthread_mutex_t kinds_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kind *kinds;
static size_t nkinds;

static bool name_is(const struct upager_store_ops *ops, const char *name,
		    size_t len)
{
	return !strncmp(ops->name, name, len) && !ops->name[len];
}

static const struct upager_store_ops *find_builtin(const char *name,
						   size_t len)
{
	for (size_t i = 0; i < store_nbuiltins; i++)
		if (name_is(store_builtins[i], name, len))
			return store_builtins[i];
	return NULL;
}

/* The kind named by the @len bytes at @name (not NUL-terminated there). */
static const struct upager_store_ops *find_locked(const char *name,
						  size_t len)
{
	const struct upager_store_ops *ops = find_builtin(name, len);

	for (struct kind *k = kinds; !ops && k; k = k->next)
		if (name_is(k->ops, name, len))
			ops = k->ops;
	return ops;
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
	struct kind *k, **tail;
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
		for (tail = &kinds; *tail; tail = &(*tail)->next)
			;
		*tail = k;
		nkinds++;
	}
	pthread_mutex_unlock(&kinds_lock);
	if (ret)
		free(k);
	return ret;
}

int upager_store_unregister(const struct upager_store_ops *ops)
{
	struct kind **p, *k = NULL;

	if (!ops)
		return -EINVAL;
	for (size_t i = 0; i < store_nbuiltins; i++)
		if (store_builtins[i] == ops)
			return -EPERM;
	pthread_mutex_lock(&kinds_lock);
	for (p = &kinds; *p; p = &(*p)->next) {
		if ((*p)->ops == ops) {
			k = *p;
			*p = k->next;
			nkinds--;
			break;
		}
	}
	pthread_mutex_unlock(&kinds_lock);
	free(k);
	return k ? 0 : -ENOENT;
}

const struct upager_store_ops *upager_store_find(const char *name)
{
	return name ? find(name, strlen(name)) : NULL;
}

int upager_store_foreach(void (*fn)(const struct upager_store_ops *ops,
				    void *arg),
			 void *arg)
{
	const struct upager_store_ops **list;
	size_t n = 0;

	/*
	 * @fn runs on a copy taken under the lock, so that it may itself
	 * register, unregister, find or open stores.
	 */
	pthread_mutex_lock(&kinds_lock);
	list = malloc((store_nbuiltins + nkinds) * sizeof(*list));
	if (list) {
		for (size_t i = 0; i < store_nbuiltins; i++)
			list[n++] = store_builtins[i];
		for (struct kind *k = kinds; k; k = k->next)
			list[n++] = k->ops;
	}
	pthread_mutex_unlock(&kinds_lock);
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		fn(list[i], arg);
	free(list);
	return 0;
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

int upager_store_parse_size(const char *str, uint64_t *out)
{
	return parse_size(str, out);
}
