#!/bin/bash
# bench/dirty-track in a small run: every row and scan is printed, in the
# table and as JSON, with positive numbers; a scan reports the pages
# written (none, 1 in 64, all); a tracked first write costs more than an
# untracked one in the same run (a fault against a store: a ratio, not a
# timing); bad arguments exit 2 naming them.  The program checks its own
# data (exit 1 on a wrong page or a wrong dirty count).
build=$1
. "$(dirname "$0")/lib.sh"
bench=$build/bench/dirty-track
[ -x "$bench" ] || fail "$bench is not built"
command -v python3 >/dev/null || skip "python3 is not installed"

json_run "$bench" --quick --json --size 4M --scan-size 192M
python3 - "$tmp/out.json" <<'PY' || fail "the JSON output: $(cat "$tmp/out.json")"
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
ids = ["untracked", "kernel_fault", "wp_sync", "wp_sync_spin", "wp_async",
       "upager", "upager_track"]
rows = {r["id"]: r for r in d["rows"]}
if [r["id"] for r in d["rows"]] != ids:
    bad.append(f"rows {list(rows)}")
for i, r in rows.items():
    if "skipped" in r:
        bad.append(f"{i}: skipped: {r['skipped']}")
        continue
    for k in ("ns_per_page", "p50_ns", "p99_ns", "vs_untracked",
              "vs_kernel_fault"):
        if not r.get(k, 0) > 0:
            bad.append(f"{i}: {k} = {r.get(k)!r}")
    if r.get("p99_ns", 0) < r.get("p50_ns", 0):
        bad.append(f"{i}: p99 under p50")
for i in ("wp_sync", "wp_sync_spin", "wp_async"):
    if not rows[i].get("protect_ms_per_gib", 0) > 0:
        bad.append(f"{i}: protect_ms_per_gib")
# A fault round trip against a plain store, side by side.
for slow, fast in (("wp_sync", "untracked"), ("upager_track", "upager")):
    if all("ns_per_page" in rows[x] for x in (slow, fast)) and \
       not rows[slow]["ns_per_page"] > rows[fast]["ns_per_page"]:
        bad.append(f"{slow} not above {fast}")
pages = d["scan_size"] // 4096
want = {"clean": (0, 0), "sparse": (pages // 64, pages // 64), "all": (pages, 1)}
got = [(s["id"], s["reset"]) for s in d["scans"]]
if got != [(i, r) for i in ("clean", "sparse", "all") for r in (False, True)]:
    bad.append(f"scans {got}")
for s in d["scans"]:
    if (s["pages"], s["regions"]) != want[s["id"]]:
        bad.append(f"scan {s['id']}: {s['pages']} pages, {s['regions']} regions")
    if not s["ms"] > 0 or not s["ms_per_gib"] > 0:
        bad.append(f"scan {s['id']}: ms")
for b in bad:
    print("JSON:", b)
sys.exit(1 if bad else 0)
PY

"$bench" --quick --size 4M --scan-size 192M >"$tmp/out.txt" 2>/dev/null ||
	fail "dirty-track --quick exited $?"
for w in "first write to each 4 KiB page of 4 MiB" "PAGEMAP_SCAN of 192 MiB" \
	untracked kernel_fault wp_sync wp_sync_spin wp_async upager upager_track \
	clean sparse all; do
	grep -q "^$w\|$w" "$tmp/out.txt" || fail "the table has no '$w': $(cat "$tmp/out.txt")"
done

refused "--size '3x'" "$bench" --size 3x
refused "multiples of 256 KiB" "$bench" --size 1100K
refused "--rounds '0'" "$bench" --rounds 0
refused "unknown option '--bogus'" "$bench" --bogus
refused "unexpected argument 'extra'" "$bench" extra
refused "--size needs a value" "$bench" --size
"$bench" --help | grep -q "^usage: dirty-track" || fail "--help"
exit 0
