// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The image store: the pages of a compressed page image ("image:PATH",
 * docs/IMAGE.md).  Open checks the header and the whole index, so that
 * fetch() can trust every offset; fetch() then reads only the chunks it
 * covers, each with one pread() at its offset, checks its checksum and
 * decompresses it.  A chunk asked for whole is decompressed straight
 * into the caller's buffer; a part of one goes through a slot's buffer,
 * which keeps the chunk for the next fetch (the engine fills 64 KiB at a
 * time, so a 256 KiB chunk is asked for four times in a row).
 *
 * Slots: each holds a buffer for one decompressed chunk, one for its
 * compressed bytes and a zstd context in a workspace of its own, all in
 * one mmap().  A fetch claims a free slot with a compare-and-swap and
 * gives it back when done; when every slot is busy it maps one more and
 * pushes it on the list, which only grows (to the most fetches ever at
 * once) and is freed at close.  So fetch() takes no lock and never calls
 * malloc(): it runs in the workers while the application may be in
 * fork(), which holds malloc's locks until a worker has read its event,
 * and in the SIGBUS handler of in-thread regions, which is why the store
 * is UPAGER_STORE_SIGNAL_SAFE (zstd's static context allocates nothing;
 * LZ4 and XXH3 need no state).
 *
 * A bad chunk fails with -EIO, and the first failure of each chunk is
 * written to stderr as one line built without stdio, naming the file,
 * the chunk, its pages and what failed: the engine's on_error gets only
 * the errno and the address.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_initStaticDCtx() */
#include <lz4.h>
#include <xxhash.h>
#include <zstd.h>

#include "base/util.h"
#include "engine/store_call.h"
#include "store/builtin.h"
#include "store/image_fmt.h"

#define PAGE	 UPAGER_STORE_PAGE
#define NO_CHUNK UINT64_MAX

struct slot {
	atomic_bool busy;
	_Atomic uint64_t chunk; /* whose data raw holds, or NO_CHUNK */
	_Atomic uint64_t stamp; /* last use: a miss reuses the oldest */
	struct slot *next;	/* set before the slot is published */
	size_t maplen;
	char *raw;	 /* chunk_size bytes */
	char *comp;	 /* the largest compressed chunk */
	ZSTD_DCtx *dctx; /* NULL for LZ4 */
};

struct image {
	struct upager_store s;
	int fd;
	char *path;
	struct img_header h;
	struct img_chunk *index;
	uint64_t zero_chunks, raw_chunks, stored_bytes;
	uint32_t max_comp;
	size_t dctx_size;
	struct slot *_Atomic slots;
	_Atomic uint64_t clock;
	_Atomic uint64_t *reported; /* a bit per chunk: its failure told */
};

/* Why a chunk failed: @what, and @detail (the codec's words) if any. */
struct fail {
	const char *what;
	const char *detail;
};

static struct image *to_image(struct upager_store *s)
{
	return s && s->ops == &store_image_ops ? (struct image *)s : NULL;
}

/* 0, -ENODATA (the file ends first) or -errno. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(fd, (char *)buf + done, len - done,
			  (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		done += (size_t)n;
	}
	return 0;
}

static size_t align64(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

static struct slot *slot_new(struct image *im)
{
	size_t head = align64(sizeof(struct slot));
	size_t raw = align64(im->h.chunk_size), comp = align64(im->max_comp);
	size_t len = head + raw + comp + im->dctx_size;
	struct slot *sl, *top;
	char *p;

	len = (len + PAGE - 1) & ~(size_t)(PAGE - 1);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	sl = (struct slot *)p;
	sl->maplen = len;
	sl->raw = p + head;
	sl->comp = p + head + raw;
	sl->dctx = NULL;
	if (im->dctx_size) {
		sl->dctx =
		    ZSTD_initStaticDCtx(p + head + raw + comp, im->dctx_size);
		if (!sl->dctx) {
			munmap(p, len);
			return NULL;
		}
	}
	atomic_init(&sl->busy, true);
	atomic_init(&sl->chunk, NO_CHUNK);
	atomic_init(&sl->stamp, 0);
	top = atomic_load(&im->slots);
	do
		sl->next = top;
	while (!atomic_compare_exchange_weak(&im->slots, &top, sl));
	return sl;
}

static bool slot_claim(struct slot *sl)
{
	bool free = false;

	return !atomic_load_explicit(&sl->busy, memory_order_relaxed) &&
	       atomic_compare_exchange_strong(&sl->busy, &free, true);
}

static void slot_put(struct slot *sl)
{
	atomic_store_explicit(&sl->busy, false, memory_order_release);
}

/*
 * A slot for chunk @c, claimed: one that holds it already (*@hit), else
 * the free one used longest ago, else a new one.  NULL: no memory.
 */
