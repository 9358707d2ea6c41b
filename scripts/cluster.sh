#!/usr/bin/env bash
# A 3-silo LstmOrleans cluster on one machine: membership and reminders on Redis, grain storage on Redis or PostgreSQL.
#
#   scripts/cluster.sh start    build the silo, start redis-server (and PostgreSQL with STORE=postgres) and 3 silos,
#                               wait until all are ready; a start that fails stops whatever it had started
#   scripts/cluster.sh status   show processes and readiness
#   scripts/cluster.sh stop     stop the silos (SIGTERM, graceful), then redis-server (and PostgreSQL)
#   scripts/cluster.sh restart-silo N   stop silo N if it runs (SIGTERM) and start it again: after a crash or kill -9
#
# STORE=redis (default) keeps grain state in Redis; STORE=postgres keeps it in a private PostgreSQL server (initdb +
# pg_ctl from the Debian binaries in /usr/lib/postgresql/*/bin, or PG_BIN) under $CLUSTER_DIR/postgres. The silo has
# no PostgreSQL membership or reminder provider, so Redis runs in both cases.
# Ports: redis 6390 (REDIS_PORT), postgres 5490 (PG_PORT); silo i = 1..$SILOS listens on SILO_PORT_BASE+i (Orleans
# silo-to-silo, base 11110), GATEWAY_PORT_BASE+i (client gateway, base 30000) and http://127.0.0.1:HTTP_PORT_BASE+i
# (HTTP API, base 5080). Neither server keeps anything once stopped: stop discards every model and stream.
# State, logs and pid files go to ${CLUSTER_DIR:-./.cluster}; status and stop read the settings start used from there.
# BUILD=0 skips the build (the silo binary must exist). Needs redis-server (Debian: apt-get install redis-server) and
# for STORE=postgres the postgresql package.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER_DIR="${CLUSTER_DIR:-$PWD/.cluster}"
# status and stop use what start used, whatever this shell's variables say (stopping the cluster on REDIS_PORT=6391
# must not shut down another Redis on 6390).
if [ "${1:-}" != start ] && [ -f "$CLUSTER_DIR/cluster.env" ]; then
  # shellcheck source=/dev/null
  . "$CLUSTER_DIR/cluster.env"
fi
STORE="${STORE:-redis}"
REDIS_PORT="${REDIS_PORT:-6390}"
PG_PORT="${PG_PORT:-5490}"
SILOS="${SILOS:-3}"
SILO_PORT_BASE="${SILO_PORT_BASE:-11110}"
GATEWAY_PORT_BASE="${GATEWAY_PORT_BASE:-30000}"
HTTP_PORT_BASE="${HTTP_PORT_BASE:-5080}"
CONFIGURATION="${CONFIGURATION:-Release}"
BUILD="${BUILD:-1}"
SILO_DLL="silo/LstmOrleans.Silo/bin/${CONFIGURATION}/net10.0/LstmOrleans.Silo.dll"
PG_DIR="$CLUSTER_DIR/postgres"

fail() { echo "$*" >&2; exit 1; }

# True when something accepts connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# PostgreSQL refuses to run as root: as root its tools run as the 'postgres' user.
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1
}

start_redis() {
  command -v redis-server >/dev/null || fail "redis-server not found (apt-get install redis-server)"
  # A Redis already on the port would answer the ping below and the silos would join whatever cluster it holds.
  port_in_use "$REDIS_PORT" && fail "port $REDIS_PORT (REDIS_PORT) is in use; pick another, e.g. REDIS_PORT=6391"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$CLUSTER_DIR" --daemonize yes --pidfile "$CLUSTER_DIR/redis.pid" --logfile "$CLUSTER_DIR/redis.log"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && alive "$CLUSTER_DIR/redis.pid" && break; sleep 0.1; done
  alive "$CLUSTER_DIR/redis.pid" && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 \
    || fail "redis-server did not start on 127.0.0.1:$REDIS_PORT; see $CLUSTER_DIR/redis.log"
  echo "redis-server on 127.0.0.1:$REDIS_PORT"
}

