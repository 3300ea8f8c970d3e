#!/usr/bin/env bash
# The cost of a call: starts a release `xwn serve` (demo roster, client
# rate limit off), drives Ping and then MatchProblem with
# `xwn loadgen --no-decode` (2 connections x 16 in flight), reads the
# server's CPU time (utime + stime in /proc/PID/stat) before and after each
# run, and prints calls/s, the server's CPU microseconds per answered call
# and MatchProblem's calls/s as a share of Ping's. Both calls are measured
# in the same run, so the ratio holds even while other work loads the
# machine.
#
#   bash bench/callcost.sh [SECONDS] [ROUNDS]   # default 10 s, 1 round
#   XWN_CALLCOST_PIN=1 bash bench/callcost.sh
#       # server on CPU 0, load generator on CPU 1 (taskset)
#   XWN_CALLCOST_SERVER=/path/to/old/xwn bash bench/callcost.sh
#       # serve with another build (a baseline); this tree's loadgen drives it
#
# Only loopback traffic; the server and the load generator share the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-1}

cargo build --release --locked --bin xwn >&2
xwn=target/release/xwn

dir=$(mktemp -d)
port=$(( 20000 + RANDOM % 20000 ))
printf '[limits]\nclient_rate_per_sec = 0.0\n' > "$dir/config.toml"
server_cpu=() client_cpu=()
if [ -n "${XWN_CALLCOST_PIN:-}" ]; then server_cpu=(taskset -c 0) client_cpu=(taskset -c 1); fi
server_bin=${XWN_CALLCOST_SERVER:-$xwn}
"${server_cpu[@]}" "$server_bin" serve --config "$dir/config.toml" \
    --listen "127.0.0.1:$port" --data-dir "$dir/data" 2>"$dir/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 300); do
    "$xwn" match "苹果" --lat 34.5 --lon 109.5 --limit 1 --server "http://127.0.0.1:$port" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    sleep 0.2
done

tick=$(getconf CLK_TCK)
# The server's CPU time so far, in clock ticks (fields 14 and 15).
cpu() { awk '{ print $14 + $15 }' "/proc/$server/stat"; }
# Runs one rpc; prints "calls calls_per_s cpu_us_per_call" and the
# generator's line on stderr.
run() {
    local before after out line calls rate
    before=$(cpu)
    out=$("${client_cpu[@]}" "$xwn" loadgen --no-decode --server "http://127.0.0.1:$port" \
        --connections 2 --concurrency 16 --seconds "$secs" --rpc "$1")
    after=$(cpu)
    line=$(grep ' calls/s;' <<< "$out")
    echo "  $line" >&2
    calls=$(sed -E 's/^[A-Za-z]+: ([0-9]+) calls.*/\1/' <<< "$line")
    rate=$(sed -E 's/.* = ([0-9.]+) calls\/s.*/\1/' <<< "$line")
    awk -v c="$calls" -v r="$rate" -v t=$(( after - before )) -v hz="$tick" \
        'BEGIN { printf "%d %.0f %.1f\n", c, r, (c > 0 ? t / hz * 1e6 / c : 0) }'
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)${XWN_CALLCOST_PIN:+; server on CPU 0, generator on CPU 1}"
echo "2 connections x 16 in flight, $secs s per call kind, loadgen --no-decode"
printf '%-6s %-10s %12s %12s %14s %18s\n' round rpc calls calls/s "CPU µs/call" "Match/Ping calls/s"
for round in $(seq "$rounds"); do
    read -r pc pr pu < <(run ping)
    read -r mc mr mu < <(run match)
    printf '%-6s %-10s %12s %12s %14s %18s\n' "$round" Ping "$pc" "$pr" "$pu" ""
    printf '%-6s %-10s %12s %12s %14s %17s%%\n' "$round" MatchProblem "$mc" "$mr" "$mu" \
        "$(awk -v m="$mr" -v p="$pr" 'BEGIN { printf "%.1f", (p > 0 ? 100 * m / p : 0) }')"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
