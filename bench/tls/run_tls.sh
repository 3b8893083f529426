#!/usr/bin/env bash
# The TLS tax: bench/tls/tls_echo over TLS (impl "cio") and over plain TCP
# (impl "cio-plain"), round-robin, RUNS times; values are medians.
# Workloads: 64 B round trips on N connections (req/s, and the server's
# CPU µs per request), bulk echo on one connection (MiB/s), and
# connections opened one after another (full TLS 1.3 handshakes, no
# resumption; plain: TCP connects). Appends to BUILD/bench/results.jsonl:
#   {"bench":"tls_echo_rt","impl":"cio","value":V,"unit":"req/s",
#    "runs":R,"plain":P,"ratio":V/P,...}
# and prints a table with the ratio TLS / plain.
#
# Usage: bench/tls/run_tls.sh BUILD
# Environment: TLS_RUNS (3), TLS_CONNS (50), TLS_RTS (2000 round trips per
# connection), TLS_BULK_MIB (64), TLS_HANDSHAKES (300), TLS_ECHO_PORT
# (18766).
set -euo pipefail

build=${1:?usage: run_tls.sh BUILD}
bin=$build/bench/tls/tls_echo
out=$build/bench/results.jsonl
runs=${TLS_RUNS:-3}
args=("${TLS_CONNS:-50}" "${TLS_RTS:-2000}" "${TLS_BULK_MIB:-64}"
      "${TLS_HANDSHAKES:-300}")

if [[ ! -x $bin ]]; then
    echo "run_tls.sh: no $bin (built only with OpenSSL); build first" >&2
    exit 1
fi
if grep -Eq '^CIO_(SANITIZE|TSAN):BOOL=ON' "$build/CMakeCache.txt" \
    2>/dev/null; then
    echo "run_tls.sh: $build is a sanitizer build; its timings mean" \
        "nothing" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/runs"
start=$SECONDS
for ((r = 0; r < runs; r++)); do
    echo "tls: run $((r + 1))/$runs ..." >&2
    modes=(tls plain)
    ((r % 2)) && modes=(plain tls)
    for m in "${modes[@]}"; do
        if ! "$bin" "$m" "${args[@]}" >"$tmp/out" 2>"$tmp/err"; then
            echo "run_tls.sh: tls_echo $m failed:" >&2
            cat "$tmp/err" >&2
            exit 1
        fi
        awk -v m="$m" 'NF == 3 { print m, $1, $2, $3 }' "$tmp/out" \
            >>"$tmp/runs"
    done
done

mkdir -p "$(dirname "$out")"
awk -v out="$out" -v runs="$runs" -v conns="${args[0]}" \
    -v rts="${args[1]}" -v mib="${args[2]}" -v hs="${args[3]}" '
function median(s,    v, m, i, j, t) {
    m = split(s, v, " ")
    for (i = 2; i <= m; i++)
        for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
{
    vals[$1 "," $2] = vals[$1 "," $2] " " $3
    unit[$2] = $4
    if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
}
END {
    printf "\ntls_echo: %d connections x %d round trips of 64 B, %d MiB " \
           "bulk, %d connections in a row; medians of %d runs\n", conns,
           rts, mib, hs, runs
    printf "%-22s %12s %12s %8s  %s\n", "metric", "tls", "plain",
           "tls/plain", "unit"
    for (i = 1; i <= n; i++) {
        k = order[i]
        t = median(vals["tls," k]); p = median(vals["plain," k])
        ratio = p > 0 ? t / p : 0
        printf "%-22s %12.2f %12.2f %8.2f  %s\n", k, t, p, ratio, unit[k]
        name = k
        sub(/\..*/, "", name)
        field = k
        sub(/^[^.]*\./, "", field)
        bench = "tls_echo_" name
        if (field != "req_per_s" && field != "mib_per_s" &&
            field != "conn_per_s")
            bench = bench "_" field
        printf "{\"bench\":\"%s\",\"impl\":\"cio\",\"value\":%.2f," \
               "\"unit\":\"%s\",\"runs\":%d,\"plain\":%.2f," \
               "\"ratio\":%.3f}\n", bench, t, unit[k], runs, p,
               ratio >> out
        printf "{\"bench\":\"%s\",\"impl\":\"cio-plain\",\"value\":%.2f," \
               "\"unit\":\"%s\",\"runs\":%d}\n", bench, p, unit[k],
               runs >> out
    }
}' "$tmp/runs"
echo "tls: $((SECONDS - start)) s; results appended to $out" >&2
