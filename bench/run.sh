#!/usr/bin/env bash
# Run the cio benchmarks beside their Python asyncio counterparts and
# write BUILD/bench/results.jsonl, one record per benchmark and
# implementation:
#   {"bench":NAME,"impl":IMPL,"value":N,"unit":U,"n":SIZE,"runs":R,...}
# then print a table of cio against each anchor and the library's targets.
#
# Usage: bench/run.sh [BUILD]   (make bench runs it on $(BUILD))
# Environment: BENCH_RUNS (default 3), PYTHON (default python3).
#
# The workloads run round-robin, RUNS times, and each value is the median
# of its runs. asyncio runs spawn and switch at a tenth of cio's size and
# timers at a fifth (the values are per operation; at full size they would
# take a minute), and sleepers_1m once with a 60 s limit.
set -euo pipefail

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/bench
out=$bin/results.jsonl
runs=${BENCH_RUNS:-3}
py=${PYTHON:-python3}

if [[ ! -x $bin/bench_spawn ]]; then
    echo "run.sh: no benchmarks in $bin; build first (make)" >&2
    exit 1
fi
if grep -Eq '^CIO_(SANITIZE|TSAN):BOOL=ON' "$build/CMakeCache.txt"; then
    echo "run.sh: $build is a sanitizer build; its timings mean nothing" >&2
    exit 1
fi
if ! command -v "$py" >/dev/null; then
    echo "run.sh: $py not found: asyncio anchors skipped" >&2
    py=""
fi

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
notes=()

# run IMPL N LIMIT CMD...: append the `name value unit` lines of CMD as
# `impl n name value unit`.
run() {
    local impl=$1 n=$2 limit=$3
    shift 3
    local lines
    if ! lines=$(timeout "$limit" "$@"); then
        notes+=("$impl: '$*' failed or took over $limit s; skipped")
        return 0
    fi
    awk -v impl="$impl" -v n="$n" 'NF == 3 { print impl, n, $0 }' \
        <<<"$lines" >>"$raw"
}

asyncio() {
    [[ -n $py ]] && run asyncio "$2" "${3:-120}" \
        "$py" "$here/asyncio_bench.py" "$1" "$2"
    return 0
}

start=$SECONDS
for ((r = 1; r <= runs; r++)); do
    echo "run $r/$runs ..." >&2
    run cio 1000000 120 "$bin/bench_spawn" 1e6
    asyncio spawn 100000
    run cio 1000000 120 "$bin/bench_switch" 1e6
    # Debug mode on (slow-step clock reads, the watchdog's step marks):
    # what CIO_DEBUG=1 costs a context switch.
    run cio-debug 1000000 120 env CIO_DEBUG=1 "$bin/bench_switch" 1e6
    asyncio switch 100000
    run cio 100000 120 "$bin/bench_sleepers" 1e5
    asyncio sleepers 100000
    run cio 100000 120 "$bin/bench_timers" 1e5
    asyncio timers 20000
    if [[ -x $bin/bench_ctxswitch ]]; then
        run cio 2000000 120 "$bin/bench_ctxswitch" 2e6
    fi
    run cio 1000000 120 "$bin/bench_sleepers" 1e6 sleepers_1m min
done
echo "asyncio sleepers_1m (once, limit 60 s) ..." >&2
asyncio sleepers_1m 1000000 60
elapsed=$((SECONDS - start))

