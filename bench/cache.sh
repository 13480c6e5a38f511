#!/usr/bin/env bash
# Cache API vs Redis's own limit, in one run, on loopback.
#
#   bench/cache.sh
#   DURATION=3 REQUESTS=50000 bench/cache.sh
#
# Starts a private redis-server (AOF on, appendfsync everysec, as in deploy/k8s/cache; on a Unix
# socket, no TCP port) and `statelab cache` in front of it (on 127.0.0.1, on a port the system
# picks), then measures with the same 16 connections:
#   1. redis-benchmark -c 16 -t set,get straight against that Redis  (the ceiling);
#   2. POST /cache/{key}/{value} and GET /cache/{key} through the API, with wrk.
# Both use 10,000 random keys and 16-byte values. Prints a table with the API's share of
# redis-benchmark's rate. Note the machine: wrk, the API and Redis share its cores during the
# HTTP runs, while redis-benchmark only shares them with Redis.
#
# Environment: DURATION (seconds per HTTP run, default 10), REQUESTS (per redis-benchmark
# test, default 200000), CONNECTIONS (default 16), STATELAB_BIN (the binary; STATELAB and BIN are
# read too; unset, it runs cargo build --release and uses target/release/statelab).
# Needs: redis-server, redis-benchmark, redis-cli (Debian: redis-server, redis-tools), wrk, curl
# (installed with apt-get when run as root; see bench/lib/common.sh).
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

DURATION=${DURATION:-10}
REQUESTS=${REQUESTS:-200000}
CONNECTIONS=${CONNECTIONS:-16}
KEYS=10000
VALUE=0123456789abcdef # 16 bytes

need_tool redis-server
need_tool redis-benchmark
need_tool redis-cli
need_tool wrk
need_tool curl
need_statelab
WORK=$BENCH_WORK

# --- Redis, configured as in deploy/k8s/cache/redis-statefulset.yaml ------------------------
start_redis "$WORK" --appendonly yes --appendfsync everysec --save "" \
    --maxmemory 160mb --maxmemory-policy noeviction

