#!/usr/bin/env bash
# MatchProblem's Connect JSON replies for every development report, to
# check that a change meant to make the work cheaper changes no result:
# run it with the build before and the build after, then `cmp` the files.
#
#   bash bench/replies.sh BINARY OUT   # e.g. /tmp/xwn-main /tmp/replies-main.txt
#
# Starts BINARY's `xwn serve` (demo roster, client rate limit off) and
# POSTs each report of tests/data/problems/dev.jsonl five times (limit 10):
# nearest first from 610502000000, from the point 34.5, 109.5 and from the
# report's own division; best match from that point and that division.
# Each line of OUT is the report's id, the HTTP status and the reply's body
# as the server wrote it. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1
out=$2
dir=$(mktemp -d)
port=$(( 20000 + RANDOM % 20000 ))
printf '[limits]\nclient_rate_per_sec = 0.0\n' > "$dir/config.toml"
"$bin" serve --config "$dir/config.toml" --listen "127.0.0.1:$port" \
    --data-dir "$dir/data" 2>"$dir/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
url="http://127.0.0.1:$port/xingweinong.v1.MatchService/MatchProblem"
for _ in $(seq 300); do
    curl -sf -o /dev/null "$url" -H 'content-type: application/json' \
        -d '{"text":"苹果","limit":1,"location":{"divisionCode":"610502000000"}}' && break
    kill -0 "$server" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    sleep 0.2
done
python3 - "$port" "$out" tests/data/problems/dev.jsonl <<'PY'
import http.client, json, sys

port, out, reports = int(sys.argv[1]), sys.argv[2], sys.argv[3]
point = {"point": {"lat": 34.5, "lon": 109.5}}
conn = http.client.HTTPConnection("127.0.0.1", port)
with open(out, "w", encoding="utf-8") as f:
    for line in open(reports, encoding="utf-8"):
        report = json.loads(line)
        own = {"divisionCode": report["division_code"]}
        for location, ranking in [
            ({"divisionCode": "610502000000"}, "RANKING_NEAREST"),
            (point, "RANKING_NEAREST"),
            (own, "RANKING_NEAREST"),
            (point, "RANKING_BEST_MATCH"),
            (own, "RANKING_BEST_MATCH"),
        ]:
            body = {"text": report["text"], "location": location, "limit": 10, "ranking": ranking}
            conn.request("POST", "/xingweinong.v1.MatchService/MatchProblem",
                         json.dumps(body, ensure_ascii=False).encode(),
                         {"Content-Type": "application/json"})
            reply = conn.getresponse()
            f.write(f"{report['id']} {reply.status} {reply.read().decode()}\n")
PY
