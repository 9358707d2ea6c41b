#!/usr/bin/env bash
# Ingest latency while a training round runs, against the same load with no round (issue 4).
# Starts one silo (SQLite store) on private ports, fills model `default` with the bundled NAB series as
# many streams, then runs `lstmorleans bench --cluster` at a fixed rate twice: idle, and during a training
# round of `default` (configured to train for the whole measurement). Prints both latency summaries.
# Usage: scripts/bench-training-latency.sh [RATE obs/s, default 1000] [SECONDS, default 15]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rate=${1:-1000}
seconds=${2:-15}
dotnet build -c Release -nologo -v q "$root/silo/LstmOrleans.Silo" >/dev/null
dotnet build -c Release -nologo -v q "$root/client/LstmOrleans.Client" >/dev/null
silo_dll=$root/silo/LstmOrleans.Silo/bin/Release/net10.0/LstmOrleans.Silo.dll
client_dll=$root/client/LstmOrleans.Client/bin/Release/net10.0/lstmorleans.dll
work=$(mktemp -d)
http=http://127.0.0.1:5180
gateway=127.0.0.1:30411

(cd "$work" && exec dotnet "$silo_dll" --Storage:DataFolder="$work/data" --Http:Urls=$http \
  --Cluster:SiloPort=11411 --Cluster:GatewayPort=30411 >"$work/silo.log" 2>&1) &
silo_pid=$!
trap 'kill $silo_pid 2>/dev/null || true; wait $silo_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do curl -fs $http/readyz >/dev/null 2>&1 && break; sleep 0.5; done

client() { dotnet "$client_dll" "$@" --cluster $gateway; }
client create-model default --hidden 32 >/dev/null
client replay "$root/client/LstmOrleans.Client/data/nab" --copies 8 --rows 1500 --batch 64 --model default >/dev/null 2>&1
# A round that keeps training for the whole measurement: many epochs, a time budget longer than the run.
curl -fs -X PUT "$http/models/default/training/settings" -H 'Content-Type: application/json' \
  -d "{\"period\":\"01:00:00\",\"minNewObservations\":0,\"sampleSize\":256,\"epochs\":100000,\"timeBudget\":\"00:00:$((seconds + 15))\",\"learningRate\":0.001,\"windowLength\":64,\"patience\":0}" >/dev/null

summary() { python3 -c '
import json,sys
d=json.load(open(sys.argv[1])); label=sys.argv[2]
for r in d["results"]:
  for p in r["phases"]:
    if p["test"]=="single":
      l=p["latency"]; v=p["valuesPerSecond"]; p50=l["p50Us"]; p99=l["p99Us"]; p999=l["p999Us"]
      print(f"{label:>16}: {v:9.0f} obs/s  p50 {p50:8.0f} us  p99 {p99:8.0f} us  p99.9 {p999:8.0f} us")
' "$1" "$2"; }

client bench -t single --rate "$rate" -d "$seconds" -w 3 -n 1000 --json >"$work/idle.json" 2>/dev/null
curl -fs -X POST "$http/models/default/training/rounds" >/dev/null
sleep 1
client bench -t single --rate "$rate" -d "$seconds" -w 3 -n 1000 --json >"$work/training.json" 2>/dev/null
curl -fs "$http/models/default/training" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("round running during the second run:", s.get("running"), "| rounds recorded:", len(s.get("recentRounds") or s.get("rounds") or []))'
summary "$work/idle.json" "idle"
summary "$work/training.json" "during a round"
