#!/usr/bin/env bash
# Hostile clients against the shared server layer, on `statelab counter` (no backend, so only
# the shared layer is measured). For each binary, three attacks (loopback only):
#
#   1. method flood: 2,000 requests with 8 KB made-up methods, then one GET /metrics: its size,
#      how long the scrape took, the resident memory before it and the peak during it (VmHWM,
#      reset just before the scrape through /proc/PID/clear_refs);
#   2. slowloris: the server started with an open-file limit of 256 (soft = hard, as a container
#      sets it); 300 connections send half a request's headers and one more line every 5 s;
#      meanwhile GET /healthz (curl, 10 s limit): its status and time;
#   3. silent flood: limit 1024, 1,500 connections that never send a byte; GET /healthz again.
#
#   bench/hostile.sh
#   BEFORE_BIN=/path/to/older/statelab bench/hostile.sh     # adds the older binary's rows
#
# Environment: STATELAB_BIN (the binary; STATELAB and BIN are read too; unset, it runs
# cargo build --release and uses target/release/statelab), BEFORE_BIN (optional, a second
# binary measured the same way, listed first), FLOOD_REQUESTS (default 2000), METHOD_BYTES
# (default 8192).
# Needs: curl, python3, prlimit (installed with apt-get when run as root).
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

need_tool curl
need_tool python3
need_tool prlimit util-linux
need_statelab
REQUESTS=${FLOOD_REQUESTS:-2000}
METHOD_BYTES=${METHOD_BYTES:-8192}
HOSTILE="$BENCH_ROOT/bench/lib/hostile.py"
# This script itself holds 1,500 sockets.
ulimit -Sn "$(ulimit -Hn)"

# limited BIN LIMIT: a wrapper that execs BIN with LIMIT open files (soft = hard); exec keeps
# the PID, so the process tracked is the server itself.
limited() {
    local wrapper=$BENCH_WORK/limited-$2-$RANDOM.sh
    printf '#!/bin/sh\nexec prlimit --nofile=%s:%s -- %q "$@"\n' "$2" "$2" "$1" >"$wrapper"
    chmod +x "$wrapper"
    echo "$wrapper"
}

# healthz_probe: "STATUS SECONDS" of one GET /healthz on a new connection, 10 s at most.
healthz_probe() {
    curl -s -o /dev/null -m 10 -w '%{http_code} %{time_total}' "$SERVER_URL/healthz" || true
}

ROWS=()

measure() {
    local label=$1 bin=$2 dir log out
    dir=$(mktemp -d "$BENCH_WORK/run.XXXXXX")

    # --- 1. method flood ------------------------------------------------------------------
    STATELAB_BIN=$bin start_statelab "$dir/methods.log" counter --data-dir "$dir/data1"
    local flood statuses rss peak size scrape
    statuses=$(python3 "$HOSTILE" methods "$SERVER_PORT" "$REQUESTS" "$METHOD_BYTES")
    sleep 6 # one metrics upkeep pass (every 5 s) folds the histogram samples
    rss=$(rss_mib "$SERVER_PID")
    echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || echo "(VmHWM not reset: peak is since start)" >&2
    scrape=$(curl -s -o "$dir/metrics.txt" -m 600 -w '%{time_total}' "$SERVER_URL/metrics" || echo "failed")
    peak=$(peak_rss_mib "$SERVER_PID")
    size=$(stat -c %s "$dir/metrics.txt" 2>/dev/null || echo 0)
    stop_pids "$SERVER_PID"
    flood="$(awk -v b="$size" 'BEGIN { if (b >= 1e6) printf "%.1f MB", b / 1e6; else printf "%.1f kB", b / 1e3 }')|${scrape}s|${rss} MiB|${peak} MiB|$statuses"

    # --- 2. slowloris under a 256 file limit ------------------------------------------------
    STATELAB_BIN=$(limited "$bin" 256) start_statelab "$dir/slow.log" counter --data-dir "$dir/data2"
    python3 "$HOSTILE" hold "$SERVER_PORT" 300 slow 25 >"$dir/slow.out" &
    local holder=$! slow _
    bench_track "$holder"
    for _ in $(seq 200); do grep -q '^opened' "$dir/slow.out" && break; sleep 0.1; done
    sleep 1
    slow="$(healthz_probe)|$(grep -m1 '^opened' "$dir/slow.out" | cut -d' ' -f2)|$(grep -c 'Too many open files' "$dir/slow.log" || true)"
    wait "$holder" || true
    slow="$slow|$(grep -m1 '^closed-by-server' "$dir/slow.out" | cut -d' ' -f2)"
    stop_pids "$SERVER_PID"

    # --- 3. silent flood under a 1024 file limit ---------------------------------------------
    STATELAB_BIN=$(limited "$bin" 1024) start_statelab "$dir/silent.log" counter --data-dir "$dir/data3"
    python3 "$HOSTILE" hold "$SERVER_PORT" 1500 silent 5 >"$dir/silent.out" &
    holder=$!
    bench_track "$holder"
    for _ in $(seq 300); do grep -q '^opened' "$dir/silent.out" && break; sleep 0.1; done
    local silent
    silent="$(healthz_probe)|$(grep -m1 '^opened' "$dir/silent.out" | cut -d' ' -f2)|$(grep -c 'Too many open files' "$dir/silent.log" || true)"
    wait "$holder" || true
    stop_pids "$SERVER_PID"

    ROWS+=("$label|$flood|$slow|$silent")
}

if [ -n "${BEFORE_BIN:-}" ]; then
    [ -x "$BEFORE_BIN" ] || die "BEFORE_BIN=$BEFORE_BIN is not an executable"
    measure before "$BEFORE_BIN"
fi
measure this "$STATELAB_BIN"

echo "statelab counter on loopback; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "1. $REQUESTS requests with ${METHOD_BYTES}-byte made-up methods, then one GET /metrics"
printf '%-7s %12s %9s %14s %16s  %s\n' binary "/metrics" scrape "RSS before" "peak in scrape" "answers (status:count)"
for row in "${ROWS[@]}"; do
    IFS='|' read -r label size scrape rss peak statuses _ <<<"$row"
    printf '%-7s %12s %9s %14s %16s  %s\n' "$label" "$size" "$scrape" "$rss" "$peak" "$statuses"
done
echo
echo "2. open-file limit 256, 300 slowloris connections; 3. limit 1024, 1,500 silent connections"
echo "   /healthz: status (000 = no answer within 10 s) and seconds; EMFILE: 'Too many open files' log lines"
printf '%-7s %18s %8s %7s %12s | %18s %8s %7s\n' binary "2. /healthz" opened EMFILE "closed (25s)" "3. /healthz" opened EMFILE
for row in "${ROWS[@]}"; do
    IFS='|' read -r label _ _ _ _ _ s_probe s_open s_emfile s_closed q_probe q_open q_emfile <<<"$row"
    printf '%-7s %18s %8s %7s %12s | %18s %8s %7s\n' "$label" "$s_probe" "$s_open" "$s_emfile" "$s_closed" "$q_probe" "$q_open" "$q_emfile"
done
