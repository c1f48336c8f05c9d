#!/bin/bash
# Hostile clients meet upagerd: each is refused with a log line that
# names what was wrong, and the daemon goes on serving a good client
# (Firecracker's restore, tests/upagerd_peer.c) after every one of them.
# Firecracker's socket: truncated, invalid or non-array JSON, a 10 MB
# message, no descriptor, a pipe or an eventfd instead of a uffd, a uffd
# without UFFDIO_API, overlapping regions, a region beyond the address
# space or not mapped in the process, lengths that overflow, page sizes
# that disagree, an offset past the memory file.  The attach socket: an
# export that does not exist, a uid not on the allow-list, garbage.
build=$1
. "$(dirname "$0")/lib.sh"

peer mkimg "$tmp/mem" 256 || fail "image"
chmod 755 "$tmp" # the uid case connects as nobody
start_upagerd --firecracker "$tmp/fc.sock" --listen "$tmp/at.sock,mode=0666" \
	fc=file:"$tmp/mem" img=file:"$tmp/mem"

good() {
	kill -0 "$daemon" 2>/dev/null || fail "upagerd died after $1"
	timeout 60 "$build/tests/upagerd_peer" fc "$tmp/fc.sock" 256 kib >/dev/null ||
		fail "a good client after '$1' failed"
}
# hostile SOCKET CASE 'LOG PATTERN'
hostile() {
	timeout 60 "$build/tests/upagerd_peer" hostile "$1" "$2" ||
		fail "case $2: the client saw no refusal (exit $?)"
	log_has "refused, $3"
	good "$2"
}
fc=$tmp/fc.sock at=$tmp/at.sock
hostile "$fc" truncated "body: truncated JSON: the connection closed after"
hostile "$fc" invalid "body: invalid JSON at byte 15: unexpected character"
hostile "$fc" notarray "body: not a JSON array"
hostile "$fc" big "body: the message is longer than 65536 bytes"
hostile "$fc" nofd "fd: no file descriptor attached"
hostile "$fc" pipe "fd: the descriptor is pipe:\[[0-9]*\], not a userfaultfd"
hostile "$fc" eventfd "fd: the descriptor is anon_inode:\[eventfd\], not a userfaultfd"
hostile "$fc" noapi "fd: a userfaultfd without UFFDIO_API"
hostile "$fc" overlap "region 1 address: overlaps region 0"
hostile "$fc" beyond "region 0 size: \[0x400000000000000, +0x1000) overflows or lies beyond the address space"
hostile "$fc" unmapped "region 0 address: \[0x[0-9a-f]*, +0x40000) is not mapped in process"
hostile "$fc" overflow "region 0 size: too large"
hostile "$fc" wrap "region 0 size: .* overflows or lies beyond the address space"
hostile "$fc" pagesize "region 0 page_size_kib: differs from page_size"
hostile "$fc" past "region 0 offset: \[0x10000000000, +0x40000) reaches past the export 'fc'"
hostile "$at" noexport "region 0 name: no export named 'nosuch'"
hostile "$at" uid "uid: uid 65534 gid 65534 may not attach to export 'img'"
hostile "$at" garbage "magic: not an upager attach message"
n=$(grep -c ') refused, ' "$tmp/upagerd.log")
[ "$n" = 18 ] || fail "$n refusals logged, want 18: $(cat "$tmp/upagerd.log")"
stop_upagerd
grep -q "attached 18, refused 18, gone 18;" "$tmp/upagerd.out" || fail "statistics: $(cat "$tmp/upagerd.out")"
exit 0
