# Sourced by .ci/run and bench scripts: a throw-away PostgreSQL 15 cluster
# in a temp dir on a loopback port, from Debian's packages (installed when
# missing). initdb refuses root, so as root the cluster belongs to the
# postgres user.
#   pg_start [extra postgres -c settings...]  sets PG_URL (database postgres)
#   pg_stop                                   stops it and removes its files

PG_BIN=/usr/lib/postgresql/15/bin

_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
_as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_start() {
    if [ ! -x "$PG_BIN/initdb" ]; then
        _as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq postgresql-15 >/dev/null
    fi
    PG_DIR=$(mktemp -d /tmp/xwn-pg.XXXXXX)
    PG_PORT=$(( 40000 + RANDOM % 20000 ))
    if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DIR"; fi
    _as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U xwn --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    local opts="-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300"
    for setting in "$@"; do opts="$opts -c $setting"; done
    _as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -o "$opts" start >/dev/null
    PG_URL="postgres://xwn@127.0.0.1:$PG_PORT/postgres"
    export PG_URL
}

pg_stop() {
    if [ -n "${PG_DIR:-}" ]; then
        _as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
        PG_DIR=
    fi
}
