// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The image store (src/store/image.c) and its writer, without a kernel:
 * data with compressible, random and zero pages, not a whole number of
 * pages long, goes through both codecs at chunks of 4, 64 and 256 KiB and
 * comes back byte for byte: all at once, in ranges that cross chunk
 * boundaries, a page at a time, and from 4 threads at once over random
 * ranges.  zero_run() counts exactly the pages of zero chunks; the last
 * page's tail past the data reads zeros; the index adds up (info, every
 * chunk checks).  The writer refuses bad parameters and more data than
 * announced, a commit of fewer, and leaves nothing behind when it is
 * freed uncommitted; a commit replaces an old file.  The spec form
 * "image:PATH" opens the same store; bad paths are refused.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <dirent.h>

#include "timage.h"

#define LEN (3u * 1024 * 1024 + 5000) /* 769 pages, the last in part */
#define NPAGES ((LEN + TI_PAGE - 1) / TI_PAGE)
#define THREADS 4

static char *data; /* LEN bytes, then zeros to the end of the page */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Pages [pg, pg+n) of the store read as data says. */
static void check_range(struct upager_store *s, char *buf, uint64_t pg,
			size_t n, const char *what)
{
	memset(buf, 0xaa, n * TI_PAGE);
	CHECK_RET(upager_store_fetch(s, pg, buf, n), 0);
	if (!memcmp(buf, data + pg * TI_PAGE, n * TI_PAGE))
		return;
	for (size_t i = 0; i < n * TI_PAGE; i++)
		if (buf[i] != data[pg * TI_PAGE + i])
			FAIL("%s: pages %llu+%zu: byte %zu is 0x%02x, want "
			     "0x%02x",
			     what, (unsigned long long)pg, n,
			     (size_t)(pg * TI_PAGE + i), buf[i] & 0xff,
			     data[pg * TI_PAGE + i] & 0xff);
}

static bool chunk_is_zero(uint64_t c, uint32_t cs)
{
	size_t end = (c + 1) * cs < LEN ? (c + 1) * cs : LEN;

	for (size_t i = c * cs; i < end; i++)
		if (data[i])
			return false;
	return true;
}

/* Is page @pg in a zero chunk?  (Filled by check_image().) */
static bool zpage[NPAGES];

/* What zero_run() must say: pages from pg in all-zero chunks. */
static size_t want_zero_run(uint64_t pg, size_t n)
{
	size_t k = 0;

	while (k < n && pg + k < NPAGES && zpage[pg + k])
		k++;
	return k;
}

struct worker {
	struct upager_store *s;
	uint64_t seed;
	char *buf;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 600; i++) {
		size_t n = 1 + rnd(&w->seed) % 40;
		uint64_t pg = rnd(&w->seed) % (NPAGES - n + 1);

		check_range(w->s, w->buf, pg, n, "a thread's fetch");
	}
	return NULL;
}

static void check_threads(struct upager_store *s)
{
	struct worker w[THREADS];
	pthread_t t[THREADS];

	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .s = s, .seed = 0x9e3779b9u + i };
		w[i].buf = malloc(40 * TI_PAGE);
		CHECK(w[i].buf, "malloc");
		CHECK(!pthread_create(&t[i], NULL, worker_main, &w[i]),
		      "pthread_create");
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		free(w[i].buf);
	}
}

