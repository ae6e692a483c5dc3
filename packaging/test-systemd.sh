#!/usr/bin/env bash
# Prove the Debian package under a real systemd: boot a Debian bookworm container
# (systemd-nspawn), install the .deb built by packaging/check-deb.sh, and use supd.service
# as an operator would: install, supctl as root and as group sup, reload, stop, a killed
# supd, the watchdog, an in-place upgrade, remove and purge.
#
#   packaging/test-systemd.sh       # as root; prints one ok/FAIL/skip line per check
#
# The debootstrapped rootfs is cached as a tarball in target/test-systemd/; each run
# extracts a fresh copy, so every run starts from a clean system. Exits 1 if a check
# failed; the details of every step are in target/test-systemd/run.log.
set -uo pipefail
cd "$(dirname "$0")/.."

cache=target/test-systemd
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
log=$cache/run.log
root=$cache/rootfs
machine=sup-$$
include=systemd,systemd-sysv,dbus,python3,procps,iproute2,curl
# A changed package list must not reuse a rootfs built without it.
tarball=$cache/rootfs-bookworm-$(md5sum <<<"$include" | cut -c1-8).tar

exec 3>&1 >"$log" 2>&1
say() { echo "$*" >&3; echo "== $*"; }
now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
started=$(now_ms)

# One run at a time: two runs would share the rootfs directory.
exec 9>"$cache/lock"
flock -n 9 || { say "FAIL setup: another packaging/test-systemd.sh holds $cache/lock"; exit 1; }

[ "$(id -u)" = 0 ] || { say "FAIL setup: must run as root (debootstrap, systemd-nspawn)"; exit 1; }

# --- host tools ---------------------------------------------------------------------
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }; then
        say "FAIL setup: apt-get install ${missing[*]} failed (see $log)"
        exit 1
    fi
fi

# debian_mirror, remove_tree.
. packaging/rootfs-lib.sh

nspawn_pid=
ct_pid=
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        # SIGTERM asks nspawn to power the container off; its init dying ends the
        # container's pid namespace whatever is left in it.
        kill "$nspawn_pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$nspawn_pid" 2>/dev/null; then
            [ -n "$ct_pid" ] && kill -9 "$ct_pid" 2>/dev/null
            kill -9 "$nspawn_pid" 2>/dev/null
        fi
        wait "$nspawn_pid" 2>/dev/null
    fi
    remove_tree "$root"
    remove_tree "$cache/bootstrap"
}
trap cleanup EXIT
# A signal lets the running check finish, then the EXIT trap cleans up.
trap 'say "FAIL interrupted: by a signal"; exit 130' INT TERM HUP

# wait_for SECONDS CMD...: poll CMD until it succeeds; 1 when SECONDS passed first.
wait_for() {
    local end=$(( $(now_ms) + $1 * 1000 )); shift
    until "$@"; do
        [ "$(now_ms)" -lt "$end" ] || return 1
        sleep 0.05
    done
}

# --- the packages -------------------------------------------------------------------
if ! deb_built=$(packaging/check-deb.sh | tail -1) || [ ! -f "$deb_built" ]; then
    say "FAIL package: packaging/check-deb.sh failed (see $log)"
    exit 1
