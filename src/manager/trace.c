// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The working-set trace file (docs/TRACE.md): a 96-byte header and
 * 16-byte entries, little-endian.  A trace is read like a peer's message:
 * the file's own size bounds what is allocated (and never more than
 * UPAGER_TRACE_MAX_ENTRIES entries), every field is checked before it is
 * used, and a refusal names the field and its byte offset.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/le.h"
#include "upager/trace.h"

#define MAGIC	 0x52545055u /* "UPTR" */
#define HDR	 96
#define ENTRY	 16
#define NAME_OFF 32
#define NAME_LEN 64

static int why_set(char *why, size_t len, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int why_set(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	if (len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* Read all of @fd's @len bytes. */
static int read_all(int fd, uint8_t *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG; /* it shrank while we read */
		got += (size_t)n;
	}
	return 0;
}

/* By page, then by the second field. */
static int by_page(const void *a, const void *b)
{
	const struct upager_trace_entry *x = a, *y = b;

	if (x->page != y->page)
		return x->page < y->page ? -1 : 1;
	return x->ns < y->ns ? -1 : x->ns > y->ns;
}

/*
 * Check @t's entries: pages in the export, times not decreasing, each
 * page once.  0, or -EBADMSG with @why naming the entry.
 */
static int check_entries(const struct upager_trace *t, char *why, size_t whylen)
{
	struct upager_trace_entry *sorted;
	int ret = 0;

	for (uint64_t i = 0; i < t->count; i++) {
		const struct upager_trace_entry *e = &t->entries[i];

		if (e->page >= t->export_pages)
			return why_set(why, whylen, -EBADMSG,
				       "entry %llu (byte %llu): page %llu is "
				       "past the export's %llu pages",
				       (unsigned long long)i,
				       (unsigned long long)(HDR + i * ENTRY),
				       (unsigned long long)e->page,
				       (unsigned long long)t->export_pages);
		if (i && e->ns < t->entries[i - 1].ns)
			return why_set(
			    why, whylen, -EBADMSG,
			    "entry %llu (byte %llu): time %llu ns "
			    "is before the entry above it",
			    (unsigned long long)i,
			    (unsigned long long)(HDR + i * ENTRY + 8),
			    (unsigned long long)e->ns);
	}
	if (t->count < 2)
		return 0;
	sorted = malloc(t->count * sizeof(*sorted));
	if (!sorted)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	memcpy(sorted, t->entries, t->count * sizeof(*sorted));
	qsort(sorted, t->count, sizeof(*sorted), by_page);
	for (uint64_t i = 1; i < t->count && !ret; i++)
		if (sorted[i].page == sorted[i - 1].page)
			ret = why_set(why, whylen, -EBADMSG,
				      "page %llu is listed twice",
				      (unsigned long long)sorted[i].page);
	free(sorted);
	return ret;
}

static struct upager_trace *trace_new(uint64_t count)
{
	struct upager_trace *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->entries = calloc(count ? count : 1, sizeof(*t->entries));
	if (!t->entries) {
		free(t);
		return NULL;
	}
	return t;
}

/* Parse and check @len bytes at @buf into a trace. */
static struct upager_trace *parse(const uint8_t *buf, size_t len, char *why,
				  size_t whylen, int *err)
{
	uint64_t count, pages;
	struct upager_trace *t;
	int ret;

	if (len < HDR) {
		*err = why_set(why, whylen, -EBADMSG,
			       "%zu bytes: shorter than the %d-byte header",
			       len, HDR);
		return NULL;
	}
	if (rd32(buf) != MAGIC) {
		*err = why_set(why, whylen, -EBADMSG,
			       "byte 0: magic %#x, not an upager trace",
			       rd32(buf));
		return NULL;
	}
	if (rd16(buf + 4) != UPAGER_TRACE_VERSION) {
		*err = why_set(why, whylen, -EPROTONOSUPPORT,
			       "byte 4: version %u, this reads version %d",
			       rd16(buf + 4), UPAGER_TRACE_VERSION);
		return NULL;
	}
	ret = 0;
	if (rd16(buf + 6) != HDR)
		ret = why_set(why, whylen, -EBADMSG,
			      "byte 6: header length %u, not %d", rd16(buf + 6),
			      HDR);
	else if (rd32(buf + 8) != 4096)
		ret = why_set(why, whylen, -EBADMSG,
			      "byte 8: page size %u, not 4096", rd32(buf + 8));
	else if (rd32(buf + 12))
		ret = why_set(why, whylen, -EBADMSG,
			      "byte 12: reserved field is not 0");
	else if (!name_field_ok(buf + NAME_OFF, NAME_LEN))
		ret = why_set(why, whylen, -EBADMSG,
			      "byte %d: the export name is not 1 to 63 bytes "
			      "padded with NULs",
			      NAME_OFF);
	if (ret) {
		*err = ret;
		return NULL;
	}
	pages = rd64(buf + 16);
	count = rd64(buf + 24);
	if (count > UPAGER_TRACE_MAX_ENTRIES) {
		*err = why_set(why, whylen, -EFBIG,
			       "byte 24: %llu entries, more than %llu",
			       (unsigned long long)count,
			       (unsigned long long)UPAGER_TRACE_MAX_ENTRIES);
		return NULL;
	}
	if (len != HDR + count * ENTRY) {
		*err =
		    why_set(why, whylen, -EBADMSG,
			    "byte 24: %llu entries make %llu bytes, the file "
			    "has %zu",
			    (unsigned long long)count,
			    (unsigned long long)(HDR + count * ENTRY), len);
		return NULL;
	}
	t = trace_new(count);
	if (!t) {
		*err = why_set(why, whylen, -ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(t->export_name, buf + NAME_OFF, NAME_LEN);
	t->export_pages = pages;
	t->count = count;
	for (uint64_t i = 0; i < count; i++) {
		t->entries[i].page = rd64(buf + HDR + i * ENTRY);
		t->entries[i].ns = rd64(buf + HDR + i * ENTRY + 8);
	}
	ret = check_entries(t, why, whylen);
	if (ret) {
		upager_trace_free(t);
		*err = ret;
		return NULL;
	}
	return t;
}

struct upager_trace *upager_trace_read(const char *path, char *why,
				       size_t whylen, int *err)
{
	struct upager_trace *t = NULL;
	uint8_t *buf = NULL;
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err = why_set(why, whylen, -errno, "%s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		ret = why_set(why, whylen, -errno, "%s", strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		ret = why_set(why, whylen, -EBADMSG, "not a regular file");
	} else if ((uint64_t)st.st_size >
		   HDR + UPAGER_TRACE_MAX_ENTRIES * ENTRY) {
		ret = why_set(why, whylen, -EFBIG,
			      "%lld bytes: larger than any trace",
			      (long long)st.st_size);
	} else if (!(buf = malloc((size_t)st.st_size + 1))) {
		ret = why_set(why, whylen, -ENOMEM, "out of memory");
	} else {
		ret = read_all(fd, buf, (size_t)st.st_size);
		if (ret == -EBADMSG)
			why_set(why, whylen, ret, "the file shrank while read");
		else if (ret < 0)
			why_set(why, whylen, ret, "%s", strerror(-ret));
	}
	close(fd);
	if (!ret)
		t = parse(buf, (size_t)st.st_size, why, whylen, &ret);
	free(buf);
	if (!t)
		*err = ret;
	return t;
}

static int by_time(const void *a, const void *b)
{
	const struct upager_trace_entry *x = a, *y = b;

	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	return x->page < y->page ? -1 : x->page > y->page;
}

int upager_trace_normalize(struct upager_trace *t)
{
	struct upager_trace_entry *idx;
	uint64_t kept = 0;
	uint8_t *dup;

	qsort(t->entries, t->count, sizeof(*t->entries), by_time);
	if (t->count < 2)
		return 0;
	idx = malloc(t->count * sizeof(*idx));
	dup = calloc(t->count, 1);
	if (!idx || !dup) {
		free(idx);
		free(dup);
		return -ENOMEM;
	}
	/* (page, position) by page then position: a page's first touch
	 * leads its run, the others are repeats. */
	for (uint64_t i = 0; i < t->count; i++)
		idx[i] = (struct upager_trace_entry){t->entries[i].page, i};
	qsort(idx, t->count, sizeof(*idx), by_page);
	for (uint64_t i = 1; i < t->count; i++)
		if (idx[i].page == idx[i - 1].page)
			dup[idx[i].ns] = 1;
	for (uint64_t i = 0; i < t->count; i++)
		if (!dup[i])
			t->entries[kept++] = t->entries[i];
	t->count = kept;
	free(idx);
	free(dup);
	return 0;
}

int upager_trace_write(const char *path, const struct upager_trace *t)
{
	size_t nlen = strnlen(t->export_name, sizeof(t->export_name));
	uint8_t hdr[HDR] = {0}, ent[ENTRY * 256];
	char tmp[4200];
	int fd, ret = 0;
	FILE *f;

	if (!nlen || nlen == sizeof(t->export_name) ||
	    t->count > UPAGER_TRACE_MAX_ENTRIES ||
	    check_entries(t, NULL, 0) < 0)
		return -EINVAL;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path,
			     (int)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	wr32(hdr, MAGIC);
	wr16(hdr + 4, UPAGER_TRACE_VERSION);
	wr16(hdr + 6, HDR);
	wr32(hdr + 8, 4096);
	wr64(hdr + 16, t->export_pages);
	wr64(hdr + 24, t->count);
	memcpy(hdr + NAME_OFF, t->export_name, nlen);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		ret = -errno;
		close(fd);
		unlink(tmp);
		return ret;
	}
	if (fwrite(hdr, HDR, 1, f) != 1)
		ret = -EIO;
	for (uint64_t i = 0; !ret && i < t->count; i += 256) {
		size_t k = t->count - i < 256 ? (size_t)(t->count - i) : 256;

		for (size_t j = 0; j < k; j++) {
			wr64(ent + j * ENTRY, t->entries[i + j].page);
			wr64(ent + j * ENTRY + 8, t->entries[i + j].ns);
		}
		if (fwrite(ent, ENTRY, k, f) != k)
			ret = -EIO;
	}
	if (fflush(f) || fsync(fileno(f)))
		ret = ret ?: -errno;
	if (fclose(f))
		ret = ret ?: -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

struct upager_trace *upager_trace_merge(struct upager_trace *const *in,
					size_t n, char *why, size_t whylen,
					int *err)
{
	struct upager_trace *t;
	uint64_t total = 0;
	int ret;

	if (!n) {
		*err = why_set(why, whylen, -EINVAL, "no trace to merge");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (in[i]->export_pages != in[0]->export_pages) {
			*err =
			    why_set(why, whylen, -EINVAL,
				    "trace %zu is of an export of %llu pages, "
				    "trace 0 of %llu",
				    i, (unsigned long long)in[i]->export_pages,
				    (unsigned long long)in[0]->export_pages);
			return NULL;
		}
		total += in[i]->count;
	}
	t = trace_new(total);
	if (!t) {
		*err = why_set(why, whylen, -ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(t->export_name, in[0]->export_name, sizeof(t->export_name));
	t->export_name[sizeof(t->export_name) - 1] = 0;
	t->export_pages = in[0]->export_pages;
	for (size_t i = 0; i < n; i++) {
		memcpy(t->entries + t->count, in[i]->entries,
		       in[i]->count * sizeof(*t->entries));
		t->count += in[i]->count;
	}
	ret = upager_trace_normalize(t);
	if (ret) {
		upager_trace_free(t);
		*err = why_set(why, whylen, ret, "out of memory");
		return NULL;
	}
	return t;
}

void upager_trace_free(struct upager_trace *t)
{
	if (!t)
		return;
	free(t->entries);
	free(t);
}
