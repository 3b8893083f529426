"""The asyncio anchor of bench_resolve: loop.getaddrinfo("localhost"),
which glibc answers from /etc/hosts on an executor thread, one lookup at
a time and 64 in flight. Prints `name value unit` lines (ns per lookup).
Usage: resolve_asyncio.py [N]"""
import asyncio
import socket
import sys
import time


async def main(n):
    loop = asyncio.get_running_loop()
    await loop.getaddrinfo("localhost", 80, family=socket.AF_INET)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await loop.getaddrinfo("localhost", 80, family=socket.AF_INET)
    print("resolve_hosts %d ns" % ((time.perf_counter_ns() - t0) // n))

    async def worker(k):
        for _ in range(k):
            await loop.getaddrinfo("localhost", 80, family=socket.AF_INET)

    per = max(1, n // 64)
    t0 = time.perf_counter_ns()
    await asyncio.gather(*(worker(per) for _ in range(64)))
    print("resolve_hosts_x64 %d ns" % ((time.perf_counter_ns() - t0)
                                        // (per * 64)))


asyncio.run(main(int(float(sys.argv[1])) if len(sys.argv) > 1 else 10000))