static void check_image(enum upager_image_codec codec, uint32_t cs)
{
	struct upager_image_info info = { .size = sizeof(info) };
	size_t (*zero_run)(struct upager_store *, uint64_t, size_t);
	uint64_t zeros = 0;
	char path[256], what[64], *buf;
	struct upager_store *s;

	snprintf(what, sizeof(what), "%s-%u", ti_codec(codec), cs);
	ti_path(path, sizeof(path), what);
	ti_write(path, data, LEN, codec, cs);
	s = ti_open(path);
	CHECK(s->npages == NPAGES, "%s: npages %llu", what,
	      (unsigned long long)s->npages);
	CHECK(s->flags == (UPAGER_STORE_SIGNAL_SAFE | UPAGER_STORE_CHEAP),
	      "%s: flags 0x%x", what, s->flags);
	CHECK_RET(upager_image_info(s, &info), 0);
	CHECK(info.version == UPAGER_IMAGE_VERSION && info.codec == codec &&
		      info.chunk_size == cs && info.image_len == LEN &&
		      info.nchunks == (LEN + cs - 1) / cs,
	      "%s: info v%u codec %d chunk %u len %llu nchunks %llu", what,
	      info.version, info.codec, info.chunk_size,
	      (unsigned long long)info.image_len,
	      (unsigned long long)info.nchunks);
	for (uint64_t c = 0; c < info.nchunks; c++) {
		struct upager_image_chunk ch;

		CHECK_RET(upager_image_chunk(s, c, &ch), 0);
		CHECK(!!(ch.flags & UPAGER_IMAGE_CHUNK_ZERO) ==
			      chunk_is_zero(c, cs),
		      "%s: chunk %llu flags 0x%x", what,
		      (unsigned long long)c, ch.flags);
		CHECK_RET(upager_image_check(s, c, NULL, 0), 0);
		zeros += chunk_is_zero(c, cs);
	}
	CHECK(info.zero_chunks == zeros && zeros > 0, "%s: %llu zero chunks",
	      what, (unsigned long long)info.zero_chunks);
	/* 4 KiB chunks of random bytes cannot shrink: stored raw. */
	CHECK(cs > TI_PAGE || info.raw_chunks > 0, "%s: no raw chunk", what);
	CHECK(info.stored_bytes < LEN / 2 && info.file_len > info.stored_bytes,
	      "%s: %llu bytes stored, file %llu", what,
	      (unsigned long long)info.stored_bytes,
	      (unsigned long long)info.file_len);
	CHECK_RET(upager_image_chunk(s, info.nchunks, &(struct upager_image_chunk){ 0 }),
		  -ERANGE);

	buf = malloc((NPAGES + 1) * TI_PAGE);
	CHECK(buf, "malloc");
	check_range(s, buf, 0, NPAGES, what);
	for (uint64_t pg = 0; pg < NPAGES; pg++)
		check_range(s, buf, pg, 1, what);
	/* Ranges that start and end inside chunks, across their borders. */
	for (uint64_t pg = 0; pg + 20 < NPAGES; pg += 13)
		check_range(s, buf, pg, 20, what);
	for (uint64_t b = cs / TI_PAGE; b < NPAGES; b += cs / TI_PAGE)
		check_range(s, buf, b - 1, b + 1 < NPAGES ? 2 : 1, what);
	CHECK_RET(upager_store_fetch(s, NPAGES - 1, buf, 2), -ERANGE);

	zero_run = s->ops->zero_run;
	for (uint64_t pg = 0; pg < NPAGES; pg++)
		zpage[pg] = chunk_is_zero(pg * TI_PAGE / cs, cs);
	for (uint64_t pg = 0; pg < NPAGES; pg++)
		for (size_t n = 1; n < 80 && pg + n <= NPAGES; n += 37)
			CHECK(zero_run(s, pg, n) == want_zero_run(pg, n),
			      "%s: zero_run(%llu, %zu) %zu, want %zu", what,
			      (unsigned long long)pg, n, zero_run(s, pg, n),
			      want_zero_run(pg, n));
	check_threads(s);
	free(buf);
	upager_store_close(s);
	unlink(path);
}

