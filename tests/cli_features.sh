#!/bin/bash
# `upager features --json` is valid JSON that names every feature bit the
# kernel reported (features_mask), agrees with the text form, and lists
# the memory types and the open path.
build=$1
. "$(dirname "$0")/lib.sh"

"$upager" features --json >"$tmp/f.json" || fail "features --json exited $?"
"$upager" features >"$tmp/f.txt" || fail "features exited $?"
python3 - "$tmp/f.json" "$tmp/f.txt" <<'PY' || exit 1
import json, sys
j = json.load(open(sys.argv[1]))
txt = open(sys.argv[2]).read()
mask = j["features_mask"]
assert mask != 0, "no features reported"
on = {k for k, v in j["features"].items() if v}
names = list(j["features"].keys())
for bit in range(64):
    if mask >> bit & 1:
        # every reported bit is named (known name or bitN) and true
        assert any(j["features"][n] for n in names), bit
assert len(on) == bin(mask).count("1"), (on, mask)
for n in on:
    assert f"  {n} " in txt and "yes" in txt, n
assert j["open_path"] in ("syscall", "syscall-user-mode-only", "/dev/userfaultfd")
for t in ("anon", "shmem", "hugetlb"):
    assert t in j["memory_types"], t
assert j["memory_types"]["anon"]["missing"] is True
assert "API" in j["ioctls"] and "REGISTER" in j["ioctls"]
for k in ("euid", "cap_sys_ptrace", "unprivileged_userfaultfd"):
    assert k in j["privileges"], k
assert j["thp"] in ("always", "madvise", "never", "unknown")
print("features:", ", ".join(sorted(on)))
PY
"$upager" features --bogus 2>/dev/null; [ $? = 2 ] || fail "unknown option: want exit 2"
"$upager" nosuch 2>"$tmp/err"; [ $? = 2 ] || fail "unknown command: want exit 2"
grep -q "unknown command 'nosuch'" "$tmp/err" || fail "unknown command message"
exit 0
