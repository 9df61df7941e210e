#!/bin/sh
# First start: initdb with POSTGRES_USER as the superuser (password POSTGRES_PASSWORD), create
# POSTGRES_DB, listen on every interface with scram-sha-256 auth for TCP. Then exec postgres as
# the postgres user. (A stand-in for the official image's entrypoint, much shorter.)
set -eu
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${PGDATA:=/var/lib/postgresql/data}"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

if [ "${1:-postgres}" = postgres ]; then
    [ "$#" -gt 0 ] && shift
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "docker-entrypoint: POSTGRES_PASSWORD must be set" >&2
        exit 1
    fi
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        chown postgres "$pwfile"
        as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
            -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256
        rm -f "$pwfile"
        echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
        echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
        # A temporary server on a private socket only, so the healthcheck (default socket) does
        # not see it as ready before the database exists.
        initsock=$(mktemp -d); chown postgres "$initsock"
        as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -k $initsock" start
        if [ "$POSTGRES_DB" != postgres ]; then
            as_postgres psql -v ON_ERROR_STOP=1 -h "$initsock" -U "$POSTGRES_USER" -d postgres \
                -c "CREATE DATABASE \"$POSTGRES_DB\""
        fi
        as_postgres pg_ctl -D "$PGDATA" -w -m fast stop
        rm -rf "$initsock"
        echo "docker-entrypoint: initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- postgres -D "$PGDATA" "$@"
fi
exec "$@"
