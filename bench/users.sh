#!/usr/bin/env bash
# The users API against PostgreSQL's own limit, in one run, on the same database:
#
#   pgbench, 16 clients: a single-row INSERT ... RETURNING, then a SELECT of the 100 newest rows
#   wrk, 16 connections: POST /users (JSON body), then GET /users?limit=100
#
# and each API rate as a ratio of pgbench's. Aims: POST >= 0.70 of the INSERT rate, GET >= 0.60
# of the SELECT rate. Everything runs on loopback; every process started here is stopped by PID.
#
# Needs: target/release/statelab (cargo build --release), pgbench and PostgreSQL's server
# programs (Debian: postgresql, postgresql-contrib), wrk (apt-get install wrk), curl.
#
# Settings (environment):
#   DURATION=10           seconds per measured run (each is preceded by a 2 s warm-up)
#   CONNECTIONS=16        pgbench clients and wrk connections
#   BENCH_DATABASE_URL    an admin URL of an existing server to use instead of a private
#                         throwaway cluster (a database statelab_bench_users is created and
#                         dropped on it)
#   STATELAB=target/release/statelab
set -euo pipefail

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
STATELAB=${STATELAB:-target/release/statelab}
THREADS=$(nproc 2>/dev/null || echo 2)
[ "$THREADS" -gt "$CONNECTIONS" ] && THREADS=$CONNECTIONS

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench/users.sh: $1 is missing; install $2" >&2; exit 1; }; }
need pgbench "the Debian package postgresql-contrib (or postgresql)"
need psql "the Debian package postgresql-client"
need wrk "the Debian package wrk (apt-get install wrk)"
need curl "curl"
[ -x "$STATELAB" ] || { echo "bench/users.sh: $STATELAB not found; run cargo build --release" >&2; exit 1; }

WORK=$(mktemp -d /tmp/statelab-bench-users.XXXXXX)
API_PID=""
PG_STARTED=""
AS=()
PGBIN=""
ADMIN_URL=""

cleanup() {
    if [ -n "$API_PID" ]; then kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true; fi
    if [ -n "$PG_STARTED" ]; then
        "${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1 || true
    elif [ -n "$ADMIN_URL" ]; then
        psql -q "$ADMIN_URL" -c 'DROP DATABASE IF EXISTS statelab_bench_users WITH (FORCE)' >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- the database -------------------------------------------------------------------------
if [ -n "${BENCH_DATABASE_URL:-}" ]; then
    ADMIN_URL=$BENCH_DATABASE_URL
    psql -q "$ADMIN_URL" -c 'DROP DATABASE IF EXISTS statelab_bench_users WITH (FORCE)' -c 'CREATE DATABASE statelab_bench_users' >/dev/null
    URL=$(python3 - "$ADMIN_URL" <<'EOF'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(u._replace(path="/statelab_bench_users")))
EOF
)
    WHERE="the server at BENCH_DATABASE_URL"
else
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -x "$PGBIN/initdb" ] || { echo "bench/users.sh: initdb not found; install the Debian package postgresql" >&2; exit 1; }
    if [ "$(id -u)" = 0 ]; then
        # PostgreSQL refuses to run as root.
        chown postgres: "$WORK"
        AS=(runuser -u postgres --)
    fi
    "${AS[@]}" "$PGBIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 >/dev/null
    PGPORT=$(free_port)
    "${AS[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $WORK -c max_connections=100 -c shared_buffers=128MB" \
        start >/dev/null
    PG_STARTED=1
    URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
    WHERE="a private PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') cluster (default settings, fsync on)"
fi

# --- the API (it creates the users table with its migrations) ----------------------------
DATABASE_URL=$URL DB_POOL_SIZE=$CONNECTIONS LOG_FORMAT=json RUST_LOG=warn,statelab::server=info \
    "$STATELAB" users --listen 127.0.0.1:0 2>"$WORK/api.log" &
API_PID=$!
API_PORT=""
for _ in $(seq 1 100); do
    API_PORT=$(grep -o '"local":"127.0.0.1:[0-9]*"' "$WORK/api.log" 2>/dev/null | head -1 | grep -o '[0-9]*"$' | tr -d '"' || true)
    [ -n "$API_PORT" ] && break
    sleep 0.1
done
[ -n "$API_PORT" ] || { echo "the API did not start:" >&2; cat "$WORK/api.log" >&2; exit 1; }
API="http://127.0.0.1:$API_PORT"
for _ in $(seq 1 100); do
    curl -fs "$API/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$API/readyz" >/dev/null || { echo "the API did not become ready:" >&2; cat "$WORK/api.log" >&2; exit 1; }

# --- the workloads -------------------------------------------------------------------------
# The INSERT matches what POST /users runs (RETURNING the row); emails are unique.
cat >"$WORK/insert.sql" <<'EOF'
INSERT INTO users (name, email) VALUES ('Bench', 'pgbench-' || gen_random_uuid() || '@example.com') RETURNING id, name, email, created_at;
EOF
cat >"$WORK/select.sql" <<'EOF'
SELECT id, name, email, created_at FROM users ORDER BY id DESC LIMIT 100;
EOF
cat >"$WORK/post.lua" <<'EOF'
-- POST /users with a JSON body and an email unique per thread and request.
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
function init(args)
    prefix = "wrk-" .. (args[1] or "run") .. "-" .. tid .. "-"
    counter = 0
