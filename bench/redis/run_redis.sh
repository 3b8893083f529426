#!/usr/bin/env bash
# The Redis benchmark: GET and SET at pipelining depth 1 and 16, by the
# cio client (bench_redis, IMPL cio) and by redis-benchmark (same clients,
# depth and request count, -q --csv), against a redis-server this script
# starts on a free loopback port. The client and the server share the
# machine's cores, so ops/s compresses; both clients suffer it alike.
# The pairs run round-robin, RUNS times; values are medians. Appends to
# BUILD/bench/results.jsonl, one record per (op, depth, impl):
#   {"bench":"redis_set_p16","impl":"cio","value":OPS,"unit":"ops/s",
#    "clients":C,"depth":16,"n":N,"runs":R}
# and prints a table with the ratio cio / redis-benchmark.
#
# Usage: bench/redis/run_redis.sh BUILD
# Environment: REDIS_RUNS (3), REDIS_CLIENTS (50), REDIS_N (100000 at
# depth 1; 16 times that at depth 16), REDIS_DEPTHS ("1 16").
set -euo pipefail

build=${1:?usage: run_redis.sh BUILD}
bin=$build/bench/redis/bench_redis
out=$build/bench/results.jsonl
runs=${REDIS_RUNS:-3}
clients=${REDIS_CLIENTS:-50}
n1=${REDIS_N:-100000}
depths=${REDIS_DEPTHS:-1 16}

if [[ ! -x $bin ]]; then
    echo "run_redis.sh: no $bin; build first (make)" >&2
    exit 1
fi
if grep -Eq '^CIO_(SANITIZE|TSAN):BOOL=ON' "$build/CMakeCache.txt" \
    2>/dev/null; then
    echo "run_redis.sh: $build is a sanitizer build; its timings mean" \
        "nothing" >&2
    exit 1
fi
for tool in redis-server redis-benchmark python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "run_redis.sh: $tool not found (apt-get install redis-server);" \
            "skipped" >&2
        exit 0
    fi
done

tmp=$(mktemp -d)
spid=""
cleanup() {
    if [[ -n $spid ]]; then
        kill "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" --logfile "$tmp/log" >/dev/null 2>&1 &
spid=$!
for ((i = 0; i < 100; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    sleep 0.1
done

# measure IMPL OP DEPTH N: one run, appended to $tmp/runs as
# `op depth impl ops`.
measure() {
    local impl=$1 op=$2 depth=$3 n=$4 v=""
    if [[ $impl == cio ]]; then
        v=$("$bin" "$port" "$op" "$clients" "$depth" "$n" |
            awk '$1 ~ /^redis\.[a-z]+\.p[0-9]+$/ { print $2 }') || v=""
    else
        local up=${op^^}
        v=$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" \
            -P "$depth" -n "$n" -t "$op" -q --csv |
            awk -F'"' -v t="$up" '$2 == t { print $4 }') || v=""
    fi
    if [[ -z $v ]]; then
        echo "run_redis.sh: $impl $op depth $depth failed" >&2
        return 0
    fi
    echo "$op $depth $impl $v" >>"$tmp/runs"
}

start=$SECONDS
: >"$tmp/runs"
for ((r = 0; r < runs; r++)); do
    echo "redis: run $((r + 1))/$runs ..." >&2
    for depth in $depths; do
        n=$n1
        ((depth > 1)) && n=$((n1 * depth))
        for op in set get; do
            # Alternate which client goes first.
            if ((r % 2 == 0)); then
                measure cio "$op" "$depth" "$n"
                measure redis-benchmark "$op" "$depth" "$n"
            else
                measure redis-benchmark "$op" "$depth" "$n"
                measure cio "$op" "$depth" "$n"
            fi
        done
    done
done

if [[ ! -s $tmp/runs ]]; then
    echo "run_redis.sh: no run succeeded" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
awk -v clients="$clients" -v n1="$n1" -v out="$out" '
function median(s,    v, m, i, j, t) {
    m = split(s, v, " ")
    for (i = 2; i <= m; i++)
        for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
{
    k = $1 " " $2
    if (!(k in seen)) { order[++nk] = k; seen[k] = 1 }
    vals[k, $3] = vals[k, $3] " " $4; cnt[k, $3]++
}
END {
    printf "\nredis: %d clients, 3-byte values; medians (ops/s)\n", clients
    printf "%-5s %5s %12s %16s %7s\n", "op", "depth", "cio",
           "redis-benchmark", "ratio"
    for (i = 1; i <= nk; i++) {
        split(order[i], f, " ")
        n = f[2] > 1 ? n1 * f[2] : n1
        c = b = ""
        if (cnt[order[i], "cio"]) {
            c = median(vals[order[i], "cio"])
            printf "{\"bench\":\"redis_%s_p%d\",\"impl\":\"cio\",\"value\":%.1f,\"unit\":\"ops/s\",\"clients\":%d,\"depth\":%d,\"n\":%d,\"runs\":%d}\n", f[1], f[2], c, clients, f[2], n, cnt[order[i], "cio"] >> out
        }
        if (cnt[order[i], "redis-benchmark"]) {
            b = median(vals[order[i], "redis-benchmark"])
            printf "{\"bench\":\"redis_%s_p%d\",\"impl\":\"redis-benchmark\",\"value\":%.1f,\"unit\":\"ops/s\",\"clients\":%d,\"depth\":%d,\"n\":%d,\"runs\":%d}\n", f[1], f[2], b, clients, f[2], n, cnt[order[i], "redis-benchmark"] >> out
        }
        printf "%-5s %5d %12s %16s %7s\n", f[1], f[2],
               c == "" ? "-" : sprintf("%.0f", c),
               b == "" ? "-" : sprintf("%.0f", b),
               (c != "" && b > 0) ? sprintf("%.2f", c / b) : "-"
    }
}' "$tmp/runs"
echo "redis: $((SECONDS - start)) s; results appended to $out" >&2
