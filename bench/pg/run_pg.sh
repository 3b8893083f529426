#!/usr/bin/env bash
# The pg benchmark: point SELECTs by primary key (pgbench's select-only
# script) against a throwaway PostgreSQL on loopback, initialised with
# `pgbench -i -s PG_SCALE`.
#   cio      bench_pg: PG_TASKS tasks (32) sharing a pool of PG_POOL (8)
#            connections, one query per acquire/release (default backend)
#   cio-epoll  the same on the epoll backend
#   pgbench  pgbench -S -c 32 -j 2 -T PG_SECONDS (32 connections)
# Both run PG_RUNS times (3), alternating, each for PG_SECONDS (5); the
# values are medians. Appends to BUILD/bench/results.jsonl one record per
# implementation:
#   {"bench":"pg","impl":IMPL,"value":QPS,"unit":"q/s","runs":R}
# (cio's records also have cpu_us_per_q, the client's CPU per query) and
# prints a table with the ratio against pgbench. The client and the
# server share the machine's cores, so q/s is bounded by both.
#
# Usage: bench/pg/run_pg.sh BUILD
set -euo pipefail

build=${1:?usage: run_pg.sh BUILD}
bin=$build/bench/pg/bench_pg
out=$build/bench/results.jsonl
runs=${PG_RUNS:-3}
secs=${PG_SECONDS:-5}
tasks=${PG_TASKS:-32}
poolsz=${PG_POOL:-8}
scale=${PG_SCALE:-1}

if [[ ! -x $bin ]]; then
    echo "run_pg.sh: no $bin (built only with libpq); skipped" >&2
    exit 0
fi
if grep -Eq '^CIO_(SANITIZE|TSAN):BOOL=ON' "$build/CMakeCache.txt" \
    2>/dev/null; then
    echo "run_pg.sh: $build is a sanitizer build; its timings mean" \
        "nothing" >&2
    exit 1
fi
pg_bin=""
command -v pg_config >/dev/null && pg_bin=$(pg_config --bindir)
if [[ ! -x $pg_bin/initdb ]]; then
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
fi
pgbench=$(command -v pgbench || echo "$pg_bin/pgbench")
if [[ ! -x $pg_bin/initdb || ! -x $pgbench ]]; then
    echo "run_pg.sh: PostgreSQL server binaries or pgbench not found;" \
        "skipped" >&2
    exit 0
fi

# ---- a throwaway server (as tests/servers.sh) -------------------------------

tmp=$(mktemp -d /tmp/cio-bench-pg.XXXXXX)
chmod 755 "$tmp"
as_pg=()
if [[ $(id -u) == 0 ]]; then
    as_pg=(runuser -u postgres --)
    chown postgres: "$tmp"
fi
data=""
cleanup() {
    if [[ -n $data ]]; then
        "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$data" -m immediate stop \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$pg_bin/initdb" -D "$tmp/data" -A trust -U postgres \
    --no-sync >"$tmp/initdb.log" 2>&1
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/data" -l "$tmp/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $tmp -c fsync=off \
        -c max_connections=100" start >/dev/null
data=$tmp/data
conninfo="hostaddr=127.0.0.1 port=$port user=postgres dbname=postgres"
"$pgbench" -i -q -s "$scale" -h 127.0.0.1 -p "$port" -U postgres postgres \
    >"$tmp/init.log" 2>&1
accounts=$((scale * 100000))

# ---- runs ------------------------------------------------------------------

: >"$tmp/runs"
measure() {
    local v=""
    case $1 in
    cio | cio-epoll)
        local env=()
        [[ $1 == cio-epoll ]] && env=(CIO_BACKEND=epoll)
        env "${env[@]}" "$bin" "$conninfo" "$secs" "$tasks" "$poolsz" "$accounts" \
            >"$tmp/out" 2>>"$tmp/err" || true
        v=$(awk '$1 == "pg.qps" { q = $2 } $1 == "pg.cpu_us_per_q" \
                 { c = $2 } END { if (q != "") print q, c }' "$tmp/out")
        ;;
    pgbench)
        "$pgbench" -S -n -c 32 -j 2 -T "$secs" -h 127.0.0.1 -p "$port" \
            -U postgres postgres >"$tmp/out" 2>>"$tmp/err" || true
        v=$(awk '/^tps = / { print $3, "-" }' "$tmp/out")
        ;;
    esac
    if [[ -n $v ]]; then
        echo "$1 $v" >>"$tmp/runs"
    else
        echo "run_pg.sh: $1 run failed" >&2
        tail -5 "$tmp/err" >&2 || true
    fi
}

impls=(cio cio-epoll pgbench)
start=$SECONDS
for ((r = 0; r < runs; r++)); do
    echo "pg: run $((r + 1))/$runs ..." >&2
    for ((k = 0; k < 3; k++)); do
        measure "${impls[$(((k + r) % 3))]}"
    done
done
if [[ ! -s $tmp/runs ]]; then
    echo "run_pg.sh: no run succeeded" >&2
    exit 1
fi

# ---- medians, JSON, table --------------------------------------------------

mkdir -p "$(dirname "$out")"
awk -v out="$out" -v secs="$secs" -v tasks="$tasks" -v pool="$poolsz" '
function median(s,    v, m, i, j, t) {
    m = split(s, v, " ")
    for (i = 2; i <= m; i++)
        for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
{ q[$1] = q[$1] " " $2; c[$1] = c[$1] " " $3; n[$1]++ }
END {
    split("cio cio-epoll pgbench", im, " ")
    for (i = 1; i <= 3; i++) {
        x = im[i]
        if (!n[x])
            continue
        mq[x] = median(q[x])
        rec = sprintf("{\"bench\":\"pg\",\"impl\":\"%s\",\"value\":%.1f," \
                      "\"unit\":\"q/s\",\"runs\":%d", x, mq[x], n[x])
        if (x != "pgbench") {
            mc[x] = median(c[x])
            rec = rec sprintf(",\"cpu_us_per_q\":%.2f,\"tasks\":%d," \
                              "\"pool\":%d", mc[x], tasks, pool)
        } else
            rec = rec ",\"clients\":32"
        print rec "}" >> out
    }
    printf "\npg: SELECT by primary key, %g s per run, medians of the runs\n",
           secs
    printf "%-10s %10s %10s  %s\n", "impl", "q/s", "x pgbench", "per run"
    for (i = 1; i <= 3; i++) {
        x = im[i]
        if (!n[x])
            continue
        r = "-"
        if (("pgbench" in mq) && mq["pgbench"] > 0)
            r = sprintf("%.2f", mq[x] / mq["pgbench"])
        printf "%-10s %10.0f %10s %s\n", x, mq[x], r, q[x]
    }
    for (i = 1; i <= 2; i++)
        if (n[im[i]])
            printf "%s client CPU per query: %.2f us (%d tasks, pool of " \
                   "%d)\n", im[i], mc[im[i]], tasks, pool
}' "$tmp/runs"
echo "pg: $((SECONDS - start)) s; results appended to $out" >&2
