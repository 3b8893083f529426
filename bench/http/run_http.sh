#!/usr/bin/env bash
# The HTTP benchmark: "Hello, World!" over keep-alive connections, loaded
# with `wrk -t1 -c100 -d5s --latency` after a 1 s warm-up, for the cio
# server on io_uring and on epoll, a raw epoll server with a hand-written
# parser (the baseline), nginx with one worker, Node's http and aiohttp.
# Per implementation: requests/s, the server's CPU time per request
# (utime+stime of its processes over the measured run, from
# /proc/PID/stat, divided by the requests wrk counted) and wrk's p99
# latency. The implementations run round-robin, RUNS times; the values
# are medians. Appends to BUILD/bench/results.jsonl, one record each:
#   {"bench":"http","impl":IMPL,"value":REQ_PER_S,"unit":"req/s","n":CONNS,
#    "runs":R,"cpu_us_per_req":X,"p99_us":Y}
# and prints a table with ratios against raw-epoll.
#
# Usage: bench/http/run_http.sh BUILD
# Environment: HTTP_RUNS (3), HTTP_SECONDS (5), HTTP_CONNS (100),
# HTTP_PORT (18780), HTTP_IMPLS (a space-separated list to run instead),
# HTTP_PIN (0; 1 pins the server to CPU 0 and wrk to CPU 1).
set -euo pipefail

build=${1:?usage: run_http.sh BUILD}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/bench/http
out=$build/bench/results.jsonl
runs=${HTTP_RUNS:-3}
secs=${HTTP_SECONDS:-5}
conns=${HTTP_CONNS:-100}
port=${HTTP_PORT:-18780}

for b in http_cio http_epoll; do
    if [[ ! -x $bin/$b ]]; then
        echo "run_http.sh: no $bin/$b; build first (make)" >&2
        exit 1
    fi
done
if ! command -v wrk >/dev/null; then
    echo "run_http.sh: wrk not found (apt-get install wrk)" >&2
    exit 1
fi
if grep -Eq '^CIO_(SANITIZE|TSAN):BOOL=ON' "$build/CMakeCache.txt" \
    2>/dev/null; then
    echo "run_http.sh: $build is a sanitizer build; its timings mean" \
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
notes=()

impls=(cio-uring cio-epoll raw-epoll)
if command -v nginx >/dev/null; then
    impls+=(nginx)
else
    notes+=("nginx: not installed; skipped")
fi
if command -v node >/dev/null; then
    impls+=(node)
else
    notes+=("node: not installed; skipped")
fi
aiopy=""
for cand in python3 /usr/bin/python3; do
    if "$cand" -c 'import aiohttp' 2>/dev/null; then
        aiopy=$cand
        break
    fi
done
if [[ -n $aiopy ]]; then
    impls+=(aiohttp)
else
    notes+=("aiohttp: not importable (apt-get install python3-aiohttp);" \
            "skipped")
fi
if [[ -n ${HTTP_IMPLS:-} ]]; then
    read -r -a impls <<<"$HTTP_IMPLS"
fi

nginx_conf() {
    mkdir -p "$tmp/nginx"
    cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process on;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx;
    proxy_temp_path $tmp/nginx;
    fastcgi_temp_path $tmp/nginx;
    uwsgi_temp_path $tmp/nginx;
    scgi_temp_path $tmp/nginx;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
    }
}
CONF
}

server_cmd() {
    case $1 in
    cio-uring) cmd=(env CIO_BACKEND=uring "$bin/http_cio" "$port") ;;
    cio-epoll) cmd=(env CIO_BACKEND=epoll "$bin/http_cio" "$port") ;;
    raw-epoll) cmd=("$bin/http_epoll" "$port") ;;
    nginx) nginx_conf; cmd=(nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf") ;;
    node) cmd=(node "$here/http_node.js" "$port") ;;
    aiohttp) cmd=("$aiopy" "$here/http_aiohttp.py" "$port") ;;
    *) echo "run_http.sh: unknown implementation $1" >&2; return 1 ;;
    esac
    [[ ${HTTP_PIN:-0} == 1 ]] && cmd=(taskset -c 0 "${cmd[@]}")
    return 0
}

