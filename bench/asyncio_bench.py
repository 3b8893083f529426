#!/usr/bin/env python3
"""The asyncio side of the cio benchmarks: the same workloads as
bench_<name>.c, printing the same `name value unit` lines.

Usage: asyncio_bench.py WORKLOAD N
WORKLOAD is spawn, switch, sleepers, sleepers_1m or timers.
"""
import asyncio
import sys
import time

MASK64 = (1 << 64) - 1


def delays_us(n):
    """The sleep times of bench_sleepers.c: the same 64-bit LCG, same seed,
    so both sides sleep exactly the same set of durations (0..1e6 us)."""
    x = 42
    out = []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK64
        out.append((x >> 33) % 1000001)
    return out


def rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field + " not found")


async def noop():
    return 0


async def bench_spawn(n):
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await loop.create_task(noop())
    print(f"spawn {(time.perf_counter_ns() - t0) / n:.1f} ns")


async def pong(q1, q2, n):
    for _ in range(n):
        await q2.put(await q1.get())


async def bench_switch(n):
    q1, q2 = asyncio.Queue(), asyncio.Queue()
    peer = asyncio.create_task(pong(q1, q2, n))
    t0 = time.perf_counter_ns()
    for i in range(n):
        await q1.put(i)
        await q2.get()
    dt = time.perf_counter_ns() - t0
    await peer
    print(f"switch {dt / n:.1f} ns")


async def bench_sleepers(name, n):
    delays = [d / 1e6 for d in delays_us(n)]
    base = rss_kib("VmRSS")
    t0 = time.perf_counter_ns()
    async with asyncio.TaskGroup() as tg:
        for d in delays:
            tg.create_task(asyncio.sleep(d))
        spawned = time.perf_counter_ns()
    late_ms = (time.perf_counter_ns() - t0) / 1e6 - 1000.0
    peak = rss_kib("VmHWM")
    print(f"{name} {late_ms:.1f} ms_late")
    print(f"{name}.bytes_per_task {(peak - base) * 1024 / n:.0f} bytes")
    print(f"{name}.spawn_ms {(spawned - t0) / 1e6:.1f} ms")


TIMER_BLOCKS = 6  # as bench_timers.c
TIMER_ROUNDS = 5


class Rounds:
    """What bench_timers.c's shared struct holds."""

    def __init__(self, n):
        self.go = [asyncio.Event(), asyncio.Event()]
        self.all_in = asyncio.Event()
        self.n, self.inside = n, 0
        self.timed, self.stop = False, False


async def timer_worker(sh, deadline):
    k = 0
    while True:
        async with asyncio.timeout_at(deadline if sh.timed else None):
            sh.inside += 1
            if sh.inside == sh.n:
                sh.all_in.set()
            await sh.go[k % 2].wait()
        if sh.stop:
            return
        k += 1


async def all_parked(sh):
    await sh.all_in.wait()
    sh.all_in.clear()
    sh.inside = 0


async def timer_rounds(n):
    """bench_timers.c's run_rounds: n tasks wait on an event round after
    round, in blocks of plain rounds (no deadline) and timed ones (a
    deadline 60 s + 0..1 s away). Returns the median plain and timed round
    per task, in ns."""
    loop = asyncio.get_running_loop()
    sh = Rounds(n)
    base = loop.time() + 60.0
    tasks = [loop.create_task(timer_worker(sh, base + d / 1e6))
             for d in delays_us(n)]
    await all_parked(sh)
    kinds = ([], [])
    k = 0
    for b in range(TIMER_BLOCKS):
        for r in range(TIMER_ROUNDS):
            sh.timed = b % 2 == 1
            sh.stop = b == TIMER_BLOCKS - 1 and r == TIMER_ROUNDS - 1
            sh.go[(k + 1) % 2].clear()
            t0 = time.perf_counter_ns()
            sh.go[k % 2].set()
            k += 1
            if sh.stop:
                break
            await all_parked(sh)
            if b >= 2 and r >= 1:
                kinds[b % 2].append((time.perf_counter_ns() - t0) / n)
    for t in tasks:
        await t
    med = [sorted(v)[len(v) // 2] if len(v) % 2 else
           (sorted(v)[len(v) // 2 - 1] + sorted(v)[len(v) // 2]) / 2
           for v in kinds]
    return med[0], med[1]


async def scope_only(reps):
    """Enter and leave a timeout scope with a deadline without waiting;
    asyncio arms a timer handle on entry and cancels it on exit."""
    deadline = asyncio.get_running_loop().time() + 10.0
    t0 = time.perf_counter_ns()
    for _ in range(reps):
        async with asyncio.timeout_at(deadline):
            pass
    return (time.perf_counter_ns() - t0) / reps


async def bench_timers(n):
    plain, timed = await timer_rounds(n)
    scope = await scope_only(n)
    print(f"timers {timed - plain:.1f} ns")
    print(f"timers.wait_ns {timed:.1f} ns")
    print(f"timers.wait_nodeadline_ns {plain:.1f} ns")
    print(f"timers.scope_ns {scope:.1f} ns")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: asyncio_bench.py WORKLOAD N")
    name, n = sys.argv[1], int(float(sys.argv[2]))
    benches = {
        "spawn": lambda: bench_spawn(n),
        "switch": lambda: bench_switch(n),
        "sleepers": lambda: bench_sleepers("sleepers", n),
        "sleepers_1m": lambda: bench_sleepers("sleepers_1m", n),
        "timers": lambda: bench_timers(n),
    }
    if name not in benches:
        sys.exit(f"unknown workload {name}")
    asyncio.run(benches[name]())


if __name__ == "__main__":
    main()
