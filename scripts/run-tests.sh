#!/usr/bin/env bash
# Build uzswap twice, once plainly and once with AddressSanitizer and
# UndefinedBehaviorSanitizer, warnings as errors, and run the whole test
# suite in each; then `make distcheck` and the clang-format check.
#
# The last line is "N passed, N failed".  "passed" counts the TAP test points
# that passed in both builds.  "failed" counts the TAP points that failed or
# were skipped (a skip here means required data or a facility was missing,
# and this command exists to run everything), plus one for each step that
# failed: configure, a build, distcheck, or the format check.  A third
# build, with clang and libFuzzer, fuzzes the request decoder and the config
# parser for UZSWAP_FUZZ_SECONDS each (default 30); each run is one point.
# Exit status 0 only if nothing failed.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)
passed=0 failed=0 skipped=0
fuzz_seconds=${UZSWAP_FUZZ_SECONDS:-30}

fail() {
	echo "FAILED: $*"
	failed=$((failed + 1))
}

# suite_field LOG KEY: the count automake's test-suite.log gives for KEY.
suite_field() {
	awk -v k="# $2:" '$1" "$2 == k { print $3; exit }' "$1"
}

# Add the counts of one build's test-suite.log to the totals.
count_suite() {
	local log=$1 pass fail err xpass skip
	pass=$(suite_field "$log" PASS) fail=$(suite_field "$log" FAIL)
	err=$(suite_field "$log" ERROR) xpass=$(suite_field "$log" XPASS)
	skip=$(suite_field "$log" SKIP)
	passed=$((passed + ${pass:-0}))
	failed=$((failed + ${fail:-0} + ${err:-0} + ${xpass:-0} + ${skip:-0}))
	skipped=$((skipped + ${skip:-0}))
}

# build NAME CONFIGURE-ARGS...: fresh out-of-tree build and `make check`.
build_and_check() {
	local name=$1 dir=$top/build/$1
	shift
	echo "== $name build: configure $*"
	rm -rf "$dir" && mkdir -p "$dir"
	if ! (cd "$dir" && "$top/configure" "$@" >configure.out 2>&1); then
		tail -20 "$dir/configure.out"
		fail "$name build: configure"
		return 1
	fi
	if ! make -C "$dir" -j"$jobs" >"$dir/make.out" 2>&1; then
		tail -40 "$dir/make.out"
		fail "$name build: make"
		return 1
	fi
	echo "== $name build: make check"
	make -C "$dir" -j"$jobs" check VERBOSE=1 >"$dir/check.out" 2>&1
	grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP):' "$dir/check.out" | grep -v '^PASS:' || true
	if [[ -f $dir/test-suite.log ]]; then
		count_suite "$dir/test-suite.log"
		grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR):' "$dir/test-suite.log" | tr '\n' ' '
		echo
	else
		tail -40 "$dir/check.out"
		fail "$name build: make check did not run the tests"
	fi
}

# fuzz NAME CORPUS: a time-boxed libFuzzer run of tests/fuzz/fuzz_NAME on a
# copy of its corpus; one test point.  An input it fails on is kept in
# build/fuzz/ and printed: add it to the corpus as regress-* once fixed.
fuzz_one() {
	local name=$1 dir=$top/build/fuzz work
	work=$(mktemp -d)
	cp "$top/tests/fuzz/corpus/$name/"* "$work/"
	if "$dir/tests/fuzz/fuzz_$name" -max_total_time="$fuzz_seconds" -artifact_prefix="$dir/" \
		"$work" >"$dir/fuzz_$name.out" 2>&1; then
		echo "ok: fuzz_$name: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$dir/fuzz_$name.out")"
		passed=$((passed + 1))
	else
		tail -30 "$dir/fuzz_$name.out"
		fail "fuzz_$name found an input it fails on (see $dir)"
	fi
	rm -rf "$work"
}

# The fuzz build: clang, sanitizers and coverage; both harnesses fuzzed.
fuzz_check() {
	local dir=$top/build/fuzz
	echo "== fuzz build: CC=clang --enable-sanitizers --enable-fuzzers, ${fuzz_seconds}s per harness"
	rm -rf "$dir" && mkdir -p "$dir"
	if ! (cd "$dir" && "$top/configure" CC=clang --enable-werror --enable-sanitizers \
		--enable-fuzzers >configure.out 2>&1); then
		tail -20 "$dir/configure.out"
		fail "fuzz build: configure"
		return 1
	fi
	if ! make -C "$dir" -j"$jobs" tests/fuzz/fuzz_proto tests/fuzz/fuzz_config >"$dir/make.out" 2>&1; then
		tail -40 "$dir/make.out"
		fail "fuzz build: make"
		return 1
	fi
	fuzz_one proto
	fuzz_one config
}

format_check() {
	local files=()
	mapfile -t files < <(find compress alloc daemon client tools include bench tests \
		-name '*.[ch]' 2>/dev/null | sort)
	echo "== clang-format check (${#files[@]} files)"
	if [[ ${#files[@]} -eq 0 ]]; then
		fail "clang-format: no source files found"
	elif ! clang-format --dry-run --Werror "${files[@]}"; then
		fail "clang-format: the files above do not follow .clang-format (run clang-format -i)"
	fi
}

[[ -d ../shared/data/pages ]] ||
	echo "warning: no ../shared/data/pages beside the checkout: the real-data tests will skip, and skips count as failures"
echo "== autogen"
./autogen.sh >build-autogen.out 2>&1 || { cat build-autogen.out; fail "autogen"; }
rm -f build-autogen.out

if [[ $failed -eq 0 ]]; then
	build_and_check normal --enable-werror
	build_and_check sanitize --enable-werror --enable-sanitizers
	# The tarball's check runs the unit tests: the integration tests have
	# just run twice, and a third time would add minutes, not coverage.
	unit_tests=$(make -s -C build/normal print-tests | tr ' ' '\n' | grep -v '^tests/integration/' |
		tr '\n' ' ')
	echo "== make distcheck (unit tests)"
	if ! make -C build/normal -j"$jobs" distcheck TESTS="$unit_tests" >build/distcheck.out 2>&1; then
		tail -40 build/distcheck.out
		fail "make distcheck"
	fi
	fuzz_check
	format_check
fi

[[ $skipped -eq 0 ]] || echo "($skipped skipped test points are counted as failed)"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
