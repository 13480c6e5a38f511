#!/usr/bin/env bash
# Runs schemathesis (https://schemathesis.io) against every JSON service that publishes an
# /openapi.json, each in front of its own private backend on a Unix socket:
#   users  on PostgreSQL
#   cache  on Redis
#   queue  on PostgreSQL and on Redis, when `statelab queue` serves /openapi.json (probed;
#          skipped with a note while it does not)
# The guestbook's JSON API publishes no document and is not tested here.
#
# Every check (`--checks all`) and every phase (examples, coverage, fuzzing, stateful) runs, with
# the built-in `use_after_free` swapped for the hooks' `use_after_free_or_stored_again` (the same
# check, aware of the cache's `POST /cache/{key}/{value}`: scripts/schemathesis/hooks.py), and
# at most SCHEMATHESIS_MAX_EXAMPLES cases per operation (default 40) so the whole run takes a few
# minutes on two cores. Exits non-zero if any service fails.
#
#   scripts/schemathesis.sh [SERVICE...]      # default: users cache queue
#
# The binary: STATELAB_BIN, else target/debug/statelab (built with `cargo build` if missing).
# Install schemathesis with `python3 -m pip install schemathesis`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATELAB_BIN=${STATELAB_BIN:-$ROOT/target/debug/statelab}
if [ ! -x "$STATELAB_BIN" ] && [ "$STATELAB_BIN" = "$ROOT/target/debug/statelab" ]; then
    (cd "$ROOT" && cargo build --quiet)
fi
export STATELAB_BIN
# shellcheck source=bench/lib/common.sh
. "$ROOT/bench/lib/common.sh"
BENCH_NAME=scripts/schemathesis.sh
need_statelab
command -v schemathesis >/dev/null 2>&1 ||
    die "schemathesis is missing: install it with python3 -m pip install schemathesis"

MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-40}
SERVICES=("$@")
[ ${#SERVICES[@]} -gt 0 ] || SERVICES=(users cache queue)
echo "$BENCH_NAME: $(schemathesis --version), $MAX_EXAMPLES examples per operation"

export SCHEMATHESIS_HOOKS=$ROOT/scripts/schemathesis/hooks.py
RESULTS=()
FAILED=0

# run_schemathesis NAME URL: the whole run against URL/openapi.json; records the outcome.
run_schemathesis() {
    local name=$1 url=$2 status=0
    echo "--- schemathesis: $name ($url/openapi.json)"
    # From the temp directory: schemathesis keeps .schemathesis/ and .hypothesis/ in the
    # working directory, and replays the failures it stored there on the next run.
    (cd "$BENCH_WORK" && schemathesis --config-file "$ROOT/scripts/schemathesis/schemathesis.toml" run "$url/openapi.json" \
        --checks all --exclude-checks use_after_free \
        --phases "${SCHEMATHESIS_PHASES:-examples,coverage,fuzzing,stateful}" \
        --max-examples "$MAX_EXAMPLES" \
        --workers 1 \
        --request-timeout 10 \
        --generation-database none \
        --no-color \
        --report junit --report-dir "$BENCH_WORK/reports/$name") || status=$?
    if [ "$status" = 0 ]; then
        RESULTS+=("$name: passed")
    else
        RESULTS+=("$name: FAILED (schemathesis exit $status)")
        FAILED=1
    fi
}

# serves_openapi URL: whether the server publishes an OpenAPI document.
serves_openapi() {
    curl -fs "$1/openapi.json" 2>/dev/null | python3 -c \
        'import json, sys; sys.exit(0 if str(json.load(sys.stdin).get("openapi", "")).startswith("3.") else 1)' 2>/dev/null
}

# Each service gets its own directory, backend and server, stopped before the next one starts.
# postgres_database NAME: creates NAME on the private PostgreSQL (started on first use) and
# sets DB_URL to it. Not in $(...): the server must be started, and tracked, by this shell.
PG_STARTED=""
postgres_database() {
    if [ -z "$PG_STARTED" ]; then
        start_postgres "$BENCH_WORK"
        PG_STARTED=1
    fi
    "$PG_BIN/psql" -q -h "$PG_SOCKET_DIR" -U postgres -d postgres -c "CREATE DATABASE $1" >/dev/null
    DB_URL=$(pg_url "$1")
}

stop_server() { stop_pids "$SERVER_PID"; }

for service in "${SERVICES[@]}"; do
    case $service in
    users)
        postgres_database users
        start_statelab "$BENCH_WORK/users.log" users --database-url "$DB_URL"
        run_schemathesis users "$SERVER_URL"
        stop_server
        ;;
    cache)
        mkdir -p "$BENCH_WORK/redis-cache"
        start_redis "$BENCH_WORK/redis-cache"
        start_statelab "$BENCH_WORK/cache.log" cache --redis-url "redis+unix://$REDIS_SOCKET"
        run_schemathesis cache "$SERVER_URL"
        stop_server
        stop_pids "$REDIS_PID"
        ;;
    queue)
        postgres_database queue
        start_statelab "$BENCH_WORK/queue-pg.log" queue --backend postgres --database-url "$DB_URL"
        if ! serves_openapi "$SERVER_URL"; then
            RESULTS+=("queue: skipped (statelab queue serves no /openapi.json yet)")
            stop_server
            continue
        fi
        run_schemathesis "queue (postgres)" "$SERVER_URL"
        stop_server
        mkdir -p "$BENCH_WORK/redis-queue"
        start_redis "$BENCH_WORK/redis-queue"
        start_statelab "$BENCH_WORK/queue-redis.log" queue --backend redis \
            --redis-url "redis+unix://$REDIS_SOCKET"
        run_schemathesis "queue (redis)" "$SERVER_URL"
        stop_server
        stop_pids "$REDIS_PID"
        ;;
    *) die "unknown service $service (users, cache, queue)" ;;
    esac
done

echo "--- schemathesis results"
printf '%s\n' "${RESULTS[@]}"
exit "$FAILED"
