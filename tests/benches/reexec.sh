#!/usr/bin/env bash
# What a re-exec (`supctl reexec`) costs, measured on the real supd (release build).
#   1. Latency. For each N in NS, one app of N `sleep infinity` instances, all online;
#      RUNS (20) times: `supctl reexec` then `supctl --json status`, timed together
#      (wall clock, from starting supctl reexec until the status answer is read), and
#      the `took_ms` supd reports (from its exec until the new supd serves). Median and
#      max of each, and two plain `supctl --json status` runs timed the same way (what
#      the wall figure owes to starting supctl twice). Every app pid must be the same at the end (else exit 1).
#   2. Under load. Two testkit `accept` servers share a TCP port (4 client loops
#      request it without pause) and a testkit `spam-lines` child writes LINES numbered
#      lines, one write(2) each, as fast as it can; REEXECS re-execs run meanwhile.
#      Reports requests answered and failed, and the numbered lines lost, repeated or
#      out of order in the log (each target 0).
#
#   tests/benches/reexec.sh                  # NS="10 500" RUNS=20 LINES=1000000 REEXECS=10
#
# Env: SUPD_BIN, SUPCTL_BIN, TESTKIT_BIN (default: the release builds, built first), NS,
# RUNS, LINES, REEXECS, KEEP=1 keeps the temp dir. Output: `key=value` lines on stdout;
# progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z ${SUPD_BIN:-} || -z ${SUPCTL_BIN:-} || -z ${TESTKIT_BIN:-} ]]; then
    cargo build --release --quiet --bins --example testkit
fi
SUPD=${SUPD_BIN:-$PWD/target/release/supd}
SUPCTL=${SUPCTL_BIN:-$PWD/target/release/supctl}
TESTKIT=${TESTKIT_BIN:-$PWD/target/release/examples/testkit}
NS=${NS:-10 500}
RUNS=${RUNS:-20}
LINES=${LINES:-1000000}
REEXECS=${REEXECS:-10}
for bin in "$SUPD" "$SUPCTL" "$TESTKIT"; do
    [[ -x $bin ]] || { echo "reexec.sh: $bin is not an executable" >&2; exit 2; }
done
say() { echo "reexec.sh: $*" >&2; }

