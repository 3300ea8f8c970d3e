#!/usr/bin/env bash
# Stops the peers bench/peers/start.sh WORK started (PostgreSQL cluster,
# Groonga HTTP server). Their files stay in WORK; the caller removes it.
#
# Usage: bench/peers/stop.sh WORK
set -uo pipefail
# shellcheck source=bench/peers/common.sh
source "$(dirname "$0")/common.sh"

work=${1:?usage: bench/peers/stop.sh WORK}
if [ -f "$work/pg/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1 ||
        say "PostgreSQL in $work/pg did not stop cleanly"
fi
if [ -f "$work/groonga/pid" ]; then
    pid=$(cat "$work/groonga/pid")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$work/groonga/pid"
fi
