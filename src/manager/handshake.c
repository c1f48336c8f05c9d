// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A client's handshake, read without blocking the manager thread: the
 * socket is non-blocking, what arrives is kept in the client's buffer
 * until a whole message is there, and the buffer is never larger than
 * the protocol's bound plus one byte (to tell "too long" from "just
 * right").  Descriptors come with the bytes (SCM_RIGHTS): the first one
 * is kept, any other is closed and makes the handshake a refusal.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "manager/firecracker.h"
#include "manager/manager.h"

#define MAX_FDS 8

static size_t limit(const struct client *c)
{
	return c->l->mode == UPAGER_LISTEN_FIRECRACKER ? FC_MAX_BODY
						       : ATTACH_REQ_MAX;
}

/* The descriptors of @mh: the first kept as the uffd if @keep. */
static void take_fds(struct client *c, struct msghdr *mh, bool keep)
{
	if (mh->msg_flags & MSG_CTRUNC)
		c->truncated_cm |= keep;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm;
	     cm = CMSG_NXTHDR(mh, cm)) {
		size_t nfd;
		int fd;

		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS) {
			c->extra_fds |= keep;
			continue;
		}
		nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (keep && c->uffd < 0 && !c->extra_fds) {
				c->uffd = fd;
			} else {
				close(fd);
				c->extra_fds |= keep;
			}
		}
	}
}