fi
# A later `cargo deb -o` may empty target/debian/: keep our own copies.
rm -f "$cache"/*.deb
deb_old=$cache/$(basename "$deb_built")
cp "$deb_built" "$deb_old"
v_old=$(dpkg-deb -f "$deb_old" Version)
# Same binaries, a higher package version: the upgrade re-executes the new file in place.
v_new=$v_old+upgrade1
mkdir -p "$cache/new"
if ! deb_new=$(packaging/cargo-deb.sh --no-build --deb-version "$v_new" -o "$cache/new" | tail -1) \
        || [ ! -f "$deb_new" ] || ! dpkg --compare-versions "$v_new" gt "$v_old"; then
    say "FAIL package: packaging/cargo-deb.sh --deb-version $v_new built no higher-version package (see $log)"
    exit 1
fi
mv "$deb_new" "$cache/" && rmdir "$cache/new"
deb_new=$cache/$(basename "$deb_new")
[ "$(dpkg-deb -f "$deb_new" Version)" = "$v_new" ] || { say "FAIL package: $deb_new is not version $v_new"; exit 1; }
say "deb  $(basename "$deb_old"): $(( $(stat -c %s "$deb_old") / 1024 )) KiB"

# --- the container ------------------------------------------------------------------
if [ ! -f "$tarball" ]; then
    remove_tree "$cache/bootstrap"
    m=$(debian_mirror); m=${m:-http://deb.debian.org/debian}
    echo "debootstrap from $m"
    t=$(now_ms)
    if ! debootstrap --variant=minbase --include="$include" bookworm "$cache/bootstrap" "$m"; then
        say "FAIL setup: debootstrap bookworm from $m failed (see $log)"
        exit 1
    fi
    # The host's own apt caches are no use to the tests and make the tarball larger.
    rm -rf "$cache"/bootstrap/var/cache/apt/archives/*.deb "$cache"/bootstrap/var/lib/apt/lists/*
    tar --numeric-owner --xattrs --xattrs-include='*' -C "$cache/bootstrap" -cf "$tarball.part" . \
        && mv "$tarball.part" "$tarball"
    remove_tree "$cache/bootstrap"
    say "info debootstrap took $(( ($(now_ms) - t) / 1000 )) s (cached in $tarball)"
fi
remove_tree "$root"
mkdir -p "$root"
tar --numeric-owner --xattrs --xattrs-include='*' -C "$root" -xf "$tarball" \
    || { say "FAIL setup: cannot extract $tarball"; exit 1; }
cp "$deb_old" "$deb_new" "$root/root/"
deb_old=/root/$(basename "$deb_old")
deb_new=/root/$(basename "$deb_new")

# --keep-unit: the host has no systemd nor D-Bus to register a scope with.
systemd-nspawn -D "$root" -b -M "$machine" --register=no --keep-unit --private-network \
    --console=read-only >"$cache/console.log" 2>&1 </dev/null &
nspawn_pid=$!

init_pid() {
    local c
    for c in $(cat /proc/"$nspawn_pid"/task/*/children 2>/dev/null); do
        [ "$(cat /proc/"$c"/comm 2>/dev/null)" = systemd ] && { ct_pid=$c; return 0; }
    done
    return 1
}
# Run CMD inside the container with a clean environment: the host's SUP_SOCKET, RUST_LOG
# or XDG_RUNTIME_DIR must not leak in, and supctl must not find an ecosystem.toml in cwd.
ct() {
    nsenter -t "$ct_pid" -a -- /usr/bin/env -i -C / PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 "$@" </dev/null
}
booted() { [[ $(ct systemctl is-system-running 2>/dev/null) =~ ^(running|degraded)$ ]]; }
if ! wait_for 20 init_pid; then
    say "FAIL setup: systemd-nspawn started no systemd (see $cache/console.log)"
    exit 1
fi
if ! wait_for 60 booted; then
    say "FAIL setup: the container's systemd is not up: $(ct systemctl is-system-running)"
    exit 1
fi
ct systemctl --failed --no-pager

# --- helpers for the checks ---------------------------------------------------------
failed=0
# run_check NAME FUNC: FUNC runs in a subshell; its stdout is the reason, exit 0 ok,
# 77 skip, anything else a failure.
run_check() {
    local name=$1 out rc t0
    echo "== check $name"
    t0=$(now_ms)
    out=$("$2" 3>&-); rc=$?
    echo "== $name took $(( $(now_ms) - t0 )) ms"
    out=${out##*$'\n'}   # the reason is the last line the check printed
    case $rc in
        0) say "ok   $name" ;;
        77) say "skip $name: $out" ;;
        *) say "FAIL $name: ${out:-exit $rc}"; failed=1 ;;
    esac
}
no() { echo "$*"; exit 1; }
skip() { echo "$*"; exit 77; }

