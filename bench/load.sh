#!/usr/bin/env bash
# statelab load vs wrk against the same guestbook endpoints, in the same run.
#
# Is the load tool the bottleneck? Both tools hit one release-build guestbook on loopback
# with the same concurrency and duration; the table shows each tool's requests/s and the
# ratio. Goal: statelab load --keep-alive reaches at least 80% of wrk.
#
# Usage: bench/load.sh            (DURATION=3 CONNECTIONS=64 ROUNDS=6 THREADS=2 to change)
# Also shows the CPU time each tool and the server spend per request (user + system), which
# is far less sensitive than the rates to other processes competing for the CPUs.
#
# The binary: STATELAB_BIN (STATELAB and BIN are read too; unset, it runs cargo build --release
# and uses target/release/statelab).
# Needs: wrk, jq, curl (installed with apt-get when run as root; see bench/lib/common.sh).
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

DURATION=${DURATION:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-6}

need_tool wrk
need_tool jq
need_tool curl
need_statelab
BIN=$STATELAB_BIN
WORK=$BENCH_WORK

# One guestbook replica on 127.0.0.1, on a port the system picks.
DATA_DIR="$WORK/data" POD_NAME=bench-0 RUST_LOG=warn start_statelab "$WORK/server.log" guestbook
BASE=$SERVER_URL

# One measurement: prints "requests_per_s client_cpu_us_per_request server_cpu_us_per_request".
run_wrk() { # path keep-alive|close
    local args=() before server n rate
    [ "$2" = close ] && args=(-H "Connection: close")
    before=$(cpu_us "$SERVER_PID")
    run_timed "$WORK/out" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "${args[@]}" "$BASE$1"
    server=$(($(cpu_us "$SERVER_PID") - before))
    n=$(awk '/requests in/ {print $1}' "$WORK/out")
    rate=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/out")
    echo "$rate $(per_request "$RUN_CPU_US" "$n") $(per_request "$server" "$n")"
}
run_ours() { # path keep-alive|close
    local args=() before server n rate
    [ "$2" = keep-alive ] && args=(--keep-alive)
    before=$(cpu_us "$SERVER_PID")
    run_timed "$WORK/out" \
        "$BIN" load "$BASE" --path "$1" -c "$CONNECTIONS" -d "${DURATION}s" --progress off --json "${args[@]}"
    server=$(($(cpu_us "$SERVER_PID") - before))
    n=$(jq .sent "$WORK/out")
    rate=$(jq .rate_per_s "$WORK/out")
    echo "$rate $(per_request "$RUN_CPU_US" "$n") $(per_request "$server" "$n")"
}

# Warm up both paths once.
wrk -t1 -c8 -d1s "$BASE/healthz" >/dev/null
"$BIN" load "$BASE" --path / -c 8 -d 1s --keep-alive --progress off >/dev/null

rows=()
measure() { # label path keep-alive|close
    local label=$1 path=$2 mode=$3
    : >"$WORK/wrk.txt"
    : >"$WORK/ours.txt"
    for _ in $(seq 1 "$ROUNDS"); do
        run_wrk "$path" "$mode" >>"$WORK/wrk.txt"
        run_ours "$path" "$mode" >>"$WORK/ours.txt"
    done
    # Best rate of the rounds (the quietest moment for each tool); mean CPU per request.
    rows+=("$(paste "$WORK/wrk.txt" "$WORK/ours.txt" | awk -v l="$label" '
        { if ($1 > w) w = $1; if ($4 > o) o = $4; wc += $2; oc += $5; sc += ($3 + $6) / 2; n++ }
        END { printf "| %-40s | %9.0f | %9.0f | %4.0f%% | %6.1f | %6.1f | %6.1f |", l, w, o, (w > 0 ? 100 * o / w : 0), wc / n, oc / n, sc / n }')")
}

measure "GET /healthz, keep-alive" /healthz keep-alive
read -r WRK_BEST OURS_BEST < <(paste "$WORK/wrk.txt" "$WORK/ours.txt" | awk '
    { if ($1 > w) w = $1; if ($4 > o) o = $4 } END { printf "%.0f %.0f\n", w, o }')
LOAD_RATIO=$(ratio "$OURS_BEST" "$WRK_BEST")
summary_row "statelab load vs wrk, GET /healthz keep-alive" "$OURS_BEST req/s" ">= 0.95" \
    "$WRK_BEST req/s wrk" "$LOAD_RATIO" "$(meets "$LOAD_RATIO" ">=" 0.95)"
measure "GET / (HTML page), keep-alive" / keep-alive
measure "GET /healthz, new connection per request" /healthz close

echo
echo "statelab load vs wrk: same guestbook ($BASE, release build), ${CONNECTIONS} connections,"
echo "${DURATION} s per measurement, ${ROUNDS} interleaved rounds (best rate of each tool; CPU: mean),"
echo "$(nproc) CPU(s) shared by server, client and anything else running"
echo
echo "| endpoint                                 | wrk req/s | ours req/s | ratio | wrk CPU µs/req | ours CPU µs/req | server CPU µs/req |"
echo "|------------------------------------------|----------:|-----------:|------:|------:|------:|------:|"
printf '%s\n' "${rows[@]}"