start_postgres() {
  local bin; bin=$(pg_bin)
  [ -n "$bin" ] && [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] \
    || fail "PostgreSQL binaries not found in /usr/lib/postgresql/*/bin (apt-get install postgresql, or set PG_BIN)"
  port_in_use "$PG_PORT" && fail "port $PG_PORT (PG_PORT) is in use; pick another, e.g. PG_PORT=5491"
  rm -rf "$PG_DIR"; mkdir -p "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
  as_postgres test -w "$PG_DIR" || fail "the postgres user cannot write $PG_DIR; set CLUSTER_DIR to a folder it can reach (e.g. under /tmp)"
  as_postgres "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync >"$PG_DIR/initdb.log" 2>&1 \
    || fail "initdb failed; see $PG_DIR/initdb.log"
  # TCP only: a unix socket path under a deep CLUSTER_DIR can exceed the 107-byte limit.
  as_postgres "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -h 127.0.0.1 -c unix_socket_directories= -c max_connections=200" start >/dev/null \
    || fail "PostgreSQL did not start on 127.0.0.1:$PG_PORT; see $PG_DIR/postgres.log"
  echo "postgres on 127.0.0.1:$PG_PORT (data in $PG_DIR/data)"
}

launch_silo() {
  local i=$1 storage=redis
  [ "$STORE" = postgres ] && storage=postgres
  LSTMORLEANS_Cluster__Clustering=redis \
  LSTMORLEANS_Storage__Provider=$storage \
  LSTMORLEANS_Reminders__Provider=redis \
  LSTMORLEANS_ConnectionStrings__Redis="127.0.0.1:$REDIS_PORT" \
  LSTMORLEANS_ConnectionStrings__Postgres="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=postgres" \
  LSTMORLEANS_Cluster__SiloPort=$((SILO_PORT_BASE + i)) \
  LSTMORLEANS_Cluster__GatewayPort=$((GATEWAY_PORT_BASE + i)) \
  LSTMORLEANS_Http__Urls="http://127.0.0.1:$((HTTP_PORT_BASE + i))" \
    nohup dotnet "$SILO_DLL" >>"$CLUSTER_DIR/silo$i.log" 2>&1 &
  echo $! >"$CLUSTER_DIR/silo$i.pid"
  echo "silo $i: pid $(cat "$CLUSTER_DIR/silo$i.pid"), gateway 127.0.0.1:$((GATEWAY_PORT_BASE + i)), http://127.0.0.1:$((HTTP_PORT_BASE + i))"
}

wait_ready() {
  local i=$1
  for _ in $(seq 240); do
    curl -sf -m 2 "http://127.0.0.1:$((HTTP_PORT_BASE + i))/readyz" >/dev/null 2>&1 && return 0
    if ! alive "$CLUSTER_DIR/silo$i.pid"; then
      # The silo's own one-line reason (a port in use, a bad setting) is in its log.
      echo "silo $i exited; see $CLUSTER_DIR/silo$i.log:" >&2
      grep "silo failed to start" "$CLUSTER_DIR/silo$i.log" | tail -n 1 >&2 || tail -n 5 "$CLUSTER_DIR/silo$i.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  fail "silo $i not ready after 120 s; see $CLUSTER_DIR/silo$i.log"
}

stop_silo() {
  local i=$1 pid pidfile
  pidfile="$CLUSTER_DIR/silo$i.pid"
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"   # graceful: the silo leaves the cluster and its grains deactivate
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "silo $i stopped"
  fi
  rm -f "$pidfile"
}

# One silo, running or not (after a crash, or to roll it), with the settings start used.
restart_silo() {
  local i=${1:-}
  [[ "$i" =~ ^[0-9]+$ ]] && [ "$i" -ge 1 ] && [ "$i" -le "$SILOS" ] || { echo "usage: $0 restart-silo 1..$SILOS" >&2; exit 2; }
  [ -f "$CLUSTER_DIR/cluster.env" ] || fail "no cluster started in $CLUSTER_DIR (scripts/cluster.sh start first)"
  alive "$CLUSTER_DIR/redis.pid" || fail "redis-server is not running; scripts/cluster.sh stop, then start"
  stop_silo "$i"
  launch_silo "$i"
  wait_ready "$i"
  echo "silo $i ready"
}

start_silos() {
  for i in $(seq "$SILOS"); do : >"$CLUSTER_DIR/silo$i.log"; launch_silo "$i"; done
  for i in $(seq "$SILOS"); do wait_ready "$i"; done
}

