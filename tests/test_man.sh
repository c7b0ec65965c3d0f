#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tests/test_man.sh - every man page lints clean (mandoc -Tlint reports
# nothing, not even style) and renders with man -l.  TAP on stdout.
set -u
src=${UZSWAP_SRCDIR:?make check sets UZSWAP_SRCDIR}
n=0 failures=0
for page in "$src"/man/*.[1-8]; do
	name=${page##*/}
	n=$((n + 1))
	lint=$(mandoc -Tlint "$page" 2>&1)
	if [[ -z $lint ]]; then
		echo "ok $n - $name: mandoc -Tlint reports nothing"
	else
		echo "not ok $n - $name: mandoc -Tlint reports:"
		sed 's/^/# /' <<<"$lint"
		failures=$((failures + 1))
	fi
	n=$((n + 1))
	if MANWIDTH=80 man -l "$page" 2>&1 >/dev/null | grep -q . || ! MANWIDTH=80 man -l "$page" >/dev/null 2>&1; then
		echo "not ok $n - $name: man -l renders it without a warning"
		failures=$((failures + 1))
	else
		echo "ok $n - $name: man -l renders it without a warning"
	fi
done
echo "1..$n"
[[ $failures == 0 ]]