static struct slot *slot_get(struct image *im, uint64_t c, bool *hit)
{
	struct slot *sl, *old = NULL;
	uint64_t oldest = UINT64_MAX, t;

	for (sl = atomic_load(&im->slots); sl; sl = sl->next) {
		if (atomic_load_explicit(&sl->busy, memory_order_relaxed))
			continue;
		if (atomic_load_explicit(&sl->chunk, memory_order_relaxed) ==
			c &&
		    slot_claim(sl)) {
			/* Claimed: now the tag cannot change under us. */
			if (atomic_load(&sl->chunk) == c)
				goto found;
			slot_put(sl);
			continue;
		}
		t = atomic_load_explicit(&sl->stamp, memory_order_relaxed);
		if (t < oldest) {
			oldest = t;
			old = sl;
		}
	}
	/* The oldest, or any other free one if it was taken meanwhile. */
	if (old && slot_claim(old)) {
		sl = old;
		goto found;
	}
	for (sl = atomic_load(&im->slots); sl; sl = sl->next)
		if (slot_claim(sl))
			goto found;
	sl = slot_new(im);
	if (!sl)
		return NULL;
found:
	*hit = atomic_load(&sl->chunk) == c;
	atomic_store_explicit(&sl->stamp, atomic_fetch_add(&im->clock, 1) + 1,
			      memory_order_relaxed);
	return sl;
}

/*
 * Read chunk @c (not a zero one) and check it; decompressed into @dst
 * (its raw_len bytes).  0, -EIO with @f set for a bad chunk, or the
 * -errno of reading (also with @f).
 */
static int chunk_load(struct image *im, struct slot *sl, uint64_t c, char *dst,
		      struct fail *f)
{
	const struct img_chunk *e = &im->index[c];
	uint32_t raw = img_raw_len(im->h.image_len, im->h.chunk_size, c);
	bool stored_raw = e->flags & UPAGER_IMAGE_CHUNK_RAW;
	char *src = stored_raw ? dst : sl->comp;
	size_t n;
	int ret;

	f->detail = NULL;
	ret = read_at(im->fd, src, e->stored, e->offset);
	if (ret == -ENODATA) {
		f->what = "the file ends inside the chunk (cut since open)";
		return -EIO;
	}
	if (ret) {
		f->what = "read error";
		f->detail = strerrorname_np(-ret);
		return ret;
	}
	if (XXH3_64bits(src, e->stored) != e->sum) {
		f->what = "checksum mismatch";
		return -EIO;
	}
	if (stored_raw)
		return 0;
	if (sl->dctx) {
		n = ZSTD_decompressDCtx(sl->dctx, dst, raw, src, e->stored);
		if (ZSTD_isError(n)) {
			f->what = "zstd cannot decompress it";
			f->detail = ZSTD_getErrorName(n);
			return -EIO;
		}
	} else {
		int k = LZ4_decompress_safe(src, dst, (int)e->stored, (int)raw);

		if (k < 0) {
			f->what = "LZ4 cannot decompress it";
			return -EIO;
		}
		n = (size_t)k;
	}
	if (n != raw) {
		f->what = "it decompresses to fewer bytes than its raw_len";
		return -EIO;
	}
	return 0;
}

