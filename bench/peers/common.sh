# shellcheck shell=bash disable=SC2034
# Shared by the peer scripts (sourced, not run): paths, ports, building the
# tools, waiting for a port.
#
# Ports and sizes, each overridable from the environment:
#   XWN_PG_PORT (56432), XWN_GROONGA_PORT (56041),
#   XWN_GROONGA_THREADS (the number of cores), XWN_PG_MAX_CONNECTIONS (100),
#   XWN_ROSTER_SEED (2023: the demo roster `xwn serve` stores on an empty
#   data directory; config `demo_seed`).

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_BIN=${XWN_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_PORT=${XWN_PG_PORT:-56432}
GROONGA_PORT=${XWN_GROONGA_PORT:-56041}
GROONGA_THREADS=${XWN_GROONGA_THREADS:-$(nproc)}
PG_MAX_CONNECTIONS=${XWN_PG_MAX_CONNECTIONS:-100}
ROSTER_SEED=${XWN_ROSTER_SEED:-2023}

say() { echo "[peers] $*" >&2; }
die() { echo "[peers] error: $*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else with sudo.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# PostgreSQL refuses to run as root: the server runs as `postgres` then.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Builds (when stale) and prints the release `xwn` binary.
xwn_bin() {
    (cd "$repo" && cargo build --release --locked --quiet --bin xwn) >&2
    echo "$repo/target/release/xwn"
}

# Builds (when stale) and prints the peer driver (benches/peers/).
driver_bin() {
    local exe
    exe=$(cd "$repo" && cargo bench --locked --bench peers --no-run --quiet \
        --message-format=json-render-diagnostics |
        sed -n 's/.*"executable":"\([^"]*\/peers-[^"]*\)".*/\1/p' | tail -n 1)
    [ -x "$exe" ] || die "cannot build the peer driver: run 'cargo bench --bench peers --no-run'"
    echo "$exe"
}

# Waits until something listens on 127.0.0.1:$1 (bash's /dev/tcp).
wait_port() {
    local port=$1 i
    for i in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$port after 30 s"
}

# Refuses a port that something else already listens on.
port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        die "127.0.0.1:$1 is taken; set $2 to another port"
    fi
}
