#!/usr/bin/env bash
# Rolling reloads and no-op applies, measured on the real supd (release build):
#   1. reload under load: an app of INSTANCES (4) HTTP servers sharing one port through
#      `listen` (a tiny Node.js server on the inherited fd 3, `ready = { log = ... }`),
#      WORKERS client threads sending one request per connection (REQ_TIMEOUT each) while
#      `supctl reload web` runs back to back, at least RELOADS times and until MIN_REQUESTS
#      requests were made. `supctl --json status` is polled every POLL_MS ms for the
#      capacity: instances online and ready, plus old processes still online. Reported:
#      requests total / failed (by kind), reload duration (median, max), fewest capacity
#      seen, and whether every pid was replaced by each reload (and the old ones exited).
#      Once with `max_surge = 1` (the default, surge first), once with `max_surge = 0`
#      (stop first).
#   2. `supctl apply` and `supctl diff` with nothing changed, APPLY_APPS (100) apps of one
#      `testkit sleep` each: median and p95 over APPLY_RUNS (20) runs.
#   3. the reload scenario against PM2 cluster mode (`pm2 reload`, `wait_ready`), the same
#      Node server and client: PM2 is installed into a temporary npm prefix (PM2_BIN to use
#      an installed one, PM2=0 to skip); skipped with a message when it cannot be had.
#      PM2's capacity is the number of its processes `online` in `pm2 jlist` (which does
#      not list a process being replaced), polled as fast as `pm2 jlist` answers.
# With SERVER=testkit a process dies at once on SIGTERM (no draining), so a connection it
# had just accepted is closed unanswered: those `bad_answer`s are the server's, not sup's.
#
#   tests/benches/reload.sh                  # figures as key=value lines on stdout
#   RELOADS=10 WORKERS=16 PORT=4100 tests/benches/reload.sh
#
# Env: SUPD_BIN, SUPCTL_BIN, TESTKIT_BIN (default: the release build, built first),
# INSTANCES (4), WORKERS (8), REQ_TIMEOUT (2, seconds), RELOADS (5), MIN_REQUESTS (10000),
# MAX_RELOADS (50), POLL_MS (20), PORT (a free port; the scenarios use PORT, PORT+1, ...),
# SERVER (node | testkit: the testkit `accept` mode, answers its pid, not HTTP),
# APPLY_APPS (100), APPLY_RUNS (20), PM2 (auto | 0), PM2_BIN, KEEP=1 keeps the temp dir,
# SCENARIOS ("surge1 surge0 apply pm2": which parts run).
# Needs bash, python3 and node (npm for PM2). Progress and details go to stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z ${SUPD_BIN:-} || -z ${SUPCTL_BIN:-} || -z ${TESTKIT_BIN:-} ]]; then
    cargo build --release --quiet --bins --examples
fi
SUPD=${SUPD_BIN:-$PWD/target/release/supd}
SUPCTL=${SUPCTL_BIN:-$PWD/target/release/supctl}
KIT=${TESTKIT_BIN:-$PWD/target/release/examples/testkit}
INSTANCES=${INSTANCES:-4}
WORKERS=${WORKERS:-8}
REQ_TIMEOUT=${REQ_TIMEOUT:-2}
RELOADS=${RELOADS:-5}
MIN_REQUESTS=${MIN_REQUESTS:-10000}
MAX_RELOADS=${MAX_RELOADS:-50}
POLL_MS=${POLL_MS:-20}
SERVER=${SERVER:-node}
APPLY_APPS=${APPLY_APPS:-100}
APPLY_RUNS=${APPLY_RUNS:-20}
PM2=${PM2:-auto}
SCENARIOS=${SCENARIOS:-surge1 surge0 apply pm2}
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }
for bin in "$SUPD" "$SUPCTL" "$KIT"; do
    [[ -x $bin ]] || { echo "reload.sh: $bin is not an executable" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "reload.sh: python3 is needed" >&2; exit 2; }
if [[ $SERVER == node ]] && ! command -v node >/dev/null; then
    echo "reload.sh: node is needed (or SERVER=testkit)" >&2
    exit 2
fi

dir=$(mktemp -d /tmp/supreload.XXXXXX)
say() { echo "reload.sh: $*" >&2; }

