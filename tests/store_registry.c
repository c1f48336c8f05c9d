// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The store registry: the built-in stores are found by name and listed
 * first; an unknown name opens as -ENOENT; a user's ops table registers,
 * opens by spec with everything after the first ':' passed through, and
 * its open() errors come back; fetch is bounds-checked (-ERANGE, with no
 * sum wrapping) before the store sees it; a short ops table's slots past
 * its size are never used; a taken name is -EEXIST and a table without a
 * name, open, fetch or close is -EINVAL; foreach may register from its
 * callback; racing registrations of one name leave exactly one winner.
 */
#include <pthread.h>
#include <stdint.h>
#include <upager/store.h>

#include "harness.h"

struct test_store {
	struct upager_store s;
	char arg[64];
	uint64_t last_pgoff;
	size_t last_npages;
};

static const struct upager_store_ops test_ops;

static int test_open(const char *arg, struct upager_store **out)
{
	struct test_store *t;

	if (!strcmp(arg, "fail"))
		return -EIO;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	snprintf(t->arg, sizeof(t->arg), "%s", arg);
	t->s.ops = &test_ops;
	t->s.npages = 8;
	*out = &t->s;
	return 0;
}

static int test_fetch(struct upager_store *s, uint64_t pgoff, void *dst,
		      size_t npages)
{
	struct test_store *t = (struct test_store *)s;

	(void)dst;
	t->last_pgoff = pgoff;
	t->last_npages = npages;
	return 0;
}

static void test_close(struct upager_store *s)
{
	free(s);
}

static int never_writeback(struct upager_store *s, uint64_t pgoff,
			   const void *src, size_t npages)
{
	(void)s;
	(void)pgoff;
	(void)src;
	(void)npages;
	FAIL("writeback past the table's size was called");
}

static const struct upager_store_ops test_ops = {
	.size = sizeof(struct upager_store_ops),
	.name = "test",
	.help = "test:ARG  a store of the test",
	.open = test_open,
	.fetch = test_fetch,
	.close = test_close,
};

/*
 * A table built against an older header that ended at close(): the
 * writeback slot it has here lies past its size and must be ignored.
 */
static const struct upager_store_ops short_ops;

static int short_open(const char *arg, struct upager_store **out)
{
	int ret = test_open(arg, out);

	if (!ret)
		(*out)->ops = &short_ops;
	return ret;
}

static const struct upager_store_ops short_ops = {
	.size = offsetof(struct upager_store_ops, direct),
	.name = "short",
	.open = short_open,
	.fetch = test_fetch,
	.close = test_close,
	.writeback = never_writeback,
};

static void check_builtins(void)
{
	static const char *const names[] = { "zero",  "file",	   "mem",
					     "image", "memcached", "remote" };
	const struct upager_store_ops *ops;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ops = upager_store_find(names[i]);
		CHECK(ops, "built-in store %s not found", names[i]);
		CHECK(!strcmp(ops->name, names[i]), "found %s", ops->name);
		CHECK(ops->size >= sizeof(struct upager_store_ops) &&
			      ops->help && ops->open && ops->fetch &&
			      ops->close,
		      "%s: incomplete table", names[i]);
	}
	CHECK(!upager_store_find("nope"), "found a store never registered");
	CHECK(!upager_store_find("zer"), "found a prefix of a name");
	CHECK(!upager_store_find(""), "found the empty name");
	CHECK(!upager_store_find(NULL), "found NULL");
}

static void check_unknown(void)
{
	static const char *const specs[] = { "nope", "nope:x", "", ":zero",
					     "zeroo", "Zero" };
	struct upager_store *s;
	int err;

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		err = 0;
		s = upager_store_open(specs[i], &err);
		CHECK(!s && err == -ENOENT, "'%s': %p, err %d", specs[i],
		      (void *)s, err);
	}
	err = 0;
	CHECK(!upager_store_open(NULL, &err) && err == -EINVAL, "err %d",
	      err);
	/* err may be NULL. */
	CHECK(!upager_store_open("nope", NULL), "opened nope");
}

