/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A store that is another store under a name of its own: the published
 * statistics name a region by its store (`upager stat`), and a manager's
 * regions are told apart by their client, not by the kind of store they
 * share.  One per client region; every call goes to the store inside.
 */
#ifndef UPAGER_MANAGER_LABEL_H
#define UPAGER_MANAGER_LABEL_H

#include "upager/store.h"

/* @inner under the name @name (cut to 47 bytes); NULL on -ENOMEM. */
struct upager_store *label_store_new(struct upager_store *inner,
				     const char *name);
/* Free the label (after the region over it is gone); @inner stays. */
void label_store_free(struct upager_store *s);

#endif
