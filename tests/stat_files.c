// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The reader of published statistics (<upager/stat.h>).
 *
 * live     a handler publishing as "live" with two regions over the mem
 *          store, one touched on 8 pages: upager_stat_list() of this pid
 *          finds the file, and the snapshot gives the pid, name, workers,
 *          both regions (address, length, fill, store, memory type) and
 *          counters between upager_region_stats() before and after it
 *          (workers may still be counting); the total is the sum; after
 *          an unmap one region is left and its counters are in the
 *          retired ones.
 * files    files named as statistics files of this process but not what
 *          they should be: each is refused with its own error and a
 *          reason, never read as statistics (and never a crash): empty
 *          (-EAGAIN, being created), magic 0 (-EAGAIN), bad magic,
 *          truncated, too long, a version from the future
 *          (-EPROTONOSUPPORT), a name or a region's store without its
 *          NUL, a slot in an unknown state, a directory, a symlink
 *          (-ELOOP).  A well-formed page written here is read back.
 * stale    a file a dead process left under this pid (pids are reused;
 *          a process killed with SIGKILL never removes its file): a
 *          handler publishing under that name replaces it, while a
 *          second live handler of that name is still -EEXIST.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <upager/stat.h>
#include <upager/upager.h>

#include "engine/stats_page.h"
#include "harness.h"

#define PG 4096u

struct found {
	char path[256];
	int n;
};

static int find_live(const char *path, int pid, const char *name, void *arg)
{
	struct found *f = arg;

	CHECK(pid == getpid(), "listed pid %d for %s", pid, path);
	if (strcmp(name, "live"))
		return 0;
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->n++;
	return 0;
}

static struct upager_stat *read_ok(const char *path)
{
	struct upager_stat *st;
	const char *why;
	int err;

	st = upager_stat_read(path, &why, &err);
	CHECK(st, "%s: %s (%s)", path, strerror(-err), why ? why : "-");
	return st;
}