static void check_user_store(void)
{
	struct test_store *t;
	struct upager_store *s;
	char page[UPAGER_STORE_PAGE];
	int err;

	CHECK_RET(upager_store_register(&test_ops), 0);
	CHECK(upager_store_find("test") == &test_ops, "not found");

	s = upager_store_open("test:a:b,c", &err);
	CHECK(s && !err, "open: %d", err);
	t = (struct test_store *)s;
	CHECK(!strcmp(t->arg, "a:b,c"), "arg '%s'", t->arg);
	upager_store_close(s);

	s = upager_store_open("test", &err);
	CHECK(s && !err, "open: %d", err);
	t = (struct test_store *)s;
	CHECK(!strcmp(t->arg, ""), "arg '%s'", t->arg);

	err = 0;
	CHECK(!upager_store_open("test:fail", &err) && err == -EIO,
	      "open error not passed on: %d", err);

	/* Bounds: 8 pages; the store sees only what lies inside. */
	CHECK_RET(upager_store_fetch(s, 7, page, 1), 0);
	CHECK(t->last_pgoff == 7 && t->last_npages == 1, "fetch not called");
	t->last_npages = 99;
	CHECK_RET(upager_store_fetch(s, 8, page, 1), -ERANGE);
	CHECK_RET(upager_store_fetch(s, 7, page, 2), -ERANGE);
	CHECK_RET(upager_store_fetch(s, 9, page, 0), -ERANGE);
	CHECK_RET(upager_store_fetch(s, UINT64_MAX, page, 2), -ERANGE);
	CHECK_RET(upager_store_fetch(s, 1, page, SIZE_MAX), -ERANGE);
	CHECK_RET(upager_store_fetch(s, 0, page, 9), -ERANGE);
	CHECK(t->last_npages == 99, "fetch called out of range");
	CHECK_RET(upager_store_fetch(s, 0, page, 8), 0);
	CHECK(t->last_pgoff == 0 && t->last_npages == 8, "fetch not called");

	CHECK_RET(upager_store_writeback(s, 0, page, 1), -EOPNOTSUPP);
	upager_store_close(s);
	upager_store_close(NULL);

	CHECK_RET(upager_store_register(&short_ops), 0);
	s = upager_store_open("short", &err);
	CHECK(s && !err && s->ops == &short_ops, "open: %d", err);
	CHECK_RET(upager_store_writeback(s, 0, page, 1), -EOPNOTSUPP);
	upager_store_close(s);
}

static void check_bad_ops(void)
{
	struct upager_store_ops ops = test_ops;

	CHECK_RET(upager_store_register(NULL), -EINVAL);
	CHECK_RET(upager_store_register(&test_ops), -EEXIST);
	ops.name = "zero";
	CHECK_RET(upager_store_register(&ops), -EEXIST);
	ops.name = "file";
	CHECK_RET(upager_store_register(&ops), -EEXIST);

	ops.name = NULL;
	CHECK_RET(upager_store_register(&ops), -EINVAL);
	ops.name = "";
	CHECK_RET(upager_store_register(&ops), -EINVAL);
	ops.name = "a:b";
	CHECK_RET(upager_store_register(&ops), -EINVAL);
	ops.name = "bad";
	ops.open = NULL;
	CHECK_RET(upager_store_register(&ops), -EINVAL);
	ops.open = test_open;
	ops.fetch = NULL;
	CHECK_RET(upager_store_register(&ops), -EINVAL);
	ops.fetch = test_fetch;
	ops.close = NULL;
	CHECK_RET(upager_store_register(&ops), -EINVAL);
	ops.close = test_close;
	ops.size = offsetof(struct upager_store_ops, close);
	CHECK_RET(upager_store_register(&ops), -EINVAL);
	ops.size = 0;
	CHECK_RET(upager_store_register(&ops), -EINVAL);
	CHECK(!upager_store_find("bad"), "a bad table was registered");
}

