#!/usr/bin/env bash
# File metadata calls: cio_file_stat and cio_file_open + cio_file_close on
# io_uring ring operations ("ring"), on the files pool under the same
# backend ("uring-pool", CIO_URING_OPS=none) and under epoll
# ("epoll-pool"), beside the plain system calls ("syscall"). The program
# runs FSMETA_RUNS (3) times; the values are medians. Appends to
# BUILD/bench/results.jsonl one record per operation and implementation:
#   {"bench":"fsmeta.stat","impl":"ring","value":NS,"unit":"ns/op",
#    "runs":R}
# and prints a table with each implementation's ratio to ring.
#
# Usage: bench/fsmeta/run_fsmeta.sh BUILD
# Environment: FSMETA_RUNS (3), FSMETA_N (20000 calls of each kind).
set -euo pipefail

build=${1:?usage: run_fsmeta.sh BUILD}
prog=$build/bench/fsmeta/bench_fsmeta
out=$build/bench/results.jsonl
runs=${FSMETA_RUNS:-3}
n=${FSMETA_N:-20000}
if [[ ! -x $prog ]]; then
    echo "run_fsmeta.sh: no $prog; build first (make)" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for ((r = 0; r < runs; r++)); do
    echo "fsmeta: run $((r + 1))/$runs ..." >&2
    "$prog" "$n" | grep ' ns/op$' >>"$tmp"
done

# name/impl value ns/op lines -> medians, JSON rows and a table.
sort "$tmp" | awk -v runs="$runs" -v out="$out" '
    {
        split($1, a, "/"); key = a[1] SUBSEP a[2]
        v[key, ++c[key]] = $2; ops[a[1]] = 1; impls[a[2]] = 1
    }
    END {
        for (k in c) {
            m = c[k]
            for (i = 1; i <= m; i++)
                for (j = i + 1; j <= m; j++)
                    if (v[k, j] < v[k, i]) { t = v[k, i]; v[k, i] = v[k, j]; v[k, j] = t }
            med[k] = (m % 2) ? v[k, (m + 1) / 2] : (v[k, m / 2] + v[k, m / 2 + 1]) / 2
        }
        printf "%-18s %-12s %10s %12s\n", "op", "impl", "ns/op", "vs ring"
        split("syscall ring uring-pool epoll-pool", order, " ")
        for (op in ops) {
            for (i = 1; i <= 4; i++) {
                im = order[i]; k = op SUBSEP im
                if (!(k in med)) continue
                r = med[op SUBSEP "ring"]
                printf "%-18s %-12s %10.0f %11.2fx\n", op, im, med[k], r ? med[k] / r : 0
                printf "{\"bench\":\"%s\",\"impl\":\"%s\",\"value\":%.0f,\"unit\":\"ns/op\",\"runs\":%d}\n", op, im, med[k], runs >> out
            }
        }
    }'
