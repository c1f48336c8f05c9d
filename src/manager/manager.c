// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The manager: exports, sockets, and the thread that accepts clients,
 * reads their handshakes and lets them go.  That thread never blocks on
 * a client: sockets are non-blocking, a handshake has a deadline, and
 * faults are the engine workers' (a slow store of one client holds a
 * worker, and the engine starts a spare for the others).  It blocks
 * only in upager_space_release(), which waits for that client's fills
 * in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "net/net.h"
#include "manager/manager.h"

#define TAG_STOP 1
#define TAG_EXIT 2

static const char *mode_name(enum upager_listen_mode mode)
{
	return mode == UPAGER_LISTEN_FIRECRACKER ? "firecracker" : "attach";
}

void mgr_event(struct upager_manager *m, struct client *c,
	       enum upager_manager_event_kind kind, const char *field,
	       int err, const char *fmt, ...)
{
	struct upager_manager_event ev = { .kind = kind,
					   .field = field,
					   .err = err };
	char text[256];
	va_list ap;

	if (!m->p.log)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ev.text = text;
	if (c) {
		ev.client = c->id;
		ev.pid = c->cred.pid;
		ev.uid = c->cred.uid;
		ev.gid = c->cred.gid;
		ev.socket = c->l->path;
		ev.protocol = mode_name(c->l->mode);
		ev.export_name = c->export_name[0] ? c->export_name : NULL;
		ev.regions = c->nregions;
	}
	m->p.log(m->p.log_arg, &ev);
}

