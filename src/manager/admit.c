// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Admitting a client: everything it asked for is checked before anything
 * is served, and each refusal names the field.  The order is the order
 * of trust: who the peer is (SO_PEERCRED against the export's
 * allow-list) before what it asks; the ranges' form before their place
 * in the process (/proc/PID/maps); the descriptor last, by what the
 * kernel says it is (/proc/self/fd, /proc/self/fdinfo), not by what the
 * client declared.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "upager/ll.h"
#include "manager/label.h"
#include "manager/manager.h"

/* The highest user address on 5-level page tables, as the engine's. */
#define USER_TOP (1ull << 56)
/* Set in fdinfo's features once UFFDIO_API succeeded (not a feature). */
#define FDINFO_INITIALIZED (1ull << 31)

uint64_t admit_kernel_features(void)
{
	struct upager_ll_api_info info = { 0 };
	int fd = upager_ll_open(0, NULL);

	if (fd < 0)
		return 0;
	if (upager_ll_api(fd, 0, &info) < 0)
		info.features = 0;
	close(fd);
	/*
	 * Registering hugetlb or shmem needs no feature asked at UFFDIO_API:
	 * these bits only say the kernel can, and a client (Firecracker)
	 * does not ask for them.
	 */
	return info.features &
	       (UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_MISSING_SHMEM);
}

/*
 * What @fd is: 0 with the features UFFDIO_API enabled on it, -EBADF when
 * it is no userfaultfd (@what: what it is), -EINVAL when UFFDIO_API was
 * never done on it.
 */
static int inspect_uffd(int fd, uint64_t *features, char *what, size_t n)
{
	char path[64], line[128];
	unsigned long long api = 0, feat = 0, ioctls = 0;
	bool found = false;
	ssize_t len;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	len = readlink(path, what, n - 1);
	if (len < 0)
		return -EBADF;
	what[len] = 0;
	if (strcmp(what, "anon_inode:[userfaultfd]"))
		return -EBADF;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "API:\t%llx:%llx:%llx", &api, &feat,
			   &ioctls) == 3)
			found = true;
	fclose(f);
	if (!found)
		return -ENOTSUP;
	if (!(feat & FDINFO_INITIALIZED))
		return -EINVAL;
	*features = feat & ~FDINFO_INITIALIZED;
	return 0;
}

/*
 * Is [@a, @a+@len) covered by mappings of process @pid?  1 yes, 0 no,
 * -errno when it cannot be told (the process is gone, no /proc).
 */
static int maps_cover(pid_t pid, uint64_t a, uint64_t len)
{
	unsigned long long s, e;
	uint64_t at = a, end = a + len;
	char path[64], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	/* Lines come sorted by address. */
	while (at < end && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx", &s, &e) != 2)
			continue;
		if (e <= at)
			continue;
		if (s > at)
			break;
		at = e;
	}
	fclose(f);
	return at >= end;
}

static struct export *find_export(struct upager_manager *m, const char *name)
{
	for (struct export *e = m->exports; e; e = e->next)
		if (!strcmp(e->name, name))
			return e;
	return NULL;
}

static bool allowed(const struct export *e, const struct ucred *cr)
{
	if (!e->nuids && !e->ngids)
		return cr->uid == getuid();
	for (unsigned int i = 0; i < e->nuids; i++)
		if (e->uids[i] == cr->uid)
			return true;
	for (unsigned int i = 0; i < e->ngids; i++)
		if (e->gids[i] == cr->gid)
			return true;
	return false;
}

