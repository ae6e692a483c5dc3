//! supd as PID 1 of a new PID namespace, as in a container: it reaps every orphan, no
//! zombie accumulates, SIGTERM stops everything and the exit code is supd's.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// Processes in `/proc` whose parent is `ppid`: (pid, state).
fn children(ppid: i32) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("").to_string();
        if f.next().and_then(|p| p.parse().ok()) == Some(ppid) {
            out.push((pid, state));
        }
    }
    out
}

/// Every descendant of `root`: (pid, state).
fn descendants(root: i32) -> Vec<(i32, String)> {
    let mut all = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for (c, s) in children(p) {
            todo.push(c);
            all.push((c, s));
        }
    }
    all
}

/// Kills `unshare` if the test fails half-way; `--kill-child` then takes supd down, and
/// with it the whole namespace.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn as_pid_1_supd_reaps_orphans_and_exits_cleanly() {
    let probe = Command::new("unshare")
        .args(["--fork", "--pid", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status();
    if !matches!(probe, Ok(s) if s.success()) {
        eprintln!("skipped: the kernel (or missing privileges) refuses a new PID namespace for `unshare --fork --pid --mount-proc`");
        return;
    }
    let sb = Sandbox::new();
    // As PID 1 the default log target is stdout; this test reads the log files.
    let apps = [
        kit_app(
            "orphans",
            &["orphan"],
            "restart = \"never\"\nlog_target = \"file\"",
        ),
        kit_app(
            "zombies",
            &["zombies", "5"],
            "log_target = \"file\"\nkill_timeout = \"12s\"",
        ),
    ]
    .concat();
    let cfg = sb.config(&apps);
    // Longer than `docker stop` waits: supd warns at start.
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text = text.replace("shutdown_timeout = \"10s\"", "shutdown_timeout = \"20s\"");
    std::fs::write(&cfg, text).expect("config");
    let stderr = std::fs::File::create(sb.dir.join("supd.err")).expect("stderr");
    let mut unshare = Guard(
        Command::new("unshare")
            .args(["--fork", "--pid", "--mount-proc", "--kill-child"])
            .arg(SUPD)
            .arg("-c")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("unshare"),
    );
    let unshare_pid = unshare.0.id() as i32;
    let supd = wait_until(Duration::from_secs(10), "supd under unshare", || {
        children(unshare_pid).first().map(|(p, _)| *p)
    });
    let status = wait_until(Duration::from_secs(10), "supd to answer", || {
        let out = supctl(&sb.socket(), &["--json", "status"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json"))
    });
    assert_eq!(
        status["supervisor"]["pid"], 1,
        "supd is PID 1 in its namespace"
    );

    // The orphan's parent exited at once: the orphan, re-parented to supd, is stopped with
    // the rest of its group and reaped by supd; then the run counts as finished.
    sb.wait_log("orphans", "testkit: orphan");
    wait_until(Duration::from_secs(10), "the orphans app to finish", || {
        let out = supctl(&sb.socket(), &["--json", "status", "orphans"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["apps"][0]["instances"][0]["state"] == "exited").then_some(())
    });
    // The zombie maker's 5 children are zombies until it dies; then supd reaps them.
    sb.wait_log("zombies", "zombies-made");
    let out = supctl(&sb.socket(), &["stop", "zombies"]);
    assert!(out.status.success(), "{out:?}");
    wait_until(
        Duration::from_secs(10),
        "no zombie left in the namespace",
        || (!descendants(supd).iter().any(|(_, s)| s == "Z")).then_some(()),
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supd),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let code = wait_until(Duration::from_secs(15), "supd (PID 1) to exit", || {
        unshare.0.try_wait().expect("try_wait")
    });
    let err = std::fs::read_to_string(sb.dir.join("supd.err")).unwrap_or_default();
    assert_eq!(code.code(), Some(0), "{err}");
    assert!(err.contains("as PID 1, a shutdown may take 12s"), "{err}");
    assert!(
        descendants(unshare_pid).is_empty(),
        "everything in the namespace is gone"
    );
}
