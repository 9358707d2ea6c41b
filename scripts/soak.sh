#!/usr/bin/env bash
# Soak benchmark: one real silo process (durable SQLite storage) and `lstmorleans bench` driving single-observation
# ingest into STREAMS streams at a fixed offered RATE (observations/s) for MINUTES minutes. Every interval (60 s by
# default) it records the silo's RSS (VmRSS from /proc), the interval's calls, errors and p50/p99/max latency
# (counted from each call's scheduled send time, so stalls are not hidden) and the load average, as one CSV row.
# At the end it prints a summary: RSS slope (least squares over the second half of the run; each stream's history
# buffer of 512 steps fills after 512 * STREAMS / RATE seconds, so keep that well inside the first half to read the
# slope as steady state), p99 per interval (median, max, first vs last quarter) and total errors.
#
# usage: scripts/soak.sh [--rate OBS_PER_S] [--minutes N] [--streams N] [--interval S] [--out DIR]
#   defaults: --rate 1500 (about half of the single durable SQLite ingest `lstmorleans bench --stores sqlite
#   --tests single` measured on the 2-core reference machine, see BENCHMARKS.md), --minutes 30, --streams 1000,
#   --interval 60, --out ./.soak/<UTC timestamp>.
# Output: DIR/soak.csv (one row per interval), DIR/summary.txt, DIR/bench.json (the bench's own report), DIR/silo.log.
# The silo runs with its defaults otherwise (localhost clustering, history 512, every step persisted); it runs in this
# working directory's Release build, copied to DIR/bin first.
set -euo pipefail
cd "$(dirname "$0")/.."

rate=1500
minutes=30
streams=1000
interval=60
out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rate) rate=$2; shift ;;
    --minutes) minutes=$2; shift ;;
    --streams) streams=$2; shift ;;
    --interval) interval=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
CONFIGURATION="${CONFIGURATION:-Release}"
SILO_PORT="${SOAK_SILO_PORT:-21111}"
GATEWAY_PORT="${SOAK_GATEWAY_PORT:-21300}"
HTTP_PORT="${SOAK_HTTP_PORT:-21580}"
out="${out:-$PWD/.soak/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
out=$(cd "$out" && pwd)

echo "building silo and client ($CONFIGURATION)..."
dotnet build silo/LstmOrleans.Silo -c "$CONFIGURATION" -v quiet -nologo >/dev/null
dotnet build client/LstmOrleans.Client -c "$CONFIGURATION" -v quiet -nologo >/dev/null
# Run from private copies: a rebuild during a 30-minute run would otherwise rewrite the assemblies under the processes.
rm -rf "$out/bin"; mkdir -p "$out/bin"
cp -r "silo/LstmOrleans.Silo/bin/$CONFIGURATION/net10.0" "$out/bin/silo"
cp -r "client/LstmOrleans.Client/bin/$CONFIGURATION/net10.0" "$out/bin/client"
SILO_DLL="$out/bin/silo/LstmOrleans.Silo.dll"
CLIENT_DLL="$out/bin/client/lstmorleans.dll"

dotnet "$SILO_DLL" --Storage:Provider=sqlite "--Storage:DataFolder=$out/data" \
  --Cluster:ClusterId=soak --Cluster:ServiceId=soak \
  "--Cluster:SiloPort=$SILO_PORT" "--Cluster:GatewayPort=$GATEWAY_PORT" "--Http:Urls=http://127.0.0.1:$HTTP_PORT" \
  >"$out/silo.log" 2>&1 &
