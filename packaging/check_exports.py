#!/usr/bin/env python3
"""Check what the shared library exports: every public function declared in
include/cio/*.h (except static inline ones, and cio/test.h, which is the
harness library's), and nothing that is not public
API (internal cio__ functions, the bundled llhttp). Also that it is marked
NODELETE: a helper thread may outlive the last loop, so dlclose() must not
unmap the library.

Usage: check_exports.py SOURCE_DIR LIBCIO_SO
"""
import glob
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_docs import public_function, scan  # noqa: E402


def declared(root):
    names = set()
    for path in sorted(glob.glob(os.path.join(root, "include", "cio", "*.h"))):
        if os.path.basename(path) == "test.h":
            continue
        with open(path, encoding="utf-8") as f:
            for item in scan(f.read()):
                name = public_function(item)
                if name and not re.match(r"\s*static\b", item.text):
                    names.add(name)
    return names


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines()
            if line.split() and line.split()[-2] in "TDBRVWi"}


def nodelete(lib):
    out = subprocess.run(["readelf", "-d", lib], check=True,
                         capture_output=True, text=True).stdout
    return any("FLAGS_1" in line and "NODELETE" in line
               for line in out.splitlines())


def main():
    root, lib = sys.argv[1], sys.argv[2]
    want, have = declared(root), exported(lib)
    pinned = nodelete(lib)
    if not pinned:
        print("not marked NODELETE (link with -z nodelete)")
    missing = sorted(want - have)
    extra = sorted(n for n in have if not re.match(r"cio_[a-z0-9]", n))
    for n in missing:
        print(f"not exported: {n}")
    for n in extra:
        print(f"exported but not public: {n}")
    print(f"check_exports: {len(want)} public functions, {len(have)} exported "
          f"symbols, {len(missing)} missing, {len(extra)} not public")
    return 1 if missing or extra or not want or not pinned else 0


if __name__ == "__main__":
    sys.exit(main())
