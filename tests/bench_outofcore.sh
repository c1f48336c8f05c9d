#!/bin/bash
# bench/outofcore in a small run (a 32 MiB file, 8 MiB per row): every
# workload and row is printed, in the table and as JSON, with accesses
# counted, a hit rate in [0, 1], a peak RSS, and a memory cgroup that
# held no more than the budget; the cgroups made for the rows are gone
# afterwards; bad arguments exit 2 naming them.  The program checks every
# access (a wrong page, or a counter that lost a write through eviction
# and write-back, is exit 1).  Needs root and the cgroup v1 memory
# controller.
build=$1
. "$(dirname "$0")/lib.sh"
bench=$build/bench/outofcore
[ -x "$bench" ] || fail "$bench is not built"
command -v python3 >/dev/null || skip "python3 is not installed"
[ -w /sys/fs/cgroup/memory ] || skip "no writable cgroup v1 memory controller"

small=(--quick --dir "$tmp" --size 32M --budget 8M --seconds 0.3 --warmup 0.3 --warmup-max 5)
json_run "$bench" "${small[@]}" --json
python3 - "$tmp/out.json" <<'PY' || fail "the JSON output: $(cat "$tmp/out.json")"
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
works = ["read_zipf", "read_uniform", "rw_zipf", "rw_uniform"]
ids = ["kernel", "upager_auto", "upager_fifo"]
got = sorted((r["workload"], r["id"]) for r in d["rows"])
if got != sorted((w, i) for w in works for i in ids):
    bad.append(f"rows {got}")
for r in d["rows"]:
    where = f"{r['workload']} {r['id']}"
    for k in ("accesses_per_s", "accesses", "vs_kernel", "peak_rss_kib",
              "cgroup_peak"):
        if not r.get(k, 0) > 0:
            bad.append(f"{where}: {k} = {r.get(k)!r}")
    if not 0 <= r.get("hit_rate", -1) <= 1:
        bad.append(f"{where}: hit_rate {r.get('hit_rate')!r}")
    if r["cgroup_peak"] > d["cgroup_limit"]:
        bad.append(f"{where}: the cgroup held {r['cgroup_peak']}")
    if r["id"] == "kernel" and r["vs_kernel"] != 1:
        bad.append(f"{where}: vs_kernel {r['vs_kernel']}")
if d["size"] != 32 << 20 or d["budget"] != 8 << 20 or d["cache"] != "cold":
    bad.append("header")
for b in bad:
    print("JSON:", b)
sys.exit(1 if bad else 0)
PY
ls -d /sys/fs/cgroup/memory/upager-outofcore-* 2>/dev/null &&
	fail "a row's cgroup was left behind"

# The file is kept and used again; one row in text.
"$bench" "${small[@]}" --rows kernel --cache warm >"$tmp/out.txt" 2>/dev/null ||
	fail "outofcore --rows kernel --cache warm exited $?"
[ "$(grep -c "^[a-z_]* *kernel " "$tmp/out.txt")" = 4 ] && grep -q "page cache warm" "$tmp/out.txt" &&
	! grep -q upager_ "$tmp/out.txt" || fail "the table: $(cat "$tmp/out.txt")"

refused "--size '3x'" "$bench" --size 3x
refused "--budget: want whole pages, less than --size" "$bench" --size 8M --budget 8M
refused "--rows: no row 'mmap'" "$bench" --rows kernel,mmap
refused "--cache 'hot'" "$bench" --cache hot
refused "--seconds '0'" "$bench" --seconds 0
refused "--dir '$tmp/none'" "$bench" --dir "$tmp/none"
refused "unknown option '--bogus'" "$bench" --bogus
refused "unexpected argument 'extra'" "$bench" extra
"$bench" --help | grep -q "^usage: outofcore" || fail "--help"
exit 0