silo_pid=$!
cleanup() {
  if kill -0 "$silo_pid" 2>/dev/null; then kill -TERM "$silo_pid"; wait "$silo_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$silo_pid" 2>/dev/null || { echo "silo exited; see $out/silo.log" >&2; exit 1; }
  sleep 0.5
done
curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || { echo "silo not ready; see $out/silo.log" >&2; exit 1; }
echo "silo pid $silo_pid ready (gateway 127.0.0.1:$GATEWAY_PORT, SQLite in $out/data)"

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$silo_pid/status"; }
csv="$out/soak.csv"
echo "utc,t_s,calls,errors,p50_ms,p99_ms,max_ms,silo_rss_mib,load1" >"$csv"
echo "$(date -u +%FT%TZ),0,0,0,,,,$(rss_mib),$(cut -d' ' -f1 /proc/loadavg)" >>"$csv"
echo "soak: $streams streams, $rate observations/s, $minutes min, a row every $interval s -> $csv"

# The bench's progress (including the "interval ..." lines) goes to stderr in --json mode; each interval line becomes
# a CSV row with the silo's RSS and the load average read at that moment.
status=0
dotnet "$CLIENT_DLL" bench --cluster "127.0.0.1:$GATEWAY_PORT" --cluster-id soak --service-id soak \
  --tests single --streams "$streams" --rate "$rate" --warmup 10 --duration $((minutes * 60)) \
  --report-every "$interval" --json 2>&1 >"$out/bench.json" |
  while IFS= read -r line; do
    echo "$line"
    if [[ $line == interval* ]]; then
      t=$(sed -E 's/.* t=([0-9]+).*/\1/' <<<"$line")
      calls=$(sed -E 's/.* calls=([0-9]+).*/\1/' <<<"$line")
      errors=$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")
      p50=$(sed -E 's/.* p50_us=([0-9]+).*/\1/' <<<"$line")
      p99=$(sed -E 's/.* p99_us=([0-9]+).*/\1/' <<<"$line")
      max=$(sed -E 's/.* max_us=([0-9]+).*/\1/' <<<"$line")
      printf '%s,%s,%s,%s,%.1f,%.1f,%.1f,%s,%s\n' "$(date -u +%FT%TZ)" "$t" "$calls" "$errors" \
        "$(bc -l <<<"$p50/1000")" "$(bc -l <<<"$p99/1000")" "$(bc -l <<<"$max/1000")" "$(rss_mib)" \
        "$(cut -d' ' -f1 /proc/loadavg)" >>"$csv"
    fi
  done || status=$?

# Summary. Rows: the first is the idle silo before the load; the last may be a short remainder interval.
awk -F, -v rate="$rate" -v streams="$streams" -v interval="$interval" '
  NR == 1 { next }
  NR == 2 { idle = $8; next }
  { n++; t[n] = $2; calls[n] = $3; err += $4; p50[n] = $5; p99[n] = $6; mx[n] = $7; rss[n] = $8; load[n] = $9; total += $3 }
  function median(a, k,   b, i, j, x) { for (i = 1; i <= k; i++) b[i] = a[i]
    for (i = 2; i <= k; i++) { x = b[i]; for (j = i - 1; j >= 1 && b[j] > x; j--) b[j + 1] = b[j]; b[j + 1] = x }
    return k % 2 ? b[(k + 1) / 2] : (b[k / 2] + b[k / 2 + 1]) / 2 }
  END {
    if (n == 0) { print "no intervals recorded"; exit 1 }
    full = n; if (n > 1 && t[n] - t[n - 1] < interval * 0.9) full = n - 1   # drop a short last interval from p99 stats
    half = int(full / 2) + 1; sx = sy = sxx = sxy = 0; m = 0
    for (i = half; i <= full; i++) { x = t[i] / 60; y = rss[i]; m++; sx += x; sy += y; sxx += x * x; sxy += x * y }
    slope = m > 1 ? (m * sxy - sx * sy) / (m * sxx - sx * sx) : 0
    q = int(full / 4); if (q < 1) q = 1
    for (i = 1; i <= full; i++) { a[i] = p99[i]; if (p99[i] > worst) worst = p99[i]; if (mx[i] > maxall) maxall = mx[i] }
    for (i = 1; i <= q; i++) f[i] = p99[i]; for (i = 1; i <= q; i++) l[i] = p99[full - q + i]
    for (i = 1; i <= full; i++) { if (i == 1 || load[i] < lmin) lmin = load[i]; if (load[i] > lmax) lmax = load[i] }
    printf "soak: %d streams at %s obs/s offered, %d intervals of %d s, %d calls acknowledged (%.0f/s), %d errors\n", streams, rate, full, interval, total, total / t[n], err
    printf "silo RSS: idle %.0f MiB, after interval 1 %.0f MiB, at mid-run %.0f MiB, at end %.0f MiB; slope over the second half %.2f MiB/min\n", idle, rss[1], rss[half], rss[full], slope
    printf "p50 per interval: median %.1f ms; p99 per interval: median %.1f ms, max %.1f ms, first quarter median %.1f ms, last quarter median %.1f ms; worst single call %.1f ms\n", median(p50, full), median(a, full), worst, median(f, q), median(l, q), maxall
    printf "load average (1 min) during the run: %.1f..%.1f\n", lmin, lmax
  }' "$csv" | tee "$out/summary.txt"
exit "$status"
