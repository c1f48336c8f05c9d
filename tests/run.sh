#!/bin/bash
# Run every test in tests/TESTS against the build in $1 (default build).
# Each line of TESTS is "name [variant...]": a test with variants runs once
# per variant (a memory type: anon shmem hugetlb), with it as argv[1].
# A test is a program built from tests/NAME.c, or a script tests/NAME.sh
# (called with the build directory first).
# Exit 0 pass, 77 skip, anything else fail; each run has a timeout.
# The last line is "N passed, N failed, N skipped"; it is also written to
# $BUILD/test-summary for .ci/run.
#   T_TIMEOUT=seconds   per-run limit (default 120)
#   T_FILTER=regex      run only the tests whose name matches
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
timeout=${T_TIMEOUT:-120}
pass=0 fail=0 skip=0 failed=()
log=$build/test-logs
mkdir -p "$log"

# A test killed by its timeout can't restore what it reserved.
huge=/proc/sys/vm/nr_hugepages
huge_old=$(cat $huge 2>/dev/null || echo)
restore() { [ -n "$huge_old" ] && echo "$huge_old" > $huge 2>/dev/null; }
trap restore EXIT

while read -r name variants; do
	case "$name" in "" | \#*) continue ;; esac
	if [ -n "${T_FILTER:-}" ] && ! [[ $name =~ $T_FILTER ]]; then
		continue
	fi
	for v in ${variants:--}; do
		label=$name
		args=()
		if [ "$v" != - ]; then label="$name[$v]"; args=("$v"); fi
		out=$log/${label//[\[\]]/_}.log
		start=${EPOCHREALTIME/./}
		cmd=("$build/tests/$name")
		[ -f "$here/$name.sh" ] && cmd=(bash "$here/$name.sh" "$build")
		timeout -k 5 "$timeout" "${cmd[@]}" "${args[@]}" >"$out" 2>&1
		rc=$?
		us=$((${EPOCHREALTIME/./} - start))
		secs=$(printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000)))
		case $rc in
		0) pass=$((pass + 1)); printf 'PASS %-34s %6ss\n' "$label" "$secs" ;;
		77) skip=$((skip + 1)); printf 'SKIP %-34s %s\n' "$label" "$(grep -m1 SKIP "$out" | cut -c7-)" ;;
		*) fail=$((fail + 1)); failed+=("$label")
		   [ $rc = 124 ] && echo "timed out after ${timeout}s" >>"$out"
		   printf 'FAIL %-34s (exit %d)\n' "$label" "$rc"
		   sed 's/^/    /' "$out" | tail -n 20 ;;
		esac
	done
done <"$here/TESTS"

[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
summary="$pass passed, $fail failed, $skip skipped"
echo "$summary" >"$build/test-summary"
echo "$summary"
[ $fail -eq 0 ]
