#!/usr/bin/env bash
# Guestbook benchmark: requests/s and p99 for GET / and POST /api/messages at 16 connections on
# one replica (SQLite and PostgreSQL), against GET /healthz on the same server as the ceiling of
# the HTTP stack measured in the same run; idle and loaded RSS; start-to-ready (median of 5).
#
#   bench/guestbook.sh            (needs wrk; uses PostgreSQL on 127.0.0.1:5432 if it answers)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS=16
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
# STATELAB_BIN=path runs an already built binary instead of building the release one.
BIN="${STATELAB_BIN:-target/release/statelab}"
[ -n "${STATELAB_BIN:-}" ] || cargo build --release --quiet
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.05; done; return 1; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# wrk → "requests/s p99_ms non2xx"
run_wrk() {
    local out
    out=$(wrk -t2 -c$CONNECTIONS -d"$DURATION" --latency "$@" 2>&1)
    local rps p99 errs
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
    errs=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); errs=${errs:-0}
    echo "$rps $p99 $errs"
}

bench_backend() {
    local label=$1; shift
    local port; port=$(free_port)
    mkdir -p "$WORK/$label"
    DATA_DIR="$WORK/$label" RUST_LOG=warn "$BIN" guestbook --listen "127.0.0.1:$port" "$@" 2>"$WORK/$label.log" &
    local pid=$!; PIDS+=("$pid")
    wait_ready "$port"
    local idle; idle=$(rss_mib "$pid")
    read -r h_rps h_p99 _ <<<"$(run_wrk "http://127.0.0.1:$port/healthz")"
    # Seed 100 messages so GET / renders a full page.
    for i in $(seq 1 100); do
        curl -s -o /dev/null -H 'content-type: application/json' -d "{\"name\":\"seed$i\",\"message\":\"a message of ordinary length, number $i\"}" "http://127.0.0.1:$port/api/messages"
    done
    read -r g_rps g_p99 g_err <<<"$(run_wrk "http://127.0.0.1:$port/")"
    read -r p_rps p_p99 p_err <<<"$(WRK_PATH=/api/messages run_wrk -s bench/lib/post-json.lua "http://127.0.0.1:$port")"
    local loaded; loaded=$(hwm_mib "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    printf "| %-8s | %-24s | %10s | %8s | %7s | %s |\n" "$label" "GET /healthz (ceiling)" "$h_rps" "$h_p99" "1.00" "-"
    printf "| %-8s | %-24s | %10s | %8s | %7s | %s |\n" "$label" "GET / (100 messages)" "$g_rps" "$g_p99" "$(python3 -c "print(f'{$g_rps/$h_rps:.2f}')")" "$g_err"
    printf "| %-8s | %-24s | %10s | %8s | %7s | %s |\n" "$label" "POST /api/messages" "$p_rps" "$p_p99" "$(python3 -c "print(f'{$p_rps/$h_rps:.2f}')")" "$p_err"
    echo "$label $idle $loaded" >>"$WORK/memory"
}

echo "guestbook benchmark: wrk -t2 -c$CONNECTIONS -d$DURATION on $(nproc) cores"
echo
echo "| backend  | request                  | requests/s | p99 (ms) | × ceiling | non-2xx |"
echo "|----------|--------------------------|-----------:|---------:|----------:|--------:|"
bench_backend sqlite
if pg_isready -q -h 127.0.0.1 -p 5432 -U postgres 2>/dev/null; then
    db="statelab_bench_$$"
    psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db" >/dev/null
    bench_backend postgres --database "postgres://postgres@127.0.0.1:5432/$db" --pool-size 16
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
else
    echo "| postgres | (skipped: no PostgreSQL on 127.0.0.1:5432) | | | | |"
fi
echo
echo "| backend  | idle RSS (MiB) | peak RSS under load (MiB) |"
echo "|----------|---------------:|--------------------------:|"
while read -r label idle loaded; do printf "| %-8s | %14s | %25s |\n" "$label" "$idle" "$loaded"; done <"$WORK/memory"
echo
python3 bench/lib/startup.py "$BIN" guestbook 5 | python3 -c 'import json,sys; d=json.load(sys.stdin); print("start to first 200 on /readyz, fresh data dir (median of 5): %.1f ms; idle RSS %.1f MiB" % (d["start_to_ready_ms"], d["idle_rss_mib"]))'
