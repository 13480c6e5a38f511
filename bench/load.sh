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
# Needs: target/release/statelab (cargo build --release), wrk (apt-get install -y wrk), jq,
# curl, /usr/bin/time (Debian package time).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/statelab}
DURATION=${DURATION:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-6}

[ -x "$BIN" ] || { echo "missing $BIN: run cargo build --release" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
    echo "wrk is not installed; installing the Debian package" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
for tool in jq curl; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install -y $tool)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "/usr/bin/time is not installed (apt-get install -y time)" >&2; exit 1; }

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# One guestbook replica on a free port (found from its "listening" log line).
DATA_DIR="$WORK" POD_NAME=bench-0 LOG_FORMAT=json RUST_LOG=warn,statelab::server=info \
    "$BIN" guestbook --listen 127.0.0.1:0 2>"$WORK/server.log" &
SERVER_PID=$!
PORT=
for _ in $(seq 1 200); do
    PORT=$(sed -n 's/.*"message":"listening","local":"[^"]*:\([0-9]*\)".*/\1/p' "$WORK/server.log" | head -n1)
    [ -n "$PORT" ] && break
    sleep 0.05
done
[ -n "$PORT" ] || { echo "the guestbook did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
BASE="http://127.0.0.1:$PORT"
until curl -fsS "$BASE/readyz" >/dev/null 2>&1; do sleep 0.05; done

server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
TICK=$(getconf CLK_TCK)

# One measurement: prints "requests_per_s client_cpu_us_per_request server_cpu_us_per_request".
run_wrk() { # path keep-alive|close
    local args=() before after
    [ "$2" = close ] && args=(-H "Connection: close")
    before=$(server_ticks)
    /usr/bin/time -f "%U %S" -o "$WORK/time" \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "${args[@]}" "$BASE$1" >"$WORK/out"
    after=$(server_ticks)
    local n rate
    n=$(awk '/requests in/ {print $1}' "$WORK/out")
    rate=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/out")
    awk -v r="$rate" -v n="$n" -v s="$((after - before))" -v t="$TICK" \
        '{ printf "%s %.1f %.1f\n", r, ($1 + $2) * 1e6 / n, s * 1e6 / t / n }' "$WORK/time"
}
run_ours() { # path keep-alive|close
    local args=() before after
    [ "$2" = keep-alive ] && args=(--keep-alive)
    before=$(server_ticks)
    /usr/bin/time -f "%U %S" -o "$WORK/time" \
        "$BIN" load "$BASE" --path "$1" -c "$CONNECTIONS" -d "${DURATION}s" --progress off --json "${args[@]}" >"$WORK/out"
    after=$(server_ticks)
    local n rate
    n=$(jq .sent "$WORK/out")
    rate=$(jq .rate_per_s "$WORK/out")
    awk -v r="$rate" -v n="$n" -v s="$((after - before))" -v t="$TICK" \
        '{ printf "%s %.1f %.1f\n", r, ($1 + $2) * 1e6 / n, s * 1e6 / t / n }' "$WORK/time"
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
