#!/usr/bin/env bash
# Notification figures: delivery lag from commit to the webhook's 2xx under a
# burst of tickets, and SubmitProblem throughput with the outbox on and off.
#
#   bash bench/notify.sh [TICKETS] [SECONDS]   # default 1000 tickets, 10 s
#   XWN_BIN=target/debug/xwn bash bench/notify.sh   # skip the release build
#
# The receiver (bench/notify_receiver.py) answers 204 at once and records,
# for each notification, its arrival time minus the body's `time` (the
# change's event time, taken just before its commit): the lag to the 2xx,
# give or take the answer's way back. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
tickets=${1:-1000}
secs=${2:-10}
if [ -z "${XWN_BIN:-}" ]; then
    cargo build --release --locked --bin xwn >&2
    XWN_BIN=target/release/xwn
fi
xwn=$XWN_BIN
dir=$(mktemp -d)
hook=$(( 20000 + RANDOM % 20000 ))
python3 bench/notify_receiver.py "$hook" "$dir/lags" &
receiver=$!
pids=("$receiver")
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT

# Starts a server on a fresh data directory with the given config; sets $port.
serve() {
    port=$(( 20000 + RANDOM % 20000 ))
    mkdir -p "$dir/$1"
    printf '%s\n[limits]\nclient_rate_per_sec = 0.0\nmax_queue_ms = 0\n%s\n' "$2" "$limits" > "$dir/$1.toml"
    XWN_ADMIN_TOKEN=notify-bench-admin-token-0123 RUST_LOG=warn,xingweinong=info \
        "$xwn" serve --config "$dir/$1.toml" --listen "127.0.0.1:$port" \
        --data-dir "$dir/$1" 2>"$dir/$1.log" &
    server=$!
    pids+=("$server")
    for _ in $(seq 300); do grep -qs serving "$dir/$1.log" && break; sleep 0.2; done
    grep -q serving "$dir/$1.log" || { cat "$dir/$1.log" >&2; exit 1; }
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; }
# The burst is queued in the server rather than shed at the limits.
limits="max_in_flight = 4096
max_in_flight_per_address = 4096
max_submits_in_flight = 0
request_timeout_ms = 0"

notify="[notify]
public_base_url = \"http://127.0.0.1\"
[[notify.webhooks]]
name = \"bench\"
url = \"http://127.0.0.1:$hook/\"
secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=\""

echo "== delivery lag, a burst of $tickets tickets (each: one ticket.queued to admins)"
serve lag "$notify"
# An open loop of $tickets submits over 5 s (its calls are the burst).
"$xwn" loadgen --server "http://127.0.0.1:$port" --rpc submit --rate "$(( tickets / 5 ))" \
    --seconds 5 | sed 1d
sleep 2
for _ in $(seq 600); do
    [ "$(wc -l < "$dir/lags")" -ge "$tickets" ] && break
    sleep 0.1
done
sort -n "$dir/lags" | awk '{ a[NR] = $1 } END {
    printf "delivered %d; lag ms p50 %d, p99 %d, max %d\n", NR, a[int(NR*0.5)+1], a[int(NR*0.99)+1], a[NR] }'
stop

limits=""
for mode in off on; do
    echo "== SubmitProblem for ${secs} s, outbox $mode"
    if [ "$mode" = on ]; then serve "tp-$mode" "$notify"; else serve "tp-$mode" ""; fi
    "$xwn" loadgen --server "http://127.0.0.1:$port" --rpc submit --connections 2 --seconds "$secs" | sed 1d
    stop
done
