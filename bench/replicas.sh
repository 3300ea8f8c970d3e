#!/usr/bin/env bash
# Tickets per second through 1, 2 and 3 `xwn serve` replicas on one
# PostgreSQL (and, for reference, one server on the embedded SQLite store),
# all on this machine, the load generator included. Each run: a fresh
# database, the demo roster, nobody online (every ticket is analysed,
# routed and queued: a full decision and commit), the same total load:
# XWN_CONNECTIONS (6) HTTP/2 connections × XWN_CONCURRENCY (8) submits in
# flight for XWN_SECONDS (10) s, connections spread over the replicas.
# XWN_BIN runs another binary (no build); XWN_REPLICAS lists the replica
# counts to run through PostgreSQL ("1 2 3"); XWN_STORES leaves out the
# SQLite run ("postgres") or the PostgreSQL ones ("sqlite");
# XWN_MAX_SUBMITS sets limits.max_submits_in_flight per server (64: more
# submits in flight than that are refused, and counted as errors).
# After each result: the load average, the group commits (count, mean
# decisions per commit, mean commit time, from each server's /metrics),
# and the CPU seconds the servers, the load generator and PostgreSQL
# used during the run.
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
printf '[limits]\nclient_rate_per_sec = 0.0\nmax_in_flight = 4096\nmax_in_flight_per_address = 4096\n' > "$work/config.toml"
printf 'max_submits_in_flight = %s\n' "${XWN_MAX_SUBMITS:-64}" >> "$work/config.toml"
printf '[tickets]\nmax_queued = 10000000\n' >> "$work/config.toml"
stores=${XWN_STORES:-sqlite postgres}

# start_replicas STORE N: starts N servers on STORE, sets $servers and
# $metrics (their metrics listeners).
start_replicas() {
    local store=$1 n=$2 i port
    servers=
    metrics=
    for i in $(seq 1 "$n"); do
        port=$(( 20000 + RANDOM % 20000 ))
        XWN_ADMIN_TOKEN=bench-admin-token-0123456789 "$bin" serve --config "$work/config.toml" \
            --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 1))" \
            --data-dir "$work/data-$store-$n-$i" --store "$store" \
            2>"$work/server-$n-$i.log" &
        pids+=($!)
        for _ in $(seq 200); do grep -q serving "$work/server-$n-$i.log" && break; sleep 0.1; done
        grep -q serving "$work/server-$n-$i.log" || { cat "$work/server-$n-$i.log"; exit 1; }
        servers="${servers:+$servers,}http://127.0.0.1:$port"
        metrics="$metrics http://127.0.0.1:$((port + 1))/metrics"
    done
}

# cpu_ticks PID...: user + system clock ticks the processes used so far.
cpu_ticks() {
    local p total=0
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}

# PostgreSQL's processes (none when it is not running).
pg_pids() {
    local postmaster
    postmaster=$(head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null) || return 0
    echo "$postmaster $(pgrep -P "$postmaster" | tr '\n' ' ')"
}

# The group commits the servers made (summed over $metrics).
commits() {
    local m
    for m in $metrics; do curl -s "$m"; done | awk '
        /^xwn_store_commit_writes_sum/ {w += $2} /^xwn_store_commit_writes_count/ {n += $2}
        /^xwn_store_commit_seconds_sum/ {s += $2}
        /^xwn_decide_seconds_sum/ {ds += $2} /^xwn_decide_seconds_count/ {dn += $2}
        END {printf "commits %d, %.1f decisions/commit, %.2f ms/commit, %.3f ms/decision under the lock", n, (n ? w / n : 0), (n ? 1000 * s / n : 0), (dn ? 1000 * ds / dn : 0)}'
}

stop_replicas() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pids=()
}

run() {
    local hz before_s before_pg out result after_s after_pg load
    hz=$(getconf CLK_TCK)
    before_s=$(cpu_ticks "${pids[@]}")
    before_pg=$(cpu_ticks $(pg_pids))
    out=$( { /usr/bin/time -f "loadgen-cpu %U %S" "$bin" loadgen --rpc submit --server "$servers" \
        --connections "$connections" --concurrency "$concurrency" --seconds "$seconds" ; } 2>&1 )
    after_s=$(cpu_ticks "${pids[@]}")
    after_pg=$(cpu_ticks $(pg_pids))
    load=$(cut -d" " -f1-3 /proc/loadavg)
    result=$(grep -v '^loadgen-cpu' <<<"$out" | tail -1)
    echo "$result"
    echo "    load $load; $(commits); CPU s: servers $(( (after_s - before_s) / hz )).$(( (after_s - before_s) % hz * 100 / hz / 10 )), $(grep '^loadgen-cpu' <<<"$out" | awk '{printf "loadgen %.1f", $2 + $3}'), postgres $(( (after_pg - before_pg) / hz )).$(( (after_pg - before_pg) % hz * 100 / hz / 10 ))"
}

echo "store | replicas | result ($connections connections x $concurrency in flight, ${seconds} s, load generator on the same 2 cores)"
if [[ " $stores " == *" sqlite "* ]]; then
    start_replicas sqlite 1
    echo "sqlite | 1 | $(run)"
    stop_replicas
fi
[[ " $stores " == *" postgres "* ]] || exit 0
for n in ${XWN_REPLICAS:-1 2 3}; do
    db="xwn_bench_$n"
    psql -q "$PG_URL" -c "CREATE DATABASE $db"
    start_replicas "${PG_URL%/*}/$db" "$n"
    echo "postgres | $n | $(run)"
    stop_replicas
done