# Every supd this script started, as "pid socket"; PM2's home once its daemon may run.
supds=()
pm2_home=""
helper=""
cleanup() {
    set +e
    local entry pid sock i
    [[ -n $helper ]] && kill "$helper" 2>/dev/null && wait "$helper" 2>/dev/null
    for entry in "${supds[@]}"; do
        pid=${entry%% *} sock=${entry#* }
        kill -0 "$pid" 2>/dev/null || continue
        timeout 20 "$SUPCTL" --socket "$sock" shutdown >/dev/null 2>&1 || kill -TERM "$pid"
        for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ -n $pm2_home ]]; then
        PM2_HOME=$pm2_home timeout 30 "$PM2_CMD" kill >/dev/null 2>&1
    fi
    if [[ ${KEEP:-0} == 1 ]]; then say "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# bg CMD...: run CMD in the background and wait for it, so a signal's trap runs at once
# (bash runs traps only between foreground commands); its status is returned.
bg() {
    local rc=0
    "$@" &
    helper=$!
    wait "$helper" || rc=$?
    helper=""
    return "$rc"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
next_port=${PORT:-}
take_port() {
    if [[ -n $next_port ]]; then port=$next_port; next_port=$((next_port + 1)); else port=$(free_port); fi
}

# start_supd CONFIG SOCKET: supd in the background, returns once its socket answers.
start_supd() {
    local config=$1 sock=$2 pid i
    "$SUPD" -c "$config" 2>>"$config.err" &
    pid=$!
    supds+=("$pid $sock")
    for ((i = 0; i < 200; i++)); do
        "$SUPCTL" --socket "$sock" status >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    say "supd on $config did not answer within 10 s:"
    cat "$config.err" >&2
    exit 1
}

# stop_supd SOCKET: `supctl shutdown`, then wait (bounded) for that supd to exit.
stop_supd() {
    local sock=$1 entry pid i
    for entry in "${supds[@]}"; do
        [[ ${entry#* } == "$sock" ]] || continue
        pid=${entry%% *}
        timeout 20 "$SUPCTL" --socket "$sock" shutdown >/dev/null || kill -TERM "$pid"
        for ((i = 0; i < 400; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        if kill -0 "$pid" 2>/dev/null; then
            say "supd $pid still runs 20 s after shutdown; killing it"
            kill -KILL "$pid"
        fi
        wait "$pid" 2>/dev/null || true
    done
}

# The server: an HTTP 200 with the pid as body, on fd 3 from supd (LISTEN_FDS) or on
# 127.0.0.1:PORT (PM2 cluster mode shares that through its master). On SIGTERM/SIGINT it
# stops accepting, finishes what it has, exits.
cat >"$dir/server.js" <<'JS'
const http = require("http");
const body = `${process.pid}\n`;
const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length, connection: "close" });
  res.end(body);
});
const where = process.env.LISTEN_FDS ? { fd: 3 } : { port: Number(process.env.PORT), host: "127.0.0.1" };
server.listen(where, () => {
  console.log(`listening pid=${process.pid}`);
  if (process.send) process.send("ready");
});
const stop = () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
JS

# The load generator and observer: client threads, a status poller and the reload loop.
cat >"$dir/load.py" <<'PY'
import json, os, socket, statistics, subprocess, sys, threading, time

label, kind, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = json.loads(sys.argv[4])
workers, req_timeout = cfg["workers"], cfg["timeout"]
reloads_min, reloads_max, min_requests = cfg["reloads"], cfg["max_reloads"], cfg["min_requests"]
instances, poll_s, http = cfg["instances"], cfg["poll_ms"] / 1000, cfg["http"]
reload_cmd, status_cmd = cfg["reload_cmd"], cfg["status_cmd"]
env = dict(os.environ, **cfg.get("env", {}))

def log(msg):
    print(f"reload.sh: [{label}] {msg}", file=sys.stderr, flush=True)

def status():
    """(pids of the current instances, capacity, summary) from one status call."""
    out = subprocess.run(status_cmd, capture_output=True, env=env, timeout=30).stdout
    if kind == "sup":
        rows = json.loads(out)["apps"][0]["instances"]
        cap, pids, desc = 0, [], []
        for r in rows:
            up = r["state"] == "online" and r["ready"]
            old = r.get("old") or {}
            cap += up + (old.get("state") == "online")
            pids.append(r["pid"] if up else None)
            desc.append(f'{r["index"]}:{r["pid"]}/{r["state"]}/{"R" if r["ready"] else "-"}'
                        + (f' old={old.get("pid")}/{old.get("state")}' if old else ""))
        return pids, cap, " ".join(desc)
    # pm2 jlist: the online processes of app "web".
    rows = [p for p in json.loads(out) if p["name"] == "web"]
    on = [p for p in rows if p["pm2_env"]["status"] == "online"]
    desc = " ".join(f'{p["pm2_env"].get("NODE_APP_INSTANCE")}:{p["pid"]}/{p["pm2_env"]["status"]}' for p in rows)
    return [p["pid"] for p in on], len(on), desc

stop = threading.Event()
lock = threading.Lock()
counts = {"total": 0, "ok": 0}
fails = {}
fail_samples = []
t_start = time.monotonic()
phase = ["warmup"]

def fail(kind_, detail):
    with lock:
        fails[kind_] = fails.get(kind_, 0) + 1
        if len(fail_samples) < 20:
            fail_samples.append(f"t={time.monotonic() - t_start:.3f}s {phase[0]} {kind_}: {detail}")

REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

def one_request():
    deadline = time.monotonic() + req_timeout
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=req_timeout)
    except socket.timeout:
        return fail("connect_timeout", "")
    except OSError as e:
        return fail("connect_error", repr(e))
    data = b""
    try:
        with s:
            if http:
                s.sendall(REQ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                s.settimeout(left)
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except socket.timeout:
        return fail("timeout", repr(data[:80]))
    except ConnectionResetError as e:
        return fail("reset", repr(data[:80]))
    except OSError as e:
        return fail("io_error", repr(e))
    if http:
        head, _, body = data.partition(b"\r\n\r\n")
        good = head.startswith(b"HTTP/1.1 200") and body.strip().isdigit()
    else:
        good = data.endswith(b"\n") and data.strip().isdigit()
    if not good:
        return fail("bad_answer", repr(data[:120]))
    with lock:
        counts["ok"] += 1

def worker():
    while not stop.is_set():
        with lock:
            counts["total"] += 1
        one_request()

caps = []
low = [None, ""]
high = [None]
def poller():
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            _, cap, desc = status()
        except Exception as e:
            log(f"status poll failed: {e!r}")
            cap, desc = None, ""
        if cap is not None:
            caps.append(cap)
            high[0] = cap if high[0] is None else max(high[0], cap)
            if low[0] is None or cap < low[0]:
                low[0], low[1] = cap, f"t={t0 - t_start:.3f}s {phase[0]}: {desc}"
        time.sleep(max(0.0, poll_s - (time.monotonic() - t0)))

def wait_all_up(deadline_s=30):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        pids, cap, desc = status()
        if len(pids) == instances and all(pids):
            return pids
        time.sleep(0.02)
    log(f"not all {instances} instances online and ready after {deadline_s} s: {desc}")
    return None

def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True

before = wait_all_up()
if before is None:
    sys.exit(1)
threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
threads.append(threading.Thread(target=poller, daemon=True))
for t in threads:
    t.start()
time.sleep(0.5)
durations, replaced_all, olds = [], True, []
n = 0
while n < reloads_min or (counts["total"] < min_requests and n < reloads_max):
    n += 1
    phase[0] = f"reload{n}"
    t0 = time.monotonic()
    r = subprocess.run(reload_cmd, capture_output=True, text=True, env=env, timeout=300)
    durations.append(time.monotonic() - t0)
    if r.returncode != 0:
        log(f"reload {n} exited {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}")
    after = wait_all_up()
    if after is None:
        replaced_all = False
        break
    kept = set(before) & set(after)
    if kept or len(set(after)) != instances:
        replaced_all = False
        log(f"reload {n}: pids before {before}, after {after}: kept {sorted(kept)}")
    olds.extend(before)
    before = after
phase[0] = "after"
time.sleep(0.5)
stop.set()
for t in threads:
    t.join(timeout=req_timeout + 35)
# The replaced processes must be gone (bounded wait: they finish their requests first).
end = time.monotonic() + 15
while time.monotonic() < end and any(alive(p) for p in olds):
    time.sleep(0.05)
left = [p for p in olds if alive(p)]
if left:
    log(f"old pids still alive 15 s after the last reload: {left}")
for s in fail_samples:
    log(f"failure {s}")
if low[0] is not None:
    log(f"fewest capacity {low[0]} at {low[1]}")
failed = sum(fails.values())
d = sorted(durations)
out = {
    "requests_total": counts["total"],
    "requests_failed": failed,
    **{f"failed_{k}": v for k, v in sorted(fails.items())},
    "reloads": n,
    "reload_ms_median": f"{statistics.median(d) * 1000:.0f}",
    "reload_ms_max": f"{d[-1] * 1000:.0f}",
    "min_capacity": low[0],
    "max_capacity": high[0],
    "status_polls": len(caps),
    "pids_replaced": "yes" if replaced_all else "no",
    "old_pids_exited": "yes" if not left else f"no({len(left)})",
    "requests_per_s": f"{counts['total'] / (time.monotonic() - t_start):.0f}",
}
for k, v in out.items():
    print(f"{label}.{k}={v}", flush=True)
PY

# The apply/diff timer: wall time of a command, N runs, median and p95.
cat >"$dir/timeit.py" <<'PY'
import statistics, subprocess, sys, time
label, runs, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ts = []
for _ in range(runs):
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    ts.append((time.monotonic() - t0) * 1000)
    if r.returncode != 0:
        print(f"reload.sh: {' '.join(cmd[-1:])} exited {r.returncode}: {r.stdout.strip()} {r.stderr.strip()}",
              file=sys.stderr)
ts.sort()
p95 = ts[min(len(ts) - 1, int(round(0.95 * len(ts))) - 1)]
print(f"{label}_ms_median={statistics.median(ts):.1f}")
print(f"{label}_ms_p95={p95:.1f}")
print(f"{label}_ms_max={ts[-1]:.1f}")
print(f"reload.sh: {label}: last output: {r.stdout.strip()[:300]!r}", file=sys.stderr)
PY

load_cfg() { # load_cfg RELOAD_CMD_JSON STATUS_CMD_JSON [ENV_JSON]
    local http=true
    [[ $SERVER == node ]] || http=false
    printf '{"workers":%d,"timeout":%s,"reloads":%d,"max_reloads":%d,"min_requests":%d,"instances":%d,"poll_ms":%d,"http":%s,"reload_cmd":%s,"status_cmd":%s,"env":%s}' \
        "$WORKERS" "$REQ_TIMEOUT" "$RELOADS" "$MAX_RELOADS" "$MIN_REQUESTS" "$INSTANCES" "$POLL_MS" \
        "$http" "$1" "$2" "${3:-{\}}"
}
jarr() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }

# sup_reload LABEL MAX_SURGE
sup_reload() {
    local label=$1 surge=$2 port cmd ready
    take_port
    if [[ $SERVER == node ]]; then
        cmd=$(jarr "$(command -v node)" "$dir/server.js") ready='listening pid='
    else
        cmd=$(jarr "$KIT" accept) ready='listen-ready'
    fi
    cat >"$dir/$label.toml" <<TOML
[supervisor]
socket = "$dir/$label.sock"
log_dir = "$dir/logs-$label"
[[app]]
name = "web"
cmd = $cmd
instances = $INSTANCES
listen = ["tcp://127.0.0.1:$port"]
ready = { log = "$ready", timeout = "10s" }
max_surge = $surge
TOML
    say "$label: $INSTANCES x $SERVER on 127.0.0.1:$port, max_surge = $surge"
    start_supd "$dir/$label.toml" "$dir/$label.sock"
    bg python3 "$dir/load.py" "$label" sup "$port" "$(load_cfg \
        "$(jarr "$SUPCTL" --socket "$dir/$label.sock" reload web)" \
        "$(jarr "$SUPCTL" --socket "$dir/$label.sock" --json status web)")" || say "$label: load run failed"
    stop_supd "$dir/$label.sock"
}

want surge1 && sup_reload sup_surge1 1
want surge0 && sup_reload sup_surge0 0

# No-op apply and diff with APPLY_APPS apps.
apply_bench() {
    {
        echo "[supervisor]"
        echo "socket = \"$dir/apply.sock\""
        echo "log_dir = \"$dir/logs-apply\""
        for ((i = 0; i < APPLY_APPS; i++)); do
            printf '[[app]]\nname = "app%03d"\ncmd = ["%s", "sleep"]\n' "$i" "$KIT"
        done
    } >"$dir/apply.toml"
    say "apply: $APPLY_APPS apps, $APPLY_RUNS runs of apply and of diff with nothing changed"
    start_supd "$dir/apply.toml" "$dir/apply.sock"
    pids_of() { "$SUPCTL" --socket "$dir/apply.sock" --json status | python3 -c '
import json, sys
rows = [r for a in json.load(sys.stdin)["apps"] for r in a["instances"]]
print(sum(r["state"] == "online" for r in rows), sorted(r["pid"] or 0 for r in rows))'; }
    deadline=$((SECONDS + 30))
    until [[ $(pids_of | cut -d' ' -f1) == "$APPLY_APPS" ]]; do
        ((SECONDS < deadline)) || { say "apply: not all $APPLY_APPS apps online after 30 s"; break; }
        sleep 0.05
    done
    pids_before=$(pids_of)
    bg python3 "$dir/timeit.py" apply"$APPLY_APPS" "$APPLY_RUNS" "$SUPCTL" --socket "$dir/apply.sock" apply
    bg python3 "$dir/timeit.py" diff"$APPLY_APPS" "$APPLY_RUNS" "$SUPCTL" --socket "$dir/apply.sock" diff
    bg python3 "$dir/timeit.py" status"$APPLY_APPS" "$APPLY_RUNS" "$SUPCTL" --socket "$dir/apply.sock" --json status
    if [[ $(pids_of) == "$pids_before" ]]; then
        echo "apply$APPLY_APPS.processes_untouched=yes"
    else
        echo "apply$APPLY_APPS.processes_untouched=no"
    fi
    stop_supd "$dir/apply.sock"
}
want apply && apply_bench

# PM2 cluster mode, the same server and client.
pm2_skip() { say "pm2: skipped: $*"; echo "pm2.skipped=yes"; }
if ! want pm2; then
    :
elif [[ $PM2 == 0 ]]; then
    pm2_skip "PM2=0"
elif [[ $SERVER != node ]]; then
    pm2_skip "SERVER=$SERVER (PM2 runs the Node server only)"
else
    PM2_CMD=${PM2_BIN:-}
    if [[ -z $PM2_CMD ]] && command -v npm >/dev/null; then
        say "pm2: npm install pm2 into $dir/npm"
        if bg timeout 120 npm install --prefix "$dir/npm" --no-audit --no-fund --loglevel=error pm2 >"$dir/npm.log" 2>&1; then
            PM2_CMD=$dir/npm/node_modules/.bin/pm2
        else
            tail -5 "$dir/npm.log" >&2
        fi
    fi
    if [[ -z $PM2_CMD || ! -x $PM2_CMD ]]; then
        pm2_skip "PM2 could not be installed (npm missing or the install failed)"
    else
        take_port
        pm2_home=$dir/pm2home
        export PM2_HOME=$pm2_home
        cat >"$dir/pm2.config.js" <<JS
module.exports = { apps: [{
  name: "web", script: "$dir/server.js", instances: $INSTANCES, exec_mode: "cluster",
  wait_ready: true, listen_timeout: 10000, kill_timeout: 5000, autorestart: true,
  env: { PORT: "$port" },
}] };
JS
        say "pm2: $("$PM2_CMD" --version 2>/dev/null | tail -1), $INSTANCES x node cluster mode on 127.0.0.1:$port"
        if timeout 60 "$PM2_CMD" start "$dir/pm2.config.js" >"$dir/pm2-start.log" 2>&1; then
            bg python3 "$dir/load.py" pm2 pm2 "$port" "$(load_cfg \
                "$(jarr "$PM2_CMD" reload web)" "$(jarr "$PM2_CMD" jlist)" \
                "$(python3 -c 'import json, sys; print(json.dumps({"PM2_HOME": sys.argv[1]}))' "$pm2_home")")" \
                || say "pm2: load run failed"
        else
            tail -20 "$dir/pm2-start.log" >&2
            pm2_skip "pm2 start failed"
        fi
        timeout 30 "$PM2_CMD" kill >/dev/null 2>&1 || true
        pm2_home=""
    fi
fi
