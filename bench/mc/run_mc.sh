#!/usr/bin/env bash
# Multi-core benchmarks.
#
# echo_mc: bench/echo's load client (100 connections, 64 B messages)
# against the echo server on 1 loop (cio-1), on 2 loops listening with
# SO_REUSEPORT (cio-2), and on 2 loops fed by one acceptor that hands the
# sockets out round-robin through channels (cio-2-handoff). The
# implementations run round-robin, RUNS times; values are medians.
# conn_mc: the same servers under conn_load, 4 threads each opening a
# connection, echoing 64 bytes and closing: connections per second, where
# the way connections are accepted and spread matters.
# Then the echo load with the load client pinned to the last CPU (bench
# echo_mc_pinned; taskset semantics through echo_load -a).
# http_mc: bench/http's hello server on 1 and 2 loops (SO_REUSEPORT),
# `wrk -t1 -c CONNS`, when the HTTP server is built and wrk is installed;
# the server's CPU per request from /proc/PID/stat.
# xloop: messages per second from one loop to another through a channel
# (batched receive), median of RUNS runs; with MC_XLOOP_BASE (another
# build's xloop_msgs, e.g. of an older commit) the two run round-robin,
# the other as impl cio-base. Where perf can count syscalls, one more run
# of the batched phase counts write(2) calls: eventfd writes per message.
#
# Appends to BUILD/bench/results.jsonl, e.g.
#   {"bench":"echo_mc","impl":"cio-2","value":REQ_PER_S,"unit":"req/s",
#    "runs":R,"cpu_us_per_req":X,"scaling":RATIO_TO_CIO_1}
#   {"bench":"xloop","impl":"cio","value":MSGS_PER_S,"unit":"msg/s",...}
# and prints a table.
#
# Usage: bench/mc/run_mc.sh BUILD
# Environment: MC_RUNS (3), MC_SECONDS (5), MC_WARMUP (1), MC_CONNS (100),
# MC_PORT (18865), MC_MSGS (2000000), MC_ONLY=xloop (only the messages
# between loops), MC_XLOOP_BASE (see above).
set -euo pipefail

build=${1:?usage: run_mc.sh BUILD}
bin=$build/bench/mc
load=$build/bench/echo/echo_load
out=$build/bench/results.jsonl
runs=${MC_RUNS:-3}
secs=${MC_SECONDS:-5}
warm=${MC_WARMUP:-1}
conns=${MC_CONNS:-100}
port=${MC_PORT:-18865}
msgs=${MC_MSGS:-2000000}
only=${MC_ONLY:-}
xbase=${MC_XLOOP_BASE:-}
if [[ -n $xbase && ! -x $xbase ]]; then
    echo "run_mc.sh: MC_XLOOP_BASE=$xbase is not a program" >&2
    exit 1
fi

need=("$bin/xloop_msgs")
[[ $only == xloop ]] || need+=("$bin/echo_mc" "$bin/conn_load" "$load")
for b in "${need[@]}"; do
    if [[ ! -x $b ]]; then
        echo "run_mc.sh: no $b; build first (make)" >&2
        exit 1
    fi
done
if grep -Eq '^CIO_(SANITIZE|TSAN):BOOL=ON' "$build/CMakeCache.txt" \
    2>/dev/null; then
    echo "run_mc.sh: $build is a sanitizer build; its timings mean" \
        "nothing" >&2
    exit 1
fi

tmp=$(mktemp -d)
spid=""
cleanup() {
    [[ -n $spid ]] && kill -KILL "$spid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
ncpu=$(nproc)
last_cpu=$((ncpu - 1))

server_args() {
    case $1 in
    cio-1) args=("$bin/echo_mc" "$port" 1 reuseport) ;;
    cio-2) args=("$bin/echo_mc" "$port" 2 reuseport) ;;
    cio-2-handoff) args=("$bin/echo_mc" "$port" 2 handoff) ;;
    http-cio-1) args=("$bin/http_mc" "$port" 1) ;;
    http-cio-2) args=("$bin/http_mc" "$port" 2) ;;
    *) echo "run_mc.sh: unknown implementation $1" >&2; return 1 ;;
    esac
}

start_server() {
    server_args "$1"
    "${args[@]}" >>"$tmp/server.log" 2>&1 &
    spid=$!
    local i
    for ((i = 0; i < 200; i++)); do
        if ! kill -0 "$spid" 2>/dev/null; then
            wait "$spid" 2>/dev/null || true
            spid=""
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.025
    done
    return 1
}

stop_server() {
    [[ -z $spid ]] && return 0
    kill -TERM "$spid" 2>/dev/null || true
    local i
    for ((i = 0; i < 60; i++)); do
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    spid=""
}

field() {
    awk -v n="$1" '$1 == n { print $2 }' "$2"
}

