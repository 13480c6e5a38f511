#!/usr/bin/env bash
# Do the services slow down as their stored data grows? Each row measures one rate at 10^3, 10^5
# and 10^6 stored rows (SCALE_SIZES) and calls it flat when the rate at the largest size is at
# least 0.80 of the rate at the smallest:
#
#   users      GET /users/{id}, a random existing id per request       N rows in users
#   users      GET /users?limit=100&after_id=N-200 (a page at the end) N rows in users
#   guestbook  GET / (SQLite, default settings: the 100 newest)        N messages in its file
#   queue      tasks/s claimed and run by 2 `statelab worker` (no      N tasks in state done,
#              flags) until a backlog of SCALE_BACKLOG queued no-op     within their retention
#              (`echo`) tasks is done, on PostgreSQL                    (awaiting pruning)
#   cache      GET /cache?limit=100 pages, following next_cursor       N keys in Redis
#   cache      GET /cache?limit=100&cursor=C, C about 90% through the listing, at the start of a
#              SCAN batch
#   lint       objects/s of `statelab lint` on one generated file of Deployments, StatefulSets,
#              Services and PodDisruptionBudgets, at 2,000 and 20,000 objects (LINT_SIZES)
#
# HTTP rates come from wrk (16 connections, DURATION seconds after a WARMUP-second warm-up of each
# server), the queue rate from the wall time between starting the workers and the last backlog
# task done (the backlog is deleted after each run, so every run starts with exactly N done
# tasks). Every size has its own server and its own data, filled once, and the measurements of a
# row alternate between the sizes for ROUNDS rounds (smallest first, then largest first, ...); the
# best rate of each size counts. Load from elsewhere on the machine then weighs on every size
# alike instead of on whichever size it happens to coincide with.
#
# The data is filled the fast way, straight into each backend, as the service itself writes it:
# the service starts first (its migrations create the schema), then rows are inserted with psql
# (generate_series), the sqlite3 CLI or redis-cli --pipe; PostgreSQL tables then get the VACUUM
# ANALYZE autovacuum would have run by then, and a CHECKPOINT, so that no write of the fill is
# still pending during a measurement. One service runs at a time. PostgreSQL and Redis are private
# instances on Unix sockets, the services listen on 127.0.0.1 on ports the system picks, and every
# process started here is stopped by PID. About 8 minutes at the defaults on 2 cores.
#
#   bench/scale.sh
#   SCALE_SIZES="1000 10000" SCALE_BACKLOG=10000 DURATION=3 ROUNDS=1 bench/scale.sh   # quick
#
# Settings (environment):
#   SCALE_SIZES="1000 100000 1000000"  stored rows per size, ascending (2 or more)
#   SCALE_BACKLOG=100000      queued no-op tasks the workers run in each queue run
#   ROUNDS=3                  measurements per row and size, alternating between the sizes
#   DURATION=5                seconds per wrk measurement
#   WARMUP=1                  seconds of wrk warm-up per server, before the rounds
#   CONNECTIONS=16            wrk connections
#   LINT_SIZES="2000 20000"   objects in the generated lint inputs, ascending
#   LINT_ROUNDS=3             lint runs per size; the fastest counts
#   BENCH_SUMMARY             a file to append one tab-separated line per row to:
#                             scale, row, rate at the first size, rate(s) at the sizes in between
#                             (comma-separated, "-" if none), rate at the last size, ratio
#   STATELAB_BIN              the binary (STATELAB and BIN are read too); unset, cargo build
#                             --release runs and target/release/statelab is used
#
# Needs: PostgreSQL's server programs (Debian: postgresql), psql, redis-server, redis-cli (Debian:
# redis-server, redis-tools), sqlite3, wrk, curl, python3, awk (installed with apt-get when run as
# root; see bench/lib/common.sh).
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

read -r -a SIZES <<<"${SCALE_SIZES:-1000 100000 1000000}"
BACKLOG=${SCALE_BACKLOG:-100000}
read -r -a LINT_SIZES <<<"${LINT_SIZES:-2000 20000}"
LINT_ROUNDS=${LINT_ROUNDS:-3}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=$(nproc 2>/dev/null || echo 2)
[ "$THREADS" -gt "$CONNECTIONS" ] && THREADS=$CONNECTIONS
FLAT=0.80 # the largest size's rate over the smallest's, at least

