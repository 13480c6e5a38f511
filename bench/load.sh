#!/usr/bin/env bash
# statelab load vs wrk against the same guestbook endpoints, in the same run.
#
# Is the load tool the bottleneck? Both tools hit one release-build guestbook on loopback
# with the same concurrency and duration; the table shows each tool's requests/s and the
# ratio. Goal: statelab load --keep-alive reaches at least 80% of wrk.
#
# Usage: bench/load.sh            (DURATION=10 CONNECTIONS=64 ROUNDS=2 to change)
# Needs: target/release/statelab (cargo build --release), wrk (apt-get install -y wrk), jq, curl.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/statelab}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}

[ -x "$BIN" ] || { echo "missing $BIN: run cargo build --release" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
    echo "wrk is not installed; installing the Debian package" >&2
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
for tool in jq curl; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install -y $tool)" >&2; exit 1; }
done

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

wrk_rate() { # path keep-alive|close
    local args=()
    [ "$2" = close ] && args=(-H "Connection: close")
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "${args[@]}" "$BASE$1" \
        | awk '/^Requests\/sec:/ {print $2}'
}
ours_rate() { # path keep-alive|close
    local args=()
    [ "$2" = keep-alive ] && args=(--keep-alive)
    "$BIN" load "$BASE" --path "$1" -c "$CONNECTIONS" -d "${DURATION}s" --progress off --json "${args[@]}" \
        | jq -r .rate_per_s
}
best() { sort -g | tail -n1; }

# Warm up both paths once.
wrk -t1 -c8 -d1s "$BASE/healthz" >/dev/null
"$BIN" load "$BASE" --path / -c 8 -d 1s --keep-alive --progress off >/dev/null

rows=()
measure() { # label path keep-alive|close
    local label=$1 path=$2 mode=$3 w=() o=()
    for _ in $(seq 1 "$ROUNDS"); do
        w+=("$(wrk_rate "$path" "$mode")")
        o+=("$(ours_rate "$path" "$mode")")
    done
    local wb ob
    wb=$(printf '%s\n' "${w[@]}" | best)
    ob=$(printf '%s\n' "${o[@]}" | best)
    rows+=("$(awk -v l="$label" -v w="$wb" -v o="$ob" 'BEGIN { printf "| %-40s | %10.0f | %14.0f | %5.0f%% |", l, w, o, (w > 0 ? 100 * o / w : 0) }')")
}

measure "GET /healthz, keep-alive" /healthz keep-alive
measure "GET / (HTML page), keep-alive" / keep-alive
measure "GET /healthz, new connection per request" /healthz close

echo
echo "statelab load vs wrk: same guestbook ($BASE, release build), ${CONNECTIONS} connections,"
echo "${DURATION} s per measurement, best of ${ROUNDS} interleaved rounds, $(nproc) CPU(s) shared by server and client"
echo
echo "| endpoint                                 |  wrk req/s | statelab req/s | ratio |"
echo "|------------------------------------------|-----------:|---------------:|------:|"
printf '%s\n' "${rows[@]}"
