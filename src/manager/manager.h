/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manager's internal types.  One file a concern:
 *
 *   manager.c      its life (exports, sockets, start, stop), the manager
 *                  thread's loop (accept, readiness, deadlines, exits)
 *   handshake.c    reading a client's handshake, either protocol, into
 *                  one table of wanted regions
 *   admit.c        checking that table and the uffd, then adopting it
 *                  and mapping the regions; refusals
 *   attach.c       the client side: upager_attach()
 *   attach_wire.c  the attach protocol's codec
 *   firecracker.c  Firecracker's JSON body
 *   label.c        stores named after their client, for `upager stat`
 *   working_set.c  recording clients' first touches, replaying traces
 *   trace.c        the trace file's codec (<upager/trace.h>)
 *
 * Threads: the manager thread owns every client in the handshake and
 * does every adopt, map and release; engine workers only set a client's
 * @exited and ring @exitfd (on_exit); other threads read the client list
 * under @lock (stats, upager_manager_clients()).
 */
#ifndef UPAGER_MANAGER_INT_H
#define UPAGER_MANAGER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "upager/manager.h"
#include "manager/attach_wire.h"

#define MAX_REGIONS UPAGER_ATTACH_MAX_REGIONS

struct export {
	char name[ATTACH_NAME];
	struct upager_store *store;
	uid_t *uids;
	gid_t *gids;
	unsigned int nuids, ngids;
	size_t readahead_max, fault_around; /* for upager_map_params */
	char *record_dir;		/* or NULL */
	struct upager_trace *replay;	/* or NULL */
	struct export *next;
};

/* One client's first touches on one export (working_set.c). */
struct ws_rec {
	struct export *ex;
	uint64_t t0;			/* ns, at the attach */
	atomic_uint_fast64_t n;		/* entries taken */
	uint64_t cap;			/* the pages of its regions there */
	struct upager_trace_entry *e;	/* cap entries, mapped as touched */
	size_t map_len;
	struct ws_rec *next;
};

/* What a region's on_touch needs: its trace and where it sits in it. */
struct ws_touch {
	struct ws_rec *rec;
	uint64_t pgoff;		/* the region's first page in the export */
	unsigned int pages;	/* 4 KiB pages per fill unit */
};

enum obj_kind { OBJ_LISTENER = 1, OBJ_CLIENT };

struct listener {
	enum obj_kind kind; /* first: epoll's data points here */
	int fd;
	char path[108];
	enum upager_listen_mode mode;
	struct export *ex; /* FIRECRACKER: what it serves */
	struct listener *next;
};

/* A region a client asked for, from either protocol. */
struct want {
	uint64_t addr, len, offset, fill;
	enum upager_memtype memtype;
	enum upager_remove_policy remove;
	struct export *ex;
	char name[ATTACH_NAME];
};

enum client_state { C_HANDSHAKE, C_ATTACHED };

struct client {
	enum obj_kind kind;
	struct upager_manager *m;
	uint64_t id;
	int fd;
	struct listener *l;
	struct ucred cred;
	enum client_state state;
	uint64_t deadline; /* ns, for the handshake */
	/* The handshake as read so far. */
	uint8_t *buf;
	size_t len, cap;
	int uffd;	   /* received, not yet adopted; -1 */
	bool extra_fds;	   /* more than one, or not SCM_RIGHTS */
	bool truncated_cm; /* MSG_CTRUNC */
	bool eof;
	bool noted;	   /* bytes after the handshake were logged once */
	bool closed;	   /* freed at the end of the epoll batch */
	/* Attached. */
	struct upager_space *sp;
	uint64_t features;
	unsigned int nregions;
	struct upager_region *regions[MAX_REGIONS];
	struct upager_store *labels[MAX_REGIONS];
	struct ws_touch touch[MAX_REGIONS];
	struct ws_rec *recs;
	char export_name[ATTACH_NAME];
	atomic_bool exited;
	struct client *next;
};

struct upager_manager {
	struct upager_manager_params p;
	char stats_name[64];
	struct upager_handler *h;
	uint64_t kernel_features; /* bits a uffd has whether asked or not */
	struct export *exports;
	struct listener *listeners;
	int ep, stopfd, exitfd;
	pthread_t thread;
	bool started, stopped;

	pthread_mutex_t lock; /* the client list, for readers elsewhere */
	struct client *clients;
	struct client *closed; /* the manager thread's alone */
	unsigned int nclients, nhandshakes;
	uint64_t next_id;
	_Atomic uint64_t connections, attached, refused, gone;
};

/* manager.c */
void mgr_event(struct upager_manager *m, struct client *c,
	       enum upager_manager_event_kind kind, const char *field,
	       int err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* handshake.c */
/*
 * One non-blocking recvmsg() on @c's socket: the byte count (0: EOF),
 * -EAGAIN when nothing is there, or -errno.  Descriptors that come
 * along are @c's uffd (the first, if @keep) or closed.
 */
ssize_t conn_recv(struct client *c, void *buf, size_t len, bool keep);
/*
 * Read what @c's socket has.  1: the handshake is whole (parsed into
 * @w[0..*n), and the UFFD_FEATURE_* the client says it enabled in
 * *@features, UINT64_MAX when its protocol does not say); 0: more is to
 * come; -errno: refused (logged, answered).
 */
int handshake_read(struct client *c, struct want *w, unsigned int *n,
		   uint64_t *features);
/* Refuse @c's handshake: log, and answer when its protocol has answers. */
int handshake_refuse(struct client *c, int err, const char *field,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Tell an attach client it is accepted. */
void handshake_accept(struct client *c);

/* admit.c */
/* Check and serve @w[0..n) of @c: 0 (attached) or -errno (refused). */
int admit(struct client *c, struct want *w, unsigned int n,
	  uint64_t declared_features);
/* Stop serving @c (regions released, labels freed). */
void admit_release(struct client *c);
/* The UFFD_FEATURE_* bits a uffd has without asking (info bits). */
uint64_t admit_kernel_features(void);

/* working_set.c */
/*
 * Region @i of @c (@w[i] of @w[0..n)) records its first touches when its
 * export records: sets @mp's on_touch, read-ahead and fault-around off.
 * 0 or -ENOMEM.
 */
int ws_record(struct client *c, const struct want *w, unsigned int n,
	      unsigned int i, struct upager_map_params *mp);
/* Give region @r (over @w) its export's replay trace as a prefetch list. */
int ws_replay(struct client *c, const struct want *w, struct upager_region *r);
/* @c's regions are released: write its traces (if it was attached). */
void ws_release(struct client *c);

#endif