static void live(void)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .threads = 2,
					    .stats_name = "live" };
	struct upager_stat_info info = { .size = sizeof(info) };
	struct upager_stat_region reg = { .size = sizeof(reg) };
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	struct upager_stats rs, before[2], after, total, sum;
	struct upager_region *r[2];
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_stat *st;
	struct found f = { .n = 0 };
	char *p[2];
	int err;

	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	s = upager_store_mem_new(64 * PG, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	for (int i = 0; i < 2; i++) {
		p[i] = upager_map(h, s, 64 * PG, &mp, &r[i], &err);
		CHECK(p[i], "map: %s", strerror(-err));
	}
	for (int i = 0; i < 8; i++)
		CHECK(p[0][i * 3 * PG] == 0, "page %d", i);
	/* A worker counts a fill after the wake that lets the reader on. */
	for (int ms = 0; ms < 10000; ms++) {
		upager_region_stats(r[0], &rs);
		if (rs.pages_filled >= 8)
			break;
		usleep(1000);
	}

	for (int i = 0; i < 2; i++)
		upager_region_stats(r[i], &before[i]);
	CHECK_RET(upager_stat_list(getpid(), find_live, &f), 0);
	CHECK(f.n == 1, "found %d files named live", f.n);
	st = read_ok(f.path);
	CHECK_RET(upager_stat_info(st, &info), 0);
	CHECK(info.pid == (uint32_t)getpid() && !strcmp(info.name, "live") &&
		      info.threads == 2 && info.nregions == 2 &&
		      info.size == sizeof(info),
	      "info: pid %u name '%s' threads %llu regions %u", info.pid,
	      info.name, (unsigned long long)info.threads, info.nregions);
	memset(&sum, 0, sizeof(sum));
	upager_stat_retired(st, &sum);
	for (unsigned int i = 0; i < info.nregions; i++) {
		int k;

		CHECK_RET(upager_stat_region(st, i, &reg, &rs), 0);
		k = reg.addr == (uintptr_t)p[0] ? 0 : 1;
		CHECK(reg.addr == (uintptr_t)p[k] && reg.len == 64 * PG &&
			      reg.fill == PG && !strcmp(reg.store, "mem") &&
			      !strcmp(reg.memtype, "anon"),
		      "region %u: %#llx %llu %llu %s %s", i,
		      (unsigned long long)reg.addr,
		      (unsigned long long)reg.len,
		      (unsigned long long)reg.fill, reg.store, reg.memtype);
		upager_region_stats(r[k], &after);
		for (size_t w = 0; w < sizeof(rs) / 8; w++) {
			uint64_t v = ((uint64_t *)&rs)[w];

			CHECK(((uint64_t *)&before[k])[w] <= v &&
				      v <= ((uint64_t *)&after)[w],
			      "region %u: counter %zu is %llu, not between the "
			      "region's before and after", i, w,
			      (unsigned long long)v);
		}
		CHECK(k == 1 || rs.pages_filled >= 8, "pages filled %llu",
		      (unsigned long long)rs.pages_filled);
		for (size_t w = 0; w < sizeof(sum) / 8; w++)
			((uint64_t *)&sum)[w] += ((uint64_t *)&rs)[w];
	}
	CHECK_RET(upager_stat_region(st, 2, &reg, &rs), -ERANGE);
	upager_stat_total(st, &total);
	CHECK(!memcmp(&total, &sum, sizeof(sum)), "total is not the sum");
	upager_stat_free(st);

	CHECK_RET(upager_unmap(r[0]), 0);
	st = read_ok(f.path);
	CHECK_RET(upager_stat_info(st, &info), 0);
	CHECK(info.nregions == 1, "%u regions after an unmap", info.nregions);
	upager_stat_retired(st, &rs);
	CHECK(rs.pages_filled >= 8, "retired pages %llu",
	      (unsigned long long)rs.pages_filled);
	upager_stat_free(st);

	CHECK_RET(upager_unmap(r[1]), 0);
	upager_handler_free(h);
	upager_store_close(s);
	CHECK(access(f.path, F_OK) < 0, "%s left behind", f.path);
}

/* ---- files that are not what they should be ----------------------------- */

static char path[256];

static void put(const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	CHECK(fd >= 0, "%s: %s", path, strerror(errno));
	CHECK(write(fd, data, len) == (ssize_t)len, "write %s", path);
	close(fd);
}

/* @what is refused with @want and some reason. */
static void refused(const char *what, int want)
{
	const char *why = NULL;
	int err = 0;

	CHECK(!upager_stat_read(path, &why, &err), "%s: read as statistics",
	      what);
	CHECK(err == want, "%s: %s, want %s", what, strerror(-err),
	      strerror(-want));
	CHECK(want == -ELOOP || why, "%s: no reason given", what);
	printf("%-28s %s%s%s\n", what, strerror(-err), why ? ": " : "",
	       why ? why : "");
}

