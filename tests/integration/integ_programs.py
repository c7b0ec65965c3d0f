#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""tests/integration/integ_programs.py - real programs under uzswap-run give
byte-identical output, with evictions, under a budget of 10% of their peak
anonymous memory.

Each program runs twice on the same real data (the Python standard
library's sources, ../shared is not needed): once as it is, sampling its
RssAnon every 20 ms for the peak, then under `uzswap-run --max-resident
PEAK/10`, sampling `uzswapctl status --json` for its evictions and its
coverage (managed data / (managed data + RssAnon) at its largest).  The
programs: a python3 workload of big dicts and lists with multiprocessing
(fork); sort -S 1G of a generated 400 MB file; xz -9 -T1 and back;
sqlite3 with an in-memory database and queries; redis-server loaded with
redis-cli --pipe (DEBUG DIGEST against an unmanaged server), then BGSAVE
while writes go on, whose RDB loaded into a fresh server gives the digest
of the moment of the fork.

TAP on stdout.  "figures:" diagnostics carry the numbers BENCHMARKS.md
quotes.  Everything started is in its own process group and is killed,
and the temporary directory removed, at exit and on SIGINT/SIGTERM.
Integration tests run one at a time ($UZSWAP_INTEG_LOCK).
"""
import atexit
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

PYTHON = "/usr/bin/python3"
SORT_BYTES = 400 * 2**20  # the minimum
XZ_BYTES = 256 * 2**10  # see BENCHMARKS.md: xz -9 reads a 64 MiB hash table at random
ROUNDS = 2  # passes over the library's sources in the python, sqlite and redis data

failures = 0
points = 0
cleanups = []


def ok(cond, text):
    global failures, points
    points += 1
    if not cond:
        failures += 1
    print("%sok %d - %s" % ("" if cond else "not ", points, text), flush=True)
    return cond


def diag(text):
    for line in str(text).splitlines():
        print("# " + line, flush=True)


def bail(text):
    print("Bail out! " + text, flush=True)
    sys.exit(1)


def cleanup():
    while cleanups:
        fn = cleanups.pop()
        try:
            fn()
        except Exception:  # a cleanup must not stop the others
            pass


def on_signal(sig, frame):
    cleanup()
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def env_path(name):
    v = os.environ.get(name, "")
    if not v or not os.path.exists(v):
        bail("$%s (%s) is not there: make check sets it" % (name, v or "unset"))
    return v


def kill_group(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    cleanups.append(lambda: kill_group(p))
    return p


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def rss_anon(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Daemon:
    def __init__(self, tmp):
        self.socket = os.path.join(tmp, "uzswapd.sock")
        self.log = os.path.join(tmp, "daemon.log")
        conf = os.path.join(tmp, "uzswapd.conf")
        with open(conf, "w") as f:
            # Budgets come from each client; pressure is the machine's, not the test's.
            f.write("[daemon]\nsocket = %s\nlog_level = info\n" % self.socket)
            f.write("[budget]\nmax_resident = 8G\nclient_max_resident = 1G\n")
            f.write("[pressure]\npsi_some_avg10 = 0\nmin_available = 0\n")
        self.p = spawn([env_path("UZSWAPD"), "--config", conf, "--socket", self.socket],
                       stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                s.connect(self.socket)
                return
            except OSError:
                time.sleep(0.02)
            finally:
                s.close()
        bail("uzswapd did not start: " + open(self.log).read()[-2000:])

    def client(self, pid):
        """This pid's client in `uzswapctl status --json`, or None."""
        r = subprocess.run([env_path("UZSWAPCTL"), "--socket", self.socket, "status", "--json"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode:
            return None
        for c in json.loads(r.stdout).get("clients", []):
            if c["pid"] == pid:
                return c
        return None

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(15)
        except subprocess.TimeoutExpired:
            kill_group(self.p)
        return self.p.returncode


class Watch:
    """Samples a running process: RssAnon (unmanaged) or its daemon client (managed)."""

    def __init__(self, pid, daemon=None):
        self.pid, self.daemon = pid, daemon
        self.peak_anon = 0
        self.evictions = 0
        self.footprint = 0  # managed data + unmanaged anon, at the largest sample
        self.coverage = None
        self.samples = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        t0 = time.time()
        while not self.stop.is_set():
            if self.daemon:
                self.sample_client()
                # Often at first, so that a short run is seen at all.
                self.stop.wait(0.05 if time.time() - t0 < 2 else 0.25)
            else:
                self.peak_anon = max(self.peak_anon, rss_anon(self.pid))
                self.stop.wait(0.02)

    def sample_client(self):
        try:
            c = self.daemon.client(self.pid)
        except Exception:
            return
        if not c:
            return
        self.samples += 1
        self.evictions = max(self.evictions, c["evicted_same"] + c["evicted_pool"])
        data = 4096 * (c["resident_pages"] + c["same_pages"] + c["pool_pages"] + c["file_pages"])
        if data + c["anon_rss_bytes"] > self.footprint:
            self.footprint = data + c["anon_rss_bytes"]
            self.coverage = data / self.footprint

    def done(self):
        self.stop.set()
        self.t.join()
        return self


class Bench:
    """One program's figures, as BENCHMARKS.md quotes them."""

    def __init__(self, name):
        self.name, self.peak, self.budget, self.watch = name, 0, 0, None
        self.plain_s = self.managed_s = 0.0

    def report(self):
        w = self.watch
        diag("figures: program=%s peak_anon_mib=%.1f budget_kib=%d evictions=%d "
             "coverage=%s unmanaged_s=%.2f uzswap_s=%.2f ratio=%.2f"
             % (self.name, self.peak / 2**20, self.budget // 1024, w.evictions if w else 0,
                "%.1f%%" % (100 * w.coverage) if w and w.coverage is not None else "-",
                self.plain_s, self.managed_s,
                self.managed_s / self.plain_s if self.plain_s else 0))

    def check(self):
        w = self.watch
        # A run too short for the 20 ms sampler shows its peak in the managed run's samples.
        self.peak = max(self.peak, w.footprint if w else 0)
        ok(w is not None and w.evictions > 0 and self.budget * 10 <= self.peak,
           "%s: the daemon evicted %d pages under a budget of %d KiB, at most 10%% of the "
           "peak anonymous memory (%.1f MiB)"
           % (self.name, w.evictions if w else 0, self.budget // 1024, self.peak / 2**20))
        self.report()


def budget_of(peak):
    return max(16 << 10, peak // 10) // 4096 * 4096


def run_program(daemon, cmd, budget=None, stdin=None, stdout=None, env=None, timeout=900):
    """Run cmd (under uzswap-run when budget): (status, seconds, Watch)."""
    if budget:
        cmd = [env_path("UZSWAP_RUN"), "--socket", daemon.socket, "--max-resident",
               str(budget), "--"] + cmd
    t0 = time.time()
    p = spawn(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env)
    w = Watch(p.pid, daemon if budget else None)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        err = b"(timed out)"
    w.done()
    if p.returncode:
        diag("%s: exit %s: %s" % (cmd, p.returncode, err.decode(errors="replace")[-1500:]))
    return p.returncode, time.time() - t0, w


def twice(daemon, bench, cmd, out_plain, out_managed, stdin=None, env=None):
    """The unmanaged run, then the managed one under a tenth of its peak."""
    with open(out_plain, "wb") as out:
        st, bench.plain_s, w = run_program(daemon, cmd, stdin=stdin and open(stdin, "rb"),
                                           stdout=out, env=env)
    bench.peak = max(bench.peak, w.peak_anon)
    bench.budget = budget_of(bench.peak)
    with open(out_managed, "wb") as out:
        st2, bench.managed_s, bench.watch = run_program(
            daemon, cmd, budget=bench.budget, stdin=stdin and open(stdin, "rb"), stdout=out,
            env=env)
    return st == 0 and st2 == 0


def same(a, b):
    return os.path.getsize(a) == os.path.getsize(b) and sha256_file(a) == sha256_file(b)


# ---- the programs ----


def test_python(daemon, tmp, stdlib, here):
    b = Bench("python3")
    env = dict(os.environ, PYTHONHASHSEED="0")
    a, m = os.path.join(tmp, "py.plain"), os.path.join(tmp, "py.uzswap")
    good = twice(daemon, b, [PYTHON, os.path.join(here, "workload.py"), stdlib, str(ROUNDS)],
                 a, m, env=env)
    ok(good and same(a, m) and b"mp 8" in open(m, "rb").read(),
       "python3: the dicts-and-lists workload and its multiprocessing (fork) children print "
       "the same digests under uzswap-run")
    diag(open(m, errors="replace").read())
    b.check()


def test_sort(daemon, tmp, stdlib, here):
    b = Bench("sort")
    data = os.path.join(tmp, "sort.in")
    subprocess.run([PYTHON, os.path.join(here, "gensort.py"), stdlib, str(SORT_BYTES), data],
                   check=True)
    env = dict(os.environ, LC_ALL="C")
    a, m = os.path.join(tmp, "sort.plain"), os.path.join(tmp, "sort.uzswap")
    good = twice(daemon, b, ["sort", "-S", "1G", data], a, m, env=env)
    ok(good and os.path.getsize(a) == os.path.getsize(data) and same(a, m),
       "sort -S 1G of a %d MB file gives the same bytes under uzswap-run"
       % (os.path.getsize(data) // 10**6))
    b.check()
    os.unlink(data)
    os.unlink(a)
    os.unlink(m)


def test_xz(daemon, tmp, stdlib, here):
    data = os.path.join(tmp, "xz.in")
    with open(data, "wb") as out:
        for d, dirs, names in sorted(os.walk(stdlib)):
            for n in sorted(names):
                if n.endswith(".py") and out.tell() < XZ_BYTES:
                    out.write(open(os.path.join(d, n), "rb").read())
        out.truncate(XZ_BYTES)
    c = Bench("xz -9 -T1")
    ca, cm = os.path.join(tmp, "xz.plain"), os.path.join(tmp, "xz.uzswap")
    good = twice(daemon, c, ["xz", "-9", "-T1", "-c"], ca, cm, stdin=data)
    ok(good and same(ca, cm), "xz -9 -T1 compresses to the same bytes under uzswap-run")
    c.check()
    d = Bench("xz -d")
    da, dm = os.path.join(tmp, "unxz.plain"), os.path.join(tmp, "unxz.uzswap")
    good = twice(daemon, d, ["xz", "-d", "-T1", "-c"], da, dm, stdin=cm)
    ok(good and same(da, dm) and same(dm, data),
       "and decompresses back to the input under uzswap-run")
    d.check()


def test_sqlite(daemon, tmp, stdlib, here):
    b = Bench("sqlite3")
    subprocess.run([PYTHON, os.path.join(here, "gentsv.py"), stdlib, str(ROUNDS),
                    os.path.join(tmp, "lines.tsv")], check=True)
    a, m = os.path.join(tmp, "sq.plain"), os.path.join(tmp, "sq.uzswap")
    script = os.path.join(here, "sqlite.sql")
    old = os.getcwd()
    os.chdir(tmp)  # .import lines.tsv
    try:
        good = twice(daemon, b, ["sqlite3", ":memory:"], a, m, stdin=script)
    finally:
        os.chdir(old)
    ok(good and same(a, m) and os.path.getsize(m) > 100,
       "sqlite3: an in-memory database of real text answers its queries the same under "
       "uzswap-run")
    b.check()


class Redis:
    def __init__(self, tmp, name, daemon=None, budget=None, rdb=None):
        self.sock = os.path.join(tmp, name + ".sock")
        cmd = ["redis-server", "--port", "0", "--unixsocket", self.sock, "--save", "",
               "--appendonly", "no", "--dir", tmp, "--dbfilename", rdb or (name + ".rdb"),
               "--enable-debug-command", "yes", "--daemonize", "no", "--logfile",
               os.path.join(tmp, name + ".log")]
        if budget:
            cmd = [env_path("UZSWAP_RUN"), "--socket", daemon.socket, "--max-resident",
                   str(budget), "--"] + cmd
        self.p = spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.watch = Watch(self.p.pid, daemon if budget else None)
        deadline = time.time() + 60
        while time.time() < deadline and self.cli("PING") != "PONG":
            time.sleep(0.05)

    def cli(self, *args, stdin=None):
        r = subprocess.run(["redis-cli", "-s", self.sock] + list(args), capture_output=True,
                           stdin=stdin, timeout=600)
        return r.stdout.decode(errors="replace").strip()

    def load(self, path):
        with open(path, "rb") as f:
            out = self.cli("--pipe", stdin=f)
        return "errors: 0" in out

    def info(self, field):
        for line in self.cli("INFO", "persistence").splitlines():
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
        return ""

    def stop(self):
        self.cli("SHUTDOWN", "NOSAVE")
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            kill_group(self.p)
        return self.watch.done()


def test_redis(daemon, tmp, stdlib, here):
    b = Bench("redis-server")
    load = os.path.join(tmp, "load.resp")
    more = os.path.join(tmp, "more.resp")
    subprocess.run([PYTHON, os.path.join(here, "genredis.py"), stdlib, str(ROUNDS), load],
                   check=True)
    subprocess.run([PYTHON, os.path.join(here, "genredis.py"), os.path.join(stdlib, "email"),
                    "1", more], check=True)
    t0 = time.time()
    plain = Redis(tmp, "plain")
    loaded = plain.load(load)
    digest_plain = plain.cli("DEBUG", "DIGEST")
    b.plain_s = time.time() - t0
    b.peak = plain.stop().peak_anon
    b.budget = budget_of(b.peak)
    t0 = time.time()
    r = Redis(tmp, "uzswap", daemon, b.budget)
    loaded = r.load(load) and loaded
    digest = r.cli("DEBUG", "DIGEST")
    b.managed_s = time.time() - t0
    ok(loaded and len(digest) == 40 and digest == digest_plain,
       "redis-server loaded with redis-cli --pipe has the DEBUG DIGEST of an unmanaged server "
       "(%s)" % digest)
    # The fork comes right after the digest: no write between them (one client, in order).
    keys = r.cli("DBSIZE")
    started = r.cli("BGSAVE")
    wrote = r.load(more)
    deadline = time.time() + 600
    while r.info("rdb_bgsave_in_progress") != "0" and time.time() < deadline:
        time.sleep(0.1)
    saved = r.info("rdb_last_bgsave_status") == "ok"
    after = r.cli("DBSIZE")
    b.watch = r.stop()
    fresh = Redis(tmp, "fresh", rdb="uzswap.rdb")
    reloaded = fresh.cli("DEBUG", "DIGEST")
    fresh.stop()
    ok("started" in started and wrote and saved and after != keys and reloaded == digest,
       "BGSAVE (a fork) while writes go on saves the moment of the fork: the RDB loaded "
       "into a fresh server has its digest (%s; keys %s at the fork, %s after the writes)"
       % (reloaded, keys, after))
    b.check()


def main():
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root: uzswapd opens /dev/userfaultfd")
        return 0
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    atexit.register(cleanup)
    lock = os.environ.get("UZSWAP_INTEG_LOCK")
    if lock:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
    here = os.path.join(os.environ.get("UZSWAP_SRCDIR", "."), "tests", "integration", "programs")
    for prog in (PYTHON, "/usr/bin/sort", "/usr/bin/xz", "/usr/bin/sqlite3",
                 "/usr/bin/redis-server", "/usr/bin/redis-cli"):
        if not os.access(prog, os.X_OK):
            bail("%s is missing: run scripts/setup-deps.sh" % prog)
    stdlib = subprocess.run([PYTHON, "-c", "import sysconfig; print(sysconfig.get_paths()"
                             "['stdlib'])"], capture_output=True, text=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="uzswap-progs.")
    cleanups.insert(0, lambda: shutil.rmtree(tmp, ignore_errors=True))
    daemon = Daemon(tmp)
    for test in (test_python, test_sort, test_xz, test_sqlite, test_redis):
        t0 = time.time()
        test(daemon, tmp, stdlib, here)
        diag("%s took %.1f s" % (test.__name__, time.time() - t0))
    status = daemon.stop()
    if not ok(status == 0, "the daemon stops cleanly on SIGTERM (exit %s)" % status) or failures:
        diag("the daemon's log:\n" + open(daemon.log, errors="replace").read()[-6000:])
    print("1..%d" % points, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
