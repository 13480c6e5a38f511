#!/usr/bin/env bash
# Guestbook benchmark: requests/s and p99 for GET / and POST /api/messages at 16 connections on
# one replica (SQLite and PostgreSQL), against GET /healthz on the same server as the ceiling of
# the HTTP stack measured in the same run; idle and loaded RSS; start-to-ready (median of 5).
#
#   bench/guestbook.sh
#   DURATION=3s bench/guestbook.sh
#
# PostgreSQL: a private throwaway cluster on a Unix socket, or the server at BENCH_DATABASE_URL
# (an admin URL; a database statelab_bench_guestbook is created and dropped on it).
# Environment: DURATION (per wrk run, default 10s), STATELAB_BIN (the binary; STATELAB and BIN
# are read too; unset, it runs cargo build --release and uses target/release/statelab).
# Needs: wrk, curl, python3, PostgreSQL (Debian: postgresql) unless BENCH_DATABASE_URL is set
# (installed with apt-get when run as root; see bench/lib/common.sh).
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

DURATION="${DURATION:-10s}"
CONNECTIONS=16
need_tool wrk
need_tool curl
need_tool python3
need_tool psql
need_statelab
WORK=$BENCH_WORK

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
    mkdir -p "$WORK/$label"
    DATA_DIR="$WORK/$label" RUST_LOG=warn start_statelab "$WORK/$label.log" guestbook "$@"
    local pid=$SERVER_PID port=$SERVER_PORT
    local idle anon file; idle=$(rss_mib "$pid")
    read -r anon file < <(rss_split_mib "$pid")
    read -r h_rps h_p99 _ <<<"$(run_wrk "http://127.0.0.1:$port/healthz")"
    # Seed 100 messages so GET / renders a full page.
    for i in $(seq 1 100); do
        curl -s -o /dev/null -H 'content-type: application/json' -d "{\"name\":\"seed$i\",\"message\":\"a message of ordinary length, number $i\"}" "http://127.0.0.1:$port/api/messages"
    done
    read -r g_rps g_p99 g_err <<<"$(run_wrk "http://127.0.0.1:$port/")"
    read -r p_rps p_p99 p_err <<<"$(WRK_PATH=/api/messages run_wrk -s "$BENCH_ROOT/bench/lib/post-json.lua" "http://127.0.0.1:$port")"
    local loaded; loaded=$(peak_rss_mib "$pid")
    stop_pids "$pid"
    printf "| %-8s | %-24s | %10s | %8s | %7s | %s |\n" "$label" "GET /healthz (ceiling)" "$h_rps" "$h_p99" "1.00" "-"
    printf "| %-8s | %-24s | %10s | %8s | %7s | %s |\n" "$label" "GET / (100 messages)" "$g_rps" "$g_p99" "$(ratio "$g_rps" "$h_rps")" "$g_err"
    printf "| %-8s | %-24s | %10s | %8s | %7s | %s |\n" "$label" "POST /api/messages" "$p_rps" "$p_p99" "$(ratio "$p_rps" "$h_rps")" "$p_err"
    echo "$label $idle $anon $file $loaded" >>"$WORK/memory"
    local share; share=$(ratio "$g_rps" "$h_rps")
    if [ "$label" = sqlite ]; then
        summary_row "guestbook GET / (100 messages) vs GET /healthz" "$g_rps req/s" ">= 0.50" \
            "$h_rps req/s /healthz" "$share" "$(meets "$share" ">=" 0.50)"
        summary_row "guestbook idle RSS (SQLite)" "$idle MiB ($anon anonymous, $file binary and libraries)" \
            "< 10 MiB" "-" "-" "$(meets "$idle" "<" 10)"
    else
        summary_row "guestbook on PostgreSQL GET / vs GET /healthz (no aim)" "$g_rps req/s" "-" \
            "$h_rps req/s /healthz" "$share" "-"
    fi
}

echo "guestbook benchmark: wrk -t2 -c$CONNECTIONS -d$DURATION on $(nproc) cores"
echo
echo "| backend  | request                  | requests/s | p99 (ms) | × ceiling | non-2xx |"
echo "|----------|--------------------------|-----------:|---------:|----------:|--------:|"
bench_backend sqlite
PG_PID=""
if [ -n "${BENCH_DATABASE_URL:-}" ]; then
    ADMIN_URL=$BENCH_DATABASE_URL
    drop_database() {
        psql -q "$ADMIN_URL" -c 'DROP DATABASE IF EXISTS statelab_bench_guestbook WITH (FORCE)' >/dev/null 2>&1 || true
    }
    at_exit drop_database
    PG_URL=$(python3 - "$ADMIN_URL" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(u._replace(path="/statelab_bench_guestbook")))
PY
)
else
    start_postgres "$WORK" -c max_connections=100
    ADMIN_URL=$(pg_url postgres)
    PG_URL=$(pg_url statelab_bench_guestbook)
fi
PGOPTIONS=--client-min-messages=warning psql -q "$ADMIN_URL" \
    -c 'DROP DATABASE IF EXISTS statelab_bench_guestbook WITH (FORCE)' -c 'CREATE DATABASE statelab_bench_guestbook' >/dev/null
bench_backend postgres --database "$PG_URL" --pool-size 16
psql -q "$ADMIN_URL" -c 'DROP DATABASE statelab_bench_guestbook WITH (FORCE)' >/dev/null
# Nothing else runs during the start-up measurement.
[ -z "$PG_PID" ] || stop_pids "$PG_PID"
echo
echo "| backend  | idle RSS (MiB) | of which anonymous | of which files (binary, libraries) | peak RSS under load (MiB) |"
echo "|----------|---------------:|-------------------:|-----------------------------------:|--------------------------:|"
while read -r label idle anon file loaded; do
    printf "| %-8s | %14s | %18s | %34s | %25s |\n" "$label" "$idle" "$anon" "$file" "$loaded"
done <"$WORK/memory"
echo
python3 "$BENCH_ROOT/bench/lib/startup.py" "$STATELAB_BIN" guestbook 5 >"$WORK/startup.json"
read -r START_MS START_RSS < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.1f %.1f" % (d["start_to_ready_ms"], d["idle_rss_mib"]))' "$WORK/startup.json")
echo "start to first 200 on /readyz, fresh data dir (median of 5): $START_MS ms; idle RSS $START_RSS MiB"
summary_row "guestbook start to first 200 on /readyz (median of 5)" "$START_MS ms" "< 50 ms" "-" "-" \
    "$(meets "$START_MS" "<" 50)"
