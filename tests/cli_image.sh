#!/bin/bash
# `upager image`: create from file:, mem: and remote: specs with both
# codecs and several chunk sizes; cat gives back the source byte for byte;
# info's text and --json agree with the image (sizes, ratio, chunk counts,
# a histogram that adds up); verify passes a good image and fails (exit 1,
# naming the chunk) one with a flipped byte, and one cut short (naming the
# truncation), as cat and info do; an existing image is replaced only with
# --force; a store that fails (a remote: server gone) leaves no image; bad
# arguments exit 2 naming them.
build=$1
. "$(dirname "$0")/lib.sh"

# 3 MiB like memory: text pages, random pages, zero pages, a zero MiB.
memory_like "$tmp/src" 768 256 512

# create ARGS...: must exit 0 and print its summary line.
create() {
	"$upager" image create "$@" >"$tmp/out" 2>"$tmp/err" ||
		fail "image create $*: exit $?: $(cat "$tmp/err")"
	grep -q "ratio" "$tmp/out" || fail "image create $*: no summary: $(cat "$tmp/out")"
}
# same IMAGE FILE: cat IMAGE must give FILE.
same() {
	"$upager" image cat "$1" >"$tmp/cat" || fail "image cat $1: exit $?"
	cmp -s "$tmp/cat" "$2" || fail "image cat $1 differs from $2"
}

for args in "" "--codec lz4" "--codec lz4 --level 9 --chunk 4K" \
	"--codec zstd --level 19 --chunk 256K" "--chunk 16384 --level -5"; do
	create $args file:"$tmp/src" "$tmp/img" --force
	same "$tmp/img" "$tmp/src"
	"$upager" image verify "$tmp/img" >"$tmp/out" ||
		fail "verify ($args): exit $?"
	grep -q " 0 bad" "$tmp/out" || fail "verify ($args): $(cat "$tmp/out")"
done

# info, text and JSON, of the last image: 16 KiB chunks, zstd -5.
"$upager" image info "$tmp/img" >"$tmp/info.txt" || fail "info: exit $?"
"$upager" image info --json "$tmp/img" >"$tmp/info.json" || fail "info --json: exit $?"
python3 - "$tmp/info.json" "$tmp/info.txt" "$tmp/img" <<'PY' || fail "info: $(cat "$tmp/info.json")"
import json, os, sys
j = json.load(open(sys.argv[1]))
txt = open(sys.argv[2]).read()
assert j["codec"] == "zstd" and j["level"] == -5 and j["version"] == 1, j
assert j["chunk_size"] == 16384 and j["checksum"] == "xxh3-64", j
assert j["image_bytes"] == 3 << 20 and j["pages"] == 768, j
assert j["file_bytes"] == os.path.getsize(sys.argv[3]), j
assert j["chunks"] == 192, j
assert j["zero_chunks"] + j["raw_chunks"] + j["compressed_chunks"] == 192, j
assert j["zero_chunks"] == 64 and j["zero_pages"] == 256, j  # the zero MiB
assert abs(j["ratio"] - j["image_bytes"] / j["file_bytes"]) < 1e-3, j
assert 1.5 < j["ratio"] < 20, j
h = j["histogram"]
assert sum(b["chunks"] for b in h) == 192, h
assert h[0] == {"max_bytes": 0, "chunks": 64}, h
assert all(a["max_bytes"] < b["max_bytes"] for a, b in zip(h, h[1:])), h
assert "ratio %.2f" % j["ratio"] in txt, txt
assert "192: %d compressed, 64 zero" % j["compressed_chunks"] in txt, txt
PY

# mem: (all zeros: every chunk stored as nothing) and remote:.
create mem:1M "$tmp/zero.img"
head -c 1048576 /dev/zero >"$tmp/zero"
same "$tmp/zero.img" "$tmp/zero"
"$upager" image info --json "$tmp/zero.img" | python3 -c "
import json, sys; j = json.load(sys.stdin)
assert j['zero_chunks'] == j['chunks'] == 16 and j['file_bytes'] < 1024, j" ||
	fail "mem:1M image"
"$upager" serve --plaintext --listen tcp:127.0.0.1:0 img=file:"$tmp/src" >"$tmp/serve" 2>&1 &
spid=$!
for _ in $(seq 100); do [ -s "$tmp/serve" ] && break; sleep 0.05; done
addr=$(head -n1 "$tmp/serve")
[ -n "$addr" ] || { kill $spid; fail "serve printed no address"; }
create --codec lz4 "remote:127.0.0.1:${addr##*:}/img,plaintext" "$tmp/remote.img"
same "$tmp/remote.img" "$tmp/src"
kill -INT $spid
wait $spid

