//! The memory and cron keys, and the watch contract sample.

use super::*;
use crate::config::{CronOverlap, CronSettings, CronZone, MemoryAction};

#[test]
fn memory_defaults() {
    let d = MemorySettings::default();
    assert_eq!(
        d,
        MemorySettings {
            max_memory: None,
            interval: Duration::from_secs(1),
            samples: 2,
            action: MemoryAction::Restart,
            max_unavailable: 1,
        }
    );
    let a = app("[[app]]\nname = \"a\"\ncmd = \"x\"\n");
    assert_eq!(a.memory, d);
}

#[test]
fn every_memory_field_is_read_and_layered() {
    let text = r#"
[defaults]
max_memory = "1G"
memory_interval = "500ms"
memory_samples = 3

[[app]]
name = "api"
cmd = "x"
instances = 4
max_memory = "300M"
memory_action = "stop"
max_unavailable = 2

[app.profile.prod]
memory_interval = "2s"
memory_action = "restart"
max_unavailable = 3

[[app]]
name = "plain"
cmd = "x"
max_memory = 1048576
memory_interval = "100ms"
memory_samples = 1
"#;
    let config = check(text).unwrap();
    let [api, plain] = &config.apps[..] else {
        panic!("two apps expected")
    };
    assert_eq!(
        api.memory,
        MemorySettings {
            max_memory: Some(300 << 20),
            interval: Duration::from_millis(500),
            samples: 3,
            action: MemoryAction::Stop,
            max_unavailable: 2,
        }
    );
    assert_eq!(
        plain.memory,
        MemorySettings {
            max_memory: Some(1 << 20),
            interval: Duration::from_millis(100),
            samples: 1,
            ..MemorySettings::default()
        }
    );

    let prod = check_with(text, Some("prod")).unwrap();
    assert_eq!(
        prod.apps[0].memory,
        MemorySettings {
            max_memory: Some(300 << 20),
            interval: Duration::from_secs(2),
            samples: 3,
            action: MemoryAction::Restart,
            max_unavailable: 3,
        }
    );
    assert_eq!(prod.apps[1], config.apps[1], "no profile, unchanged");
}

#[test]
fn every_memory_error_of_a_file_is_reported() {
    let text = "[defaults]\nmax_memory = \"1K\"\n\
                [[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_samples = 0\nmax_unavailable = 0\n\
                [app.profile.p]\nmemory_action = \"restarts\"\n";
    assert_eq!(
        errors(text),
        [
            "2:14: `max_memory` must be at least 1M, found 1K \
             (expected a size like \"512M\", \"1G\", \"64K\")",
            "6:18: `memory_samples` must be at least 1, found 0 (expected a positive integer)",
            "7:19: `max_unavailable` must be at least 1, found 0 (expected a positive integer)",
            "9:17: unknown `memory_action` value `restarts`, did you mean `restart`?",
        ]
    );
}

/// A copy of the contract sample `watch.toml`, which uses every watch key.
const WATCH: &str = r#"# Every key of the watch capability (issue "Watch what runs").
[supervisor]
socket = "/tmp/sup-contract/supd.sock"
log_dir = "/tmp/sup-contract/logs"
http = "127.0.0.1:9615"

[[app]]
name = "backend"
cmd = ["node", "server.js"]
instances = 4
max_memory = "300M"
memory_interval = "1s"
memory_samples = 2
memory_action = "restart"
max_unavailable = 1
cron_restart = "0 3 * * *"
cron_tz = "Europe/Berlin"
ready = { http = "http://127.0.0.1:3000/health", timeout = "10s", interval = "200ms" }
health = { http = "http://127.0.0.1:3000/health", interval = "5s", timeout = "2s", failures = 3 }

[[app]]
name = "studio"
cmd = ["python3", "app.py"]
max_memory = "1G"
memory_action = "stop"
cron_restart = "*/30 * * * * *"
ready = { notify = true, timeout = "30s" }
health = { tcp = "127.0.0.1:8000", interval = "10s", timeout = "1s", failures = 2 }

