# Helpers shared by packaging/test-systemd.sh and packaging/test-container.sh, which
# both debootstrap a Debian rootfs: sourced, not run.

# The Debian mirror this machine already uses (one-line or deb822 sources), for debootstrap.
debian_mirror() {
    python3 - /etc/apt/sources.list /etc/apt/sources.list.d/* <<'EOF' 2>/dev/null
import sys, re
for path in sys.argv[1:]:
    try:
        text = open(path).read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            f = {}
            for line in stanza.splitlines():
                m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
                if m and not line.startswith("#"):
                    f[m.group(1).lower()] = m.group(2).split()
            if "deb" in f.get("types", []) and "bookworm" in f.get("suites", []) \
                    and f.get("enabled", ["yes"])[0] != "no" and f.get("uris"):
                print(f["uris"][0]); sys.exit()
    else:
        for line in text.splitlines():
            w = re.sub(r"\[[^]]*\]", " ", line.split("#")[0]).split()
            if len(w) >= 3 and w[0] == "deb" and w[2] == "bookworm":
                print(w[1]); sys.exit()
EOF
}

# Mounts left under DIR (by an interrupted debootstrap) would make rm -rf reach the host.
unmount_under() {
    local dir mnt
    dir=$(realpath -m "$1")
    awk '{print $2}' /proc/self/mounts | grep -E "^$dir(/|$)" | sort -r | while read -r mnt; do
        umount -l "$mnt"
    done
}
remove_tree() { [ -e "$1" ] || return 0; unmount_under "$1"; rm -rf --one-file-system "$1"; }