# --- the API --------------------------------------------------------------------------------
REDIS_URL="redis+unix://$REDIS_SOCKET" start_statelab "$WORK/api.log" cache
API_PID=$SERVER_PID
API=$SERVER_URL

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. redis-benchmark ---------------------------------------------------------------------
# CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",...
declare -A RB_REDIS_CPU
for test in set get; do
    before=$(cpu_us "$REDIS_PID")
    redis-benchmark -s "$REDIS_SOCKET" -c "$CONNECTIONS" -n "$REQUESTS" \
        -r "$KEYS" -d ${#VALUE} -t "$test" --csv >"$WORK/rb-$test.csv"
    RB_REDIS_CPU[$test]=$(per_request $(($(cpu_us "$REDIS_PID") - before)) "$REQUESTS")
done
{ head -1 "$WORK/rb-set.csv"; tail -n +2 "$WORK/rb-set.csv"; tail -n +2 "$WORK/rb-get.csv"; } >"$WORK/redis-benchmark.csv"
rb() { # rb TEST FIELD -> value
    tr -d '"' <"$WORK/redis-benchmark.csv" | awk -F, -v test="$1" -v field="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 == test { print $col[field] }'
}

# --- 2. the API with wrk ----------------------------------------------------------------------
cat >"$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.status + summary.errors.timeout
    io.write(string.format("RESULT rps=%.0f p50=%.3f p99=%.3f errors=%d requests=%d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, errors, summary.requests))
end
LUA
cat >"$WORK/post.lua" <<LUA
dofile("$WORK/report.lua")
local counter = 0
request = function()
    counter = counter + 1
    local key = (counter * 7919) % $KEYS
    return wrk.format("POST", "/cache/key:" .. key .. "/$VALUE")
end
LUA
cat >"$WORK/get.lua" <<LUA
dofile("$WORK/report.lua")
local counter = 0
request = function()
    counter = counter + 1
    local key = (counter * 7919) % $KEYS
    return wrk.format("GET", "/cache/key:" .. key)
end
LUA

# Every key the GET run asks for exists: write them all first (under the API's prefix).
for i in $(seq 0 $((KEYS - 1))); do echo "SET cache:key:$i $VALUE"; done |
    redis-cli -s "$REDIS_SOCKET" --pipe >/dev/null

wrk_run() { # wrk_run SCRIPT -> "rps p50 p99 errors requests api-cpu/req redis-cpu/req"
    wrk -t 2 -c "$CONNECTIONS" -d 2s -s "$1" "$API" >/dev/null # warm-up
    local api_before redis_before result
    api_before=$(cpu_us "$API_PID")
    redis_before=$(cpu_us "$REDIS_PID")
    result=$(wrk -t 2 -c "$CONNECTIONS" -d "${DURATION}s" -s "$1" "$API" |
        sed -n 's/^RESULT rps=\([0-9.]*\) p50=\([0-9.]*\) p99=\([0-9.]*\) errors=\([0-9]*\) requests=\([0-9]*\)/\1 \2 \3 \4 \5/p')
    local n=${result##* }
    echo "$result $(per_request $(($(cpu_us "$API_PID") - api_before)) "$n") $(per_request $(($(cpu_us "$REDIS_PID") - redis_before)) "$n")"
}
read -r POST_RPS POST_P50 POST_P99 POST_ERR POST_N POST_API_CPU POST_REDIS_CPU < <(wrk_run "$WORK/post.lua")
read -r GET_RPS GET_P50 GET_P99 GET_ERR GET_N GET_API_CPU GET_REDIS_CPU < <(wrk_run "$WORK/get.lua")

# Sanity: what the API answers is what Redis holds.
curl -fs "$API/cache/key:42" | grep -q "\"value\":\"$VALUE\"" || {
    echo "the API does not return the stored value" >&2
    exit 1
}

# --- table ----------------------------------------------------------------------------------
SET_RPS=$(rb SET rps)
GET_RB_RPS=$(rb GET rps)
echo
echo "Cache API vs redis-benchmark: $CONNECTIONS connections, $KEYS keys, ${#VALUE}-byte values, AOF everysec"
echo "$(nproc) CPU(s): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "$(redis-server --version | cut -d' ' -f1-3); wrk ${DURATION}s per HTTP run; redis-benchmark $REQUESTS requests per test"
echo "load average before the runs: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-32s %9s %8s %8s %7s %7s %11s %13s\n' "operation" "req/s" "p50 ms" "p99 ms" "errors" "share" "API CPU/req" "Redis CPU/req"
row() { printf '%-32s %9.0f %8.3f %8.3f %7s %7s %11s %13s\n' "$@"; }
row "redis-benchmark SET" "$SET_RPS" "$(rb SET p50_latency_ms)" "$(rb SET p99_latency_ms)" - 100% - "${RB_REDIS_CPU[set]} µs"
row "API POST /cache/{key}/{value}" "$POST_RPS" "$POST_P50" "$POST_P99" "$POST_ERR" "$(percent "$POST_RPS" "$SET_RPS" 1)" "$POST_API_CPU µs" "$POST_REDIS_CPU µs"
row "redis-benchmark GET" "$GET_RB_RPS" "$(rb GET p50_latency_ms)" "$(rb GET p99_latency_ms)" - 100% - "${RB_REDIS_CPU[get]} µs"
row "API GET /cache/{key}" "$GET_RPS" "$GET_P50" "$GET_P99" "$GET_ERR" "$(percent "$GET_RPS" "$GET_RB_RPS" 1)" "$GET_API_CPU µs" "$GET_REDIS_CPU µs"
echo
echo "share: the API's rate as a fraction of redis-benchmark's on the same Redis (aim: at least 60%)."
echo "errors: connection errors, timeouts and non-2xx answers seen by wrk ($POST_N POSTs, $GET_N GETs in total)."
echo "CPU/req: CPU time (user + system, from /proc) the API and Redis processes used per request during"
echo "the run; unlike req/s it does not depend on what else the machine is doing."
SET_SHARE=$(ratio "$POST_RPS" "$SET_RPS")
GET_SHARE=$(ratio "$GET_RPS" "$GET_RB_RPS")
summary_row "cache POST /cache/{key}/{value} vs redis-benchmark SET" "$POST_RPS req/s" ">= 0.60" \
    "$SET_RPS req/s redis-benchmark" "$SET_SHARE" "$(meets "$SET_SHARE" ">=" 0.60)"
summary_row "cache GET /cache/{key} vs redis-benchmark GET" "$GET_RPS req/s" ">= 0.60" \
    "$GET_RB_RPS req/s redis-benchmark" "$GET_SHARE" "$(meets "$GET_SHARE" ">=" 0.60)"
