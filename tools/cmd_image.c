// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager image: compressed page images (docs/IMAGE.md).
 *   create SPEC IMAGE   from any store: a file, a mem: dump, a remote:
 *                       export
 *   info IMAGE          header, sizes, ratio, zero pages, a histogram
 *   verify IMAGE        every chunk's checksum and decompression
 *   cat IMAGE           the data, to stdout
 *   push SPEC memcached:...  any store's pages into a memcached cluster
 * The image side is the library's (<upager/image.h>): this file only
 * moves bytes and prints.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <upager/image.h>
#include <upager/memcached.h>

#include "cli.h"
#include "cmds.h"

#define PAGE	    UPAGER_STORE_PAGE
#define BLOCK_PAGES 256 /* read and written 1 MiB at a time */
#define PROGRESS_S  0.1

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = sig;
}

/* Stop cleanly on SIGINT/SIGTERM: a create removes its unfinished file. */
static void catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static const char *codec_name(enum upager_image_codec c)
{
	return c == UPAGER_IMAGE_LZ4 ? "lz4" : "zstd";
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0;
}

/* "1.50 GiB" into @buf. */
static const char *human(char *buf, size_t len, uint64_t n)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len,
		 u && v != (double)(uint64_t)v ? "%.2f %s" : "%.0f %s", v,
		 unit[u]);
	return buf;
}

/* The image at @path, or NULL with the reason printed for @cmd. */
static struct upager_store *open_image(const char *cmd, const char *path,
				       struct upager_image_info *info)
{
	struct upager_store *s;
	char why[512];
	int err;

	s = upager_image_open(path, why, sizeof(why), &err);
	if (!s) {
		cli_error(cmd, "%s: %s", path, why);
		return NULL;
	}
	info->size = sizeof(*info);
	upager_image_info(s, info);
	return s;
}

/* Pages of chunk @c (the last one's partial page counts). */
static void chunk_pages(const struct upager_image_info *in, uint64_t c,
			uint64_t *first, uint64_t *last)
{
	uint64_t end = c * in->chunk_size + in->chunk_size;

	if (end > in->image_len)
		end = in->image_len;
	*first = c * in->chunk_size / PAGE;
	*last = (end + PAGE - 1) / PAGE - 1;
}

/* ---- create ------------------------------------------------------------ */

struct create_opts {
	struct upager_image_params p;
	bool force, json;
	const char *spec, *path;
};

static int create_usage(void)
{
	printf("usage: upager image create [OPTIONS] SPEC IMAGE\n\n"
	       "Write the pages of the store SPEC (file:PATH, mem:SIZE, "
	       "remote:HOST:PORT/NAME...)\nto IMAGE, compressed in chunks "
	       "(docs/IMAGE.md).  A progress bar goes to\nstderr on a "
	       "terminal; a summary line to stdout at the end.\n\n"
	       "  --codec zstd|lz4  the compression (default zstd)\n"
	       "  --level N         zstd: %d to %d (default 3; negative is "
	       "faster);\n"
	       "                    lz4: 1 (default, fast) to 12 (2 and up: "
	       "LZ4 HC)\n"
	       "  --chunk SIZE      bytes per chunk: a power of two from 4K "
	       "to 256K (default 64K)\n"
	       "  --force           replace IMAGE if it exists\n"
	       "  --json            the summary as one JSON object\n",
	       ZSTD_minCLevel(), ZSTD_maxCLevel());
	return 0;
}