end
function request()
    counter = counter + 1
    local body = '{"name":"Bench","email":"' .. prefix .. counter .. '@example.com"}'
    return wrk.format("POST", "/users", { ["Content-Type"] = "application/json" }, body)
end
EOF

pgbench_run() { # script seconds -> "tps avg_latency_ms"
    local out
    out=$(pgbench -n -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$2" -f "$WORK/$1" "$URL" 2>&1) || { echo "$out" >&2; exit 1; }
    local failed
    failed=$(echo "$out" | awk '/number of failed transactions/ {print $5}')
    if [ -n "$failed" ] && [ "$failed" != "0" ]; then echo "pgbench: $failed failed transactions" >&2; echo "$out" >&2; exit 1; fi
    echo "$(echo "$out" | awk '/^tps = / {print $3; exit}') $(echo "$out" | awk '/^latency average/ {print $4; exit}')"
}

wrk_run() { # seconds url [lua] -> "req_per_s avg_latency_ms p99_ms"
    local args=(-t "$THREADS" -c "$CONNECTIONS" -d "${1}s" --latency)
    [ -n "${3:-}" ] && args+=(-s "$3")
    local out
    out=$(wrk "${args[@]}" "$2" -- "$RANDOM$$" 2>&1)
    if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
        echo "wrk saw failures:" >&2; echo "$out" >&2; echo "API log:" >&2; tail -5 "$WORK/api.log" >&2; exit 1
    fi
    python3 - "$out" <<'EOF'
import re, sys
out = sys.argv[1]
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
avg = ms(re.search(r"Latency\s+(\S+)", out).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
print(f"{rate} {avg:.3f} {p99:.3f}")
EOF
}

echo "bench/users.sh: $DURATION s per run, $CONNECTIONS connections, on $WHERE" >&2
echo "  warm-up and pgbench INSERT ..." >&2
pgbench_run insert.sql 2 >/dev/null
read -r PG_INSERT PG_INSERT_LAT <<<"$(pgbench_run insert.sql "$DURATION")"
echo "  warm-up and POST /users ..." >&2
wrk_run 2 "$API/users" "$WORK/post.lua" >/dev/null
read -r API_POST API_POST_LAT API_POST_P99 <<<"$(wrk_run "$DURATION" "$API/users" "$WORK/post.lua")"
ROWS=$(psql -tAq "$URL" -c 'SELECT count(*) FROM users')
echo "  warm-up and pgbench SELECT 100 newest ($ROWS rows) ..." >&2
pgbench_run select.sql 2 >/dev/null
read -r PG_SELECT PG_SELECT_LAT <<<"$(pgbench_run select.sql "$DURATION")"
echo "  warm-up and GET /users?limit=100 ..." >&2
wrk_run 2 "$API/users?limit=100" >/dev/null
read -r API_GET API_GET_LAT API_GET_P99 <<<"$(wrk_run "$DURATION" "$API/users?limit=100")"
# The page really holds 100 users.
COUNT=$(curl -fs "$API/users?limit=100" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
[ "$COUNT" = 100 ] || { echo "GET /users?limit=100 returned $COUNT users" >&2; exit 1; }

python3 - "$PG_INSERT" "$PG_INSERT_LAT" "$API_POST" "$API_POST_LAT" "$API_POST_P99" \
    "$PG_SELECT" "$PG_SELECT_LAT" "$API_GET" "$API_GET_LAT" "$API_GET_P99" "$(nproc)" <<'EOF'
import sys
(pg_i, pg_il, api_p, api_pl, api_pp, pg_s, pg_sl, api_g, api_gl, api_gp, cores) = sys.argv[1:]
rows = [
    ("insert 1 row   | POST /users", float(pg_i), float(pg_il), float(api_p), float(api_pl), float(api_pp), 0.70),
    ("select 100 new | GET /users?limit=100", float(pg_s), float(pg_sl), float(api_g), float(api_gl), float(api_gp), 0.60),
]
print(f"{'workload (pgbench | API)':40} {'pgbench tx/s':>12} {'avg ms':>7} {'API req/s':>10} {'avg ms':>7} {'p99 ms':>7} {'ratio':>6} {'aim':>6}")
for name, pg, pgl, api, apil, apip, aim in rows:
    ratio = api / pg
    mark = "ok" if ratio >= aim else "BELOW"
    print(f"{name:40} {pg:12.0f} {pgl:7.2f} {api:10.0f} {apil:7.2f} {apip:7.2f} {ratio:6.2f} {'>=' + format(aim, '.2f'):>6} {mark}")
print(f"(one machine, {cores} cores shared by PostgreSQL, the API and the load generator)")
EOF
