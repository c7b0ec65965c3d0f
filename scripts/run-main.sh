#!/usr/bin/env bash
# The main job: build uzswap, start uzswapd with the shipped etc/uzswapd.conf
# on a private socket, and run an unmodified program under uzswap-run: the
# python3 workload of the tests (tests/integration/programs/workload.py),
# which builds big dicts and lists from the Python library's sources, hashes
# them, then hands them to multiprocessing children started with fork.  It
# runs once as it is and once under uzswap-run with a resident budget of a
# tenth of its peak anonymous memory; the digests must be the same.  Then
# the daemon's statistics: `uzswapctl status` as last seen while the
# program was connected, and as the daemon is once it has gone.  Needs root
# (userfaultfd on another process's memory).
#
# Environment: UZSWAP_MAIN_ROUNDS (passes over the sources, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
dir=$top/build/main
jobs=$(nproc 2>/dev/null || echo 2)
rounds=${UZSWAP_MAIN_ROUNDS:-2}
python=/usr/bin/python3
workload=$top/tests/integration/programs/workload.py

./autogen.sh >/dev/null
mkdir -p "$dir"
(cd "$dir" && "$top/configure" --enable-werror >configure.out)
make -j"$jobs" -C "$dir" daemon/uzswapd tools/uzswapctl client/uzswap-run \
	client/libuzswap-preload.so >/dev/null
stdlib=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')

run=$(mktemp -d /tmp/uzswap-main.XXXXXX)
sock=$run/uzswapd.sock
daemon_pid= prog_pid=
cleanup() {
	[[ -n $prog_pid ]] && kill -KILL "$prog_pid" 2>/dev/null || true
	if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$run"
}
trap cleanup EXIT

ctl() { "$dir/tools/uzswapctl" --socket "$sock" "$@"; }
seconds_since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }

echo "== python3 workload.py, unmanaged (for its output, time and peak anonymous memory)"
start=$(date +%s%N)
PYTHONHASHSEED=0 "$python" "$workload" "$stdlib" "$rounds" >"$run/plain.out" &
prog_pid=$! peak=0
while kill -0 "$prog_pid" 2>/dev/null; do
	kib=$(awk '/^RssAnon:/ { print $2 }' "/proc/$prog_pid/status" 2>/dev/null || echo 0)
	((${kib:-0} > peak)) && peak=$kib
	sleep 0.02
done
wait "$prog_pid"
prog_pid=
plain_s=$(seconds_since "$start")
cat "$run/plain.out"
budget=$((peak / 10))K
echo "   ${plain_s}s, peak anonymous memory $((peak / 1024)) MiB"

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

echo "== uzswap-run --max-resident $budget -- python3 workload.py (a tenth of its peak)"
start=$(date +%s%N)
PYTHONHASHSEED=0 UZSWAP_PRELOAD="$dir/client/libuzswap-preload.so" \
	"$dir/client/uzswap-run" --socket "$sock" --max-resident "$budget" -- \
	"$python" "$workload" "$stdlib" "$rounds" >"$run/uzswap.out" &
prog_pid=$!
# Sample the daemon while the program is connected: its client goes with it.
while kill -0 "$prog_pid" 2>/dev/null; do
	ctl status >"$run/status.now" 2>/dev/null && grep -q " $prog_pid " "$run/status.now" &&
		mv "$run/status.now" "$run/status.last"
	sleep 1
done
status=0
wait "$prog_pid" || status=$?
prog_pid=
uz_s=$(seconds_since "$start")
cat "$run/uzswap.out"
echo "   ${uz_s}s (unmanaged ${plain_s}s), exit status $status"
if cmp -s "$run/plain.out" "$run/uzswap.out"; then
	echo "   same output as the unmanaged run"
else
	echo "   OUTPUT DIFFERS from the unmanaged run" >&2
	status=1
fi

echo "== uzswapctl status, last seen while python3 ran"
cat "$run/status.last" 2>/dev/null || echo "(no sample: the program ended within a second)"
echo "== uzswapctl status, after it"
ctl status

kill -TERM "$daemon_pid"
wait "$daemon_pid" || status=$?
daemon_pid=
echo "== uzswapd log"
cat "$run/uzswapd.log"
exit "$status"