# An existing image is kept without --force.
"$upager" image create file:"$tmp/src" "$tmp/img" 2>"$tmp/err"
[ $? = 1 ] && grep -q "exists" "$tmp/err" || fail "create over an image: $(cat "$tmp/err")"
same "$tmp/img" "$tmp/src"
# A source that fails leaves nothing (the server is gone).
"$upager" image create "remote:127.0.0.1:${addr##*:}/img,deadline=1,plaintext" \
	"$tmp/none.img" >/dev/null 2>&1
[ $? = 1 ] || fail "create from a dead server: want exit 1"
[ -z "$(ls "$tmp" | grep none.img)" ] || fail "a failed create left $(ls "$tmp" | grep none.img)"

# A flipped byte in a compressed chunk: verify, cat and a JSON verify.
bad=$(python3 - "$tmp/img" "$tmp/bad.img" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack_from("<Q", b, 32)[0]
for i in range(n):
    off, csum, stored, word = struct.unpack_from("<QQII", b, 80 + 24 * i)
    if word >> 24 == 0 and i > 10:
        b[off + stored // 2] ^= 1
        break
open(sys.argv[2], "wb").write(b)
print(i)
PY
)
"$upager" image verify "$tmp/bad.img" >"$tmp/out" 2>"$tmp/err"
[ $? = 1 ] || fail "verify of a flipped byte: want exit 1"
grep -q "chunk $bad (pages .*checksum mismatch" "$tmp/err" || fail "verify: $(cat "$tmp/err")"
grep -q " 1 bad" "$tmp/out" || fail "verify: $(cat "$tmp/out")"
"$upager" image verify --json "$tmp/bad.img" 2>/dev/null >"$tmp/v.json"
python3 -c "
import json, sys; j = json.load(open('$tmp/v.json'))
assert j['bad_chunks'] == 1 and j['bad'][0]['chunk'] == $bad, j
assert 'checksum' in j['bad'][0]['error'], j" || fail "verify --json: $(cat "$tmp/v.json")"
"$upager" image cat "$tmp/bad.img" >/dev/null 2>"$tmp/err"
[ $? = 1 ] && grep -q "chunk $bad " "$tmp/err" || fail "cat of a bad chunk: $(cat "$tmp/err")"

# Cut short: refused before any chunk is read.
head -c -1 "$tmp/img" >"$tmp/cut.img"
for cmd in verify info; do
	"$upager" image $cmd "$tmp/cut.img" >/dev/null 2>"$tmp/err"
	[ $? = 1 ] && grep -q "truncated" "$tmp/err" || fail "$cmd of a cut image: $(cat "$tmp/err")"
done

# Bad arguments: exit 2, the message naming them.
bad_args() {
	local want=$1
	shift
	"$upager" image "$@" >/dev/null 2>"$tmp/err"
	local rc=$?
	[ $rc = 2 ] || fail "image $*: exit $rc, want 2"
	grep -q -- "$want" "$tmp/err" || fail "image $*: '$(cat "$tmp/err")' does not name '$want'"
}
bad_args "--codec 'gzip'" create --codec gzip file:"$tmp/src" "$tmp/x.img"
bad_args "--chunk 12K is not a power of two" create --chunk 12K file:"$tmp/src" "$tmp/x.img"
bad_args "--chunk '512K'" create --chunk 512K file:"$tmp/src" "$tmp/x.img"
bad_args "--level '99'" create --level 99 file:"$tmp/src" "$tmp/x.img"
bad_args "--level '0'" create --codec lz4 --level 0 file:"$tmp/src" "$tmp/x.img"
bad_args "--level '13'" create --codec lz4 --level 13 file:"$tmp/src" "$tmp/x.img"
bad_args "SPEC and IMAGE" create file:"$tmp/src"
bad_args "has no end" create zero "$tmp/x.img"
bad_args "a file is file:$tmp/src" create "$tmp/src" "$tmp/x.img"
bad_args "one IMAGE" info "$tmp/img" "$tmp/img"
bad_args "IMAGE is needed" verify
bad_args "unknown option" cat --json "$tmp/img"
bad_args "unknown command 'bogus'" bogus
for sub in create info verify cat; do
	"$upager" image $sub --help | grep -q "usage: upager image $sub" ||
		fail "image $sub --help"
done
"$upager" image --help | grep -q "usage: upager image" || fail "image --help"
exit 0