start() {
  case "$STORE" in redis|postgres) ;; *) echo "STORE must be redis or postgres, not '$STORE'" >&2; exit 2 ;; esac
  mkdir -p "$CLUSTER_DIR"
  for pidfile in "$CLUSTER_DIR"/redis.pid "$CLUSTER_DIR"/silo*.pid "$PG_DIR/data/postmaster.pid"; do
    [ -f "$pidfile" ] || continue
    kill -0 "$(head -n 1 "$pidfile")" 2>/dev/null && fail "already running (scripts/cluster.sh stop first)"
  done
  if [ "$BUILD" != 0 ]; then
    echo "building the silo ($CONFIGURATION)..."
    dotnet build silo/LstmOrleans.Silo -c "$CONFIGURATION" -v quiet -nologo >/dev/null
  fi
  [ -f "$SILO_DLL" ] || fail "$SILO_DLL not found (build it, or leave BUILD unset)"

  cat >"$CLUSTER_DIR/cluster.env" <<ENV
STORE=$STORE
REDIS_PORT=$REDIS_PORT
PG_PORT=$PG_PORT
SILOS=$SILOS
SILO_PORT_BASE=$SILO_PORT_BASE
GATEWAY_PORT_BASE=$GATEWAY_PORT_BASE
HTTP_PORT_BASE=$HTTP_PORT_BASE
CONFIGURATION=$CONFIGURATION
ENV
  # From here on a failure (a silo that exits, a server that does not start, Ctrl+C) stops what was started
  # instead of leaving half a cluster running until someone runs stop.
  trap 'rc=$?; trap - EXIT; if [ "$rc" != 0 ]; then echo "start failed: stopping what it started" >&2; stop >&2; fi; exit "$rc"' EXIT
  trap 'exit 130' INT TERM
  start_redis
  [ "$STORE" = postgres ] && start_postgres
  start_silos
  trap - EXIT INT TERM

  gateways=$(seq -s, -f "127.0.0.1:%g" $((GATEWAY_PORT_BASE + 1)) $((GATEWAY_PORT_BASE + SILOS)))
  echo "cluster ready. Try:"
  echo "  dotnet run --project client/LstmOrleans.Client -c $CONFIGURATION -- demo --cluster redis://127.0.0.1:$REDIS_PORT"
  echo "  dotnet run --project client/LstmOrleans.Client -c $CONFIGURATION -- predict demo/rds_cpu_utilization_cc0c53 --cluster $gateways"
}

stop() {
  for i in $(seq "$SILOS"); do stop_silo "$i"; done
  if [ -f "$PG_DIR/data/postmaster.pid" ]; then
    as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null 2>&1 \
      || kill "$(head -n 1 "$PG_DIR/data/postmaster.pid")" 2>/dev/null || true
    echo "postgres stopped"
  fi
  rm -rf "$PG_DIR"
  if [ -f "$CLUSTER_DIR/redis.pid" ]; then
    # By its pid, not 'redis-cli -p PORT shutdown': that would stop whichever Redis has the port.
    pid=$(cat "$CLUSTER_DIR/redis.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$CLUSTER_DIR/redis.pid"
    echo "redis-server stopped"
  fi
  rm -f "$CLUSTER_DIR/cluster.env"
}

status() {
  for i in $(seq "$SILOS"); do
    pidfile="$CLUSTER_DIR/silo$i.pid"
    if alive "$pidfile"; then
      ready=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((HTTP_PORT_BASE + i))/readyz" || true)
      echo "silo $i: pid $(cat "$pidfile"), readyz $ready"
    else
      echo "silo $i: not running"
    fi
  done
  if alive "$CLUSTER_DIR/redis.pid"; then echo "redis: pid $(cat "$CLUSTER_DIR/redis.pid") on 127.0.0.1:$REDIS_PORT"; else echo "redis: not running"; fi
  if [ "$STORE" = postgres ]; then
    if [ -f "$PG_DIR/data/postmaster.pid" ] && kill -0 "$(head -n 1 "$PG_DIR/data/postmaster.pid")" 2>/dev/null; then
      echo "postgres: pid $(head -n 1 "$PG_DIR/data/postmaster.pid") on 127.0.0.1:$PG_PORT"
    else
      echo "postgres: not running"
    fi
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart-silo) restart_silo "${2:-}" ;;
  *) echo "usage: $0 start|stop|status|restart-silo N" >&2; exit 2 ;;
esac
