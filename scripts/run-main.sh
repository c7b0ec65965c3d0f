#!/usr/bin/env bash
# The main job: build uzswap and run the codec benchmark on the real process
# memory in ../shared/data/pages (every page compressed on its own with lz4,
# zstd-1 and zstd-3), printing one key=value line per codec and file.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
dir=$top/build/main
jobs=$(nproc 2>/dev/null || echo 2)

./autogen.sh >/dev/null
mkdir -p "$dir"
(cd "$dir" && "$top/configure" --enable-werror >configure.out)
make -C "$dir" -j"$jobs" bench/codecbench >/dev/null
make -C "$dir" --no-print-directory bench