prop() { ct systemctl show -p "$1" --value supd; }
status_json() { ct supctl --json status; }
# One line per instance: "app:index state ready pid".
instances() {
    status_json | python3 -c '
import json, sys
for a in json.load(sys.stdin)["apps"]:
    for i in a["instances"]:
        print("%s:%s %s %s %s" % (a["name"], i["index"], i["state"], i.get("ready"), i.get("pid")))'
}
# Every instance online and ready, and at least N instances.
all_ready() {
    local rows
    rows=$(instances) || return 1
    [ "$(grep -c . <<<"$rows")" -ge "$1" ] && ! grep -qv ' online True ' <<<"$rows"
}
# Every process of the apps in the container, found by the SUP_APP variable supd gives
# them: "pid ppid app comm", sorted. Children an app forked carry it too.
app_procs() {
    ct python3 -c '
import os
rows = []
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        env = open(f"/proc/{d}/environ", "rb").read().split(b"\0")
        stat = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    app = [e[8:].decode() for e in env if e.startswith(b"SUP_APP=")]
    if app:
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = stat[stat.rindex(")") + 2:].split()[1]
        rows.append((int(d), ppid, app[0], comm))
for r in sorted(rows):
    print(*r)'
}
no_app_procs() { [ -z "$(app_procs)" ]; }
journal_cursor() { ct journalctl -n 0 --show-cursor -q | sed -n 's/^-- cursor: //p'; }
# systemd's own complaints about supd.service since CURSOR: processes supd left behind.
leftover_notes() {
    ct journalctl --sync
    ct journalctl -q -o cat -u supd --after-cursor="$1" --no-pager \
        | grep -Ei 'killing process|left-over|remains running' || true
}
need_active() {
    [ "$(prop ActiveState)" = active ] || no "supd.service is not active at the start ($(prop ActiveState)/$(prop SubState))"
}
dpkg_in() { ct timeout 120 dpkg "$@"; }

conf=$root/etc/sup/ecosystem.toml
# `web` gets ready only ~2 s after its start, so a start that returned before READY shows.
apps_toml='[supervisor]
shutdown_timeout = "10s"
readers = ["adm"]

[defaults]
kill_timeout = "3s"

[[app]]
name = "web"
cmd = ["sh", "-c", "sleep 2; exec python3 -m http.server 8080 --bind 127.0.0.1 --directory /tmp"]
ready = { http = "http://127.0.0.1:8080/", timeout = "20s", interval = "100ms" }

[[app]]
name = "idle"
cmd = ["sleep", "infinity"]
instances = 2

# The leader forks a child that is not the leader: an orphan would show.
[[app]]
name = "tree"
cmd = ["sh", "-c", "sleep infinity & exec sleep infinity"]
'
extra_toml='
[[app]]
name = "extra"
cmd = ["sleep", "infinity"]
'

# --- the checks ---------------------------------------------------------------------
check_install() {
    dpkg_in -i "$deb_old" >&2 || no "dpkg -i $(basename "$deb_old") failed"
    [ "$(ct systemctl is-enabled supd)" = enabled ] || no "supd.service is $(ct systemctl is-enabled supd), not enabled"
    [ "$(prop ActiveState)/$(prop SubState)" = active/running ] \
        || no "supd.service is $(prop ActiveState)/$(prop SubState) after dpkg -i"
    [ "$(prop Type)" = notify ] || no "supd.service is Type=$(prop Type), not notify"
    printf '%s' "$apps_toml" >"$conf"
    # Watch the unit while it starts: supd reports its progress before READY=1.
    local t0 t1 rc seen="" st
    t0=$(now_ms)
    ct timeout 60 systemctl restart supd & local job=$!
    while kill -0 "$job" 2>/dev/null; do
        st=$(prop StatusText)
        [[ $st == starting:* ]] && seen=$st
        sleep 0.05
    done
    wait "$job"; rc=$?
    t1=$(now_ms)
    local rows; rows=$(instances)
    echo "restart took $((t1 - t0)) ms, saw '$seen'; status right after:"$'\n'"$rows" >&2
    [ "$rc" = 0 ] || no "systemctl restart supd exited $rc"
    grep -qv ' online True ' <<<"$rows" \
        && no "systemctl restart returned before every app was ready: $(grep -v ' online True ' <<<"$rows" | tr '\n' ';')"
    [ "$(grep -c . <<<"$rows")" = 4 ] || no "status shows $(grep -c . <<<"$rows") instances, not 4"
    [ $((t1 - t0)) -ge 2000 ] || no "systemctl restart returned after $((t1 - t0)) ms, before web's 2 s start could be ready"
    [[ $seen == "starting: "*" of 3 apps ready" ]] || no "no STATUS=starting: N of 3 apps ready while activating (last seen: '$seen')"
    st=$(prop StatusText)
    [ "$st" = "managing 3 apps" ] || no "StatusText after the start is '$st', not 'managing 3 apps'"
    [ "$(prop ActiveState)/$(prop SubState)" = active/running ] || no "supd.service is $(prop ActiveState)/$(prop SubState)"
}

