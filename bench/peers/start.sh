#!/usr/bin/env bash
# Starts the two peers of the comparison on loopback, each fed the demo
# roster that `xwn serve` stores (the same talents at the same points):
#   - PostgreSQL 15 + PostGIS: a throw-away cluster (initdb in WORK/pg, no
#     system service), talents with a GIN-indexed tsvector of overlapping
#     two-character pieces and a GiST-indexed geography point;
#   - Groonga 13: a database in WORK/groonga (TokenBigram + NormalizerAuto
#     lexicon over specialties and skills, a WGS84 geo index) behind its
#     HTTP server.
# Missing Debian packages are installed with apt-get. Writes WORK/peers.env
# (addresses and server pids); bench/peers/stop.sh WORK stops everything.
#
# Usage: bench/peers/start.sh WORK
set -euo pipefail
# shellcheck source=bench/peers/common.sh
source "$(dirname "$0")/common.sh"

work=${1:?usage: bench/peers/start.sh WORK}
mkdir -p "$work"
work=$(cd "$work" && pwd)
# The postgres user must reach WORK/pg.
chmod 755 "$work"

install_missing() {
    local need=()
    [ -x "$PG_BIN/postgres" ] || need+=(postgresql-15)
    [ -f /usr/share/postgresql/15/extension/postgis.control ] ||
        need+=(postgresql-15-postgis-3 postgresql-15-postgis-3-scripts)
    command -v groonga >/dev/null || need+=(groonga-bin)
    if [ ${#need[@]} -gt 0 ]; then
        say "installing ${need[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    fi
}

export_roster() {
    if [ -s "$work/talents.tsv" ] && [ -s "$work/talents.json" ]; then return; fi
    local xwn driver
    xwn=$(xwn_bin)
    driver=$(driver_bin)
    "$xwn" gen-roster --seed "$ROSTER_SEED" >"$work/roster.csv"
    "$driver" export "$work/roster.csv" "$work"
}

start_postgres() {
    port_free "$PG_PORT" XWN_PG_PORT
    local data="$work/pg"
    mkdir -p "$data"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$data"
    say "PostgreSQL: initdb in $data"
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >"$work/pg-initdb.log"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -o \
        "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1 -c max_connections=$PG_MAX_CONNECTIONS" \
        start >&2
    say "PostgreSQL: loading the roster"
    local psql=(env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
    "${psql[@]}" -f "$repo/bench/peers/postgres-schema.sql"
    "${psql[@]}" -c "\\copy talents_in (id, tier, specialties, skills, pieces, lat, lon) FROM '$work/talents.tsv'"
    "${psql[@]}" -f "$repo/bench/peers/postgres-index.sql"
    say "PostgreSQL: $("${psql[@]}" -At -c 'SELECT count(*) FROM talents') talents on 127.0.0.1:$PG_PORT"
}

start_groonga() {
    port_free "$GROONGA_PORT" XWN_GROONGA_PORT
    local dir="$work/groonga"
    mkdir -p "$dir"
    say "Groonga: loading the roster into $dir/db"
    { cat "$repo/bench/peers/groonga-schema.grn"; echo "load --table Talents"; cat "$work/talents.json"; } |
        groonga -n "$dir/db" >"$dir/load.log"
    # Every command answers [[0, …]…]; a failure has a negative code.
    if grep -q '^\[\[-' "$dir/load.log"; then die "Groonga load failed: see $dir/load.log"; fi
    groonga -s --protocol http --bind-address 127.0.0.1 -p "$GROONGA_PORT" \
        -t "$GROONGA_THREADS" --log-path "$dir/groonga.log" --query-log-path /dev/null \
        "$dir/db" >"$dir/server.out" 2>&1 &
    echo $! >"$dir/pid"
    wait_port "$GROONGA_PORT"
    say "Groonga: HTTP server on 127.0.0.1:$GROONGA_PORT, $GROONGA_THREADS threads ($(tail -n 1 "$dir/load.log" | sed 's/.*\],\([0-9]*\)\]$/\1/') talents loaded)"
}

install_missing
export_roster
start_postgres
start_groonga
cat >"$work/peers.env" <<ENV
PG_ADDR='host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres'
PG_PID=$(head -n 1 "$work/pg/postmaster.pid")
GROONGA_ADDR=127.0.0.1:$GROONGA_PORT
GROONGA_PID=$(cat "$work/groonga/pid")
ENV
say "peers up; addresses in $work/peers.env"
