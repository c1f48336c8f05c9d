// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Reading another process's published statistics (include/upager/stat.h):
 * the reader's side of src/engine/stats_page.h, which stats.c writes.
 *
 * The file comes from another process, possibly another build of the
 * library, possibly not from upager at all: nothing in it is believed
 * before it is checked.  It is read with pread(2) into memory of our own
 * rather than mapped, so a file truncated under us is a short read, not
 * a SIGBUS.
 *
 * Layouts are chosen by the version in the header: the current one by
 * the structs of stats_page.h, and older ones by frozen copies here, so
 * that `upager stat` of a newer library still reads a process running an
 * older one.  Counters of an older layout are carried over by name: a
 * field the older struct upager_stats lacked reads as 0.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "upager/stat.h"
#include "base/util.h"
#include "engine/stats_page.h"

/* ---- version 1, frozen -------------------------------------------------- */

#define V1_SLOTS 64
#define V1_BUCKETS 24

/* The counters of struct upager_stats as version 1 wrote them. */
#define V1_COUNTERS(X)                                                     \
	X(faults) X(faults_missing) X(faults_minor) X(faults_wp)           \
	X(faults_inthread) X(faults_dup) X(faults_stray) X(pages_filled)   \
	X(bytes_fetched) X(zero_pages) X(ra_pages) X(ra_used) X(ra_wasted) \
	X(eexist) X(eagain) X(store_errors)

struct v1_stats {
#define X(f) uint64_t f;
	V1_COUNTERS(X)
#undef X
	uint64_t lat_hist[V1_BUCKETS];
};

struct v1_slot {
	uint64_t used;
	uint64_t addr;
	uint64_t len;
	uint64_t fill;
	char store[48];
	char memtype[16];
	struct v1_stats st;
};

struct v1_page {
	uint64_t magic;
	uint32_t version;
	uint32_t pid;
	char name[64];
	uint64_t threads;
	struct v1_stats retired;
	struct v1_slot slot[V1_SLOTS];
};

/* While version 1 is current, the frozen copy must be the real thing. */
#if STATS_VERSION == 1
_Static_assert(sizeof(struct v1_page) == sizeof(struct stats_page) &&
		       sizeof(struct v1_stats) == sizeof(struct upager_stats) &&
		       sizeof(struct v1_slot) == sizeof(struct stats_slot),
	       "the frozen version 1 layout differs from stats_page.h");
#endif

static void v1_stats(const struct v1_stats *src, struct upager_stats *dst)
{
	memset(dst, 0, sizeof(*dst));
#define X(f) dst->f = src->f;
	V1_COUNTERS(X)
#undef X
	_Static_assert(V1_BUCKETS <= UPAGER_LAT_BUCKETS,
		       "fewer latency buckets than version 1 had");
	memcpy(dst->lat_hist, src->lat_hist, sizeof(src->lat_hist));
}

/* ---- the snapshot ------------------------------------------------------- */

struct stat_region {
	struct upager_stat_region reg;
	struct upager_stats st;
};

struct upager_stat {
	struct upager_stat_info info;
	struct upager_stats retired;
	struct stat_region region[]; /* info.nregions */
};

/* Is the string field @s of @len bytes terminated inside it? */
static bool terminated(const char *s, size_t len)
{
	return memchr(s, '\0', len) != NULL;
}

/* Where a version keeps what the reader takes, in bytes. */
struct layout {
	uint32_t version;
	bool v1; /* counters in struct v1_stats, else this build's */
	size_t size, nslots, threads, retired, slots, slot_size;
	size_t used, addr, len, fill, store, store_len, memtype, memtype_len;
	size_t st;
};

#define FIELD_LEN(type, f) sizeof(((type *)0)->f)
#define LAYOUT(ver, isv1, P, S)                                          \
	{ ver, isv1, sizeof(P), FIELD_LEN(P, slot) / sizeof(S),           \
	  offsetof(P, threads), offsetof(P, retired), offsetof(P, slot),   \
	  sizeof(S), offsetof(S, used), offsetof(S, addr), offsetof(S, len), \
	  offsetof(S, fill), offsetof(S, store), FIELD_LEN(S, store),      \
	  offsetof(S, memtype), FIELD_LEN(S, memtype), offsetof(S, st) }

