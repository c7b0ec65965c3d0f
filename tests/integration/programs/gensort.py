"""Write the input of integ_programs' sort test: at least SIZE bytes of lines
"KEY TEXT", TEXT being lines of the real files under ROOT (cycled).

    python3 gensort.py ROOT SIZE OUT

Keys ascend from block to block and are shuffled inside each block of 512
lines (about 40 KiB): sort does real work on every line, and its merges,
which read lines in key order, move through memory block by block.  With
keys in random order every comparison of the top merge levels would read
a line anywhere in the 400 MB buffer, so under a resident budget of 10%
nearly every comparison would be a page fault (BENCHMARKS.md).
"""
import os
import random
import sys

BLOCK = 512


def source_lines(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".py"):
                with open(os.path.join(d, f), "rb") as fh:
                    out.extend(x for x in fh.read().split(b"\n") if x.strip())
    return out


def main():
    root, size, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    text = source_lines(root)
    rng = random.Random(5)
    written, line, block = 0, 0, 0
    with open(path, "wb", buffering=1 << 20) as out:
        while written < size:
            keys = list(range(block * BLOCK, (block + 1) * BLOCK))
            rng.shuffle(keys)
            chunk = []
            for k in keys:
                chunk.append(b"%012d %s\n" % (k, text[line % len(text)]))
                line += 1
            data = b"".join(chunk)
            out.write(data)
            written += len(data)
            block += 1


if __name__ == "__main__":
    main()
