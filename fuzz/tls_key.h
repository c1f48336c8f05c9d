/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The key the TLS fuzzer and its seeds share, so that a seeded
 * ClientHello's binder verifies.  Header-only, for fuzz/ programs.
 */
#ifndef UPAGER_FUZZ_TLS_KEY_H
#define UPAGER_FUZZ_TLS_KEY_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/tls.h"

static inline struct net_tls *fuzz_tls(bool server)
{
	static const char key[] = "fuzz:000102030405060708090a0b0c0d0e0f"
				  "101112131415161718191a1b1c1d1e1f\n";
	char path[64], why[TLS_WHY];
	struct net_tls *t;
	int fd, err;

	snprintf(path, sizeof(path), "/tmp/upager-fuzz-%d.psk", (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, key, strlen(key)) != (ssize_t)strlen(key))
		abort();
	close(fd);
	t = tls_new(path, server, &err, why);
	unlink(path);
	if (!t) {
		fprintf(stderr, "fuzz: key: %s\n", why);
		abort();
	}
	return t;
}

#endif