static int create_args(int argc, char **argv, struct create_opts *o)
{
	static const struct option opts[] = {
	    {"codec", required_argument, NULL, 'c'},
	    {"level", required_argument, NULL, 'l'},
	    {"chunk", required_argument, NULL, 'k'},
	    {"force", no_argument, NULL, 'f'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0}};
	const char *level = NULL;
	uint64_t v;
	char *end;
	long l;
	int c;

	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (!strcmp(optarg, "zstd"))
				o->p.codec = UPAGER_IMAGE_ZSTD;
			else if (!strcmp(optarg, "lz4"))
				o->p.codec = UPAGER_IMAGE_LZ4;
			else
				return cli_usage_error("image create",
						       "--codec '%s' is not "
						       "zstd or lz4",
						       optarg);
			break;
		case 'l':
			level = optarg;
			break;
		case 'k':
			if (!cli_parse_u64("image create", "--chunk", optarg,
					   UPAGER_IMAGE_CHUNK_MIN,
					   UPAGER_IMAGE_CHUNK_MAX, true, &v))
				return 2;
			if (v & (v - 1))
				return cli_usage_error("image create",
						       "--chunk %s is not a "
						       "power of two",
						       optarg);
			o->p.chunk_size = (uint32_t)v;
			break;
		case 'f':
			o->force = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			create_usage();
			return -1;
		default:
			return cli_usage_error("image create",
					       "unknown option");
		}
	}
	if (level) {
		bool lz4 = o->p.codec == UPAGER_IMAGE_LZ4;
		long lo = lz4 ? 1 : ZSTD_minCLevel();
		long hi = lz4 ? 12 : ZSTD_maxCLevel();

		errno = 0;
		l = strtol(level, &end, 10);
		if (errno || end == level || *end || l < lo || l > hi || !l)
			return cli_usage_error("image create",
					       "--level '%s' is not a %s level "
					       "(%ld to %ld, not 0)",
					       level, lz4 ? "lz4" : "zstd", lo,
					       hi);
		o->p.level = (int)l;
	}
	if (argc - optind != 2)
		return cli_usage_error("image create", "%s",
				       argc - optind < 2
					   ? "SPEC and IMAGE are needed"
					   : "more than SPEC and IMAGE");
	o->spec = argv[optind];
	o->path = argv[optind + 1];
	return 0;
}

static void create_summary(const struct create_opts *o,
			   const struct upager_image_info *in, double secs)
{
	char a[32], b[32], k[32];

	if (o->json) {
		struct json j;

		json_begin(&j, stdout);
		json_str(&j, "image", o->path);
		json_str(&j, "source", o->spec);
		json_str(&j, "codec", codec_name(in->codec));
		json_i64(&j, "level", in->level);
		json_u64(&j, "chunk_size", in->chunk_size);
		json_u64(&j, "image_bytes", in->image_len);
		json_u64(&j, "file_bytes", in->file_len);
		json_f64(&j, "ratio", ratio(in->image_len, in->file_len));
		json_u64(&j, "chunks", in->nchunks);
		json_u64(&j, "zero_chunks", in->zero_chunks);
		json_u64(&j, "raw_chunks", in->raw_chunks);
		json_f64(&j, "seconds", secs);
		json_end(&j);
		return;
	}
	printf("%s: %s -> %s, ratio %.2f; %" PRIu64 " chunks of %s (%" PRIu64
	       " zero, %" PRIu64 " raw), %s level %d; %.2f s, %.0f MB/s\n",
	       o->path, human(a, sizeof(a), in->image_len),
	       human(b, sizeof(b), in->file_len),
	       ratio(in->image_len, in->file_len), in->nchunks,
	       human(k, sizeof(k), in->chunk_size), in->zero_chunks,
	       in->raw_chunks, codec_name(in->codec), in->level, secs,
	       secs > 0 ? (double)in->image_len / secs / 1e6 : 0);
}

/*
 * Every page of store @s (opened from @spec) through @put, a block at a
 * time, with a progress bar on stderr when @bar; SIGINT and SIGTERM stop
 * it.  0, or 1 after telling why (as @cmd).
 */
static int copy_pages(const char *cmd, const char *spec, struct upager_store *s,
		      bool bar, int (*put)(void *arg, uint64_t pg,
					   const char *buf, size_t n),
		      void *arg)
{
	uint64_t len = s->npages * PAGE;
	double t0 = cli_now(), shown = 0;
	char *buf = malloc(BLOCK_PAGES * PAGE);
	int err;

	if (!buf)
		return cli_error(cmd, "%s", strerror(ENOMEM));
	catch_signals();
	for (uint64_t pg = 0; pg < s->npages; pg += BLOCK_PAGES) {
		size_t n =
		    s->npages - pg < BLOCK_PAGES ? s->npages - pg : BLOCK_PAGES;

		if (stop) {
			free(buf);
			return cli_error(cmd, "stopped by signal %d",
					 (int)stop);
		}
		err = upager_store_fetch(s, pg, buf, n);
		if (err) {
			free(buf);
			return cli_error(cmd,
					 "%s: pages %" PRIu64 "-%" PRIu64
					 ": %s",
					 spec, pg, pg + n - 1, strerror(-err));
		}
		if (put(arg, pg, buf, n)) {
			free(buf);
			return 1;
		}
		if (bar && cli_now() - shown > PROGRESS_S) {
			shown = cli_now();
			cli_progress(strrchr(cmd, ' ') + 1, (pg + n) * PAGE,
				     len, shown - t0, false);
		}
	}
	if (bar)
		cli_progress(strrchr(cmd, ' ') + 1, len, len, cli_now() - t0,
			     true);
	free(buf);
	return 0;
}