struct seen {
	const char *names[16];
	size_t n;
	bool register_inside;
};

static const struct upager_store_ops inner_ops = {
	.size = sizeof(struct upager_store_ops),
	.name = "inner",
	.open = test_open,
	.fetch = test_fetch,
	.close = test_close,
};

static void collect(const struct upager_store_ops *ops, void *arg)
{
	struct seen *seen = arg;

	CHECK(seen->n < 16, "too many stores");
	seen->names[seen->n++] = ops->name;
	/* The callback may use the registry: no lock is held across it. */
	if (seen->register_inside && seen->n == 1)
		CHECK_RET(upager_store_register(&inner_ops), 0);
}

static void check_foreach(void)
{
	static const char *const want[] = { "zero",	 "file",   "mem",
					    "image",	 "memcached", "remote",
					    "test",	 "short" };
	const size_t nwant = sizeof(want) / sizeof(want[0]);
	struct seen seen = { .register_inside = true };

	upager_store_foreach(collect, &seen);
	/* A kind registered during the walk may or may not be seen. */
	CHECK(seen.n == nwant || seen.n == nwant + 1, "%zu stores", seen.n);
	for (size_t i = 0; i < nwant; i++)
		CHECK(!strcmp(seen.names[i], want[i]), "#%zu is %s, want %s",
		      i, seen.names[i], want[i]);
	CHECK(upager_store_find("inner") == &inner_ops, "inner not found");

	memset(&seen, 0, sizeof(seen));
	upager_store_foreach(collect, &seen);
	CHECK(seen.n == nwant + 1 && !strcmp(seen.names[nwant], "inner"),
	      "%zu stores", seen.n);
}

#define RACERS 4
#define PER_RACER 64

static struct upager_store_ops race_ops[RACERS][PER_RACER];
static char race_names[RACERS][PER_RACER][16];
static struct upager_store_ops same_ops[RACERS];

static void *racer(void *arg)
{
	size_t id = (size_t)(uintptr_t)arg;
	long won = 0;
	int ret;

	for (size_t i = 0; i < PER_RACER; i++) {
		snprintf(race_names[id][i], sizeof(race_names[id][i]),
			 "r%zu.%zu", id, i);
		race_ops[id][i] = test_ops;
		race_ops[id][i].name = race_names[id][i];
		CHECK_RET(upager_store_register(&race_ops[id][i]), 0);
		if (i == PER_RACER / 2) {
			same_ops[id] = test_ops;
			same_ops[id].name = "same";
			ret = upager_store_register(&same_ops[id]);
			CHECK(ret == 0 || ret == -EEXIST, "same: %d", ret);
			won = ret == 0;
		}
		CHECK(upager_store_find(race_names[id][i]) ==
			      &race_ops[id][i],
		      "%s not found", race_names[id][i]);
	}
	return (void *)won;
}

static void count(const struct upager_store_ops *ops, void *arg)
{
	(void)ops;
	++*(size_t *)arg;
}

static void check_race(void)
{
	pthread_t th[RACERS];
	size_t winners = 0, n = 0;
	void *won;

	for (size_t i = 0; i < RACERS; i++)
		CHECK(!pthread_create(&th[i], NULL, racer,
				      (void *)(uintptr_t)i),
		      "pthread_create");
	for (size_t i = 0; i < RACERS; i++) {
		pthread_join(th[i], &won);
		winners += won != NULL;
	}
	CHECK(winners == 1, "%zu registrations of one name won", winners);
	upager_store_foreach(count, &n);
	/* 6 built-in, test, short, inner, the racers' and the shared one */
	CHECK(n == 9 + RACERS * PER_RACER + 1, "%zu stores listed", n);
}

int main(void)
{
	check_builtins();
	check_unknown();
	check_user_store();
	check_bad_ops();
	check_foreach();
	check_race();
	return 0;
}
