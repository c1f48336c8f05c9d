#!/bin/bash
# `upager image push` and the memcached: store from the command line, two
# memcached servers on loopback: a page image pushed into a namespace
# comes back byte for byte (an image created from the memcached: spec,
# then cat), zero pages included; a file: store pushes too, and a second
# push replaces the first; --json gives the summary; a malformed
# destination is refused naming what was wrong (exit 1), a destination
# that is not memcached: and missing arguments exit 2; an unpushed
# namespace is refused naming its meta key; with one server killed the
# namespace's pages on it fail (exit 1, naming the server), never zeros.
build=$1
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/memcached ] || skip "no /usr/bin/memcached (tools/deps.sh installs it)"

pids=()
ports=()
stop_all() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap stop_all EXIT
# A server on a free loopback port (another may take it first: try again).
start() {
	local port pid
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
		/usr/bin/memcached -l 127.0.0.1 -p "$port" -U 0 -m 64 -t 1 -u nobody &
		pid=$!
		for _ in $(seq 100); do
			if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null; then
				pids+=("$pid")
				ports+=("$port")
				return
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	fail "memcached did not start"
}
start
start
servers="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}"

# 2 MiB like memory: text pages, random pages, zero pages.
memory_like "$tmp/src" 512 128 256
"$upager" image create "file:$tmp/src" "$tmp/img" >/dev/null || fail "image create"

"$upager" image push "image:$tmp/img" "memcached:$servers/cli" >"$tmp/out" 2>"$tmp/err" ||
	fail "push: exit $?: $(cat "$tmp/err")"
grep -q "512 pages" "$tmp/out" || fail "push summary: $(cat "$tmp/out")"
"$upager" image create "memcached:$servers/cli,mget=16" "$tmp/back" >/dev/null 2>"$tmp/err" ||
	fail "create from memcached: exit $?: $(cat "$tmp/err")"
"$upager" image cat "$tmp/back" | cmp -s - "$tmp/src" || fail "the pages came back different"

# A file: store, pushed over the first push, --json.
head -c 40960 /dev/urandom >"$tmp/small"
"$upager" image push --json "file:$tmp/small" "memcached:$servers/cli" >"$tmp/out" ||
	fail "push --json: exit $?"
python3 -c "
import json; j = json.load(open('$tmp/out'))
assert j['pages'] == 10 and j['destination'] == 'memcached:$servers/cli', j" ||
	fail "push --json: $(cat "$tmp/out")"
"$upager" image create --force "memcached:$servers/cli" "$tmp/back" >/dev/null 2>&1 || fail "create after the second push"
"$upager" image cat "$tmp/back" | cmp -s - "$tmp/small" || fail "the second push came back different"

# Bad destinations and arguments.
"$upager" image push "file:$tmp/small" "memcached:$servers/cli,mget=0" >/dev/null 2>"$tmp/err"
[ $? = 1 ] && grep -q 'option "mget=0"' "$tmp/err" || fail "mget=0: $(cat "$tmp/err")"
"$upager" image push "file:$tmp/small" "memcached:127.0.0.1/cli" >/dev/null 2>"$tmp/err"
[ $? = 1 ] && grep -q "want HOST:PORT" "$tmp/err" || fail "no port: $(cat "$tmp/err")"
"$upager" image push "file:$tmp/small" "file:$tmp/x" >/dev/null 2>"$tmp/err"
[ $? = 2 ] && grep -q "memcached:" "$tmp/err" || fail "file: destination: $(cat "$tmp/err")"
"$upager" image push "file:$tmp/small" >/dev/null 2>"$tmp/err"
[ $? = 2 ] || fail "one argument: want exit 2"
"$upager" image push --help | grep -q "usage: upager image push" || fail "push --help"
"$upager" image create "memcached:$servers/nothing-here" "$tmp/none" >/dev/null 2>"$tmp/err"
[ $? = 1 ] && grep -q "no key nothing-here/meta" "$tmp/err" || fail "unpushed: $(cat "$tmp/err")"

# One server killed: its pages fail, naming it; never an image of zeros.
# The one without the meta record first (the namespace still opens), then
# the other (it no longer does, naming the server).
"$upager" image push "image:$tmp/img" "memcached:$servers/cli" >/dev/null 2>&1 || fail "push again"
has_meta() {
	python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"get cli/meta\r\n")
got = b""
while not got.endswith(b"END\r\n"):
    got += s.recv(4096)
sys.exit(0 if got.startswith(b"VALUE") else 1)
PY
}
if has_meta "${ports[0]}"; then dead=1 live=0; else dead=0 live=1; fi
kill -9 "${pids[$dead]}"
wait "${pids[$dead]}" 2>/dev/null
rm -f "$tmp/back"
"$upager" image create "memcached:$servers/cli,timeout=500" "$tmp/back" >/dev/null 2>"$tmp/err"
[ $? = 1 ] && grep -q "on 127.0.0.1:${ports[$dead]}: server error" "$tmp/err" ||
	fail "a dead server: $(cat "$tmp/err")"
[ ! -e "$tmp/back" ] || fail "an image was left from a dead server"
kill -9 "${pids[$live]}"
wait "${pids[$live]}" 2>/dev/null
"$upager" image create "memcached:$servers/cli,timeout=500" "$tmp/back" >/dev/null 2>"$tmp/err"
[ $? = 1 ] && grep -q "reading cli/meta on 127.0.0.1:${ports[$live]}" "$tmp/err" ||
	fail "the meta record's server dead: $(cat "$tmp/err")"
exit 0
