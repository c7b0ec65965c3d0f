"""A python3 workload for integ_programs: big dicts and lists built from real
files, hashed; then the same data worked on by multiprocessing children
started with the fork method (they inherit it).

    python3 workload.py ROOT [ROUNDS]

ROOT: a directory of text files (the Python standard library's sources),
read ROUNDS times.  For each file the workload keeps its lines, a dict of
word counts, a dict of word positions (lists) and a list of line lengths,
as a program that indexes files keeps its per-file state: the data is large
and, once a file is done, cold, which is what a swap is for.  (A dict that
every word of every file goes through, such as a global vocabulary or the
interpreter's table of interned strings, would be hot and larger than a
budget of a tenth of the data: every lookup a fault.)  The cyclic garbage
collector is off while the data is built and frozen before the fork, as
programs that build large data and then fork workers do (the gc module's
documentation recommends gc.freeze() there): its full collections walk
every container in the heap, which at a budget of a tenth faults in the
whole heap each time.

Prints "index ..." and "mp ..." lines with counts and sha256 digests that
depend only on the files: dicts are hashed in sorted order, so neither hash
randomization nor memory addresses reach the output.
"""
import gc
import hashlib
import multiprocessing
import os
import sys

FILES = []  # (lines, word counts, word positions, line lengths) per file and round


def read_files(root):
    texts = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".py"):
                with open(os.path.join(d, f), "rb") as fh:
                    texts.append(fh.read().decode("utf-8", "replace"))
    return texts


def build(texts, rounds):
    for r in range(rounds):
        for t in texts:
            lines = ["%d:%s" % (r, line) for line in t.splitlines()]
            counts, where = {}, {}
            for i, line in enumerate(lines):
                for w in line.split():
                    counts[w] = counts.get(w, 0) + 1
                    where.setdefault(w, []).append(i)
            FILES.append((lines, counts, where, [len(x) for x in lines]))


def file_digest(i):
    lines, counts, where, lengths = FILES[i]
    h = hashlib.sha256()
    for w in sorted(counts):
        v = where[w]
        h.update(("%s %d %d %d\n" % (w, counts[w], v[0], v[-1])).encode())
    h.update(("%d %d\n" % (sum(lengths), len(lines))).encode())
    for line in lines[:: 1 + len(lines) // 64]:
        h.update(line.encode())
    return h.hexdigest()


def chunk_digest(k):
    """In a fork child: the digests of every 8th file from k."""
    return "".join(file_digest(i) for i in range(k, len(FILES), 8))


def main():
    root = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    gc.disable()
    build(read_files(root), rounds)
    h = hashlib.sha256()
    for i in range(len(FILES)):
        h.update(file_digest(i).encode())
    words = sum(len(f[1]) for f in FILES)
    print("index", len(FILES), words, h.hexdigest(), flush=True)
    gc.freeze()
    gc.enable()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        parts = pool.map(chunk_digest, range(8))
    print("mp", len(parts), hashlib.sha256("".join(parts).encode()).hexdigest(), flush=True)


if __name__ == "__main__":
    main()