/* Tell the first failure of chunk @c on stderr. */
static void report(struct image *im, uint64_t c, int err, const struct fail *f)
{
	uint64_t bit = 1ull << (c % 64), first, last;
	const struct img_chunk *e = &im->index[c];
	struct line l = {.n = 0};

	if (atomic_fetch_or(&im->reported[c / 64], bit) & bit)
		return;
	first = c * im->h.chunk_size / PAGE;
	last = first +
	       (img_raw_len(im->h.image_len, im->h.chunk_size, c) + PAGE - 1) /
		   PAGE -
	       1;
	line_str(&l, "upager: image:");
	line_str(&l, im->path);
	line_str(&l, ": chunk ");
	line_u64(&l, c);
	line_str(&l, " (pages ");
	line_u64(&l, first);
	line_str(&l, "-");
	line_u64(&l, last);
	line_str(&l, ", ");
	line_u64(&l, e->stored);
	line_str(&l, " bytes at file offset ");
	line_u64(&l, e->offset);
	line_str(&l, "): ");
	line_str(&l, f->what);
	if (f->detail) {
		line_str(&l, ": ");
		line_str(&l, f->detail);
	}
	line_str(&l, err == -EIO ? "; reads of it fail with EIO\n" : "\n");
	line_tell(&l);
}

/*
 * Bytes [@a, @a+@len) of chunk @c into @dst: the whole chunk
 * decompresses straight there, a part through a slot.
 */
static int chunk_read(struct image *im, uint64_t c, uint32_t a, uint32_t len,
		      char *dst)
{
	const struct img_chunk *e = &im->index[c];
	bool whole, hit;
	struct slot *sl;
	struct fail f;
	int ret;

	if (e->flags & UPAGER_IMAGE_CHUNK_ZERO) {
		memset(dst, 0, len);
		return 0;
	}
	whole = !a && len == img_raw_len(im->h.image_len, im->h.chunk_size, c);
	sl = slot_get(im, c, &hit);
	if (!sl)
		return -ENOMEM;
	if (hit) {
		memcpy(dst, sl->raw + a, len);
		slot_put(sl);
		return 0;
	}
	if (whole) {
		/* The slot's own buffer, and the chunk it keeps, stay. */
		ret = chunk_load(im, sl, c, dst, &f);
	} else {
		atomic_store(&sl->chunk, NO_CHUNK);
		ret = chunk_load(im, sl, c, sl->raw, &f);
		if (!ret) {
			memcpy(dst, sl->raw + a, len);
			atomic_store(&sl->chunk, c);
		}
	}
	slot_put(sl);
	if (ret)
		report(im, c, ret, &f);
	return ret;
}

static int image_fetch(struct upager_store *s, uint64_t pgoff, void *dst,
		       size_t npages)
{
	struct image *im = to_image(s);
	uint64_t pos = pgoff * PAGE, end = pos + npages * PAGE;
	uint32_t cs = im->h.chunk_size;
	char *out = dst;
	int ret;

	while (pos < end) {
		uint64_t c = pos / cs, base = c * cs;
		uint32_t raw, a, b;

		/* The last page's tail, past the image's data. */
		if (pos >= im->h.image_len) {
			memset(out, 0, end - pos);
			break;
		}
		raw = img_raw_len(im->h.image_len, cs, c);
		a = (uint32_t)(pos - base);
		b = end - base < raw ? (uint32_t)(end - base) : raw;
		ret = chunk_read(im, c, a, b - a, out);
		if (ret)
			return ret;
		out += b - a;
		pos += b - a;
	}
	return 0;
}