start_server() {
    server_cmd "$1" || return 1
    "${cmd[@]}" >>"$tmp/server.log" 2>&1 &
    spid=$!
    local i
    for ((i = 0; i < 400; i++)); do
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
    stop_server
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

# cpu_ticks PID: utime+stime of PID and its children processes (nginx's
# worker), in clock ticks.
cpu_ticks() {
    local total=0 p f
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        f=${f##*) }
        read -r -a v <<<"$f"
        total=$((total + v[11] + v[12]))
    done
    echo "$total"
}

# to_us VALUE: wrk's "1.23ms" / "456.00us" / "1.01s" in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) print n
        else if (v ~ /ms$/) print n * 1000
        else if (v ~ /s$/) print n * 1000000
        else print n }'
}

measure() {
    local impl=$1
    if ! start_server "$impl"; then
        notes+=("$impl: server did not start; run skipped")
        return 0
    fi
    local url="http://127.0.0.1:$port/" wrk=(wrk)
    [[ ${HTTP_PIN:-0} == 1 ]] && wrk=(taskset -c 1 wrk)
    "${wrk[@]}" -t1 -c"$conns" -d1s "$url" >/dev/null 2>&1 || true
    local t0 t1 hz
    hz=$(getconf CLK_TCK)
    t0=$(cpu_ticks "$spid")
    if ! "${wrk[@]}" -t1 -c"$conns" -d"${secs}s" --latency "$url" \
        >"$tmp/wrk.out" 2>&1; then
        stop_server
        notes+=("$impl: wrk failed; run skipped")
        return 0
    fi
    t1=$(cpu_ticks "$spid")
    stop_server
    local reqs rps p99 errs
    reqs=$(awk '/requests in/ { print $1 }' "$tmp/wrk.out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/wrk.out")
    p99=$(awk '$1 == "99%" { print $2 }' "$tmp/wrk.out")
    errs=$(awk '/Non-2xx|Socket errors/ { print }' "$tmp/wrk.out")
    [[ -n $errs ]] && notes+=("$impl: $errs")
    if [[ -z $reqs || $reqs == 0 ]]; then
        notes+=("$impl: no requests counted; run skipped")
        return 0
    fi
    local cpu
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$reqs" \
        'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
    echo "$impl $rps $cpu $(to_us "$p99")" >>"$tmp/runs"
}

for ((r = 0; r < runs; r++)); do
    n=${#impls[@]}
    for ((k = 0; k < n; k++)); do
        measure "${impls[$(((k + r) % n))]}"
    done
done

median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print ""; exit }
        if (NR % 2) print v[(NR + 1) / 2]
        else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

mkdir -p "$(dirname "$out")"
declare -A RPS CPU P99
for impl in "${impls[@]}"; do
    [[ -f $tmp/runs ]] || break
    rps=$(awk -v i="$impl" '$1 == i { print $2 }' "$tmp/runs" | median)
    [[ -z $rps ]] && continue
    cpu=$(awk -v i="$impl" '$1 == i { print $3 }' "$tmp/runs" | median)
    p99=$(awk -v i="$impl" '$1 == i { print $4 }' "$tmp/runs" | median)
    nr=$(awk -v i="$impl" '$1 == i' "$tmp/runs" | wc -l)
    RPS[$impl]=$rps CPU[$impl]=$cpu P99[$impl]=$p99
    printf '{"bench":"http","impl":"%s","value":%s,"unit":"req/s","n":%s,' \
        "$impl" "$rps" "$conns" >>"$out"
    printf '"runs":%s,"cpu_us_per_req":%s,"p99_us":%s}\n' \
        "$nr" "$cpu" "$p99" >>"$out"
done

base_rps=${RPS[raw-epoll]:-}
base_cpu=${CPU[raw-epoll]:-}
printf '\nhttp: Hello, World! keep-alive, wrk -t1 -c%s -d%ss, median of %s\n' \
    "$conns" "$secs" "$runs"
printf '%-10s %10s %8s %12s %8s %10s\n' impl req/s ratio cpu_us/req ratio \
    p99_us
