#!/usr/bin/env bash
# The long fuzzing run (by hand, not in CI, whose 20 s per target is a
# smoke run): every target for its share of TOTAL executions (default ten
# million), one libFuzzer process at a time, no sanitizer (like CI).
#
#   bash fuzz/long.sh [TOTAL]            e.g. bash fuzz/long.sh 10000000
#   XWN_FUZZ_TARGETS="grpc_web analyze" bash fuzz/long.sh 2000000
#
# The shares follow each target's speed (the weights below: exec/s measured
# over a long run on a shared 2-core machine), so that every target gets
# about the same time; 10.5 million took 20 minutes there. A target's
# share is passed as -runs, so the run ends; XWN_FUZZ_MAX_SECONDS bounds each target's time
# as well (then it may run fewer: the table says how many it ran).
#
# The corpus each target grows is kept in fuzz/long/corpus/<target> (not
# committed; the next run starts from it and from fuzz/corpus/<target>),
# its log in fuzz/long/logs/<target>.log and what it finds in
# fuzz/long/artifacts/<target>/. libFuzzer stops a target at its first
# crash; the run goes on with the next target and exits 1 at the end.
# Reproduce a find with `cargo fuzz run -s none <target> <file>`, shrink it
# with `cargo fuzz tmin -s none <target> <file>`.
#
# At the end, a table: per target the executions, exec/s, coverage
# (libFuzzer's `cov:` edges and `ft:` features on its last status line),
# the corpus (libFuzzer's in-memory count and the files kept) and crashes.
set -euo pipefail
cd "$(dirname "$0")/.."

total=${1:-10000000}
# target:weight, the weight proportional to the target's exec/s.
weights=(
    roster_csv:3250
    roster_jsonl:3865
    analyze:4520
    match_request:13400
    connect_json:30800
    grpc_web:16150
    webhook_payload:53
    photo:60000
)
targets=${XWN_FUZZ_TARGETS:-$(printf '%s\n' "${weights[@]}" | cut -d: -f1 | tr '\n' ' ')}

declare -A weight
sum=0
for entry in "${weights[@]}"; do
    weight[${entry%%:*}]=${entry##*:}
done
for target in $targets; do
    [ -n "${weight[$target]:-}" ] || { echo "unknown target $target" >&2; exit 2; }
    sum=$(( sum + weight[$target] ))
done

long=fuzz/long
mkdir -p "$long/logs"
cargo fuzz build -s none

found=0
rows=()
started=$(date +%s)
for target in $targets; do
    runs=$(( total * weight[$target] / sum ))
    corpus="$long/corpus/$target"
    artifacts="$long/artifacts/$target"
    log="$long/logs/$target.log"
    mkdir -p "$corpus" "$artifacts"
    echo "== $target: $runs executions (log: $log)"
    status=0
    t0=$(date +%s)
    # The first directory receives what the run finds; the seeds are read.
    cargo fuzz run -s none "$target" "$corpus" "fuzz/corpus/$target" -- \
        -runs="$runs" -max_total_time="${XWN_FUZZ_MAX_SECONDS:-0}" \
        -print_final_stats=1 -timeout=60 \
        -artifact_prefix="$artifacts/" > "$log" 2>&1 || status=$?
    secs=$(( $(date +%s) - t0 ))
    executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
    files=$(find "$corpus" -type f | wc -l)
    crashes=$(find "$artifacts" -type f | wc -l)
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        found=1
        echo "   stopped (exit $status); artifacts in $artifacts:"
        ls "$artifacts" | sed 's/^/     /'
        grep -m1 -E "panicked at|ERROR: libFuzzer|deadly signal" "$log" | sed 's/^/     /' || true
    fi
    rows+=("$target ${executed:-?} ${secs} ${speed:-?} ${cov:-?} ${ft:-?} ${corp:-?} ${files} ${crashes}")
done

echo
echo "== long fuzzing run: $(( $(date +%s) - started )) s"
{
    echo "target executions seconds exec/s cov ft corpus corpus_files crashes"
    printf '%s\n' "${rows[@]}"
} | column -t
awk '{ n += $2 } END { printf "total executions: %d\n", n }' <<<"$(printf '%s\n' "${rows[@]}")"
exit "$found"