/* Pages from @pgoff (at most @npages) in zero chunks. */
static size_t image_zero_run(struct upager_store *s, uint64_t pgoff,
			     size_t npages)
{
	struct image *im = to_image(s);
	uint32_t cs = im->h.chunk_size;
	size_t n = 0;

	while (n < npages) {
		uint64_t pos = (pgoff + n) * PAGE, c = pos / cs, end;

		if (pos >= im->h.image_len ||
		    !(im->index[c].flags & UPAGER_IMAGE_CHUNK_ZERO))
			break;
		/* The chunk's last page, counted if the chunk reaches it. */
		end = c * cs + img_raw_len(im->h.image_len, cs, c);
		end = end / PAGE + !!(end % PAGE);
		n = end - pgoff < npages ? (size_t)(end - pgoff) : npages;
	}
	return n;
}

static void image_free(struct image *im)
{
	struct slot *sl = atomic_load(&im->slots), *next;

	for (; sl; sl = next) {
		next = sl->next;
		munmap(sl, sl->maplen);
	}
	if (im->fd >= 0)
		close(im->fd);
	free(im->reported);
	free(im->index);
	free(im->path);
	free(im);
}

static void image_close(struct upager_store *s)
{
	image_free(to_image(s));
}

static int why_set(char *why, size_t whylen, int err, const char *what)
{
	if (why && whylen)
		snprintf(why, whylen, "%s: %s", what, strerror(-err));
	return err;
}

/* The header and the whole index of @im's file, checked. */
static int image_load(struct image *im, char *why, size_t whylen)
{
	uint8_t hdr[IMG_HDR_LEN] = {0}, *buf;
	uint64_t size;
	struct stat st;
	int ret;

	if (fstat(im->fd, &st))
		return why_set(why, whylen, -errno, "fstat");
	if (S_ISDIR(st.st_mode))
		return why_set(why, whylen, -EISDIR, "open");
	if (!S_ISREG(st.st_mode))
		return why_set(why, whylen, -EINVAL, "not a regular file");
	size = (uint64_t)st.st_size;
	ret = read_at(im->fd, hdr, size < IMG_HDR_LEN ? size : IMG_HDR_LEN, 0);
	if (ret)
		return why_set(why, whylen, ret == -ENODATA ? -EIO : ret,
			       "reading the header");
	ret = img_header_check(hdr, size, &im->h, why, whylen);
	if (ret)
		return ret;
	/* data_off is inside the file: the index is no larger than it. */
	buf = malloc(im->h.data_off);
	im->index = malloc(im->h.nchunks * sizeof(*im->index) + 1);
	im->reported = calloc(im->h.nchunks / 64 + 1, sizeof(*im->reported));
	if (!buf || !im->index || !im->reported) {
		free(buf);
		return why_set(why, whylen, -ENOMEM, "the index");
	}
	ret = read_at(im->fd, buf, im->h.data_off, 0);
	if (ret)
		ret = why_set(why, whylen, ret == -ENODATA ? -EIO : ret,
			      "reading the index");
	else
		ret = img_index_check(&im->h, buf, im->index, why, whylen);
	free(buf);
	return ret;
}

struct upager_store *upager_image_open(const char *path, char *why,
				       size_t whylen, int *err)
{
	struct image *im = NULL;
	int ret = -EINVAL;

	if (why && whylen)
		*why = 0;
	if (!path || !*path) {
		why_set(why, whylen, ret, "no path");
		goto out;
	}
	ret = -ENOMEM;
	im = calloc(1, sizeof(*im));
	if (im)
		im->fd = -1;
	if (!im || !(im->path = strdup(path))) {
		why_set(why, whylen, ret, "open");
		goto out;
	}
	/* O_NONBLOCK: a FIFO is refused without waiting for a writer. */
	im->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (im->fd < 0) {
		ret = why_set(why, whylen, -errno, "open");
		goto out;
	}
	ret = image_load(im, why, whylen);
	if (ret)
		goto out;
	for (uint64_t c = 0; c < im->h.nchunks; c++) {
		const struct img_chunk *e = &im->index[c];

		im->zero_chunks += !!(e->flags & UPAGER_IMAGE_CHUNK_ZERO);
		im->raw_chunks += !!(e->flags & UPAGER_IMAGE_CHUNK_RAW);
		im->stored_bytes += e->stored;
		if (!(e->flags & UPAGER_IMAGE_CHUNK_RAW) &&
		    e->stored > im->max_comp)
			im->max_comp = e->stored;
	}
	if (im->h.codec == UPAGER_IMAGE_ZSTD)
		im->dctx_size = align64(ZSTD_estimateDCtxSize());
	atomic_init(&im->slots, NULL);
	atomic_init(&im->clock, 0);
	im->s.ops = &store_image_ops;
	im->s.npages = store_pages(im->h.image_len);
	/* Reads come from the page cache and decompress in microseconds. */
	im->s.flags = UPAGER_STORE_SIGNAL_SAFE | UPAGER_STORE_CHEAP;
out:
	if (ret && im) {
		image_free(im);
		im = NULL;
	}
	if (err)
		*err = ret;
	return im ? &im->s : NULL;
}

