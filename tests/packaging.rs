//! The packaging agrees with supd: the Debian package's files exist and land where the
//! systemd unit looks for them, the unit is valid (`systemd-analyze verify` where it is
//! installed), and the configs shipped for the package and for Kubernetes pass `--check`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `supd --check -c PATH`: its stdout, which must say ok.
fn checks(path: &Path) -> String {
    let out = Command::new(SUPD)
        .args(["--check", "-c"])
        .arg(path)
        .output()
        .expect("run supd --check");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `Key=value` of the unit file, for each key (the last one written wins, as in systemd).
fn unit_value<'u>(unit: &'u str, key: &str) -> Option<&'u str> {
    unit.lines()
        .rev()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

fn seconds(text: &str) -> u64 {
    text.trim_end_matches('s').parse().expect("whole seconds")
}

#[test]
fn the_shipped_configs_pass_check() {
    assert_eq!(
        checks(&repo().join("packaging/etc/ecosystem.toml")).trim(),
        "ok: 0 apps, 0 instances"
    );
    assert!(checks(&repo().join("packaging/k8s/ecosystem.toml")).starts_with("ok: 1 app"));
}

#[test]
fn the_systemd_unit_fits_supd() {
    let unit = read("packaging/systemd/supd.service");
    // supd sends READY=1 itself (tested in probes.rs) and stops its apps itself.
    assert_eq!(unit_value(&unit, "Type"), Some("notify"));
    assert_eq!(unit_value(&unit, "NotifyAccess"), Some("main"));
    assert_eq!(unit_value(&unit, "KillMode"), Some("mixed"));
    // The pages the package installs.
    assert_eq!(
        unit_value(&unit, "Documentation"),
        Some("man:supd(8) man:supctl(1) man:ecosystem.toml(5)")
    );
    assert_eq!(
        unit_value(&unit, "ExecStart"),
        Some("/usr/bin/supd -c /etc/sup/ecosystem.toml")
    );
    assert_eq!(
        unit_value(&unit, "ExecReload"),
        Some("/usr/bin/supctl apply"),
        "`systemctl reload` applies the file and fails on a bad one"
    );
    assert_eq!(
        unit_value(&unit, "RuntimeDirectory"),
        Some("sup"),
        "/run/sup: the socket"
    );
    let stop = seconds(unit_value(&unit, "TimeoutStopSec").expect("TimeoutStopSec"));
    let shutdown = sup::config::validate::DEFAULT_SHUTDOWN_TIMEOUT;
    assert!(
        Duration::from_secs(stop) > shutdown,
        "systemd must wait longer than supd's own shutdown_timeout"
    );
    match which("systemd-analyze") {
        Some(analyze) => {
            // verify wants the program to exist: point it at the binary under test.
            let sb = Sandbox::new();
            // Its man pages are the package's, not installed here.
            let unit: String = unit
                .replace("/usr/bin/supctl", SUPCTL)
                .replace("/usr/bin/supd", SUPD)
                .lines()
                .filter(|l| !l.starts_with("Documentation="))
                .map(|l| format!("{l}\n"))
                .collect();
            let copy = sb.write("supd.service", &unit);
            let out = Command::new(analyze)
                .arg("verify")
                .arg(&copy)
                .output()
                .expect("run systemd-analyze");
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "systemd-analyze verify: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        None => eprintln!("systemd-analyze not installed: the unit was checked by key only"),
    }
}

#[test]
fn the_debian_package_installs_what_the_unit_runs() {
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().expect("assets");
    let mut installed = Vec::new();
    for asset in assets {
        let asset = asset.as_array().expect("[source, destination, mode]");
        let (source, dest) = (
            asset[0].as_str().expect("source"),
            asset[1].as_str().expect("destination"),
        );
        // What is built (binaries, man pages, completions) exists only after a build.
        if !source.starts_with("target/") {
            assert!(repo().join(source).is_file(), "{source} is missing");
        }
        let name = Path::new(source).file_name().expect("file name");
        installed.push(if dest.ends_with('/') {
            format!("/{dest}{}", name.to_string_lossy())
        } else {
            format!("/{dest}")
        });
    }
    for needed in [
        "/usr/bin/supd",
        "/usr/bin/supctl",
        "/etc/sup/ecosystem.toml",
    ] {
        assert!(
            installed.iter().any(|i| i == needed),
            "{needed} not in {installed:?}"
        );
    }
    let conf = deb["conf-files"].as_array().expect("conf-files");
    assert_eq!(conf[0].as_str(), Some("/etc/sup/ecosystem.toml"));
    let units = &deb["systemd-units"];
    let dir = units["unit-scripts"].as_str().expect("unit-scripts");
    let name = units["unit-name"].as_str().expect("unit-name");
    assert!(repo().join(dir).join(format!("{name}.service")).is_file());
    let scripts = deb["maintainer-scripts"]
        .as_str()
        .expect("maintainer-scripts");
    for script in ["postinst", "prerm", "postrm"] {
        let text = read(&format!("{scripts}{script}"));
        assert!(
            text.contains("#DEBHELPER#"),
            "{script} needs the #DEBHELPER# token"
        );
    }
}

#[test]
fn the_container_and_kubernetes_files_use_supd_as_documented() {
    let dockerfile = read("packaging/Dockerfile");
    assert!(dockerfile.contains(r#"ENTRYPOINT ["supd"]"#));
    assert!(dockerfile.contains(r#"CMD ["supctl", "health"]"#));
    let manifest = read("packaging/k8s/sup.yaml");
    let ecosystem = read("packaging/k8s/ecosystem.toml");
    assert!(ecosystem.contains("http = \"0.0.0.0:9615\""));
    for needed in [
        "path: /healthz",
        "path: /readyz",
        "containerPort: 9615",
        "prometheus.io/port: \"9615\"",
        "imagePullPolicy: IfNotPresent",
    ] {
        assert!(manifest.contains(needed), "sup.yaml lacks `{needed}`");
    }
    let grace = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds: "))
        .map(|s| s.parse::<u64>().expect("seconds"))
        .expect("terminationGracePeriodSeconds");
    let shutdown = ecosystem
        .lines()
        .find_map(|l| l.strip_prefix("shutdown_timeout = \""))
        .and_then(|s| s.split('"').next())
        .map(seconds)
        .expect("shutdown_timeout");
    assert!(grace > shutdown, "the pod must outwait supd's shutdown");
}
