#!/usr/bin/env bash
# Chaos runs on real processes: a private redis-server, 3 silo processes (Redis membership + Redis grain storage,
# 1 s probes, 2 missed probes, 2 votes), an Orleans client over the 3 gateways replaying STREAMS x OBSERVATIONS with
# same-sequence retries, then
#   sigkill  - SIGKILL one silo when half the observations are acknowledged
#   rolling  - SIGTERM + restart every silo in turn under load
# Every stream is then checked bitwise against an engine-only uninterrupted run (nothing lost, nothing applied twice),
# and the service gaps are printed (and appended to $REPORT).
#
# Tuning (defaults in tests/LstmOrleans.Reliability.Tests/FailoverTests.cs): --response-timeout-ms (the client's
# ClientMessagingOptions.ResponseTimeout, default 2000), --probe-ms (silos' Membership:ProbeTimeout, default 1000),
# --missed-probes (Membership:NumMissedProbesLimit, default 2), --attempt-timeout-ms (a precise client-side limit per
# attempt before resending, off by default; Orleans' response timeout itself fires up to ~1 s late). --repeat N runs the scenario N times (a fresh cluster
# each time), so the report holds one line per kill.
#
# usage: scripts/chaos.sh [sigkill|rolling|all] [--streams N] [--observations N] [--repeat N]
#                         [--response-timeout-ms MS] [--probe-ms MS] [--missed-probes N] [--attempt-timeout-ms MS]
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=all
streams=1000
observations=50
repeat=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    sigkill|rolling|all) scenario=$1 ;;
    --streams) streams=$2; shift ;;
    --observations) observations=$2; shift ;;
    --repeat) repeat=$2; shift ;;
    --response-timeout-ms) export RELIABILITY_RESPONSE_TIMEOUT_MS=$2; shift ;;
    --probe-ms) export RELIABILITY_PROBE_TIMEOUT_MS=$2; shift ;;
    --missed-probes) export RELIABILITY_MISSED_PROBES=$2; shift ;;
    --attempt-timeout-ms) export RELIABILITY_ATTEMPT_TIMEOUT_MS=$2; shift ;;
    -h|--help) sed -n 2,19p "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

case "$scenario" in
  sigkill) filter='FullyQualifiedName~FailoverTests.Sigkill' ;;
  rolling) filter='FullyQualifiedName~FailoverTests.RollingRestart' ;;
  all) filter='FullyQualifiedName~FailoverTests' ;;
esac

command -v redis-server >/dev/null || { echo "redis-server is required (apt-get install redis-server)" >&2; exit 1; }
REPORT=${REPORT:-$(mktemp -t lstmorleans-chaos.XXXXXX)}
export RELIABILITY_STREAMS=$streams RELIABILITY_OBSERVATIONS=$observations RELIABILITY_REPORT=$REPORT LSTMORLEANS_REQUIRE_SERVICES=1

dotnet build tests/LstmOrleans.Reliability.Tests -c Release -v q -nologo
status=0
for run in $(seq "$repeat"); do
  echo "== run $run of $repeat (load average: $(cut -d' ' -f1-3 /proc/loadavg)) ==" | tee -a "$REPORT"
  dotnet test tests/LstmOrleans.Reliability.Tests -c Release --no-build --filter "$filter" \
    --logger "console;verbosity=normal" || status=$?
done
echo
echo "== chaos results ($scenario, $streams streams x $observations observations, $repeat run(s)) =="
cat "$REPORT"
exit $status
