#!/usr/bin/env bash
# POST /increment throughput of `statelab counter` (every answer waits for its value to be
# fsynced and renamed into place) against what the disk itself can do, measured in the same
# run on the same filesystem:
#   - dd oflag=dsync: small synchronous writes, the raw fsync rate;
#   - a loop of write + fsync + rename + directory fsync: one atomic replace, exactly what one
#     un-batched counter update costs.
# The server is driven by wrk at 1 and 16 connections (loopback only). With many clients the
# server commits every waiting increment with one fsync (group commit), so it can beat one
# fsync per request; the table shows the mean batch size so that is visible, and checks that
# the count stored equals the increments acknowledged.
#
#   bench/counter.sh
#   BENCH_SECONDS=20 bench/counter.sh
#
# Environment: BENCH_SECONDS (per wrk run, default 10), BENCH_BASELINE_SECONDS (per disk
# measurement, default 3), STATELAB_BIN (the binary; STATELAB and BIN are read too; unset, it
# runs cargo build --release and uses target/release/statelab).
# Needs: wrk, curl, python3 (installed with apt-get when run as root; see bench/lib/common.sh).
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
need_tool wrk
need_tool curl
need_tool python3
need_statelab
WORK=$BENCH_WORK

echo "filesystem: $(df -PT "$WORK" | awk 'NR==2 {print $1" ("$2")"}'), ${SECONDS_PER_RUN}s per run, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(fsync latency depends on everything else writing to the disk: compare rows of one run only)"

# --- the disk's own rates ------------------------------------------------------------------
# Measured three times (before, between and after the server runs) and reported as the
# median, because fsync latency moves with whatever else writes to the disk.
BASE_SECONDS="${BENCH_BASELINE_SECONDS:-3}"
dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=16 conv=fsync status=none
dd_rate() {
    # 512-byte synchronous overwrites of already written blocks: one device flush each.
    { timeout -s INT "$BASE_SECONDS" dd if=/dev/zero of="$WORK/dd.bin" bs=512 count=32768 \
        oflag=dsync conv=notrunc || true; } 2>&1 | awk '/records out/ {split($1, r, "+"); n = r[1]}
        /copied/ {match($0, /copied, [0-9.e+-]+ s/); split(substr($0, RSTART, RLENGTH), t, " ");
        printf "%.0f", n / t[2]}'
}
replace_rate() {
    python3 - "$WORK" "$BASE_SECONDS" <<'PY'
import os, sys, time
work, seconds = sys.argv[1], float(sys.argv[2])
path, tmp = os.path.join(work, "replace.txt"), os.path.join(work, ".replace.txt.tmp")
dirfd = os.open(work, os.O_RDONLY)
n, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"%d\n" % n)
    os.fsync(fd)
    os.close(fd)
    os.rename(tmp, path)
    os.fsync(dirfd)
    n += 1
print(round(n / (time.monotonic() - start)))
PY
}
DD_RATES=()
REPLACE_RATES=()
measure_disk() {
    DD_RATES+=("$(dd_rate)")
    REPLACE_RATES+=("$(replace_rate)")
}
median() { printf "%s\n" "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
range() { printf "%s\n" "$@" | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}'; }

# --- the server ------------------------------------------------------------------------------
start_statelab "$WORK/server.log" counter --data-dir "$WORK/data"
BASE=$SERVER_URL

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
LUA

count() { curl -fsS "$BASE/count" | grep -o '"count":[0-9]*' | cut -d: -f2; }
metric() { curl -fsS "$BASE/metrics" | awk -v m="$1" '$1 ~ "^"m"(\\{|$)" {s += $2} END {printf "%.0f", s}'; }

declare -A RATE P99 SENT STORED BATCH
measure_disk
for c in 1 16; do
    before=$(count)
    updates_before=$(metric counter_updates_total)
    writes_before=$(metric counter_writes_total)
    out=$(wrk -t "$(( c < 2 ? 1 : 2 ))" -c "$c" -d "${SECONDS_PER_RUN}s" --latency \
        -s "$WORK/post.lua" "$BASE/increment")
    sleep 0.5
    after=$(count)
    updates=$(( $(metric counter_updates_total) - updates_before ))
    writes=$(( $(metric counter_writes_total) - writes_before ))
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    if [ -n "$non2xx" ] && [ "$non2xx" != "0" ]; then echo "$out"; echo "errors at $c connections"; exit 1; fi
    RATE[$c]=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
    P99[$c]=$(echo "$out" | awk '$1 == "99%" {print $2}')
    SENT[$c]=$(echo "$out" | awk '/requests in/ {print $1}')
    STORED[$c]=$(( after - before ))
    BATCH[$c]=$(awk -v u="$updates" -v w="$writes" 'BEGIN { printf "%.1f", (w ? u / w : 0) }')
    measure_disk
done
DD_RATE=$(median "${DD_RATES[@]}")
REPLACE_RATE=$(median "${REPLACE_RATES[@]}")

echo
printf "%-48s %10s %9s %12s %14s\n" "what" "per second" "p99" "vs dd dsync" "vs replace loop"
printf "%-48s %10s %9s %12s %14s\n" "disk: dd bs=512 oflag=dsync (median of 3)" "$DD_RATE" "" "100%" ""
printf "%-48s %10s %9s %12s %14s\n" "disk: write+fsync+rename+dir fsync (median of 3)" "$REPLACE_RATE" "" "$(percent "$REPLACE_RATE" "$DD_RATE")" "100%"
for c in 1 16; do
    printf "%-48s %10s %9s %12s %14s\n" "statelab POST /increment, $c connection(s)" "${RATE[$c]}" "${P99[$c]}" \
        "$(percent "${RATE[$c]}" "$DD_RATE")" "$(percent "${RATE[$c]}" "$REPLACE_RATE")"
done
echo
echo "disk runs: dd dsync $(range "${DD_RATES[@]}")/s, atomic replace $(range "${REPLACE_RATES[@]}")/s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in 1 16; do
    echo "$c connection(s): ${SENT[$c]} answered by wrk, counter grew by ${STORED[$c]}, mean increments per fsynced write ${BATCH[$c]}"
    # The count may exceed wrk's total by the requests still in flight when wrk stopped.
    if [ "${STORED[$c]}" -lt "${SENT[$c]}" ] || [ "${STORED[$c]}" -gt $(( SENT[$c] + c )) ]; then
        echo "MISMATCH: stored increments differ from acknowledged ones"; exit 1
    fi
done
