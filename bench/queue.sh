#!/usr/bin/env bash
# End-to-end throughput of the task queue: no-op (`echo`) tasks enqueued in batches of 1000
# through `statelab queue`, run by 2 `statelab worker` processes started with no tuning flags,
# for each backend; in the same run, what the backend itself does with its own tool:
#   PostgreSQL: pgbench running the SKIP LOCKED claim (batch of 64, straight to done)
#   Redis:      redis-benchmark's LMOVE rate (one task moved per command)
# Everything runs on this machine, in a temp dir, and is stopped by PID at the end: PostgreSQL
# and Redis on Unix sockets only, the producer API on 127.0.0.1 on a port the system picks.
#
#   bench/queue.sh                 # TASKS=50000 ROUNDS=3 BACKLOG=100000 by default
#   TASKS=100000 ROUNDS=5 bench/queue.sh
#
# Then the backlog drain: BACKLOG tasks enqueued first with no worker running, then 2 workers
# started, timed until every task is done (the rate a queue catches up at after an outage).
#
# The binary: STATELAB_BIN (STATELAB and BIN are read too; unset, it runs cargo build --release
# and uses target/release/statelab).
# Needs: PostgreSQL with pgbench (Debian: postgresql), redis-server, redis-benchmark (Debian:
# redis-server, redis-tools), curl, python3 (installed with apt-get when run as root; see
# bench/lib/common.sh).
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

TASKS="${TASKS:-50000}"
ROUNDS="${ROUNDS:-3}"
BACKLOG="${BACKLOG:-100000}"
BATCH=1000
PARALLEL_ENQUEUE=2
PGBENCH_CLAIM_BATCH=64

need_tool curl
need_tool python3
need_tool redis-server
need_tool redis-benchmark
need_tool pgbench
need_tool psql
need_statelab
WORK=$BENCH_WORK
# Each run below names its backend; nothing from the caller's environment chooses another one.
unset DATABASE_URL REDIS_URL LISTEN_ADDR PORT

