#!/bin/bash
# `upagerd --firecracker SOCKET STORE-SPEC`, as the README runs it, meets
# a client that does exactly what Firecracker does at snapshot restore
# (tests/upagerd_peer.c, mode fc: two private anonymous regions with a
# gap, a uffd with EVENT_REMOVE, MISSING registration, one sendmsg of the
# JSON body with the uffd): every page reads as the memory file at its
# region's offset, a range the balloon took (MADV_DONTNEED) reads zeros.
# The handshake comes in each form Firecracker versions send: page_size
# only, page_size_kib only (the deprecated name), both, and neither.
# A client whose uffd was opened blocking with EVENT_FORK (not what
# Firecracker does; the kernel opens its children's uffds blocking too)
# forks twice, and the children and the parent read right.
# Then SIGTERM: upagerd exits 0 and removes its socket.
build=$1
. "$(dirname "$0")/lib.sh"

peer mkimg "$tmp/mem" 1024 || fail "image"
start_upagerd --firecracker "$tmp/fc.sock" "file:$tmp/mem"
log_has "listening on $tmp/fc.sock (firecracker, export fc)"
for style in page_size kib both none; do
	timeout 60 "$build/tests/upagerd_peer" fc "$tmp/fc.sock" 1024 "$style" ||
		fail "Firecracker's handshake with $style: exit $?"
done
log_has "attached: 2 regions of 'fc', uffd features 0x8"
timeout 60 "$build/tests/upagerd_peer" blockfork "$tmp/fc.sock" 256 ||
	fail "a client of a blocking uffd with EVENT_FORK: exit $?"
log_has "gone: closed its socket"
[ "$(grep -c ') attached:' "$tmp/upagerd.log")" = 5 ] ||
	fail "5 attaches expected: $(cat "$tmp/upagerd.log")"
grep -q refused "$tmp/upagerd.log" && fail "a refusal: $(cat "$tmp/upagerd.log")"
stop_upagerd
[ -e "$tmp/fc.sock" ] && fail "the socket file is left behind"
grep -q "^connections 5, attached 5, refused 0, gone 5" "$tmp/upagerd.out" ||
	fail "statistics: $(cat "$tmp/upagerd.out")"
exit 0