ascending() { # ascending NAME N...: two or more whole numbers, each larger than the one before
    local name=$1 previous=0 n
    shift
    [ "$#" -ge 2 ] || die "$name needs at least two sizes"
    for n in "$@"; do
        if ! [[ $n =~ ^[1-9][0-9]*$ ]] || [ "$n" -le "$previous" ]; then
            die "$name must be whole numbers in ascending order, not \"$*\""
        fi
        previous=$n
    done
}
ascending SCALE_SIZES "${SIZES[@]}"
ascending LINT_SIZES "${LINT_SIZES[@]}"
[[ $BACKLOG =~ ^[1-9][0-9]*$ ]] || die "SCALE_BACKLOG must be a whole number"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a whole number"
LARGEST=${SIZES[${#SIZES[@]} - 1]}
# Numbers in generated names, emails, messages and keys are zero-padded to this many digits, so a
# page holds the same number of bytes at every size.
WIDTH=${#LARGEST}

need_tool psql
need_tool redis-server
need_tool redis-cli
need_tool sqlite3
need_tool wrk
need_tool curl
need_tool python3
need_tool awk gawk
need_statelab
WORK=$BENCH_WORK
# Each service below is given its backend here; nothing from the caller's environment picks another.
unset DATABASE_URL REDIS_URL LISTEN_ADDR PORT DATA_DIR

progress() { echo "  $*" >&2; }

# --- measuring ----------------------------------------------------------------------------------
# wrk_run SECONDS URL [SCRIPT [ARG...]]: one wrk run; prints its requests/s. Stops the script on
# any non-2xx answer or socket error.
wrk_run() {
    local seconds=$1 url=$2 script=${3:-} args=(-t "$THREADS" -c "$CONNECTIONS")
    shift $(($# < 3 ? $# : 3))
    [ -n "$script" ] && args+=(-s "$script")
    wrk "${args[@]}" -d "${seconds}s" "$url" -- "$@" >"$WORK/wrk.out" 2>&1 || { cat "$WORK/wrk.out" >&2; die "wrk failed"; }
    if grep -q "Non-2xx\|Socket errors" "$WORK/wrk.out"; then
        cat "$WORK/wrk.out" >&2
        die "wrk saw failures on $url (above)"
    fi
    awk '/^Requests\/sec:/ { printf "%.0f\n", $2 }' "$WORK/wrk.out"
}

# round_sizes ROUND: the sizes in the order ROUND measures them, smallest first in odd rounds and
# largest first in even ones, so that a drift in the machine's load favours no size.
round_sizes() {
    if [ $(($1 % 2)) = 1 ]; then printf '%s\n' "${SIZES[@]}"; else printf '%s\n' "${SIZES[@]}" | sort -rn; fi
}

# The rows, in the order they are printed. BEST[row|size] is the best rate so far.
ROW_USER="users GET /users/{id} (random id)"
ROW_PAGE="users GET /users?limit=100&after_id=N-200"
ROW_GUESTBOOK="guestbook GET / (SQLite, 100 newest)"
ROW_QUEUE="queue tasks/s, backlog $BACKLOG (PostgreSQL)"
ROW_WALK="cache GET /cache?limit=100 walk"
ROW_DEEP="cache GET /cache?limit=100 page at ~90%"
ROW_LINT="statelab lint objects/s (${LINT_SIZES[0]} to ${LINT_SIZES[${#LINT_SIZES[@]} - 1]} objects)"
ROWS=("$ROW_USER" "$ROW_PAGE" "$ROW_GUESTBOOK" "$ROW_QUEUE" "$ROW_WALK" "$ROW_DEEP" "$ROW_LINT")
declare -A BEST
# keep ROW SIZE: keeps the rate in $WORK/rate if it is the best for ROW at SIZE. Rates go through
# that file, not $(...), so that a failure while measuring stops the script.
keep() {
    local rate
    rate=$(cat "$WORK/rate")
    [[ $rate =~ ^[0-9]+$ ]] || die "no rate for $1 at $2"
    if [ -z "${BEST[$1|$2]:-}" ] || [ "$rate" -gt "${BEST[$1|$2]}" ]; then BEST[$1|$2]=$rate; fi
}
# measure_http ROW URL-ARRAY [SCRIPT [ARG...]]: ROUNDS alternating wrk runs of DURATION seconds
# against each size's server; URL-ARRAY names an associative array of URLs by size. An ARG of
# SIZE is replaced by the size.
measure_http() {
    local row=$1 n round extra=() arg
    local -n urls=$2
    shift 2
    for round in $(seq "$ROUNDS"); do
        for n in $(round_sizes "$round"); do
            extra=()
            for arg in "$@"; do if [ "$arg" = SIZE ]; then extra+=("$n"); else extra+=("$arg"); fi; done
            wrk_run "$DURATION" "${urls[$n]}" "${extra[@]}" >"$WORK/rate"
            keep "$row" "$n"
            progress "  round $round, $n: $(cat "$WORK/rate")/s"
        done
    done
}
# warm URL-ARRAY [SCRIPT [ARG...]]: WARMUP seconds of the same load on each size's server.
warm() {
    local n extra=() arg
    local -n urls=$1
    shift
    for n in "${SIZES[@]}"; do
        extra=()
        for arg in "$@"; do if [ "$arg" = SIZE ]; then extra+=("$n"); else extra+=("$arg"); fi; done
        wrk_run "$WARMUP" "${urls[$n]}" "${extra[@]}" >/dev/null
    done
}

# --- PostgreSQL: one private cluster for the users API and the queue ----------------------------
start_postgres "$WORK" -c max_connections=100 -c shared_buffers=256MB
PSQL=(psql -h "$PG_SOCKET_DIR" -U postgres -X -q -v ON_ERROR_STOP=1)
echo "$BENCH_NAME: sizes ${SIZES[*]}, $ROUNDS rounds, wrk $DURATION s at $CONNECTIONS connections, queue backlog $BACKLOG; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# --- 1, 2. the users API --------------------------------------------------------------------------
cat >"$WORK/user-by-id.lua" <<'LUA'
-- GET /users/{id} with a random id from 1 to the number given after --, seeded per thread.
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
function init(args)
    rows = tonumber(args[1])
    math.randomseed(os.time() * 1000 + tid)
end
function request()
    return wrk.format("GET", "/users/" .. math.random(1, rows))
end
LUA
# Users as POST /users stores them: ids from the identity column (1, 2, ...), unique emails,
# created_at = now(). Each filled table is what N sign-ups leave, vacuumed and analyzed.
declare -A USERS_PID USERS_API USERS_PAGE
for n in "${SIZES[@]}"; do
    progress "users: $n rows ..."
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE scale_users_$n"
    DATABASE_URL=$(pg_url "scale_users_$n") DB_POOL_SIZE=$CONNECTIONS RUST_LOG=warn start_statelab "$WORK/users-$n.log" users
    USERS_PID[$n]=$SERVER_PID
    USERS_API[$n]=$SERVER_URL
    "${PSQL[@]}" -d "scale_users_$n" \
        -c "INSERT INTO users (name, email) SELECT 'User ' || lpad(g::text, $WIDTH, '0'), 'user-' || lpad(g::text, $WIDTH, '0') || '@example.com'
            FROM generate_series(1, $n) g" \
        -c "VACUUM ANALYZE users"
    [ "$("${PSQL[@]}" -d "scale_users_$n" -tA -c 'SELECT max(id) FROM users')" = "$n" ] || die "users: ids are not 1..$n"
    curl -fs -o /dev/null "${USERS_API[$n]}/users/$n" || die "GET /users/$n failed"
    after=$((n > 200 ? n - 200 : 0))
    USERS_PAGE[$n]="${USERS_API[$n]}/users?limit=100&after_id=$after"
    count=$(curl -fs "${USERS_PAGE[$n]}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])')
    [ "$count" = $((n - after < 100 ? n - after : 100)) ] || die "GET /users?limit=100&after_id=$after returned $count users"
done
"${PSQL[@]}" -d postgres -c CHECKPOINT
progress "users: GET /users/{id} ..."
warm USERS_API "$WORK/user-by-id.lua" SIZE
measure_http "$ROW_USER" USERS_API "$WORK/user-by-id.lua" SIZE
progress "users: GET /users?limit=100&after_id=N-200 ..."
warm USERS_PAGE
measure_http "$ROW_PAGE" USERS_PAGE
for n in "${SIZES[@]}"; do
    stop_pids "${USERS_PID[$n]}"
    "${PSQL[@]}" -d postgres -c "DROP DATABASE scale_users_$n"
done

# --- 4. the queue on PostgreSQL ------------------------------------------------------------------
# Done tasks as a worker leaves an `echo` task: attempts 1, the payload as its result, the lease
# cleared, finished within the retention period (the default 24 h: 23 h to 1 h before this run),
# so none is pruned while it runs.
BASE_EPOCH=$(date +%s)
STEP_US=$((22 * 3600 * 1000000 / LARGEST))
[ "$STEP_US" -gt 0 ] || STEP_US=1
declare -A QUEUE_PID QUEUE_API
for n in "${SIZES[@]}"; do
    progress "queue: $n done tasks ..."
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE scale_queue_$n"
    DATABASE_URL=$(pg_url "scale_queue_$n") RUST_LOG=warn start_statelab "$WORK/queue-$n.log" queue
    QUEUE_PID[$n]=$SERVER_PID
    QUEUE_API[$n]=$SERVER_URL
    "${PSQL[@]}" -d "scale_queue_$n" -c "INSERT INTO queue_tasks (kind, payload, state, attempts, max_attempts, result,
            worker, run_at, created_at, started_at, finished_at, updated_at)
        SELECT 'echo', jsonb_build_object('n', g), 'done', 1, 5, jsonb_build_object('n', g),
            'queue-worker-7c9d5b8f4-' || (ARRAY['x2k4p', 'm9q7t'])[1 + g % 2] || '-1', t, t, t + interval '150 ms',
            t + interval '160 ms', t + interval '160 ms'
        FROM generate_series(1, $n) g,
            LATERAL (SELECT to_timestamp($BASE_EPOCH) - interval '23 hours' + g::bigint * $STEP_US * interval '1 microsecond' AS t) f" \
        -c "VACUUM ANALYZE queue_tasks"
    [ "$("${PSQL[@]}" -d "scale_queue_$n" -tA -c "SELECT count(*) FROM queue_tasks WHERE state = 'done'")" = "$n" ] ||
        die "queue: not $n done tasks"
done
# Tasks of the backlog in database DB not done yet. Counting them reads every entry the run left in
# the partial indexes (tens of ms), so while the newest backlog task is not done, a primary-key
# lookup of it stands in for the count.
backlog_left() {
    local db=$1 state
    state=$("${PSQL[@]}" -d "$db" -tA -c "SELECT state FROM queue_tasks WHERE id = $last_id")
    if [ "$state" != "done" ]; then echo "$state"; return; fi
    "${PSQL[@]}" -d "$db" -tA -c "SELECT count(*) FROM queue_tasks WHERE id >= $first_id AND state <> 'done'"
}
# queue_run SIZE: enqueues the backlog, runs it with 2 workers; the rate goes to $WORK/rate. The
# backlog is the rows POST /tasks/batch with {"type": "echo", "payload": {"n": N}} writes (ids
# from the sequence, run_at = created_at = now(), priority 0, max_attempts 5), inserted by one
# statement: the time enqueueing takes is not part of the rate.
queue_run() {
    local n=$1 db=scale_queue_$1 api=${QUEUE_API[$1]} workers=() start end deadline pid _
    first_id=$("${PSQL[@]}" -d "$db" -tA -c "SELECT coalesce(max(id), 0) + 1 FROM queue_tasks")
    "${PSQL[@]}" -d "$db" -c "INSERT INTO queue_tasks (kind, payload, max_attempts)
        SELECT 'echo', jsonb_build_object('n', g), 5 FROM generate_series(0, $((BACKLOG - 1))) g"
    last_id=$("${PSQL[@]}" -d "$db" -tA -c "SELECT max(id) FROM queue_tasks")
    [ "$("${PSQL[@]}" -d "$db" -tA -c "SELECT count(*) FROM queue_tasks WHERE id >= $first_id AND state = 'queued'")" = "$BACKLOG" ] ||
        die "queue: the backlog is not $BACKLOG queued tasks"
    [[ $(curl -fs "$api/tasks/$last_id") == *'"state":"queued"'* ]] || die "GET /tasks/$last_id does not show a queued task"
    "${PSQL[@]}" -d "$db" -c CHECKPOINT
    start=$(date +%s.%N)
    for _ in 1 2; do
        DATABASE_URL=$(pg_url "$db") RUST_LOG=warn "$STATELAB_BIN" worker 2>>"$WORK/workers.log" &
        workers+=("$!")
        bench_track "$!"
    done
    deadline=$(($(date +%s) + 600))
    while [ "$(backlog_left "$db")" != 0 ]; do
        [ "$(date +%s)" -lt "$deadline" ] || die "queue: the backlog was not done within 600 s"
        for pid in "${workers[@]}"; do alive "$pid" || { tail -5 "$WORK/workers.log" >&2; die "a worker stopped"; }; done
        sleep 0.05
    done
    end=$(date +%s.%N)
    stop_pids "${workers[@]}"
    [[ $(curl -fs "$api/tasks/$last_id") == *'"state":"done"'* ]] || die "GET /tasks/$last_id does not show a done task"
    awk -v n="$BACKLOG" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f\n", n / (b - a) }' >"$WORK/rate"
    # Back to exactly N done tasks for the next run.
    "${PSQL[@]}" -d "$db" -c "DELETE FROM queue_tasks WHERE id >= $first_id" -c "VACUUM ANALYZE queue_tasks"
}
for round in $(seq "$ROUNDS"); do
    for n in $(round_sizes "$round"); do
        queue_run "$n"
        keep "$ROW_QUEUE" "$n"
        progress "queue: round $round, 2 workers ran $BACKLOG tasks over $n done tasks: $(cat "$WORK/rate") tasks/s"
    done
done
for n in "${SIZES[@]}"; do
    stop_pids "${QUEUE_PID[$n]}"
done
stop_pids "$PG_PID"

# --- 3. the guestbook on SQLite ------------------------------------------------------------------
# Messages as POST /api/messages stores them: ids from AUTOINCREMENT, the replica's name, and
# created_at as RFC 3339 text in UTC with nanoseconds (2026-01-02T03:04:05.123456789Z).
declare -A GUESTBOOK_PID GUESTBOOK
for n in "${SIZES[@]}"; do
    progress "guestbook: $n messages ..."
    mkdir -p "$WORK/guestbook-$n"
    DATA_DIR="$WORK/guestbook-$n" RUST_LOG=warn start_statelab "$WORK/guestbook-$n.log" guestbook
    GUESTBOOK_PID[$n]=$SERVER_PID
    GUESTBOOK[$n]=$SERVER_URL/
    db_file=$WORK/guestbook-$n/database.db
    [ -f "$db_file" ] || die "the guestbook did not create $db_file"
    sqlite3 "$db_file" <<SQL >/dev/null
PRAGMA busy_timeout = 10000;
BEGIN IMMEDIATE;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $n)
INSERT INTO messages (name, message, replica, created_at)
SELECT printf('visitor %0${WIDTH}d', n), printf('a message of ordinary length, number %0${WIDTH}d', n), 'guestbook-0',
       strftime('%Y-%m-%dT%H:%M:%S', $BASE_EPOCH - 82800 + n * $STEP_US / 1000000, 'unixepoch')
       || printf('.%09dZ', (n * $STEP_US % 1000000) * 1000)
FROM g;
COMMIT;
SQL
    [ "$(sqlite3 "$db_file" 'SELECT count(*) FROM messages')" = "$n" ] || die "guestbook: not $n messages"
    curl -fs -o "$WORK/page.html" "${GUESTBOOK[$n]}" || die "GET / failed"
    grep -q "number $(printf "%0${WIDTH}d" "$n")<" "$WORK/page.html" || die "GET / does not show the newest message"
done
progress "guestbook: GET / ..."
warm GUESTBOOK
measure_http "$ROW_GUESTBOOK" GUESTBOOK
for n in "${SIZES[@]}"; do stop_pids "${GUESTBOOK_PID[$n]}"; done

# --- 5. the cache on Redis ------------------------------------------------------------------------
cat >"$WORK/walk.lua" <<'LUA'
-- Walks GET /cache?limit=100 by following next_cursor; each thread keeps the cursors its answers
-- gave, so its connections walk side by side, and a finished walk starts again from the top.
local cursors, first, last = {}, 1, 0
function request()
    local path = "/cache?limit=100"
    if first <= last then
        path = path .. "&cursor=" .. cursors[first]
        cursors[first] = nil
        first = first + 1
    end
    return wrk.format("GET", path)
end
function response(status, headers, body)
    local cursor = body:match('"next_cursor":"([^"]+)"')
    if cursor then
        last = last + 1
        cursors[last] = cursor
    end
end
LUA
# walk PORT N: the whole listing through the API, once: prints how many distinct keys it returned
# (N when nothing is skipped) and the first cursor about 90% of the way through that starts a new
# SCAN batch. (A cursor `<scan>~<key>` ends inside a batch, and its page scans that batch again:
# one more SCAN per page, so the deep page compares like with like at every size.)
walk() {
    python3 - "$1" "$2" <<'PY'
import http.client, json, sys
_, port, n = sys.argv
n = int(n)
conn = http.client.HTTPConnection("127.0.0.1", int(port))
seen, cursor, deep = set(), None, None
while True:
    conn.request("GET", "/cache?limit=100" + ("&cursor=" + cursor if cursor else ""))
    answer = conn.getresponse()
    body = answer.read()
    if answer.status != 200:
        sys.exit(f"GET /cache answered {answer.status}: {body[:200]!r}")
    page = json.loads(body)
    seen.update(page["keys"])
    cursor = page["next_cursor"]
    if cursor is None:
        break
    if deep is None and len(seen) >= 0.9 * n and "~" not in cursor:
        deep = cursor
print(len(seen), deep or "-")
PY
}
# Each size has its own Redis, as in deploy/k8s/cache: AOF, fsync every second, no RDB snapshots.
# No maxmemory here: the largest size holds more than the manifest's 160 MB.
declare -A REDIS_PIDS CACHE_PID CACHE CACHE_DEEP
LISTING_NOTES=()
for n in "${SIZES[@]}"; do
    progress "cache: $n keys ..."
    mkdir -p "$WORK/redis-$n"
    start_redis "$WORK/redis-$n" --appendonly yes --appendfsync everysec --save ""
    REDIS_PIDS[$n]=$REDIS_PID
    REDIS_URL="redis+unix://$REDIS_SOCKET" start_statelab "$WORK/cache-$n.log" cache
    CACHE_PID[$n]=$SERVER_PID
    # shellcheck disable=SC2034 # read by warm and measure_http, through a nameref
    CACHE[$n]=$SERVER_URL
    # What POST /cache/item:N/VALUE stores: a string under the API's prefix.
    awk -v to="$n" -v width="$WIDTH" 'BEGIN {
        value = "0123456789abcdef"
        for (i = 1; i <= to; i++) {
            key = sprintf("cache:item:%0" width "d", i)
            printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(key), key, length(value), value
        }
    }' | redis-cli -s "$REDIS_SOCKET" --pipe >"$WORK/pipe.out" 2>&1 || { cat "$WORK/pipe.out" >&2; die "redis-cli --pipe failed"; }
    grep -q "errors: 0," "$WORK/pipe.out" || { cat "$WORK/pipe.out" >&2; die "redis-cli --pipe saw errors"; }
    [ "$(redis-cli -s "$REDIS_SOCKET" DBSIZE)" = "$n" ] || die "cache: Redis does not hold $n keys"
    walk "$SERVER_PORT" "$n" >"$WORK/walk.out" || die "cache: the walk through GET /cache failed (above)"
    read -r listed deep <"$WORK/walk.out"
    if [ "$listed" != "$n" ]; then
        LISTING_NOTES+=("cache: one walk through GET /cache?limit=100 over $n keys returned $listed distinct keys: $((n - listed)) skipped")
        progress "${LISTING_NOTES[-1]}"
    fi
    # A listing of one page has no later page: that page stands in.
    CACHE_DEEP[$n]="$SERVER_URL/cache?limit=100"
    [ "$deep" = "-" ] || CACHE_DEEP[$n]+="&cursor=$deep"
    curl -fs -o /dev/null "${CACHE_DEEP[$n]}" || die "GET /cache with the deep cursor failed"
done
progress "cache: GET /cache walk ..."
warm CACHE "$WORK/walk.lua"
measure_http "$ROW_WALK" CACHE "$WORK/walk.lua"
progress "cache: GET /cache page at ~90% ..."
warm CACHE_DEEP
measure_http "$ROW_DEEP" CACHE_DEEP
for n in "${SIZES[@]}"; do stop_pids "${CACHE_PID[$n]}" "${REDIS_PIDS[$n]}"; done

# --- 6. statelab lint ------------------------------------------------------------------------------
# generate OBJECTS FILE: units of a Deployment and its Service, and a StatefulSet with its
# headless Service and PodDisruptionBudget (5 objects each), as an app's manifests usually look.
generate() {
    awk -v units=$(($1 / 5)) 'BEGIN {
        for (i = 0; i < units; i++) {
            printf "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-%d\n  labels:\n    app.kubernetes.io/name: web\n    app.kubernetes.io/instance: web-%d\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: web\n      app.kubernetes.io/instance: web-%d\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: web\n        app.kubernetes.io/instance: web-%d\n    spec:\n      securityContext:\n        runAsNonRoot: true\n        runAsUser: 1000\n        seccompProfile:\n          type: RuntimeDefault\n      containers:\n        - name: web\n          image: registry.example.com/web:1.4.2\n          env:\n            - name: DB_HOST\n              value: db-%d-0.db-%d-headless\n          ports:\n            - containerPort: 8080\n              name: http\n          readinessProbe:\n            httpGet:\n              path: /readyz\n              port: http\n          livenessProbe:\n            httpGet:\n              path: /healthz\n              port: http\n          resources:\n            requests: {cpu: 50m, memory: 64Mi}\n            limits: {memory: 128Mi}\n          securityContext:\n            readOnlyRootFilesystem: true\n            allowPrivilegeEscalation: false\n            capabilities:\n              drop: [\"ALL\"]\n", i, i, i, i, i, i
            printf "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web-%d\n  labels:\n    app.kubernetes.io/name: web\n    app.kubernetes.io/instance: web-%d\nspec:\n  selector:\n    app.kubernetes.io/name: web\n    app.kubernetes.io/instance: web-%d\n  ports:\n    - name: http\n      port: 80\n      targetPort: http\n", i, i, i
            printf "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db-%d\n  labels:\n    app.kubernetes.io/name: postgres\n    app.kubernetes.io/instance: db-%d\nspec:\n  serviceName: db-%d-headless\n  replicas: 3\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: postgres\n      app.kubernetes.io/instance: db-%d\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: postgres\n        app.kubernetes.io/instance: db-%d\n    spec:\n      securityContext:\n        runAsNonRoot: true\n        runAsUser: 999\n        fsGroup: 999\n        seccompProfile:\n          type: RuntimeDefault\n      containers:\n        - name: postgres\n          image: postgres:16.4\n          env:\n            - name: PGDATA\n              value: /var/lib/postgresql/data/pgdata\n          ports:\n            - containerPort: 5432\n              name: postgres\n          readinessProbe:\n            exec:\n              command: [\"pg_isready\", \"-U\", \"postgres\"]\n          resources:\n            requests: {cpu: 100m, memory: 256Mi}\n            limits: {memory: 512Mi}\n          securityContext:\n            readOnlyRootFilesystem: true\n            allowPrivilegeEscalation: false\n            capabilities:\n              drop: [\"ALL\"]\n          volumeMounts:\n            - name: data\n              mountPath: /var/lib/postgresql/data\n            - name: run\n              mountPath: /var/run/postgresql\n      volumes:\n        - name: run\n          emptyDir: {}\n  persistentVolumeClaimRetentionPolicy:\n    whenDeleted: Retain\n    whenScaled: Retain\n  volumeClaimTemplates:\n    - metadata:\n        name: data\n      spec:\n        accessModes: [\"ReadWriteOnce\"]\n        resources:\n          requests:\n            storage: 1Gi\n", i, i, i, i, i
            printf "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: db-%d-headless\n  labels:\n    app.kubernetes.io/name: postgres\n    app.kubernetes.io/instance: db-%d\nspec:\n  clusterIP: None\n  selector:\n    app.kubernetes.io/name: postgres\n    app.kubernetes.io/instance: db-%d\n  ports:\n    - name: postgres\n      port: 5432\n", i, i, i
            printf "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: db-%d\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: postgres\n      app.kubernetes.io/instance: db-%d\n", i, i
        }
    }' >"$2"
}
LINT_RATES=()
for n in "${LINT_SIZES[@]}"; do
    file=$WORK/lint-$n.yaml
    generate "$n" "$file"
    objects=$(grep -c '^kind: ' "$file")
    progress "lint: $objects objects, fastest of $LINT_ROUNDS runs ..."
    best=""
    for _ in $(seq "$LINT_ROUNDS"); do
        rc=0
        t0=$(date +%s%N)
        "$STATELAB_BIN" lint "$file" >"$WORK/lint.out" 2>"$WORK/lint.err" || rc=$?
        t1=$(date +%s%N)
        # 1 only says that a finding was reported.
        [ "$rc" -le 1 ] || { cat "$WORK/lint.err" >&2; die "statelab lint exited $rc"; }
        if [ -z "$best" ] || [ $((t1 - t0)) -lt "$best" ]; then best=$((t1 - t0)); fi
    done
    LINT_RATES+=("$(awk -v o="$objects" -v ns="$best" 'BEGIN { printf "%.0f\n", o * 1e9 / ns }')")
    rm -f "$file"
done

# --- the table -------------------------------------------------------------------------------------
# RATES[row] is "rate rate ...", one per size; the lint row fills the first and last size columns
# with its own smallest and largest input.
declare -A RATES
for row in "${ROWS[@]}"; do
    [ "$row" != "$ROW_LINT" ] || continue
    cells=()
    for n in "${SIZES[@]}"; do cells+=("${BEST[$row|$n]}"); done
    RATES[$row]="${cells[*]}"
done
lint_cells=("${LINT_RATES[0]}")
for ((i = 1; i < ${#SIZES[@]} - 1; i++)); do lint_cells+=("-"); done
lint_cells+=("${LINT_RATES[${#LINT_RATES[@]} - 1]}")
RATES[$ROW_LINT]="${lint_cells[*]}"

echo
echo "Rate at each stored size; flat when the largest size's rate is at least $FLAT of the smallest's"
echo "$(nproc) cores, load average now $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL $PG_VERSION, $(redis-server --version | cut -d' ' -f3), SQLite $(sqlite3 --version | cut -d' ' -f1)"
echo "each rate: the best of $ROUNDS measurements, alternating between the sizes; HTTP: wrk, $CONNECTIONS connections, $DURATION s;"
echo "queue: wall time of 2 workers over a backlog of $BACKLOG"
echo
printf '%-46s' "row (rate/s)"
for n in "${SIZES[@]}"; do printf ' %10s' "$n"; done
printf ' %6s  %s\n' ratio verdict
for row in "${ROWS[@]}"; do
    read -r -a cells <<<"${RATES[$row]}"
    low=${cells[0]} high=${cells[${#cells[@]} - 1]}
    r=$(ratio "$high" "$low")
    verdict="NOT flat"
    if [ "$r" != "-" ] && awk -v r="$high" -v l="$low" -v f="$FLAT" 'BEGIN { exit !(r / l >= f) }'; then verdict=flat; fi
    printf '%-46s' "$row"
    for cell in "${cells[@]}"; do printf ' %10s' "$cell"; done
    printf ' %6s  %s\n' "$r" "$verdict"
    if [ -n "${BENCH_SUMMARY:-}" ]; then
        middle=$(IFS=,; echo "${cells[*]:1:${#cells[@]}-2}")
        printf 'scale\t%s\t%s\t%s\t%s\t%s\n' "$row" "$low" "${middle:--}" "$high" "$r" >>"$BENCH_SUMMARY"
    fi
done
echo
for note in "${LISTING_NOTES[@]}"; do echo "warning: $note"; done
echo "queue: N is the number of done tasks stored; lint: the first and last columns are ${LINT_SIZES[0]} and ${LINT_SIZES[${#LINT_SIZES[@]} - 1]} objects."