/* Files in t_tmpdir() whose name starts with @prefix. */
static int count_files(const char *prefix)
{
	DIR *d = opendir(t_tmpdir());
	struct dirent *e;
	int n = 0;

	CHECK(d, "opendir %s", t_tmpdir());
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

static void check_writer(void)
{
	struct upager_image_params p = { .size = sizeof(p) };
	struct upager_image_writer *w;
	char path[256], prefix[64], spec[300];
	struct upager_store *s;
	struct stat st;
	int err;

	ti_path(path, sizeof(path), "writer");
	snprintf(prefix, sizeof(prefix), "upager-writer-%d.img", (int)getpid());
	struct {
		enum upager_image_codec codec;
		int level;
		uint32_t chunk;
	} bad[] = {
		{ 3, 0, 0 },	      { UPAGER_IMAGE_LZ4, 13, 0 },
		{ UPAGER_IMAGE_LZ4, -1, 0 }, { UPAGER_IMAGE_ZSTD, 23, 0 },
		{ 0, 0, 2048 },	      { 0, 0, 512 << 10 },
		{ 0, 0, 12288 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.codec = bad[i].codec;
		p.level = bad[i].level;
		p.chunk_size = bad[i].chunk;
		CHECK(!upager_image_create(path, 4096, &p, &err) &&
			      err == -EINVAL,
		      "bad params %zu: err %d", i, err);
	}
	CHECK(!upager_image_create("", 4096, NULL, &err) && err == -EINVAL,
	      "empty path: %d", err);

	/* More than announced; a commit short of it; freed uncommitted. */
	w = upager_image_create(path, 10000, NULL, &err);
	CHECK(w, "create: %s", strerror(-err));
	CHECK_RET(upager_image_write(w, data, 6000), 0);
	CHECK_RET(upager_image_write(w, data, 4001), -EFBIG);
	CHECK_RET(upager_image_commit(w), -EINVAL);
	CHECK(count_files(prefix) == 1, "the temporary file");
	upager_image_writer_free(w);
	CHECK(count_files(prefix) == 0, "a freed writer left a file");
	CHECK(stat(path, &st) && errno == ENOENT, "the image exists");

	/* A commit replaces what was there; the spec opens the same. */
	CHECK(close(open(path, O_CREAT | O_WRONLY, 0600)) == 0, "%s", path);
	ti_write(path, data, 10000, UPAGER_IMAGE_LZ4, 4096);
	CHECK(count_files(prefix) == 1, "files beside the image");
	snprintf(spec, sizeof(spec), "image:%s", path);
	s = upager_store_open(spec, &err);
	CHECK(s && s->npages == 3, "%s: err %d", spec, err);
	CHECK(s->ops == upager_store_find("image"), "ops");
	upager_store_close(s);
	unlink(path);

	/* An empty image. */
	ti_write(path, data, 0, UPAGER_IMAGE_ZSTD, 0);
	s = ti_open(path);
	CHECK(s->npages == 0, "empty: npages %llu",
	      (unsigned long long)s->npages);
	CHECK_RET(upager_store_fetch(s, 0, data, 1), -ERANGE);
	upager_store_close(s);
	unlink(path);

	CHECK(!upager_store_open("image:", &err) && err == -EINVAL,
	      "image: err %d", err);
	CHECK(!upager_store_open("image:/nonexistent-upager/x.img", &err) &&
		      err == -ENOENT,
	      "missing file: err %d", err);
	CHECK(!upager_store_open("image:/", &err) && err == -EISDIR,
	      "a directory: err %d", err);
	CHECK_RET(upager_image_info(NULL, &(struct upager_image_info){ .size = 64 }),
		  -EINVAL);
}

int main(void)
{
	static const uint32_t sizes[] = { 4096, 64 << 10, 256 << 10 };

	data = calloc(1, NPAGES * TI_PAGE + 8 * TI_PAGE);
	CHECK(data, "calloc");
	ti_data(data, LEN, 42);
	for (int c = UPAGER_IMAGE_ZSTD; c <= UPAGER_IMAGE_LZ4; c++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			check_image((enum upager_image_codec)c, sizes[i]);
	check_writer();
	free(data);
	return t_end();
}
