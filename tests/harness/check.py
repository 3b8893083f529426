#!/usr/bin/env python3
"""Run the harness self-test program and check what the runner prints.

    check.py PATH/TO/harness_selftest
"""
import os
import subprocess
import sys

prog = sys.argv[1]
failures = []


def run(*args, bad=False):
    env = dict(os.environ, CIO_TEST_TIMEOUT="1")
    env.pop("CIO_SELFTEST_NO_SUCH_SERVER", None)
    env.pop("CIO_TEST_REQUIRE_SERVERS", None)
    if bad:
        env["CIO_SELFTEST_BAD"] = "1"
    p = subprocess.run([prog, *args], env=env, capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def expect(cond, what):
    if not cond:
        failures.append(what)


rc, out, err = run("--list")
expect(rc == 0, "--list exits 0")
expect(out.split() == [
    "virtual_clock_makes_sleep_instant", "fixture_context_reaches_the_body",
    "skip_says_why", "server_from_the_environment_or_skip",
    "bad_assertion_prints_both_values", "bad_leaves_a_task_running",
    "bad_leaks_a_descriptor", "bad_runs_past_its_timeout"],
    f"--list names every test in order: {out!r}")

rc, out, err = run()
expect(rc == 0, f"all good cases pass: rc {rc}\n{out}{err}")
expect("ok   virtual_clock_makes_sleep_instant" in out, "plain ok line")
expect("teardown ran" in out, "teardown runs")
expect("skip skip_says_why" in out and "nothing to test here" in out,
       "skip with reason")
expect("skip server_from_the_environment_or_skip" in out,
       "a missing server skips")

rc, out, err = run("--tap", "fixture")
expect(rc == 0 and out.startswith("TAP version 13\n1..1\nok 1 - "
                                  "fixture_context_reaches_the_body"),
       f"TAP output with a filter: {out!r}")

rc, out, err = run("--tap", bad=True)
expect(rc == 1, "failures make the run fail")
for name in ("bad_assertion_prints_both_values", "bad_leaves_a_task_running",
             "bad_leaks_a_descriptor", "bad_runs_past_its_timeout"):
    expect(f"not ok" in out and name in out, f"{name} reported not ok")
expect("expected -110 (ETIMEDOUT), got 0" in err, "both values printed")
expect("left 1 task(s) running" in err and '"forgotten"' in err,
       "the task left running is named")
expect("leaked 1 file descriptor(s)" in err, "fd leak reported")
expect("(timeout)" in err, "timeout reported")
expect("# SKIP" in out, "TAP skip directive")

rc, out, err = run("--bogus")
expect(rc == 2 and "usage" in err, "bad option gives usage")

for f in failures:
    print("FAIL:", f)
print(f"harness self-test: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
