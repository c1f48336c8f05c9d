#!/bin/bash
# `upagerd-bench --quick --json` runs both sections and prints one JSON
# object, its numbers positive: L (a client of the manager and the same
# store in-process, read-ahead off: the bench itself exits 1 unless the
# manager took a fault for every page, so an export's read-ahead and
# fault-around settings are honoured) and R (a restore on demand, with
# 4 KiB faults only: a fault per working-set page, and replayed: no more
# faults than that).  Every page read is checked by the bench (exit 1 on
# a wrong one).  Bad arguments are refused.  No timing thresholds.
build=$1
. "$(dirname "$0")/lib.sh"
bench=$build/bench/upagerd-bench
[ -x "$bench" ] || fail "$bench is not built"
command -v python3 >/dev/null || skip "python3 is not installed"

"$bench" --quick --json --dir "$tmp" >"$tmp/out.json" 2>"$tmp/err" ||
	fail "upagerd-bench --quick --json exited $?: $(cat "$tmp/err")"
python3 - "$tmp/out.json" <<'PY' || fail "the JSON output: $(cat "$tmp/out.json")"
import json, sys
d = json.load(open(sys.argv[1]))
lat, res = d["latency"], d["restore"]
for k in ("inprocess_p50_us", "inprocess_p99_us", "manager_p50_us", "manager_p99_us"):
    assert lat[k] > 0, k
n = res["working_set_pages"]
assert n == res["image_bytes"] // 4096 // 4, res
assert res["demand_4k_faults"] == n, res
assert 0 < res["demand_faults"] <= n, res
assert 0 <= res["replay_faults"] <= n, res
for k in ("demand_ms", "demand_4k_ms", "replay_ms"):
    assert res[k] > 0, k
PY
ls "$tmp"/upagerd-bench.* 2>/dev/null && fail "the bench left files behind"
"$bench" --rounds 0 >/dev/null 2>"$tmp/err" && fail "--rounds 0 accepted"
grep -q -- "--rounds '0' is out of range" "$tmp/err" || fail "--rounds 0: $(cat "$tmp/err")"
"$bench" --help | grep -q "^usage: upagerd-bench" || fail "--help"
exit 0
