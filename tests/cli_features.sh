#!/bin/bash
# `upager features --json` is valid JSON that names every feature bit the
# kernel reported (features_mask), says for each whether this process may
# use it, may not for lack of a privilege (and which), or the kernel lacks
# it; it agrees with the text form and lists the memory types and the
# open path.  Run again as user nobody (no capabilities): anon memory is
# still registrable, and EVENT_FORK, which the kernel refuses without
# CAP_SYS_PTRACE, is reported as refused for that reason without hiding
# any other feature.
build=$1
. "$(dirname "$0")/lib.sh"

# check JSON TEXT: what holds for any user.
check() {
	python3 - "$1" "$2" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
txt = open(sys.argv[2]).read()
mask, avail = j["features_mask"], j["available_mask"]
assert mask != 0, "no features reported"
assert avail & ~mask == 0, ("available but not reported", avail, mask)
feats = j["features"]
for name, f in feats.items():
    bit = f["bit"]
    want = ("available" if avail >> bit & 1 else
            "absent" if not mask >> bit & 1 else f["status"])
    assert f["status"] == want, (name, f, want)
    assert f["status"] in ("available", "refused", "absent", "failed"), f
    if f["status"] == "refused":
        assert f.get("privilege"), ("refused without a privilege", name, f)
    line = [l for l in txt.splitlines() if l.startswith(f"  {name} ")]
    assert len(line) == 1, (name, line)
    word = line[0].split()[1].rstrip(":")
    assert word == ("yes" if f["status"] == "available" else "no"), line
    if "privilege" in f:
        assert f["privilege"] in line[0], line
for bit in range(64):
    if mask >> bit & 1:
        assert any(f["bit"] == bit for f in feats.values()), bit
assert j["open_path"] in ("syscall", "syscall-user-mode-only", "/dev/userfaultfd")
for t in ("anon", "shmem", "hugetlb"):
    assert t in j["memory_types"], t
assert j["memory_types"]["anon"]["missing"] is True, j["memory_types"]
assert "API" in j["ioctls"] and "REGISTER" in j["ioctls"]
for k in ("euid", "cap_sys_ptrace", "unprivileged_userfaultfd"):
    assert k in j["privileges"], k
assert j["thp"] in ("always", "madvise", "never", "unknown")
# The kernel refuses EVENT_FORK without CAP_SYS_PTRACE.
fork = feats["EVENT_FORK"]
if mask >> fork["bit"] & 1:
    assert fork["privilege"] == "CAP_SYS_PTRACE", fork
    want = "available" if j["privileges"]["cap_sys_ptrace"] else "refused"
    assert fork["status"] == want, fork
print("euid %d: %s" % (j["privileges"]["euid"], ", ".join(
    f"{n}={f['status']}" for n, f in feats.items())))
PY
}

"$upager" features --json >"$tmp/f.json" || fail "features --json exited $?"
"$upager" features >"$tmp/f.txt" || fail "features exited $?"
check "$tmp/f.json" "$tmp/f.txt" || fail "features as $(id -un)"

"$upager" features --bogus 2>/dev/null; [ $? = 2 ] || fail "unknown option: want exit 2"
"$upager" nosuch 2>"$tmp/err"; [ $? = 2 ] || fail "unknown command: want exit 2"
grep -q "unknown command 'nosuch'" "$tmp/err" || fail "unknown command message"

# As nobody, with no capabilities.  The binary must be reachable by that
# user: run a copy from the scratch directory (the tree may not be).
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null ||
	{ echo "not root: the unprivileged run is left out"; exit 0; }
chmod 755 "$tmp"
cp "$upager" "$tmp/upager"
chmod 755 "$tmp/upager"
asnobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		"$tmp/upager" "$@"
}
asnobody features --json >"$tmp/n.json" 2>"$tmp/n.err"
rc=$?
if [ $rc != 0 ] && grep -q "cannot open a userfaultfd" "$tmp/n.err"; then
	echo "nobody cannot open a userfaultfd here: $(cat "$tmp/n.err")"
	exit 0
fi
[ $rc = 0 ] || fail "features --json as nobody exited $rc: $(cat "$tmp/n.err")"
asnobody features >"$tmp/n.txt" || fail "features as nobody exited $?"
cat "$tmp/n.txt"
check "$tmp/n.json" "$tmp/n.txt" || fail "features as nobody"
python3 - "$tmp/n.json" <<'PY' || fail "features as nobody"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["privileges"]["euid"] == 65534 and not j["privileges"]["cap_sys_ptrace"]
assert j["features"]["EVENT_FORK"]["status"] == "refused", j["features"]["EVENT_FORK"]
# One refused feature hides no other.
for n in ("EVENT_REMOVE", "EVENT_UNMAP", "EVENT_REMAP", "THREAD_ID"):
    f = j["features"][n]
    assert f["status"] in ("available", "absent"), (n, f)
PY
grep -q "^  EVENT_FORK  *no.*needs CAP_SYS_PTRACE" "$tmp/n.txt" ||
	fail "text as nobody: EVENT_FORK does not say it needs CAP_SYS_PTRACE"
exit 0