/*
 * Open store @spec into *@out for @cmd, which wants a store with an end.
 * 0, or the exit status after telling why.
 */
static int open_source(const char *cmd, const char *spec,
		       struct upager_store **out)
{
	int err;

	*out = upager_store_open(spec, &err);
	if (!*out && err == -ENOENT && !strchr(spec, ':'))
		return cli_usage_error(cmd,
				       "cannot open %s: no store is named so (a "
				       "file is file:%s; 'upager serve --help' "
				       "lists every kind)",
				       spec, spec);
	if (!*out)
		return cli_error(cmd, "cannot open %s: %s", spec,
				 strerror(-err));
	if ((*out)->npages == UPAGER_STORE_UNBOUNDED) {
		upager_store_close(*out);
		*out = NULL;
		return cli_usage_error(cmd,
				       "%s has no end: give a store of a size",
				       spec);
	}
	return 0;
}

struct image_sink {
	struct upager_image_writer *w;
	const char *path;
};

static int write_image(void *arg, uint64_t pg, const char *buf, size_t n)
{
	struct image_sink *k = arg;
	int err = upager_image_write(k->w, buf, n * PAGE);

	(void)pg;
	if (err)
		return cli_error("image create", "writing %s: %s", k->path,
				 strerror(-err));
	return 0;
}

static int cmd_create(int argc, char **argv)
{
	struct create_opts o = {.p = {.size = sizeof(o.p)}};
	struct image_sink k = {.w = NULL};
	struct upager_image_info info;
	struct upager_store *s, *img;
	double t0 = cli_now();
	int ret = 1, err;
	struct stat st;

	err = create_args(argc, argv, &o);
	if (err)
		return err < 0 ? 0 : err;
	if (!o.force && !stat(o.path, &st))
		return cli_error("image create",
				 "%s exists (--force replaces it)", o.path);
	ret = open_source("image create", o.spec, &s);
	if (ret)
		return ret;
	ret = 1;
	k.path = o.path;
	k.w = upager_image_create(o.path, s->npages * PAGE, &o.p, &err);
	if (!k.w) {
		cli_error("image create", "cannot create %s: %s", o.path,
			  strerror(-err));
		goto out;
	}
	if (copy_pages("image create", o.spec, s,
		       isatty(STDERR_FILENO) && !o.json, write_image, &k)) {
		cli_error("image create", "%s not written", o.path);
		goto out;
	}
	err = upager_image_commit(k.w);
	if (err) {
		cli_error("image create", "writing %s: %s", o.path,
			  strerror(-err));
		goto out;
	}
	/* The summary comes from the image as a reader sees it. */
	img = open_image("image create", o.path, &info);
	if (img) {
		create_summary(&o, &info, cli_now() - t0);
		upager_store_close(img);
		ret = 0;
	}
out:
	upager_image_writer_free(k.w);
	upager_store_close(s);
	return ret;
}

/* ---- info -------------------------------------------------------------- */

/*
 * Histogram of stored chunk sizes: bucket 0 the zero chunks, bucket k
 * (1..) those of up to 256 << k bytes.
 */
#define BUCKETS 12

static unsigned int bucket(uint32_t stored)
{
	unsigned int k = 1;

	if (!stored)
		return 0;
	while (k < BUCKETS - 1 && stored > 256u << k)
		k++;
	return k;
}

static int info_usage(void)
{
	printf("usage: upager image info [--json] IMAGE\n\n"
	       "The header of a page image, its sizes and compression ratio, "
	       "the pages in\nzero chunks, and a histogram of the chunks' "
	       "stored sizes.\n\n"
	       "  --json   one JSON object\n");
	return 0;
}

/* Parse [--json] IMAGE for info, verify and cat; -1 after --help. */
static int image_args(int argc, char **argv, const char *cmd, bool json_ok,
		      int (*usage)(void), bool *json, const char **path)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage();
			return -1;
		}
		if (c != 'j' || !json_ok)
			return cli_usage_error(cmd, "unknown option");
		*json = true;
	}
	if (argc - optind != 1)
		return cli_usage_error(cmd, "%s",
				       argc == optind ? "IMAGE is needed"
						      : "one IMAGE only");
	*path = argv[optind];
	return 0;
}