ssize_t conn_recv(struct client *c, void *buf, size_t len, bool keep)
{
	char ctl[CMSG_SPACE(MAX_FDS * sizeof(int))];
	struct iovec iov = { buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	ssize_t n;

	do
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	take_fds(c, &mh, keep);
	return n;
}

/* Read until the socket is empty or the buffer full: 0 or -errno. */
static int recv_all(struct client *c)
{
	if (!c->buf) {
		c->cap = limit(c) + 1;
		c->buf = malloc(c->cap);
		if (!c->buf)
			return -ENOMEM;
	}
	while (c->len < c->cap && !c->eof) {
		ssize_t n = conn_recv(c, c->buf + c->len, c->cap - c->len, true);

		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		if (!n)
			c->eof = true;
		c->len += (size_t)n;
	}
	return 0;
}

static int vrefuse(struct client *c, int err, const char *field,
		   const char *fmt, va_list ap)
{
	char text[160];

	vsnprintf(text, sizeof(text), fmt, ap);
	if (c->l->mode == UPAGER_LISTEN_ATTACH) {
		struct attach_answer a = { .err = (uint32_t)-err };
		uint8_t buf[ATTACH_ANSWER_LEN];

		snprintf(a.field, sizeof(a.field), "%s", field ? field : "");
		snprintf(a.text, sizeof(a.text), "%s", text);
		/* A client that does not read is being dropped: no wait. */
		if (send(c->fd, buf, attach_answer_encode(buf, &a),
			 MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			err = err ? err : -EIO;
	}
	mgr_event(c->m, c, UPAGER_EV_REFUSED, field, -err, "%s", text);
	return err;
}

int handshake_refuse(struct client *c, int err, const char *field,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = vrefuse(c, err, field, fmt, ap);
	va_end(ap);
	return err;
}

void handshake_accept(struct client *c)
{
	struct attach_answer a = { .features = c->features };
	uint8_t buf[ATTACH_ANSWER_LEN];

	if (c->l->mode != UPAGER_LISTEN_ATTACH)
		return;
	snprintf(a.text, sizeof(a.text), "attached %u regions", c->nregions);
	if (send(c->fd, buf, attach_answer_encode(buf, &a),
		 MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		mgr_event(c->m, c, UPAGER_EV_NOTE, NULL, errno,
			  "the answer could not be sent: %s", strerror(errno));
}

/* The descriptor rules, once the message is whole. */
static int check_fds(struct client *c)
{
	if (c->truncated_cm)
		return handshake_refuse(c, -EINVAL, "fd",
					"more descriptors than one message "
					"may carry (control data cut)");
	if (c->extra_fds)
		return handshake_refuse(c, -EINVAL, "fd",
					"more than one descriptor, or control "
					"data other than SCM_RIGHTS");
	if (c->uffd < 0)
		return handshake_refuse(c, -EBADF, "fd",
					"no file descriptor attached (the "
					"uffd must come with SCM_RIGHTS)");
	return 0;
}

static int field_refuse(struct client *c, int err, int region,
			const char *field, const char *why)
{
	char f[48];

	if (region >= 0)
		snprintf(f, sizeof(f), "region %d %s", region, field);
	else
		snprintf(f, sizeof(f), "%s", field ? field : "message");
	return handshake_refuse(c, err, f, "%s", why);
}

static int read_firecracker(struct client *c, struct want *w,
			    unsigned int *n)
{
	struct fc_region fr[FC_MAX_REGIONS];
	const char *field, *why, *unknown;
	int ret, region;

	if (c->len > FC_MAX_BODY)
		return handshake_refuse(c, -EMSGSIZE, "body",
					"the message is longer than %u bytes",
					FC_MAX_BODY);
	ret = fc_parse((const char *)c->buf, c->len, fr, n, &region, &field,
		       &why, &unknown);
	if (ret == -EAGAIN && !c->eof)
		return 0;
	if (ret == -EAGAIN && !c->len)
		return handshake_refuse(c, -ENODATA, "body",
					"the connection closed before any "
					"message");
	if (ret == -EAGAIN)
		return handshake_refuse(c, -EBADMSG, "body",
					"truncated JSON: the connection closed "
					"after %zu bytes",
					c->len);
	if (ret < 0)
		return field_refuse(c, ret, region, field, why);
	ret = check_fds(c);
	if (ret < 0)
		return ret;
	if (unknown)
		mgr_event(c->m, c, UPAGER_EV_NOTE, unknown, 0,
			  "a key this manager does not know, '%s', ignored",
			  unknown);
	for (unsigned int i = 0; i < *n; i++) {
		w[i] = (struct want){
			.addr = fr[i].addr,
			.len = fr[i].size,
			.offset = fr[i].offset,
			.fill = fr[i].page,
			.memtype = fr[i].page == 4096 ? UPAGER_MEM_ANON
						      : UPAGER_MEM_HUGETLB,
			.remove = UPAGER_REMOVE_ZERO,
		};
		snprintf(w[i].name, sizeof(w[i].name), "%s", c->l->ex->name);
	}
	return 1;
}

static int read_attach(struct client *c, struct want *w, unsigned int *n,
		       uint64_t *features)
{
	static __thread struct attach_req req;
	const char *field, *why;
	uint16_t version, type;
	uint32_t plen;
	int ret, region;

	if (c->len < ATTACH_HDR) {
		if (!c->eof)
			return 0;
		return handshake_refuse(c, -EBADMSG, "header",
					"truncated: the connection closed after "
					"%zu bytes",
					c->len);
	}
	ret = attach_header(c->buf, &version, &type, &plen, &field, &why);
	if (ret == -EPROTONOSUPPORT)
		return handshake_refuse(c, ret, field,
					"version %u; this manager speaks %u",
					version, UPAGER_ATTACH_VERSION);
	if (ret < 0)
		return field_refuse(c, ret, -1, field, why);
	if (c->len < ATTACH_HDR + (size_t)plen) {
		if (!c->eof)
			return 0;
		return handshake_refuse(c, -EBADMSG, "length",
					"truncated: %zu of %u bytes came", c->len,
					ATTACH_HDR + plen);
	}
	if (c->len > ATTACH_HDR + (size_t)plen)
		return handshake_refuse(c, -EBADMSG, "length",
					"bytes after the ATTACH message");
	ret = attach_decode(c->buf, c->len, &req, &region, &field, &why);
	if (ret < 0)
		return field_refuse(c, ret, region, field, why);
	ret = check_fds(c);
	if (ret < 0)
		return ret;
	*features = req.features;
	*n = req.nregions;
	for (unsigned int i = 0; i < *n; i++) {
		const struct attach_region *r = &req.r[i];

		w[i] = (struct want){ .addr = r->addr,
				      .len = r->len,
				      .offset = r->offset,
				      .fill = r->fill,
				      .memtype = r->memtype,
				      .remove = r->remove };
		memcpy(w[i].name, r->name, sizeof(w[i].name));
	}
	return 1;
}

int handshake_read(struct client *c, struct want *w, unsigned int *n,
		   uint64_t *features)
{
	int ret = recv_all(c);

	if (ret < 0)
		return handshake_refuse(c, ret, NULL, "reading the socket: %s",
					strerror(-ret));
	*features = UINT64_MAX; /* not declared: the uffd tells */
	if (c->l->mode == UPAGER_LISTEN_FIRECRACKER)
		return read_firecracker(c, w, n);
	return read_attach(c, w, n, features);
}