/* Version 1 first: while it is current, both entries say the same. */
static const struct layout layouts[] = {
	LAYOUT(1, true, struct v1_page, struct v1_slot),
	LAYOUT(STATS_VERSION, false, struct stats_page, struct stats_slot),
};

static const struct layout *layout_of(uint32_t version)
{
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		if (layouts[i].version == version)
			return &layouts[i];
	return NULL;
}

static uint64_t u64_at(const char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void stats_at(const struct layout *l, const char *p,
		     struct upager_stats *dst)
{
	struct v1_stats v1;

	if (!l->v1) {
		memcpy(dst, p, sizeof(*dst));
		return;
	}
	memcpy(&v1, p, sizeof(v1));
	v1_stats(&v1, dst);
}

/*
 * Check slot @i of the page in @buf and, when a region holds it, add it
 * to @out.  0, or -EBADMSG with *@why.
 */
static int take_slot(struct upager_stat *out, const struct layout *l,
		     const char *buf, size_t i, const char **why)
{
	const char *slot = buf + l->slots + i * l->slot_size;
	const char *store = slot + l->store, *memtype = slot + l->memtype;
	uint64_t used = u64_at(slot + l->used);
	struct stat_region *r;

	/* 2: a region is filling it in; 0: free. */
	if (used == 0 || used == 2)
		return 0;
	if (used != 1) {
		*why = "a region slot in an unknown state";
		return -EBADMSG;
	}
	if (!terminated(store, l->store_len) ||
	    !terminated(memtype, l->memtype_len)) {
		*why = "a region's store or memory type is not terminated";
		return -EBADMSG;
	}
	r = &out->region[out->info.nregions++];
	r->reg.size = sizeof(r->reg);
	r->reg.addr = u64_at(slot + l->addr);
	r->reg.len = u64_at(slot + l->len);
	r->reg.fill = u64_at(slot + l->fill);
	snprintf(r->reg.store, sizeof(r->reg.store), "%s", store);
	snprintf(r->reg.memtype, sizeof(r->reg.memtype), "%s", memtype);
	stats_at(l, slot + l->st, &r->st);
	return 0;
}

/* Read all of @fd's @len bytes.  0, -errno, or -EBADMSG when short. */
static int read_all(int fd, void *buf, size_t len, const char **why)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			*why = "truncated while it was read";
			return -EBADMSG;
		}
		done += (size_t)n;
	}
	return 0;
}

/* The header every version starts with. */
struct header {
	uint64_t magic;
	uint32_t version;
	uint32_t pid;
	char name[64];
};

_Static_assert(offsetof(struct stats_page, name) ==
			       offsetof(struct header, name) &&
		       sizeof(((struct stats_page *)0)->name) ==
			       sizeof(((struct header *)0)->name),
	       "the current layout does not start with the common header");

static int parse(int fd, struct upager_stat **snap, const char **why)
{
	const struct layout *l;
	struct header h;
	struct upager_stat *out;
	struct stat sb;
	char *buf;
	int ret;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode)) {
		*why = "not a regular file";
		return -EBADMSG;
	}
	/*
	 * The publisher creates the file, sizes it, fills the header and
	 * writes the magic last: until then it is not wrong, only early.
	 */
	if (sb.st_size == 0) {
		*why = "being created";
		return -EAGAIN;
	}
	if ((size_t)sb.st_size < sizeof(h)) {
		*why = "shorter than a header";
		return -EBADMSG;
	}
	ret = read_all(fd, &h, sizeof(h), why);
	if (ret < 0)
		return ret;
	if (h.magic == 0) {
		*why = "being created";
		return -EAGAIN;
	}
	if (h.magic != STATS_MAGIC) {
		*why = "not an upager statistics file (bad magic)";
		return -EBADMSG;
	}
	l = layout_of(h.version);
	if (!l) {
		*why = h.version > STATS_VERSION
			       ? "a version newer than this upager reads"
			       : "an old version this upager no longer reads";
		return -EPROTONOSUPPORT;
	}
	if ((uint64_t)sb.st_size != l->size) {
		*why = (uint64_t)sb.st_size < l->size
			       ? "truncated: shorter than its version's layout"
			       : "longer than its version's layout";
		return -EBADMSG;
	}
	if (!terminated(h.name, sizeof(h.name))) {
		*why = "the handler's name is not terminated";
		return -EBADMSG;
	}
	buf = malloc(l->size);
	out = calloc(1, sizeof(*out) + l->nslots * sizeof(out->region[0]));
	ret = -ENOMEM;
	if (buf && out)
		ret = read_all(fd, buf, l->size, why);
	/* Read again whole: the header must not have changed. */
	if (ret == 0 && memcmp(buf, &h, sizeof(h))) {
		*why = "its header changed while it was read";
		ret = -EBADMSG;
	}
	if (ret == 0) {
		out->info.threads = u64_at(buf + l->threads);
		stats_at(l, buf + l->retired, &out->retired);
	}
	for (size_t i = 0; ret == 0 && i < l->nslots; i++)
		ret = take_slot(out, l, buf, i, why);
	free(buf);
	if (ret < 0) {
		free(out);
		return ret;
	}
	out->info.size = sizeof(out->info);
	out->info.pid = h.pid;
	out->info.version = h.version;
	memcpy(out->info.name, h.name, sizeof(out->info.name));
	*snap = out;
	return 0;
}

