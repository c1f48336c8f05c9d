#!/bin/bash
# `upager-bench --quick --json` runs every section and prints one JSON
# object with every row, its numbers positive; bad arguments are refused
# with a message naming them; `upager bench` runs the same program with
# the same arguments.  No timing thresholds: this checks the benchmark,
# and that the engine it drives returns the right bytes (the bench exits
# 1 on a content mismatch), not the speed of the machine.
build=$1
. "$(dirname "$0")/lib.sh"
bench=$build/bench/upager-bench  # what `upager bench` runs
[ -x "$bench" ] || fail "$bench is not built"
command -v python3 >/dev/null || skip "python3 is not installed"

"$bench" --quick --json --dir "$tmp" >"$tmp/out.json" 2>"$tmp/err"
rc=$?
cat "$tmp/err"
if [ $rc != 0 ]; then
	grep -q "cannot open a userfaultfd" "$tmp/err" &&
		skip "userfaultfd is not available to this process"
	fail "upager-bench --quick --json exited $rc"
fi
# One progress line per section on stderr.
for s in A B C; do
	grep -q "^upager bench: \[$s\]" "$tmp/err" || fail "no progress line for $s"
done

python3 - "$tmp/out.json" <<'EOF' || fail "the JSON output"
import json, sys

d = json.load(open(sys.argv[1]))
bad = []

def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)

def positive(row, keys, where):
    for k in keys:
        if not num(row.get(k)) or row[k] <= 0:
            bad.append(f"{where}: {k} = {row.get(k)!r}, want a positive number")

def rows(section, key, ids, where):
    got = [r.get("id") for r in d.get(section, {}).get(key, [])]
    if got != ids:
        bad.append(f"{where}: rows {got}, want {ids}")
    return d.get(section, {}).get(key, [])

if d.get("bench") != "upager-bench" or d.get("quick") is not True:
    bad.append("header: bench/quick")
if not num(d.get("machine", {}).get("nproc")):
    bad.append("machine.nproc")

a_ids = ["kernel", "kernel_read", "bare", "handler_1", "handler_2",
         "handler_2_one", "handler_2_pin", "handler_1_poll", "bare_sigbus",
         "inthread"]
for r in rows("A", "rows", a_ids, "A"):
    positive(r, ["p50_us", "p99_us", "faults_per_s"], "A " + r["id"])
    if r["id"] not in ("kernel", "bare"):
        positive(r, ["ratio"], "A " + r["id"])
for r in rows("D", "rows", a_ids, "D"):
    positive(r, ["faults_per_run"], "D " + r["id"])
    for k, v in r.items():
        if k != "id" and (not num(v) or v < 0):
            bad.append(f"D {r['id']}: {k} = {v!r}, want a number >= 0")
    if r["id"] in ("bare", "handler_1", "handler_2", "handler_2_one",
                   "handler_2_pin", "handler_1_poll"):
        positive(r, ["server_reads_per_fault", "server_cpu_us_per_fault"],
                 "D " + r["id"])

for r in rows("B", "rows", ["kernel", "kernel_read", "upager_ra_2",
                            "upager_ra_1"], "B"):
    positive(r, ["gib_per_s", "faults_per_run"], "B " + r["id"])
    if r["id"] != "kernel":
        positive(r, ["ratio"], "B " + r["id"])

seq = ["mmap_private", "mmap_shared", "region_4k_1", "region_4k_2",
       "region_64k_1", "region_64k_2", "region_2m_1", "region_2m_2",
       "region_huge_1", "region_huge_2", "mmap_private_bytesum",
       "region_4k_2_bytesum", "floor_populate", "floor_populate_thp",
       "shm_mmap", "shm_region", "shm_region_fa64k", "shm_region_fa256k"]
rnd = ["mmap_private", "mmap_shared", "region_4k", "region_64k",
       "region_4k_inthread", "shm_mmap", "shm_region", "shm_region_fa64k",
       "shm_region_fa256k"]
