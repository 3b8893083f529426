#!/usr/bin/env bash
# The resolver benchmark: bench_resolve (cio) and resolve_asyncio.py
# (asyncio's loop.getaddrinfo, the anchor), run round-robin RUNS times;
# the values are medians, in ns per lookup (lower is better). Appends to
# BUILD/bench/results.jsonl one record per workload and implementation:
#   {"bench":"resolve_cached","impl":"cio","value":NS,"unit":"ns/lookup",
#    "n":N,"runs":R}
# and prints a table with cio's ratio to asyncio where both ran.
#
# Usage: bench/resolve/run_resolve.sh BUILD
# Environment: RESOLVE_RUNS (3), RESOLVE_N (1e5 for cio; asyncio runs a
# tenth), PYTHON (python3).
set -euo pipefail

build=${1:?usage: run_resolve.sh BUILD}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/bench/resolve/bench_resolve
out=$build/bench/results.jsonl
runs=${RESOLVE_RUNS:-3}
n=${RESOLVE_N:-100000}
py=${PYTHON:-python3}

if [[ ! -x $bin ]]; then
    echo "run_resolve.sh: no $bin; build first (make)" >&2
    exit 1
fi
if grep -Eq '^CIO_(SANITIZE|TSAN):BOOL=ON' "$build/CMakeCache.txt" \
    2>/dev/null; then
    echo "run_resolve.sh: $build is a sanitizer build; its timings mean" \
        "nothing" >&2
    exit 1
fi
command -v "$py" >/dev/null || py=""
pyn=$(awk -v n="$n" 'BEGIN { m = int(n / 10); print m < 1 ? 1 : m }')

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for ((r = 1; r <= runs; r++)); do
    echo "resolve run $r/$runs ..." >&2
    timeout 120 "$bin" "$n" | awk -v n="$n" 'NF == 3 { print "cio", n, $1, $2 }' \
        >>"$raw" || echo "note: bench_resolve failed" >&2
    if [[ -n $py ]]; then
        timeout 120 "$py" "$here/resolve_asyncio.py" "$pyn" |
            awk -v n="$pyn" 'NF == 3 { print "asyncio", n, $1, $2 }' \
                >>"$raw" || echo "note: resolve_asyncio.py failed" >&2
    fi
done

mkdir -p "$(dirname "$out")"
awk -v out="$out" -v runs="$runs" '
function median(k, m, i, j, v, t) {
    m = cnt[k]
    for (i = 1; i <= m; i++) v[i] = val[k, i]
    for (i = 2; i <= m; i++)
        for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
{
    k = $3 SUBSEP $1
    if (!(k in cnt)) { order[++nk] = k; nn[k] = $2 }
    if (!($3 in seen)) { seen[$3] = 1; benches[++nb] = $3 }
    val[k, ++cnt[k]] = $4
}
END {
    for (i = 1; i <= nk; i++) {
        split(order[i], p, SUBSEP)
        med[order[i]] = median(order[i])
        printf "{\"bench\":\"%s\",\"impl\":\"%s\",\"value\":%s," \
               "\"unit\":\"ns/lookup\",\"n\":%d,\"runs\":%d}\n", p[1], p[2],
               med[order[i]], nn[order[i]], cnt[order[i]] >> out
    }
    printf "%-22s %-10s %10s %10s %10s\n", "bench", "unit", "cio",
           "asyncio", "cio/asyncio"
    for (b = 1; b <= nb; b++) {
        c = benches[b] SUBSEP "cio"; a = benches[b] SUBSEP "asyncio"
        cv = (c in med) ? med[c] : "-"
        av = (a in med) ? med[a] : "-"
        ratio = (c in med) && (a in med) && med[a] ? \
                sprintf("%.4f", med[c] / med[a]) : "-"
        printf "%-22s %-10s %10s %10s %10s\n", benches[b], "ns/lookup",
               cv, av, ratio
    }
}' "$raw"
echo "medians of $runs runs; asyncio runs loop.getaddrinfo(\"localhost\")" \
     "(glibc, /etc/hosts, executor thread); results in $out"
