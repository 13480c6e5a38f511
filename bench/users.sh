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

# CPU time in clock ticks, to show where each request's work goes (private cluster only):
# PostgreSQL = the postmaster, its reaped children (backends that ended) and its live ones.
TICK_US=$((1000000 / $(getconf CLK_TCK)))
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
    [ -n "$PG_STARTED" ] || { echo 0; return; }
    local postmaster total pid
    postmaster=$(head -1 "$WORK/data/postmaster.pid")
    total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat")
    for pid in $(cat "/proc/$postmaster/task/$postmaster/children" 2>/dev/null); do
        total=$((total + $(proc_ticks "$pid")))
    done
    echo "$total"
}
TIMEFORMAT="%U %S"
client_ticks() { # command... ; prints its output, then its user+system CPU in ticks on fd 3
    local times
    { times=$( { time "$@" >"$WORK/client.out" 2>&1; } 2>&1 ); } || { cat "$WORK/client.out" >&2; exit 1; }
    cat "$WORK/client.out"
    python3 -c "import sys; u, s = map(float, sys.argv[1:3]); print(round((u + s) * $(getconf CLK_TCK)))" $times >&3
}

pgbench_run() { # script seconds -> "tps avg_latency_ms transactions pg_ticks client_ticks"
    local out pg0 pg1 client
    pg0=$(pg_ticks)
    out=$(client_ticks pgbench -n -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$2" -f "$WORK/$1" "$URL" 3>"$WORK/ticks") || exit 1
    pg1=$(pg_ticks)
    client=$(cat "$WORK/ticks")
    local failed
    failed=$(echo "$out" | awk '/number of failed transactions/ {print $5}')
    if [ -n "$failed" ] && [ "$failed" != "0" ]; then echo "pgbench: $failed failed transactions" >&2; echo "$out" >&2; exit 1; fi
    echo "$(echo "$out" | awk '/^tps = / {print $3; exit}') $(echo "$out" | awk '/^latency average/ {print $4; exit}') $(echo "$out" | awk '/number of transactions actually processed/ {print $NF; exit}' | cut -d/ -f1) $((pg1 - pg0)) $client"
}

wrk_run() { # seconds url [lua] -> "req_per_s avg_ms p99_ms requests pg_ticks api_ticks wrk_ticks"
    local args=(-t "$THREADS" -c "$CONNECTIONS" -d "${1}s" --latency)
    [ -n "${3:-}" ] && args+=(-s "$3")
    local out pg0 pg1 api0 api1 client
    pg0=$(pg_ticks); api0=$(proc_ticks "$API_PID")
    out=$(client_ticks wrk "${args[@]}" "$2" -- "$RANDOM$$" 3>"$WORK/ticks") || exit 1
    pg1=$(pg_ticks); api1=$(proc_ticks "$API_PID")
    client=$(cat "$WORK/ticks")
    if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
        echo "wrk saw failures:" >&2; echo "$out" >&2; echo "API log:" >&2; tail -5 "$WORK/api.log" >&2; exit 1
    fi
    python3 - "$out" "$((pg1 - pg0)) $((api1 - api0)) $client" <<'EOF'
import re, sys
out = sys.argv[1]
ticks = sys.argv[2]
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
avg = ms(re.search(r"Latency\s+(\S+)", out).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
requests = re.search(r"(\d+) requests in", out).group(1)
print(f"{rate} {avg:.3f} {p99:.3f} {requests} {ticks}")
EOF
}

echo "bench/users.sh: $DURATION s per run, $CONNECTIONS connections, on $WHERE" >&2
echo "  warm-up and pgbench INSERT ..." >&2
pgbench_run insert.sql 2 >/dev/null
read -r PG_INSERT PG_INSERT_LAT PG_INSERT_N PG_INSERT_DB PG_INSERT_CL <<<"$(pgbench_run insert.sql "$DURATION")"
echo "  warm-up and POST /users ..." >&2
wrk_run 2 "$API/users" "$WORK/post.lua" >/dev/null
read -r API_POST API_POST_LAT API_POST_P99 API_POST_N API_POST_DB API_POST_API API_POST_CL <<<"$(wrk_run "$DURATION" "$API/users" "$WORK/post.lua")"
ROWS=$(psql -tAq "$URL" -c 'SELECT count(*) FROM users')
echo "  warm-up and pgbench SELECT 100 newest ($ROWS rows) ..." >&2
pgbench_run select.sql 2 >/dev/null
read -r PG_SELECT PG_SELECT_LAT PG_SELECT_N PG_SELECT_DB PG_SELECT_CL <<<"$(pgbench_run select.sql "$DURATION")"
echo "  warm-up and GET /users?limit=100 ..." >&2
wrk_run 2 "$API/users?limit=100" >/dev/null
read -r API_GET API_GET_LAT API_GET_P99 API_GET_N API_GET_DB API_GET_API API_GET_CL <<<"$(wrk_run "$DURATION" "$API/users?limit=100")"
# The page really holds 100 users.
COUNT=$(curl -fs "$API/users?limit=100" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
[ "$COUNT" = 100 ] || { echo "GET /users?limit=100 returned $COUNT users" >&2; exit 1; }

python3 - "$TICK_US" "${PG_STARTED:-0}" \
    "$PG_INSERT $PG_INSERT_LAT $PG_INSERT_N $PG_INSERT_DB $PG_INSERT_CL" \
    "$API_POST $API_POST_LAT $API_POST_P99 $API_POST_N $API_POST_DB $API_POST_API $API_POST_CL" \
    "$PG_SELECT $PG_SELECT_LAT $PG_SELECT_N $PG_SELECT_DB $PG_SELECT_CL" \
    "$API_GET $API_GET_LAT $API_GET_P99 $API_GET_N $API_GET_DB $API_GET_API $API_GET_CL" \
    "$(nproc)" <<'EOF'
import sys
tick_us, cpu_known = float(sys.argv[1]), sys.argv[2] == "1"
pg_i, api_p, pg_s, api_g = (list(map(float, a.split())) for a in sys.argv[3:7])
cores = sys.argv[7]

def per(ticks, n):
    return f"{ticks * tick_us / n:.0f}" if cpu_known else "n/a"

print(f"{'':26} {'rate/s':>8} {'avg ms':>7} {'p99 ms':>7} {'ratio':>6} {'aim':>6} | CPU us per request: {'postgres':>8} {'API':>5} {'client':>6}")
for label, pg, api, aim, name in (
    ("insert 1 row", pg_i, api_p, 0.70, "POST /users"),
    ("select 100 newest", pg_s, api_g, 0.60, "GET /users?limit=100"),
):
    rate, lat, n, db, cl = pg
    print(f"{'pgbench ' + label:26} {rate:8.0f} {lat:7.2f} {'':>7} {'':>6} {'':>6} | {'':19} {per(db, n):>8} {'-':>5} {per(cl, n):>6}")
    arate, alat, ap99, an, adb, aapi, acl = api
    ratio = arate / rate
    mark = "ok" if ratio >= aim else "below the aim"
    print(f"{'API ' + name:26} {arate:8.0f} {alat:7.2f} {ap99:7.2f} {ratio:6.2f} {'>=' + format(aim, '.2f'):>6} | {'':19} {per(adb, an):>8} {per(aapi, an):>5} {per(acl, an):>6}  {mark}")
print(f"(one machine, {cores} cores shared by PostgreSQL, the API and the load generator; client = pgbench or wrk)")
EOF
