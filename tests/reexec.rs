//! Re-exec in place (`supctl reexec`, SIGUSR2): the same supd pid, every app process,
//! counter, log line and request kept; a binary replaced by rename is the one executed;
//! a binary that cannot run changes nothing; timers still act afterwards.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::load::*;
use crate::support::*;

/// A copy of supd in the sandbox, which a test may replace or break.
fn own_supd(sb: &Sandbox) -> PathBuf {
    let bin = sb.dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let path = bin.join("supd");
    std::fs::copy(SUPD, &path).expect("copy supd");
    path
}

/// Start the supd at `binary` on `config`, waiting until it answers.
fn start_binary(sb: &Sandbox, binary: &Path, config: &Path) -> Daemon {
    let d = sb.spawn_binary(binary, &["-c", config.to_str().expect("utf-8")], &[]);
    wait_until(Duration::from_secs(10), "supd to answer", || {
        d.assert_running();
        d.supctl(&["status"]).status.success().then_some(())
    });
    d
}

/// (app, index, pid, restarts) of every instance.
fn processes(d: &Daemon) -> Vec<(String, u64, i64, u64)> {
    let status = d.json(&["status"]);
    let mut all = Vec::new();
    for app in status["apps"].as_array().expect("apps") {
        for i in app["instances"].as_array().expect("instances") {
            all.push((
                app["name"].as_str().unwrap_or("").to_string(),
                i["index"].as_u64().unwrap_or(0),
                i["pid"].as_i64().unwrap_or(-1),
                i["restarts"].as_u64().unwrap_or(0),
            ));
        }
    }
    all
}

/// `supctl status` in a loop until stopped; returns the failures.
fn status_loop(socket: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut failed = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let out = supctl(&socket, &["--json", "status"]);
            if !out.status.success() {
                failed.push(String::from_utf8_lossy(&out.stderr).into_owned());
            }
        }
        failed
    })
}

/// `supctl reexec`, again while the binary is busy: a file just written may still be open
/// for writing in a child another test thread forked, until that child execs.
fn reexec(d: &Daemon) -> std::process::Output {
    wait_until(Duration::from_secs(5), "a binary not busy", || {
        let out = d.supctl(&["reexec"]);
        let busy = String::from_utf8_lossy(&out.stderr).contains("Text file busy");
        (!busy).then_some(out)
    })
}

