#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tests/integration/integ_install.sh - `make install` into a DESTDIR, then
# the installed programs work together: the installed uzswapd, started
# with a config of its installed kind, serves an unmodified python3 under
# the installed uzswap-run (with the installed interposer) and a program
# built against the installed header, library and uzswap.pc; the installed
# uzswapctl sees them.  Then `make uninstall` leaves nothing behind.
#
# TAP on stdout.  Needs root (the daemon), python3, a C compiler,
# pkg-config and systemd-analyze; $UZSWAP_BUILDDIR is the build tree (make
# check sets it).
set -u
build=${UZSWAP_BUILDDIR:?make check sets UZSWAP_BUILDDIR}
n=0 failures=0 daemon_pid=
dest=$(mktemp -d /tmp/uzswap-install.XXXXXX)
work=$(mktemp -d /tmp/uzswap-install-run.XXXXXX)

cleanup() {
	if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -KILL "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
	fi
	rm -rf "$dest" "$work"
}
trap cleanup EXIT

# point COND DESCRIPTION: one test point.
point() {
	n=$((n + 1))
	if [[ $1 == 0 ]]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failures=$((failures + 1))
	fi
}

diag() { sed 's/^/# /' "$@"; }

if [[ $(id -u) -ne 0 ]]; then
	echo "1..0 # SKIP needs root (uzswapd)"
	exit 0
fi

# ---- make install ----

make -s -C "$build" install DESTDIR="$dest" >"$work/install.log" 2>&1
rc=$?
point $rc "make install DESTDIR=... succeeds"
[[ $rc == 0 ]] || diag "$work/install.log"
eval "$(make -s -C "$build" print-dirs)"

missing=
for f in "$sbindir/uzswapd" "$bindir/uzswapctl" "$bindir/uzswap-run" \
	"$pkglibdir/libuzswap-preload.so" "$libdir/libuzswap.so.0" "$libdir/libuzswap.so" \
	"$libdir/libuzswap.a" "$libdir/pkgconfig/uzswap.pc" "$includedir/uzswap.h" \
	"$sysconfdir/uzswap/uzswapd.conf" "$systemdunitdir/uzswapd.service" \
	"$systemdunitdir/uzswapd.socket" "$mandir/man8/uzswapd.8" "$mandir/man8/uzswapctl.8" \
	"$mandir/man5/uzswapd.conf.5" "$mandir/man1/uzswap-run.1" "$mandir/man3/libuzswap.3"; do
	[[ -e $dest$f ]] || missing+=" $f"
done
point "$([[ -z $missing ]]; echo $?)" "every file is installed where its directory says${missing:+ (missing:$missing)}"
grep -q "^ExecStart=$sbindir/uzswapd --config $sysconfdir/uzswap/uzswapd.conf" \
	"$dest$systemdunitdir/uzswapd.service"
point $? "the installed service starts the installed daemon with the installed config"

# systemd-analyze verify, on copies whose ExecStart names the binary where
# DESTDIR put it (the real path does not exist here).
mkdir "$work/units"
sed "s|$sbindir/uzswapd|$dest$sbindir/uzswapd|" "$dest$systemdunitdir/uzswapd.service" \
	>"$work/units/uzswapd.service"
cp "$dest$systemdunitdir/uzswapd.socket" "$work/units/"
systemd-analyze verify --man=no "$work/units/uzswapd.service" "$work/units/uzswapd.socket" \
	>"$work/verify.out" 2>&1
rc=$?
[[ $rc == 0 && ! -s $work/verify.out ]]
point $? "systemd-analyze verify is clean on both installed units"
[[ -s $work/verify.out ]] && diag "$work/verify.out"

# ---- the installed daemon ----

"$dest$sbindir/uzswapd" --check-config "$dest$sysconfdir/uzswap/uzswapd.conf" >"$work/check.out" 2>&1
point $? "the installed uzswapd accepts the installed uzswapd.conf"

mkdir -m 0700 "$work/wb"
sock=$work/uzswapd.sock
{
	sed -e '/^\[backing\]/,$d' "$dest$sysconfdir/uzswap/uzswapd.conf"
	printf '[backing]\npath = %s/wb/\n' "$work"
} >"$work/uzswapd.conf"
"$dest$sbindir/uzswapd" --config "$work/uzswapd.conf" --socket "$sock" 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do
	[[ -S $sock ]] && break
	sleep 0.1
done
[[ -S $sock ]]
point $? "the installed uzswapd starts and listens"
[[ -S $sock ]] || diag "$work/daemon.log"

