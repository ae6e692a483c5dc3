#!/usr/bin/env bash
# Watching what runs, measured on the real supd (release build):
#   1. supd's CPU while it samples 100 instances' process trees every second
#      (max_memory set, memory_interval = 1s), over 20 s;
#   2. a cron rollout of 4 instances every 5 s, polled through `supctl --json status`
#      as fast as it answers for 11 s: the fewest instances online at any poll.
#   3. supd's CPU while 100 instances each have an HTTP health probe every second (one
#      testkit HTTP server answers them all), over 20 s: 100 probes a second.
# The memory-limit reaction time (crossing → restart) comes from the peer comparison
# harness's `memlimit` scenario.
#
#   tests/benches/watch.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bins --examples
SUPD=$PWD/target/release/supd
SUPCTL=$PWD/target/release/supctl
KIT=$PWD/target/release/examples/testkit
dir=$(mktemp -d /tmp/supwatch.XXXXXX)
trap 'rm -rf "$dir"' EXIT

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# run_for_cpu NAME CONFIG SOCKET: start supd on CONFIG, let it settle 2 s, then print
# "NAME cpu_ms=... cpu_percent_of_core=... rss_mib=..." over a 20 s window, and stop it.
run_for_cpu() {
    local name=$1 config=$2 socket=$3 pid t0 t1 rss
    "$SUPD" -c "$config" 2>"$config.err" &
    pid=$!
    until "$SUPCTL" --socket "$socket" status >/dev/null 2>&1; do sleep 0.05; done
    sleep 2
    t0=$(cpu_ticks "$pid")
    sleep 20
    t1=$(cpu_ticks "$pid")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    "$SUPCTL" --socket "$socket" shutdown >/dev/null
    wait "$pid"
    awk -v name="$name" -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v rss="$rss" 'BEGIN {
        printf "%s cpu_ms=%.0f window_s=20 cpu_percent_of_core=%.2f rss_mib=%.1f\n", name, d * 1000 / hz, d * 100 / hz / 20, rss / 1024 }'
}

cat >"$dir/sample.toml" <<TOML
[supervisor]
socket = "$dir/a.sock"
log_dir = "$dir/logs"
[[app]]
name = "a"
cmd = ["$KIT", "sleep"]
instances = 100
max_memory = "1G"
memory_interval = "1s"
TOML
run_for_cpu sample100 "$dir/sample.toml" "$dir/a.sock"

cat >"$dir/cron.toml" <<TOML
[supervisor]
socket = "$dir/c.sock"
log_dir = "$dir/logs"
[[app]]
name = "web"
cmd = ["$KIT", "term-exit", "0"]
instances = 4
cron_restart = "*/5 * * * * *"
TOML
"$SUPD" -c "$dir/cron.toml" 2>"$dir/c.err" &
pid=$!
until "$SUPCTL" --socket "$dir/c.sock" status >/dev/null 2>&1; do sleep 0.05; done
python3 - "$SUPCTL" "$dir/c.sock" <<'PY'
import json, subprocess, sys, time
supctl, sock = sys.argv[1], sys.argv[2]
def rows():
    out = subprocess.run([supctl, "--socket", sock, "--json", "status"], capture_output=True).stdout
    return json.loads(out)["apps"][0]["instances"]
end, low, polls = time.time() + 11, 4, 0
while time.time() < end:
    low = min(low, sum(r["state"] == "online" for r in rows()))
    polls += 1
restarts = sum(r["restarts"] for r in rows() if r["last_reason"] == "cron")
print(f"cron_rollout instances=4 polls={polls} min_online={low} cron_restarts={restarts}")
PY
"$SUPCTL" --socket "$dir/c.sock" shutdown >/dev/null
wait "$pid"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
touch "$dir/gate"
"$KIT" serve "$port" "$dir/gate" >/dev/null &
http_pid=$!
cat >"$dir/probe.toml" <<TOML
[supervisor]
socket = "$dir/p.sock"
log_dir = "$dir/logs"
[[app]]
name = "a"
cmd = ["$KIT", "sleep"]
instances = 100
health = { http = "http://127.0.0.1:$port/", interval = "1s", timeout = "2s" }
TOML
until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null; do sleep 0.05; done
run_for_cpu probe100 "$dir/probe.toml" "$dir/p.sock"
echo "probe100 failed_probes=$(grep -c "health probe failed" "$dir/probe.toml.err" || true)"
kill "$http_pid"
