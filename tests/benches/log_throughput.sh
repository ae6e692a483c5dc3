#!/usr/bin/env bash
# Log throughput through the real supd: one child prints N lines of 100 bytes, once in
# 64 KiB writes (`testkit spam`) and once with one write(2) per line (`testkit
# spam-lines`). Reports lines/s (child start → every line in the file), supd's CPU time,
# lines lost (must be 0) and supd's peak RSS (VmHWM).
#
#   tests/benches/log_throughput.sh [N]        # default N = 1000000
#
# Builds the release binaries first. Needs only bash, coreutils and /proc.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
cargo build --release --quiet --bins --examples
SUPD=$PWD/target/release/supd
SUPCTL=$PWD/target/release/supctl
KIT=$PWD/target/release/examples/testkit
TICK=$(getconf CLK_TCK)

run() {
    local mode=$1 dir
    dir=$(mktemp -d /tmp/suplog.XXXXXX)
    cat >"$dir/eco.toml" <<TOML
[supervisor]
socket = "$dir/s.sock"
log_dir = "$dir/logs"
[[app]]
name = "app"
cmd = ["$KIT", "$mode", "$N"]
restart = "never"
TOML
    local start end pid
    start=$(date +%s%N)
    "$SUPD" -c "$dir/eco.toml" 2>"$dir/supd.err" &
    pid=$!
    # Done when the child's final line (written after the N lines) is in the file.
    # Only the end of the file is read: grepping all of it every time would slow supd.
    until tail -c 4096 "$dir/logs/app.log" 2>/dev/null | grep -q "spam-done"; do sleep 0.005; done
    end=$(date +%s%N)
    local stat cpu_ticks hwm lines
    stat=$(sed 's/.*) //' "/proc/$pid/stat")
    cpu_ticks=$(awk '{print $12 + $13}' <<<"$stat")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    "$SUPCTL" --socket "$dir/s.sock" shutdown >/dev/null
    wait "$pid"
    lines=$(grep -c ' app:0 out | L' "$dir/logs/app.log")
    awk -v mode="$mode" -v n="$N" -v ns=$((end - start)) -v t="$cpu_ticks" -v tick="$TICK" \
        -v hwm="$hwm" -v lines="$lines" 'BEGIN {
        printf "%-10s lines=%d lost=%d total_ms=%.1f lines_per_s=%.0f supd_cpu_ms=%.0f supd_peak_rss_mib=%.1f\n",
            mode, lines, n - lines, ns / 1e6, lines / (ns / 1e9), t * 1000 / tick, hwm / 1024 }'
    rm -rf "$dir"
}

# alone MODE: the child into a pipe, no supervisor; time until its last line is read.
alone() {
    python3 - "$KIT" "$1" "$N" <<'PY'
import fcntl, os, subprocess, sys, time
kit, mode, n = sys.argv[1:]
r, w = os.pipe()
try:
    fcntl.fcntl(r, 1031, 1 << 20)  # F_SETPIPE_SZ
except OSError:
    pass
os.set_blocking(r, False)
start = time.monotonic()
child = subprocess.Popen([kit, mode, n], stdout=w)
os.close(w)
tail = b""
while True:
    time.sleep(0.001)
    try:
        while True:
            chunk = os.read(r, 1 << 20)
            if not chunk:
                raise EOFError
            tail = (tail + chunk)[-256:]
            if b"spam-done" in tail:
                raise EOFError
    except BlockingIOError:
        continue
    except EOFError:
        break
ms = (time.monotonic() - start) * 1000
child.wait()
print(f"{mode + ' alone':<10} total_ms={ms:.1f} lines_per_s={int(n) / (ms / 1000):.0f}")
PY
}

run spam
run spam-lines
alone spam
alone spam-lines