[[app]]
name = "jobs"
cmd = ["python3", "worker.py"]
restart = "never"
cron_restart = "@hourly"
cron_overlap = "skip"
ready = { exec = ["test", "-S", "/tmp/jobs.sock"], timeout = "5s", interval = "100ms" }
health = { exec = ["python3", "-c", "pass"], interval = "30s", timeout = "5s", failures = 3 }

[[app]]
name = "tcpapp"
cmd = ["redis-server"]
cron_overlap = "restart"
ready = { tcp = "127.0.0.1:6379", timeout = "5s" }

[[app]]
name = "logready"
cmd = ["python3", "app.py"]
ready = { log = "listening on", timeout = "5s" }
"#;

#[test]
fn the_watch_contract_file_validates() {
    use crate::config::probe::Check;
    let config = check(WATCH).unwrap();
    assert_eq!(summary(&config), "ok: 5 apps, 8 instances");
    assert_eq!(
        config.supervisor.http,
        Some("127.0.0.1:9615".parse().unwrap())
    );
    let [backend, studio, jobs, tcpapp, logready] = &config.apps[..] else {
        panic!("five apps expected")
    };
    assert_eq!(
        backend.memory,
        MemorySettings {
            max_memory: Some(300 << 20),
            ..MemorySettings::default()
        }
    );
    assert_eq!(studio.memory.max_memory, Some(1 << 30));
    assert_eq!(studio.memory.action, MemoryAction::Stop);
    let ready = backend.ready.as_ref().unwrap();
    assert_eq!(ready.check.kind(), "http");
    assert_eq!(
        (ready.timeout, ready.interval),
        (Duration::from_secs(10), Duration::from_millis(200))
    );
    let health = backend.health.as_ref().unwrap();
    assert_eq!(
        (health.interval, health.timeout, health.failures),
        (Duration::from_secs(5), Duration::from_secs(2), 3)
    );
    assert_eq!(
        studio.ready.as_ref().map(|r| &r.check),
        Some(&Check::Notify)
    );
    assert_eq!(
        studio.health.as_ref().unwrap().check,
        Check::Tcp("127.0.0.1:8000".into())
    );
    assert_eq!(jobs.ready.as_ref().unwrap().check.kind(), "exec");
    assert_eq!(jobs.cron.as_ref().unwrap().overlap, CronOverlap::Skip);
    assert_eq!(tcpapp.cron, None, "cron_overlap alone schedules nothing");
    assert_eq!(
        logready.ready.as_ref().unwrap().check,
        Check::Log("listening on".into())
    );
}

#[test]
fn cron_keys_are_read_and_layered() {
    let text = r#"
[defaults]
cron_tz = "Europe/Berlin"

[[app]]
name = "nightly"
cmd = "x"
cron_restart = "0 3 * * *"

[[app]]
name = "job"
cmd = "x"
restart = "never"
cron_restart = "*/30 * * * * *"
cron_tz = "UTC"
cron_overlap = "restart"
[app.profile.prod]
cron_restart = "@midnight"
cron_overlap = "skip"
"#;
    let config = check(text).unwrap();
    assert_eq!(
        config.apps[0].cron,
        Some(CronSettings {
            expr: "0 3 * * *".parse().unwrap(),
            tz: Some("Europe/Berlin".parse().unwrap()),
            overlap: CronOverlap::Skip,
        })
    );
    assert_eq!(
        config.apps[1].cron,
        Some(CronSettings {
            expr: "*/30 * * * * *".parse().unwrap(),
            tz: Some("UTC".parse().unwrap()),
            overlap: CronOverlap::Restart,
        })
    );
    let prod = check_with(text, Some("prod")).unwrap();
    assert_eq!(
        prod.apps[1].cron,
        Some(CronSettings {
            expr: "@midnight".parse().unwrap(),
            tz: Some("UTC".parse().unwrap()),
            overlap: CronOverlap::Skip,
        })
    );
    assert_eq!(app("[[app]]\nname = \"a\"\ncmd = \"x\"\n").cron, None);
}

