#!/usr/bin/env bash
# The echo benchmark: each server echoes 64-byte messages for echo_load's
# 100 connections (5 s measured after 1 s of warm-up). Per implementation:
# requests/s, the server's CPU time per request (utime+stime over the
# measured window, read by echo_load from /proc/PID/stat), p99 latency,
# and syscalls per request from one extra short pass under
# `perf stat -e raw_syscalls:sys_enter` (strace -c where perf cannot).
# The implementations run round-robin, RUNS times, starting each round one
# further along; the values are medians. Appends to
# BUILD/bench/results.jsonl, one record per implementation:
#   {"bench":"echo","impl":IMPL,"value":REQ_PER_S,"unit":"req/s","n":CONNS,
#    "runs":R,"cpu_us_per_req":X,"p99_us":Y,"syscalls_per_req":Z}
# and prints a table with ratios against raw-epoll.
#
# Usage: bench/echo/run_echo.sh BUILD
# Environment: ECHO_RUNS (3), ECHO_SECONDS (5), ECHO_WARMUP (1),
# ECHO_CONNS (100), ECHO_PORT (18765), ECHO_SYSCALLS (1; 0 skips the
# syscall pass), ECHO_PIN (0; 1 pins the server to CPU 0 and the client
# to CPU 1), PYTHON (python3), ECHO_IMPLS (a space-separated list to run
# instead of the default set; more are known: cio-uring-nomulti, cio on
# io_uring without multishot accept and receive (CIO_URING_OPS=
# nomultishot), and raw-epoll-oneshot, the raw server making the
# syscalls cio's epoll backend makes: one-shot re-arms, reads to EAGAIN).
set -euo pipefail

build=${1:?usage: run_echo.sh BUILD}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/bench/echo
out=$build/bench/results.jsonl
runs=${ECHO_RUNS:-3}
secs=${ECHO_SECONDS:-5}
warm=${ECHO_WARMUP:-1}
conns=${ECHO_CONNS:-100}
port=${ECHO_PORT:-18765}
py=${PYTHON:-python3}

for b in echo_load echo_cio echo_epoll; do
    if [[ ! -x $bin/$b ]]; then
        echo "run_echo.sh: no $bin/$b; build first (make)" >&2
        exit 1
    fi
done
if grep -Eq '^CIO_(SANITIZE|TSAN):BOOL=ON' "$build/CMakeCache.txt" \
    2>/dev/null; then
    echo "run_echo.sh: $build is a sanitizer build; its timings mean" \
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

# ---- which implementations ----------------------------------------------

impls=(cio-uring cio-epoll raw-epoll)
if command -v "$py" >/dev/null; then
    impls+=(asyncio)
else
    notes+=("asyncio: $py not found; skipped")
    py=""
fi
uvpy=""
for cand in "$py" /usr/bin/python3; do
    if [[ -n $cand ]] && "$cand" -c 'import uvloop' 2>/dev/null; then
        uvpy=$cand
        break
    fi
done
if [[ -n $uvpy ]]; then
    impls+=(uvloop)
    [[ $uvpy != "$py" ]] && notes+=("uvloop: run with $uvpy")
else
    notes+=("uvloop: not importable (apt-get install python3-uvloop);" \
            "skipped")
fi
if [[ -x $bin/echo_libuv ]]; then
    impls+=(libuv)
else
    notes+=("libuv: echo_libuv not built (no libuv1-dev); skipped")
fi
if [[ -n ${ECHO_IMPLS:-} ]]; then
    read -r -a impls <<<"$ECHO_IMPLS"
fi

# server_cmd IMPL: the command line of IMPL's server, in the array `cmd`.
server_cmd() {
    local pin=()
    [[ ${ECHO_PIN:-0} == 1 ]] && pin=(taskset -c 0)
    case $1 in
    cio-epoll) cmd=(env CIO_BACKEND=epoll "$bin/echo_cio" "$port") ;;
    cio-epoll-raw) cmd=(env CIO_BACKEND=epoll "$bin/echo_cio" "$port" raw) ;;
    cio-uring) cmd=(env CIO_BACKEND=uring "$bin/echo_cio" "$port") ;;
    cio-uring-nomulti) cmd=(env CIO_BACKEND=uring \
        CIO_URING_OPS=nomultishot "$bin/echo_cio" "$port") ;;
    raw-epoll) cmd=("$bin/echo_epoll" "$port") ;;
    raw-epoll-oneshot) cmd=("$bin/echo_epoll" "$port" oneshot) ;;
    asyncio) cmd=("$py" "$here/echo_asyncio.py" "$port") ;;
    uvloop) cmd=("$uvpy" "$here/echo_asyncio.py" "$port" --uvloop) ;;
    libuv) cmd=("$bin/echo_libuv" "$port") ;;
    *) echo "run_echo.sh: unknown implementation $1" >&2; return 1 ;;
    esac
    cmd=("${pin[@]}" "${cmd[@]}")
}