check_root_access() {
    need_active
    local out
    out=$(ct supctl status 2>&1) || no "supctl status as root exited $?: $out"
    grep -q '^web ' <<<"$out" || no "supctl status as root does not list web: $out"
}

check_group_access() {
    need_active
    ct getent group sup >/dev/null || skip "the package creates no group sup yet"
    local sock out rc
    sock=$(ct stat -c '%U:%G %a' /run/sup/supd.sock)
    # 0666 while `readers` names groups (this config does): supd checks each client.
    [ "$sock" = "root:sup 666" ] || no "/run/sup/supd.sock is $sock, not root:sup 666 (readers are set)"
    ct useradd -M -s /bin/sh -G sup alice >&2 || no "useradd alice failed"
    ct useradd -M -s /bin/sh bob >&2 || no "useradd bob failed"
    out=$(ct runuser -u alice -- supctl status 2>&1) || no "supctl status as alice (group sup) exited $?: $out"
    grep -q '^web ' <<<"$out" || no "supctl status as alice does not list web: $out"
    # Anyone else reaches the socket and is refused by supd itself, by name (exit 1).
    out=$(ct runuser -u bob -- supctl status 2>&1); rc=$?
    [ "$rc" = 1 ] && grep -q 'permission denied: uid [0-9]* is not root' <<<"$out" \
        || no "supctl status as bob (not in group sup) exited $rc, not refused with permission denied: $out"
}

# README (Install on Debian): "[supervisor] readers lets more groups read".
check_readers_access() {
    need_active
    local out rc
    ct useradd -M -s /bin/sh -G adm carol >&2 || no "useradd carol failed"
    out=$(ct runuser -u carol -- supctl status 2>&1) \
        || no "supctl status as carol (group adm, a readers group) exited $?: $out"
    grep -q '^web ' <<<"$out" || no "supctl status as carol does not list web: $out"
    out=$(ct runuser -u carol -- supctl restart web 2>&1); rc=$?
    [ "$rc" = 1 ] && grep -qi 'permission denied' <<<"$out" \
        || no "supctl restart web as carol (a reader) exited $rc, not 1 with permission denied: $out"
}

check_reload_bad() {
    need_active
    local before after
    before=$(app_procs)
    cp "$conf" "$conf.good"
    printf '%s\n[[app]]\nname = "broken"\ncmd = ["sleep", "infinity"]\nkill_timout = "1s"\n' "$apps_toml" >"$conf"
    ct timeout 60 systemctl reload supd >&2 && { mv "$conf.good" "$conf"; no "systemctl reload supd succeeded with an unknown key in the file"; }
    mv "$conf.good" "$conf"
    after=$(app_procs)
    [ "$before" = "$after" ] || no "the refused file changed the processes: before [$before] after [$after]"
    status_json | grep -q '"broken"' && no "the refused app broken appears in status"
    [ "$(prop ActiveState)" = active ] || no "supd.service is $(prop ActiveState) after the refused reload"
}