static int refuse_region(struct client *c, int err, unsigned int i,
			 const char *field, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int refuse_region(struct client *c, int err, unsigned int i,
			 const char *field, const char *fmt, ...)
{
	char f[48], text[160];
	va_list ap;

	snprintf(f, sizeof(f), "region %u %s", i, field);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return handshake_refuse(c, err, f, "%s", text);
}

/* The form of one range; its export is already found. */
static int check_range(struct client *c, unsigned int i, struct want *w)
{
	uint64_t page = w->memtype == UPAGER_MEM_HUGETLB ? 2u << 20 : 4096;
	uint64_t bytes = w->ex->store->npages * UPAGER_STORE_PAGE;

	if (!w->fill)
		w->fill = page;
	if (w->fill < page || (w->fill & (w->fill - 1)) || w->fill > (1u << 30))
		return refuse_region(c, -EINVAL, i, "fill",
				     "%" PRIu64 " is not a power of two from "
				     "the page size (%" PRIu64 ") to 1 GiB",
				     w->fill, page);
	if (!w->len)
		return refuse_region(c, -EINVAL, i, "size", "empty");
	if (w->len % w->fill)
		return refuse_region(c, -EINVAL, i, "size",
				     "%#" PRIx64 " is not a multiple of %" PRIu64,
				     w->len, w->fill);
	if (w->addr % w->fill)
		return refuse_region(c, -EINVAL, i, "address",
				     "%#" PRIx64 " is not aligned to %" PRIu64,
				     w->addr, w->fill);
	if (w->len > USER_TOP || w->addr > USER_TOP - w->len)
		return refuse_region(c, -EINVAL, i, "size",
				     "[%#" PRIx64 ", +%#" PRIx64 ") overflows or "
				     "lies beyond the address space",
				     w->addr, w->len);
	if (w->offset % UPAGER_STORE_PAGE)
		return refuse_region(c, -EINVAL, i, "offset",
				     "%#" PRIx64 " is not 4 KiB aligned",
				     w->offset);
	if (w->offset > bytes || w->len > bytes - w->offset)
		return refuse_region(c, -ERANGE, i, "offset",
				     "[%#" PRIx64 ", +%#" PRIx64 ") reaches past "
				     "the export '%s' (%" PRIu64 " bytes)",
				     w->offset, w->len, w->ex->name, bytes);
	return 0;
}

static int check_overlap(struct client *c, const struct want *w,
			 unsigned int n)
{
	/* n <= 64: a pairwise look costs nothing and names both. */
	for (unsigned int i = 0; i < n; i++)
		for (unsigned int j = i + 1; j < n; j++)
			if (w[i].addr < w[j].addr + w[j].len &&
			    w[j].addr < w[i].addr + w[i].len)
				return refuse_region(c, -EEXIST, j, "address",
						     "overlaps region %u", i);
	return 0;
}

static void on_exit_cb(void *arg, struct upager_space *sp)
{
	struct upager_manager *m = arg;
	uint64_t one = 1;

	/*
	 * Found by its space under the lock: a client released meanwhile
	 * has no space any more, and the worker calling this holds @sp, so
	 * its address names no other client yet.
	 */
	pthread_mutex_lock(&m->lock);
	for (struct client *c = m->clients; c; c = c->next)
		if (c->sp == sp)
			atomic_store(&c->exited, true);
	pthread_mutex_unlock(&m->lock);
	if (write(m->exitfd, &one, sizeof(one)) < 0)
		return; /* the counter is full: a wake-up is pending anyway */
}

void admit_release(struct client *c)
{
	struct upager_manager *m = c->m;
	struct upager_space *sp = c->sp;

	if (!sp)
		return;
	pthread_mutex_lock(&m->lock);
	c->sp = NULL;
	pthread_mutex_unlock(&m->lock);
	/* Not under the lock: this waits for fills, and a worker's
	 * on_exit takes it. */
	upager_space_release(sp);
	ws_release(c);
	for (unsigned int i = 0; i < c->nregions; i++)
		label_store_free(c->labels[i]);
	c->nregions = 0;
}

static int serve(struct client *c, struct want *w, unsigned int n,
		 uint64_t features)
{
	struct upager_manager *m = c->m;
	struct upager_space_params sp = { .size = sizeof(sp),
					  .pid = c->cred.pid,
					  .features = features |
						      m->kernel_features,
					  .on_exit = on_exit_cb,
					  .exit_arg = m };
	struct upager_space *space;
	int err, uffd = c->uffd;

	c->uffd = -1; /* the handler's now, also on error */
	space = upager_space_adopt(m->h, uffd, &sp, &err);
	if (!space)
		return handshake_refuse(c, err, "fd", "adopting the uffd: %s",
					strerror(-err));
	pthread_mutex_lock(&m->lock);
	c->sp = space;
	c->features = features;
	pthread_mutex_unlock(&m->lock);
	for (unsigned int i = 0; i < n; i++) {
		struct upager_map_params mp = { .size = sizeof(mp),
						.memtype = w[i].memtype,
						.fill = w[i].fill,
						.store_offset = w[i].offset,
						.remove = w[i].remove,
						.readahead_max =
							w[i].ex->readahead_max,
						.fault_around =
							w[i].ex->fault_around };
		char label[48];
		struct upager_region *r;

		snprintf(label, sizeof(label), "%s pid %d", w[i].name,
			 (int)c->cred.pid);
		c->labels[i] = label_store_new(w[i].ex->store, label);
		if (!c->labels[i] || ws_record(c, w, n, i, &mp) < 0) {
			err = -ENOMEM;
			r = NULL;
		} else {
			r = upager_space_map(space, c->labels[i], w[i].addr,
					     w[i].len, &mp, &err);
		}
		if (!r) {
			if (c->labels[i])
				label_store_free(c->labels[i]);
			admit_release(c);
			return refuse_region(c, err, i, "address",
					     "serving [%#" PRIx64 ", +%#" PRIx64
					     "): %s",
					     w[i].addr, w[i].len, strerror(-err));
		}
		c->regions[i] = r;
		c->nregions = i + 1;
		err = ws_replay(c, &w[i], r);
		if (err < 0)
			mgr_event(m, c, UPAGER_EV_NOTE, NULL, err,
				  "region %u: no replay of the working set of "
				  "'%s': %s",
				  i, w[i].name, strerror(-err));
	}
	snprintf(c->export_name, sizeof(c->export_name), "%s", w[0].name);
	return 0;
}

int admit(struct client *c, struct want *w, unsigned int n,
	  uint64_t declared)
{
	uint64_t features = 0;
	char what[128];
	int ret;

	for (unsigned int i = 0; i < n; i++) {
		w[i].ex = find_export(c->m, w[i].name);
		if (!w[i].ex)
			return refuse_region(c, -ENOENT, i, "name",
					     "no export named '%s'", w[i].name);
		if (!allowed(w[i].ex, &c->cred))
			return handshake_refuse(c, -EPERM, "uid",
						"uid %u gid %u may not attach "
						"to export '%s'",
						(unsigned int)c->cred.uid,
						(unsigned int)c->cred.gid,
						w[i].name);
	}
	for (unsigned int i = 0; i < n; i++) {
		ret = check_range(c, i, &w[i]);
		if (ret < 0)
			return ret;
	}
	ret = check_overlap(c, w, n);
	if (ret < 0)
		return ret;
	for (unsigned int i = 0; i < n && c->cred.pid > 0; i++)
		if (maps_cover(c->cred.pid, w[i].addr, w[i].len) == 0)
			return refuse_region(c, -EINVAL, i, "address",
					     "[%#" PRIx64 ", +%#" PRIx64 ") is not "
					     "mapped in process %d",
					     w[i].addr, w[i].len,
					     (int)c->cred.pid);
	ret = inspect_uffd(c->uffd, &features, what, sizeof(what));
	if (ret == -EBADF)
		return handshake_refuse(c, ret, "fd",
					"the descriptor is %s, not a "
					"userfaultfd",
					what);
	if (ret == -EINVAL)
		return handshake_refuse(c, ret, "fd",
					"a userfaultfd without UFFDIO_API (its "
					"features were never set up)");
	if (ret < 0)
		return handshake_refuse(c, ret, "fd",
					"cannot read the userfaultfd's "
					"features: %s",
					strerror(-ret));
	if (declared != UINT64_MAX && declared != features)
		return handshake_refuse(c, -EINVAL, "features",
					"declared %#" PRIx64 ", but the uffd "
					"has %#" PRIx64,
					declared, features);
	return serve(c, w, n, features);
}