#[test]
fn every_cron_error_of_a_file_is_reported() {
    let text = "[defaults]\ncron_overlap = \"skp\"\n\
                [[app]]\nname = \"a\"\ncmd = \"x\"\ncron_restart = \"0 3 * *\"\n\
                cron_tz = \"Europe/Berln\"\n\
                [[app]]\nname = \"b\"\ncmd = \"x\"\ncron_restart = \"0 25 * * *\"\n\
                cron_tz = \"Mars/Base\"\n\
                [[app]]\nname = \"c\"\ncmd = \"x\"\ncron_restart = 5\ncron_overlap = \"never\"\n";
    assert_eq!(
        errors(text),
        [
            "2:16: unknown `cron_overlap` value `skp`, did you mean `skip`?",
            "6:16: invalid `cron_restart`: invalid cron expression `0 3 * *`: Invalid pattern: \
             Pattern must have 5 or 6 fields when years are disallowed. \
             (expected a cron expression: 5 fields like `0 3 * * *` (03:00 daily), \
             6 with seconds first like `*/30 * * * * *`, or `@hourly`, `@daily`, \
             `@midnight`, `@weekly`, `@monthly`, `@yearly`)",
            "7:11: invalid `cron_tz`: unknown time zone `Europe/Berln`, did you mean \
             `Europe/Berlin`?",
            "11:16: invalid `cron_restart`: invalid cron expression `0 25 * * *`: \
             Component error: Number out of bounds. \
             (expected a cron expression: 5 fields like `0 3 * * *` (03:00 daily), \
             6 with seconds first like `*/30 * * * * *`, or `@hourly`, `@daily`, \
             `@midnight`, `@weekly`, `@monthly`, `@yearly`)",
            "12:11: invalid `cron_tz`: unknown time zone `Mars/Base` \
             (expected an IANA time zone name like `Europe/Berlin` or `UTC`)",
            "16:16: invalid type for `cron_restart`: found an integer \
             (expected a cron expression: 5 fields like `0 3 * * *` (03:00 daily), \
             6 with seconds first like `*/30 * * * * *`, or `@hourly`, `@daily`, \
             `@midnight`, `@weekly`, `@monthly`, `@yearly`)",
            "17:16: unknown `cron_overlap` value `never` (expected one of `skip`, `restart`)",
        ]
    );
}

#[test]
fn cron_tz_and_overlap_without_cron_restart_mean_nothing() {
    let text = "[defaults]\ncron_tz = \"UTC\"\ncron_overlap = \"restart\"\n\
                [[app]]\nname = \"a\"\ncmd = \"x\"\ncron_restart = \"@daily\"\n\
                [[app]]\nname = \"b\"\ncmd = \"x\"\n";
    let config = check(text).unwrap();
    assert_eq!(
        config.apps[0]
            .cron
            .as_ref()
            .unwrap()
            .tz
            .as_ref()
            .map(CronZone::name),
        Some("UTC")
    );
    assert_eq!(config.apps[1].cron, None);
    // An invalid `cron_restart` is reported once.
    assert_eq!(
        errors("[[app]]\nname = \"a\"\ncmd = \"x\"\ncron_restart = \"x\"\ncron_tz = \"UTC\"\n")
            .len(),
        1
    );
}

/// The cron keys of the watch contract sample (`ready` and `health`, not built, left
/// out).
const WATCH_CRON: &str = r#"
[[app]]
name = "backend"
cmd = ["node", "server.js"]
cron_restart = "0 3 * * *"
cron_tz = "Europe/Berlin"

[[app]]
name = "studio"
cmd = ["python3", "app.py"]
cron_restart = "*/30 * * * * *"

[[app]]
name = "jobs"
cmd = ["python3", "worker.py"]
restart = "never"
cron_restart = "@hourly"
cron_overlap = "skip"
"#;

#[test]
fn the_watch_contract_cron_keys_validate() {
    let config = check(WATCH_CRON).unwrap();
    let crons: Vec<_> = config
        .apps
        .iter()
        .map(|a| a.cron.clone().unwrap())
        .collect();
    assert_eq!(
        crons[0].tz.as_ref().map(CronZone::name),
        Some("Europe/Berlin")
    );
    assert_eq!(crons[1].expr.as_str(), "*/30 * * * * *");
    assert_eq!(crons[1].tz, None);
    assert_eq!(crons[2].overlap, CronOverlap::Skip);
}
