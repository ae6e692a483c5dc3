#!/usr/bin/env bash
# Regenerate packaging/supd.order, the order in which the linker lays out supd's functions
# (see packaging/build.rs): every function supd runs, found by running it under
# callgrind, first those of a quiet supervisor (start, idle, status, shutdown), then those
# of a busy one (output, crashes, restarts, logs, reload). Run it after a change of
# version, toolchain or dependencies, which renames most functions; it prints how many
# names of the old file were still found.
#
#   packaging/order-symbols.sh                 # regenerate
#   packaging/order-symbols.sh --check BINARY  # how much of the file BINARY still matches
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --check ]; then
    # A release supd keeps its symbol table (strip = "debuginfo"), so its names can be
    # held against the file. Below 90% the layout is mostly lost: say so, loudly.
    total=$(sort -u packaging/supd.order | wc -l)
    found=$(nm --defined-only "$2" | awk '{ print $3 }' | sort -u |
        comm -12 - <(sort -u packaging/supd.order) | wc -l)
    echo "order-symbols: $found of $total functions of packaging/supd.order are in $2"
    if [ $((found * 10)) -lt $((total * 9)) ]; then
        echo "order-symbols: WARNING: stale (a dependency, the version or the toolchain changed);" \
            "run packaging/order-symbols.sh, or idle RSS grows by about 1 MiB" >&2
    fi
    exit 0
fi

if ! command -v valgrind >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null
fi
target=target/order
CARGO_TARGET_DIR=$target \
    cargo build --release --quiet --bin supd --bin supctl
supd=$target/release/supd
supctl=$target/release/supctl
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Poll `cond` (a shell command) for up to 60 s.
wait_for() {
    local deadline=$((SECONDS + 60))
    until eval "$1" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "order-symbols: timed out: $1" >&2; exit 1; }
        sleep 0.1
    done
}

# Run supd under callgrind on CONFIG, then `steps` (a function), then shut it down; print
# the names of the functions it ran, in the order callgrind first lists them.
profile() {
    local config=$1 steps=$2 out=$work/cg.$2
    rm -f "$work/sup.sock"
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$out" \
        "$supd" -c "$config" >"$work/$steps.log" 2>&1 &
    local pid=$!
    wait_for "$supctl --socket $work/sup.sock status"
    "$steps"
    "$supctl" --socket "$work/sup.sock" shutdown >/dev/null
    wait "$pid"
    sed -n 's/^c\?fn=([0-9]*) \(.*\)$/\1/p' "$out" | awk '!seen[$0]++'
}

cat >"$work/quiet.toml" <<EOF
[supervisor]
socket = "$work/sup.sock"
log_dir = "$work/logs"

[[app]]
name = "app"
cmd = ["sleep", "infinity"]
instances = 10
max_memory = "100M"
EOF
quiet() {
    wait_for "[ \$($supctl --socket $work/sup.sock --json status | grep -o '\"online\"' | wc -l) = 10 ]"
    # Idle for a while: the periodic work (memory and CPU sampling) is part of the profile.
    sleep 5
    "$supctl" --socket "$work/sup.sock" status >/dev/null
    "$supctl" --socket "$work/sup.sock" --json status >/dev/null
    "$supctl" --socket "$work/sup.sock" health >/dev/null
}

cat >"$work/busy.toml" <<EOF
[supervisor]
socket = "$work/sup.sock"
log_dir = "$work/logs"

[[app]]
name = "chatty"
cmd = ["sh", "-c", "i=0; while [ \$i -lt 200 ]; do echo line \$i; echo err \$i >&2; i=\$((i+1)); done; exit 3"]
restart_delay = "10ms"

[[app]]
name = "web"
cmd = ["sh", "-c", "echo ready; exec sleep infinity"]
instances = 2
ready = { log = "ready" }
EOF
busy() {
    wait_for "$supctl --socket $work/sup.sock --json status | grep -q '\"restarts\": *[3-9]'"
    "$supctl" --socket "$work/sup.sock" logs chatty -n 20 >/dev/null
    "$supctl" --socket "$work/sup.sock" restart web >/dev/null
    "$supctl" --socket "$work/sup.sock" reload web >/dev/null
    "$supctl" --socket "$work/sup.sock" stop chatty >/dev/null
    "$supctl" --socket "$work/sup.sock" apply >/dev/null
}

{ profile "$work/quiet.toml" quiet; profile "$work/busy.toml" busy; } | awk '!seen[$0]++' >"$work/ran"
nm --defined-only "$supd" | awk '$2 ~ /^[tTwW]$/ { print $3 }' | sort -u >"$work/defined"
# Keep the order of `ran`, only names the binary defines.
awk 'NR == FNR { defined[$0] = 1; next } defined[$0]' "$work/defined" "$work/ran" >"$work/order"
if [ -f packaging/supd.order ]; then
    kept=$(sort -u packaging/supd.order | comm -12 - "$work/defined" | wc -l)
    echo "order-symbols: $kept of $(wc -l <packaging/supd.order) names of the old file still exist"
fi
mv "$work/order" packaging/supd.order
echo "order-symbols: $(wc -l <packaging/supd.order) functions in packaging/supd.order"
