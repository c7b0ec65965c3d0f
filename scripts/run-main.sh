#!/usr/bin/env bash
# The main job: build uzswap, start uzswapd with the shipped etc/uzswapd.conf
# on a private socket, and have a real client put the python process memory
# of ../shared/data/pages into managed memory four times larger than its
# budget, read it back at random and then whole, verifying every byte while
# the daemon evicts and restores.  Then print `uzswapctl status` and stop the
# daemon.  Needs root (userfaultfd on another process's memory).
#
# Environment: UZSWAP_MAIN_BUDGET (default 256M, the shipped client budget),
# UZSWAP_MAIN_SECONDS (random reads, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
dir=$top/build/main
jobs=$(nproc 2>/dev/null || echo 2)
pages_dir=${UZSWAP_PAGES_DIR:-$top/../shared/data/pages}
budget=${UZSWAP_MAIN_BUDGET:-256M}
seconds=${UZSWAP_MAIN_SECONDS:-20}

./autogen.sh >/dev/null
mkdir -p "$dir"
(cd "$dir" && "$top/configure" --enable-werror >configure.out)
make -C "$dir" -j"$jobs" daemon/uzswapd tools/uzswapctl tools/uzswap-pagecheck >/dev/null

run=$(mktemp -d /tmp/uzswap-main.XXXXXX)
sock=$run/uzswapd.sock
daemon_pid=
cleanup() {
	if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$run"
}
trap cleanup EXIT

echo "== uzswapd --config etc/uzswapd.conf --socket $sock"
"$dir/daemon/uzswapd" --config "$top/etc/uzswapd.conf" --socket "$sock" 2>"$run/uzswapd.log" &
daemon_pid=$!
for _ in $(seq 100); do
	[[ -S $sock ]] && break
	kill -0 "$daemon_pid" 2>/dev/null || break
	sleep 0.1
done
if [[ ! -S $sock ]]; then
	cat "$run/uzswapd.log" >&2
	echo "uzswapd did not start" >&2
	exit 1
fi

echo "== uzswap-pagecheck: python pages in managed memory 4 x $budget, random reads for ${seconds}s"
status=0
"$dir/tools/uzswap-pagecheck" --socket "$sock" --pages "$pages_dir/python.pages.zst" \
	--budget "$budget" --factor 4 --seconds "$seconds" \
	--then "echo '== uzswapctl status'; '$dir/tools/uzswapctl' --socket '$sock' status" ||
	status=$?

kill -TERM "$daemon_pid"
wait "$daemon_pid" || status=$?
daemon_pid=
echo "== uzswapd log"
cat "$run/uzswapd.log"
exit "$status"
