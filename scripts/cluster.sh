#!/usr/bin/env bash
# A 3-silo LstmOrleans cluster on one machine, on Redis (membership, grain storage, reminders).
#
#   scripts/cluster.sh start    build the silo, start redis-server and 3 silos, wait until all are ready
#   scripts/cluster.sh status   show processes and readiness
#   scripts/cluster.sh stop     stop the silos (SIGTERM, graceful) and redis-server
#
# Ports: redis 6390 (REDIS_PORT overrides it); silo i = 1..3 listens on 11110+i (Orleans silo-to-silo), 30000+i
# (client gateway) and http://127.0.0.1:5080+i (HTTP API); these are fixed. Redis keeps nothing on disk: stop discards
# every model and stream.
# State, logs and pid files go to ${CLUSTER_DIR:-./.cluster}. Needs redis-server (Debian: apt-get install redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER_DIR="${CLUSTER_DIR:-$PWD/.cluster}"
REDIS_PORT="${REDIS_PORT:-6390}"
CONFIGURATION="${CONFIGURATION:-Release}"
SILOS="${SILOS:-3}"
SILO_DLL="silo/LstmOrleans.Silo/bin/${CONFIGURATION}/net10.0/LstmOrleans.Silo.dll"

start() {
  command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)" >&2; exit 1; }
  mkdir -p "$CLUSTER_DIR"
  if [ -f "$CLUSTER_DIR/redis.pid" ] && kill -0 "$(cat "$CLUSTER_DIR/redis.pid")" 2>/dev/null; then
    echo "already running (scripts/cluster.sh stop first)" >&2; exit 1
  fi
  echo "building the silo ($CONFIGURATION)..."
  dotnet build silo/LstmOrleans.Silo -c "$CONFIGURATION" -v quiet -nologo >/dev/null

  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$CLUSTER_DIR" --daemonize yes --pidfile "$CLUSTER_DIR/redis.pid" --logfile "$CLUSTER_DIR/redis.log"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "redis-server on 127.0.0.1:$REDIS_PORT"

  for i in $(seq "$SILOS"); do
    LSTMORLEANS_Cluster__Clustering=redis \
    LSTMORLEANS_Storage__Provider=redis \
    LSTMORLEANS_Reminders__Provider=redis \
    LSTMORLEANS_ConnectionStrings__Redis="127.0.0.1:$REDIS_PORT" \
    LSTMORLEANS_Cluster__SiloPort=$((11110 + i)) \
    LSTMORLEANS_Cluster__GatewayPort=$((30000 + i)) \
    LSTMORLEANS_Http__Urls="http://127.0.0.1:$((5080 + i))" \
      nohup dotnet "$SILO_DLL" >"$CLUSTER_DIR/silo$i.log" 2>&1 &
    echo $! >"$CLUSTER_DIR/silo$i.pid"
    echo "silo $i: pid $(cat "$CLUSTER_DIR/silo$i.pid"), gateway 127.0.0.1:$((30000 + i)), http://127.0.0.1:$((5080 + i))"
  done

  for i in $(seq "$SILOS"); do
    for _ in $(seq 240); do
      curl -sf "http://127.0.0.1:$((5080 + i))/readyz" >/dev/null 2>&1 && break
      kill -0 "$(cat "$CLUSTER_DIR/silo$i.pid")" 2>/dev/null || { echo "silo $i exited; see $CLUSTER_DIR/silo$i.log" >&2; exit 1; }
      sleep 0.5
    done
    curl -sf "http://127.0.0.1:$((5080 + i))/readyz" >/dev/null || { echo "silo $i not ready; see $CLUSTER_DIR/silo$i.log" >&2; exit 1; }
  done
  gateways=$(seq -s, -f "127.0.0.1:%g" $((30000 + 1)) $((30000 + SILOS)))
  echo "cluster ready. Try:"
  echo "  dotnet run --project client/LstmOrleans.Client -c $CONFIGURATION -- demo --cluster redis://127.0.0.1:$REDIS_PORT"
  echo "  dotnet run --project client/LstmOrleans.Client -c $CONFIGURATION -- predict demo/rds_cpu_utilization_cc0c53 --cluster $gateways"
}

stop() {
  for i in $(seq "$SILOS"); do
    pidfile="$CLUSTER_DIR/silo$i.pid"
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"   # graceful: the silo leaves the cluster and its grains deactivate
      for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      echo "silo $i stopped"
    fi
    rm -f "$pidfile"
  done
  if [ -f "$CLUSTER_DIR/redis.pid" ]; then
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$CLUSTER_DIR/redis.pid")" 2>/dev/null || true
    rm -f "$CLUSTER_DIR/redis.pid"
    echo "redis-server stopped"
  fi
}

status() {
  for i in $(seq "$SILOS"); do
    pidfile="$CLUSTER_DIR/silo$i.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((5080 + i))/readyz" || true)
      echo "silo $i: pid $(cat "$pidfile"), readyz $ready"
    else
      echo "silo $i: not running"
    fi
  done
  redis-cli -p "$REDIS_PORT" ping 2>/dev/null | sed 's/^/redis: /' || echo "redis: not running"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