# measure BENCH IMPL [load options...]: one run, appended to $tmp/runs.
measure() {
    local bench=$1 impl=$2
    shift 2
    if ! start_server "$impl"; then
        echo "run_mc.sh: $impl did not start" >&2
        stop_server
        return 0
    fi
    if "$load" -c "$conns" -d "$secs" -w "$warm" -p "$spid" "$@" "$port" \
        >"$tmp/load.out" 2>>"$tmp/server.log"; then
        echo "$bench $impl $(field echo.rps "$tmp/load.out")" \
            "$(field echo.cpu_us_per_req "$tmp/load.out")" >>"$tmp/runs"
    fi
    stop_server
}

# cpu_ticks PID: utime+stime of PID in clock ticks.
cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# measure_http IMPL: wrk against http_mc; appended to $tmp/runs as
# `http_mc cio-N rps cpu_us_per_req`.
measure_http() {
    local impl=$1
    if ! start_server "$impl"; then
        echo "run_mc.sh: $impl did not start" >&2
        stop_server
        return 0
    fi
    local url="http://127.0.0.1:$port/" c0 c1 reqs rps hz
    wrk -t1 -c"$conns" -d"${warm}s" "$url" >/dev/null 2>&1 || true
    c0=$(cpu_ticks "$spid")
    if wrk -t1 -c"$conns" -d"${secs}s" "$url" >"$tmp/wrk.out" 2>&1; then
        c1=$(cpu_ticks "$spid")
        hz=$(getconf CLK_TCK)
        reqs=$(awk '/requests in/ { print $1 }' "$tmp/wrk.out")
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.out")
        if [[ -n $reqs && $reqs -gt 0 ]]; then
            echo "http_mc ${impl#http-} $rps" \
                "$(awk -v d=$((c1 - c0)) -v hz="$hz" -v n="$reqs" \
                    'BEGIN { printf "%.2f", d / hz * 1e6 / n }')" \
                >>"$tmp/runs"
        fi
    fi
    stop_server
}

# measure_conn IMPL: conn_load (a connection per request) against
# echo_mc; appended to $tmp/runs as `conn_mc IMPL conn_per_s cpu_us`.
measure_conn() {
    local impl=$1
    if ! start_server "$impl"; then
        echo "run_mc.sh: $impl did not start" >&2
        stop_server
        return 0
    fi
    if "$bin/conn_load" -t 4 -d "$secs" -w "$warm" -p "$spid" "$port" \
        >"$tmp/conn.out" 2>>"$tmp/server.log"; then
        echo "conn_mc $impl $(field conn.rate "$tmp/conn.out")" \
            "$(field conn.cpu_us_per_conn "$tmp/conn.out")" >>"$tmp/runs"
    fi
    stop_server
}

http=0
if [[ $only == xloop ]]; then
    :
elif [[ -x $bin/http_mc ]] && command -v wrk >/dev/null; then
    http=1
else
    echo "run_mc.sh: http_mc skipped (no HTTP server built or no wrk)" >&2
fi

