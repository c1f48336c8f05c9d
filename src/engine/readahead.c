// SPDX-License-Identifier: LGPL-2.1-or-later
/* Read-ahead policy; see readahead.h.  Nothing here touches memory. */
#include <string.h>

#include "engine/readahead.h"

void ra_propose(struct ra_table *t, size_t u, size_t max, struct ra_plan *p)
{
	unsigned int victim = 0;

	memset(p, 0, sizeof(*p));
	t->clock++;
	for (unsigned int i = 0; i < RA_STREAMS; i++) {
		struct ra_stream *s = &t->s[i];

		if (s->window && (s->next == u || s->ahead == u)) {
			p->stream = i;
			p->used = s->near;
			s->near = s->far;
			s->far = 0;
			s->stamp = t->clock;
			p->window = s->window * 2 < max ? s->window * 2 : max;
			p->confirmed = s->window > 1;
			return;
		}
		if (s->stamp < t->s[victim].stamp)
			victim = i;
	}
	p->stream = victim;
	p->wasted = t->s[victim].near + t->s[victim].far;
	t->s[victim] = (struct ra_stream){ .stamp = t->clock };
	p->window = 1;
}

size_t ra_marker(const struct ra_table *t, const struct ra_plan *p, size_t u,
		 size_t n)
{
	size_t base = u + n;

	if (t->s[p->stream].ahead > base)
		base = t->s[p->stream].ahead;
	return base;
}

void ra_commit(struct ra_table *t, const struct ra_plan *p, size_t n,
	       size_t marker, size_t k)
{
	struct ra_stream *s = &t->s[p->stream];

	s->next = marker;
	s->ahead = k ? marker + 1 + k : marker;
	s->window = p->window;
	s->near += n - 1;
	s->far = k;
}

void ra_around(struct ra_table *t, unsigned int stream, size_t end,
	       size_t block)
{
	t->s[stream].next = t->s[stream].ahead = end;
	t->s[stream].window = block;
}
