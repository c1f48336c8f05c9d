// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A region with a budget mapped while the handler's workers already run
 * (upager_map(): "Any thread may call this, also while workers run"),
 * then read through a budget a quarter of its size by two threads: every
 * unit reads the store's data.  The point is the TSan build: the region
 * must be whole (its eviction state, r->ev) before a fault can find it,
 * else a worker's evict_help() races with evict_attach().  Fails there on
 * the engine of "engine: write tracking, sync, budgets": upager_map()
 * publishes the region (space_add()) before evict_attach() sets r->ev and
 * its queues (TSan: evict_help/resident/q_push against evict_attach;
 * libupager-umap's tests, which map while the handler runs, hit it on
 * every map).  anon and shmem (argv[1]).
 */
#include <pthread.h>
#include <upager/upager.h>

#include "harness.h"

#define PG 4096
#define NUNITS 256

static char *base;

static void *reader(void *arg) {
  uintptr_t t = (uintptr_t)arg;

  for (size_t i = t; i < NUNITS; i += 2)
    if (!t_verify(base + i * PG, PG, i))
      return (void *)"a unit differs from the store";
  return NULL;
}

int main(int argc, char **argv) {
  enum upager_memtype type = argc > 1 && !strcmp(argv[1], "shmem")
                                 ? UPAGER_MEM_SHMEM
                                 : UPAGER_MEM_ANON;
  struct upager_map_params mp = {.size = sizeof(mp),
                                 .memtype = type,
                                 .budget = NUNITS / 4 * PG,
                                 .readahead_max = (size_t)-1,
                                 .fault_around = (size_t)-1};
  struct upager_handler *h;
  struct upager_region *r;
  struct upager_store *s;
  pthread_t th[2];
  void *bad[2];
  int err = 0;

  h = upager_handler_new(NULL, &err);
  CHECK(h, "handler: %s", strerror(-err));
  CHECK_RET(upager_handler_start(h), 0);
  s = upager_store_mem_new(NUNITS * PG, &err);
  CHECK(s, "mem store: %s", strerror(-err));
  for (size_t i = 0; i < NUNITS; i++)
    t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i);
  base = upager_map(h, s, NUNITS * PG, &mp, &r, &err);
  if (!base && err == -EOPNOTSUPP)
    SKIP("a budget on %s: %s", argc > 1 ? argv[1] : "anon", strerror(-err));
  CHECK(base, "upager_map: %s", strerror(-err));
  for (uintptr_t t = 0; t < 2; t++)
    CHECK(!pthread_create(&th[t], NULL, reader, (void *)t), "pthread_create");
  for (int t = 0; t < 2; t++)
    pthread_join(th[t], &bad[t]);
  CHECK(!bad[0] && !bad[1], "%s", (char *)(bad[0] ? bad[0] : bad[1]));
  CHECK_RET(upager_unmap(r), 0);
  upager_store_close(s);
  upager_handler_free(h);
  return t_end();
}
