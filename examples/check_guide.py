#!/usr/bin/env python3
"""Check that every C snippet in docs/guide.md is an excerpt of an example.

Each ```c block must follow a link to ../examples/<name>.c; the block,
cut at lines that read `/* ... */` (an elision), must appear piece by
piece, verbatim and in whole lines, in that file. Run from anywhere:
    check_guide.py <source dir>
"""
import pathlib
import re
import sys


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    guide = (root / "docs" / "guide.md").read_text()
    link = re.compile(r"\]\(\.\./examples/([A-Za-z0-9_]+\.c)\)")
    elision = re.compile(r"^[ \t]*/\* \.\.\. \*/\n", re.M)
    failures = 0
    blocks = 0
    for m in re.finditer(r"^```c\n(.*?)^```", guide, re.M | re.S):
        blocks += 1
        line = guide.count("\n", 0, m.start()) + 1
        names = link.findall(guide, 0, m.start())
        if not names:
            print(f"docs/guide.md:{line}: C block without a link to an example")
            failures += 1
            continue
        source = "\n" + (root / "examples" / names[-1]).read_text()
        for piece in elision.split(m.group(1)):
            if piece and "\n" + piece not in source:
                first = piece.splitlines()[0]
                print(f"docs/guide.md:{line}: not in examples/{names[-1]}: "
                      f"{first!r}")
                failures += 1
    if blocks == 0:
        print("docs/guide.md: no C blocks found")
        return 1
    print(f"{blocks} C blocks checked, {failures} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