check_reload() {
    need_active
    local before after
    before=$(app_procs)
    printf '%s%s' "$apps_toml" "$extra_toml" >"$conf"
    ct timeout 60 systemctl reload supd >&2 || no "systemctl reload supd exited $?"
    wait_for 10 all_ready 5 || no "extra is not online after the reload: $(instances | tr '\n' ';')"
    instances | grep -q '^extra:0 online' || no "the added app extra is not in status"
    after=$(app_procs)
    # Every process from before is still there, with the same pid and parent.
    local missing
    missing=$(comm -23 <(sort <<<"$before") <(sort <<<"$after"))
    [ -z "$missing" ] || no "reload replaced processes of unchanged apps: gone [$(tr '\n' ';' <<<"$missing")]"
}

check_stop() {
    need_active
    local cursor t0 ms timeout_ms notes
    cursor=$(journal_cursor)
    t0=$(now_ms)
    ct timeout 60 systemctl stop supd >&2 || no "systemctl stop supd exited $?"
    ms=$(( $(now_ms) - t0 ))
    timeout_ms=10000   # shutdown_timeout in $apps_toml
    [ "$ms" -lt "$timeout_ms" ] || no "systemctl stop took $ms ms, not within shutdown_timeout 10s"
    [ "$(prop ActiveState)" = inactive ] || no "supd.service is $(prop ActiveState) after stop"
    [ "$(prop Result)" = success ] && [ "$(prop ExecMainStatus)" = 0 ] \
        || no "supd did not exit cleanly: Result=$(prop Result) ExecMainCode=$(prop ExecMainCode) ExecMainStatus=$(prop ExecMainStatus)"
    no_app_procs || no "processes of the apps are left after stop: $(app_procs | tr '\n' ';')"
    notes=$(leftover_notes "$cursor")
    [ -z "$notes" ] || no "systemd had to kill what supd left: $(tr '\n' ';' <<<"$notes")"
    echo "stop took $ms ms" >&2
    ct timeout 60 systemctl start supd >&2 || no "systemctl start supd exited $? after the stop"
    all_ready 5 || no "not every app is ready after the start: $(instances | tr '\n' ';')"
}

restarted() { # OLD_MAINPID OLD_NRESTARTS
    local pid; pid=$(prop MainPID)
    [ "$pid" != 0 ] && [ "$pid" != "$1" ] && [ "$(prop NRestarts)" -gt "$2" ] \
        && [ "$(prop ActiveState)/$(prop SubState)" = active/running ]
}
check_kill() {
    need_active
    local main nrestarts before after
    main=$(prop MainPID); nrestarts=$(prop NRestarts)
    before=$(app_procs)
    local cursor; cursor=$(journal_cursor)
    grep -q ' tree sleep$' <<<"$before" && [ "$(grep -c ' tree ' <<<"$before")" = 2 ] \
        || no "the tree app does not show its leader and its child: [$before]"
    # Under this unit systemd itself SIGKILLs what is left in the control group
    # (KillMode=mixed) before it restarts supd; supd's own clearing from
    # /run/sup/supd.state is a second line. Either way nothing may survive.
    ct kill -9 "$main" || no "kill -9 $main failed"
    wait_for 30 restarted "$main" "$nrestarts" \
        || no "systemd did not restart supd: MainPID=$(prop MainPID) NRestarts=$(prop NRestarts) $(prop ActiveState)/$(prop SubState) Result=$(prop Result)"
    [ "$(prop NRestarts)" = $((nrestarts + 1)) ] || no "NRestarts went from $nrestarts to $(prop NRestarts), not +1"
    wait_for 15 all_ready 5 || no "not every app is ready after the restart: $(instances | tr '\n' ';')"
    after=$(app_procs)
    none_survived "$before" "$after"
    echo "after kill -9: $after" >&2
    echo "systemd's part in it: $(leftover_notes "$cursor" | tr '\n' ';')" >&2
}

