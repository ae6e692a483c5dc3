//! Crash → backoff → errored, restart modes, stopping whole process trees, supctl orders.

use std::time::Duration;

use crate::support::*;

#[test]
fn a_crash_loop_backs_off_then_ends_errored() {
    let sb = Sandbox::new();
    let app = kit_app(
        "crashy",
        &["crash", "3"],
        "restart_delay = \"20ms\"\nmax_restarts = 3\nmin_uptime = \"5s\"",
    );
    let d = sb.start(&sb.config(&app));
    let row = d.wait_instance("crashy", 0, "errored", |r| r["state"] == "errored");
    assert_eq!(row["restarts"], 3);
    assert_eq!(row["last_reason"], "crash");
    assert_eq!(row["exit_code"], 3);
    assert_eq!(row["pid"], serde_json::Value::Null);
    assert!(row["next_start_ms"].as_u64().expect("retry time") > 60_000);
    // First run + 3 restarts (the last line may reach the log just after the exit).
    wait_until(Duration::from_secs(10), "4 runs in the log", || {
        (sb.pids("crashy", "testkit: started").len() == 4).then_some(())
    });
    d.wait_stderr("crashy:0 exited with code 3");
    d.wait_stderr("errored after 4 failures in a row");
}

#[test]
fn restart_modes_decide_what_follows_an_exit() {
    let sb = Sandbox::new();
    let apps = [
        kit_app("clean-onfail", &["exit", "0"], "restart = \"on-failure\""),
        kit_app("failed-never", &["exit", "4"], "restart = \"never\""),
        kit_app(
            "clean-always",
            &["crash", "0", "30"],
            "restart = \"always\"\nrestart_delay = \"10ms\"\nmin_uptime = \"10ms\"",
        ),
    ]
    .concat();
    let d = sb.start(&sb.config(&apps));
    let row = d.wait_instance("clean-onfail", 0, "exited", |r| r["state"] == "exited");
    assert_eq!(
        (row["exit_code"].clone(), row["restarts"].clone()),
        (0.into(), 0.into())
    );
    let row = d.wait_instance("failed-never", 0, "exited", |r| r["state"] == "exited");
    assert_eq!(
        (row["exit_code"].clone(), row["restarts"].clone()),
        (4.into(), 0.into())
    );
    let row = d.wait_instance("clean-always", 0, "restarted twice", |r| {
        r["restarts"].as_u64() >= Some(2)
    });
    assert_eq!(row["last_reason"], "crash");
}

#[test]
fn a_missing_command_is_a_spawn_failure_with_backoff() {
    let sb = Sandbox::new();
    let app = "[[app]]\nname = \"ghost\"\ncmd = [\"/nonexistent/sup-test-binary\"]\nrestart_delay = \"50ms\"\nmax_restarts = 3\n";
    let d = sb.start(&sb.config(app));
    let row = d.wait_instance("ghost", 0, "errored", |r| r["state"] == "errored");
    let last = row["last_exit"].as_str().expect("last_exit");
    assert!(
        last.contains("spawn failed") && last.contains("No such file"),
        "{last}"
    );
    assert_eq!(row["restarts"], 3, "backed off and gave up, no busy loop");
    d.wait_stderr("ghost:0 could not be spawned");
}