static int cmd_info(int argc, char **argv)
{
	uint64_t hist[BUCKETS] = {0}, zero_pages = 0, first, last;
	struct upager_image_info in;
	struct upager_image_chunk ch;
	struct upager_store *s;
	const char *path = NULL;
	bool json = false;
	char a[32], b[32];
	int ret;

	ret = image_args(argc, argv, "image info", true, info_usage, &json,
			 &path);
	if (ret)
		return ret < 0 ? 0 : ret;
	s = open_image("image info", path, &in);
	if (!s)
		return 1;
	for (uint64_t c = 0; c < in.nchunks; c++) {
		upager_image_chunk(s, c, &ch);
		hist[bucket(ch.stored_len)]++;
		if (ch.flags & UPAGER_IMAGE_CHUNK_ZERO) {
			chunk_pages(&in, c, &first, &last);
			zero_pages += last - first + 1;
		}
	}
	upager_store_close(s);
	if (json) {
		struct json j;

		json_begin(&j, stdout);
		json_str(&j, "image", path);
		json_u64(&j, "version", in.version);
		json_str(&j, "codec", codec_name(in.codec));
		json_i64(&j, "level", in.level);
		json_str(&j, "checksum", "xxh3-64");
		json_u64(&j, "chunk_size", in.chunk_size);
		json_u64(&j, "image_bytes", in.image_len);
		json_u64(&j, "pages", (in.image_len + PAGE - 1) / PAGE);
		json_u64(&j, "file_bytes", in.file_len);
		json_u64(&j, "stored_bytes", in.stored_bytes);
		json_f64(&j, "ratio", ratio(in.image_len, in.file_len));
		json_u64(&j, "chunks", in.nchunks);
		json_u64(&j, "zero_chunks", in.zero_chunks);
		json_u64(&j, "raw_chunks", in.raw_chunks);
		json_u64(&j, "compressed_chunks",
			 in.nchunks - in.zero_chunks - in.raw_chunks);
		json_u64(&j, "zero_pages", zero_pages);
		json_arr_open(&j, "histogram");
		for (unsigned int k = 0; k < BUCKETS; k++) {
			if (!hist[k])
				continue;
			json_obj_open(&j, NULL);
			json_u64(&j, "max_bytes", k ? 256u << k : 0);
			json_u64(&j, "chunks", hist[k]);
			json_obj_close(&j);
		}
		json_arr_close(&j);
		json_end(&j);
		return 0;
	}
	printf("image       %s (format version %u)\n", path, in.version);
	printf("data        %s, %" PRIu64 " bytes, %" PRIu64 " pages\n",
	       human(a, sizeof(a), in.image_len), in.image_len,
	       (in.image_len + PAGE - 1) / PAGE);
	printf("file        %s, %" PRIu64 " bytes: ratio %.2f\n",
	       human(b, sizeof(b), in.file_len), in.file_len,
	       ratio(in.image_len, in.file_len));
	printf("compression %s level %d, chunks of %s, checksums XXH3-64\n",
	       codec_name(in.codec), in.level,
	       human(a, sizeof(a), in.chunk_size));
	printf("chunks      %" PRIu64 ": %" PRIu64 " compressed, %" PRIu64
	       " zero (stored as nothing), %" PRIu64 " raw\n",
	       in.nchunks, in.nchunks - in.zero_chunks - in.raw_chunks,
	       in.zero_chunks, in.raw_chunks);
	printf("zero pages  %" PRIu64 " (in zero chunks)\n", zero_pages);
	printf("stored size of chunks:\n");
	for (unsigned int k = 0; k < BUCKETS; k++) {
		if (!hist[k])
			continue;
		if (k)
			printf("  <= %-8s", human(a, sizeof(a), 256u << k));
		else
			printf("  %-11s", "zero");
		printf(" %10" PRIu64 " %5.1f%%\n", hist[k],
		       100 * ratio(hist[k], in.nchunks));
	}
	return 0;
}

/* ---- verify ------------------------------------------------------------ */

