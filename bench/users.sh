#!/usr/bin/env bash
# The users API against PostgreSQL's own limit, in one run, on the same database:
#
#   pgbench, 16 clients: a single-row INSERT ... RETURNING, then a SELECT of the 100 newest rows
#   wrk, 16 connections: POST /users (JSON body), then GET /users?limit=100
#
# and each API rate as a ratio of pgbench's. Aims: POST >= 0.80 of the INSERT rate, GET >= 0.70
# of the SELECT rate. The API listens on 127.0.0.1 (a port the system picks), the private
# PostgreSQL on a Unix socket only; every process started here is stopped by PID.
#
#   bench/users.sh
#   DURATION=3 bench/users.sh
#
# Needs: pgbench and PostgreSQL's server programs (Debian: postgresql), psql, wrk, curl, python3
# (installed with apt-get when run as root; see bench/lib/common.sh).
#
# Settings (environment):
#   DURATION=10           seconds per measured run (each is preceded by a 2 s warm-up)
#   CONNECTIONS=16        pgbench clients and wrk connections
#   BENCH_DATABASE_URL    an admin URL of an existing server to use instead of a private
#                         throwaway cluster (a database statelab_bench_users is created and
#                         dropped on it)
#   STATELAB_BIN          the binary (STATELAB and BIN are read too); unset, cargo build --release
#                         runs and target/release/statelab is used
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=$(nproc 2>/dev/null || echo 2)
[ "$THREADS" -gt "$CONNECTIONS" ] && THREADS=$CONNECTIONS

need_tool pgbench
need_tool psql
need_tool wrk
need_tool curl
need_tool python3
need_statelab
WORK=$BENCH_WORK

# --- the database -------------------------------------------------------------------------
PG_PID=""
if [ -n "${BENCH_DATABASE_URL:-}" ]; then
    ADMIN_URL=$BENCH_DATABASE_URL
    drop_database() {
        psql -q "$ADMIN_URL" -c 'DROP DATABASE IF EXISTS statelab_bench_users WITH (FORCE)' >/dev/null 2>&1 || true
    }
    at_exit drop_database
    psql -q "$ADMIN_URL" -c 'DROP DATABASE IF EXISTS statelab_bench_users WITH (FORCE)' -c 'CREATE DATABASE statelab_bench_users' >/dev/null
    URL=$(python3 - "$ADMIN_URL" <<'EOF'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(u._replace(path="/statelab_bench_users")))
EOF
)
    WHERE="the server at BENCH_DATABASE_URL"
else
    start_postgres "$WORK" -c max_connections=100 -c shared_buffers=128MB
    URL=$(pg_url postgres)
    WHERE="a private PostgreSQL $PG_VERSION cluster (default settings, fsync on)"
fi

# --- the API (it creates the users table with its migrations) ----------------------------
DATABASE_URL=$URL DB_POOL_SIZE=$CONNECTIONS RUST_LOG=warn start_statelab "$WORK/api.log" users
API_PID=$SERVER_PID
API=$SERVER_URL

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

# CPU time in µs, to show where each request's work goes (private cluster only):
# PostgreSQL = the postmaster, its reaped children (backends that ended) and its live ones.
pg_cpu() { if [ -n "$PG_PID" ]; then cpu_tree_us "$PG_PID"; else echo 0; fi; }

# Both runs below print one line of figures; the callers read it from a file, not through $(...),
# so that a failure inside them stops the script.
pgbench_run() { # script seconds -> "tps avg_latency_ms transactions pg_us client_us"
    local out pg0 pg1
    pg0=$(pg_cpu)
    run_timed "$WORK/client.out" pgbench -n -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$2" -f "$WORK/$1" "$URL"
    # pgbench's backends end with it; their CPU time counts once the postmaster has reaped them.
    sleep 1
    pg1=$(pg_cpu)
    out=$(cat "$WORK/client.out")
    local failed
    failed=$(echo "$out" | awk '/number of failed transactions/ {print $5}')
    if [ -n "$failed" ] && [ "$failed" != "0" ]; then echo "pgbench: $failed failed transactions" >&2; echo "$out" >&2; exit 1; fi
    echo "$(echo "$out" | awk '/^tps = / {print $3; exit}') $(echo "$out" | awk '/^latency average/ {print $4; exit}') $(echo "$out" | awk '/number of transactions actually processed/ {print $NF; exit}' | cut -d/ -f1) $((pg1 - pg0)) $RUN_CPU_US"
}

