#!/bin/bash
# bench/snapshot in a small run (a 16 MiB region): the fork, upager,
# upager_incremental and alone rows are printed, in the table and as JSON,
# with a longest stall, write rates and a peak RSS; alone writes for as
# long as the longest snapshot took; upager's full snapshot saved
# every unit and the incremental one some, not more; no image is left
# behind; with --rounds 2 the medians are those of the rounds; bad
# arguments exit 2 naming them.  The program reads every image
# back (exit 1 on a zero, torn or too new page).
build=$1
. "$(dirname "$0")/lib.sh"
bench=$build/bench/snapshot
[ -x "$bench" ] || fail "$bench is not built"
command -v python3 >/dev/null || skip "python3 is not installed"

small=(--quick --dir "$tmp" --size 16M --before 0.2)
json_run "$bench" "${small[@]}" --json
python3 - "$tmp/out.json" <<'PY' || fail "the JSON output: $(cat "$tmp/out.json")"
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
rows = {r["id"]: r for r in d["rows"]}
if list(rows) != ["fork", "upager", "upager_incremental", "alone"]:
    bad.append(f"rows {list(rows)}")
for i, r in rows.items():
    keys = ["snapshot_s", "max_stall_us", "stall_vs_fork", "peak_rss_kib"]
    if i != "alone":
        keys += ["max_stall_us_before", "protect_ms"]
    for k in keys:
        if not r.get(k, 0) > 0:
            bad.append(f"{i}: {k} = {r.get(k)!r}")
    # A short window on a busy machine may see no write at all.
    for k in ("writes_per_s", "writes_per_s_before", "stalls_over_1ms"):
        if not r.get(k, -1) >= 0:
            bad.append(f"{i}: {k} = {r.get(k)!r}")
units = d["size"] // 4096
if rows["upager"]["units"] != units:
    bad.append(f"upager: {rows['upager']['units']} units, want {units}")
if not 0 < rows["upager_incremental"]["units"] <= units:
    bad.append(f"upager_incremental: {rows['upager_incremental']['units']} units")
for i in ("upager", "upager_incremental"):
    if rows[i]["units_early"] > rows[i]["units"]:
        bad.append(f"{i}: units_early")
longest = max(rows[i]["snapshot_s"] for i in ("fork", "upager", "upager_incremental"))
if rows["alone"]["snapshot_s"] < longest * 0.999:  # printed with %.6g
    bad.append(f"alone: {rows['alone']['snapshot_s']} s, the longest snapshot {longest} s")
for b in bad:
    print("JSON:", b)
sys.exit(1 if bad else 0)
PY
ls "$tmp"/upager-snapshot-* 2>/dev/null && fail "the image was left behind"

# Two rounds: each round's rows, and the medians over them.
json_run "$bench" "${small[@]}" --rounds 2 --json
python3 - "$tmp/out.json" <<'PY' || fail "the JSON of 2 rounds: $(cat "$tmp/out.json")"
import json, statistics, sys
d = json.load(open(sys.argv[1]))
each = [{r["id"]: r for r in k["rows"]} for k in d["each_round"]]
med = {r["id"]: r for r in d["median"]}
bad = []
if d["rounds"] != 2 or len(each) != 2:
    bad.append(f"rounds {d['rounds']}, {len(each)} of them")
for i in ("fork", "upager", "upager_incremental", "alone"):
    want = statistics.median(k[i]["max_stall_us"] for k in each)
    if abs(med[i]["max_stall_us"] - want) > 1:
        bad.append(f"{i}: median {med[i]['max_stall_us']}, want {want}")
    want = statistics.median(k[i]["max_stall_us"] / k["fork"]["max_stall_us"]
                             for k in each)
    if abs(med[i]["stall_vs_fork"] - want) > 1e-5 * want:  # %.6g
        bad.append(f"{i}: median ratio {med[i]['stall_vs_fork']}, want {want}")
for b in bad:
    print("JSON:", b)
sys.exit(1 if bad else 0)
PY

"$bench" "${small[@]}" >"$tmp/out.txt" 2>/dev/null || fail "snapshot exited $?"
for w in "snapshot of a 16 MiB region" fork upager upager_incremental alone "units saved" \
	"fork's longest stall is"; do
	grep -q "$w" "$tmp/out.txt" || fail "the table has no '$w': $(cat "$tmp/out.txt")"
done

refused "--size '3x'" "$bench" --size 3x
refused "--size: want whole 4 KiB pages" "$bench" --size 1049000
refused "--before '0'" "$bench" --before 0
refused "--rounds '0'" "$bench" --rounds 0
refused "--dir '$tmp/none'" "$bench" --dir "$tmp/none"
refused "unknown option '--bogus'" "$bench" --bogus
refused "unexpected argument 'extra'" "$bench" extra
"$bench" --help | grep -q "^usage: snapshot" || fail "--help"
exit 0
