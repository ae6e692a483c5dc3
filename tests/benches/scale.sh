#!/usr/bin/env bash
# How supd's cost grows with the number of instances, measured on the real supd (release
# build). For each N in NS, one app `cmd = ["sleep", "infinity"]` with `instances = N`:
#   - online_s: from supd's start until its last instance came online, polling
#     `supctl --json status` every POLL_MS ms until all N are `online` (each poll is itself
#     O(N) work for supd) and taking the time from that answer, exact to the millisecond
#     whatever the poll interval: supd's uptime minus the youngest instance's;
#     start_ms_per_instance = online_s / N; polled_s: when the poll saw them all;
#   - start_cpu_ms, children_cpu_ms: the CPU time supd and its instances (their work
#     before and during exec included) had used by then, and cpu_ms_per_instance, their
#     sum / N: on a shared machine far steadier than the wall clock;
#   - status_ms: median of STATUS_RUNS (15) timings of a whole `supctl --json status`;
#   - rss_mib: supd's VmRSS once all are online;
#   - idle_ticks: supd's CPU ticks (user + system) over IDLE_S (3) seconds, all online;
#   - shutdown_s: `supctl shutdown` until supd has exited.
# Then the growth: start_ratio = (start ms per instance at the largest N) / (at the
# smallest N), cpu_ratio and status_ratio_per_instance likewise (1.0 = linear cost).
#
#   tests/benches/scale.sh                   # NS="500 2000 5000"
#   NS="100 1000" POLL_MS=50 tests/benches/scale.sh
#
# Env: SUPD_BIN, SUPCTL_BIN (default: the release build, built first), NS, POLL_MS (100),
# STATUS_RUNS (15), IDLE_S (3), KEEP=1 keeps the temp dir. The soft limits on open files
# and processes are raised toward the hard ones when N needs it. Output: `key=value`
# lines on stdout (`n500.online_s=...`); progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z ${SUPD_BIN:-} || -z ${SUPCTL_BIN:-} ]]; then
    cargo build --release --quiet --bins
fi
SUPD=${SUPD_BIN:-$PWD/target/release/supd}
SUPCTL=${SUPCTL_BIN:-$PWD/target/release/supctl}
NS=${NS:-500 2000 5000}
POLL_MS=${POLL_MS:-100}
STATUS_RUNS=${STATUS_RUNS:-15}
IDLE_S=${IDLE_S:-3}
for bin in "$SUPD" "$SUPCTL"; do
    [[ -x $bin ]] || { echo "scale.sh: $bin is not an executable" >&2; exit 2; }
done
say() { echo "scale.sh: $*" >&2; }

# Each instance holds a few fds in supd (its stdout and stderr pipes, more while it
# starts) and is one process of this user: raise the soft limits where N needs it.
max_n=0
for n in $NS; do ((n > max_n)) && max_n=$n; done
raise() {
    local flag=$1 need=$2 soft hard
    soft=$(ulimit -S "$flag") hard=$(ulimit -H "$flag")
    [[ $soft == unlimited ]] && return 0
    ((soft >= need)) && return 0
    if [[ $hard == unlimited ]] || ((hard >= need)); then
        ulimit -S "$flag" "$need"
    else
        ulimit -S "$flag" "$hard"
        say "ulimit $flag: hard limit $hard is below the $need wanted for N=$max_n"
    fi
}
raise -n $((max_n * 3 + 256))
raise -u $((max_n + $(ps -u "$(id -u)" --no-headers | wc -l) + 256))

