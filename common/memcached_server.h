/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A memcached server of Debian's (/usr/bin/memcached) on a free loopback
 * port, for the memcached tests and the memcached-store benchmark: one
 * way to start it, so that both run the server alike.
 */
#ifndef UPAGER_MEMCACHED_SERVER_H
#define UPAGER_MEMCACHED_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define MCSRV_BIN "/usr/bin/memcached"

/* Is something accepting TCP connections on 127.0.0.1:@port? */
bool mcsrv_accepts(unsigned int port);
/*
 * Start memcached with @mib MiB of memory, one thread, no UDP, on a free
 * loopback port (as nobody, since memcached refuses to run as root), and
 * wait until it accepts connections.  A port taken meanwhile by another
 * process is replaced by a new one, up to 20 times.  0 with *@pid and
 * *@port set, -ENOENT (memcached is not installed), -ETIMEDOUT (it did
 * not start), or -errno of socket(2)/fork(2).  Call from a single thread.
 */
int mcsrv_start(uint64_t mib, pid_t *pid, unsigned int *port);
/* Kill server @pid at once (SIGKILL) and reap it; 0 or less: nothing. */
void mcsrv_kill(pid_t pid);

#endif
