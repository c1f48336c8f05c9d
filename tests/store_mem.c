// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The mem store: "mem:64K" by spec and upager_store_mem_new() give a
 * zeroed, page-rounded image; what the caller writes through
 * upager_store_mem_data() is what fetch() returns; direct() points into
 * the image; writeback() lands in it; the range is checked; a missing,
 * malformed or zero size is -EINVAL and an impossible one -ENOMEM;
 * mem_data() of another kind of store is NULL.
 */
#include <upager/store.h>

#include "harness.h"

#define PAGE UPAGER_STORE_PAGE

static void check_image(struct upager_store *s)
{
	static const unsigned char zeros[PAGE];
	static unsigned char buf[4 * PAGE];
	unsigned char *data = upager_store_mem_data(s);
	const void *p;

	CHECK(data, "no data");
	CHECK((uintptr_t)data % PAGE == 0, "image not page aligned");
	CHECK(s->flags & UPAGER_STORE_SIGNAL_SAFE, "not signal-safe");
	for (uint64_t i = 0; i < s->npages; i++) {
		CHECK(!memcmp(data + i * PAGE, zeros, PAGE),
		      "page %llu not zeroed", (unsigned long long)i);
		t_fill(data + i * PAGE, PAGE, i);
	}

	memset(buf, 0xaa, sizeof(buf));
	CHECK_RET(upager_store_fetch(s, 3, buf, 2), 0);
	CHECK(t_verify(buf, PAGE, 3) && t_verify(buf + PAGE, PAGE, 4),
	      "fetch returned other data");
	CHECK(buf[2 * PAGE] == 0xaa, "fetch wrote past its pages");
	CHECK_RET(upager_store_fetch(s, s->npages - 1, buf, 1), 0);
	CHECK(t_verify(buf, PAGE, s->npages - 1), "last page");
	CHECK_RET(upager_store_fetch(s, s->npages, buf, 1), -ERANGE);
	CHECK_RET(upager_store_fetch(s, 0, buf, s->npages + 1), -ERANGE);

	CHECK(s->ops->direct, "no direct");
	p = s->ops->direct(s, 5, 1);
	CHECK(p == data + 5 * PAGE, "direct %p, image %p", p, (void *)data);

	t_fill(buf, PAGE, 1000);
	CHECK_RET(upager_store_writeback(s, 7, buf, 1), 0);
	CHECK(t_verify(data + 7 * PAGE, PAGE, 1000), "writeback not in image");
	CHECK(t_verify(data + 6 * PAGE, PAGE, 6) &&
		      t_verify(data + 8 * PAGE, PAGE, 8),
	      "writeback touched its neighbours");
	memset(buf, 0, PAGE);
	CHECK_RET(upager_store_fetch(s, 7, buf, 1), 0);
	CHECK(t_verify(buf, PAGE, 1000), "fetch after writeback");
	CHECK_RET(upager_store_writeback(s, s->npages, buf, 1), -ERANGE);
}

int main(void)
{
	static const char *const bad[] = { "mem",     "mem:",    "mem:0",
					   "mem:abc", "mem:12Q", "mem:-4K" };
	struct upager_store *s, *z;
	int err = 1;

	s = upager_store_open("mem:64K", &err);
	CHECK(s && !err, "err %d", err);
	CHECK(s->npages == 16, "npages %llu", (unsigned long long)s->npages);
	CHECK(s->ops == upager_store_find("mem"), "wrong ops");
	check_image(s);
	upager_store_close(s);

	err = 1;
	s = upager_store_mem_new(10 * PAGE + 1, &err);
	CHECK(s && !err, "err %d", err);
	CHECK(s->npages == 11, "npages %llu", (unsigned long long)s->npages);
	check_image(s);
	upager_store_close(s);

	s = upager_store_mem_new(1, NULL);
	CHECK(s && s->npages == 1, "mem_new(1) without err");
	upager_store_close(s);

	err = 0;
	CHECK(!upager_store_mem_new(0, &err) && err == -EINVAL, "err %d", err);
	err = 0;
	CHECK(!upager_store_mem_new(UINT64_MAX, &err) && err == -ENOMEM,
	      "err %d", err);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = 0;
		CHECK(!upager_store_open(bad[i], &err) && err == -EINVAL,
		      "%s: err %d", bad[i], err);
	}

	z = upager_store_open("zero", &err);
	CHECK(z, "zero: %d", err);
	CHECK(!upager_store_mem_data(z), "mem_data of a zero store");
	CHECK(!upager_store_mem_data(NULL), "mem_data of NULL");
	upager_store_close(z);
	return 0;
}
