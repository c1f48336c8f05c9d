// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The zero store: "zero" (or "zero:") has no end (fetch works up to the
 * last page number and the range check still catches a wrapping end);
 * "zero:SIZE" rounds SIZE up to pages and ends there; a fetch overwrites
 * every byte with zeros; zero_run() calls every page zero; it is
 * signal-safe and has no writeback; a malformed, zero or too large SIZE
 * is refused.
 */
#include <upager/store.h>

#include "harness.h"

#define PAGE UPAGER_STORE_PAGE

static struct upager_store *open_ok(const char *spec)
{
	struct upager_store *s;
	int err = 1;

	s = upager_store_open(spec, &err);
	CHECK(s && !err, "%s: err %d", spec, err);
	return s;
}

static void check_open_err(const char *spec, int want)
{
	int err = 0;

	CHECK(!upager_store_open(spec, &err) && err == want,
	      "%s: err %d, want %d", spec, err, want);
}

int main(void)
{
	static const unsigned char zeros[4 * PAGE];
	static unsigned char buf[4 * PAGE];
	struct upager_store *s;

	s = open_ok("zero");
	CHECK(s->npages == UPAGER_STORE_UNBOUNDED, "npages %llu",
	      (unsigned long long)s->npages);
	CHECK(s->flags & UPAGER_STORE_SIGNAL_SAFE, "not signal-safe");
	CHECK(s->ops == upager_store_find("zero"), "wrong ops");
	memset(buf, 0xaa, sizeof(buf));
	CHECK_RET(upager_store_fetch(s, 0, buf, 3), 0);
	CHECK(!memcmp(buf, zeros, 3 * PAGE), "fetch left data");
	CHECK(buf[3 * PAGE] == 0xaa, "fetch wrote past its pages");
	memset(buf, 0xaa, sizeof(buf));
	CHECK_RET(upager_store_fetch(s, UINT64_MAX - 4, buf, 4), 0);
	CHECK(!memcmp(buf, zeros, 4 * PAGE), "fetch left data");
	CHECK_RET(upager_store_fetch(s, UINT64_MAX - 1, buf, 2), -ERANGE);
	CHECK_RET(upager_store_fetch(s, UINT64_MAX, buf, 1), -ERANGE);
	CHECK(s->ops->zero_run, "no zero_run");
	CHECK(s->ops->zero_run(s, 5, 17) == 17, "zero_run short");
	CHECK(!s->ops->writeback, "zero has a writeback");
	CHECK_RET(upager_store_writeback(s, 0, buf, 1), -EOPNOTSUPP);
	upager_store_close(s);

	/* The store sees "" either way. */
	s = open_ok("zero:");
	CHECK(s->npages == UPAGER_STORE_UNBOUNDED, "zero: is bounded");
	upager_store_close(s);

	s = open_ok("zero:1G");
	CHECK(s->npages == (1ull << 30) / PAGE, "npages %llu",
	      (unsigned long long)s->npages);
	CHECK_RET(upager_store_fetch(s, s->npages - 1, buf, 1), 0);
	CHECK_RET(upager_store_fetch(s, s->npages, buf, 1), -ERANGE);
	CHECK_RET(upager_store_fetch(s, s->npages - 1, buf, 2), -ERANGE);
	upager_store_close(s);

	s = open_ok("zero:5000");
	CHECK(s->npages == 2, "npages %llu", (unsigned long long)s->npages);
	upager_store_close(s);
	s = open_ok("zero:4k");
	CHECK(s->npages == 1, "npages %llu", (unsigned long long)s->npages);
	upager_store_close(s);
	s = open_ok("zero:3T");
	CHECK(s->npages == (3ull << 40) / PAGE, "npages %llu",
	      (unsigned long long)s->npages);
	upager_store_close(s);

	check_open_err("zero:0", -EINVAL);
	check_open_err("zero:1X", -EINVAL);
	check_open_err("zero:1KB", -EINVAL);
	check_open_err("zero:-1", -EINVAL);
	check_open_err("zero:+1", -EINVAL);
	check_open_err("zero: 1", -EINVAL);
	check_open_err("zero:0x10", -EINVAL);
	check_open_err("zero:K", -EINVAL);
	check_open_err("zero:99999999999999999999", -ERANGE);
	check_open_err("zero:16777216T", -ERANGE);
	return 0;
}