bases = ("mmap_private", "mmap_private_bytesum", "shm_mmap")
for key, ids, unit in (("seq", seq, "gib_per_s"), ("random", rnd, "reads_per_s")):
    want = [i for c in ("warm", "cold") for i in ids]
    for r in rows("C", key, want, "C " + key):
        where = f"C {key} {r.get('cache')} {r['id']}"
        if r.get("skipped") is True:
            # hugetlb without pages; tmpfs is never cold
            if not (r["id"].startswith("region_huge") or
                    (r["id"].startswith("shm_") and r["cache"] == "cold")):
                bad.append(f"{where}: skipped")
            continue
        positive(r, [unit, "peak_rss_mib"], where)
        if r["id"] not in bases:
            positive(r, ["ratio", "rss_ratio"], where)
    caches = [r.get("cache") for r in d.get("C", {}).get(key, [])]
    if caches != ["warm"] * len(ids) + ["cold"] * len(ids):
        bad.append(f"C {key}: cache labels {caches}")

t_ids = ["handler_1_p50_vs_bare", "handler_2_p50_vs_bare",
         "inthread_p50_vs_kernel", "file_seq_warm_vs_mmap",
         "file_seq_warm_best_vs_mmap", "file_seq_cold_vs_mmap",
         "file_seq_cold_best_vs_mmap", "demand_paging_vs_kernel",
         "file_random_warm_vs_mmap", "file_seq_warm_vs_floor",
         "peak_rss_vs_mmap", "shm_seq_vs_mmap", "shm_random_vs_mmap"]
for c in ("floor_warm", "floor_cold"):
    positive(d.get("C", {}).get(c, {}), ["gib_per_s", "vs_mmap",
                                         "region_defaults_vs_floor"], "C " + c)
got = [t.get("id") for t in d.get("targets", [])]
if got != t_ids:
    bad.append(f"targets: {got}, want {t_ids}")
for t in d.get("targets", []):
    positive(t, ["ratio", "goal"], "target " + t["id"])
    if not isinstance(t.get("met"), bool) or t.get("cmp") not in ("<=", ">="):
        bad.append(f"target {t['id']}: met/cmp")

for b in bad:
    print("JSON:", b)
sys.exit(1 if bad else 0)
EOF

# --only runs one section and prints only its objects.
"$bench" --quick --json --only B >"$tmp/b.json" 2>/dev/null || fail "--only B exited $?"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
sys.exit(0 if "B" in d and not {"A", "C", "D"} & set(d) else 1)' "$tmp/b.json" ||
	fail "--only B: want the B object alone"

# Each bad argument exits 2 with a message that names it.
bad_arg() {
	local want=$1
	shift
	"$bench" "$@" >/dev/null 2>"$tmp/err"
	[ $? = 2 ] || fail "$*: want exit 2"
	grep -q -- "$want" "$tmp/err" || fail "$*: message: $(cat "$tmp/err")"
}
bad_arg "--size '3x' is not a size" --size 3x
bad_arg "--size '3M': want a multiple of 2M" --size 3M
bad_arg "--only 'Z': want A, B or C" --only Z
bad_arg "--rounds '0': want a number from 1 to" --rounds 0
bad_arg "--dir '$tmp/none'" --dir "$tmp/none"
bad_arg "unknown option '--bogus'" --bogus
bad_arg "unexpected argument 'extra'" extra
bad_arg "--size needs a value" --size
# --umap: the UMap-comparable rows only (here at a small --size).
"$bench" --json --umap --size 16M --rounds 1 --dir "$tmp" >"$tmp/u.json" \
	2>/dev/null || fail "--umap exited $?"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
c = d["C"]; ids = [r["id"] for r in c["seq"] if not r.get("skipped")]
sys.exit(0 if c["umap"] and set(d) >= {"C"} and not {"A", "B"} & set(d)
         and "region_4k_2" in ids and "shm_region" not in ids else 1)' \
	"$tmp/u.json" || fail "--umap: want C alone, its rows only"
"$bench" --help | grep -q "^usage: upager bench" || fail "--help"

# `upager bench` is the same program: same help, same refusals.
"$bench" --help >"$tmp/h1" && "$upager" bench --help >"$tmp/h2" ||
	fail "upager bench --help"
cmp -s "$tmp/h1" "$tmp/h2" || fail "upager bench --help differs from upager-bench's"
"$upager" bench --only Z >/dev/null 2>"$tmp/err"
[ $? = 2 ] && grep -q -- "--only 'Z': want A, B or C" "$tmp/err" ||
	fail "upager bench --only Z: $(cat "$tmp/err")"
exit 0
