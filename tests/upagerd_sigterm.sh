#!/bin/bash
# SIGTERM while a client is in the middle of its faults: the client
# (tests/upagerd_peer.c, mode stream) reads 64 MiB scattered and slowly;
# upagerd is stopped meanwhile.  Every page the client got is the
# image's, and the first page it did not get raises SIGBUS (what was
# never filled is poisoned), never zeros, never a hang; upagerd exits 0
# and logs the release.  While the client is attached, `upager stat`
# shows its region by export and pid: per-client statistics.
build=$1
. "$(dirname "$0")/lib.sh"

npages=16384
peer mkimg "$tmp/img" $npages || fail "image"
start_upagerd --listen "$tmp/at.sock" --stats-name "sigterm-$$" img=file:"$tmp/img"
timeout 60 "$build/tests/upagerd_peer" stream "$tmp/at.sock" img $npages >"$tmp/client" 2>&1 &
client=$!
for _ in $(seq 100); do grep -q '^attached' "$tmp/client" && break; sleep 0.05; done
pid=$(awk '/^attached/ {print $2}' "$tmp/client")
[ -n "$pid" ] || fail "the client did not attach: $(cat "$tmp/client")"
"$upager" stat --json "$daemon" >"$tmp/stat.json" || fail "upager stat"
python3 - "$tmp/stat.json" "$pid" <<'PY' || fail "upager stat: $(cat "$tmp/stat.json")"
import json, sys
[h] = json.load(open(sys.argv[1]))["handlers"]
assert h["name"].startswith("sigterm-"), h["name"]
r = [r for r in h["regions"] if r["store"] == "img pid " + sys.argv[2]]
assert len(r) == 1 and r[0]["len"] == 16384 * 4096, h["regions"]
PY
sleep 0.3
stop_upagerd
wait $client || fail "the client failed (exit $?): $(cat "$tmp/client")"
grep -q "^SIGBUS after [0-9]* of $npages pages\|^all $npages pages read" "$tmp/client" ||
	fail "client: $(cat "$tmp/client")"
cat "$tmp/client"
log_has "released: released at shutdown"
exit 0