fn exe_of(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn reexec_keeps_every_process_line_and_request() {
    let sb = Sandbox::new();
    let port = free_port();
    let lines = 3_000_000;
    let config = sb.config(&format!(
        "{}{}",
        web(port, 2, ""),
        kit_app(
            "spam",
            &["spam-lines", &lines.to_string(), "40"],
            "restart = \"never\""
        )
    ));
    let binary = own_supd(&sb);
    let d = start_binary(&sb, &binary, &config);
    for i in 0..2 {
        d.wait_instance("web", i, "ready", |r| r["ready"] == true);
    }
    let before = processes(&d);
    let load = Load::start(port);
    let stop = Arc::new(AtomicBool::new(false));
    let statuses: Vec<_> = (0..2)
        .map(|_| status_loop(sb.socket(), stop.clone()))
        .collect();

    // 1: supctl reexec; its answer comes from the new supd.
    let out = d.json(&["reexec"]);
    assert_eq!(out["pid"], d.pid(), "{out}");
    assert_eq!(out["to"], env!("CARGO_PKG_VERSION"), "{out}");
    // 2: SIGUSR2 does the same.
    d.signal(nix::sys::signal::Signal::SIGUSR2);
    d.wait_stderr("took over from supd");
    // 3: a new binary renamed over the old one is the one executed.
    let fresh = binary.with_file_name("supd.new");
    std::fs::copy(SUPD, &fresh).expect("copy");
    std::fs::rename(&fresh, &binary).expect("rename");
    assert!(
        exe_of(d.pid()).ends_with(" (deleted)"),
        "{}",
        exe_of(d.pid())
    );
    let out = reexec(&d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(exe_of(d.pid()), binary.display().to_string());

    load.finish_all_answered();
    stop.store(true, Ordering::Relaxed);
    let status_failures: Vec<String> = statuses
        .into_iter()
        .flat_map(|t| t.join().expect("status thread"))
        .collect();
    assert!(
        status_failures.is_empty(),
        "status failed: {status_failures:?}"
    );
    d.assert_running();
    // The same processes, no restart.
    // The same processes, no restart; the spammer still writing, so every exec above
    // happened in the middle of its stream.
    let after = processes(&d);
    assert_eq!(before, after);

    // Every numbered line exactly once, in order.
    sb.wait_log_end("spam", "spam-done", Duration::from_secs(60));
    let log = sb.read_log("spam");
    let numbers: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split(" | ").nth(1))
        .filter_map(|m| m.strip_prefix('L'))
        .map(|n| n[..9].parse().expect("a line number"))
        .collect();
    assert_eq!(numbers.len(), lines, "lines in the log");
    assert!(
        numbers.iter().zip(1..).all(|(&n, i)| n == i),
        "lines out of order or repeated"
    );
    let over = sb.read_log("spam");
    assert!(!over.contains(" + "), "a line was split");
}

#[test]
fn a_binary_that_cannot_run_changes_nothing() {
    let sb = Sandbox::new();
    let config = sb.config(&kit_app("app", &["sleep"], ""));
    let binary = own_supd(&sb);
    let d = start_binary(&sb, &binary, &config);
    let row = d.wait_instance("app", 0, "online", |r| r["state"] == "online");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = d.supctl(&["reexec"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&binary.display().to_string()) && err.contains("denied"),
        "{err}"
    );
    std::fs::remove_file(&binary).expect("rm");
    let out = d.supctl(&["reexec"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = d.instance("app", 0);
    assert_eq!(again["pid"], row["pid"]);
    assert_eq!(again["restarts"], 0);
    d.assert_running();
}

#[test]
fn timers_still_act_after_a_reexec() {
    let sb = Sandbox::new();
    let config = sb.config(&format!(
        "{}{}{}",
        kit_app(
            "crashy",
            &["crash", "1", "0"],
            "restart_delay = \"1500ms\"\nmin_uptime = \"0ms\""
        ),
        kit_app("cronned", &["sleep"], "cron_restart = \"* * * * * *\""),
        kit_app(
            "hungry",
            &["alloc", "16", "50"],
            "max_memory = \"64M\"\nmemory_interval = \"100ms\"\nrestart_delay = \"0ms\""
        ),
    ));
    let d = sb.start(&config);
    d.wait_instance("crashy", 0, "backoff", |r| r["state"] == "backoff");
    let count = |app: &str| d.instance(app, 0)["restarts"].as_u64().unwrap_or(0);
    let crashy = count("crashy");
    let out = d.supctl(&["reexec"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The backoff armed before the exec ends after it.
    d.wait_instance("crashy", 0, "a restart after the backoff", |r| {
        r["restarts"].as_u64().unwrap_or(0) > crashy
    });
    let cron = count("cronned");
    let memory = count("hungry");
    d.wait_instance("cronned", 0, "a cron restart", |r| {
        r["restarts"].as_u64().unwrap_or(0) > cron && r["last_reason"] == "cron"
    });
    d.wait_instance("hungry", 0, "a memory restart", |r| {
        r["restarts"].as_u64().unwrap_or(0) > memory && r["last_reason"] == "memory"
    });
    let _: Value = d.json(&["status"]);
}

#[test]
fn a_supd_killed_outright_leaves_nothing_for_the_next_one() {
    let sb = Sandbox::new();
    let config = sb.config(&kit_app(
        "tree",
        &["fork-tree", "2"],
        "kill_timeout = \"500ms\"",
    ));
    // No request reaches this supd before it is killed: the state file is written at
    // start, not on the loop's first event.
    let mut d = sb.spawn_supd(&["-c", config.to_str().expect("utf-8")]);
    let members = wait_until(Duration::from_secs(10), "5 tree members", || {
        let pids = sb.pids("tree", "tree-member");
        (pids.len() == 5).then_some(pids)
    });
    wait_until(Duration::from_secs(10), "the state file", || {
        let text = std::fs::read_to_string(sb.dir.join("s.state")).ok()?;
        text.contains("tree:0").then_some(())
    });
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(5));
    // The leader dies with supd; its children live on, orphans.
    let survivors: Vec<i32> = members.iter().copied().filter(|&p| !gone(p)).collect();
    assert!(!survivors.is_empty(), "no orphan to clear: {members:?}");

    let d = sb.start(&config);
    d.wait_stderr("processes left by supd pid");
    // Dead: gone, or a zombie waiting for whoever adopted the orphans to reap it.
    let dead = |pid: i32| {
        gone(pid)
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rfind(')')
                        .map(|i| s[i + 1..].trim_start().starts_with('Z'))
                })
                .unwrap_or(true)
    };
    for pid in &survivors {
        assert!(
            dead(*pid),
            "pid {pid} of the killed supd's instance is still there"
        );
    }
    let row = d.wait_instance("tree", 0, "online", |r| r["state"] == "online");
    assert!(!members.contains(&(row["pid"].as_i64().unwrap_or(0) as i32)));
}

/// A binary that gives supd a handover document of a version it does not know in place
/// of the real one, then runs the real supd: what a re-exec into an older or foreign supd
/// looks like to it. Returns it and the real supd's path.
fn unreadable_handover(sb: &Sandbox) -> (PathBuf, PathBuf) {
    let real = sb.dir.join("bin").join("supd.real");
    std::fs::copy(SUPD, &real).expect("copy supd");
    let doc = sb.write("doc.json", r#"{"format":"sup-handover","version":99}"#);
    let script = sb.dir.join("bin").join("supd.next");
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\neval \"exec $SUP_HANDOVER_FD<'{}'\"\nexec '{}' \"$@\"\n",
            doc.display(),
            real.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (script, real)
}

fn ticks(sb: &Sandbox) -> u64 {
    sb.read_log("ticker")
        .lines()
        .filter_map(|l| l.rsplit("tick ").next()?.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_handover_the_new_binary_cannot_read_keeps_every_process() {
    let sb = Sandbox::new();
    let port = free_port();
    let apps = format!(
        "{}[[app]]\nname = \"ticker\"\ncmd = [\"sh\", \"-c\", \"i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.02; done\"]\nrestart_delay = \"0ms\"\n",
        web(port, 2, ""),
    );
    let config = sb.config(&format!("{apps}{}", kit_app("gone", &["sleep"], "")));
    let binary = own_supd(&sb);
    let (next, real) = unreadable_handover(&sb);
    let mut d = start_binary(&sb, &binary, &config);
    for i in 0..2 {
        d.wait_instance("web", i, "ready", |r| r["ready"] == true);
    }
    let mut before = processes(&d);
    // An app the config no longer has when the new supd reads it.
    let stray = before.pop().expect("gone:0").2 as i32;
    sb.config(&apps);
    let load = Load::start(port);
    std::fs::rename(&next, &binary).expect("rename");

    // The answer is lost with the document; supctl says who serves now, and fails.
    let out = reexec(&d);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("(pid {}) serves again", d.pid())),
        "{err}\n{}",
        d.stderr_text()
    );
    d.wait_stderr("version 99");
    d.wait_stderr("took over 3 processes");
    d.wait_stderr("stopping 1 more");
    wait_until(Duration::from_secs(10), "the stray stopped", || {
        gone(stray).then_some(())
    });
    assert_eq!(exe_of(d.pid()), real.display().to_string());
    // The same processes, online, their port served throughout, their output logged.
    assert_eq!(processes(&d), before);
    for i in 0..2 {
        assert_eq!(d.instance("web", i)["state"], "online");
    }
    load.finish_all_answered();
    let seen = ticks(&sb);
    wait_until(Duration::from_secs(10), "the ticker logged again", || {
        (ticks(&sb) > seen + 3).then_some(())
    });

    // Supervised as before: a crash is restarted, a plain re-exec keeps everything.
    let ticker = d.instance("ticker", 0)["pid"].as_i64().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ticker),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let row = d.wait_instance("ticker", 0, "restarted", |r| {
        r["restarts"] == 1 && r["state"] == "online"
    });
    let out = d.json(&["reexec"]);
    assert_eq!(out["pid"], d.pid(), "{out}");
    let after = processes(&d);
    assert_eq!(after[..2], before[..2]);
    assert_eq!(after[2].2, row["pid"].as_i64().expect("pid"));

    // And stopped whole: nothing is left.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    for (app, index, pid, _) in after {
        assert!(gone(pid as i32), "{app}:{index} pid {pid} is left");
    }
}

/// Reexecs asked while another is under way wait their turn: each is carried out and
/// answered, none is refused.
#[test]
fn reexecs_asked_at_once_are_each_carried_out() {
    let sb = Sandbox::new();
    let config = sb.config(&kit_app("idle", &["sleep"], ""));
    let d = sb.start(&config);
    d.wait_instance("idle", 0, "online", |r| r["state"] == "online");
    let pid = d.instance("idle", 0)["pid"].clone();
    let asks = 6;
    let outs: Vec<_> = std::thread::scope(|s| {
        let d = &d;
        let handles: Vec<_> = (0..asks)
            .map(|_| s.spawn(move || d.supctl(&["--json", "reexec"])))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    for out in &outs {
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["pid"].as_i64(), Some(d.pid() as i64), "{v}");
    }
    assert_eq!(d.instance("idle", 0)["pid"], pid);
}
