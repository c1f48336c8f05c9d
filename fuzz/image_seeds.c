// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Write the image fuzzer's seeds into the directory argv[1]: small page
 * images made by the writer (<upager/image.h>), with both codecs, chunks
 * of 4 KiB and of 64 KiB or more, zero chunks, chunks stored raw and a
 * short last chunk, so that the fuzzer starts from real headers, indexes
 * and frames.  Each file is byte 0, image_fuzz.c's mode (0: the harness
 * fixes the checksums up), then the image; one seed has mode 1 (the bytes
 * as they are).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <upager/image.h>

#define PAGE 4096u

/*
 * @len bytes, page i as @kinds[i % strlen(kinds)] says: 't' text (it
 * compresses), 'z' zeros, 'r' noise (it does not: a 4 KiB chunk of it
 * is stored raw).
 */
static void fill(char *buf, size_t len, const char *kinds)
{
	uint64_t x = 88172645463325252ull;

	for (size_t off = 0; off < len; off++) {
		size_t i = off / PAGE;

		switch (kinds[i % strlen(kinds)]) {
		case 'z':
			buf[off] = 0;
			break;
		case 'r':
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[off] = (char)x;
			break;
		default:
			buf[off] = "page 0123456789; "[(off + i) % 17];
		}
	}
}

/* The image of @len bytes of @kinds, as seed @name with mode @mode. */
static int seed(const char *dir, const char *name, uint8_t mode,
		enum upager_image_codec codec, int level, uint32_t chunk,
		size_t len, const char *kinds)
{
	struct upager_image_params p = {.size = sizeof(p),
					.codec = codec,
					.level = level,
					.chunk_size = chunk};
	char tmp[4096], path[4096], *data = malloc(len + 1);
	struct upager_image_writer *w;
	FILE *in = NULL, *out = NULL;
	int err = -ENOMEM, c;

	snprintf(tmp, sizeof(tmp), "%s/.image-seed", dir);
	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	if (!data)
		goto out;
	fill(data, len, kinds);
	w = upager_image_create(tmp, len, &p, &err);
	if (!w)
		goto out;
	err = upager_image_write(w, data, len);
	if (!err)
		err = upager_image_commit(w);
	upager_image_writer_free(w);
	if (err)
		goto out;
	in = fopen(tmp, "rb");
	out = fopen(path, "wb");
	err = in && out && fputc(mode, out) != EOF ? 0 : -errno;
	while (!err && (c = fgetc(in)) != EOF)
		if (fputc(c, out) == EOF)
			err = -errno;
	if (!err && ferror(in))
		err = -EIO;
out:
	if (in)
		fclose(in);
	if (out && fclose(out) && !err)
		err = -errno;
	unlink(tmp);
	free(data);
	if (err)
		fprintf(stderr, "image_seeds: %s: %s\n", path, strerror(-err));
	return !!err;
}

int main(int argc, char **argv)
{
	const enum upager_image_codec zstd = UPAGER_IMAGE_ZSTD;
	const enum upager_image_codec lz4 = UPAGER_IMAGE_LZ4;
	const char *d = argv[1];
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: image_seeds DIR\n");
		return 2;
	}
	bad |= seed(d, "zstd-4k", 0, zstd, 0, 4096, 10 * PAGE + 100, "tzzrttz");
	bad |= seed(d, "zstd-4k-as-is", 1, zstd, 0, 4096, 10 * PAGE + 100,
		    "tzzrttz");
	bad |= seed(d, "lz4-4k", 0, lz4, 0, 4096, 9 * PAGE + 3000, "trzt");
	bad |= seed(d, "zstd-64k", 0, zstd, 0, 64u << 10, (3u << 16) + 5000,
		    "tttrttttttttttttzzzzzzzzzzzzzzzz");
	bad |= seed(d, "lz4hc-64k", 0, lz4, 9, 64u << 10, (2u << 16) + PAGE,
		    "tzttttttttttttrt");
	bad |=
	    seed(d, "zstd-256k", 0, zstd, 1, 256u << 10, (1u << 18) + 1, "tz");
	bad |= seed(d, "zstd-tiny", 0, zstd, 0, 4096, 100, "t");
	bad |= seed(d, "lz4-empty", 0, lz4, 0, 4096, 0, "t");
	return bad;
}