static int epoll_add(int ep, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

struct upager_manager *upager_manager_new(const struct upager_manager_params *p,
					  int *err)
{
	struct upager_manager *m = calloc(1, sizeof(*m));
	struct upager_handler_params hp = { .size = sizeof(hp) };
	int ret = -ENOMEM;

	if (!m)
		goto fail;
	m->ep = m->stopfd = m->exitfd = -1;
	m->p.size = sizeof(m->p);
	ret = params_copy(&m->p, sizeof(m->p), p);
	if (ret < 0)
		goto fail;
	if (!m->p.handshake_ms)
		m->p.handshake_ms = 5000;
	if (!m->p.max_clients)
		m->p.max_clients = 4096;
	snprintf(m->stats_name, sizeof(m->stats_name), "%s",
		 m->p.stats_name ? m->p.stats_name : "upagerd");
	hp.threads = m->p.threads;
	hp.stats_name = m->stats_name;
	m->h = upager_handler_new(&hp, &ret);
	if (!m->h)
		goto fail;
	m->ep = epoll_create1(EPOLL_CLOEXEC);
	m->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	m->exitfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->ep < 0 || m->stopfd < 0 || m->exitfd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = epoll_add(m->ep, m->stopfd, EPOLLIN, TAG_STOP);
	if (!ret)
		ret = epoll_add(m->ep, m->exitfd, EPOLLIN, TAG_EXIT);
	if (ret < 0)
		goto fail;
	m->kernel_features = admit_kernel_features();
	m->next_id = 1;
	pthread_mutex_init(&m->lock, NULL);
	return m;
fail:
	if (m) {
		if (m->h)
			upager_handler_free(m->h);
		if (m->ep >= 0)
			close(m->ep);
		if (m->stopfd >= 0)
			close(m->stopfd);
		if (m->exitfd >= 0)
			close(m->exitfd);
		free(m);
	}
	if (err)
		*err = ret;
	return NULL;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	return n && n <= UPAGER_ATTACH_NAME_MAX &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789._-") == n;
}

static void export_free(struct export *e)
{
	free(e->uids);
	free(e->gids);
	free(e->record_dir);
	upager_trace_free(e->replay);
	free(e);
}

/* The manager's own copy of a replay trace. */
static struct upager_trace *trace_copy(const struct upager_trace *in)
{
	struct upager_trace *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	*t = *in;
	t->entries = malloc((in->count ? in->count : 1) * sizeof(*t->entries));
	if (!t->entries) {
		free(t);
		return NULL;
	}
	memcpy(t->entries, in->entries, in->count * sizeof(*t->entries));
	return t;
}

int upager_manager_export(struct upager_manager *m, const char *name,
			  struct upager_store *store,
			  const struct upager_export_params *params)
{
	struct upager_export_params p = { .size = sizeof(p) };
	struct export *e;
	int ret;

	if (m->started)
		return -EBUSY;
	ret = params_copy(&p, sizeof(p), params);
	if (ret < 0)
		return ret;
	if (!name || !name_ok(name) || !store || !store->npages ||
	    store->npages == UPAGER_STORE_UNBOUNDED ||
	    (p.nuids && !p.uids) || (p.ngids && !p.gids))
		return -EINVAL;
	/* Recording during a replay would see only what the list missed. */
	if ((p.record_dir && p.replay) ||
	    (p.replay && p.replay->export_pages != store->npages) ||
	    (p.fault_around && p.fault_around != (size_t)-1 &&
	     (p.fault_around & (p.fault_around - 1))))
		return -EINVAL;
	for (e = m->exports; e; e = e->next)
		if (!strcmp(e->name, name))
			return -EEXIST;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->uids = calloc(p.nuids + 1, sizeof(uid_t));
	e->gids = calloc(p.ngids + 1, sizeof(gid_t));
	if (p.record_dir)
		e->record_dir = strdup(p.record_dir);
	if (p.replay)
		e->replay = trace_copy(p.replay);
	if (!e->uids || !e->gids || (p.record_dir && !e->record_dir) ||
	    (p.replay && !e->replay)) {
		export_free(e);
		return -ENOMEM;
	}
	if (p.nuids)
		memcpy(e->uids, p.uids, p.nuids * sizeof(uid_t));
	if (p.ngids)
		memcpy(e->gids, p.gids, p.ngids * sizeof(gid_t));
	e->nuids = p.nuids;
	e->ngids = p.ngids;
	e->readahead_max = p.readahead_max;
	e->fault_around = p.fault_around;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->store = store;
	e->next = m->exports;
	m->exports = e;
	return 0;
}

int upager_manager_listen(struct upager_manager *m,
			  const struct upager_listen_params *params)
{
	struct upager_listen_params p = { .size = sizeof(p),
					  .owner = (uid_t)-1,
					  .group = (gid_t)-1 };
	struct listener *l;
	struct net_addr a;
	char spec[128];
	int ret, fd;

	if (m->started)
		return -EBUSY;
	ret = params_copy(&p, sizeof(p), params);
	if (ret < 0)
		return ret;
	if (!p.path || !*p.path ||
	    (unsigned int)p.mode > UPAGER_LISTEN_FIRECRACKER)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->kind = OBJ_LISTENER;
	l->mode = p.mode;
	if (p.mode == UPAGER_LISTEN_FIRECRACKER) {
		for (l->ex = m->exports; l->ex; l->ex = l->ex->next)
			if (p.export_name && !strcmp(l->ex->name, p.export_name))
				break;
		if (!l->ex) {
			free(l);
			return -EINVAL;
		}
	}
	if (strlen(p.path) >= sizeof(l->path)) {
		free(l);
		return -ENAMETOOLONG;
	}
	snprintf(l->path, sizeof(l->path), "%s", p.path);
	snprintf(spec, sizeof(spec), "unix:%s", p.path);
	ret = net_parse(spec, strlen(spec), &a);
	fd = ret < 0 ? ret : net_listen(&a);
	if (fd < 0) {
		free(l);
		return fd;
	}
	l->fd = fd;
	ret = 0;
	/* accept_all() takes connections until EAGAIN. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    chmod(l->path, p.perm ? p.perm : 0600) < 0 ||
	    ((p.owner != (uid_t)-1 || p.group != (gid_t)-1) &&
	     chown(l->path, p.owner, p.group) < 0))
		ret = -errno;
	if (!ret)
		ret = epoll_add(m->ep, fd, EPOLLIN, (uintptr_t)l);
	if (ret < 0) {
		unlink(l->path);
		close(fd);
		free(l);
		return ret;
	}
	l->next = m->listeners;
	m->listeners = l;
	mgr_event(m, NULL, UPAGER_EV_LISTEN, NULL, 0, "listening on %s (%s%s%s)",
		  l->path, mode_name(l->mode), l->ex ? ", export " : "",
		  l->ex ? l->ex->name : "");
	return 0;
}

static void client_close(struct client *c)
{
	struct upager_manager *m = c->m;
	struct client **pp;

	epoll_ctl(m->ep, EPOLL_CTL_DEL, c->fd, NULL);
	admit_release(c);
	pthread_mutex_lock(&m->lock);
	for (pp = &m->clients; *pp && *pp != c; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = c->next;
	if (c->state == C_ATTACHED)
		m->nclients--;
	else
		m->nhandshakes--;
	pthread_mutex_unlock(&m->lock);
	close(c->fd);
	if (c->uffd >= 0)
		close(c->uffd);
	free(c->buf);
	c->buf = NULL;
	/* Freed after the epoll batch, which may still name it. */
	c->closed = true;
	c->next = m->closed;
	m->closed = c;
}

static void free_closed(struct upager_manager *m)
{
	while (m->closed) {
		struct client *c = m->closed;

		m->closed = c->next;
		free(c);
	}
}

static void accept_all(struct upager_manager *m, struct listener *l)
{
	for (;;) {
		socklen_t len = sizeof(struct ucred);
		struct client *c;
		int fd = accept4(l->fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0 && errno == EINTR)
			continue;
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				mgr_event(m, NULL, UPAGER_EV_NOTE, NULL, errno,
					  "accept on %s: %s", l->path,
					  strerror(errno));
				/* EMFILE would wake us at once again. */
				usleep(10000);
			}
			return;
		}
		atomic_fetch_add(&m->connections, 1);
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->kind = OBJ_CLIENT;
		c->m = m;
		c->fd = fd;
		c->uffd = -1;
		c->l = l;
		c->id = m->next_id++;
		c->state = C_HANDSHAKE;
		c->deadline = now_ns() + m->p.handshake_ms * 1000000ull;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len))
			memset(&c->cred, 0, sizeof(c->cred));
		pthread_mutex_lock(&m->lock);
		c->next = m->clients;
		m->clients = c;
		m->nhandshakes++;
		pthread_mutex_unlock(&m->lock);
		if (m->nclients + m->nhandshakes > m->p.max_clients) {
			handshake_refuse(c, -EUSERS, "clients",
					 "%u clients already: the limit",
					 m->p.max_clients);
			atomic_fetch_add(&m->refused, 1);
			client_close(c);
			continue;
		}
		if (epoll_add(m->ep, fd, EPOLLIN | EPOLLRDHUP, (uintptr_t)c) <
		    0)
			client_close(c);
	}
}

