#!/usr/bin/env bash
# Build the container image of packaging/Dockerfile with podman and prove what it
# promises: supd is PID 1 as a non-root user, the HEALTHCHECK tells a ready stack from
# one that never gets ready, supctl works through `podman exec`, orphans are reaped,
# `podman stop` (its default 10 s) ends in a clean exit 0, the app logs reach
# `podman logs`, and the Kubernetes example (packaging/k8s) runs under `podman kube play`.
#
#   packaging/test-container.sh     # as root; prints one ok/FAIL/skip line per check
#
# No registry is needed: the base images are Debian bookworm rootfs tarballs made with
# debootstrap from the machine's own apt mirror and `podman import`ed, cached in
# target/test-container/ (a bookworm-slim-like one for the image, and one with node and
# python3 for the repository's example ecosystem). The image is built from binaries
# built here (`--target prebuilt`). podman, runc and debootstrap are installed with apt
# when missing. About 35 s with the cache, 95 s without. Exits 1 if a check
# failed; every step's details are in target/test-container/run.log.
# shellcheck disable=SC2317  # the checks are functions run through `check`
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

cache=target/test-container
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
log=$cache/run.log
work=$cache/run-$$
tag=test-$$
image=localhost/sup:$tag
stack_image=localhost/sup-stack:$tag
base=localhost/sup-base:$tag
runtimes=localhost/sup-runtimes:$tag
ct_prefix=sup-test-$$
# The runtimes the example ecosystem needs (examples/: node and python3). A changed list
# must not reuse a tarball built without it.
runtimes_pkgs=(nodejs python3)
base_tar=$cache/bookworm-minbase-v1.tar
runtimes_tar=$cache/bookworm-runtimes-$(md5sum <<<"v1 ${runtimes_pkgs[*]}" | cut -c1-8).tar
root=$cache/rootfs   # where the tarballs are made

# fd 3: the check lines (stdout); fd 4: progress notes (stderr); the rest goes to the log.
exec 3>&1 4>&2 >"$log" 2>&1
say() { echo "$*" >&3; echo "== $*"; }
note() { echo "test-container: $*" >&4; echo "== $*"; }
now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
started=$(now_ms)

failed=0
ok() { say "ok   $1"; }
fail() { say "FAIL $1: $2"; failed=1; }
skip() { say "skip $1: $2"; }

# Every check, in order: when the setup cannot go on, the ones not yet run are skipped
# with the reason.
checks=(
    "image builds"
    "runtime layer under 10 MB"
    "supd is PID 1"
    "healthy: the example stack"
    "unhealthy: an app never ready"
    "supctl status through podman exec"
    "orphan reaped"
    "podman stop exits 0 within its 10 s"
    "app logs on podman logs"
    "non-root: supd and its apps"
    "Kubernetes example: podman kube play"
)
done_checks=0
# give_up STATUS REASON: report the checks not run yet as STATUS (FAIL or skip), stop.
give_up() {
    local i
    for ((i = done_checks; i < ${#checks[@]}; i++)); do
        if [ "$1" = FAIL ] && [ "$i" = "$done_checks" ]; then fail "${checks[$i]}" "$2"
        else skip "${checks[$i]}" "$2"; fi
    done
    exit $failed
}
# check FUNC: run the next check; FUNC prints its reason and returns 0 ok, 77 skip, else
# FAIL. A subshell, so `exit` in a helper ends only the check.
check() {
    local name=${checks[$done_checks]} out rc t0
    echo "== check $name"
    t0=$(now_ms)
    out=$("$1" 3>&- 4>&-); rc=$?
    echo "== $name: rc $rc in $(( $(now_ms) - t0 )) ms"
    out=${out##*$'\n'}   # the reason is the last line printed
    case $rc in
        0) ok "$name" ;;
        77) skip "$name" "$out" ;;
        *) fail "$name" "${out:-exit $rc}" ;;
    esac
    done_checks=$((done_checks + 1))
}
no() { echo "$*"; exit 1; }
not_here() { echo "$*"; exit 77; }

# One run at a time: runs share the cached tarballs and their build directory.
exec 9>"$cache/lock"
flock -n 9 || give_up FAIL "another packaging/test-container.sh holds $cache/lock"
[ "$(id -u)" = 0 ] || give_up skip "needs root (debootstrap, chroot, rootful podman)"

# --- host tools ---------------------------------------------------------------------
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
# kube play's pod infra container is a pause image podman builds from catatonit.
[ -x /usr/libexec/podman/catatonit ] || command -v catatonit >/dev/null || missing+=(catatonit)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } \
        || give_up FAIL "apt-get install ${missing[*]} failed (see $log)"
