"""The layers of ARCHITECTURE.md hold in the code: every module is listed,
and each includes headers only of modules on lower lines.

    check_layers.py REPO

Reads the fenced block between the "layers" markers of ARCHITECTURE.md
(top line first; each line's first words up to two spaces are its modules)
and every #include "..." of src/ and include/tpfs/. Prints one line per
breach, then "N passed, N failed" (one check a file).
"""

import os
import re
import sys


def layers(repo):
    text = open(os.path.join(repo, "ARCHITECTURE.md"), encoding="utf-8").read()
    m = re.search(r"<!-- layers:.*?-->\s*```\n(.*?)```\s*<!-- end of layers -->", text, re.S)
    if not m:
        raise SystemExit("ARCHITECTURE.md: no layers block")
    rank = {}
    lines = [ln for ln in m.group(1).splitlines() if ln.strip()]
    for i, line in enumerate(reversed(lines)):
        for name in re.split(r"\s{2,}", line.strip())[0].split():
            rank[name] = i
    return rank


def module_of(path):
    return os.path.splitext(os.path.basename(path))[0]


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else "."
    rank = layers(repo)
    files = []
    for d in ("src", os.path.join("include", "tpfs")):
        files += [os.path.join(d, f) for f in sorted(os.listdir(os.path.join(repo, d)))
                  if f.endswith((".c", ".h"))]
    passed = failed = 0
    for f in files:
        mod = module_of(f)
        bad = []
        if mod not in rank:
            bad.append("module %s is not in ARCHITECTURE.md's layers" % mod)
        else:
            text = open(os.path.join(repo, f), encoding="utf-8").read()
            for inc in re.findall(r'^#include "(?:tpfs/)?([a-z_]+)\.h"', text, re.M):
                if inc == mod:
                    continue
                if inc not in rank:
                    bad.append("includes %s, which is not in the layers" % inc)
                elif rank[inc] >= rank[mod]:
                    bad.append("includes %s, which is not below it" % inc)
        for b in bad:
            print("%s: %s" % (f, b))
        failed += bool(bad)
        passed += not bad
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
