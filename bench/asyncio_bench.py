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


async def waiter(ev, deadline):
    if deadline is None:
        await ev.wait()
    else:
        async with asyncio.timeout_at(deadline):
            await ev.wait()


async def timers_phase(n, with_deadline):
    """Time n tasks that each wait on an event, inside a timeout scope
    (with_deadline) or not, until the event is set long before any
    deadline. Returns ns per task."""
    loop = asyncio.get_running_loop()
    ev = asyncio.Event()
    delays = delays_us(n)
    t0 = time.perf_counter_ns()
    base = loop.time() + 10.0
    tasks = [loop.create_task(
        waiter(ev, base + d / 1e6 if with_deadline else None))
        for d in delays]
    await asyncio.sleep(0)
    ev.set()
    for t in tasks:
        await t
    return (time.perf_counter_ns() - t0) / n


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
    # A warm-up phase as in bench_timers.c, but one measured pair instead
    # of its best of three: asyncio's phases take seconds each.
    await timers_phase(n, False)
    plain = await timers_phase(n, False)
    timed = await timers_phase(n, True)
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