static int verify_usage(void)
{
	printf(
	    "usage: upager image verify [--json] IMAGE\n\n"
	    "Check a page image: its header and index, then every chunk's "
	    "checksum and\ndecompression.  Each bad chunk is named on "
	    "stderr; exit 1 if there is one.\nA progress bar goes to "
	    "stderr on a terminal.\n\n"
	    "  --json   the result as one JSON object (bad chunks listed)\n");
	return 0;
}

static int cmd_verify(int argc, char **argv)
{
	struct upager_image_info in;
	struct upager_image_chunk ch;
	uint64_t nbad = 0, first, last;
	double t0 = cli_now(), shown = 0;
	struct upager_store *s;
	const char *path = NULL;
	bool json = false, bar;
	struct json j = {0};
	char why[256];
	int ret;

	ret = image_args(argc, argv, "image verify", true, verify_usage, &json,
			 &path);
	if (ret)
		return ret < 0 ? 0 : ret;
	s = open_image("image verify", path, &in);
	if (!s)
		return 1;
	bar = !json && isatty(STDERR_FILENO);
	if (json) {
		json_begin(&j, stdout);
		json_str(&j, "image", path);
		json_u64(&j, "chunks", in.nchunks);
		json_arr_open(&j, "bad");
	}
	for (uint64_t c = 0; c < in.nchunks; c++) {
		ret = upager_image_check(s, c, why, sizeof(why));
		if (ret) {
			upager_image_chunk(s, c, &ch);
			chunk_pages(&in, c, &first, &last);
			if (ret != -EIO)
				snprintf(why, sizeof(why), "%s",
					 strerror(-ret));
			if (bar)
				fputc('\n', stderr);
			cli_error("image verify",
				  "%s: chunk %" PRIu64 " (pages %" PRIu64
				  "-%" PRIu64 ", %" PRIu32
				  " bytes at file offset %" PRIu64 "): %s",
				  path, c, first, last, ch.stored_len,
				  ch.offset, why);
			nbad++;
			if (json) {
				json_obj_open(&j, NULL);
				json_u64(&j, "chunk", c);
				json_u64(&j, "first_page", first);
				json_u64(&j, "last_page", last);
				json_u64(&j, "offset", ch.offset);
				json_str(&j, "error", why);
				json_obj_close(&j);
			}
		}
		if (bar && cli_now() - shown > PROGRESS_S) {
			shown = cli_now();
			cli_progress("verify", (c + 1) * in.chunk_size,
				     in.nchunks * in.chunk_size, shown - t0,
				     false);
		}
	}
	if (bar)
		cli_progress("verify", in.image_len, in.image_len,
			     cli_now() - t0, true);
	upager_store_close(s);
	if (json) {
		json_arr_close(&j);
		json_u64(&j, "bad_chunks", nbad);
		json_end(&j);
	} else {
		printf("%s: %" PRIu64 " chunks verified, %" PRIu64 " bad\n",
		       path, in.nchunks, nbad);
	}
	return nbad ? 1 : 0;
}

/* ---- cat --------------------------------------------------------------- */

static int cat_usage(void)
{
	printf("usage: upager image cat IMAGE\n\n"
	       "Write the data of a page image to stdout, exactly as many "
	       "bytes as it holds.\nA bad chunk stops it with exit 1 (the "
	       "store names the chunk on stderr).\n");
	return 0;
}

