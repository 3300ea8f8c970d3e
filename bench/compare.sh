#!/usr/bin/env bash
# The peer comparison in one command: builds release, starts PostgreSQL +
# PostGIS and Groonga on loopback with the demo roster (bench/peers/),
# starts `xwn serve` on the same roster (temporary data directory, client
# rate limit off), runs MatchProblem and the empty-call ceiling with
# `xwn loadgen` and each peer with the same connections × in-flight queries
# for the same time (benches/peers/, the same accounting), measures every
# system's top-1 agreement with the nearest-qualified oracle on the labelled
# reports, and prints one table. Everything runs on this machine: the load
# generator shares its cores with the servers.
#
# Usage: bench/compare.sh
# Environment: XWN_BENCH_CONNECTIONS (2), XWN_BENCH_CONCURRENCY (16),
#   XWN_BENCH_SECONDS (10), XWN_BENCH_ROUNDS (3), XWN_BENCH_REPORTS (tests/data/problems/dev.jsonl),
#   XWN_BENCH_XWN_PORT (56051), XWN_BENCH_KEEP (1 keeps the work directory),
#   and the ports of bench/peers/common.sh. Not run by CI.
set -euo pipefail
# shellcheck source=bench/peers/common.sh
source "$(dirname "$0")/peers/common.sh"
cd "$repo"

connections=${XWN_BENCH_CONNECTIONS:-2}
concurrency=${XWN_BENCH_CONCURRENCY:-16}
seconds=${XWN_BENCH_SECONDS:-10}
rounds=${XWN_BENCH_ROUNDS:-3}
reports=${XWN_BENCH_REPORTS:-tests/data/problems/dev.jsonl}
xwn_port=${XWN_BENCH_XWN_PORT:-56051}
in_flight=$((connections * concurrency))
# A connection per in-flight query, and some to spare.
export XWN_PG_MAX_CONNECTIONS=${XWN_PG_MAX_CONNECTIONS:-$((in_flight + 20 > 100 ? in_flight + 20 : 100))}

work=$(mktemp -d "${TMPDIR:-/tmp}/xwn-compare.XXXXXX")
xwn_pid=
cleanup() {
    if [ -n "$xwn_pid" ]; then kill "$xwn_pid" 2>/dev/null && wait "$xwn_pid" 2>/dev/null; fi
    "$repo/bench/peers/stop.sh" "$work"
    if [ "${XWN_BENCH_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building release (xwn and the peer driver)"
xwn=$(xwn_bin)
driver=$(driver_bin)
"$xwn" gen-roster --seed "$ROSTER_SEED" >"$work/roster.csv"
"$driver" export "$work/roster.csv" "$work" >&2

"$repo/bench/peers/start.sh" "$work"
# shellcheck disable=SC1091 # written by bench/peers/start.sh
source "$work/peers.env"

port_free "$xwn_port" XWN_BENCH_XWN_PORT
cat >"$work/xwn.toml" <<TOML
listen = "127.0.0.1:$xwn_port"
data_dir = "$work/xwn-data"
demo_seed = $ROSTER_SEED

[limits]
# The load comes from one address: no per-client rate limit.
client_rate_per_sec = 0.0
TOML
# Flags as well as the file: XWN_LISTEN or XWN_DATA_DIR in the caller's
# environment would beat the file.
"$xwn" serve --config "$work/xwn.toml" --listen "127.0.0.1:$xwn_port" --data-dir "$work/xwn-data" \
    >"$work/xwn.log" 2>&1 &
xwn_pid=$!
server="http://127.0.0.1:$xwn_port"
for i in $(seq 1 600); do
    if "$xwn" match "苹果" --lat 34.5 --lon 109.5 --limit 1 --server "$server" >/dev/null 2>&1; then break; fi
    kill -0 "$xwn_pid" 2>/dev/null || die "xwn serve exited: $(tail -n 5 "$work/xwn.log")"
    [ "$i" -lt 600 ] || die "xwn serve not ready after 60 s"
    sleep 0.1
done
say "xwn serving the seed-$ROSTER_SEED demo roster on $server"

load_before=$(cut -d" " -f1-3 /proc/loadavg)
results="$work/results.tsv"
: >"$results"

say "top-1 agreement with the nearest-qualified oracle"
"$driver" agree --system xwn --addr "$server" --roster "$work/roster.csv" --reports "$reports" --out "$results"
"$driver" agree --system postgres --addr "$PG_ADDR" --roster "$work/roster.csv" --reports "$reports" --out "$results"
"$driver" agree --system groonga --addr "$GROONGA_ADDR" --roster "$work/roster.csv" --reports "$reports" --out "$results"

# Records `xwn loadgen`'s figures under a system name.
xwn_load() {
    local system=$1 rpc=$2 out line
    out=$("$xwn" loadgen --rpc "$rpc" --connections "$connections" --concurrency "$concurrency" \
        --seconds "$seconds" --reports "$reports" --server "$server")
    echo "$out"
    line=$(echo "$out" | grep ' calls/s;') || die "cannot read xwn loadgen's output: $out"
    field() { echo "$line" | sed -n "$1" | grep . || die "cannot read $2 from: $line"; }
    {
        printf '%s\tcalls_per_s\t%s\n' "$system" "$(field 's/.* = \([0-9.]*\) calls\/s.*/\1/p' calls/s)"
        printf '%s\tp50_ms\t%s\n' "$system" "$(field 's/.*p50 \([0-9.]*\) ms.*/\1/p' p50)"
        printf '%s\tp99_ms\t%s\n' "$system" "$(field 's/.*p99 \([0-9.]*\) ms.*/\1/p' p99)"
        printf '%s\terrors\t%s\n' "$system" "$(field 's/.*errors \([0-9]*\).*/\1/p' errors)"
    } >>"$results"
}

# The systems take turns, round after round, so that a change in what else
# runs on the machine falls on all of them alike; each row is the round of
# median throughput.
say "load: $connections connections x $concurrency in flight, $seconds s per system, $rounds rounds"
for round in $(seq 1 "$rounds"); do
    # xwn's memory is read near the end of its MatchProblem run, with the
    # load's connections open.
    (sleep "$(awk -v s="$seconds" 'BEGIN { print s * 0.9 }')" &&
        "$driver" memory --system "xwn#$round" --pid "$xwn_pid" --out "$results" >&2) &
    memory_probe=$!
    xwn_load "xwn#$round" match
    wait "$memory_probe"
    xwn_load "xwn-ping#$round" ping
    for system in postgres groonga; do
        case $system in
        postgres) addr=$PG_ADDR pid=$PG_PID ;;
        groonga) addr=$GROONGA_ADDR pid=$GROONGA_PID ;;
        esac
        "$driver" load --system "$system" --addr "$addr" --connections "$connections" \
            --concurrency "$concurrency" --seconds "$seconds" --reports "$reports" \
            --server-pid "$pid" --name "$system#$round" --out "$results"
    done
done

echo
"$driver" table "$results" --note "$(printf '%s\n' \
    "bench/compare.sh on $(date -u +%Y-%m-%d), $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" \
    "$connections connections x $concurrency in flight, $seconds s per system and round; $rounds rounds taken in turn, each row the round of median calls/s (range in brackets); peers: a connection per in-flight query." \
    "The load generator runs on the same cores as the servers: every figure includes its cost. Load average before the run: $load_before." \
    "memory: RSS summed over the server's processes with the load's connections open." \
    "agreement: top-1 among the talents with the labelled subject nearest to the report's point (ties all count).")"
