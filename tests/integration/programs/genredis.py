"""Write the redis protocol that loads integ_programs' redis test: from the
.py files under ROOT, ROUNDS times, per file a hash (line number -> line),
a list of its words and a string (its first lines), all from real text.

    python3 genredis.py ROOT ROUNDS OUT      (feed OUT to redis-cli --pipe)

A key per file, not per line: DEBUG DIGEST and BGSAVE walk the keys in hash
order, that is in no order in memory, and under a budget of a tenth of the
data a key per line would make every key they visit a page fault.
"""
import os
import sys


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode("utf-8", "replace")
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def main():
    root, rounds, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    files = []
    for d, dirs, names in os.walk(root):
        dirs.sort()
        files.extend(os.path.join(d, n) for n in sorted(names) if n.endswith(".py"))
    with open(path, "wb") as out:
        for r in range(rounds):
            for f in files:
                with open(f, "rb") as fh:
                    lines = fh.read().split(b"\n")
                name = "%d%s" % (r, f[len(root):])
                words = []
                for line in lines:
                    words.extend(line.split()[:2])
                out.write(command("SET", "s:" + name, b"\n".join(lines[:8])))
                for i in range(0, len(lines), 64):
                    args = ["HSET", "h:" + name]
                    for j, line in enumerate(lines[i : i + 64]):
                        args += [str(i + j), line]
                    out.write(command(*args))
                for i in range(0, len(words), 256):
                    out.write(command("RPUSH", "w:" + name, *words[i : i + 256]))


if __name__ == "__main__":
    main()
