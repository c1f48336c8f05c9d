# Shared by the shell tests: verdicts and the built binaries.
# Source it after setting build=$1.
set -u
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
upager=$build/upager
tmp=$(mktemp -d)
daemon=
trap 'rm -rf "$tmp"; [ -z "$daemon" ] || kill -KILL "$daemon" 2>/dev/null' EXIT

# upagerd for the upagerd_*.sh tests: start_upagerd ARGS... runs it with
# its log in $tmp/upagerd.log and waits for every socket it was given
# (--listen/--firecracker PATH) to exist; $daemon is its pid.
# stop_upagerd sends SIGTERM and fails unless it exits 0 within 30 s.
# log_has PATTERN waits up to 5 s for a line of the log.
start_upagerd() {
	local a socks=() prev=
	for a in "$@"; do
		case $prev in --listen | --firecracker) socks+=("${a%%,*}") ;; esac
		prev=$a
	done
	"$build/upagerd" "$@" >"$tmp/upagerd.out" 2>"$tmp/upagerd.log" &
	daemon=$!
	for s in "${socks[@]}"; do
		for _ in $(seq 200); do [ -S "$s" ] && break; sleep 0.025; done
		[ -S "$s" ] || fail "upagerd did not bind $s: $(cat "$tmp/upagerd.log")"
	done
}
stop_upagerd() {
	local rc
	kill -TERM "$daemon"
	for _ in $(seq 300); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$daemon" 2>/dev/null && { kill -KILL "$daemon"; fail "upagerd hangs at SIGTERM"; }
	wait "$daemon"
	rc=$?
	[ $rc = 0 ] || fail "upagerd exited $rc at SIGTERM: $(tail -5 "$tmp/upagerd.log")"
}
log_has() {
	for _ in $(seq 600); do
		grep -q -- "$1" "$tmp/upagerd.log" && return 0
		sleep 0.05
	done
	fail "no log line '$1' in: $(tail -5 "$tmp/upagerd.log")"
}
peer() { "$build/tests/upagerd_peer" "$@"; }
# memory_like FILE PAGES ZERO_FROM ZERO_TO: data shaped like memory, page
# i zeros in [ZERO_FROM, ZERO_TO) or when i % 11 == 5, random bytes when
# i % 7 == 3, text that compresses otherwise.
memory_like() {
	python3 - "$@" <<'PY'
import os, sys
path, pages, zfrom, zto = sys.argv[1], *map(int, sys.argv[2:5])
out = bytearray()
for i in range(pages):
    if zfrom <= i < zto or i % 11 == 5:
        out += bytes(4096)
    elif i % 7 == 3:
        out += os.urandom(4096)
    else:
        line = b"page %d: some text that compresses; " % i
        out += (line * (4096 // len(line) + 1))[:4096]
open(path, "wb").write(out)
PY
}
# refused WANT CMD ARGS...: CMD must exit 2 (a usage error) with a
# message that holds WANT.
refused() {
	local want=$1 rc
	shift
	"$@" >/dev/null 2>"$tmp/refused.err"
	rc=$?
	[ $rc = 2 ] || fail "$*: exit $rc, want 2"
	grep -q -- "$want" "$tmp/refused.err" ||
		fail "$*: '$(cat "$tmp/refused.err")' does not name '$want'"
}
# json_run CMD ARGS...: run a benchmark into $tmp/out.json; skip when the
# kernel or the privileges lack userfaultfd (or a feature of it), fail on
# any other error.
json_run() {
	local rc
	"$@" >"$tmp/out.json" 2>"$tmp/err"
	rc=$?
	[ $rc = 0 ] && return
	grep -q "cannot open a userfaultfd\|lacks UFFD_FEATURE" "$tmp/err" &&
		skip "$(cat "$tmp/err")"
	fail "$* exited $rc: $(cat "$tmp/err")"
}
