#!/usr/bin/env bash
# Build the Debian package with cargo-deb and check what it holds: the binaries, the
# default config as a conffile, the systemd unit, and maintainer scripts that enable and
# start supd.service. Installs cargo-deb first if it is missing.
#
#   packaging/check-deb.sh            # prints the path of the checked .deb
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked --quiet
fi
deb=$(cargo deb 2>/dev/null | tail -1)
[ -f "$deb" ] || { echo "check-deb: cargo deb built nothing" >&2; exit 1; }

fail() { echo "check-deb: $*" >&2; exit 1; }
contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/supd ./usr/bin/supctl ./etc/sup/ecosystem.toml \
    ./usr/lib/systemd/system/supd.service ./usr/share/doc/sup/README.md; do
    grep -q " $path\$" <<<"$contents" || fail "$path is not in the package"
done
control=$(mktemp -d)
trap 'rm -rf "$control"' EXIT
dpkg-deb -e "$deb" "$control"
grep -qx /etc/sup/ecosystem.toml "$control/conffiles" || fail "/etc/sup/ecosystem.toml is not a conffile"
grep -q "deb-systemd-helper enable supd.service" "$control/postinst" || fail "postinst does not enable supd.service"
grep -q "deb-systemd-invoke .* supd.service" "$control/postinst" || fail "postinst does not start supd.service"
grep -q "deb-systemd-invoke stop supd.service" "$control/prerm" || fail "prerm does not stop supd.service"
# An upgrade keeps the apps: supd is neither stopped nor restarted, it re-executes itself.
grep -q "deb-systemd-invoke restart" "$control/postinst" && fail "postinst restarts supd.service on upgrade"
grep -q '"\$1" = remove' "$control/prerm" || fail "prerm stops supd.service on upgrade, not only on remove"
grep -q "supctl --socket /run/sup/supd.sock reexec" "$control/postinst" || fail "postinst does not re-execute supd on upgrade"
# The packaged binary runs and accepts the packaged config.
dpkg-deb -x "$deb" "$control/root"
"$control/root/usr/bin/supd" --check -c "$control/root/etc/sup/ecosystem.toml" >/dev/null \
    || fail "the packaged supd rejects the packaged config"
# The function layout of packaging/supd.order still matches the built supd (a warning).
packaging/order-symbols.sh --check target/release/supd >&2
echo "$deb"
