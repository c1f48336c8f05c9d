#!/bin/bash
# upagerd's command line: --help; a --config file says what options say
# (a socket's mode and owner, an export, an allow-list, --json), and a
# client attaches through it; bad arguments exit 2 with a message that
# names them, a store that cannot be opened exits 1.
build=$1
. "$(dirname "$0")/lib.sh"

"$build/upagerd" --help | grep -q '^usage: upagerd' || fail "--help"
peer mkimg "$tmp/img" 64 || fail "image"
cat >"$tmp/conf" <<CONF
# a comment, then options without their dashes
listen $tmp/at.sock,mode=0640,owner=0:0
img=file:$tmp/img   # an export
allow img:uid:0,gid:4242
json
CONF
start_upagerd --config "$tmp/conf"
for _ in $(seq 200); do [ -S "$tmp/at.sock" ] && break; sleep 0.025; done
[ "$(stat -c %a "$tmp/at.sock")" = 640 ] || fail "mode: $(stat -c %a "$tmp/at.sock")"
timeout 60 "$build/tests/upagerd_peer" attach "$tmp/at.sock" img 64 >/dev/null ||
	fail "attach through the config's socket"
log_has '"event": "attached"'
stop_upagerd
grep -q '"record": "manager".*"attached": 1' "$tmp/upagerd.out" ||
	fail "json statistics: $(cat "$tmp/upagerd.out")"

# Bad arguments: exit 2, and the message names what was wrong.
bad() {
	want_msg=$1
	shift
	"$build/upagerd" "$@" >/dev/null 2>"$tmp/err" && fail "upagerd $* succeeded"
	rc=$?
	[ $rc = 2 ] || fail "upagerd $*: exit $rc, want 2 ($(cat "$tmp/err"))"
	grep -q -- "$want_msg" "$tmp/err" || fail "upagerd $*: $(cat "$tmp/err")"
	grep -q -- "Try 'upagerd --help'" "$tmp/err" || fail "upagerd $*: no hint"
}
s=$tmp/x.sock
bad "no socket" img=zero:1M
bad "nothing to export" --listen "$s"
bad "no store kind 'nosuch'" --listen "$s" img=nosuch
bad "two stores without a name" --firecracker "$s" zero:1M zero:2M
bad "which export" --firecracker "$s" a=zero:1M b=zero:1M
bad "no export 'c'" --firecracker "$s,export=c" a=zero:1M
bad "export name 'a' given twice" --listen "$s" a=zero:1M a=zero:1M
bad "no export 'b' (give NAME=SPEC first)" --listen "$s" --allow b:uid:1 a=zero:1M
bad "'who' is not uid:N" --listen "$s" --allow a:who a=zero:1M
bad "mode '99' is not octal" --listen "$s,mode=99" a=zero:1M
bad "unknown option 'color=red'" --listen "$s,color=red" a=zero:1M
bad "a name of \[A-Za-z0-9._-\]" --listen "$s" 'a b=zero:1M'
bad "the store has no size\|a store with a size" --listen "$s" a=zero
bad "unknown option" --bogus
"$build/upagerd" --listen "$s" img=file:"$tmp/missing" 2>"$tmp/err"
[ $? = 1 ] || fail "missing file: want exit 1"
grep -q "missing: No such file" "$tmp/err" || fail "missing file: $(cat "$tmp/err")"
exit 0
