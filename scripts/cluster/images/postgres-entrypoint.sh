#!/bin/sh
# Stand-in for the official postgres image's entrypoint, for the contract statelab's manifests
# rely on: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_INITDB_ARGS,
# POSTGRES_HOST_AUTH_METHOD, PGDATA initialised only when it holds no database, scripts in
# /docker-entrypoint-initdb.d run once, then `postgres` in the foreground as the pod's user.
# Unlike the official script, a first initialisation that is killed halfway leaves nothing
# behind that the next start would mistake for a finished database.
set -eu

if [ "${1#-}" != "${1:-}" ]; then
    set -- postgres "$@"
fi

if [ "${1:-}" = postgres ]; then
    PGDATA=${PGDATA:-/var/lib/postgresql/data}
    export PGDATA
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        POSTGRES_USER=${POSTGRES_USER:-postgres}
        POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
        auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
        if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
            echo "error: the database is uninitialised and POSTGRES_PASSWORD is not set" >&2
            echo "       (set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection)" >&2
            exit 1
        fi
        # Initialise next to PGDATA and move it into place when complete, when PGDATA can be
        # replaced (it is not itself a mount point); otherwise in place.
        target=$PGDATA
        if rmdir "$PGDATA" 2>/dev/null || [ ! -e "$PGDATA" ]; then
            target=$PGDATA.initdb
            rm -rf "$target"
        fi
        mkdir -p "$target"
        chmod 700 "$target"
        echo "initialising a new database in $PGDATA for user $POSTGRES_USER"
        # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments, as upstream
        printf '%s\n' "${POSTGRES_PASSWORD:-}" |
            initdb -D "$target" --username="$POSTGRES_USER" --pwfile=/dev/stdin ${POSTGRES_INITDB_ARGS:-}
        printf '\nhost all all all %s\n' "$auth" >>"$target/pg_hba.conf"
        # As the official image's configuration: listen on every address of the pod.
        printf "\nlisten_addresses = '*'\n" >>"$target/postgresql.conf"

        # A temporary server on the Unix socket only: nothing can connect over TCP (and no
        # probe can pass) before initialisation is complete.
        pg_ctl -D "$target" -o "-c listen_addresses=''" -w start
        export PGUSER="$POSTGRES_USER" PGPASSWORD="${POSTGRES_PASSWORD:-}"
        if [ "$POSTGRES_DB" != postgres ]; then
            psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname postgres --set db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db";
SQL
        fi
        for f in /docker-entrypoint-initdb.d/*; do
            case "$f" in
            *.sh) echo "running $f" && . "$f" ;;
            *.sql) echo "running $f" && psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) echo "running $f" && gunzip -c "$f" | psql -v ON_ERROR_STOP=1 --no-psqlrc --dbname "$POSTGRES_DB" ;;
            *) ;;
            esac
        done
        pg_ctl -D "$target" -m fast -w stop
        unset PGPASSWORD
        [ "$target" = "$PGDATA" ] || mv "$target" "$PGDATA"
        echo "database initialised; starting PostgreSQL"
    fi
fi

exec "$@"
