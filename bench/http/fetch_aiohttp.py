#!/usr/bin/env python3
"""bench/http: asyncio + aiohttp fetching COUNT small responses from a
running server with CONCURRENCY in flight over one ClientSession (a pool
of up to CONCURRENCY keep-alive connections): Semaphore + gather, the
workload of bench_fetch.c. Prints `fetch/aiohttp VALUE req/s`.
Usage: fetch_aiohttp.py URL [COUNT [CONCURRENCY]]  (10000, 100)"""
import asyncio
import sys
import time

import aiohttp


async def main(url, count, conc):
    connector = aiohttp.TCPConnector(limit=conc, limit_per_host=conc)
    async with aiohttp.ClientSession(connector=connector) as session:
        sem = asyncio.Semaphore(conc)

        async def one():
            async with sem:
                async with session.get(url) as r:
                    await r.read()
                    return r.status

        t0 = time.perf_counter()
        statuses = await asyncio.gather(*(one() for _ in range(count)))
        dt = time.perf_counter() - t0
    bad = sum(1 for s in statuses if s != 200)
    if bad:
        print(f"fetch_aiohttp: {bad} of {count} requests failed",
              file=sys.stderr)
        return 1
    print(f"fetch/aiohttp {count / dt:.0f} req/s")
    return 0


if __name__ == "__main__":
    if not 2 <= len(sys.argv) <= 4:
        print("usage: fetch_aiohttp.py URL [COUNT [CONCURRENCY]]",
              file=sys.stderr)
        sys.exit(2)
    n = int(float(sys.argv[2])) if len(sys.argv) > 2 else 10000
    k = int(float(sys.argv[3])) if len(sys.argv) > 3 else 100
    sys.exit(asyncio.run(main(sys.argv[1], n, k)))