dir=$(mktemp -d /tmp/supreexec.XXXXXX)
sock=$dir/s.sock
supd_pid=""
clients=""
cleanup() {
    set +e
    [[ -n $clients ]] && kill "$clients" 2>/dev/null && wait "$clients" 2>/dev/null
    stop_supd
    if [[ ${KEEP:-0} == 1 ]]; then say "kept $dir"; else rm -rf "$dir"; fi
}
stop_supd() {
    local i
    if [[ -n $supd_pid ]] && kill -0 "$supd_pid" 2>/dev/null; then
        timeout 30 "$SUPCTL" --socket "$sock" shutdown >/dev/null 2>&1 || kill -TERM "$supd_pid"
        for ((i = 0; i < 600; i++)); do kill -0 "$supd_pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$supd_pid" 2>/dev/null || true
        wait "$supd_pid" 2>/dev/null || true
    fi
    supd_pid=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ctl() { "$SUPCTL" --socket "$sock" "$@"; }
# pids [APP]: `app:index pid restarts` of every instance (of APP), from the JSON status.
pids() {
    ctl --json status | python3 -c '
import json, sys
only = sys.argv[1] if len(sys.argv) > 1 else None
for app in json.load(sys.stdin)["apps"]:
    for i in app["instances"]:
        if only in (None, app["name"]):
            print(app["name"], i["index"], i.get("pid"), i.get("restarts"))' "$@"
}
online() { { ctl --json status 2>/dev/null || true; } | grep -o '"state": *"online"' | wc -l; }
# start_supd WANT: start supd on $dir/ecosystem.toml, wait until WANT instances are online.
start_supd() {
    local want=$1 deadline=$((SECONDS + 120))
    rm -rf "$dir/logs" "$sock"
    "$SUPD" -c "$dir/ecosystem.toml" 2>"$dir/supd.err" &
    supd_pid=$!
    while (($(online) < want)); do
        kill -0 "$supd_pid" 2>/dev/null || { say "supd exited:"; cat "$dir/supd.err" >&2; exit 1; }
        ((SECONDS < deadline)) || { say "only $(online) of $want online after 120 s"; exit 1; }
        sleep 0.05
    done
}
# stats NAME VALUES...: NAME_median and NAME_max.
stats() {
    local name=$1
    shift
    printf '%s\n' "$@" | sort -g | awk -v n="$name" '{ v[NR] = $1 }
        END { printf "%s_median=%s\n%s_max=%s\n", n, v[int((NR + 1) / 2)], n, v[NR] }'
}
header() {
    cat <<EOF
[supervisor]
socket = "$sock"
log_dir = "$dir/logs"
EOF
}

for n in $NS; do
    { header; cat <<EOF; } >"$dir/ecosystem.toml"
[[app]]
name = "sleepers"
cmd = ["sleep", "infinity"]
instances = $n
EOF
    say "N=$n: starting"
    start_supd "$n"
    before=$(pids)
    walls=() took=()
    for ((i = 0; i < RUNS; i++)); do
        t=$EPOCHREALTIME
        reply=$(ctl --json reexec)
        ctl --json status >/dev/null
        walls+=("$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", (b - a) * 1000 }')")
        took+=("$(grep -o '"took_ms": *[0-9]*' <<<"$reply" | grep -o '[0-9]*$')")
    done
    # The same two supctl runs without the re-exec: what the wall figure owes to supctl.
    plain=()
    for ((i = 0; i < RUNS; i++)); do
        t=$EPOCHREALTIME
        ctl --json status >/dev/null
        ctl --json status >/dev/null
        plain+=("$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", (b - a) * 1000 }')")
    done
    [[ $(pids) == "$before" ]] || { say "N=$n: app pids changed across the re-execs"; exit 1; }
    [[ $(online) == "$n" ]] || { say "N=$n: not every instance online after the re-execs"; exit 1; }
    stats "n$n.reexec_to_status_ms" "${walls[@]}"
    stats "n$n.two_status_ms" "${plain[@]}"
    stats "n$n.took_ms" "${took[@]}"
    stop_supd
done

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{ header; cat <<EOF; } >"$dir/ecosystem.toml"
[[app]]
name = "web"
cmd = ["$TESTKIT", "accept"]
instances = 2
listen = ["tcp://127.0.0.1:$port"]
ready = { log = "listen-ready", timeout = "5s" }
[[app]]
name = "spam"
cmd = ["$TESTKIT", "spam-lines", "$LINES", "40"]
restart = "never"
EOF
say "under load: $LINES lines, $REEXECS re-execs"
start_supd 3
before=$(pids web)
# Four client loops: connect, read the answer to EOF; every error counts as a failure.
python3 - "$port" "$dir/load" <<'PY' &
import signal, socket, sys, threading
# Blocked before the threads start, so SIGTERM waits for sigwait below in every thread.
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
port, out = int(sys.argv[1]), sys.argv[2]
open(out + ".started", "w").close()
stop = threading.Event()
counts = [[0, 0] for _ in range(4)]
def loop(c):
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.settimeout(2)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            int(data.strip())
            c[0] += 1
        except Exception:
            c[1] += 1
threads = [threading.Thread(target=loop, args=(c,)) for c in counts]
for t in threads:
    t.start()
signal.sigwait([signal.SIGTERM])
stop.set()
for t in threads:
    t.join()
with open(out, "w") as f:
    f.write(f"{sum(c[0] for c in counts)} {sum(c[1] for c in counts)}\n")
PY
clients=$!
until [[ -e $dir/load.started ]]; do sleep 0.01; done
reexec_fail=0
for ((i = 0; i < REEXECS; i++)); do
    ctl reexec >/dev/null || reexec_fail=$((reexec_fail + 1))
done
deadline=$((SECONDS + 300))
until grep -q spam-done "$dir/logs/spam.log" 2>/dev/null; do
    ((SECONDS < deadline)) || { say "spam-lines did not finish in 300 s"; exit 1; }
    sleep 0.1
done
kill -TERM "$clients"
wait "$clients" || true
clients=""
read -r answered failed <"$dir/load"
[[ $(pids web) == "$before" ]] && same=1 || same=0
echo "load.reexecs=$REEXECS"
echo "load.reexecs_failed=$reexec_fail"
echo "load.requests_answered=$answered"
echo "load.requests_failed=$failed"
echo "load.app_pids_kept=$same"
awk -F' [|] ' -v want="$LINES" '
    $2 ~ /^L[0-9]/ { n = substr($2, 2, 9) + 0; got++
        if (n != last + 1) { if (n <= last) rep++; else lost += n - last - 1 }
        if (n > last) last = n }
    END { printf "load.lines_logged=%d\nload.lines_lost=%d\nload.lines_repeated_or_reordered=%d\n",
          got, lost + (want - last), rep + 0 }' "$dir/logs/spam.log"
