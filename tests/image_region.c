// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A region over a page image reads the image's data, every byte: argv[1]
 * anon or shmem (worker-served, read-ahead and fault-around on), or
 * inthread (anon, UPAGER_MAP_IN_THREAD: the faulting thread decompresses
 * in its SIGBUS handler, which the store allows by being SIGNAL_SAFE).
 * For each codec and chunks of 4 and 256 KiB: two threads touch pages
 * at random while a third reads the region from the start, then every
 * byte is compared with the data (zero chunks included).
 */
#include <pthread.h>

#include "tstore.h"
#include "timage.h"

#define LEN (8u << 20)
#define NPAGES (LEN / TI_PAGE)

static char *data;

struct toucher_arg {
	const volatile char *p;
	uint64_t seed;
	unsigned long sum;
};

static void *touch_random(void *arg)
{
	struct toucher_arg *t = arg;

	for (int i = 0; i < 400; i++) {
		t->seed = t->seed * 6364136223846793005ull + 1442695040888963407ull;
		t->sum += (unsigned char)t->p[(t->seed >> 20) % LEN];
	}
	return NULL;
}

static void *touch_forward(void *arg)
{
	struct toucher_arg *t = arg;

	for (size_t off = 0; off < LEN; off += TI_PAGE)
		t->sum += (unsigned char)t->p[off];
	return NULL;
}

static void check(enum upager_memtype type, bool inthread,
		  enum upager_image_codec codec, uint32_t cs)
{
	struct upager_map_params mp = { .size = sizeof(mp), .memtype = type };
	struct toucher_arg ta[3];
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	char path[256], what[64];
	pthread_t t[3];
	char *p;
	int err;

	snprintf(what, sizeof(what), "region-%s-%u", ti_codec(codec), cs);
	ti_path(path, sizeof(path), what);
	ti_write(path, data, LEN, codec, cs);
	s = ti_open(path);
	h = t_upager_handler(2, NULL, NULL);
	if (inthread)
		mp.flags = UPAGER_MAP_IN_THREAD;
	p = upager_map(h, s, LEN, &mp, &r, &err);
	CHECK(p, "%s: map: %s", what, strerror(-err));
	if (!inthread)
		CHECK_RET(upager_handler_start(h), 0);
	for (int i = 0; i < 3; i++) {
		ta[i] = (struct toucher_arg){ .p = p, .seed = 77u + i };
		CHECK(!pthread_create(&t[i], NULL,
				      i < 2 ? touch_random : touch_forward,
				      &ta[i]),
		      "pthread_create");
	}
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	for (size_t pg = 0; pg < NPAGES; pg++)
		if (memcmp(p + pg * TI_PAGE, data + pg * TI_PAGE, TI_PAGE))
			FAIL("%s: page %zu differs", what, pg);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	unlink(path);
}

int main(int argc, char **argv)
{
	bool inthread = argc > 1 && !strcmp(argv[1], "inthread");
	enum upager_memtype type = inthread ? UPAGER_MEM_ANON
					    : t_upager_memtype(argc, argv,
							       false);

	data = malloc(LEN);
	CHECK(data, "malloc");
	ti_data(data, LEN, 11);
	for (int c = UPAGER_IMAGE_ZSTD; c <= UPAGER_IMAGE_LZ4; c++) {
		check(type, inthread, (enum upager_image_codec)c, 4096);
		check(type, inthread, (enum upager_image_codec)c, 256 << 10);
	}
	free(data);
	return 0;
}