static int write_all(const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(STDOUT_FILENO, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cmd_cat(int argc, char **argv)
{
	struct upager_image_info in;
	struct upager_store *s;
	const char *path = NULL;
	bool json = false;
	int ret;
	char *buf;

	ret =
	    image_args(argc, argv, "image cat", false, cat_usage, &json, &path);
	if (ret)
		return ret < 0 ? 0 : ret;
	if (isatty(STDOUT_FILENO))
		return cli_usage_error("image cat",
				       "stdout is a terminal: "
				       "redirect it to a file or a pipe");
	s = open_image("image cat", path, &in);
	if (!s)
		return 1;
	buf = malloc(BLOCK_PAGES * PAGE);
	ret = buf ? 0 : cli_error("image cat", "out of memory");
	for (uint64_t pg = 0; !ret && pg < s->npages; pg += BLOCK_PAGES) {
		size_t n =
		    s->npages - pg < BLOCK_PAGES ? s->npages - pg : BLOCK_PAGES;
		uint64_t left = in.image_len - pg * PAGE;
		int err = upager_store_fetch(s, pg, buf, n);

		if (err) {
			ret = cli_error("image cat",
					"%s: pages %" PRIu64 "-%" PRIu64 ": %s",
					path, pg, pg + n - 1, strerror(-err));
			break;
		}
		/* The last page's tail past the data is not the image's. */
		err = write_all(buf, left < n * PAGE ? left : n * PAGE);
		if (err)
			ret = cli_error("image cat", "writing stdout: %s",
					strerror(-err));
	}
	free(buf);
	upager_store_close(s);
	return ret;
}

/* ---- push -------------------------------------------------------------- */

static int push_usage(void)
{
	printf("usage: upager image push [--json] SPEC memcached:SERVERS/NAMESPACE"
	       "[,OPTIONS]\n\n"
	       "Load the pages of the store SPEC (image:PATH, file:PATH, "
	       "mem:SIZE,\nremote:HOST:PORT/NAME...) into a memcached cluster "
	       "as a new push of NAMESPACE\n(docs/MEMCACHED.md): every page a "
	       "key, zero pages too; the namespace's meta\nrecord is written "
	       "last, so readers see the new push only once it is whole.\n"
	       "A progress bar goes to stderr on a terminal; a summary line "
	       "to stdout.\n\n"
	       "  --json   the summary as one JSON object\n");
	return 0;
}

static int put_memcached(void *arg, uint64_t pg, const char *buf, size_t n)
{
	int err = upager_store_writeback(arg, pg, buf, n);

	if (err)
		return cli_error("image push",
				 "pages %" PRIu64 "-%" PRIu64 ": %s", pg,
				 pg + n - 1, strerror(-err));
	return 0;
}

static int cmd_push(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0, 0, 0, 0}};
	struct upager_store *s, *mc = NULL;
	const char *spec, *dest;
	double t0 = cli_now(), secs;
	bool json = false;
	char why[512];
	int c, ret, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'h')
			return push_usage();
		else
			return cli_usage_error("image push", "unknown option");
	}
	if (argc - optind != 2)
		return cli_usage_error("image push", "%s",
				       argc - optind < 2
					   ? "SPEC and memcached:... are needed"
					   : "too many arguments");
	spec = argv[optind];
	dest = argv[optind + 1];
	if (strncmp(dest, "memcached:", 10))
		return cli_usage_error("image push",
				       "%s: the destination is a memcached:... "
				       "spec",
				       dest);
	ret = open_source("image push", spec, &s);
	if (ret)
		return ret;
	ret = 1;
	mc = upager_memcached_create(dest + 10, s->npages, why, sizeof(why),
				     &err);
	if (!mc) {
		cli_error("image push", "%s: %s", dest, why);
		goto out;
	}
	if (copy_pages("image push", spec, s, isatty(STDERR_FILENO) && !json,
		       put_memcached, mc))
		goto out;
	err = upager_memcached_commit(mc);
	if (err) {
		cli_error("image push", "the meta record: %s", strerror(-err));
		goto out;
	}
	secs = cli_now() - t0;
	if (json) {
		struct json j;

		json_begin(&j, stdout);
		json_str(&j, "source", spec);
		json_str(&j, "destination", dest);
		json_u64(&j, "pages", s->npages);
		json_f64(&j, "seconds", secs);
		json_end(&j);
	} else {
		printf("%s -> %s: %" PRIu64 " pages in %.2f s, %.0f MB/s\n",
		       spec, dest, s->npages, secs,
		       secs > 0 ? (double)s->npages * PAGE / secs / 1e6 : 0);
	}
	ret = 0;
out:
	if (mc)
		upager_store_close(mc);
	upager_store_close(s);
	return ret;
}

/* ---- dispatch ---------------------------------------------------------- */

static const struct cli_cmd subs[] = {
    {"create", "compress a store's pages into an image", cmd_create},
    {"info", "header, sizes, ratio, histogram", cmd_info},
    {"verify", "check every chunk", cmd_verify},
    {"cat", "the data to stdout", cmd_cat},
    {"push", "load a store's pages into memcached", cmd_push},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: upager image COMMAND [ARGS]\n\n"
		   "compressed page images (docs/IMAGE.md); open one as the "
		   "store image:PATH\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		fprintf(f, "  %-8s %s\n", subs[i].name, subs[i].summary);
	fprintf(f, "\n'upager image COMMAND --help' describes each one.\n");
}

int cmd_image(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].run(argc - 1, argv + 1);
	return cli_usage_error("image", "unknown command '%s'", argv[1]);
}
