#!/usr/bin/env python3
"""Run tests/gdb/target under gdb with tools/cio-gdb.py and check what
`cio tasks` and `cio bt` print. Exits 77 (skipped) when gdb is missing or
cannot trace.

    check.py GDB_SCRIPT TARGET
"""
import shutil
import subprocess
import sys

script, target = sys.argv[1], sys.argv[2]
gdb = shutil.which("gdb")
if gdb is None:
    print("gdb not installed: skipped")
    sys.exit(77)
p = subprocess.run(
    [gdb, "-q", "-batch", "-nx", "-ex", f"source {script}",
     "-ex", "break cio_gdb_stop_here", "-ex", "run",
     "-ex", "cio tasks", "-ex", "cio bt 2", "-ex", "cio bt 3",
     "-ex", "bt 1", "-ex", "kill", target],
    capture_output=True, text=True, timeout=120)
out = p.stdout + p.stderr
if "ptrace" in out and "not permitted" in out:
    print("gdb cannot trace here (ptrace not permitted): skipped")
    sys.exit(77)
expect = [
    'task 2 "sleeper" waiting on sleep, wakes in',
    'task 3 "waiter" waiting on event',
    'task 1 "main" running',
    "3 task(s)",
    "nap_deeply (depth=depth@entry=3)",
    "in sleeper",
    "cio_event_wait (e=",  # an inlined frame prints without "in"
    "in waiter",
    "cio__ctx_start",
]
missing = [e for e in expect if e not in out]
# After `cio bt` the thread's own registers are back.
tail = out.split("cio__ctx_start")[-1]
if "cio_gdb_stop_here" not in tail:
    missing.append("the thread's registers restored after cio bt")
for m in missing:
    print("missing:", m)
if missing:
    print(out)
    sys.exit(1)
print("gdb script: ok")