awk -v out="$out" -f - "$raw" <<'AWK'
# Input: impl n name value unit. A name bench/impl overrides the impl; a
# name bench.field is an extra field of bench's record.
function median(key, m, i, j, v, t) {
    m = cnt[key]
    for (i = 1; i <= m; i++) v[i] = val[key, i]
    for (i = 2; i <= m; i++)
        for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
function fmt(x) {
    return x >= 1000 || x <= -1000 ? sprintf("%.0f", x) : sprintf("%.4g", x)
}
BEGIN {
    # Targets: an upper bound, or a ratio to another impl of the bench.
    tgt["spawn", "value"] = 50
    tgt["switch", "value"] = 60
    tgt["sleepers", "value"] = 100
    tgt["sleepers", "bytes_per_task"] = 4608
    tgt["sleepers_1m", "value"] = 100
    tgt["sleepers_1m", "bytes_per_task"] = 4608
    rel["ctxswitch"] = "asm-min"; relx["ctxswitch"] = 1.2
}
{
    impl = $1; name = $3
    if (split(name, p, "/") == 2) { name = p[1]; impl = p[2] }
    field = "value"
    if (split(name, p, ".") == 2) { name = p[1]; field = p[2] }
    rec = name SUBSEP impl
    if (!(rec in seen)) { seen[rec] = 1; order[++nrec] = rec; n[rec] = $2 }
    key = rec SUBSEP field
    if (!(key in cnt)) fields[rec] = fields[rec] " " field
    val[key, ++cnt[key]] = $4
    unit[key] = $5
}
END {
    for (k = 1; k <= nrec; k++) {
        rec = order[k]; split(rec, p, SUBSEP)
        key = rec SUBSEP "value"
        med[key] = median(key)
        line = sprintf("{\"bench\":\"%s\",\"impl\":\"%s\",\"value\":%s," \
                       "\"unit\":\"%s\",\"n\":%d,\"runs\":%d", p[1], p[2],
                       med[key], unit[key], n[rec], cnt[key])
        m = split(fields[rec], f, " ")
        for (i = 1; i <= m; i++) {
            if (f[i] == "value") continue
            fk = rec SUBSEP f[i]
            med[fk] = median(fk)
            line = line sprintf(",\"%s\":%s", f[i], med[fk])
        }
        print line "}" > out
        impls[p[1]] = impls[p[1]] " " p[2]
        if (!(p[1] in bseen)) { bseen[p[1]] = 1; benches[++nb] = p[1] }
    }
    hdr = "%-26s %-8s %9s  %-18s %-9s %9s %10s\n"
    printf hdr, "bench", "unit", "cio", "target", "anchor", "value", \
        "cio/anchor"
    for (b = 1; b <= nb; b++) {
        bn = benches[b]
        m = split(fields[bn SUBSEP "cio"], f, " ")
        for (i = 1; i <= m; i++) {
            ck = bn SUBSEP "cio" SUBSEP f[i]
            label = f[i] == "value" ? bn : bn "." f[i]
            t = "-"
            if ((bn, f[i]) in tgt) {
                t = sprintf("<= %s %s", fmt(tgt[bn, f[i]]),
                            med[ck] <= tgt[bn, f[i]] ? "ok" : "MISS")
            } else if (f[i] == "value" && bn in rel) {
                rk = bn SUBSEP rel[bn] SUBSEP "value"
                ok = (rk in med) && med[ck] <= relx[bn] * med[rk]
                t = sprintf("%sx %s %s", relx[bn], rel[bn],
                            ok ? "ok" : "MISS")
            }
            na = split(impls[bn], a, " "); shown = 0
            for (j = 1; j <= na; j++) {
                if (a[j] == "cio") continue
                ak = bn SUBSEP a[j] SUBSEP f[i]
                if (!(ak in med)) continue
                ratio = med[ak] ? sprintf("%.3f", med[ck] / med[ak]) : "-"
                if (shown)
                    printf hdr, "", "", "", "", a[j], fmt(med[ak]), ratio
                else
                    printf hdr, label, unit[ck], fmt(med[ck]), t, a[j],
                        fmt(med[ak]), ratio
                shown = 1
            }
            if (!shown)
                printf hdr, label, unit[ck], fmt(med[ck]), t, "-", "-", "-"
        }
    }
}
AWK

for note in "${notes[@]+"${notes[@]}"}"; do
    echo "note: $note"
done
echo "medians of $runs runs (asyncio sleepers_1m: 1 run); cio/anchor < 1" \
     "means cio is cheaper; wall time ${elapsed} s; results in $out"

# The echo benchmark (servers under one load client) appends its own rows
# and table; BENCH_ECHO=0 skips it.
if [[ ${BENCH_ECHO:-1} != 0 && -x $bin/echo/echo_load ]]; then
    echo
    "$here/echo/run_echo.sh" "$build"
fi

# The other suites (bench/NAME/run_NAME.sh BUILD) append their own rows to
# results.jsonl and print their own tables; BENCH_NAME=0 skips one
# (BENCH_TLS=0, BENCH_HTTP=0, ...).
for suite in "$here"/*/run_*.sh; do
    name=$(basename "$suite" .sh)
    name=${name#run_}
    [[ $name == echo ]] && continue
    var=BENCH_${name^^}
    [[ ${!var:-1} == 0 ]] && continue
    echo
    "$suite" "$build" || echo "note: $name suite failed"
done
