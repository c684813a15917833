# Shell helpers to run a private, throwaway PostgreSQL cluster.
# Sourced by scripts/test. As root, initdb refuses to run, so the cluster
# belongs to the `postgres` OS user and lives under /tmp, which that user
# can reach (never under /root).

pg_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"; return 0
    fi
    echo "error: PostgreSQL server binaries (initdb, pg_ctl) not found; install them (Debian: apt-get install postgresql)" >&2
    return 1
}

# as_pg CMD...: runs CMD as the cluster's owner.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_throwaway_start: starts a cluster in a new private directory and
# exports DATABASE_URL (superuser `postgres`, over a unix socket).
pg_throwaway_start() {
    local bin; bin=$(pg_bindir) || return 1
    PG_TMP=$(mktemp -d /tmp/wf-test-pg.XXXXXX)
    chmod 700 "$PG_TMP"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_TMP"; fi
    as_pg "$bin/initdb" -D "$PG_TMP/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >"$PG_TMP/initdb.log" 2>&1 \
        || { cat "$PG_TMP/initdb.log" >&2; return 1; }
    mkdir -p "$PG_TMP/sock" && { [ "$(id -u)" != 0 ] || chown postgres: "$PG_TMP/sock"; }
    as_pg "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
        -o "-k $PG_TMP/sock -c listen_addresses='' -c max_connections=400 -c shared_buffers=256MB -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || { cat "$PG_TMP/server.log" >&2; return 1; }
    export PG_BINDIR="$bin"
    export DATABASE_URL="postgres://postgres@localhost/postgres?host=$PG_TMP/sock"
}

pg_throwaway_stop() {
    if [ -n "${PG_TMP:-}" ] && [ -d "$PG_TMP" ]; then
        as_pg "$PG_BINDIR/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$PG_TMP"
    fi
}
