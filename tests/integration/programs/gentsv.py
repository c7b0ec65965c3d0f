"""Write lines.tsv for integ_programs' sqlite3 test: path, line number and
text of every line of the .py files under ROOT, ROUNDS times, tabs in the
text made spaces (sqlite3's .import in tabs mode then reads it as is).

    python3 gentsv.py ROOT ROUNDS OUT
"""
import os
import sys


def main():
    root, rounds, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    files = []
    for d, dirs, names in os.walk(root):
        dirs.sort()
        files.extend(os.path.join(d, n) for n in sorted(names) if n.endswith(".py"))
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for r in range(rounds):
            for f in files:
                with open(f, "rb") as fh:
                    text = fh.read().decode("utf-8", "replace")
                name = "%d%s" % (r, f[len(root):])
                for i, line in enumerate(text.splitlines()):
                    line = line.replace("\t", " ").replace('"', "'").replace("\r", " ")
                    out.write("%s\t%d\t%s\n" % (name, i + 1, line))


if __name__ == "__main__":
    main()