for impl in "${impls[@]}"; do
    [[ -n ${RPS[$impl]:-} ]] || continue
    rr=- cr=-
    if [[ -n $base_rps ]]; then
        rr=$(awk -v a="${RPS[$impl]}" -v b="$base_rps" \
            'BEGIN { printf "%.2f", a / b }')
        cr=$(awk -v a="${CPU[$impl]}" -v b="$base_cpu" \
            'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    fi
    printf '%-10s %10.0f %8s %12s %8s %10s\n' "$impl" "${RPS[$impl]}" \
        "$rr" "${CPU[$impl]}" "$cr" "${P99[$impl]}"
done
for n in "${notes[@]}"; do
    echo "note: $n"
done

# ---- fetch: the client side ------------------------------------------------
# One http_cio server (io_uring) answers FETCH_COUNT (10000) GETs made
# with FETCH_CONC (100) in flight, first by the cio client
# (bench_fetch: cio_http_fetch_all over one client), then by asyncio +
# aiohttp (fetch_aiohttp.py: one ClientSession, Semaphore + gather); the
# two alternate FETCH_RUNS times (HTTP_RUNS). Appends the medians:
#   {"bench":"fetch","impl":"cio"|"aiohttp","value":REQ_PER_S,
#    "unit":"req/s","n":COUNT,"runs":R,"concurrency":K}
# and prints them with the ratio cio/aiohttp. HTTP_FETCH=0 skips this.
fetch_runs=${FETCH_RUNS:-$runs}
fetch_count=${FETCH_COUNT:-10000}
fetch_conc=${FETCH_CONC:-100}
fetch_notes=()
fetch_clients=()
if [[ ${HTTP_FETCH:-1} != 0 ]]; then
    if [[ -x $bin/bench_fetch ]]; then
        fetch_clients+=(cio)
    else
        fetch_notes+=("fetch/cio: no $bin/bench_fetch; skipped")
    fi
    if [[ -n $aiopy ]]; then
        fetch_clients+=(aiohttp)
    else
        fetch_notes+=("fetch/aiohttp: aiohttp not importable; skipped")
    fi
fi

fetch_client() {
    local cmd
    case $1 in
    cio) cmd=("$bin/bench_fetch") ;;
    aiohttp) cmd=("$aiopy" "$here/fetch_aiohttp.py") ;;
    esac
    [[ ${HTTP_PIN:-0} == 1 ]] && cmd=(taskset -c 1 "${cmd[@]}")
    if ! timeout 300 "${cmd[@]}" "http://127.0.0.1:$port/" "$fetch_count" \
        "$fetch_conc" >"$tmp/fetch.out" 2>>"$tmp/fetch.err"; then
        fetch_notes+=("fetch/$1: client failed; run skipped" \
            "($(tail -n 1 "$tmp/fetch.err" 2>/dev/null))")
        return 0
    fi
    awk '$1 ~ /^fetch\// && NF == 3 { split($1, p, "/"); print p[2], $2 }' \
        "$tmp/fetch.out" >>"$tmp/fetch_runs"
}

if ((${#fetch_clients[@]} > 0)); then
    if start_server cio-uring; then
        n=${#fetch_clients[@]}
        for ((r = 0; r < fetch_runs; r++)); do
            for ((k = 0; k < n; k++)); do
                fetch_client "${fetch_clients[$(((k + r) % n))]}"
            done
        done
        stop_server
    else
        fetch_notes+=("fetch: the http_cio server did not start; skipped")
    fi
fi

declare -A FRPS=()
for impl in "${fetch_clients[@]}"; do
    [[ -f $tmp/fetch_runs ]] || break
    v=$(awk -v i="$impl" '$1 == i { print $2 }' "$tmp/fetch_runs" | median)
    [[ -z $v ]] && continue
    nr=$(awk -v i="$impl" '$1 == i' "$tmp/fetch_runs" | wc -l)
    FRPS[$impl]=$v
    printf '{"bench":"fetch","impl":"%s","value":%s,"unit":"req/s","n":%s,' \
        "$impl" "$v" "$fetch_count" >>"$out"
    printf '"runs":%s,"concurrency":%s}\n' "$nr" "$fetch_conc" >>"$out"
done
if ((${#FRPS[@]} > 0)); then
    printf '\nfetch: %s GETs of "Hello, World!" from http_cio, %s in' \
        "$fetch_count" "$fetch_conc"
    printf ' flight, median of %s\n' "$fetch_runs"
    printf '%-10s %10s %8s\n' client req/s ratio
    for impl in "${fetch_clients[@]}"; do
        [[ -n ${FRPS[$impl]:-} ]] || continue
        fr=-
        [[ -n ${FRPS[aiohttp]:-} ]] && fr=$(awk -v a="${FRPS[$impl]}" \
            -v b="${FRPS[aiohttp]}" 'BEGIN { printf "%.2f", a / b }')
        printf '%-10s %10.0f %8s\n' "$impl" "${FRPS[$impl]}" "$fr"
    done
fi
for n in "${fetch_notes[@]}"; do
    echo "note: $n"
done
