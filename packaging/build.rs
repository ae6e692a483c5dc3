//! Link options for the shipped binaries (the library and tests are built as usual).
//!
//! - Packed relative relocations (DT_RELR, glibc >= 2.36): supd's relocation table shrinks
//!   from ~250 KiB, read at every start and resident after it, to a few KiB.
//! - supd's functions in the order of `packaging/supd.order` (the functions a supervisor
//!   runs: start, idle, status, restarts, logs, shutdown), so the code it runs sits in a
//!   few contiguous pages instead of being spread over all of `.text`. The kernel maps
//!   code in 64 KiB windows around each page touched: unordered, nearly all of supd's
//!   2 MiB of code ended up resident; ordered, under 1 MiB. `packaging/order-symbols.sh`
//!   regenerates the file. A name that no longer exists is skipped, so a stale file costs
//!   memory, never correctness.
//!
//! Both need a linker that knows them: only on x86_64 Linux with the toolchain's own
//! `rust-lld` (the default since Rust 1.90), unless another linker was configured.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=packaging/supd.order");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    if !uses_rust_lld() {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    if env::var("PROFILE").as_deref() == Ok("release") {
        let order = format!(
            "{}/packaging/supd.order",
            env::var("CARGO_MANIFEST_DIR").unwrap_or_default()
        );
        println!("cargo:rustc-link-arg-bin=supd=-Wl,--symbol-ordering-file={order}");
        println!("cargo:rustc-link-arg-bin=supd=-Wl,--no-warn-symbol-ordering");
    }
}

/// The target is x86_64 Linux (glibc), no linker is configured, and rustc is 1.90 or
/// later, which links there with its own lld.
fn uses_rust_lld() -> bool {
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
        || env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("link"))
    {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-vV").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let minor = text
        .lines()
        .find_map(|l| l.strip_prefix("release: "))
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
