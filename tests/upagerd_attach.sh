#!/bin/bash
# upager's own attach protocol against a real upagerd: a client maps
# memory and calls upager_attach() (tests/upagerd_peer.c, mode attach):
# every page reads as the export, a page dropped with MADV_DONTNEED reads
# the export again (REMOVE policy refetch).  Then a fork tree: the client
# forks two children, each forks one, all five read and write their
# pages; every byte is checked against the image or what its writer put
# there (the daemon adopts the children's uffds: EVENT_FORK).  The
# daemon's statistics count the forks it followed (--json).  And a client
# that moves its region with mremap() and unmaps half of it reads right
# throughout, and leaves nothing behind in the daemon.
build=$1
. "$(dirname "$0")/lib.sh"

peer mkimg "$tmp/img" 512 || fail "image"
start_upagerd --listen "$tmp/at.sock" --stats-name "upagerd-t$$" img=file:"$tmp/img"
timeout 60 "$build/tests/upagerd_peer" attach "$tmp/at.sock" img 512 ||
	fail "attach: exit $?"
log_has "attach on $tmp/at.sock) attached: 1 regions of 'img'"
log_has "attach on $tmp/at.sock) gone: "
timeout 60 "$build/tests/upagerd_peer" forktree "$tmp/at.sock" img 512 ||
	fail "forktree: exit $?"
timeout 60 "$build/tests/upagerd_peer" remap "$tmp/at.sock" img 512 ||
	fail "remap: exit $?"
# The last client's exit reaches the daemon after the client is gone:
# ask until it is counted.
want='^connections 3, attached 3, refused 0, gone 3; clients now 0 (0 regions)'
for _ in $(seq 100); do
	kill -USR1 "$daemon"
	sleep 0.05
	grep -q "$want" "$tmp/upagerd.out" && break
done
grep -q "$want" "$tmp/upagerd.out" ||
	fail "statistics: $(cat "$tmp/upagerd.out")"
stop_upagerd
grep -q refused "$tmp/upagerd.log" && fail "a refusal: $(cat "$tmp/upagerd.log")"

# Forks followed: the children's copies were adopted (the engine's
# counter, summed over the handler).
start_upagerd --listen "$tmp/at.sock" --json img=file:"$tmp/img"
timeout 60 "$build/tests/upagerd_peer" forktree "$tmp/at.sock" img 512 ||
	fail "forktree (json): exit $?"
stop_upagerd
python3 - "$tmp/upagerd.out" "$tmp/upagerd.log" <<'PY' || fail "json: $(cat "$tmp/upagerd.out" "$tmp/upagerd.log")"
import json, sys
out = [json.loads(l) for l in open(sys.argv[1])]
log = [json.loads(l) for l in open(sys.argv[2])]
m = [r for r in out if r["record"] == "manager"][-1]
assert m["attached"] == 1 and m["refused"] == 0, m
assert m["total"]["forks"] >= 4, m["total"]
kinds = [r["event"] for r in log]
assert kinds[0] == "listen" and "attached" in kinds and "gone" in kinds, kinds
a = [r for r in log if r["event"] == "attached"][0]
assert a["protocol"] == "attach" and a["export"] == "img" and a["regions"] == 1, a
PY
exit 0