static void files(void)
{
	struct stats_page *pg = calloc(1, sizeof(*pg));
	struct upager_stat_info info = { .size = sizeof(info) };
	struct upager_stat_region reg = { .size = sizeof(reg) };
	struct upager_stats rs;
	struct upager_stat *st;

	CHECK(pg, "out of memory");
	snprintf(path, sizeof(path), "/dev/shm/upager-%d-files", (int)getpid());

	put(pg, 0);
	refused("empty", -EAGAIN);
	put(pg, sizeof(*pg));
	refused("magic 0", -EAGAIN);

	pg->magic = STATS_MAGIC ^ 1;
	pg->version = STATS_VERSION;
	pg->pid = (uint32_t)getpid();
	strcpy(pg->name, "files");
	pg->threads = 3;
	put(pg, sizeof(*pg));
	refused("bad magic", -EBADMSG);

	pg->magic = STATS_MAGIC;
	put(pg, 8);
	refused("shorter than a header", -EBADMSG);
	put(pg, sizeof(*pg) / 2);
	refused("truncated", -EBADMSG);
	{
		char *big = calloc(1, sizeof(*pg) + 4096);

		CHECK(big, "out of memory");
		memcpy(big, pg, sizeof(*pg));
		put(big, sizeof(*pg) + 4096);
		free(big);
	}
	refused("too long", -EBADMSG);

	pg->version = STATS_VERSION + 100;
	put(pg, sizeof(*pg));
	refused("a version from the future", -EPROTONOSUPPORT);
	pg->version = STATS_VERSION;

	memset(pg->name, 'x', sizeof(pg->name));
	put(pg, sizeof(*pg));
	refused("name without its NUL", -EBADMSG);
	strcpy(pg->name, "files");

	pg->slot[5].used = 7;
	put(pg, sizeof(*pg));
	refused("slot in an unknown state", -EBADMSG);

	pg->slot[5].used = 1;
	memset(pg->slot[5].store, 's', sizeof(pg->slot[5].store));
	put(pg, sizeof(*pg));
	refused("store without its NUL", -EBADMSG);

	/* Well formed: slot 5 holds a region, slot 6 is being filled in. */
	strcpy(pg->slot[5].store, "file");
	strcpy(pg->slot[5].memtype, "shmem");
	pg->slot[5].addr = 0x7f0000000000;
	pg->slot[5].len = 1 << 20;
	pg->slot[5].fill = 64 << 10;
	pg->slot[5].st.faults = 11;
	pg->slot[5].st.lat_hist[3] = 11;
	pg->slot[6].used = 2;
	pg->retired.faults = 5;
	put(pg, sizeof(*pg));
	st = read_ok(path);
	CHECK_RET(upager_stat_info(st, &info), 0);
	CHECK(info.nregions == 1 && info.threads == 3 &&
		      !strcmp(info.name, "files") &&
		      info.version == STATS_VERSION,
	      "well formed: %u regions, %llu threads, '%s', version %u",
	      info.nregions, (unsigned long long)info.threads, info.name,
	      info.version);
	CHECK_RET(upager_stat_region(st, 0, &reg, &rs), 0);
	CHECK(reg.addr == 0x7f0000000000 && reg.len == 1 << 20 &&
		      reg.fill == 64 << 10 && !strcmp(reg.store, "file") &&
		      !strcmp(reg.memtype, "shmem") && rs.faults == 11 &&
		      rs.lat_hist[3] == 11,
	      "well formed: the region read back wrong");
	upager_stat_total(st, &rs);
	CHECK(rs.faults == 16, "total faults %llu",
	      (unsigned long long)rs.faults);
	upager_stat_free(st);

	unlink(path);
	CHECK(mkdir(path, 0700) == 0, "mkdir %s", path);
	refused("a directory", -EBADMSG);
	rmdir(path);
	CHECK(symlink("/etc/passwd", path) == 0, "symlink %s", path);
	refused("a symlink", -ELOOP);
	unlink(path);
	free(pg);
}

static void stale(void)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .threads = 1,
					    .stats_name = "stale" };
	struct upager_handler *h, *h2;
	char p[256];
	int fd, err;

	snprintf(p, sizeof(p), "/dev/shm/upager-%d-stale", (int)getpid());
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "%s: %s", p, strerror(errno));
	CHECK(ftruncate(fd, 4096) == 0, "ftruncate");
	close(fd);
	h = upager_handler_new(&hp, &err);
	CHECK(h, "a stale file of this pid kept a handler from publishing: %s",
	      strerror(-err));
	h2 = upager_handler_new(&hp, &err);
	CHECK(!h2 && err == -EEXIST, "a live handler's name taken twice: %s",
	      h2 ? "accepted" : strerror(-err));
	upager_handler_free(h);
	CHECK(access(p, F_OK) < 0, "the file is left after the handler");
}

int main(void)
{
	live();
	files();
	stale();
	return 0;
}