wrk_run() { # seconds url [lua] -> "req_per_s avg_ms p99_ms requests pg_us api_us wrk_us"
    local args=(-t "$THREADS" -c "$CONNECTIONS" -d "${1}s" --latency)
    [ -n "${3:-}" ] && args+=(-s "$3")
    local out pg0 pg1 api0 api1
    pg0=$(pg_cpu); api0=$(cpu_us "$API_PID")
    run_timed "$WORK/client.out" wrk "${args[@]}" "$2" -- "$RANDOM$$"
    pg1=$(pg_cpu); api1=$(cpu_us "$API_PID")
    out=$(cat "$WORK/client.out")
    if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
        echo "wrk saw failures:" >&2; echo "$out" >&2; echo "API log:" >&2; tail -5 "$WORK/api.log" >&2; exit 1
    fi
    python3 - "$out" "$((pg1 - pg0)) $((api1 - api0)) $RUN_CPU_US" <<'EOF'
import re, sys
out = sys.argv[1]
cpu = sys.argv[2]
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
avg = ms(re.search(r"Latency\s+(\S+)", out).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
requests = re.search(r"(\d+) requests in", out).group(1)
print(f"{rate} {avg:.3f} {p99:.3f} {requests} {cpu}")
EOF
}

echo "bench/users.sh: $DURATION s per run, $CONNECTIONS connections, on $WHERE" >&2
echo "  warm-up and pgbench INSERT ..." >&2
pgbench_run insert.sql 2 >/dev/null
pgbench_run insert.sql "$DURATION" >"$WORK/figures"
read -r PG_INSERT PG_INSERT_LAT PG_INSERT_N PG_INSERT_DB PG_INSERT_CL <"$WORK/figures"
echo "  warm-up and POST /users ..." >&2
wrk_run 2 "$API/users" "$WORK/post.lua" >/dev/null
wrk_run "$DURATION" "$API/users" "$WORK/post.lua" >"$WORK/figures"
read -r API_POST API_POST_LAT API_POST_P99 API_POST_N API_POST_DB API_POST_API API_POST_CL <"$WORK/figures"
ROWS=$(psql -tAq "$URL" -c 'SELECT count(*) FROM users')
echo "  warm-up and pgbench SELECT 100 newest ($ROWS rows) ..." >&2
pgbench_run select.sql 2 >/dev/null
pgbench_run select.sql "$DURATION" >"$WORK/figures"
read -r PG_SELECT PG_SELECT_LAT PG_SELECT_N PG_SELECT_DB PG_SELECT_CL <"$WORK/figures"
echo "  warm-up and GET /users?limit=100 ..." >&2
wrk_run 2 "$API/users?limit=100" >/dev/null
wrk_run "$DURATION" "$API/users?limit=100" >"$WORK/figures"
read -r API_GET API_GET_LAT API_GET_P99 API_GET_N API_GET_DB API_GET_API API_GET_CL <"$WORK/figures"
# The page really holds 100 users.
COUNT=$(curl -fs "$API/users?limit=100" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
[ "$COUNT" = 100 ] || { echo "GET /users?limit=100 returned $COUNT users" >&2; exit 1; }

POST_RATIO=$(ratio "$API_POST" "$PG_INSERT")
GET_RATIO=$(ratio "$API_GET" "$PG_SELECT")
summary_row "users POST /users vs pgbench INSERT" "$API_POST req/s" ">= 0.80" "$PG_INSERT tps pgbench" \
    "$POST_RATIO" "$(meets "$POST_RATIO" ">=" 0.80)"
summary_row "users GET /users?limit=100 vs pgbench SELECT 100 rows" "$API_GET req/s" ">= 0.70" \
    "$PG_SELECT tps pgbench" "$GET_RATIO" "$(meets "$GET_RATIO" ">=" 0.70)"

CPU_KNOWN=0
[ -z "$PG_PID" ] || CPU_KNOWN=1
python3 - "$CPU_KNOWN" \
    "$PG_INSERT $PG_INSERT_LAT $PG_INSERT_N $PG_INSERT_DB $PG_INSERT_CL" \
    "$API_POST $API_POST_LAT $API_POST_P99 $API_POST_N $API_POST_DB $API_POST_API $API_POST_CL" \
    "$PG_SELECT $PG_SELECT_LAT $PG_SELECT_N $PG_SELECT_DB $PG_SELECT_CL" \
    "$API_GET $API_GET_LAT $API_GET_P99 $API_GET_N $API_GET_DB $API_GET_API $API_GET_CL" \
    "$(nproc)" <<'EOF'
import sys
cpu_known = sys.argv[1] == "1"
pg_i, api_p, pg_s, api_g = (list(map(float, a.split())) for a in sys.argv[2:6])
cores = sys.argv[6]

def per(us, n):
    return f"{us / n:.0f}" if cpu_known else "n/a"

print(f"{'':26} {'rate/s':>8} {'avg ms':>7} {'p99 ms':>7} {'ratio':>6} {'aim':>6} | CPU us per request: {'postgres':>8} {'API':>5} {'client':>6}")
for label, pg, api, aim, name in (
    ("insert 1 row", pg_i, api_p, 0.80, "POST /users"),
    ("select 100 newest", pg_s, api_g, 0.70, "GET /users?limit=100"),
):
    rate, lat, n, db, cl = pg
    print(f"{'pgbench ' + label:26} {rate:8.0f} {lat:7.2f} {'':>7} {'':>6} {'':>6} | {'':19} {per(db, n):>8} {'-':>5} {per(cl, n):>6}")
    arate, alat, ap99, an, adb, aapi, acl = api
    ratio = arate / rate
    mark = "ok" if ratio >= aim else "below the aim"
    print(f"{'API ' + name:26} {arate:8.0f} {alat:7.2f} {ap99:7.2f} {ratio:6.2f} {'>=' + format(aim, '.2f'):>6} | {'':19} {per(adb, an):>8} {per(aapi, an):>5} {per(acl, an):>6}  {mark}")
print(f"(one machine, {cores} cores shared by PostgreSQL, the API and the load generator; client = pgbench or wrk)")
EOF
