#!/usr/bin/env bash
# Tickets per second through 1, 2 and 3 `xwn serve` replicas on one
# PostgreSQL (and, for reference, one server on the embedded SQLite store),
# all on this machine, the load generator included. Each run: a fresh
# database, the demo roster, nobody online (every ticket is analysed,
# routed and queued: a full decision and commit), the same total load:
# XWN_CONNECTIONS (6) HTTP/2 connections × XWN_CONCURRENCY (8) submits in
# flight for XWN_SECONDS (10) s, connections spread over the replicas.
# XWN_BIN runs another binary (no build); XWN_REPLICAS lists the replica
# counts to run through PostgreSQL ("1 2 3").
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${XWN_SECONDS:-10}
connections=${XWN_CONNECTIONS:-6}
concurrency=${XWN_CONCURRENCY:-8}

bin=${XWN_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release --locked -q
    bin=$PWD/target/release/xwn
fi
. scripts/throwaway-pg.sh
pg_start ${XWN_PG_SETTINGS:-}
work=$(mktemp -d /tmp/xwn-replicas.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    pg_stop
    rm -rf "$work"
}
trap cleanup EXIT
printf '[limits]\nclient_rate_per_sec = 0.0\nmax_in_flight = 4096\n' > "$work/config.toml"
printf '[tickets]\nmax_queued = 10000000\n' >> "$work/config.toml"

# start_replicas STORE N: starts N servers on STORE, sets $servers.
start_replicas() {
    local store=$1 n=$2 i port
    servers=
    for i in $(seq 1 "$n"); do
        port=$(( 20000 + RANDOM % 20000 ))
        XWN_ADMIN_TOKEN=bench-admin-token-0123456789 "$bin" serve --config "$work/config.toml" \
            --listen "127.0.0.1:$port" --data-dir "$work/data-$store-$n-$i" --store "$store" \
            2>"$work/server-$n-$i.log" &
        pids+=($!)
        for _ in $(seq 200); do grep -q serving "$work/server-$n-$i.log" && break; sleep 0.1; done
        grep -q serving "$work/server-$n-$i.log" || { cat "$work/server-$n-$i.log"; exit 1; }
        servers="${servers:+$servers,}http://127.0.0.1:$port"
    done
}

stop_replicas() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pids=()
}

run() {
    "$bin" loadgen --rpc submit --server "$servers" --connections "$connections" \
        --concurrency "$concurrency" --seconds "$seconds" | tail -1
}

echo "store | replicas | result ($connections connections x $concurrency in flight, ${seconds} s, load generator on the same 2 cores)"
start_replicas sqlite 1
echo "sqlite | 1 | $(run)"
stop_replicas
for n in ${XWN_REPLICAS:-1 2 3}; do
    db="xwn_bench_$n"
    psql -q "$PG_URL" -c "CREATE DATABASE $db"
    start_replicas "${PG_URL%/*}/$db" "$n"
    echo "postgres | $n | $(run)"
    stop_replicas
done