fi

# debian_mirror, remove_tree.
. packaging/rootfs-lib.sh

# What docker's bookworm-slim leaves out too: apt's downloads and lists, docs, man pages,
# translations.
slim() {
    rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/* \
        "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/*
}
pack() { tar --numeric-owner -C "$1" -cf "$2.part" . && mv "$2.part" "$2"; }

# --- cleanup: the containers, images and directories of this run --------------------
cleanup() {
    local c
    remove_tree "$root"
    command -v podman >/dev/null || return 0
    if [ -f "$work/kube/sup.yaml" ]; then
        echo "== podman kube down"
        podman logs "$ct_prefix-kube-pod-0-supd"
        CONTAINERS_CONF=$work/kube/containers.conf podman kube down "$work/kube/sup.yaml"
        podman volume rm -f "$ct_prefix-ecosystem"
    fi
    for c in $(podman ps -a --format '{{.Names}}' | grep "^$ct_prefix-"); do
        echo "== podman logs $c"
        podman logs "$c"
        podman rm -f -t 0 "$c"
    done
    for c in "$image" "$stack_image" "$base" "$runtimes"; do
        podman image exists "$c" && podman rmi -f "$c"
    done
    rm -rf "$work"
    echo "== run took $(( ($(now_ms) - started) / 1000 )) s"
}
trap cleanup EXIT
trap 'say "FAIL interrupted: by a signal"; exit 130' INT TERM HUP

# --- base rootfs tarballs (cached) --------------------------------------------------
if [ ! -f "$base_tar" ]; then
    remove_tree "$root"
    m=$(debian_mirror); m=${m:-http://deb.debian.org/debian}
    echo "debootstrap from $m"
    note "building the bookworm base with debootstrap from $m (1-2 min, cached after)"
    t=$(now_ms)
    debootstrap --variant=minbase bookworm "$root" "$m" \
        || give_up FAIL "debootstrap bookworm from $m failed (see $log)"
    slim "$root"
    pack "$root" "$base_tar" || give_up FAIL "cannot write $base_tar"
    echo "debootstrap took $(( ($(now_ms) - t) / 1000 )) s"
fi
if [ ! -f "$runtimes_tar" ]; then
    remove_tree "$root"
    mkdir -p "$root"
    tar --numeric-owner -C "$root" -xf "$base_tar" || give_up FAIL "cannot extract $base_tar"
    # The host's resolver, for apt in the chroot only (podman gives containers their own).
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    note "adding ${runtimes_pkgs[*]} to a copy of the base (cached after)"
    { chroot "$root" apt-get update \
        && DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y --no-install-recommends "${runtimes_pkgs[@]}"; } \
        || give_up FAIL "apt-get install ${runtimes_pkgs[*]} in the bookworm chroot failed (see $log)"
    rm -f "$root/etc/resolv.conf"
    slim "$root"
    pack "$root" "$runtimes_tar" || give_up FAIL "cannot write $runtimes_tar"
fi
remove_tree "$root"

# wait_for SECONDS CMD...: poll CMD until it succeeds; 1 once SECONDS passed first.
wait_for() {
    local end=$(( $(now_ms) + $1 * 1000 )); shift
    until "$@"; do
        [ "$(now_ms)" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# --- binaries and images ------------------------------------------------------------
mkdir -p "$work/bin"
cargo build --release --bin supd --bin supctl \
    || give_up FAIL "cargo build --release failed (see $log)"
# Stripped copies: the symbol tables the release profile keeps (strip = "debuginfo")
# are 0.8 MB of the two binaries' 5.7 MB.
for b in supd supctl; do
    strip -o "$work/bin/$b" "target/release/$b" 2>/dev/null || cp "target/release/$b" "$work/bin/$b"
done

{ podman import "$base_tar" "$base" && podman import "$runtimes_tar" "$runtimes"; } \
    || give_up FAIL "podman import of the base tarballs failed (see $log)"

# The flags every container needs here: crun 1.8 refuses hybrid cgroup hosts (runc
# does not), and podman's default ulimits need CAP_SYS_RESOURCE above the hard limits.
hard_nofile=$(ulimit -Hn)
run_flags=(--runtime runc --ulimit "nofile=$hard_nofile:$hard_nofile" --ulimit nproc=32768:32768)

# Can this machine run a container at all? If not, the kernel's or runtime's refusal is
# the reason for every container check.
if ! refusal=$(podman run --rm "${run_flags[@]}" "$base" true 2>&1); then
    reason=$(grep -v '^time=' <<<"$refusal" | tail -1)
    give_up skip "podman cannot run a container here: ${reason:-$refusal}"
fi

# --format docker: the OCI format has no HEALTHCHECK, buildah would drop it.
build() {   # build IMAGE BASE
    podman build --format docker -f packaging/Dockerfile --target prebuilt \
        --build-arg BASE="$2" --build-arg BIN_DIR="${work#"$PWD"/}/bin" -t "$1" .
}
t=$(now_ms)
if ! build "$image" "$base" || ! build "$stack_image" "$runtimes"; then
    give_up FAIL "podman build failed (see $log)"
fi
echo "images built in $(( $(now_ms) - t )) ms"
healthcheck=$(podman image inspect -f '{{json .Config.Healthcheck}}' "$image")
if ! grep -q '"supctl","health"' <<<"$healthcheck"; then
    give_up FAIL "the image has no HEALTHCHECK supctl health: $healthcheck"
fi
done_checks=1; ok "image builds"

size() { podman image inspect -f '{{.Size}}' "$1"; }
mb() { python3 -c "print('%.1f MB' % ($1 / 1e6))"; }
image_size=$(size "$image"); base_size=$(size "$base")
layer=$((image_size - base_size))
if [ "$layer" -lt 10000000 ]; then
    ok "runtime layer under 10 MB ($(mb "$layer") over a $(mb "$base_size") bookworm minbase;\
 image $(mb "$image_size"))"
else
    fail "runtime layer under 10 MB" "it is $(mb "$layer") over the base"
fi
done_checks=2

# --- containers ---------------------------------------------------------------------
# The image's default ecosystem with test apps appended: every [supervisor] and
# [defaults] setting stays the image's own.
ecosystem() {   # ecosystem NAME: writes $work/NAME.toml from stdin, prints its path
    { cat packaging/container/ecosystem.toml; echo; cat; } >"$work/$1.toml"
    chmod 0644 "$work/$1.toml"
    echo "$work/$1.toml"
}

start() {   # start NAME IMAGE [podman run args...] [-- supd args]: a detached container
    local name=$ct_prefix-$1 img=$2; shift 2
    local args=() cmd=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
    [ $# -gt 0 ] && shift && cmd=("$@")
    # The healthcheck's systemd timer cannot be made without systemd (podman logs an
    # error and goes on); the checks run `podman healthcheck run` themselves.
    podman run -d --name "$name" "${run_flags[@]}" "${args[@]}" "$img" "${cmd[@]}" >/dev/null
}
# The container's output; `podman logs` adds its own complaints about systemd timers.
ct_logs() { podman logs "$ct_prefix-$1" 2>&1 | grep -v '^time=".*level=error'; }
running() { [ "$(podman inspect -f '{{.State.Running}}' "$ct_prefix-$1" 2>/dev/null)" = true ]; }
answers() { podman exec "$ct_prefix-$1" supctl status >/dev/null 2>&1; }
# up NAME: supd answers on its socket (within 20 s), else why not.
up() {
    wait_for 20 answers "$1" && return 0
    running "$1" || no "the container exited: $(ct_logs "$1" | tail -1)"
    no "supctl status does not answer within 20 s: $(podman exec "$ct_prefix-$1" supctl status 2>&1 | tail -1)"
}
# status_rows NAME: one line per instance, "app:index state ready".
status_rows() {
    podman exec "$ct_prefix-$1" supctl --json status | python3 -c '
import json, sys
for a in json.load(sys.stdin)["apps"]:
    for i in a["instances"]:
        print("%s:%s %s %s" % (a["name"], i["index"], i["state"], i.get("ready")))'
}
all_online() { local r; r=$(status_rows "$1") && [ -n "$r" ] && ! grep -qv ' online True$' <<<"$r"; }
# Whole outputs are captured before grep reads them: with pipefail, `grep -q` leaving
# early would make the writer's SIGPIPE fail the pipeline.
logs_have() { local l; l=$(ct_logs "$1") && grep -qF -- "$2" <<<"$l"; }
healthy() { podman healthcheck run "$ct_prefix-$1" >/dev/null 2>&1; }

mkdir -p "$work"

# The image exactly as shipped: no arguments, no mounts.
start default "$image" || give_up FAIL "podman run of the image failed (see $log)"

# Shell-only apps for the image itself (sh and coreutils are all its base has).
apps_toml=$(ecosystem apps <<'EOF'
[[app]]
name = "hello"
cmd = ["sh", "-c", "echo 'hello: to stdout'; echo 'hello: to stderr' >&2; exec sleep infinity"]

# The subshell forks the orphan and exits at once, so the orphan's parent is gone: it
# belongs to PID 1 from then on, and PID 1 must reap it when it exits.
[[app]]
name = "orphan"
cmd = ["sh", "-c", '''
( sh -c 'sleep 0.5; while read -r k v; do [ "$k" = PPid: ] && echo "orphan pid=$$ ppid=$v"; done </proc/$$/status; sleep 0.5' & )
echo "orphan: its parent exited"
exec sleep infinity
''']

# Takes 3 s to stop on SIGTERM.
[[app]]
name = "slow"
cmd = ["sh", "-c", '''
trap 'echo "slow: SIGTERM, 3 s to clean up"; sleep 3; echo "slow: clean exit"; exit 0' TERM
echo "slow: up"
sleep infinity & wait
''']

# Ignores SIGTERM: only kill_timeout's SIGKILL stops it.
[[app]]
name = "stubborn"
cmd = ["sh", "-c", "trap '' TERM; echo 'stubborn: ignores SIGTERM'; exec sleep infinity"]
EOF
)
start apps "$image" -v "$apps_toml:/etc/sup/ecosystem.toml:ro" || give_up FAIL "podman run failed (see $log)"

never_toml=$(ecosystem never <<'EOF'
[[app]]
name = "never"
cmd = ["sh", "-c", "echo 'never: up, but never says the word'; exec sleep infinity"]
ready = { log = "this line is never printed", timeout = "1h" }
EOF
)
start never "$image" -v "$never_toml:/etc/sup/ecosystem.toml:ro" || give_up FAIL "podman run failed (see $log)"

# The repository's example ecosystem (node backend, python studio and jobs) in the image
# built over the base with node and python3, as a user would mount their app at /app.
mkdir -p "$work/stack"
cp -r ecosystem.toml examples "$work/stack/"
rm -rf "$work/stack/examples/jobs/spool" "$work/stack/logs" "$work/stack/run"
chown -R 10001:10001 "$work/stack"
start stack "$stack_image" -v "$work/stack:/app" -- -c /app/ecosystem.toml \
    || give_up FAIL "podman run failed (see $log)"

# --- checks -------------------------------------------------------------------------
pid1() {
    up default
    local cmdline pid
    cmdline=$(podman exec "$ct_prefix-default" cat /proc/1/cmdline | tr '\0' ' ')
    [ "$cmdline" = "supd -c /etc/sup/ecosystem.toml " ] || no "/proc/1/cmdline is '$cmdline'"
    pid=$(podman exec "$ct_prefix-default" supctl --json status \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["supervisor"]["pid"])') \
        || no "supctl --json status failed"
    [ "$pid" = 1 ] || no "supctl --json status says supervisor.pid $pid"
}
check pid1

stack_healthy() {
    up stack
    local out
    if ! wait_for 30 healthy stack; then
        out=$(podman exec "$ct_prefix-stack" supctl health 2>&1 | tr '\n' ' ')
        no "podman healthcheck run not healthy within 30 s: $out"
    fi
    out=$(podman healthcheck run "$ct_prefix-stack" 2>&1) || no "healthy once, then: $out"
    out=$(podman inspect -f '{{.State.Health.Status}}' "$ct_prefix-stack")
    [ "$out" = healthy ] || no "podman inspect says the health is '$out'"
    out=$(status_rows stack)
    grep -q '^backend:1 online True$' <<<"$out" || no "backend:1 is not online: $(tr '\n' ' ' <<<"$out")"
    # The default container (no app at all) is healthy too.
    up default
    healthy default || no "the image's default ecosystem is not healthy"
}
check stack_healthy

never_unhealthy() {
    up never
    local out why
    out=$(status_rows never)
    grep -q '^never:0 starting False$' <<<"$out" || no "never:0 is not starting: $(tr '\n' ' ' <<<"$out")"
    out=$(podman healthcheck run "$ct_prefix-never" 2>&1) && no "podman healthcheck run says '$out', exit 0"
    [ "$out" = unhealthy ] || no "podman healthcheck run printed '$out'"
    why=$(podman inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$ct_prefix-never")
    grep -q 'never:0' <<<"$why" || no "the health log does not name never:0: '$why'"
}
check never_unhealthy

supctl_status() {
    up apps
    wait_for 10 all_online apps || no "not every app online: $(status_rows apps | tr '\n' ' ')"
    local out who
    for who in sup root; do
        out=$(podman exec -u "$who" "$ct_prefix-apps" supctl status 2>&1) \
            || no "supctl status as $who failed: $out"
        grep -q '^APP ' <<<"$out" && grep -q '^stubborn .* online ' <<<"$out" \
            || no "supctl status as $who printed: $(tr '\n' ' ' <<<"$out")"
    done
}
check supctl_status

# "pid state" for every process in the container.
states() {
    podman exec "$ct_prefix-$1" sh -c 'for f in /proc/[0-9]*/stat; do read -r l <"$f" 2>/dev/null && echo "$l"; done' \
        | sed -E 's/^([0-9]+) \(.*\) ([A-Z]) .*/\1 \2/'
}
state_of() { states "$1" | awk -v p="$2" '$1 == p {print $2}'; }
orphan_gone() { [ -z "$(state_of apps "$1")" ]; }
orphan() {
    up apps
    local line pid zombies
    wait_for 10 logs_have apps "orphan pid=" || no "the orphan never reported (podman logs)"
    line=$(ct_logs apps)
    line=$(grep -m1 -o 'orphan pid=[0-9]* ppid=[0-9]*' <<<"$line")
    pid=${line#orphan pid=}; pid=${pid%% *}
    [ "${line##*ppid=}" = 1 ] || no "the orphan was not reparented to PID 1: $line"
    if ! wait_for 10 orphan_gone "$pid"; then
        no "the orphan $pid is still there 10 s on, state $(state_of apps "$pid")"
    fi
    zombies=$(states apps | awk '$2 == "Z"' | tr '\n' ' ')
    [ -z "$zombies" ] || no "zombies in the container: $zombies"
}
check orphan

stop_clean() {
    up apps
    wait_for 10 all_online apps || no "not every app online: $(status_rows apps | tr '\n' ' ')"
    local c=$ct_prefix-apps timeout t0 ms code
    timeout=$(podman inspect -f '{{.Config.StopTimeout}}' "$c")
    # A containers.conf may change podman's default; this check is about the usual 10 s.
    [ "$timeout" = 10 ] || not_here "podman's stop_timeout here is ${timeout} s (containers.conf), not the default 10 s"
    t0=$(now_ms)
    podman stop "$c" >/dev/null || no "podman stop failed"
    ms=$(( $(now_ms) - t0 ))
    code=$(podman inspect -f '{{.State.ExitCode}}' "$c")
    [ "$code" = 0 ] || no "exit code $code after ${ms} ms: $(ct_logs apps | tail -1)"
    logs_have apps "slow: clean exit" || no "slow never finished its SIGTERM cleanup"
    [ "$ms" -lt 10000 ] || no "podman stop took $ms ms"
    # The image's defaults fit stop's 10 s, so supd has nothing to warn about.
    ! logs_have apps "a shutdown may take" || no "supd warns: $(ct_logs apps | grep -m1 'a shutdown may take')"
    echo "stopped in $ms ms"
}
check stop_clean

app_logs() {
    # The apps container has stopped; its logs stay.
    local want
    for want in "hello:0 out | hello: to stdout" "hello:0 err | hello: to stderr" \
        "orphan:0 out | orphan: its parent exited"; do
        logs_have apps "$want" || no "podman logs lacks '$want'"
    done
    # supd's own diagnostics go there too.
    logs_have apps "INFO supd" || no "podman logs lacks supd's start line"
}
check app_logs

non_root() {
    up default
    local c=$ct_prefix-default uid status uids
    uid=$(podman exec "$c" id -u)
    [[ $uid =~ ^[0-9]+$ && $uid != 0 ]] || no "podman exec id -u says '$uid'"
    [ "$(podman exec "$c" id -un)" = sup ] || no "podman exec runs as $(podman exec "$c" id -un), not sup"
    status=$(podman exec "$c" grep '^Uid:' /proc/1/status)
    awk '{ for (i = 2; i <= 5; i++) if ($i == 0) exit 1 }' <<<"$status" || no "supd runs as root: $status"
    # Every process of the example stack: supd, node, python and their children.
    up stack
    uids=$(podman exec "$ct_prefix-stack" sh -c \
        'for f in /proc/[0-9]*/status; do grep -H "^Uid:" "$f"; done 2>/dev/null')
    [ "$(grep -c . <<<"$uids")" -ge 6 ] || no "too few processes seen: $uids"
    uids=$(awk '$2 == 0 || $3 == 0' <<<"$uids" | tr '\n' ' ')
    [ -z "$uids" ] || no "processes as root: $uids"
}
check non_root

# packaging/k8s as `kubectl apply` would run it, but with podman: its ConfigMap, the
# image's user by number, a read-only root with emptyDirs, no capabilities, /readyz.
kube_example() {
    local k=$work/kube c=kube-pod-0-supd out
    mkdir -p "$k"
    {
        printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-ecosystem\ndata:\n  ecosystem.toml: |\n' "$ct_prefix"
        sed 's/^/    /' packaging/k8s/ecosystem.toml
    } >"$k/configmap.yaml"
    # This run's names and image; one replica and no ports: kube play publishes each
    # containerPort on the host.
    sed -e "s|^  name: sup-example\$|  name: $ct_prefix-kube|" -e "s|image: sup:latest|image: $stack_image|" \
        -e "s|name: sup-ecosystem\$|name: $ct_prefix-ecosystem|" -e 's|replicas: 2|replicas: 1|' \
        packaging/k8s/sup.yaml | awk '/^          ports:$/ { skip = 1; next } skip && /^            / { next } { skip = 0; print }' \
        >"$k/sup.yaml"
    grep -q "image: $stack_image" "$k/sup.yaml" && grep -q "name: $ct_prefix-kube" "$k/sup.yaml" \
        || no "packaging/k8s/sup.yaml no longer has the image and name this check rewrites"
    # kube play takes no --ulimit nor --runtime: a containers.conf gives them.
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=32768:32768"]\n[engine]\nruntime = "runc"\n' \
        "$hard_nofile" "$hard_nofile" >"$k/containers.conf"
    out=$(CONTAINERS_CONF=$k/containers.conf podman kube play --configmap "$k/configmap.yaml" "$k/sup.yaml" 2>&1) \
        || no "podman kube play failed: $(grep -v '^time=' <<<"$out" | tail -1)"
    up "$c"
    wait_for 20 all_online "$c" || no "web is not online: $(status_rows "$c" | tr '\n' ' ')"
    out=$(podman exec "$ct_prefix-$c" grep -E '^(Uid|CapEff):' /proc/1/status | tr -s '\t\n' '  ')
    [[ $out == "Uid: 10001 10001 10001 10001 CapEff: 0000000000000000 " ]] || no "supd's /proc/1/status: $out"
    podman exec "$ct_prefix-$c" sh -c ': >/probe' 2>/dev/null && no "the root file system is writable"
    out=$(podman exec "$ct_prefix-$c" python3 -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.1:9615/readyz").status)' 2>&1)
    [ "$out" = 200 ] || no "/readyz answered: $out"
    out=$(podman exec "$ct_prefix-$c" supctl status 2>&1) || no "supctl status failed: $out"
    grep -q '^web .* online ' <<<"$out" || no "supctl status: $(tr '\n' ' ' <<<"$out")"
}
check kube_example

echo "== $(( ($(now_ms) - started) / 1000 )) s in all"
exit $failed