# python3 under the installed uzswap-run: managed memory, evicted, the same output.
cat >"$work/prog.py" <<'PY'
import hashlib, json, os, subprocess, sys
buf = bytearray(64 << 20)
for i in range(0, len(buf), 4096):
    buf[i:i + 16] = (b"%016d" % i)
managed = any("memfd:uzswap" in l for l in open("/proc/self/maps"))
env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
st = json.loads(subprocess.run([sys.argv[1], "--socket", sys.argv[2], "status", "--json"],
                               env=env, capture_output=True, check=True).stdout)
me = [c for c in st["clients"] if c["pid"] == os.getpid()]
evicted = me[0]["evicted_pool"] + me[0]["evicted_same"] if me else 0
print(hashlib.sha256(buf).hexdigest())
print("managed" if managed else "unmanaged", "evicted" if evicted > 1000 else "not-evicted",
      file=sys.stderr)
PY
want=$(python3 "$work/prog.py" "$dest$bindir/uzswapctl" "$sock" 2>/dev/null)
UZSWAP_PRELOAD=$dest$pkglibdir/libuzswap-preload.so \
	"$dest$bindir/uzswap-run" --socket "$sock" --max-resident 8M --strict -- \
	python3 "$work/prog.py" "$dest$bindir/uzswapctl" "$sock" >"$work/py.out" 2>"$work/py.err"
rc=$?
[[ $rc == 0 && $(cat "$work/py.out") == "$want" ]] && grep -q "^managed evicted$" "$work/py.err"
point $? "python3 under the installed uzswap-run and interposer: managed, evicted, the same output (exit $rc: $(tr '\n' ' ' <"$work/py.err"))"

# A program built against the installed header, library and uzswap.pc.
cat >"$work/api.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <uzswap.h>
int main(int argc, char **argv)
{
	struct uzswap_options o = { .max_resident = 4 << 20 };
	struct uzswap_stats st;
	struct uzswap *u;
	unsigned char *p;
	size_t len = 32 << 20, bad = 0;

	if (argc < 2 || uzswap_connect(argv[1], &o, &u) < 0 ||
	    uzswap_region_create(u, len, "api", (void **)&p) < 0)
		return 2;
	for (size_t i = 0; i < len; i += 4096)
		memset(p + i, (int)(i >> 12) & 0xff, 4096);
	for (size_t i = 0; i < len; i += 4096)
		bad += p[i + 100] != (unsigned char)((i >> 12) & 0xff);
	if (uzswap_stats(u, &st) < 0)
		return 3;
	printf("bad=%zu evictions=%llu\n", bad, (unsigned long long)st.evictions);
	uzswap_close(u);
	return bad != 0;
}
C
pc="$dest$libdir/pkgconfig"
flags=$(PKG_CONFIG_PATH=$pc pkg-config --define-variable=prefix="$dest$prefix" --cflags --libs uzswap)
cc -o "$work/api" "$work/api.c" $flags -lpthread >"$work/cc.log" 2>&1
rc=$?
point $rc "a program builds against the installed uzswap.h and libuzswap (pkg-config uzswap: $flags)"
[[ $rc == 0 ]] || diag "$work/cc.log"
LD_LIBRARY_PATH=$dest$libdir "$work/api" "$sock" >"$work/api.out" 2>&1
rc=$?
out=$(cat "$work/api.out")
[[ $rc == 0 && $out == bad=0\ evictions=* && ${out##*=} -gt 1000 ]]
point $? "it runs on the installed shared library against the installed daemon: $out (exit $rc)"
ldd "$work/api" | grep -q "$dest$libdir/libuzswap.so.0" || LD_LIBRARY_PATH=$dest$libdir ldd "$work/api" | grep -q "libuzswap.so.0 => $dest$libdir"
point $? "and the library it loaded is the installed libuzswap.so.0"

"$dest$bindir/uzswapctl" --socket "$sock" status >"$work/status.out" 2>&1
point $? "the installed uzswapctl reads the daemon's status"

kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
daemon_pid=
point $rc "the installed daemon stops cleanly on SIGTERM"

# ---- make uninstall ----

make -s -C "$build" uninstall DESTDIR="$dest" >"$work/uninstall.log" 2>&1
rc=$?
left=$(find "$dest" ! -type d | head -5)
[[ $rc == 0 && -z $left ]]
point $? "make uninstall removes every installed file${left:+ (left: $(echo $left))}"

echo "1..$n"
[[ $failures == 0 ]]
