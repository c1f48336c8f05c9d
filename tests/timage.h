/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the image tests share: data shaped like memory (pages that
 * compress, pages that do not, zero pages and runs of them), and images
 * of it written through <upager/image.h> in pieces of awkward sizes.
 * Header-only, so each test program stays one file plus the harness.
 */
#ifndef UPAGER_TEST_TIMAGE_H
#define UPAGER_TEST_TIMAGE_H

#include <unistd.h>

#include <upager/image.h>

#include "harness.h"

#define TI_PAGE 4096u

/*
 * @len bytes of test data: page i is zeros when i % 11 == 5 or in
 * [64, 160) (384 KiB: whole zero chunks of every size up to 256 KiB),
 * random bytes when i % 7 == 3 (a 4 KiB chunk of them is stored raw),
 * and text naming the page and @seed otherwise (it compresses).
 */
static inline void ti_data(char *buf, size_t len, uint64_t seed)
{
	for (size_t off = 0; off < len; off += TI_PAGE) {
		size_t i = off / TI_PAGE, n = len - off;
		char page[TI_PAGE];

		if (i % 11 == 5 || (i >= 64 && i < 160)) {
			memset(page, 0, sizeof(page));
		} else if (i % 7 == 3) {
			t_fill(page, sizeof(page), seed + i);
		} else {
			size_t k = 0;

			while (k < sizeof(page))
				k += (size_t)snprintf(page + k,
						      sizeof(page) - k,
						      "page %zu seed %llu line "
						      "%zu; ",
						      i,
						      (unsigned long long)seed,
						      k / 32);
		}
		memcpy(buf + off, page, n < TI_PAGE ? n : TI_PAGE);
	}
}

/* Write @len bytes of @data as an image at @path, in uneven pieces. */
static inline void ti_write(const char *path, const char *data, size_t len,
			    enum upager_image_codec codec, uint32_t chunk)
{
	static const size_t pieces[] = { 1000, 70000, 4096, 1, 300000, 65536 };
	struct upager_image_params p = { .size = sizeof(p), .codec = codec,
					 .chunk_size = chunk };
	struct upager_image_writer *w;
	size_t off = 0;
	int err;

	w = upager_image_create(path, len, &p, &err);
	CHECK(w, "create %s: %s", path, strerror(-err));
	for (unsigned int k = 0; off < len; k++) {
		size_t n = pieces[k % 6];

		if (n > len - off)
			n = len - off;
		CHECK_RET(upager_image_write(w, data + off, n), 0);
		off += n;
	}
	CHECK_RET(upager_image_commit(w), 0);
	upager_image_writer_free(w);
}

/* A path for an image in t_tmpdir(); the caller unlinks it. */
static inline void ti_path(char *path, size_t size, const char *what)
{
	snprintf(path, size, "%s/upager-%s-%d.img", t_tmpdir(), what,
		 (int)getpid());
}

static inline struct upager_store *ti_open(const char *path)
{
	char why[256];
	int err;
	struct upager_store *s = upager_image_open(path, why, sizeof(why),
						   &err);

	CHECK(s, "open %s: %s (%s)", path, why, strerror(-err));
	return s;
}

static inline const char *ti_codec(enum upager_image_codec c)
{
	return c == UPAGER_IMAGE_LZ4 ? "lz4" : "zstd";
}

#endif
