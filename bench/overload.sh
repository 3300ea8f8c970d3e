#!/usr/bin/env bash
# Overload run: measures the closed-loop capacity of MatchProblem and
# SubmitProblem on a release `xwn serve`, then drives each in an open loop
# at twice that rate and prints what was answered, what was shed
# (RESOURCE_EXHAUSTED), latency quantiles of the answered calls (from each
# call's scheduled start) and the server's peak RSS (VmHWM) before and after.
#
#   bash bench/overload.sh [SECONDS]        # SECONDS per run, default 10
#   XWN_OVERLOAD_LIMITS='max_submits_in_flight = 0' bash bench/overload.sh
#       # extra [limits] lines, e.g. to see the run without the submit bound
#   XWN_OVERLOAD_PIN=1 bash bench/overload.sh
#       # server on CPU 0, load generator on CPU 1 (taskset), so the
#       # generator does not take the server's core
#   XWN_OVERLOAD_SERVER=/path/to/old/xwn bash bench/overload.sh
#       # serve with another build (a baseline); this tree's loadgen drives it
#
# The load goes with an API key (rate far above the load): one address
# is bounded by `max_in_flight_per_address` and its share near the limit,
# a front end's key only by the server's own bounds, which are what this
# run measures. Replies are read without decoding them (`--no-decode`), so
# the generator takes less of the machine the server runs on.
#
# Only loopback traffic; the server and the load generator share the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}

cargo build --release --locked --bin xwn >&2
xwn=target/release/xwn

dir=$(mktemp -d)
port=$(( 20000 + RANDOM % 20000 ))
key=overload-bench-key-0123456789abcdef
{
    printf '[limits]\nclient_rate_per_sec = 0.0\n'
    if [ -n "${XWN_OVERLOAD_LIMITS:-}" ]; then printf '%s\n' "$XWN_OVERLOAD_LIMITS"; fi
    printf '[[limits.api_keys]]\nname = "overload-bench"\nkey = "%s"\nrate_per_sec = 1000000.0\n' "$key"
} > "$dir/config.toml"
server_cpu=() client_cpu=()
if [ -n "${XWN_OVERLOAD_PIN:-}" ]; then server_cpu=(taskset -c 0) client_cpu=(taskset -c 1); fi
XWN_ADMIN_TOKEN=overload-admin-token-0123456789 RUST_LOG=warn,xingweinong=info \
    "${server_cpu[@]}" "${XWN_OVERLOAD_SERVER:-$xwn}" serve --config "$dir/config.toml" --listen "127.0.0.1:$port" \
    --data-dir "$dir/data" 2>"$dir/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 300); do
    grep -q serving "$dir/server.log" && break
    sleep 0.2
done
grep -q serving "$dir/server.log" || { cat "$dir/server.log" >&2; exit 1; }

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$server/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
load() {
    "${client_cpu[@]}" "$xwn" loadgen --server "http://127.0.0.1:$port" --api-key "$key" \
        --no-decode --connections 2 "$@" | sed 1d
}

echo "config: $(tr '\n' ' ' < "$dir/config.toml" | sed "s/$key/<key>/")${XWN_OVERLOAD_PIN:+; server pinned to CPU 0, load generator to CPU 1}"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
echo "server RSS at start: $(mib "$(kib VmRSS)"), peak $(mib "$(kib VmHWM)")"
for rpc in match submit; do
    closed=$(load --rpc "$rpc" --concurrency 16 --seconds "$secs")
    capacity=$(head -1 <<< "$closed" | sed -E 's/.* = ([0-9]+) calls\/s.*/\1/')
    rate=$(( 2 * capacity ))
    hwm_before=$(kib VmHWM)
    open=$(load --rpc "$rpc" --rate "$rate" --seconds "$secs")
    hwm_after=$(kib VmHWM)
    echo "== $rpc"
    echo "capacity (closed loop, 2 connections x 16 in flight): $closed"
    echo "open loop at 2x = $rate calls/s: $open"
    echo "server peak RSS (VmHWM): before $(mib "$hwm_before"), after $(mib "$hwm_after"); RSS now $(mib "$(kib VmRSS)")"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
