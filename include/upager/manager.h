/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * upager manager: one process serving the memory of many others (the
 * non-cooperative side of userfaultfd).  A client process creates a
 * userfaultfd, registers its ranges and hands the descriptor over a unix
 * socket; the manager serves its faults with one engine handler from the
 * stores it exports, follows its fork, mremap, munmap and MADV_DONTNEED,
 * and lets it go when it exits.  upagerd is this, as a program.
 *
 * Manager side:
 *
 *   struct upager_manager *m = upager_manager_new(&mp, &err);
 *   upager_manager_export(m, "vm", upager_store_open("file:/snap/mem", &err),
 *                         &ep);           // who may attach to it
 *   upager_manager_listen(m, &lp);        // a socket: attach or firecracker
 *   upager_manager_start(m);              // workers + the manager thread
 *   ...
 *   upager_manager_stop(m);               // every client released
 *   upager_manager_free(m);
 *
 * Client side (upager's own protocol, docs/ATTACH.md), one call:
 *
 *   struct upager_attach_region r = { .addr = p, .len = len,
 *                                     .name = "vm", .offset = 0 };
 *   int sock = upager_attach("/run/upagerd.sock", &r, 1, NULL, &res);
 *   // p's pages now fault in from the export "vm"; keep sock open
 *
 * Firecracker's handshake (a socket in UPAGER_LISTEN_FIRECRACKER mode)
 * needs nothing on the client side but Firecracker.
 *
 * Every int function returns 0 (or a count, or a descriptor) or -errno;
 * those returning a pointer store -errno in *err (when err is not NULL)
 * and return NULL.  The kernel features they need are named per call.
 */
#ifndef UPAGER_MANAGER_H
#define UPAGER_MANAGER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <upager/store.h>
#include <upager/trace.h>
#include <upager/upager.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* ---- the manager ------------------------------------------------------- */

struct upager_manager;

/* What a log line is about (struct upager_manager_event.kind). */
enum upager_manager_event_kind {
	UPAGER_EV_LISTEN = 1, /* a socket is bound: path */
	UPAGER_EV_ATTACHED,   /* a client's regions are served */
	UPAGER_EV_REFUSED,    /* a client was refused: field, text */
	UPAGER_EV_GONE,	      /* a client exited or closed its socket */
	UPAGER_EV_RELEASED,   /* a client let go at shutdown */
	UPAGER_EV_NOTE,	      /* anything else worth a line: text */
};

/* One event, for a log line (text or JSON: the caller formats). */
struct upager_manager_event {
	enum upager_manager_event_kind kind;
	uint64_t client;      /* the manager's id for it (0: none) */
	pid_t pid;	      /* from SO_PEERCRED (0: unknown) */
	uid_t uid;
	gid_t gid;
	const char *socket;   /* the path it came on, or NULL */
	const char *protocol; /* "attach", "firecracker", or NULL */
	const char *export_name; /* the export it asked for, or NULL */
	unsigned int regions; /* ATTACHED: regions served */
	/* REFUSED: what was wrong, e.g. "region 1 size" or "uid" (else
	 * NULL), and the errno value the refusal carries. */
	const char *field;
	int err;
	const char *text; /* a sentence, never NULL */
};

/*
 * Called for each event from the manager's thread (never a worker), one
 * at a time.  The strings live until it returns.
 */
typedef void (*upager_manager_log_fn)(void *arg,
				      const struct upager_manager_event *ev);

/* Copied by its size, as struct upager_handler_params (upager.h). */
struct upager_manager_params {
	uint32_t size;	      /* sizeof(struct upager_manager_params) */
	unsigned int threads; /* engine workers; 0: as upager_handler_new() */
	/* The handler's published statistics (`upager stat`), one region
	 * per client region, named "EXPORT pid PID"; NULL: "upagerd". */
	const char *stats_name;
	upager_manager_log_fn log; /* NULL: silent */
	void *log_arg;
	/* A client that has not sent its whole handshake this many ms
	 * after connecting is refused; 0: 5000. */
	unsigned int handshake_ms;
	/* Clients attached at once (more are refused); 0: 4096. */
	unsigned int max_clients;
};

/*
 * A manager with its engine handler (not yet serving).  Needs a kernel
 * with userfaultfd; the handler probes its features as
 * upager_handler_new() does.  Any thread.  NULL with *err = -EINVAL or
 * -E2BIG (@p), -ENOMEM, or upager_handler_new()'s errors.
 */
struct upager_manager *upager_manager_new(const struct upager_manager_params *p,
					  int *err);

/* Who may attach to an export, checked against SO_PEERCRED. */
struct upager_export_params {
	uint32_t size; /* sizeof(struct upager_export_params) */
	/*
	 * A client may attach when its uid is one of @uids or its gid (the
	 * primary one SO_PEERCRED gives) one of @gids.  With both lists
	 * empty, only the manager's own uid may.  Copied.
	 */
	const uid_t *uids;
	unsigned int nuids;
	const gid_t *gids;
	unsigned int ngids;
	/*
	 * Record each client's working set on this export: the pages it
	 * touched first, in order, written when it goes (exit, EOF, or the
	 * manager's stop) to DIR/NAME.PID.ID.trace (<upager/trace.h>,
	 * docs/TRACE.md), and logged.  Its regions over the export get no
	 * read-ahead or fault-around, so that every first touch is a
	 * fault.  NULL: no recording.  Copied.
	 */
	const char *record_dir;
	/*
	 * Replay a working set (recorded on an export of the same size):
	 * each client's regions over this export get the trace's pages in
	 * them as a prefetch list (upager_region_prefetch()), filled in the
	 * background from the attach on, faults first.  Copied.  NULL: none.
	 */
	const struct upager_trace *replay;
	/*
	 * Read-ahead window limit and fault-around block of the clients'
	 * regions over this export, as in struct upager_map_params: 0 the
	 * engine's defaults, (size_t)-1 off (record_dir turns both off).
	 */
	size_t readahead_max;
	size_t fault_around;
};

/*
 * Export @store under @name (1 to 63 bytes of [A-Za-z0-9._-]): clients
 * name exports, never paths, so a client reads only what the manager
 * opened for it.  The store needs a bounded size; it stays the caller's
 * and must stay open until upager_manager_free().  Before
 * upager_manager_start().  0, -EINVAL (bad name, unbounded store, bad
 * @ep: both record_dir and replay, a replay trace of an export of
 * another size, a fault_around not a power of two), -EEXIST (the name is taken), -EBUSY (started), -ENOMEM.
 */
int upager_manager_export(struct upager_manager *m, const char *name,
			  struct upager_store *store,
			  const struct upager_export_params *ep);

enum upager_listen_mode {
	/* upager's attach protocol (docs/ATTACH.md). */
	UPAGER_LISTEN_ATTACH = 0,
	/*
	 * Firecracker's snapshot-restore handshake: one message, a JSON
	 * array of {base_host_virt_addr, size, offset, page_size and/or
	 * page_size_kib} with the uffd attached; every region is served
	 * from the export @export with UPAGER_REMOVE_ZERO (the balloon).
	 */
	UPAGER_LISTEN_FIRECRACKER,
};

struct upager_listen_params {
	uint32_t size; /* sizeof(struct upager_listen_params) */
	const char *path; /* the socket's path (a stale socket is replaced) */
	enum upager_listen_mode mode;
	const char *export_name; /* FIRECRACKER: the export it serves */
	/* The socket file's permissions; 0: 0600.  Firecracker and the
	 * clients must be able to write to it. */
	mode_t perm;
	uid_t owner; /* (uid_t)-1 (or 0 with group -1): left as created */
	gid_t group; /* (gid_t)-1: left as created */
};

/*
 * Bind and listen on a unix socket (accepting starts with
 * upager_manager_start()).  Any number of sockets, of either mode.
 * Before upager_manager_start().  0, -EINVAL (no path, a path too long,
 * FIRECRACKER without an existing export), -EADDRINUSE (a live server
 * answers there), -EBUSY (started), bind(2)/chmod(2)/chown(2)'s errors.
 */
int upager_manager_listen(struct upager_manager *m,
			  const struct upager_listen_params *lp);

/*
 * Start the engine's workers and the manager's thread (accept, the
 * handshakes, clients' exits).  Once: a stopped manager does not start
 * again.  Any thread.  0, -EALREADY, -EINVAL (no socket, or stopped),
 * -errno of pthread_create().
 */
int upager_manager_start(struct upager_manager *m);

/*
 * Shut down: stop accepting, release every client (what it never had is
 * poisoned: its threads get SIGBUS there, never zeros, never a hang;
 * faults in flight are served first), stop the workers, remove the
 * socket files.  Returns when done.  Any thread but the manager's and
 * the engine's; also when never started.  Returns 0.
 */
int upager_manager_stop(struct upager_manager *m);

/* Stop, close the sockets, free.  The exported stores stay open. */
void upager_manager_free(struct upager_manager *m);

/* The manager's counters (start with their size, as the remote ones). */
struct upager_manager_stats {
	uint32_t size;		  /* in: sizeof as built; out: bytes filled */
	uint64_t connections;	  /* accepted */
	uint64_t attached;	  /* handshakes that were accepted */
	uint64_t refused;	  /* handshakes that were refused */
	uint64_t gone;		  /* attached clients that exited since */
	uint64_t clients;	  /* attached now */
	uint64_t regions;	  /* served now */
	struct upager_stats total; /* the engine's, all clients */
};

/* A snapshot of the counters into @st.  0 or -EINVAL (size).  Any thread. */
int upager_manager_stats(struct upager_manager *m,
			 struct upager_manager_stats *st);

/* One attached client, for upager_manager_clients(). */
struct upager_manager_client {
	uint32_t size; /* set by the manager: sizeof as it was built */
	uint64_t id;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	const char *protocol;	 /* "attach" or "firecracker" */
	const char *export_name; /* of its first region */
	unsigned int regions;
	struct upager_stats stats; /* its regions' counters, summed */
};

/*
 * Call @fn for each attached client (from the calling thread, while the
 * manager holds its client list: @fn must not call the manager).  A
 * non-zero return of @fn ends the walk and is returned.  Any thread.
 */
int upager_manager_clients(struct upager_manager *m,
			   int (*fn)(const struct upager_manager_client *c,
				     void *arg),
			   void *arg);

/* ---- the client side of the attach protocol --------------------------- */

/* The protocol version this library speaks (docs/ATTACH.md). */
#define UPAGER_ATTACH_VERSION 1
#define UPAGER_ATTACH_MAX_REGIONS 64
#define UPAGER_ATTACH_NAME_MAX 63

/* One range of the calling process to be served. */
struct upager_attach_region {
	void *addr;	  /* page aligned (2 MiB for hugetlb) */
	size_t len;	  /* a multiple of the fill unit */
	const char *name; /* the export it is filled from */
	uint64_t offset;  /* byte offset in the export (4 KiB aligned) */
	enum upager_memtype memtype; /* ANON or HUGETLB (the memory must
					be mapped so: private) */
	size_t fill;	  /* bytes per fill unit; 0: the page size */
	enum upager_remove_policy remove; /* after MADV_DONTNEED */
};

/* Options of upager_attach(); NULL for the defaults. */
struct upager_attach_params {
	uint32_t size;		  /* sizeof(struct upager_attach_params) */
	unsigned int timeout_ms;  /* for the answer; 0: 10000 */
	/* UFFD_FEATURE_EVENT_FORK is asked when the process may have it
	 * (CAP_SYS_PTRACE), so that forked children are served too; set
	 * this to never ask (children then read zeros where the parent
	 * had nothing: map such memory MADV_DONTFORK). */
	int no_fork;
};

/* Why the manager refused (upager_attach()'s @res). */
struct upager_attach_result {
	uint32_t size;	   /* sizeof(struct upager_attach_result) */
	uint32_t version;  /* the manager's protocol version */
	uint64_t features; /* the UFFD_FEATURE_* the uffd was given */
	char field[48];	   /* the refused field, e.g. "region 0 name" */
	char text[160];	   /* the manager's sentence */
};

/*
 * Have the ranges @r[0..n) of the calling process served by the manager
 * listening at @path, in one call: opens a userfaultfd with the
 * non-cooperative events (EVENT_REMOVE, EVENT_REMAP, EVENT_UNMAP, and
 * EVENT_FORK when permitted), registers each range MISSING, connects,
 * sends the table with the descriptor (SCM_RIGHTS) and waits for the
 * answer.  The memory must be mapped already, private anonymous (or
 * hugetlb) and untouched where the manager should fill it.  Returns the
 * connected socket: keep it open while the ranges are used (closing it,
 * or exiting, lets the manager release them; a child forked with
 * EVENT_FORK shares it).  The process's own copy of the uffd is closed.
 * Any thread; the call blocks.  -errno on failure, the ranges then
 * unregistered:
 *   -EINVAL      a bad range or parameter (nothing sent)
 *   -ENOENT, -EACCES, -ECONNREFUSED...   connect(2)'s
 *   -ETIMEDOUT   no answer within the timeout
 *   -EPROTO      the manager's answer was malformed
 *   else         the manager's refusal (-EPERM not on the allow-list,
 *                -ENOENT no such export, -EINVAL, -ERANGE past the
 *                export, -EEXIST overlap...): @res names the field
 * and upager_ll_open()/upager_ll_api()/UFFDIO_REGISTER's errors.  @res
 * may be NULL.  Needs userfaultfd; EVENT_FORK needs CAP_SYS_PTRACE.
 */
int upager_attach(const char *path, const struct upager_attach_region *r,
		  unsigned int n, const struct upager_attach_params *p,
		  struct upager_attach_result *res);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif
