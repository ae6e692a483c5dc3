//! Changing a running ecosystem: reload, apply and SIGHUP surge first under load, a
//! replacement that never gets ready, diff/apply with added, removed and changed apps, a
//! bad file, scale ±N, signal --group, env files, listen changes.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::load::*;
use crate::support::*;

fn pids(d: &Daemon, app: &str) -> Vec<i64> {
    let status = d.json(&["status", app]);
    status["apps"][0]["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| i["pid"].as_i64().unwrap_or(-1))
        .collect()
}

fn wait_ready(d: &Daemon, app: &str, n: usize) {
    for i in 0..n {
        d.wait_instance(app, i, "ready", |r| r["ready"] == true);
    }
}

/// Polls `status` until stopped: the least number of instances able to serve seen
/// (ready current processes plus old ones still serving beside their replacement).
struct Capacity {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl Capacity {
    fn watch(socket: std::path::PathBuf, app: &'static str) -> Capacity {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut least = usize::MAX;
            while !flag.load(Ordering::Relaxed) {
                let out = supctl(&socket, &["--json", "status", app]);
                let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else {
                    continue;
                };
                let rows = v["apps"][0]["instances"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let serving = rows
                    .iter()
                    .map(|r| {
                        usize::from(r["state"] == "online" && r["ready"] == true)
                            + usize::from(r["old"]["state"] == "online")
                    })
                    .sum();
                least = least.min(serving);
            }
            least
        });
        Capacity { stop, thread }
    }

    fn least(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("capacity thread")
    }
}

/// Replace `from` with `to` in the file at `path`.
fn edit(path: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read the config");
    assert!(text.contains(from), "`{from}` in {}", path.display());
    std::fs::write(path, text.replace(from, to)).expect("edit the config");
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn reload_apply_and_sighup_replace_every_instance_without_a_failed_request() {
    let sb = Sandbox::new();
    let port = free_port();
    let side = kit_app("side", &["sleep"], "");
    let config = sb.config(&format!("{}{side}", web(port, 4, "env = { V = \"1\" }")));
    let d = sb.start(&config);
    wait_ready(&d, "web", 4);
    d.wait_instance("side", 0, "running", |r| r["pid"].is_number());
    let side_pid = pids(&d, "side");
    let load = Load::start(port);
    let capacity = Capacity::watch(sb.socket(), "web");
    wait_until(Duration::from_secs(10), "requests answered", || {
        ask(port).ok()
    });

    let before = pids(&d, "web");
    ok(&d.supctl(&["reload", "web"]));
    let reloaded = pids(&d, "web");
    assert!(
        reloaded.iter().all(|p| !before.contains(p) && *p > 0),
        "reload replaced every pid: {before:?} → {reloaded:?}"
    );

    edit(&config, "V = \"1\"", "V = \"2\"");
    let text = ok(&d.supctl(&["apply"]));
    assert!(text.contains("env.V: 1 → 2  (restart)"), "{text}");
    let applied = pids(&d, "web");
    assert!(applied.iter().all(|p| !reloaded.contains(p) && *p > 0));
    assert_eq!(
        pids(&d, "side"),
        side_pid,
        "an unchanged app keeps its process"
    );

    edit(&config, "V = \"2\"", "V = \"3\"");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until(
        Duration::from_secs(20),
        "SIGHUP rolled every instance",
        || {
            let now = pids(&d, "web");
            let done = now.iter().all(|p| !applied.contains(p) && *p > 0)
                && (0..4).all(|i| {
                    let r = d.instance("web", i);
                    r["ready"] == true && r["old"].is_null()
                });
            done.then_some(())
        },
    );
    assert_eq!(pids(&d, "side"), side_pid);

    let least = capacity.least();
    load.finish_all_answered();
    assert!(
        least >= 4,
        "capacity fell to {least} (max_surge = 1 keeps 4 serving)"
    );
    for i in 0..4 {
        assert_eq!(d.instance("web", i)["last_reason"], "apply");
    }
}

#[test]
fn a_replacement_that_never_gets_ready_stops_the_reload_and_keeps_the_old() {
    let sb = Sandbox::new();
    let port = free_port();
    let broken = sb.dir.join("broken");
    // A broken version neither accepts nor gets ready.
    let run = format!(
        "test -e {} && exec {kit} sleep; exec {kit} accept",
        broken.display(),
        kit = testkit()
    );
    let app = format!(
        "[[app]]\nname = \"web\"\ncmd = [\"sh\", \"-c\", {}]\ninstances = 2\n\
         listen = [\"tcp://127.0.0.1:{port}\"]\n\
         ready = {{ log = \"listen-ready\", timeout = \"2s\" }}\n",
        toml_str(&run)
    );
    let d = sb.start(&sb.config(&app));
    wait_ready(&d, "web", 2);
    let before = pids(&d, "web");
    let load = Load::start(port);
    std::fs::write(&broken, "").expect("break the next version");
    let started = Instant::now();
    let out = d.supctl(&["reload", "web"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("web:0 not ready within 2s"),
        "names the instance and why: {stderr}"
    );
    assert!(
        took < Duration::from_secs(7),
        "within ready.timeout + 5 s: {took:?}"
    );
    assert_eq!(pids(&d, "web"), before, "the old processes keep running");
    for i in 0..2 {
        let row = d.instance("web", i);
        assert_eq!(
            (row["state"].as_str(), row["ready"].as_bool()),
            (Some("online"), Some(true))
        );
    }
    let (_, failed) = load.finish();
    assert!(
        failed.is_empty(),
        "the old ones served throughout: {failed:?}"
    );
    std::fs::remove_file(&broken).expect("fix it");
    ok(&d.supctl(&["reload", "web"]));
    let after = pids(&d, "web");
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} → {after:?}"
    );
}

#[test]
fn apply_adds_removes_and_changes_only_what_differs() {
    let sb = Sandbox::new();
    let apps = |a_env: &str, third: &str| {
        format!(
            "{}{}{}",
            kit_app("a", &["print-env"], &format!("env = {{ {a_env} }}")),
            kit_app("b", &["sleep"], ""),
            kit_app(third, &["sleep"], ""),
        )
    };
    let config = sb.config(&apps(
        "KEEP = \"1\", GONE = \"x\", DB_PASSWORD = \"hunter2\"",
        "c",
    ));
    let d = sb.start(&config);
    sb.wait_log("a", "env-done");
    for app in ["b", "c"] {
        d.wait_instance(app, 0, "running", |r| r["pid"].is_number());
    }
    let (a0, b0, c0) = (pids(&d, "a")[0], pids(&d, "b")[0], pids(&d, "c")[0]);
    sb.config(&apps("KEEP = \"1\", DB_PASSWORD = \"hunter3\"", "d"));

    let text = ok(&d.supctl(&["diff"]));
    assert!(text.contains("~ a (changed)"), "{text}");
    assert!(
        text.contains("env.GONE: x → (not set)  (restart)"),
        "{text}"
    );
    assert!(
        text.contains("env.DB_PASSWORD: *** → ***"),
        "secrets masked: {text}"
    );
    assert!(!text.contains("hunter"), "{text}");
    assert!(
        text.contains("+ d (added)") && text.contains("- c (removed)"),
        "{text}"
    );
    assert!(!text.contains(" b "), "unchanged apps are left out: {text}");
    assert_eq!(d.supctl(&["diff", "--exit-code"]).status.code(), Some(1));
    let doc = d.json(&["diff"]);
    assert_eq!(doc["changed"], true);
    let changes: Vec<&str> = doc["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| a["change"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(changes, ["changed", "added", "removed"]);
    let dry = ok(&d.supctl(&["apply", "--dry-run"]));
    assert!(
        dry.contains("an apply would:\n  1. start d (1 instance)"),
        "{dry}"
    );
    assert_eq!(pids(&d, "a")[0], a0, "a dry run changes nothing");

    ok(&d.supctl(&["apply"]));
    assert_eq!(pids(&d, "b")[0], b0, "b is unchanged: same process");
    assert!(gone(c0 as i32), "c was stopped");
    let names: Vec<String> = d.json(&["status"])["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| a["name"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(names, ["a", "b", "d"]);
    d.wait_instance("d", 0, "running", |r| r["pid"].is_number());
    let a1 = pids(&d, "a")[0];
    assert_ne!(a1, a0);
    wait_until(Duration::from_secs(10), "the new a printed its env", || {
        sb.read_log("a")
            .contains(&format!("env-done pid={a1}"))
            .then_some(())
    });
    let log = sb.read_log("a");
    let new_env: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains(&format!("env pid={a1}")))
        .take_while(|l| !l.contains("env-done"))
        .collect();
    assert!(
        new_env.iter().any(|l| l.ends_with("env KEEP=1")),
        "{new_env:?}"
    );
    assert!(
        !new_env.iter().any(|l| l.contains("env GONE=")),
        "a removed env key is gone"
    );
    let text = ok(&d.supctl(&["diff", "--exit-code"]));
    assert!(text.starts_with("no differences"), "{text}");
}

#[test]
fn a_bad_file_changes_nothing_by_apply_or_sighup() {
    let sb = Sandbox::new();
    let config = sb.config(&kit_app("a", &["sleep"], ""));
    let d = sb.start(&config);
    d.wait_instance("a", 0, "running", |r| r["pid"].is_number());
    let before = pids(&d, "a");
    let good = std::fs::read_to_string(&config).expect("config");
    sb.write(
        "ecosystem.toml",
        &format!("{good}kill_timeot = \"3s\"\nenv_file = [\"missing.env\"]\n"),
    );
    let out = d.supctl(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = config.display().to_string();
    assert!(stderr.contains(&format!("{file}:")), "{stderr}");
    assert!(stderr.contains("kill_timeout"), "did you mean: {stderr}");
    assert!(stderr.contains("missing.env"), "{stderr}");
    assert!(stderr.contains("nothing changed"), "{stderr}");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_stderr("apply:");
    assert!(d.stderr_text().contains("nothing changed"));
    assert_eq!(pids(&d, "a"), before);
    d.assert_running();
}

#[test]
fn scale_by_plus_and_minus_lasts_until_the_next_apply() {
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app("w", &["sleep"], "instances = 2")));
    let text = ok(&d.supctl(&["scale", "w", "+2"]));
    assert!(text.contains("w:3 (pid"), "{text}");
    assert!(
        text.contains(
            "until the next `apply` or supd restart, which bring back the config file's 2"
        ),
        "{text}"
    );
    ok(&d.supctl(&["scale", "w", "-1"]));
    assert_eq!(pids(&d, "w").len(), 3);
    let out = d.supctl(&["scale", "w", "-5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
    for bad in ["0", "+0", "-0", "x"] {
        assert_eq!(
            d.supctl(&["scale", "w", bad]).status.code(),
            Some(2),
            "{bad}"
        );
    }
    assert_eq!(pids(&d, "w").len(), 3);
    ok(&d.supctl(&["apply"]));
    assert_eq!(pids(&d, "w").len(), 2, "apply brings back the file's count");
}

#[test]
fn signal_reaches_the_leader_or_with_group_every_process() {
    let sb = Sandbox::new();
    let script = "trap 'echo child-hup' HUP; while :; do sleep 0.05; done";
    let leader = format!(
        "trap 'echo leader-hup' HUP; sh -c \"{script}\" & echo tree-up; while :; do sleep 0.05; done"
    );
    let app = format!(
        "[[app]]\nname = \"t\"\ncmd = [\"sh\", \"-c\", {}]\n",
        toml_str(&leader)
    );
    let d = sb.start(&sb.config(&app));
    sb.wait_log("t", "tree-up");
    ok(&d.supctl(&["signal", "HUP", "t"]));
    sb.wait_log("t", "leader-hup");
    ok(&d.supctl(&["signal", "--group", "HUP", "t"]));
    // Only --group reached the child; both signals reached the leader.
    wait_until(
        Duration::from_secs(10),
        "the leader twice, the child once",
        || {
            let log = sb.read_log("t");
            (log.matches("leader-hup").count() == 2 && log.matches("child-hup").count() == 1)
                .then_some(())
        },
    );
}

#[test]
fn env_files_merge_under_env_and_apply_notices_their_changes() {
    let sb = Sandbox::new();
    let port = free_port();
    let env = sb.write("app.env", "# settings\nexport FROM_FILE=1\nB='from file'\n");
    let app = kit_app(
        "e",
        &["print-env"],
        &format!(
            "env_file = [{}]\nenv = {{ B = \"explicit\" }}\nlisten = [\"tcp://127.0.0.1:{port}\"]",
            toml_str(&env.display().to_string())
        ),
    );
    let d = sb.start(&sb.config(&app));
    sb.wait_log("e", "env-done");
    let log = sb.read_log("e");
    assert!(log.contains("env FROM_FILE=1\n"), "{log}");
    assert!(log.contains("env B=explicit\n"), "explicit env wins: {log}");
    assert!(
        log.contains(&format!("env PORT={port}\n")),
        "one tcp listen address: {log}"
    );
    let first = pids(&d, "e")[0];
    std::fs::write(&env, "FROM_FILE=2\n").expect("edit env file");
    let text = ok(&d.supctl(&["diff"]));
    assert!(text.contains("env.FROM_FILE: 1 → 2  (restart)"), "{text}");
    ok(&d.supctl(&["apply"]));
    let second = pids(&d, "e")[0];
    assert_ne!(first, second);
    wait_until(
        Duration::from_secs(10),
        "the new process printed its env",
        || {
            sb.read_log("e")
                .contains(&format!("env-done pid={second}"))
                .then_some(())
        },
    );
}

#[test]
fn a_listen_change_binds_the_new_address_first_and_a_taken_one_aborts() {
    let sb = Sandbox::new();
    let (old_port, new_port) = (free_port(), free_port());
    let config = sb.config(&web(old_port, 1, ""));
    let d = sb.start(&config);
    wait_ready(&d, "web", 1);
    let before = pids(&d, "web");
    // Taken by someone else: the apply fails and nothing changes.
    let taken = std::net::TcpListener::bind(("127.0.0.1", new_port)).expect("take the port");
    sb.config(&web(new_port, 1, ""));
    let out = d.supctl(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot listen on tcp://127.0.0.1:{new_port} for web"
        )),
        "{stderr}"
    );
    assert_eq!(pids(&d, "web"), before);
    assert!(ask(old_port).is_ok(), "still served on the old port");
    drop(taken);
    ok(&d.supctl(&["apply"]));
    assert!(ask(new_port).is_ok(), "served on the new port");
    wait_until(Duration::from_secs(10), "the old port closed", || {
        TcpStream::connect(("127.0.0.1", old_port))
            .is_err()
            .then_some(())
    });
}

/// Several requests of one client at once do not see each other's replies (a reload
/// that waits does not block a status).
#[test]
fn status_answers_while_an_apply_waits_for_its_rollout() {
    let sb = Sandbox::new();
    let gate = sb.dir.join("gate");
    let app = |v: &str| {
        kit_app(
            "n",
            &["notify", &gate.display().to_string()],
            &format!("ready = {{ notify = true, timeout = \"20s\" }}\nenv = {{ V = \"{v}\" }}"),
        )
    };
    std::fs::write(&gate, "").expect("gate");
    let config = sb.config(&app("1"));
    let d = sb.start(&config);
    wait_ready(&d, "n", 1);
    std::fs::remove_file(&gate).expect("close the gate");
    sb.config(&app("2"));
    let socket = sb.socket();
    let result = Arc::new(Mutex::new(None));
    let slot = result.clone();
    let apply = std::thread::spawn(move || {
        *slot.lock().expect("lock") = Some(supctl(&socket, &["apply"]));
    });
    let row = d.wait_instance("n", 0, "a replacement starting beside the old", |r| {
        r["old"]["state"] == "online"
    });
    assert_eq!(row["state"], "starting");
    assert!(
        result.lock().expect("lock").is_none(),
        "apply waits for readiness"
    );
    let health = d.supctl(&["health"]);
    assert!(health.status.success(), "the old one still serves: healthy");
    std::fs::write(&gate, "").expect("open the gate");
    apply.join().expect("apply thread");
    let out = result.lock().expect("lock").take().expect("apply answered");
    ok(&out);
}
