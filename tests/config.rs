//! Config errors through the real binary: every error with file:line:col, exit 2, and
//! nothing started; `--check` on the contract samples and the example ecosystem.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn check(path: &Path) -> std::process::Output {
    Command::new(SUPD)
        .args(["--check", "-c"])
        .arg(path)
        .output()
        .expect("run supd --check")
}

#[test]
fn a_bad_file_reports_every_error_and_starts_nothing() {
    let sb = Sandbox::new();
    let cfg = sb.config(
        "[[app]]\nname = \"a\"\ncmd = [\"sleep\", \"9\"]\nkill_timout = \"5s\"\n\n[[app]]\nname = \"a\"\ncmd = []\ninstances = 0\nstop_signal = \"SIGFOO\"\n",
    );
    let mut d = sb.spawn_supd(&["-c", cfg.to_str().expect("utf-8")]);
    assert_eq!(d.wait_exit(std::time::Duration::from_secs(10)), Some(2));
    let err = d.stderr_text();
    let file = cfg.display().to_string();
    for needle in [
        format!("{file}:9:1: unknown field `kill_timout`, did you mean `kill_timeout`?"),
        "duplicate".to_string(),
        "cmd".to_string(),
        "instances".to_string(),
        "SIGFOO".to_string(),
    ] {
        assert!(err.contains(&needle), "missing `{needle}` in:\n{err}");
    }
    assert!(!sb.socket().exists(), "nothing started");
    assert!(!sb.dir.join("logs").exists(), "nothing started");
}

#[test]
fn check_prints_a_summary() {
    let sb = Sandbox::new();
    let cfg = sb.config(&kit_app("a", &["sleep"], "instances = 3"));
    let out = check(&cfg);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok: 1 app, 3 instances"
    );
    let bad = sb.write("bad.toml", "[[app]\n");
    let out = check(&bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:1:", bad.display())));
}

#[test]
fn a_file_that_is_not_utf8_is_reported_at_its_first_bad_byte() {
    let sb = Sandbox::new();
    let cfg = sb.dir.join("binary.toml");
    std::fs::write(&cfg, b"[[app]]\nname = \"w\xc3\xa9b\xff\"\n\x00\x01").expect("write");
    let out = check(&cfg);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().next(),
        Some(format!("{}:2:12: not UTF-8", cfg.display()).as_str()),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn env_files_are_read_and_their_bad_lines_located() {
    let sb = Sandbox::new();
    sb.write("good.env", "# app settings\nexport PORT=3000\n");
    let bad = sb.write("bad.env", "OK=1\nNAME = \"x\\qy\"\n");
    let cfg = sb.config(&kit_app("a", &["sleep"], "env_file = [\"good.env\"]"));
    let out = check(&cfg);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let cfg = sb.config(&kit_app(
        "a",
        &["sleep"],
        "env_file = [\"good.env\", \"bad.env\", \"none.env\"]",
    ));
    let out = check(&cfg);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        format!(
            "cannot read env file `{}`: No such file",
            sb.dir.join("none.env").display()
        ),
        format!("{}:2:10: unknown escape `\\q`", bad.display()),
    ] {
        assert!(err.contains(&needle), "missing `{needle}` in:\n{err}");
    }
}

#[test]
fn the_contract_samples_of_built_capabilities_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/contract");
    if !dir.exists() {
        eprintln!(
            "skipped: no contract samples beside the repository ({})",
            dir.display()
        );
        return;
    }
    for (name, summary) in [
        ("foundation.toml", "ok: 3 apps"),
        ("logs.toml", "ok: 3 apps"),
        ("watch.toml", "ok: 5 apps"),
        ("live.toml", "ok: 1 app, 4 instances"),
    ] {
        let out = check(&dir.join(name));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(summary));
    }
}

#[test]
fn the_example_ecosystem_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = check(&root.join("ecosystem.toml"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok: 3 apps, 5 instances"
    );
    let out = Command::new(SUPD)
        .args(["--check", "--profile", "production", "-c"])
        .arg(root.join("ecosystem.toml"))
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok: 3 apps, 7 instances"
    );
}