start=$SECONDS
: >"$tmp/runs"
impls=(cio-1 cio-2 cio-2-handoff)
n=${#impls[@]}
[[ $only == xloop ]] && servers_runs=0 || servers_runs=$runs
for ((r = 0; r < servers_runs; r++)); do
    echo "echo_mc: run $((r + 1))/$runs ..." >&2
    for ((k = 0; k < n; k++)); do
        measure echo_mc "${impls[$(((k + r) % n))]}"
    done
    for ((k = 0; k < n; k++)); do
        measure_conn "${impls[$(((k + r) % n))]}"
    done
    if ((http)); then
        for ((k = 0; k < 2; k++)); do
            measure_http "http-cio-$((1 + (k + r) % 2))"
        done
    fi
    if ((ncpu > 1)); then
        for ((k = 0; k < 2; k++)); do
            measure echo_mc_pinned "${impls[$(((k + r) % 2))]}" \
                -a "$last_cpu"
        done
    fi
done
# eventfd_writes PROGRAM: write(2) calls per message of the batched
# phase (the loops write nothing else), or -1 when perf cannot count.
eventfd_writes() {
    local w
    w=$(perf stat -x, -e syscalls:sys_enter_write "$1" "$msgs" batch \
        2>&1 >/dev/null | awk -F, '/sys_enter_write/ { print $1 }') || true
    if [[ $w =~ ^[0-9]+$ ]]; then
        awk -v w="$w" -v n="$msgs" 'BEGIN { printf "%.5f", w / n }'
    else
        echo -1
    fi
}

xloop_impls=(cio)
xloop_bins=("$bin/xloop_msgs")
if [[ -n $xbase ]]; then
    xloop_impls+=(cio-base)
    xloop_bins+=("$xbase")
fi
nx=${#xloop_impls[@]}
echo "xloop: $runs runs of $msgs messages ..." >&2
for ((r = 0; r < runs; r++)); do
    for ((k = 0; k < nx; k++)); do
        i=$(((k + r) % nx))
        "${xloop_bins[$i]}" "$msgs" >"$tmp/x.out"
        echo "xloop ${xloop_impls[$i]}" \
            "$(field xloop.msgs_per_s "$tmp/x.out")" \
            "$(field xloop.spawn_join_us "$tmp/x.out")" \
            "$(field xloop.msgs_per_s_single "$tmp/x.out")" \
            "$(field xloop.msgs_per_s_fanin "$tmp/x.out")" >>"$tmp/runs"
    done
    # The ring designs raw, between two threads (bench/mc/ring_mc.c).
    if [[ -x $bin/ring_mc ]]; then
        "$bin/ring_mc" >"$tmp/ring.out"
        awk '{ sub(/^ring\./, "", $1); print "xloop_ring", $1, $2 }' \
            "$tmp/ring.out" >>"$tmp/runs"
    fi
done
for ((i = 0; i < nx; i++)); do
    echo "${xloop_impls[$i]} $(eventfd_writes "${xloop_bins[$i]}")" \
        >>"$tmp/writes"
done

mkdir -p "$(dirname "$out")"
awk -v out="$out" -v conns="$conns" -v secs="$secs" -v runs="$runs" \
    -v ncpu="$ncpu" -v writes="$tmp/writes" '
function median(s,    v, m, i, j, t) {
    m = split(s, v, " ")
    for (i = 2; i <= m; i++)
        for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
{
    k = $1 SUBSEP $2
    if (!(k in cnt))
        order[++nk] = k
    a[k] = a[k] " " $3; b[k] = b[k] " " $4; c[k] = c[k] " " $5
    d[k] = d[k] " " $6; cnt[k]++
}
END {
    while ((getline line < writes) > 0) {
        split(line, w, " ")
        wpm[w[1]] = w[2]
    }
    printf "\nmulti-core: %d CPUs; echo: %d connections, 64 B, %g s " \
           "measured; medians of %d runs\n", ncpu, conns, secs, runs
    printf "%-16s %-14s %12s %8s %11s\n", "bench", "impl", "value",
           "x cio-1", "cpu_us/req"
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, p, SUBSEP)
        mv[k] = median(a[k])
    }
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, p, SUBSEP)
        if (p[1] == "xloop_ring") {
            rec = sprintf("{\"bench\":\"xloop_ring\",\"impl\":\"%s\"," \
                          "\"value\":%.0f,\"unit\":\"msg/s\"," \
                          "\"runs\":%d}", p[2], mv[k], cnt[k])
            printf "%-16s %-14s %12.0f %8s %11s\n", p[1], p[2], mv[k], "-",
                   "-"
        } else if (p[1] == "xloop") {
            ew = p[2] in wpm ? wpm[p[2]] : -1
            rec = sprintf("{\"bench\":\"xloop\",\"impl\":\"%s\"," \
                          "\"value\":%.0f,\"unit\":\"msg/s\",\"runs\":%d," \
                          "\"single_msgs_per_s\":%.0f," \
                          "\"fanin_msgs_per_s\":%.0f," \
                          "\"spawn_join_us\":%.2f," \
                          "\"eventfd_writes_per_msg\":%s}", p[2], mv[k],
                          cnt[k], median(c[k]), median(d[k]), median(b[k]), ew)
            printf "%-16s %-14s %12.0f %8s %11s  (1 at a time: %.0f; " \
                   "2 senders: %.0f msg/s; spawn+join %.1f us; eventfd " \
                   "writes/msg %s)\n", p[1], p[2], mv[k], "-", "-",
                   median(c[k]), median(d[k]), median(b[k]), ew
        } else {
            base = p[1] SUBSEP "cio-1"
            ratio = (base in mv) && mv[base] > 0 ? mv[k] / mv[base] : 0
            unit = p[1] == "conn_mc" ? "conn/s" : "req/s"
            rec = sprintf("{\"bench\":\"%s\",\"impl\":\"%s\"," \
                          "\"value\":%.1f,\"unit\":\"%s\",\"n\":%d," \
                          "\"runs\":%d,\"cpu_us_per_req\":%.2f," \
                          "\"scaling\":%.2f}", p[1], p[2], mv[k], unit,
                          p[1] == "conn_mc" ? 4 : conns, cnt[k],
                          median(b[k]), ratio)
            printf "%-16s %-14s %12.0f %8.2f %11.2f\n", p[1], p[2], mv[k],
                   ratio, median(b[k])
        }
        print rec >> out
    }
    printf "\nper run:\n"
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, p, SUBSEP)
        printf "  %-16s %-14s%s\n", p[1], p[2], a[k]
    }
}' "$tmp/runs"
touch "$tmp/server.log"
grep -v 'shutting down' "$tmp/server.log" | sort | uniq -c |
    sed 's/^/server log: /' | head -10 || true
echo "mc: $((SECONDS - start)) s; results appended to $out" >&2
