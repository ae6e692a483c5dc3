#!/usr/bin/env bash
# Build supd and supctl as static binaries (x86_64-unknown-linux-musl): no libc needed on
# the host, for `FROM scratch` images and old distributions. Adds the target with rustup
# if it is missing. Prints each binary's path and size.
#
#   packaging/build-static.sh          # -> target/static/supd, target/static/supctl
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    rustup target add "$target"
fi
cargo build --release --locked --target "$target" --bin supd --bin supctl
mkdir -p target/static
for bin in supd supctl; do
    cp "target/$target/release/$bin" "target/static/$bin"
    strip "target/static/$bin"
    # A dynamically linked binary names its loader (the ELF interpreter).
    ! readelf -l "target/static/$bin" | grep -q "program interpreter" || {
        echo "build-static: target/static/$bin is not statically linked" >&2
        exit 1
    }
    echo "target/static/$bin $(stat -c %s "target/static/$bin") bytes"
done