static void handshake(struct client *c)
{
	struct upager_manager *m = c->m;
	static __thread struct want w[MAX_REGIONS];
	uint64_t features;
	unsigned int n = 0;
	int ret;

	ret = handshake_read(c, w, &n, &features);
	if (ret == 1)
		ret = admit(c, w, n, features);
	else if (ret == 0)
		return;
	if (ret < 0) {
		atomic_fetch_add(&m->refused, 1);
		client_close(c);
		return;
	}
	pthread_mutex_lock(&m->lock);
	c->state = C_ATTACHED;
	m->nhandshakes--;
	m->nclients++;
	pthread_mutex_unlock(&m->lock);
	free(c->buf);
	c->buf = NULL;
	atomic_fetch_add(&m->attached, 1);
	handshake_accept(c);
	mgr_event(m, c, UPAGER_EV_ATTACHED, NULL, 0,
		  "%u regions of '%s', uffd features %#llx", n,
		  c->export_name, (unsigned long long)c->features);
}

static void gone(struct client *c, const char *why)
{
	atomic_fetch_add(&c->m->gone, 1);
	mgr_event(c->m, c, UPAGER_EV_GONE, NULL, 0, "%s", why);
	client_close(c);
}

/* An attached client's socket: EOF is its end; anything else is noise. */
static void attached_ready(struct client *c)
{
	char buf[4096];

	for (;;) {
		ssize_t n = conn_recv(c, buf, sizeof(buf), false);

		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			gone(c, "closed its socket");
			return;
		}
		if (!c->noted) {
			c->noted = true;
			mgr_event(c->m, c, UPAGER_EV_NOTE, NULL, 0,
				  "bytes after the handshake, ignored");
		}
	}
}

