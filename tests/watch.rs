//! Watching what runs: memory limits over whole process trees, and memory/CPU in status.

use std::time::Duration;

use crate::support::*;

#[test]
fn a_growing_instance_is_restarted_with_reason_memory() {
    let sb = Sandbox::new();
    let apps = [
        kit_app(
            "leaky",
            &["alloc", "16", "50"],
            "max_memory = \"64M\"\nmemory_interval = \"100ms\"\nrestart_delay = \"0ms\"",
        ),
        // The leader stays small; its forked worker grows: only the tree shows it.
        kit_app(
            "leaky-worker",
            &["alloc", "16", "50", "--child"],
            "max_memory = \"64M\"\nmemory_interval = \"100ms\"\nrestart_delay = \"0ms\"",
        ),
    ]
    .concat();
    let d = sb.start(&sb.config(&apps));
    for app in ["leaky", "leaky-worker"] {
        let row = d.wait_instance(app, 0, "a memory restart", |r| {
            r["restarts"].as_u64() >= Some(1) && r["state"] == "online"
        });
        assert_eq!(row["last_reason"], "memory", "{app}: {row}");
    }
    // Every process of the first runs is gone, the growing worker included.
    let first: Vec<i32> = sb
        .pids("leaky-worker", "total_mib=16")
        .into_iter()
        .take(1)
        .collect();
    for pid in first {
        wait_until(Duration::from_secs(10), "the old worker to be gone", || {
            gone(pid).then_some(())
        });
    }
    d.wait_stderr("over max_memory 64 MiB for 2 samples in a row; restarting it");
}

#[test]
fn status_shows_memory_and_cpu_without_any_limit() {
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app("plain", &["alloc", "8", "60000"], "")));
    sb.wait_log("plain", "total_mib=8");
    // status may reuse a /proc read up to 500 ms old, taken before the allocation.
    let row = d.wait_instance("plain", 0, "8 MiB measured on demand", |r| {
        r["memory_bytes"].as_u64() >= Some(8 << 20)
    });
    assert!(row["cpu_percent"].is_number(), "{row}");
    let text = String::from_utf8_lossy(&d.supctl(&["status"]).stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with("plain"))
        .expect("plain row");
    assert!(
        line.ends_with('M') && line.contains('%'),
        "memory and CPU shown: {text}"
    );
}

#[test]
fn a_six_field_cron_restarts_services_rolling_and_starts_jobs() {
    let sb = Sandbox::new();
    let apps = [
        kit_app("web", &["sleep"], "instances = 2\ncron_restart = \"* * * * * *\""),
        kit_app(
            "nightly",
            &["exit", "0"],
            "restart = \"never\"\nautostart = false\ncron_restart = \"* * * * * *\"\ncron_tz = \"UTC\"",
        ),
    ]
    .concat();
    let d = sb.start(&sb.config(&apps));
    let status = d.json(&["status", "web"]);
    assert!(status["apps"][0]["next_cron"]
        .as_str()
        .expect("next cron")
        .ends_with('Z'));
    for index in 0..2 {
        let row = d.wait_instance("web", index, "a cron restart", |r| {
            r["restarts"].as_u64() >= Some(1) && r["state"] == "online"
        });
        assert_eq!(row["last_reason"], "cron");
    }
    let row = d.wait_instance("nightly", 0, "two cron runs", |r| {
        r["restarts"].as_u64() >= Some(2) && r["state"] == "exited"
    });
    assert_eq!(
        (row["last_reason"].clone(), row["exit_code"].clone()),
        ("cron".into(), 0.into())
    );
    d.wait_stderr("cron: restarting web (2 instances, 1 at a time)");
}

#[test]
fn supctl_health_is_a_container_healthcheck() {
    let sb = Sandbox::new();
    let apps = [
        kit_app("web", &["sleep"], "instances = 2"),
        kit_app("manual", &["sleep"], "autostart = false"),
        kit_app("crashy", &["sleep"], "restart_delay = \"1h\""),
    ]
    .concat();
    let d = sb.start(&sb.config(&apps));
    let crashy = d.wait_instance("crashy", 0, "online", |r| r["state"] == "online");
    let out = d.supctl(&["health"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "healthy\n");
    d.json(&["stop", "web:1"]);
    assert_eq!(
        d.supctl(&["health"]).status.code(),
        Some(0),
        "stopped on purpose is fine"
    );

    // A crashed instance waiting for its restart is not healthy: health says which and why.
    let pid = crashy["pid"].as_i64().expect("pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    d.wait_instance("crashy", 0, "backoff", |r| r["state"] == "backoff");
    let out = d.supctl(&["health"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("crashy:0 is backoff (killed by SIGKILL)"),
        "{err}"
    );
    let out = d.supctl(&["--json", "health"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["healthy"], false);
}