# none_survived BEFORE AFTER (app_procs of a dead supd, and of its successor): no process
# of the old apps is left, nothing is reparented to init, and tree has both its processes.
none_survived() {
    local old pid
    for old in $(awk '{print $1}' <<<"$1"); do
        pid=$(awk -v p="$old" '$1 == p' <<<"$2")
        [ -z "$pid" ] || no "a process of the dead supd's apps survived: $pid"
    done
    awk '$2 == 1' <<<"$2" | grep -q . && no "orphans of the apps under init: $(awk '$2 == 1' <<<"$2" | tr '\n' ';')"
    [ "$(grep -c ' tree ' <<<"$2")" = 2 ] || no "tree has $(grep -c ' tree ' <<<"$2") processes, not 2: [$2]"
}

# README: with WatchdogSec= set (a drop-in), supd pings from its event loop, so a live
# supd is never killed and a hung one is. The drop-in stays for the upgrade that follows.
watchdog_after() { # STAMP: systemd received a WATCHDOG=1 later than STAMP (monotonic us)
    local s; s=$(prop WatchdogTimestampMonotonic)
    [ -n "$s" ] && [ "$s" -gt "$1" ]
}
check_watchdog() {
    need_active
    local dropin=/etc/systemd/system/supd.service.d
    mkdir -p "$root$dropin"
    # TimeoutAbortSec: how long the WatchdogSignal (SIGABRT) may take before SIGKILL.
    printf '[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\n' >"$root$dropin/watchdog.conf"
    ct systemctl daemon-reload || no "systemctl daemon-reload failed"
    # WATCHDOG_USEC reaches supd only with a new start (and systemd shows it from then).
    ct timeout 60 systemctl restart supd >&2 || no "systemctl restart supd exited $?"
    [ "$(prop WatchdogUSec)" = 2s ] || no "the drop-in did not set WatchdogSec: WatchdogUSec=$(prop WatchdogUSec)"
    all_ready 5 || no "not every app is ready after the restart: $(instances | tr '\n' ';')"
    local main nrestarts first stamp
    main=$(prop MainPID); nrestarts=$(prop NRestarts)
    first=$(prop WatchdogTimestampMonotonic)
    # Pings keep coming (every 1 s) for longer than two whole WatchdogSec.
    stamp=$first
    while [ $((stamp - first)) -lt 4500000 ]; do
        wait_for 3 watchdog_after "$stamp" || no "no WATCHDOG=1 within 3 s after monotonic $stamp us (WatchdogSec=2s)"
        stamp=$(prop WatchdogTimestampMonotonic)
    done
    [ "$(prop MainPID)" = "$main" ] && [ "$(prop NRestarts)" = "$nrestarts" ] \
        || no "supd was restarted while it pinged: MainPID $main -> $(prop MainPID), NRestarts $nrestarts -> $(prop NRestarts)"
    # A supd that no longer runs its loop stops pinging: systemd kills and restarts it.
    local before after cursor
    before=$(app_procs); cursor=$(journal_cursor)
    ct kill -STOP "$main" || no "kill -STOP $main failed"
    wait_for 30 restarted "$main" "$nrestarts" \
        || no "systemd did not restart a stopped supd: MainPID=$(prop MainPID) NRestarts=$(prop NRestarts) $(prop ActiveState)/$(prop SubState)"
    ct journalctl --sync
    ct journalctl -q -o cat -u supd --after-cursor="$cursor" --no-pager | grep -qi 'watchdog timeout' \
        || no "the journal does not say the watchdog timed out"
    wait_for 15 all_ready 5 || no "not every app is ready after the watchdog restart: $(instances | tr '\n' ';')"
    after=$(app_procs)
    none_survived "$before" "$after"
    echo "after the watchdog restart: $after" >&2
}