static void reap_exited(struct upager_manager *m)
{
	uint64_t v;

	if (read(m->exitfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	for (;;) {
		struct client *dead = NULL;

		pthread_mutex_lock(&m->lock);
		for (struct client *c = m->clients; c && !dead; c = c->next)
			if (atomic_load(&c->exited))
				dead = c;
		pthread_mutex_unlock(&m->lock);
		if (!dead)
			return;
		gone(dead, "its process exited");
	}
}

/* Refuse handshakes past their deadline; the ms to the next one. */
static int expire(struct upager_manager *m)
{
	uint64_t now = now_ns(), next = UINT64_MAX;
	struct client *c, *late;

	do {
		late = NULL;
		for (c = m->clients; c; c = c->next) {
			if (c->state != C_HANDSHAKE)
				continue;
			if (c->deadline <= now) {
				late = c;
				break;
			}
			if (c->deadline < next)
				next = c->deadline;
		}
		if (late) {
			handshake_refuse(late, -ETIMEDOUT, "handshake",
					 "not complete %u ms after connecting "
					 "(%zu bytes came%s)",
					 m->p.handshake_ms, late->len,
					 late->uffd >= 0 ? " with a descriptor"
							 : ", no descriptor");
			atomic_fetch_add(&m->refused, 1);
			client_close(late);
		}
	} while (late);
	if (next == UINT64_MAX)
		return -1;
	return (int)((next - now) / 1000000 + 1);
}

static void *loop(void *arg)
{
	struct upager_manager *m = arg;
	struct epoll_event evs[64];
	bool stop = false;

	while (!stop) {
		int n = epoll_wait(m->ep, evs, 64, expire(m));

		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			enum obj_kind *kind = (void *)(uintptr_t)tag;

			if (tag == TAG_STOP) {
				stop = true;
			} else if (tag == TAG_EXIT) {
				reap_exited(m);
			} else if (*kind == OBJ_LISTENER) {
				accept_all(m, (struct listener *)kind);
			} else {
				struct client *c = (struct client *)kind;

				if (c->closed)
					continue;
				if (c->state == C_HANDSHAKE)
					handshake(c);
				else
					attached_ready(c);
			}
		}
		free_closed(m);
	}
	while (m->clients) {
		struct client *c = m->clients;

		if (c->state == C_ATTACHED)
			mgr_event(m, c, UPAGER_EV_RELEASED, NULL, 0,
				  "released at shutdown");
		client_close(c);
	}
	free_closed(m);
	return NULL;
}

int upager_manager_start(struct upager_manager *m)
{
	int ret;

	if (m->started)
		return -EALREADY;
	if (!m->listeners || m->stopped)
		return -EINVAL;
	ret = upager_handler_start(m->h);
	if (ret < 0)
		return ret;
	ret = -pthread_create(&m->thread, NULL, loop, m);
	if (ret < 0) {
		upager_handler_stop(m->h);
		return ret;
	}
	thread_name(m->thread, "manager");
	m->started = true;
	return 0;
}

int upager_manager_stop(struct upager_manager *m)
{
	uint64_t one = 1;

	if (m->started) {
		if (write(m->stopfd, &one, sizeof(one)) < 0)
			return -errno;
		pthread_join(m->thread, NULL);
		upager_handler_stop(m->h);
		m->started = false;
	}
	m->stopped = true;
	for (struct listener *l = m->listeners; l; l = l->next)
		if (l->fd >= 0) {
			epoll_ctl(m->ep, EPOLL_CTL_DEL, l->fd, NULL);
			close(l->fd);
			unlink(l->path);
			l->fd = -1;
		}
	return 0;
}

void upager_manager_free(struct upager_manager *m)
{
	if (!m)
		return;
	upager_manager_stop(m);
	while (m->listeners) {
		struct listener *l = m->listeners;

		m->listeners = l->next;
		free(l);
	}
	while (m->exports) {
		struct export *e = m->exports;

		m->exports = e->next;
		export_free(e);
	}
	upager_handler_free(m->h);
	close(m->ep);
	close(m->stopfd);
	close(m->exitfd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int upager_manager_stats(struct upager_manager *m,
			 struct upager_manager_stats *st)
{
	struct upager_manager_stats s = { .size = sizeof(s) };

	s.connections = atomic_load(&m->connections);
	s.attached = atomic_load(&m->attached);
	s.refused = atomic_load(&m->refused);
	s.gone = atomic_load(&m->gone);
	pthread_mutex_lock(&m->lock);
	s.clients = m->nclients;
	for (struct client *c = m->clients; c; c = c->next)
		if (c->state == C_ATTACHED && c->sp)
			s.regions += c->nregions;
	pthread_mutex_unlock(&m->lock);
	upager_handler_stats(m->h, &s.total);
	return output_copy(st, &s, sizeof(s));
}

int upager_manager_clients(struct upager_manager *m,
			   int (*fn)(const struct upager_manager_client *c,
				     void *arg),
			   void *arg)
{
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	for (struct client *c = m->clients; c && !ret; c = c->next) {
		struct upager_manager_client info = { .size = sizeof(info) };

		if (c->state != C_ATTACHED || !c->sp)
			continue;
		info.id = c->id;
		info.pid = c->cred.pid;
		info.uid = c->cred.uid;
		info.gid = c->cred.gid;
		info.protocol = mode_name(c->l->mode);
		info.export_name = c->export_name;
		info.regions = c->nregions;
		for (unsigned int i = 0; i < c->nregions; i++) {
			struct upager_stats s;

			upager_region_stats(c->regions[i], &s);
			for (size_t k = 0; k < sizeof(s) / sizeof(uint64_t); k++)
				((uint64_t *)&info.stats)[k] +=
					((uint64_t *)&s)[k];
		}
		ret = fn(&info, arg);
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}
