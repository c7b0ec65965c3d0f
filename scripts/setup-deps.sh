#!/usr/bin/env bash
# Install the Debian 12 packages uzswap needs to build, test and benchmark
# (the real programs integ_programs runs under uzswap-run among them, and
# libjemalloc2, the allocator uzswap-run gives them by default).
# Idempotent: installs only what is missing, and touches apt not at all when
# nothing is.  Needs root only when something is missing.
set -euo pipefail

packages=(
	gcc make libc6-dev pkg-config autoconf automake libtool
	liblz4-dev libzstd-dev libuv1-dev libinih-dev libsystemd-dev
	clang-format clang libclang-rt-14-dev
	python3 sqlite3 redis-server redis-tools xz-utils coreutils libjemalloc2
	systemd mandoc
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[[ $status == ii* ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "setup-deps: all ${#packages[@]} build dependencies are installed"
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "setup-deps: missing ${missing[*]}; run this script as root to install them" >&2
	exit 1
fi
echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