# start_server IMPL: start it (pid in `spid`) and wait until it accepts.
start_server() {
    server_cmd "$1" || return 1
    "${cmd[@]}" >>"$tmp/server.log" 2>&1 &
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

# field NAME FILE: the value of `NAME value unit` in FILE.
field() {
    awk -v n="$1" '$1 == n { print $2 }' "$2"
}

# measure IMPL: one measured run, appended to $tmp/runs as
# `impl rps cpu_us_per_req p99_us`.
measure() {
    local impl=$1 pin=()
    [[ ${ECHO_PIN:-0} == 1 ]] && pin=(-a 1)
    if ! start_server "$impl"; then
        notes+=("$impl: server did not start; run skipped")
        return 0
    fi
    local ok=1
    "$bin/echo_load" -c "$conns" -d "$secs" -w "$warm" -p "$spid" \
        "${pin[@]}" "$port" >"$tmp/load.out" 2>>"$tmp/server.log" || ok=0
    stop_server
    if ((ok == 0)); then
        notes+=("$impl: load client failed; run skipped")
        return 0
    fi
    echo "$impl $(field echo.rps "$tmp/load.out")" \
        "$(field echo.cpu_us_per_req "$tmp/load.out")" \
        "$(field echo.p99_us "$tmp/load.out")" >>"$tmp/runs"
}

# ---- syscalls per request ------------------------------------------------

sc_names="read write recvfrom sendto readv writev epoll_wait epoll_pwait"
sc_names+=" epoll_pwait2 epoll_ctl io_uring_enter accept4 close"
sc_tool=""
if [[ ${ECHO_SYSCALLS:-1} != 0 ]]; then
    if perf stat -e raw_syscalls:sys_enter -o /dev/null -- true \
        >/dev/null 2>&1; then
        sc_tool=perf
    elif command -v strace >/dev/null; then
        sc_tool=strace
    else
        notes+=("syscalls: neither perf tracepoints nor strace; skipped")
    fi
fi

# count_syscalls IMPL: a 2 s pass with the server's syscalls counted,
# appended to $tmp/sc as `impl per_request name=per_request...`.
count_syscalls() {
    local impl=$1
    if ! start_server "$impl"; then
        notes+=("$impl: server did not start; no syscall count")
        return 0
    fi
    local tpid ev=raw_syscalls:sys_enter s
    if [[ $sc_tool == perf ]]; then
        for s in $sc_names; do
            ev+=",syscalls:sys_enter_$s"
        done
        perf stat -x, -o "$tmp/sc.txt" -e "$ev" -p "$spid" 2>/dev/null &
    else
        strace -f -c -o "$tmp/sc.txt" -p "$spid" 2>/dev/null &
    fi
    tpid=$!
    sleep 0.3
    local ok=1
    "$bin/echo_load" -c "$conns" -d 2 -w 0 "$port" >"$tmp/load.out" \
        2>>"$tmp/server.log" || ok=0
    kill -INT "$tpid" 2>/dev/null || true
    wait "$tpid" 2>/dev/null || true
    stop_server
    local req
    req=$(field echo.total "$tmp/load.out")
    if ((ok == 0)) || [[ -z $req || $req == 0 ]]; then
        notes+=("$impl: syscall pass failed")
        return 0
    fi
    if [[ $sc_tool == perf ]]; then
        awk -F, -v impl="$impl" -v req="$req" '
            $3 == "raw_syscalls:sys_enter" { total = $1 }
            $3 ~ /^syscalls:sys_enter_/ && $1 / req >= 0.005 {
                n = $3; sub(/^syscalls:sys_enter_/, "", n)
                parts = parts sprintf(" %s=%.2f", n, $1 / req)
            }
            END { if (total != "") printf "%s %.2f%s\n", impl,
                                           total / req, parts }
        ' "$tmp/sc.txt" >>"$tmp/sc"
    else
        awk -v impl="$impl" -v req="$req" '
            $NF == "total" { total = $4 }
            NF >= 5 && $1 ~ /^[0-9.]+$/ && $NF != "total" &&
            $4 / req >= 0.005 {
                parts = parts sprintf(" %s=%.2f", $NF, $4 / req)
            }
            END { if (total != "") printf "%s %.2f%s\n", impl,
                                           total / req, parts }
        ' "$tmp/sc.txt" >>"$tmp/sc"
    fi
}

# ---- run -------------------------------------------------------------------

start=$SECONDS
: >"$tmp/runs"
: >"$tmp/sc"
: >"$tmp/server.log"
n=${#impls[@]}
for ((r = 0; r < runs; r++)); do
    echo "echo: run $((r + 1))/$runs ..." >&2
    for ((k = 0; k < n; k++)); do
        measure "${impls[$(((k + r) % n))]}"
    done
done
if [[ -n $sc_tool ]]; then
    echo "echo: syscall pass ($sc_tool) ..." >&2
    for impl in "${impls[@]}"; do
        count_syscalls "$impl"
    done
fi

# ---- medians, JSON, table ------------------------------------------------

if [[ ! -s $tmp/runs ]]; then
    echo "run_echo.sh: no run succeeded" >&2
    sort "$tmp/server.log" | uniq -c >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
awk -v runs="$runs" -v conns="$conns" -v secs="$secs" -v warm="$warm" \
    -v order="${impls[*]}" -v out="$out" -v tool="$sc_tool" '
function median(s,    v, m, i, j, t) {
    m = split(s, v, " ")
    for (i = 2; i <= m; i++)
        for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
FNR == NR {
    rps[$1] = rps[$1] " " $2; cpu[$1] = cpu[$1] " " $3
    p99[$1] = p99[$1] " " $4; cnt[$1]++
    next
}
{
    sc[$1] = $2
    detail = ""
    for (i = 3; i <= NF; i++)
        detail = detail " " $i
    scd[$1] = detail
}
END {
    k = split(order, im, " ")
    for (i = 1; i <= k; i++) {
        x = im[i]
        if (!cnt[x])
            continue
        mr[x] = median(rps[x]); mc[x] = median(cpu[x]); mp[x] = median(p99[x])
        rec = sprintf("{\"bench\":\"echo\",\"impl\":\"%s\",\"value\":%.1f," \
                      "\"unit\":\"req/s\",\"n\":%d,\"runs\":%d," \
                      "\"cpu_us_per_req\":%.2f,\"p99_us\":%.1f", x, mr[x],
                      conns, cnt[x], mc[x], mp[x])
        if (x in sc)
            rec = rec sprintf(",\"syscalls_per_req\":%.2f", sc[x])
        print rec "}" >> out
    }
    printf "\necho: %d connections, 64 B messages, %g s measured after " \
           "%g s warm-up; medians of %d runs\n", conns, secs, warm, runs
    printf "%-14s %9s %6s %11s %6s %9s %9s\n", "impl", "req/s", "x raw",
           "cpu_us/req", "x raw", "p99_us", "sysc/req"
    base = "raw-epoll"
    for (i = 1; i <= k; i++) {
        x = im[i]
        if (!cnt[x])
            continue
        rr = rc = "-"
        if ((base in mr) && mr[base] > 0)
            rr = sprintf("%.2f", mr[x] / mr[base])
        if ((base in mc) && mc[base] > 0)
            rc = sprintf("%.2f", mc[x] / mc[base])
        printf "%-14s %9.0f %6s %11.2f %6s %9.0f %9s\n", x, mr[x], rr, mc[x],
               rc, mp[x], (x in sc) ? sprintf("%.2f", sc[x]) : "-"
    }
    printf "\nper run (req/s | cpu_us/req):\n"
    for (i = 1; i <= k; i++)
        if (cnt[im[i]])
            printf "  %-14s %s |%s\n", im[i], rps[im[i]], cpu[im[i]]
    if (tool != "") {
        printf "\nsyscalls per request by call (%s, one 2 s pass):\n", tool
        for (i = 1; i <= k; i++)
            if (im[i] in sc)
                printf "  %-14s%s\n", im[i], scd[im[i]]
    }
}' "$tmp/runs" "$tmp/sc"

for note in "${notes[@]}"; do
    echo "note: $note"
done
if grep -q . "$tmp/server.log"; then
    sort "$tmp/server.log" | uniq -c | grep -v 'SIGTERM: shutting down' |
        sed 's/^/server log: /' | head -20 || true
fi
echo "echo: $((SECONDS - start)) s; results appended to $out" >&2