dir=$(mktemp -d /tmp/supscale.XXXXXX)
supd_pid=""
helper=""
cleanup() {
    set +e
    local i
    [[ -n $helper ]] && kill "$helper" 2>/dev/null && wait "$helper" 2>/dev/null
    if [[ -n $supd_pid ]] && kill -0 "$supd_pid" 2>/dev/null; then
        timeout 30 "$SUPCTL" --socket "$dir/s.sock" shutdown >/dev/null 2>&1 ||
            kill -TERM "$supd_pid"
        for ((i = 0; i < 600; i++)); do kill -0 "$supd_pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$supd_pid" 2>/dev/null
        wait "$supd_pid" 2>/dev/null
    fi
    if [[ ${KEEP:-0} == 1 ]]; then say "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# online SOCKET: how many instances `supctl --json status` shows online (0 if no answer);
# the answer is kept in $dir/last.json.
online() {
    { "$SUPCTL" --socket "$1" --json status 2>/dev/null || true; } >"$dir/last.json"
    grep -o '"state": *"online"' "$dir/last.json" | wc -l
}
# last_online_s: from the kept answer, supd's uptime (the first `uptime_ms`, the
# supervisor's) minus the smallest instance uptime, in seconds.
last_online_s() {
    grep -o '"uptime_ms": *[0-9]*' "$dir/last.json" | grep -o '[0-9]*$' |
        awk 'NR == 1 { sup = $1; next } min == "" || $1 < min { min = $1 }
             END { printf "%.3f", (sup - min) / 1000 }'
}

declare -A per_instance status_ms cpu_per
HZ=$(getconf CLK_TCK)
for n in $NS; do
    cat >"$dir/ecosystem.toml" <<EOF
[supervisor]
socket = "$dir/s.sock"
log_dir = "$dir/logs"
[[app]]
name = "sleepers"
cmd = ["sleep", "infinity"]
instances = $n
EOF
    rm -rf "$dir/logs" "$dir/s.sock"
    say "N=$n: starting"
    t0=$(now)
    "$SUPD" -c "$dir/ecosystem.toml" 2>"$dir/supd.err" &
    supd_pid=$!
    up=0
    deadline=$((SECONDS + 120 + n / 20))
    while ((up < n)); do
        kill -0 "$supd_pid" 2>/dev/null || { say "supd exited:"; cat "$dir/supd.err" >&2; exit 1; }
        ((SECONDS < deadline)) || { say "N=$n: only $up online after $((120 + n / 20)) s"; exit 1; }
        sleep "$(awk -v ms="$POLL_MS" 'BEGIN { print ms / 1000 }')"
        up=$(online "$dir/s.sock")
    done
    polled_s=$(since "$t0")
    online_s=$(last_online_s)
    per=$(awk -v s="$online_s" -v n="$n" 'BEGIN { printf "%.3f", s * 1000 / n }')
    per_instance[$n]=$per
    supd_ticks=$(cpu_ticks "$supd_pid")
    # Each instance's time on a CPU in ns (schedstat: exact, where stat has ticks).
    kids_ms=$(tr ' ' '\n' <"/proc/$supd_pid/task/$supd_pid/children" | grep . |
        sed 's|.*|/proc/&/schedstat|' | xargs cat 2>/dev/null |
        awk '{ t += $1 } END { printf "%.0f", t / 1e6 }')
    cpu_per[$n]=$(awk -v t="$supd_ticks" -v k="$kids_ms" -v n="$n" -v hz="$HZ" \
        'BEGIN { printf "%.3f", (t * 1000 / hz + k) / n }')
    echo "n$n.online_s=$online_s"
    echo "n$n.polled_s=$polled_s"
    echo "n$n.start_ms_per_instance=$per"
    echo "n$n.start_cpu_ms=$((supd_ticks * 1000 / HZ))"
    echo "n$n.children_cpu_ms=$kids_ms"
    echo "n$n.cpu_ms_per_instance=${cpu_per[$n]}"

    times=()
    for ((i = 0; i < STATUS_RUNS; i++)); do
        t=$(now)
        "$SUPCTL" --socket "$dir/s.sock" --json status >/dev/null
        times+=("$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.2f", (b - a) * 1000 }')")
    done
    med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    status_ms[$n]=$med
    echo "n$n.status_ms=$med"
    echo "n$n.rss_mib=$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$supd_pid/status")"
    c0=$(cpu_ticks "$supd_pid")
    sleep "$IDLE_S"
    echo "n$n.idle_ticks=$(($(cpu_ticks "$supd_pid") - c0))"

    t0=$(now)
    timeout 60 "$SUPCTL" --socket "$dir/s.sock" shutdown >/dev/null || kill -TERM "$supd_pid"
    helper=$supd_pid
    wait "$supd_pid" || true
    helper="" supd_pid=""
    echo "n$n.shutdown_s=$(since "$t0")"
done

ns=($NS)
first=${ns[0]} last=${ns[-1]}
if ((${#ns[@]} > 1)); then
    awk -v a="${per_instance[$last]}" -v b="${per_instance[$first]}" -v f="$first" -v l="$last" \
        'BEGIN { printf "start_ratio_%s_%s=%.2f\n", l, f, a / b }'
    awk -v a="${cpu_per[$last]}" -v b="${cpu_per[$first]}" -v f="$first" -v l="$last" \
        'BEGIN { printf "cpu_ratio_%s_%s=%.2f\n", l, f, a / b }'
    awk -v a="${status_ms[$last]}" -v b="${status_ms[$first]}" -v f="$first" -v l="$last" \
        -v nf="$first" -v nl="$last" \
        'BEGIN { printf "status_ratio_per_instance_%s_%s=%.2f\n", l, f, (a / nl) / (b / nf) }'
fi
