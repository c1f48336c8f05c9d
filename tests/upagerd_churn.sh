#!/bin/bash
# Many short-lived clients: each attaches (upager_attach()), reads a
# page, and exits still attached; the daemon must notice every exit and
# free all it held.  Its open descriptors and resident memory are printed
# at the start (after 50 clients, so that the allocator is warm) and at
# the end, and must be flat: the same descriptors, RSS grown by less than
# 2 MiB (not asserted under sanitizers, whose shadow memory grows).  1,000 clients in the suite; UPAGERD_CHURN=10000 for the long
# run.
build=$1
. "$(dirname "$0")/lib.sh"

n=${UPAGERD_CHURN:-1000}
peer mkimg "$tmp/img" 16 || fail "image"
start_upagerd --listen "$tmp/at.sock" img=file:"$tmp/img"

# Wait until the daemon holds no client: gone must reach $1.
settle() {
	for _ in $(seq 200); do
		: >"$tmp/upagerd.out"
		kill -USR1 "$daemon"
		sleep 0.05
		grep -q " gone $1; clients now 0 " "$tmp/upagerd.out" && return 0
	done
	fail "the daemon still holds clients: $(cat "$tmp/upagerd.out")"
}
# Descriptors and RSS once the engine has closed what released clients
# held: it reaps them in its sweep, once a second, so the count is read
# until it stops falling.
usage() {
	local prev=-1
	fds=$(ls "/proc/$daemon/fd" | wc -l)
	for _ in $(seq 20); do
		[ "$fds" = "$prev" ] && break
		prev=$fds
		sleep 1.2
		fds=$(ls "/proc/$daemon/fd" | wc -l)
	done
	rss=$(awk '/^VmRSS/ {print $2}' "/proc/$daemon/status")
}
timeout 100 "$build/tests/upagerd_peer" churn "$tmp/at.sock" img 50 >/dev/null ||
	fail "warm-up clients"
settle 50
usage
fds0=$fds rss0=$rss
echo "start: $fds descriptors, RSS $rss KiB"
timeout 600 "$build/tests/upagerd_peer" churn "$tmp/at.sock" img "$n" ||
	fail "$n clients"
settle $((n + 50))
usage
echo "after $n clients: $fds descriptors, RSS $rss KiB"
[ "$fds" = "$fds0" ] || fail "descriptors $fds0 -> $fds: a client's are leaked"
# A sanitizer's own bookkeeping grows with every allocation: RSS is
# asserted on the plain build.
[ -n "${SANITIZE:-}" ] || [ $((rss - rss0)) -lt 2048 ] ||
	fail "RSS grew $((rss - rss0)) KiB over $n clients"
grep -q refused "$tmp/upagerd.log" && fail "a refusal: $(grep refused "$tmp/upagerd.log" | head -3)"
stop_upagerd
exit 0
