#!/usr/bin/env bash
# Run a command with throwaway database servers on loopback:
#   tests/servers.sh CMD [ARGS...]
# Starts redis-server and PostgreSQL (when installed) in temporary
# directories on free ports, exports where they listen, runs CMD, then
# stops them and removes their directories.
#   CIO_TEST_REDIS  host:port of redis-server
#   CIO_TEST_PG     a libpq conninfo string (hostaddr=127.0.0.1 ...)
# Tests that need a server skip when its variable is unset, unless
# CIO_TEST_REQUIRE_SERVERS=1 (CI), which turns such a skip into a failure.
# A variable already set by the caller is kept and no server is started.
set -uo pipefail

tmp=$(mktemp -d /tmp/cio-servers.XXXXXX)
chmod 755 "$tmp"
redis_pid=""
pg_data=""
pg_ctl=""
as_pg=()

cleanup() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
  fi
  if [ -n "$pg_data" ]; then
    "${as_pg[@]}" "$pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port: bind to 0 and read what the kernel picked.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait until something accepts on 127.0.0.1:$1 (at most ~10 s).
wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

if [ -z "${CIO_TEST_REDIS:-}" ] && command -v redis-server >/dev/null; then
  port=$(free_port)
  mkdir -p "$tmp/redis"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp/redis" --logfile "$tmp/redis/log" >/dev/null 2>&1 &
  redis_pid=$!
  if wait_port "$port"; then
    export CIO_TEST_REDIS="127.0.0.1:$port"
    export CIO_TEST_REDIS_SERVER
    CIO_TEST_REDIS_SERVER=$(command -v redis-server)
  else
    echo "servers.sh: redis-server did not start" >&2
  fi
fi

pg_bin=""
if command -v pg_config >/dev/null; then
  pg_bin=$(pg_config --bindir)
fi
if [ ! -x "$pg_bin/initdb" ]; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
fi
if [ -z "${CIO_TEST_PG:-}" ] && [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ]; then
  # initdb refuses to run as root: use the postgres account then.
  if [ "$(id -u)" = 0 ]; then
    if id postgres >/dev/null 2>&1; then
      as_pg=(runuser -u postgres --)
    else
      pg_bin=""
    fi
  fi
fi
if [ -z "${CIO_TEST_PG:-}" ] && [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ]; then
  port=$(free_port)
  mkdir -p "$tmp/pg"
  [ ${#as_pg[@]} -gt 0 ] && chown postgres: "$tmp/pg"
  pg_ctl="$pg_bin/pg_ctl"
  if "${as_pg[@]}" "$pg_bin/initdb" -D "$tmp/pg/data" -A trust -U postgres \
       --no-sync >"$tmp/initdb.log" 2>&1 &&
     "${as_pg[@]}" "$pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/log" -w \
       -o "-c listen_addresses=127.0.0.1 -p $port -k $tmp/pg -c fsync=off -c max_connections=200" \
       start >/dev/null 2>&1; then
    pg_data="$tmp/pg/data"
    if wait_port "$port"; then
      export CIO_TEST_PG="hostaddr=127.0.0.1 port=$port user=postgres dbname=postgres"
    fi
  else
    echo "servers.sh: PostgreSQL did not start:" >&2
    cat "$tmp/initdb.log" "$tmp/pg/log" 2>/dev/null | tail -20 >&2
  fi
fi

"$@"
