# Shared by the shell tests: verdicts and the built binaries.
# Source it after setting build=$1.
set -u
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
upager=$build/upager
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# memory_like FILE PAGES ZERO_FROM ZERO_TO: data shaped like memory, page
# i zeros in [ZERO_FROM, ZERO_TO) or when i % 11 == 5, random bytes when
# i % 7 == 3, text that compresses otherwise.
memory_like() {
	python3 - "$@" <<'PY'
import os, sys
path, pages, zfrom, zto = sys.argv[1], *map(int, sys.argv[2:5])
out = bytearray()
for i in range(pages):
    if zfrom <= i < zto or i % 11 == 5:
        out += bytes(4096)
    elif i % 7 == 3:
        out += os.urandom(4096)
    else:
        line = b"page %d: some text that compresses; " % i
        out += (line * (4096 // len(line) + 1))[:4096]
open(path, "wb").write(out)
PY
}