# --- PostgreSQL: a private cluster (default settings: fsync and synchronous_commit on) -----
start_postgres "$WORK" -c max_connections=200 -c shared_buffers=256MB
PSQL=(psql -h "$WORK" -U postgres -X -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE queue_e2e" -c "CREATE DATABASE queue_pgbench"
PG_URL=$(pg_url queue_e2e)

# --- Redis: AOF on, fsync every second, as in the manifests ---------------------------------
start_redis "$WORK" --save "" --appendonly yes --appendfsync everysec
REDIS_URL_="redis+unix://$REDIS_SOCKET"

# One batch body of $BATCH no-op tasks.
python3 - "$BATCH" >"$WORK/batch.json" <<'PY'
import json, sys
print(json.dumps([{"type": "echo", "payload": {"n": i}} for i in range(int(sys.argv[1]))]))
PY

now() { date +%s.%N; }
done_count() { curl -sf "$1/stats" | grep -o '"done":[0-9]*' | cut -d: -f2; }
# enqueue API N: N tasks in batches of $BATCH, $PARALLEL_ENQUEUE requests at a time.
enqueue() {
  seq $(($2 / BATCH)) | xargs -P "$PARALLEL_ENQUEUE" -I{} \
    curl -sf -o /dev/null -H 'content-type: application/json' --data-binary "@$WORK/batch.json" "$1/tasks/batch"
}
# wait_done API TOTAL: until TOTAL tasks are done (at most 10 minutes).
wait_done() {
  local deadline=$(( $(date +%s) + 600 ))
  while [ "$(done_count "$1")" -lt "$2" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for $2 done" >&2; exit 1; }
    sleep 0.02
  done
}

# Runs one backend: producer + 2 workers (no flags), ROUNDS rounds of TASKS tasks each.
# Prints one rate per round.
e2e() {
  local var="$1" url="$2" name="$3"
  local -x "$var=$url"
  RUST_LOG=warn start_statelab "$WORK/producer-$name.log" queue
  local mine=("$SERVER_PID") _
  for _ in 1 2; do
    RUST_LOG=warn "$STATELAB_BIN" worker 2>>"$WORK/workers-$name.log" &
    mine+=($!)
    bench_track "$!"
  done
  local api=$SERVER_URL
  sleep 1 # the workers connect and run their migrations check
  local total=0
  for _ in $(seq "$ROUNDS"); do
    total=$((total + TASKS))
    local start end
    start=$(now)
    enqueue "$api" "$TASKS"
    wait_done "$api" "$total"
    end=$(now)
    python3 -c "print(round($TASKS / ($end - $start)))"
  done
  stop_pids "${mine[@]}"
}

# The backlog drain: BACKLOG tasks enqueued with no worker running, then 2 workers (no flags)
# started; the rate is BACKLOG / (time from the workers' start until every task is done).
drain() {
  local var="$1" url="$2" name="$3"
  local -x "$var=$url"
  RUST_LOG=warn start_statelab "$WORK/drain-producer-$name.log" queue
  local api=$SERVER_URL producer=$SERVER_PID before
  before=$(done_count "$api")
  enqueue "$api" "$BACKLOG"
  local total=$((before + BACKLOG)) start end workers=() _
  start=$(now)
  for _ in 1 2; do
    RUST_LOG=warn "$STATELAB_BIN" worker 2>>"$WORK/drain-workers-$name.log" &
    workers+=($!)
    bench_track "$!"
  done
  wait_done "$api" "$total"
  end=$(now)
  stop_pids "${workers[@]}" "$producer"
  python3 -c "print(round($BACKLOG / ($end - $start)))"
}

echo "statelab queue benchmark: $TASKS no-op tasks per round, $ROUNDS rounds, batches of $BATCH, 2 workers (defaults)"
echo "machine: $(nproc) cores; $("$PG_BIN/postgres" --version); $(redis-server --version | cut -d' ' -f3)"
echo

e2e DATABASE_URL "$PG_URL" postgres >"$WORK/postgres.rates"
mapfile -t PG_RATES <"$WORK/postgres.rates"
e2e REDIS_URL "$REDIS_URL_" redis >"$WORK/redis.rates"
mapfile -t REDIS_RATES <"$WORK/redis.rates"
drain DATABASE_URL "$PG_URL" postgres >"$WORK/postgres.drain"
PG_DRAIN=$(cat "$WORK/postgres.drain")
drain REDIS_URL "$REDIS_URL_" redis >"$WORK/redis.drain"
REDIS_DRAIN=$(cat "$WORK/redis.drain")

# --- pgbench: the SKIP LOCKED claim alone, on the same schema and server -----------------------
PGB_ROWS=400000
PGB_TX=$(( PGB_ROWS / PGBENCH_CLAIM_BATCH / 2 - 100 ))
"${PSQL[@]}" -d queue_pgbench -f "$BENCH_ROOT/migrations/queue/0001_tasks.sql" >/dev/null
"${PSQL[@]}" -d queue_pgbench -c "INSERT INTO queue_tasks (kind, payload, max_attempts) \
  SELECT 'echo', jsonb_build_object('n', g), 5 FROM generate_series(1, $PGB_ROWS) g" -c "VACUUM ANALYZE queue_tasks"
cat >"$WORK/claim.sql" <<SQL
WITH picked AS (
  SELECT id FROM queue_tasks WHERE state IN ('queued', 'failed') AND run_at <= now()
  ORDER BY priority DESC, run_at, id LIMIT $PGBENCH_CLAIM_BATCH FOR UPDATE SKIP LOCKED)
UPDATE queue_tasks t SET state = 'done', attempts = t.attempts + 1, finished_at = now(), updated_at = now()
FROM picked WHERE t.id = picked.id;
SQL
PGB_TPS=$(pgbench -h "$WORK" -U postgres -n -c 2 -j 2 -t "$PGB_TX" -f "$WORK/claim.sql" queue_pgbench 2>&1 \
  | grep -E '^tps' | head -1 | sed -E 's/tps = ([0-9.]+).*/\1/')
PG_RAW=$(python3 -c "print(round($PGB_TPS * $PGBENCH_CLAIM_BATCH))")

# --- redis-benchmark: LMOVE, one element per command --------------------------------------------
RB_N=1000000
redis-benchmark -s "$REDIS_SOCKET" -n "$RB_N" -P 16 -q LPUSH bench:src x >/dev/null
REDIS_RAW=$(redis-benchmark -s "$REDIS_SOCKET" -n "$RB_N" -c 50 -q LMOVE bench:src bench:dst RIGHT LEFT \
  | grep -oE '[0-9.]+ requests per second' | cut -d' ' -f1 | cut -d. -f1)

best() { printf '%s\n' "$@" | sort -n | tail -1; }
PG_BEST=$(best "${PG_RATES[@]}")
REDIS_BEST=$(best "${REDIS_RATES[@]}")

printf '%-10s | %-24s | %-44s | %s\n' backend "statelab e2e tasks/s" "backend's own limit (same run)" "ratio"
printf '%-10s-+-%-24s-+-%-44s-+-%s\n' ---------- ------------------------ -------------------------------------------- -----
printf '%-10s | %-24s | %-44s | %s\n' postgres "$PG_BEST" "$PG_RAW claims/s (pgbench SKIP LOCKED x$PGBENCH_CLAIM_BATCH)" "$(ratio "$PG_BEST" "$PG_RAW" 3)"
printf '%-10s | %-24s | %-44s | %s\n' redis "$REDIS_BEST" "$REDIS_RAW moves/s (redis-benchmark LMOVE, -c 50)" "$(ratio "$REDIS_BEST" "$REDIS_RAW" 3)"
echo
echo "per round (rate must not decay as finished tasks accumulate):"
echo "  postgres: ${PG_RATES[*]}"
echo "  redis:    ${REDIS_RATES[*]}"
echo
echo "backlog drain: $BACKLOG tasks enqueued first, then 2 workers started; tasks/s until all done:"
echo "  postgres: $PG_DRAIN ($(ratio "$PG_DRAIN" "$PG_RAW" 3) of pgbench's claims/s)"
echo "  redis:    $REDIS_DRAIN ($(ratio "$REDIS_DRAIN" "$REDIS_RAW" 3) of redis-benchmark's LMOVE/s)"
summary_row "queue on PostgreSQL: $BACKLOG-task backlog, 2 workers" "$PG_DRAIN tasks/s" ">= 8000 tasks/s" \
    "$PG_RAW claims/s pgbench SKIP LOCKED" "$(ratio "$PG_DRAIN" "$PG_RAW" 3)" "$(meets "$PG_DRAIN" ">=" 8000)"
summary_row "queue on Redis (AOF everysec): $BACKLOG-task backlog, 2 workers" "$REDIS_DRAIN tasks/s" \
    ">= 15000 tasks/s" "$REDIS_RAW LMOVE/s redis-benchmark" "$(ratio "$REDIS_DRAIN" "$REDIS_RAW" 3)" \
    "$(meets "$REDIS_DRAIN" ">=" 15000)"