static int image_open(const char *arg, struct upager_store **out)
{
	char why[256];
	int err;

	*out = upager_image_open(arg, why, sizeof(why), &err);
	/* The errno cannot say which field was wrong: tell it here. */
	if (err == -EBADMSG || err == -EPROTONOSUPPORT)
		fprintf(stderr, "upager: image:%s: %s\n", arg, why);
	return err;
}

int upager_image_info(struct upager_store *s, struct upager_image_info *info)
{
	struct image *im = to_image(s);
	struct upager_image_info i = {.size = sizeof(i)};

	if (!im || !info)
		return -EINVAL;
	i.version = im->h.version;
	i.codec = im->h.codec;
	i.level = im->h.level;
	i.chunk_size = im->h.chunk_size;
	i.image_len = im->h.image_len;
	i.file_len = im->h.file_len;
	i.nchunks = im->h.nchunks;
	i.zero_chunks = im->zero_chunks;
	i.raw_chunks = im->raw_chunks;
	i.stored_bytes = im->stored_bytes;
	return output_copy(info, &i, sizeof(i));
}

int upager_image_chunk(struct upager_store *s, uint64_t idx,
		       struct upager_image_chunk *c)
{
	struct image *im = to_image(s);
	const struct img_chunk *e;

	if (!im || !c)
		return -EINVAL;
	if (idx >= im->h.nchunks)
		return -ERANGE;
	e = &im->index[idx];
	c->offset = e->offset;
	c->checksum = e->sum;
	c->stored_len = e->stored;
	c->raw_len = img_raw_len(im->h.image_len, im->h.chunk_size, idx);
	c->flags = e->flags;
	return 0;
}

int upager_image_check(struct upager_store *s, uint64_t idx, char *why,
		       size_t whylen)
{
	struct image *im = to_image(s);
	struct slot *sl;
	struct fail f;
	bool hit;
	int ret;

	if (why && whylen)
		*why = 0;
	if (!im)
		return -EINVAL;
	if (idx >= im->h.nchunks)
		return -ERANGE;
	if (im->index[idx].flags & UPAGER_IMAGE_CHUNK_ZERO)
		return 0;
	/* Always from the file: a chunk a slot keeps is not checked again. */
	sl = slot_get(im, idx, &hit);
	if (!sl)
		return -ENOMEM;
	atomic_store(&sl->chunk, NO_CHUNK);
	ret = chunk_load(im, sl, idx, sl->raw, &f);
	if (!ret)
		atomic_store(&sl->chunk, idx);
	slot_put(sl);
	if (ret && why && whylen)
		snprintf(why, whylen, "%s%s%s", f.what, f.detail ? ": " : "",
			 f.detail ? f.detail : "");
	return ret;
}

const struct upager_store_ops store_image_ops = {
    .size = sizeof(struct upager_store_ops),
    .name = "image",
    .help = "image:PATH  a compressed page image (upager image create; "
	    "docs/IMAGE.md)",
    .open = image_open,
    .fetch = image_fetch,
    .close = image_close,
    .zero_run = image_zero_run,
};
