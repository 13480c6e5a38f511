# shellcheck shell=bash disable=SC2034  # (variables set here are read by the scripts)
# What every bench/*.sh shares. Source it first thing, after `set -euo pipefail`:
#
#   . "$(dirname "$0")/lib/common.sh"
#
# It owns:
#   - the binary: STATELAB_BIN (the old names STATELAB and BIN are still read, in that order);
#     unset, `cargo build --release` runs once and target/release/statelab is used;
#   - tools: need_tool installs a missing tool from Debian's apt when running as root, otherwise
#     stops with the exact install command;
#   - processes: bench_track records what the script started, and one EXIT trap stops exactly
#     those PIDs (after the at_exit functions) and removes BENCH_WORK, the script's temp directory;
#   - ports: start_statelab starts a server on 127.0.0.1:0 and reads the port it got from its
#     "listening" log line; Redis and PostgreSQL listen on Unix sockets only (start_redis,
#     start_postgres). Nothing picks a TCP port in advance;
#   - CPU and memory of a process from /proc (cpu_us, cpu_tree_us, rss_mib, peak_rss_mib) and of
#     a client command (run_timed);
#   - ratio formatting (ratio, percent).
# Every address used is on loopback.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_NAME="bench/$(basename "$0")"

die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}

# --- processes and the temp directory ---------------------------------------------------------
BENCH_PIDS=()
BENCH_SIGNALS=()
BENCH_WORK=$(mktemp -d "${TMPDIR:-/tmp}/statelab-bench-$(basename "$0" .sh).XXXXXX")

# bench_track PID [SIGNAL]: stop PID with SIGNAL (default TERM) when the script ends.
bench_track() {
    BENCH_PIDS+=("$1")
    BENCH_SIGNALS+=("${2:-TERM}")
}

