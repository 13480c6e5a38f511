#!/usr/bin/env bash
# Every benchmark in one run, summed up in one table: what statelab does now, the aim, the
# reference measured in the same run (the backend's own tool, wrk, the same server's /healthz)
# and the ratio; then the scale table (bench/scale.sh: the same rates at 10^3, 10^5, 10^6 rows).
#
#   bench/all.sh
#   QUICK=1 bench/all.sh          # shorter runs, smaller sizes: a check that everything works
#
# First, unless STATELAB_BIN names a binary, the README's build is timed from cold:
# `cargo build --release --locked` into an empty target directory (crates already downloaded),
# and the binary it makes is the one every benchmark then runs (cargo's --timings report of that
# build is kept as cargo-timing.html). Then, one after another, so that
# none disturbs another: bench/guestbook.sh, users.sh, cache.sh, queue.sh, load.sh, scale.sh.
# Each script's own full report is kept in BENCH_LOGS (a new directory under /tmp by default).
#
# Settings (environment): STATELAB_BIN (skip the build; use this binary), QUICK=1, BENCH_LOGS.
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

BENCH_LOGS=${BENCH_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/statelab-bench-all.XXXXXX")}
mkdir -p "$BENCH_LOGS"
export BENCH_SUMMARY=$BENCH_LOGS/summary.tsv
: >"$BENCH_SUMMARY"
need_tool python3

if [ "${QUICK:-0}" = 1 ]; then
    export DURATION=3 TASKS=20000 ROUNDS=1 BACKLOG=20000 REQUESTS=50000
    export SCALE_SIZES="1000 10000" SCALE_BACKLOG=10000
fi

# --- the README's first command, cold ---------------------------------------------------------
if [ -z "${STATELAB_BIN:-}" ]; then
    need_tool cargo
    echo "bench/all.sh: timing a cold cargo build --release --locked (a few minutes) ..." >&2
    TARGET=$BENCH_WORK/target
    START=$(date +%s.%N)
    (cd "$BENCH_ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release --locked --quiet --timings) \
        >"$BENCH_LOGS/build.log" 2>&1 || { cat "$BENCH_LOGS/build.log" >&2; die "the build failed"; }
    BUILD_S=$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
    # Where the build's time went, crate by crate (cargo's own report).
    cp "$TARGET"/cargo-timings/cargo-timing.html "$BENCH_LOGS/" 2>/dev/null || true
    export STATELAB_BIN=$TARGET/release/statelab
    summary_row "cargo build --release, cold, $(nproc) cores" \
        "$((BUILD_S / 60)) min $((BUILD_S % 60)) s" "<= 7 min" "-" "-" "$(meets "$BUILD_S" "<=" 420)"
else
    echo "bench/all.sh: STATELAB_BIN is set; the cold build is not timed" >&2
fi
SIZE=$(stat -c %s "$STATELAB_BIN")
summary_row "binary size (every subcommand built in)" "$(ratio "$SIZE" 1000000 1) MB" "<= 20 MB" "-" "-" \
    "$(meets "$SIZE" "<=" 20000000)"

# --- the benchmarks, one at a time --------------------------------------------------------------
TICKS_BEFORE=$(cpu_ticks)
FAILED=()
for script in guestbook users cache queue load scale; do
    [ -x "$BENCH_ROOT/bench/$script.sh" ] || continue
    echo "bench/all.sh: bench/$script.sh ..." >&2
    if ! "$BENCH_ROOT/bench/$script.sh" >"$BENCH_LOGS/$script.log" 2>&1; then
        FAILED+=("$script")
        echo "bench/all.sh: bench/$script.sh failed; its log: $BENCH_LOGS/$script.log" >&2
    fi
done

# --- the table ----------------------------------------------------------------------------------
STEAL=$(steal_percent "$TICKS_BEFORE" "$(cpu_ticks)")
python3 - "$BENCH_SUMMARY" "$(nproc)" "$STEAL" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
aims = [r for r in rows if r[0] != "scale"]
scale = [r[1:] for r in rows if r[0] == "scale"]
head = ("what", "now", "aim", "reference (same run)", "ratio", "met")
widths = [max(len(h), *(len(r[i]) for r in aims)) if aims else len(h) for i, h in enumerate(head)]
line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
print(f"statelab benchmarks, one run on this machine ({sys.argv[2]} cores; CPU time stolen by the host "
      f"during the benchmarks: {sys.argv[3]})\n")
print(line(head))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in aims:
    print(line(r))
met = sum(r[5] == "yes" for r in aims)
print(f"\n{met} of {sum(r[5] in ('yes', 'no') for r in aims)} aims met")
if scale:
    print("\nAs the data grows (bench/scale.sh): the same rate at each size; flat = within 20%\n")
    head = ("row", "10^3", "10^5", "10^6", "10^6 / 10^3")
    widths = [max(len(h), *(len(r[i]) for r in scale)) for i, h in enumerate(head)]
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in scale:
        print(line(r[:5]))
PY
echo
echo "each script's full report: $BENCH_LOGS"
[ ${#FAILED[@]} -eq 0 ] || die "failed: ${FAILED[*]}"