struct upager_stat *upager_stat_read(const char *path, const char **why,
				     int *err)
{
	struct upager_stat *snap = NULL;
	const char *reason = NULL;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
	} else {
		ret = parse(fd, &snap, &reason);
		close(fd);
	}
	if (why)
		*why = ret < 0 ? reason : NULL;
	if (err)
		*err = ret;
	return snap;
}

void upager_stat_free(struct upager_stat *st)
{
	free(st);
}

int upager_stat_info(const struct upager_stat *st,
		     struct upager_stat_info *info)
{
	return output_copy(info, &st->info, sizeof(st->info));
}

void upager_stat_retired(const struct upager_stat *st, struct upager_stats *s)
{
	*s = st->retired;
}

/* Every field of struct upager_stats is a 64-bit counter. */
static void add(struct upager_stats *dst, const struct upager_stats *src)
{
	uint64_t *d = (uint64_t *)dst;
	const uint64_t *s = (const uint64_t *)src;

	_Static_assert(sizeof(*dst) % sizeof(uint64_t) == 0,
		       "struct upager_stats is not all 64-bit counters");
	for (size_t i = 0; i < sizeof(*dst) / sizeof(uint64_t); i++)
		d[i] += s[i];
}

void upager_stat_total(const struct upager_stat *st, struct upager_stats *s)
{
	*s = st->retired;
	for (unsigned int i = 0; i < st->info.nregions; i++)
		add(s, &st->region[i].st);
}

int upager_stat_region(const struct upager_stat *st, unsigned int i,
		       struct upager_stat_region *reg, struct upager_stats *s)
{
	int ret = 0;

	if (i >= st->info.nregions)
		return -ERANGE;
	if (reg)
		ret = output_copy(reg, &st->region[i].reg,
				  sizeof(st->region[i].reg));
	if (ret == 0 && s)
		*s = st->region[i].st;
	return ret;
}

int upager_stat_list(int pid,
		     int (*fn)(const char *path, int pid, const char *name,
			       void *arg),
		     void *arg)
{
	const size_t plen = strlen(STATS_PREFIX);
	struct dirent *de;
	int ret = 0;
	DIR *d;

	d = opendir(STATS_DIR);
	if (!d)
		return -errno;
	while (!ret && (de = readdir(d))) {
		char path[sizeof(STATS_DIR) + 256];
		const char *name;
		char *end;
		long fpid;

		/* upager-PID-NAME, PID in decimal, NAME not empty. */
		if (strncmp(de->d_name, STATS_PREFIX, plen) ||
		    !(de->d_name[plen] >= '0' && de->d_name[plen] <= '9'))
			continue;
		errno = 0;
		fpid = strtol(de->d_name + plen, &end, 10);
		if (errno || fpid <= 0 || fpid > INT32_MAX || *end != '-' ||
		    !end[1])
			continue;
		name = end + 1;
		if (pid && fpid != pid)
			continue;
		snprintf(path, sizeof(path), "%s/%s", STATS_DIR, de->d_name);
		ret = fn(path, (int)fpid, name, arg);
	}
	closedir(d);
	return ret;
}