check_upgrade() {
    need_active
    local main nrestarts before after exe out
    main=$(prop MainPID); nrestarts=$(prop NRestarts)
    before=$(app_procs)
    out=$(dpkg_in -i "$deb_new" 2>&1) || no "dpkg -i $(basename "$deb_new") failed: $out"
    echo "$out" >&2
    [ "$(ct dpkg-query -W -f '${Version}' sup)" = "$v_new" ] || no "sup is not at version $v_new after dpkg -i"
    grep -q 'reexec did not succeed' <<<"$out" && no "postinst: $(grep 'sup:' <<<"$out" | head -1)"
    [ "$(prop MainPID)" = "$main" ] || no "MainPID changed from $main to $(prop MainPID)"
    [ "$(prop NRestarts)" = "$nrestarts" ] || no "NRestarts changed from $nrestarts to $(prop NRestarts)"
    [ "$(prop ActiveState)/$(prop SubState)" = active/running ] || no "supd.service is $(prop ActiveState)/$(prop SubState)"
    exe=$(ct readlink "/proc/$main/exe")
    [ "$exe" = /usr/bin/supd ] || no "supd $main runs '$exe', not the new /usr/bin/supd"
    [ "$(ct stat -L -c %i "/proc/$main/exe")" = "$(ct stat -c %i /usr/bin/supd)" ] \
        || no "supd $main does not run the installed /usr/bin/supd (another inode)"
    local spid
    spid=$(status_json | python3 -c 'import json,sys; print(json.load(sys.stdin)["supervisor"]["pid"])') \
        || no "supctl --json status failed after the upgrade"
    [ "$spid" = "$main" ] || no "supctl status reports supervisor pid $spid, not MainPID $main"
    after=$(app_procs)
    [ "$before" = "$after" ] || no "the apps' processes changed: before [$(tr '\n' ';' <<<"$before")] after [$(tr '\n' ';' <<<"$after")]"
    all_ready 5 || no "not every app is ready after the upgrade: $(instances | tr '\n' ';')"
}

check_remove() {
    need_active
    ct test -s /var/log/sup/web.log || no "/var/log/sup/web.log is missing or empty before the removal"
    dpkg_in -r sup >&2 || no "dpkg -r sup failed"
    ct pgrep -x supd >/dev/null && no "supd still runs after dpkg -r: $(ct pgrep -ax supd)"
    no_app_procs || no "processes of the apps are left after dpkg -r: $(app_procs | tr '\n' ';')"
    ct test -e /usr/lib/systemd/system/supd.service && no "/usr/lib/systemd/system/supd.service is still there"
    local load; load=$(prop LoadState)
    [[ $load =~ ^(not-found|masked)$ ]] || no "supd.service is still loaded ($load) after dpkg -r"
    [ "$(prop ActiveState)" = inactive ] || no "supd.service is $(prop ActiveState) after dpkg -r"
    ct test -s /var/log/sup/web.log || no "dpkg -r removed the app logs in /var/log/sup"
}

check_purge() {
    dpkg_in -i "$deb_new" >&2 || no "reinstalling $(basename "$deb_new") failed"
    wait_for 15 all_ready 5 || no "the reinstalled supd does not run the apps: $(instances | tr '\n' ';')"
    dpkg_in --purge sup >&2 || no "dpkg --purge sup failed"
    ct pgrep -x supd >/dev/null && no "supd still runs after dpkg --purge: $(ct pgrep -ax supd)"
    no_app_procs || no "processes of the apps are left after dpkg --purge: $(app_procs | tr '\n' ';')"
    ct test -e /var/log/sup && no "/var/log/sup is still there after dpkg --purge: $(ct ls -A /var/log/sup | tr '\n' ' ')"
    ct test -e /etc/sup && no "/etc/sup is still there after dpkg --purge: $(ct ls -A /etc/sup | tr '\n' ' ')"
    [ "$(prop LoadState)" = not-found ] || no "supd.service is $(prop LoadState) after dpkg --purge, not not-found"
    ct test -e /etc/systemd/system/multi-user.target.wants/supd.service && no "the enablement symlink survived dpkg --purge"
    return 0
}

run_check install-notify check_install
run_check root-access check_root_access
run_check group-access check_group_access
run_check readers-access check_readers_access
run_check reload-refuses-bad-file check_reload_bad
run_check reload check_reload
run_check stop check_stop
run_check kill-restart check_kill
run_check watchdog check_watchdog
run_check upgrade check_upgrade
run_check remove check_remove
run_check purge check_purge

say "info $(( ($(now_ms) - started) / 1000 )) s; details in $log"
exit "$failed"
