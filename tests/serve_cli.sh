#!/bin/bash
# `upager serve` exports an image file; examples/remote_sum maps it from
# another process as remote:127.0.0.1:PORT/img and gets the file's
# checksum.  The first line of serve is the bound address; SIGINT ends it
# with exit 0 and its statistics (--json); a unix socket works too; bad
# arguments exit 2 with a message naming them.  The TCP server uses TLS
# with a key file (--psk-file), the unix one --plaintext; neither is an
# error that says what to do, and so is a key file others may read.
build=$1
. "$(dirname "$0")/lib.sh"

# 8 MiB of random data with a 1 MiB hole in the middle (sparse: the
# server sends it as zero runs without reading it) and 64 KiB of zeros
# written out (found zero by content).
python3 -c "
import os
d = bytearray(os.urandom(8 << 20)); d[3 << 20:4 << 20] = bytes(1 << 20)
d[6 << 20:(6 << 20) + (64 << 10)] = bytes(64 << 10)
with open('$tmp/img', 'wb') as f:
    f.write(d[:3 << 20]); f.seek(4 << 20); f.write(d[4 << 20:])"
key=$tmp/key
(umask 077; python3 -c "import os; print('upager:' + os.urandom(32).hex())" >"$key")
want=$(python3 -c "
import struct; d = open('$tmp/img','rb').read()
print(sum(struct.unpack('<%dQ' % (len(d) // 8), d)) % (1 << 64))")

# Start serve with "$@"; $addr gets the first line it prints.
start() {
	"$upager" serve "$@" >"$tmp/out" 2>"$tmp/err" &
	pid=$!
	# Up to 30 s: a loaded machine (or a sanitizer build) starts slowly.
	for _ in $(seq 600); do
		[ -s "$tmp/out" ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done
	addr=$(head -n1 "$tmp/out")
	if [ -z "$addr" ]; then
		local how="still running after 30 s"
		kill -0 $pid 2>/dev/null || { wait $pid; how="exited $?"; }
		kill $pid 2>/dev/null
		fail "serve $* printed no address ($how): $(cat "$tmp/err")"
	fi
}
stop() {
	kill -INT $pid
	wait $pid || fail "serve exited $? on SIGINT"
}
# remote_sum of SPEC must print WANT.
check_sum() {
	local got rc
	got=$("$build/examples/remote_sum" "$1")
	rc=$?
	[ $rc = 0 ] || { kill $pid; fail "remote_sum $1 exited $rc"; }
	[ "$got" = "$2" ] || { kill $pid; fail "remote_sum $1: '$got', want '$2'"; }
}

start --psk-file "$key" --listen tcp:127.0.0.1:0 --json img=file:"$tmp/img"
case $addr in tcp:127.0.0.1:[1-9]*) ;; *) kill $pid; fail "address '$addr'" ;; esac
port=${addr##*:}
check_sum "remote:127.0.0.1:$port/img,psk=$key" "sum $want pages 2048"
# The only export is also the one a client naming none gets.
check_sum "remote:127.0.0.1:$port,csum,psk=$key" "sum $want pages 2048"
stop
tail -n +2 "$tmp/out" >"$tmp/stats.json"
python3 - "$tmp/stats.json" <<'PY' || fail "serve --json: $(cat "$tmp/stats.json")"
import json, sys
j = json.load(open(sys.argv[1]))
[e] = j["exports"]
assert e["name"] == "img" and e["pages"] == 2048, e
s = j["stats"]
# Two clients, a stream and an urgent connection each; a client may
# reconnect once more when a fault races its completion (the stream is
# closed when the last page lands), which the counts allow.
assert s["clients"] >= 4 and s["clients"] % 2 == 0, s
assert s["sessions"] >= 2, s
assert s["pages_streamed"] + s["pages_urgent"] >= 2 * 2048, s
assert s["pages_zero"] >= 2 * (256 + 16), s
assert s["protocol_errors"] == 0, s
PY

start --plaintext --listen "unix:$tmp/sock" one=file:"$tmp/img" two=zero:64K
[ "$addr" = "unix:$tmp/sock" ] || { kill $pid; fail "unix address '$addr'"; }
check_sum "remote:unix:$tmp/sock/one,plaintext" "sum $want pages 2048"
check_sum "remote:unix:$tmp/sock/two,deadline=5,plaintext" "sum 0 pages 16"
"$build/examples/remote_sum" "remote:unix:$tmp/sock,plaintext" 2>"$tmp/err" &&
	{ kill $pid; fail "two exports and no name: accepted"; }
grep -q "No such file or directory" "$tmp/err" || { kill $pid; fail "no name: $(cat "$tmp/err")"; }
stop
grep -Eq "^clients ([5-9]|[1-9][0-9]+), sessions" "$tmp/out" || fail "text statistics: $(cat "$tmp/out")"
[ -e "$tmp/sock" ] && fail "the socket file is left behind"

# Bad arguments: exit 2, and the message names what was wrong.
bad() {
	want_msg=$1
	shift
	"$upager" serve "$@" >/dev/null 2>"$tmp/err" && fail "serve $* succeeded"
	rc=$?
	[ $rc = 2 ] || fail "serve $*: exit $rc, want 2"
	grep -q -- "$want_msg" "$tmp/err" || fail "serve $*: $(cat "$tmp/err")"
}
bad "no key: give --psk-file FILE" img=zero:1M
bad "exclude each other" --plaintext --psk-file "$key" img=zero:1M
bad "nothing to export" --plaintext
bad "'img' is not NAME=SPEC" --plaintext img
bad "no store kind 'nosuch'" --plaintext img=nosuch:x
bad "name in '=file:x'" --plaintext =file:x
bad "'img' given twice" --plaintext img=zero:1M img=zero:1M
bad "no size" --plaintext img=zero
bad "rate 'fast' is not a number" --plaintext --rate fast img=zero:1M
bad "may not run on that CPU" --plaintext --stream-cpu 1023 img=zero:1M
bad "'x' is not a number" --plaintext --stream-cpu x img=zero:1M
bad "'nowhere' is malformed" --plaintext --listen nowhere img=zero:1M
bad "unknown option" --bogus img=zero:1M
# A key file others may read is refused, and the message says so.
chmod 644 "$key"
"$upager" serve --psk-file "$key" img=zero:1M 2>"$tmp/err"
[ $? = 1 ] || fail "a key file of mode 0644: want exit 1"
grep -q "key file $key: mode 0644 lets others read" "$tmp/err" || fail "mode 0644: $(cat "$tmp/err")"
"$upager" serve --plaintext img=file:"$tmp/nonexistent" 2>"$tmp/err"
[ $? = 1 ] || fail "missing file: want exit 1"
grep -q "nonexistent: No such file" "$tmp/err" || fail "missing file: $(cat "$tmp/err")"
"$upager" serve --help | grep -q '^usage: upager serve' || fail "--help"
exit 0