#[test]
fn a_command_that_cannot_execute_is_reported_with_the_os_error() {
    let sb = Sandbox::new();
    let script = sb.write("not-executable.sh", "#!/bin/sh\necho hi\n");
    let app = format!(
        "[[app]]\nname = \"noexec\"\ncmd = [\"{}\"]\nrestart = \"never\"\n",
        script.display()
    );
    let d = sb.start(&sb.config(&app));
    let row = d.wait_instance("noexec", 0, "errored", |r| r["state"] == "errored");
    let last = row["last_exit"].as_str().expect("last_exit");
    assert!(last.contains("Permission denied"), "{last}");
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_kill_timeout() {
    let sb = Sandbox::new();
    let app = kit_app("stubborn", &["ignore-term"], "kill_timeout = \"300ms\"");
    let d = sb.start(&sb.config(&app));
    sb.wait_log("stubborn", "testkit: ignoring");
    let pid = sb.pids("stubborn", "testkit: ignoring")[0];
    let out = d.supctl(&["stop", "stubborn"]);
    assert!(out.status.success(), "{out:?}");
    // supctl stop returns once the instance is stopped.
    assert!(gone(pid), "pid {pid} still exists after stop returned");
    assert_eq!(d.instance("stubborn", 0)["state"], "stopped");
    d.wait_stderr("sent SIGKILL");
}

#[test]
fn stop_leaves_no_member_of_a_fork_tree() {
    let sb = Sandbox::new();
    let app = kit_app("tree", &["fork-tree", "3"], "");
    let d = sb.start(&sb.config(&app));
    let pids = wait_until(Duration::from_secs(10), "7 tree members", || {
        let pids = sb.pids("tree", "tree-member");
        (pids.len() == 7).then_some(pids)
    });
    let out = d.supctl(&["stop", "tree"]);
    assert!(out.status.success(), "{out:?}");
    for pid in pids {
        assert!(gone(pid), "tree member {pid} survived the stop");
    }
}

#[test]
fn a_crashed_leader_takes_its_workers_down_before_the_replacement() {
    let sb = Sandbox::new();
    let app = kit_app("prefork", &["fork-tree", "2"], "restart_delay = \"0ms\"");
    let d = sb.start(&sb.config(&app));
    let first = wait_until(Duration::from_secs(10), "5 tree members", || {
        let pids = sb.pids("prefork", "tree-member");
        (pids.len() == 5).then_some(pids)
    });
    let leader = d.instance("prefork", 0)["pid"].as_i64().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(leader),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill leader");
    let row = d.wait_instance("prefork", 0, "replaced", |r| {
        r["restarts"] == 1 && r["state"] == "online"
    });
    assert_ne!(row["pid"].as_i64(), Some(leader as i64));
    for pid in first {
        assert!(gone(pid), "worker {pid} of the crashed leader survived");
    }
    d.wait_stderr("stopping what is left of its process group");
}

#[test]
fn supctl_starts_stops_and_restarts() {
    let sb = Sandbox::new();
    let app = kit_app("web", &["sleep"], "instances = 2");
    let d = sb.start(&sb.config(&app));
    let before = d.wait_instance("web", 1, "online", |r| r["state"] == "online");

    let out = d.json(&["restart", "web:1"]);
    let row = &out["apps"][0]["instances"][0];
    assert_eq!(row["index"], 1);
    assert_eq!(row["state"], "online");
    assert_eq!(row["restarts"], 1);
    assert_eq!(row["last_reason"], "manual");
    assert_ne!(row["pid"], before["pid"]);
    assert!(gone(before["pid"].as_i64().expect("pid") as i32));
    assert_eq!(d.instance("web", 0)["restarts"], 0, "web:0 untouched");

    d.json(&["stop", "web"]);
    for i in 0..2 {
        let row = d.instance("web", i);
        assert_eq!(
            (row["state"].clone(), row["pid"].clone()),
            ("stopped".into(), serde_json::Value::Null)
        );
    }
    let out = d.json(&["start", "all"]);
    assert_eq!(out["apps"][0]["instances"][1]["state"], "online");
    let human = d.supctl(&["status"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("web") && text.contains("online"), "{text}");
}

#[test]
fn shutdown_stops_everything_and_exits_zero() {
    let sb = Sandbox::new();
    let apps = [
        kit_app("a", &["fork-tree", "1"], "instances = 2"),
        kit_app("b", &["term-exit", "0"], ""),
    ]
    .concat();
    let mut d = sb.start(&sb.config(&apps));
    let pids = wait_until(Duration::from_secs(10), "all processes", || {
        let a = sb.pids("a", "tree-member");
        let b = sb.pids("b", "testkit: started");
        (a.len() == 6 && b.len() == 1).then(|| [a, b].concat())
    });
    let out = d.supctl(&["shutdown"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    for pid in pids {
        assert!(gone(pid), "{pid} survived the shutdown");
    }
    assert!(!sb.socket().exists(), "socket removed at exit");
}

#[test]
fn sigterm_to_supd_is_a_graceful_shutdown() {
    let sb = Sandbox::new();
    let app = kit_app("w", &["term-exit", "0"], "instances = 3");
    let mut d = sb.start(&sb.config(&app));
    let pids = wait_until(Duration::from_secs(10), "3 started", || {
        let p = sb.pids("w", "testkit: started");
        (p.len() == 3).then_some(p)
    });
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    assert_eq!(
        sb.pids("w", "got-term").len(),
        3,
        "each got the stop signal"
    );
    for pid in pids {
        assert!(gone(pid));
    }
}

#[test]
fn a_second_sigint_kills_at_once() {
    let sb = Sandbox::new();
    let app = kit_app("stubborn", &["ignore-term"], "kill_timeout = \"60s\"");
    let mut d = sb.start(&sb.config(&app));
    sb.wait_log("stubborn", "testkit: ignoring");
    let pid = sb.pids("stubborn", "testkit: ignoring")[0];
    d.signal(nix::sys::signal::Signal::SIGINT);
    wait_until(
        Duration::from_secs(5),
        "the first SIGINT to be seen",
        || {
            d.stderr_text()
                .contains("SIGINT: shutting down")
                .then_some(())
        },
    );
    d.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(gone(pid));
}

#[test]
fn escaped_grandchildren_are_killed_when_supd_exits() {
    let sb = Sandbox::new();
    let app = kit_app("daemonizer", &["fork-tree", "1", "--escape"], "");
    let mut d = sb.start(&sb.config(&app));
    let pids = wait_until(Duration::from_secs(10), "3 members", || {
        let p = sb.pids("daemonizer", "role=");
        (p.len() == 3).then_some(p)
    });
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    for pid in pids {
        assert!(gone(pid), "{pid} survived supd");
    }
}

#[test]
fn children_get_the_sup_environment_and_only_three_fds() {
    let sb = Sandbox::new();
    let apps = [
        kit_app(
            "envy",
            &["print-env"],
            "instances = 2\nenv = { GREETING = \"hello world\" }",
        ),
        kit_app("fds", &["print-fds"], ""),
    ]
    .concat();
    let _d = sb.start(&sb.config(&apps));
    wait_until(Duration::from_secs(10), "both instances' env", || {
        (sb.pids("envy", "env-done").len() == 2).then_some(())
    });
    let log = sb.read_log("envy");
    for needle in [
        "envy:1 out | env SUP_INSTANCE=1",
        "envy:1 out | env NODE_APP_INSTANCE=1",
        "envy:0 out | env SUP_APP=envy",
        "envy:0 out | env GREETING=hello world",
    ] {
        assert!(log.contains(needle), "missing `{needle}` in:\n{log}");
    }
    let line = sb.wait_log("fds", "testkit: fds");
    assert!(
        line.ends_with("fds=0,1,2"),
        "{line}\n{}",
        sb.read_log("fds")
    );
}

#[test]
fn both_streams_reach_the_log_in_the_text_format() {
    let sb = Sandbox::new();
    let app = kit_app("talker", &["stderr", "oops on stderr"], "");
    let _d = sb.start(&sb.config(&app));
    let err = sb.wait_log("talker", "oops on stderr");
    let out = sb.wait_log("talker", "testkit: started");
    for (line, stream) in [(err, "err"), (out, "out")] {
        // 2026-11-23T03:40:00.123Z talker:0 out | message
        let (ts, rest) = line.split_once(' ').expect("time stamp");
        assert_eq!(ts.len(), 24, "{line}");
        assert!(
            ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.',
            "{line}"
        );
        assert!(rest.starts_with(&format!("talker:0 {stream} | ")), "{line}");
    }
}

#[test]
fn user_and_group_switch_all_three_ids() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: switching users needs supd to run as root");
        return;
    }
    let sb = Sandbox::new();
    let app = kit_app(
        "dropped",
        &["print-env"],
        "user = \"nobody\"\ngroup = \"nogroup\"",
    );
    let d = sb.start(&sb.config(&app));
    sb.wait_log("dropped", "env-done");
    let pid = d.instance("dropped", 0)["pid"].as_i64().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l[name.len()..]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .expect("field")
    };
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("nss")
        .expect("nobody");
    let uid = nobody.uid.to_string();
    let gid = nix::unistd::Group::from_name("nogroup")
        .expect("nss")
        .expect("nogroup")
        .gid
        .to_string();
    assert_eq!(field("Uid:"), [uid.as_str(); 4].join(" "));
    assert_eq!(field("Gid:"), [gid.as_str(); 4].join(" "));
    // initgroups: the supplementary groups are nobody's, not root's.
    assert!(
        !field("Groups:").split(' ').any(|g| g == "0"),
        "{}",
        field("Groups:")
    );
    let log = sb.read_log("dropped");
    assert!(log.contains("env USER=nobody"), "{log}");
    // The child shared supd's memory until its exec: supd's own threads keep root.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", d.pid())).expect("supd tasks");
    for task in tasks {
        let path = task.expect("task").path().join("status");
        let status = std::fs::read_to_string(&path).expect("task status");
        let uid = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
        assert_eq!(
            uid.split_whitespace().nth(1),
            Some("0"),
            "{}: {uid}",
            path.display()
        );
    }
}

#[test]
fn children_start_with_no_signal_blocked_and_sigpipe_default() {
    // Not the testkit: Rust programs ignore SIGPIPE themselves at startup.
    let sb = Sandbox::new();
    let d = sb.start(&sb.config("[[app]]\nname = \"sigs\"\ncmd = [\"sleep\", \"3600\"]\n"));
    let pid = d.instance("sigs", 0)["pid"].as_i64().expect("pid");
    let status = wait_until(Duration::from_secs(10), "sleep exec'd", || {
        // Before its exec the child is still named after supd.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "sleep")
            .then(|| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())?
    });
    let mask = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).expect(name);
        u64::from_str_radix(line[name.len()..].trim(), 16).expect("hex mask")
    };
    assert_eq!(mask("SigBlk:"), 0, "{status}");
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    assert_eq!(mask("SigIgn:") & sigpipe, 0, "{status}");
}