# alive PID: true while PID runs (a zombie does not count).
alive() {
    local state
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# stop_pids PID...: TERM, wait up to 10 s, then KILL; reaps them if they are our children.
stop_pids() {
    local pid _
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null || true
    done
}

# at_exit FUNCTION: the EXIT trap calls FUNCTION first (e.g. to drop a database the script
# created on a server it did not start), before it stops the processes.
BENCH_AT_EXIT=()
at_exit() { BENCH_AT_EXIT+=("$1"); }

# The EXIT trap: the at_exit functions, then the processes, last started first, each by its PID
# only, then BENCH_WORK.
bench_cleanup() {
    local i pid _
    for ((i = ${#BENCH_AT_EXIT[@]} - 1; i >= 0; i--)); do "${BENCH_AT_EXIT[i]}" || true; done
    for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${BENCH_PIDS[i]}
        alive "$pid" || continue
        kill -"${BENCH_SIGNALS[i]}" "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$BENCH_WORK"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools -------------------------------------------------------------------------------------
BENCH_APT_UPDATED=""

# apt_install PACKAGE: as root, installs a Debian package (apt-get update runs once per script);
# otherwise stops the script with the command to run.
apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "install it with: sudo apt-get install -y $1"
    fi
    echo "$BENCH_NAME: installing the Debian package $1" >&2
    if [ -z "$BENCH_APT_UPDATED" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
        BENCH_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null ||
        die "apt-get install -y $1 failed"
}

# need_tool TOOL [DEBIAN_PACKAGE]: TOOL is a command name or an absolute path. When it is
# missing: as root, apt-get installs the package; otherwise the script stops with the exact
# install command. The same for every tool and every script.
need_tool() {
    local tool=$1 package=${2:-}
    if [ -z "$package" ]; then
        case $tool in
        redis-benchmark | redis-cli) package=redis-tools ;;
        pgbench) package=postgresql ;;
        psql | pg_isready) package=postgresql-client ;;
        *) package=$(basename "$tool") ;;
        esac
    fi
    _have_tool "$tool" && return 0
    echo "$BENCH_NAME: $tool is missing" >&2
    apt_install "$package"
    _have_tool "$tool" || die "$tool is still missing after installing $package"
}
_have_tool() { if [[ $1 == /* ]]; then [ -x "$1" ]; else command -v "$1" >/dev/null 2>&1; fi; }

# --- the statelab binary -------------------------------------------------------------------------
# STATELAB_BIN, else STATELAB, else BIN; a relative path is taken from the current directory,
# else from the repository root. None set: cargo build --release, then target/release/statelab.
need_statelab() {
    local bin=${STATELAB_BIN:-${STATELAB:-${BIN:-}}}
    if [ -z "$bin" ]; then
        # Not from apt: Debian's cargo may be older than the toolchain the project needs.
        command -v cargo >/dev/null 2>&1 ||
            die "cargo is missing: install a Rust toolchain (https://rustup.rs), or set STATELAB_BIN to a built statelab"
        echo "$BENCH_NAME: cargo build --release" >&2
        (cd "$BENCH_ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
        bin=$BENCH_ROOT/target/release/statelab
    elif [[ $bin != /* ]]; then
        if [ -e "$bin" ]; then bin=$PWD/$bin; else bin=$BENCH_ROOT/$bin; fi
    fi
    [ -x "$bin" ] || die "$bin is not an executable statelab (set STATELAB_BIN, or unset it to build one)"
    STATELAB_BIN=$bin
}

# --- statelab servers ----------------------------------------------------------------------------
# start_statelab LOG SUBCOMMAND [ARG...]: starts `statelab SUBCOMMAND ARG... --listen 127.0.0.1:0`
# (environment set before the call is passed on), reads the port from the server's JSON
# "listening" line in LOG and waits for /readyz. Sets SERVER_PID, SERVER_PORT and SERVER_URL.
start_statelab() {
    local log=$1
    shift
    LOG_FORMAT=json RUST_LOG="${RUST_LOG:-info},statelab::server=info" DRAIN_DELAY_MS="${DRAIN_DELAY_MS:-0}" \
        "$STATELAB_BIN" "$@" --listen 127.0.0.1:0 2>"$log" &
    SERVER_PID=$!
    bench_track "$SERVER_PID"
    SERVER_PORT=""
    local _
    for _ in $(seq 600); do
        SERVER_PORT=$(grep -m1 '"message":"listening"' "$log" 2>/dev/null |
            sed -n 's/.*"local":"[^"]*:\([0-9][0-9]*\)".*/\1/p' || true)
        [ -n "$SERVER_PORT" ] && break
        alive "$SERVER_PID" || break
        sleep 0.05
    done
    [ -n "$SERVER_PORT" ] || { cat "$log" >&2; die "statelab $1 did not start (log above)"; }
    SERVER_URL="http://127.0.0.1:$SERVER_PORT"
    for _ in $(seq 600); do
        curl -fs -o /dev/null "$SERVER_URL/readyz" && return 0
        alive "$SERVER_PID" || break
        sleep 0.05
    done
    tail -20 "$log" >&2
    die "statelab $1 did not become ready on $SERVER_URL (log above)"
}

# --- backends on Unix sockets --------------------------------------------------------------------
# start_redis DIR [REDIS-SERVER ARG...]: a private redis-server with no TCP port, its socket at
# DIR/redis.sock, its files in DIR. Sets REDIS_PID and REDIS_SOCKET.
start_redis() {
    local dir=$1
    shift
    need_tool redis-server
    REDIS_SOCKET=$dir/redis.sock
    redis-server --port 0 --unixsocket "$REDIS_SOCKET" --unixsocketperm 700 --dir "$dir" \
        --logfile "$dir/redis.log" --daemonize no "$@" &
    REDIS_PID=$!
    bench_track "$REDIS_PID"
    local _
    for _ in $(seq 200); do
        [ -S "$REDIS_SOCKET" ] && return 0
        alive "$REDIS_PID" || break
        sleep 0.05
    done
    cat "$dir/redis.log" >&2
    die "redis-server did not start (log above)"
}

# need_postgres_server: sets PG_BIN to the newest PostgreSQL server directory (e.g.
# /usr/lib/postgresql/15/bin), installing the Debian package postgresql as need_tool would.
need_postgres_server() {
    _pg_bin() { find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1; }
    PG_BIN=$(_pg_bin)
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
        echo "$BENCH_NAME: PostgreSQL's server programs (initdb, postgres) are missing" >&2
        apt_install postgresql
        PG_BIN=$(_pg_bin)
    fi
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then die "initdb is still missing after installing postgresql"; fi
}

# start_postgres DIR [POSTGRES ARG...]: a private PostgreSQL cluster in DIR/pg (default settings,
# fsync on), listening only on the Unix socket in DIR; as the postgres user when run as root
# (DIR, created if missing, is handed to that user, who must be able to reach it: pass
# BENCH_WORK itself, not a directory inside it). Sets PG_PID (the postmaster), PG_BIN,
# PG_VERSION, PG_DATA and PG_SOCKET_DIR; connect with pg_url DATABASE.
start_postgres() {
    local dir=$1
    shift
    need_postgres_server
    mkdir -p "$dir"
    local as=()
    if [ "$(id -u)" = 0 ]; then
        # PostgreSQL refuses to run as root.
        chown postgres: "$dir"
        as=(runuser -u postgres --)
    fi
    chmod 700 "$dir"
    PG_DATA=$dir/pg
    PG_SOCKET_DIR=$dir
    PG_VERSION=$("$PG_BIN/postgres" --version | awk '{print $3}')
    "${as[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 >/dev/null
    "${as[@]}" "$PG_BIN/postgres" -D "$PG_DATA" -k "$PG_SOCKET_DIR" -c listen_addresses= "$@" \
        >"$dir/postgres.log" 2>&1 &
    bench_track "$!"
    local _
    PG_PID=""
    for _ in $(seq 300); do
        if [ -S "$PG_SOCKET_DIR/.s.PGSQL.5432" ] && [ -s "$PG_DATA/postmaster.pid" ] &&
            "$PG_BIN/pg_isready" -q -h "$PG_SOCKET_DIR" -U postgres; then
            PG_PID=$(head -1 "$PG_DATA/postmaster.pid")
            break
        fi
        sleep 0.1
    done
    [ -n "$PG_PID" ] || { cat "$dir/postgres.log" >&2; die "PostgreSQL did not start (log above)"; }
    # SIGINT: fast shutdown (SIGTERM would wait for every session to end).
    bench_track "$PG_PID" INT
}

# pg_url DATABASE: a URL for the private cluster's socket (libpq, pgbench, psql and sqlx read it).
pg_url() { echo "postgres://postgres@localhost/$1?host=$PG_SOCKET_DIR"; }

# --- CPU and memory -------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)

# cpu_us PID: CPU time (user + system) PID has used so far, in µs (/proc/PID/stat); 0 once gone.
cpu_us() {
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null |
        awk -v hz="$CLK_TCK" '{ printf "%.0f\n", ($12 + $13) * 1e6 / hz } END { if (NR == 0) print 0 }'
}

# cpu_tree_us PID: the same for PID, its children it has reaped, and its live descendants, e.g. a
# postmaster and its backends.
cpu_tree_us() {
    local total child children
    total=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null |
        awk -v hz="$CLK_TCK" '{ printf "%.0f", ($12 + $13 + $14 + $15) * 1e6 / hz } END { if (NR == 0) printf "0" }')
    children=$(cat /proc/"$1"/task/*/children 2>/dev/null || true)
    for child in $children; do
        total=$((total + $(cpu_tree_us "$child")))
    done
    echo "$total"
}

# rss_mib PID / peak_rss_mib PID: resident memory now / at its highest (VmRSS / VmHWM), in MiB.
rss_mib() { awk '/^VmRSS/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"; }
peak_rss_mib() { awk '/^VmHWM/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"; }
# cpu_ticks: "busy steal total" jiffies of all CPUs since boot, from /proc/stat. Steal is time a
# virtual machine's CPUs were ready to run but the host ran something else: a run with much of it
# measured a busy host, not statelab.
cpu_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, $9, t }' /proc/stat; }
# steal_percent BEFORE AFTER (each from cpu_ticks): the share of CPU time stolen in between.
steal_percent() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[3] - x[3]; printf "%.0f%%\n", (t > 0 ? 100 * (y[2] - x[2]) / t : 0) }'; }
# rss_split_mib PID: "anonymous file" MiB of the resident set: the process's own memory, and the
# pages of its binary and libraries (clean, shared with the page cache).
rss_split_mib() { awk '/^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } END { printf "%.1f %.1f\n", a / 1024, f / 1024 }' "/proc/$1/status"; }

# run_timed OUT COMMAND...: runs COMMAND with its stdout in OUT (stderr in OUT.err) and sets
# RUN_CPU_US to the CPU time (user + system) it and its children used, in µs. Stops the script
# if COMMAND fails.
run_timed() {
    local out=$1 times TIMEFORMAT="%3U %3S"
    shift
    { times=$({ time "$@" >"$out" 2>"$out.err"; } 2>&1); } ||
        { cat "$out" "$out.err" >&2; die "$1 failed (output above)"; }
    RUN_CPU_US=$(awk '{ printf "%.0f", ($1 + $2) * 1e6 }' <<<"$times")
}

# per_request US N: µs of CPU per request, one decimal ("-" without requests).
per_request() { awk -v us="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f\n", us / n; else print "-" }'; }

# --- ratios ----------------------------------------------------------------------------------------
# ratio A B [DECIMALS]: A / B (default 2 decimals); percent A B [DECIMALS]: 100 A / B with a % sign
# (default 0 decimals). "-" when B is 0 or empty.
ratio() { awk -v a="$1" -v b="${2:-0}" -v d="${3:-2}" 'BEGIN { if (b + 0 != 0) printf "%." d "f\n", a / b; else print "-" }'; }
percent() { awk -v a="$1" -v b="${2:-0}" -v d="${3:-0}" 'BEGIN { if (b + 0 != 0) printf "%." d "f%%\n", 100 * a / b; else print "-" }'; }

# --- the summary bench/all.sh prints ----------------------------------------------------------
# summary_row WHAT NOW AIM REFERENCE RATIO MET: when BENCH_SUMMARY names a file, appends one
# tab-separated row to it, which bench/all.sh prints in one table. NOW and REFERENCE are the
# figures measured in this run, with their units; AIM says what NOW or RATIO must be; MET is
# "yes" or "no" (see meets).
summary_row() {
    [ -n "${BENCH_SUMMARY:-}" ] || return 0
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" >>"$BENCH_SUMMARY"
}

# meets VALUE OP LIMIT: "yes" when VALUE OP LIMIT holds (OP: >= > <= <), else "no".
meets() {
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
        ok = (op == ">=") ? v + 0 >= l + 0 : (op == ">") ? v + 0 > l + 0 : (op == "<=") ? v + 0 <= l + 0 : v + 0 < l + 0
        print (v == "" || v == "-") ? "no" : (ok ? "yes" : "no") }'
}
