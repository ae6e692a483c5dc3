#!/usr/bin/env bash
# supd's own work, counted in instructions (valgrind's callgrind), not seconds: start 100
# instances of `sleep`, wait until all of them run, then `supctl shutdown`. The count is
# repeatable to about 0.1% whatever else the machine does, so a refactoring can be held
# against the commit before it: pass a second checkout's release directory to compare.
#
#   tests/benches/instructions.sh [OTHER_RELEASE_DIR]
#
# Prints `start100+shutdown instructions=N` for this checkout (and `other=M ratio=N/M`).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind" >&2; exit 2; }
cargo build --release --quiet --bins

# count RELEASE_DIR: supd's instruction total for one start-and-shutdown.
count() {
    local bin=$1 dir pid n
    dir=$(mktemp -d /tmp/supinsn.XXXXXX)
    cat >"$dir/ecosystem.toml" <<EOF
[supervisor]
socket = "$dir/s.sock"
log_dir = "$dir/logs"
[[app]]
name = "sleepers"
cmd = ["sleep", "3600"]
instances = 100
EOF
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
        "$bin/supd" -c "$dir/ecosystem.toml" >"$dir/out" 2>&1 &
    pid=$!
    n=0
    for _ in $(seq 1 600); do
        n=$(pgrep -P "$pid" -x sleep | wc -l || true)
        [ "$n" -ge 100 ] && break
        sleep 0.1
    done
    [ "$n" -ge 100 ] || { echo "instructions.sh: only $n of 100 started" >&2; kill "$pid"; exit 1; }
    "$bin/supctl" --socket "$dir/s.sock" shutdown >/dev/null
    wait "$pid"
    # supd's own file: a forked child's (before its exec) is far smaller.
    callgrind_annotate "$(ls -S "$dir"/cg.* | head -1)" 2>/dev/null |
        awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
    rm -rf "$dir"
}

ours=$(count "$PWD/target/release")
if [ $# -ge 1 ]; then
    other=$(count "$1")
    echo "start100+shutdown instructions=$ours other=$other ratio=$(awk "BEGIN { printf \"%.4f\", $ours / $other }")"
else
    echo "start100+shutdown instructions=$ours"
fi
