#!/usr/bin/env bash
# End-to-end throughput of the task queue: no-op (`echo`) tasks enqueued in batches of 1000
# through `statelab queue`, run by 2 `statelab worker` processes started with no tuning flags,
# for each backend; in the same run, what the backend itself does with its own tool:
#   PostgreSQL: pgbench running the SKIP LOCKED claim (batch of 64, straight to done)
#   Redis:      redis-benchmark's LMOVE rate (one task moved per command)
# Everything runs on this machine over loopback / Unix sockets, in a temp dir, and is stopped
# by PID at the end. Build first: cargo build --release
#
#   bench/queue.sh                 # TASKS=50000 ROUNDS=3 by default
#   TASKS=100000 ROUNDS=5 bench/queue.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${STATELAB_BIN:-$ROOT/target/release/statelab}"
TASKS="${TASKS:-50000}"
ROUNDS="${ROUNDS:-3}"
BATCH=1000
PARALLEL_ENQUEUE=2
PGBENCH_CLAIM_BATCH=64

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench/queue.sh needs $1 ($2)" >&2; exit 1; }; }
[ -x "$BIN" ] || { echo "build first: cargo build --release (looked for $BIN)" >&2; exit 1; }
need curl curl; need redis-server redis-server; need redis-benchmark redis-tools; need pgbench postgresql-contrib
PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$PGBIN/initdb" ] || { echo "bench/queue.sh needs PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 1; }

WORK="$(mktemp -d /tmp/statelab-queue-bench.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- PostgreSQL: a private cluster (default settings: fsync and synchronous_commit on) -----
AS_PG=()
if [ "$(id -u)" = 0 ]; then AS_PG=(runuser -u postgres --); chown postgres: "$WORK"; fi
chmod 700 "$WORK"
"${AS_PG[@]}" "$PGBIN/initdb" -D "$WORK/pg" -U postgres -A trust -E UTF8 >/dev/null
"${AS_PG[@]}" "$PGBIN/postgres" -D "$WORK/pg" -k "$WORK" -c listen_addresses= \
  -c max_connections=200 -c shared_buffers=256MB >"$WORK/pg.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$WORK/.s.PGSQL.5432" ] && break; sleep 0.1; done
sleep 0.5
PSQL=(psql -h "$WORK" -U postgres -X -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE queue_e2e" -c "CREATE DATABASE queue_pgbench"
PG_URL="postgres://postgres@localhost/queue_e2e?host=$WORK"

# --- Redis: AOF on, fsync every second, as in the manifests ---------------------------------
redis-server --port 0 --unixsocket "$WORK/redis.sock" --unixsocketperm 700 --dir "$WORK" \
  --save "" --appendonly yes --appendfsync everysec --daemonize no --logfile "$WORK/redis.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$WORK/redis.sock" ] && break; sleep 0.1; done
REDIS_URL_="redis+unix://$WORK/redis.sock"

# One batch body of $BATCH no-op tasks.
python3 - "$BATCH" >"$WORK/batch.json" <<'PY'
import json, sys
print(json.dumps([{"type": "echo", "payload": {"n": i}} for i in range(int(sys.argv[1]))]))
PY

now() { date +%s.%N; }
done_count() { curl -sf "$1/stats" | grep -o '"done":[0-9]*' | cut -d: -f2; }

# Runs one backend: producer + 2 workers (no flags), ROUNDS rounds of TASKS tasks each.
# Prints one rate per round.
e2e() {
  local var="$1" url="$2" port="$3"
  local mine=()
  env -u DATABASE_URL -u REDIS_URL "$var=$url" RUST_LOG=warn "$BIN" queue --listen "127.0.0.1:$port" \
    2>"$WORK/producer-$port.log" &
  mine+=($!)
  for _ in 1 2; do
    env -u DATABASE_URL -u REDIS_URL -u LISTEN_ADDR -u PORT "$var=$url" RUST_LOG=warn "$BIN" worker \
      2>>"$WORK/workers-$port.log" &
    mine+=($!)
  done
  PIDS+=("${mine[@]}")
  local api="http://127.0.0.1:$port"
  for _ in $(seq 200); do curl -sf "$api/readyz" >/dev/null && break; sleep 0.1; done
  sleep 1 # the workers connect and run their migrations check
  local total=0 round
  for round in $(seq "$ROUNDS"); do
    total=$((total + TASKS))
    local start end
    start=$(now)
    seq $((TASKS / BATCH)) | xargs -P "$PARALLEL_ENQUEUE" -I{} \
      curl -sf -o /dev/null -H 'content-type: application/json' --data-binary "@$WORK/batch.json" "$api/tasks/batch"
    local deadline=$(( $(date +%s) + 600 ))
    while [ "$(done_count "$api")" -lt "$total" ]; do
      [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for $total done" >&2; exit 1; }
      sleep 0.05
    done
    end=$(now)
    python3 -c "print(round($TASKS / ($end - $start)))"
  done
  kill "${mine[@]}" 2>/dev/null || true
  wait "${mine[@]}" 2>/dev/null || true
}

echo "statelab queue benchmark: $TASKS no-op tasks per round, $ROUNDS rounds, batches of $BATCH, 2 workers (defaults)"
echo "machine: $(nproc) cores; $("$PGBIN/postgres" --version); $(redis-server --version | cut -d' ' -f3)"
echo

e2e DATABASE_URL "$PG_URL" 18100 >"$WORK/postgres.rates"
mapfile -t PG_RATES <"$WORK/postgres.rates"
e2e REDIS_URL "$REDIS_URL_" 18101 >"$WORK/redis.rates"
mapfile -t REDIS_RATES <"$WORK/redis.rates"

# --- pgbench: the SKIP LOCKED claim alone, on the same schema and server -----------------------
PGB_ROWS=400000
PGB_TX=$(( PGB_ROWS / PGBENCH_CLAIM_BATCH / 2 - 100 ))
"${PSQL[@]}" -d queue_pgbench -f "$ROOT/migrations/queue/0001_tasks.sql" >/dev/null
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
redis-benchmark -s "$WORK/redis.sock" -n "$RB_N" -P 16 -q LPUSH bench:src x >/dev/null
REDIS_RAW=$(redis-benchmark -s "$WORK/redis.sock" -n "$RB_N" -c 50 -q LMOVE bench:src bench:dst RIGHT LEFT \
  | grep -oE '[0-9.]+ requests per second' | cut -d' ' -f1 | cut -d. -f1)

best() { printf '%s\n' "$@" | sort -n | tail -1; }
ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }
PG_BEST=$(best "${PG_RATES[@]}")
REDIS_BEST=$(best "${REDIS_RATES[@]}")

printf '%-10s | %-24s | %-44s | %s\n' backend "statelab e2e tasks/s" "backend's own limit (same run)" "ratio"
printf '%-10s-+-%-24s-+-%-44s-+-%s\n' ---------- ------------------------ -------------------------------------------- -----
printf '%-10s | %-24s | %-44s | %s\n' postgres "$PG_BEST" "$PG_RAW claims/s (pgbench SKIP LOCKED x$PGBENCH_CLAIM_BATCH)" "$(ratio "$PG_BEST" "$PG_RAW")"
printf '%-10s | %-24s | %-44s | %s\n' redis "$REDIS_BEST" "$REDIS_RAW moves/s (redis-benchmark LMOVE, -c 50)" "$(ratio "$REDIS_BEST" "$REDIS_RAW")"
echo
echo "per round (rate must not decay as finished tasks accumulate):"
echo "  postgres: ${PG_RATES[*]}"
echo "  redis:    ${REDIS_RATES[*]}"
