//! Diff tests: every app key is compared, values are shown as written, and apps and
//! `[supervisor]` keys are classified.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use super::*;
use crate::config::raw::{
    CRON_OVERLAP_VALUES, LOG_FORMAT_VALUES, LOG_JSON_VALUES, LOG_ROTATE_VALUES, LOG_TARGET_VALUES,
    MEMORY_ACTION_VALUES, RESTART_VALUES,
};
use crate::config::validate::{validate_with, Files, APP_KEYS};
use crate::config::{CronOverlap, LogFormat, LogJson, LogRotate, LogTarget, MemoryAction};
use crate::config::{CronSettings, LogSettings, MemorySettings, RestartMode};

fn read(p: &Path) -> std::io::Result<Vec<u8>> {
    Ok(match p.to_str().unwrap_or_default() {
        "/cfg/a.env" => b"A=1\nAPI_KEY=k1\n".to_vec(),
        "/cfg/b.env" => b"A=2\nAPI_KEY=k2\nB=new\n".to_vec(),
        _ => Vec::new(),
    })
}

fn config(text: &str) -> Config {
    let files = Files {
        is_dir: &|_| true,
        read: &read,
    };
    validate_with(Path::new("/cfg/ecosystem.toml"), text, None, 4, &files)
        .unwrap_or_else(|e| panic!("{text}\n{e}"))
}

/// The one app of an `[[app]]` table made of `lines`.
fn app(lines: &[String]) -> App {
    config(&format!("[[app]]\n{}\n", lines.join("\n")))
        .apps
        .remove(0)
}

fn change(key: &str, old: Option<&str>, new: Option<&str>, needs: Needs) -> Change {
    Change {
        key: key.into(),
        old: old.map(String::from),
        new: new.map(String::from),
        needs,
    }
}

/// Each app key, with a value other than the base app's, and the key reported.
const EVERY_KEY: &[(&str, &str, &str)] = &[
    ("cmd", "[\"x\", \"--flag\"]", "cmd"),
    ("cwd", "\"/srv\"", "cwd"),
    ("env", "{ X = \"1\" }", "env.X"),
    ("env_file", "\"/cfg/empty.env\"", "env_file"),
    ("instances", "3", "instances"),
    ("restart", "\"on-failure\"", "restart"),
    ("restart_delay", "\"2s\"", "restart_delay"),
    ("max_restarts", "3", "max_restarts"),
    ("min_uptime", "\"5s\"", "min_uptime"),
    ("errored_retry", "\"1m\"", "errored_retry"),
    ("stop_signal", "\"SIGQUIT\"", "stop_signal"),
    ("kill_timeout", "\"10s\"", "kill_timeout"),
    ("autostart", "false", "autostart"),
    ("user", "\"www\"", "user"),
    ("group", "\"www\"", "group"),
    ("log_format", "\"json\"", "log_format"),
    ("log_json", "\"embed\"", "log_json"),
    ("log_max_line", "\"1M\"", "log_max_line"),
    ("log_split", "true", "log_split"),
    ("log_file", "\"/tmp/a.log\"", "log_file"),
    ("log_max_size", "\"10M\"", "log_max_size"),
    ("log_rotate", "\"daily\"", "log_rotate"),
    ("log_retain", "3", "log_retain"),
    ("log_compress", "true", "log_compress"),
    ("log_target", "\"stdout\"", "log_target"),
    ("max_memory", "\"300M\"", "max_memory"),
    ("memory_interval", "\"2s\"", "memory_interval"),
    ("memory_samples", "5", "memory_samples"),
    ("memory_action", "\"stop\"", "memory_action"),
    ("max_unavailable", "2", "max_unavailable"),
    ("max_surge", "0", "max_surge"),
    ("cron_restart", "\"0 4 * * *\"", "cron_restart"),
    ("cron_tz", "\"UTC\"", "cron_tz"),
    ("cron_overlap", "\"restart\"", "cron_overlap"),
    ("ready", "{ notify = true }", "ready"),
    ("health", "{ tcp = \"127.0.0.1:1\" }", "health"),
    ("listen", "[\"tcp://127.0.0.1:3000\"]", "listen"),
];

fn base() -> Vec<String> {
    [
        "name = \"a\"",
        "cmd = \"x\"",
        "cron_restart = \"0 3 * * *\"",
    ]
    .map(String::from)
    .to_vec()
}

/// `base()` with `key = value` set (replacing the base's line for `key`, if any).
fn with(key: &str, value: &str) -> Vec<String> {
    let mut lines: Vec<String> = base()
        .into_iter()
        .filter(|l| !l.starts_with(&format!("{key} =")))
        .collect();
    lines.push(format!("{key} = {value}"));
    lines
}

#[test]
fn every_app_key_is_compared_alone_with_its_needs() {
    let layer_keys: Vec<&str> = APP_KEYS
        .iter()
        .copied()
        .filter(|k| !matches!(*k, "name" | "profile"))
        .collect();
    let covered: Vec<&str> = EVERY_KEY.iter().map(|(k, _, _)| *k).collect();
    assert_eq!(covered, layer_keys, "a case per app key, in table order");

    let old = app(&base());
    assert!(app_changes(&old, &old).is_empty());
    for (key, value, reported) in EVERY_KEY {
        let new = app(&with(key, value));
        let changes = app_changes(&old, &new);
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, [*reported], "`{key} = {value}`: {changes:?}");
        let needs = match *key {
            "cmd" | "cwd" | "env" | "user" | "group" | "listen" => Needs::Restart,
            "instances" => Needs::Scale,
            _ => Needs::Live,
        };
        assert_eq!(changes[0].needs, needs, "{key}");
        assert_ne!(changes[0].old, changes[0].new);
        // And back: the same key, the sides swapped.
        let back = app_changes(&new, &old);
        assert_eq!(back.len(), 1);
        assert_eq!(
            (&back[0].old, &back[0].new),
            (&changes[0].new, &changes[0].old)
        );
    }
}

/// Fails to compile when a field is added to the app or its settings: the new field
/// needs a row in `app_keys!` (with `show` and `needs`), and a case in `EVERY_KEY`.
#[test]
fn every_app_field_belongs_to_a_key() {
    let App {
        name: _,
        cmd: _,
        cwd: _,
        env: _,
        env_file: _,
        instances: _,
        restart: _,
        restart_delay: _,
        max_restarts: _,
        min_uptime: _,
        errored_retry: _,
        stop_signal: _,
        kill_timeout: _,
        autostart: _,
        user: _,
        group: _,
        log:
            LogSettings {
                format: _,
                json: _,
                max_line: _,
                split: _,
                file: _,
                max_size: _,
                rotate: _,
                retain: _,
                compress: _,
                target: _,
            },
        memory:
            MemorySettings {
                max_memory: _,
                interval: _,
                samples: _,
                action: _,
                max_unavailable: _,
            },
        max_surge: _,
        cron: _,
        ready: _,
        health: _,
        listen: _,
    } = app(&base());
    if let Some(CronSettings {
        expr: _,
        tz: _,
        overlap: _,
    }) = app(&base()).cron
    {}
    let Supervisor {
        socket: _,
        log_dir: _,
        shutdown_timeout: _,
        http: _,
        readers: _,
    } = config("").supervisor;
}

#[test]
fn values_are_shown_as_written() {
    let old = app(&base());
    let shown = |key: &str, value: &str| {
        let c = app_changes(&old, &app(&with(key, value))).remove(0);
        (c.old, c.new)
    };
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        shown("cmd", "\"node server.js\""),
        (s("[\"x\"]"), s("[\"node\", \"server.js\"]"))
    );
    assert_eq!(shown("kill_timeout", "\"1500ms\""), (s("5s"), s("1s500ms")));
    assert_eq!(shown("restart_delay", "\"90s\""), (s("100ms"), s("1m30s")));
    assert_eq!(shown("errored_retry", "\"1h\""), (s("5m"), s("1h")));
    assert_eq!(shown("max_memory", "\"300M\""), (None, s("300M")));
    assert_eq!(shown("log_max_line", "\"1M\""), (s("64K"), s("1M")));
    assert_eq!(
        shown("stop_signal", "\"QUIT\""),
        (s("SIGTERM"), s("SIGQUIT"))
    );
    assert_eq!(
        shown("restart", "\"on-failure\""),
        (s("always"), s("on-failure"))
    );
    assert_eq!(shown("log_target", "\"both\""), (None, s("both")));
    assert_eq!(shown("cwd", "\"/srv\""), (s("/cfg"), s("/srv")));
    assert_eq!(
        shown(
            "listen",
            "[\"tcp://127.0.0.1:3000\", \"unix:///run/a.sock\"]"
        ),
        (
            None,
            s("[\"tcp://127.0.0.1:3000\", \"unix:///run/a.sock\"]")
        )
    );
    assert_eq!(
        shown("env_file", "[\"x.env\", \"/cfg/empty.env\"]").1,
        s("[\"/cfg/x.env\", \"/cfg/empty.env\"]")
    );
    assert_eq!(
        shown("cron_restart", "\"@daily\""),
        (s("0 3 * * *"), s("@daily"))
    );
    assert_eq!(
        shown("cron_tz", "\"Europe/Berlin\""),
        (None, s("Europe/Berlin"))
    );
    assert_eq!(
        shown("ready", "{ notify = true, timeout = \"10s\" }"),
        (None, s("{ notify = true, timeout = \"10s\" }"))
    );
    assert_eq!(
        shown(
            "ready",
            "{ http = \"http://127.0.0.1:3000/health\", interval = \"250ms\" }"
        )
        .1,
        s("{ http = \"http://127.0.0.1:3000/health\" }"),
        "defaults are left out"
    );
    assert_eq!(
        shown(
            "health",
            "{ exec = [\"check\", \"-q\"], failures = 5, interval = \"2s\" }"
        )
        .1,
        s("{ exec = [\"check\", \"-q\"], interval = \"2s\", failures = 5 }")
    );
}

#[test]
fn env_is_compared_per_variable_and_secrets_are_masked() {
    let old = app(&with(
        "env",
        "{ KEEP = \"1\", GONE = \"x\", NODE_ENV = \"dev\", db_password = \"a\", SAME_TOKEN = \"t\" }",
    ));
    let new = app(&with(
        "env",
        "{ KEEP = \"1\", NODE_ENV = \"production\", db_password = \"b\", SAME_TOKEN = \"t\", \
         NEW = \"y\", Secret_Name = \"z\" }",
    ));
    assert_eq!(
        app_changes(&old, &new),
        [
            change("env.GONE", Some("x"), None, Needs::Restart),
            change("env.NEW", None, Some("y"), Needs::Restart),
            change(
                "env.NODE_ENV",
                Some("dev"),
                Some("production"),
                Needs::Restart
            ),
            change("env.Secret_Name", None, Some("***"), Needs::Restart),
            change("env.db_password", Some("***"), Some("***"), Needs::Restart),
        ]
    );
    assert!(is_secret("GITHUB_TOKEN") && is_secret("apikey") && is_secret("Password"));
    assert!(!is_secret("NODE_ENV") && !is_secret("PORT"));
}

#[test]
fn what_env_files_hold_shows_up_as_env_changes() {
    let old = app(&with("env_file", "\"a.env\""));
    let new = app(&with("env_file", "\"b.env\""));
    assert_eq!(
        app_changes(&old, &new),
        [
            change("env.A", Some("1"), Some("2"), Needs::Restart),
            change("env.API_KEY", Some("***"), Some("***"), Needs::Restart),
            change("env.B", None, Some("new"), Needs::Restart),
            change(
                "env_file",
                Some("[\"/cfg/a.env\"]"),
                Some("[\"/cfg/b.env\"]"),
                Needs::Live
            ),
        ]
    );
}

const OLD: &str = r#"
[supervisor]
socket = "/a.sock"
log_dir = "/logs"

[[app]]
name = "same"
cmd = "x"

[[app]]
name = "gone"
cmd = "x"

[[app]]
name = "scaled"
cmd = "x"

[[app]]
name = "tuned"
cmd = "x"

[[app]]
name = "also-gone"
cmd = "x"

[[app]]
name = "moved"
cmd = "x"
"#;

const NEW: &str = r#"
[supervisor]
socket = "/b.sock"
log_dir = "/var/log/sup"
http = "127.0.0.1:9615"
shutdown_timeout = "1m"

[[app]]
name = "fresh"
cmd = "x"

[[app]]
name = "moved"
cmd = "y"

[[app]]
name = "tuned"
cmd = "x"
kill_timeout = "10s"
max_memory = "300M"

[[app]]
name = "same"
cmd = "x"

[[app]]
name = "scaled"
cmd = "x"
instances = 4
"#;

#[test]
fn apps_are_added_changed_and_removed_in_order() {
    let d = diff(&config(OLD), &config(NEW));
    let kinds: Vec<(&str, DiffKind)> = d.apps.iter().map(|a| (a.name.as_str(), a.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("fresh", DiffKind::Added),
            ("moved", DiffKind::Changed),
            ("tuned", DiffKind::Changed),
            ("scaled", DiffKind::Changed),
            ("gone", DiffKind::Removed),
            ("also-gone", DiffKind::Removed),
        ],
        "new file's order, then removed ones in the old order; `same` is left out"
    );
    let by_name = |n: &str| d.apps.iter().find(|a| a.name == n).unwrap();
    assert!(by_name("fresh").changes.is_empty() && by_name("gone").changes.is_empty());
    assert!(!by_name("fresh").needs_restart());

    let moved = by_name("moved");
    assert_eq!(
        moved.changes,
        [change(
            "cmd",
            Some("[\"x\"]"),
            Some("[\"y\"]"),
            Needs::Restart
        )]
    );
    assert!(moved.needs_restart());

    let tuned = by_name("tuned");
    assert_eq!(
        tuned.changes,
        [
            change("kill_timeout", Some("5s"), Some("10s"), Needs::Live),
            change("max_memory", None, Some("300M"), Needs::Live),
        ]
    );
    assert!(!tuned.needs_restart(), "no key of it needs a new process");

    let scaled = by_name("scaled");
    assert_eq!(
        scaled.changes,
        [change("instances", Some("1"), Some("4"), Needs::Scale)]
    );
    assert!(!scaled.needs_restart());
}

#[test]
fn supervisor_socket_and_http_are_refused_the_rest_is_live() {
    let d = diff(&config(OLD), &config(NEW));
    assert_eq!(
        d.supervisor,
        [
            change("socket", Some("/a.sock"), Some("/b.sock"), Needs::Restart),
            change("http", None, Some("127.0.0.1:9615"), Needs::Restart),
            change("log_dir", Some("/logs"), Some("/var/log/sup"), Needs::Live),
            change("shutdown_timeout", Some("30s"), Some("1m"), Needs::Live),
        ]
    );
    assert_eq!(
        d.refused,
        [
            "`[supervisor] socket` cannot change while supd runs (/a.sock → /b.sock); \
             restart supd for that",
            "`[supervisor] http` cannot change while supd runs (not set → 127.0.0.1:9615); \
             restart supd for that",
        ]
    );
}

#[test]
fn the_same_config_has_an_empty_diff() {
    let d = diff(&config(OLD), &config(OLD));
    assert!(d.is_empty(), "{d:?}");
    assert!(Diff::default().is_empty());
    let elsewhere = OLD.replace("log_dir = \"/logs\"", "log_dir = \"/elsewhere\"");
    let d = diff(&config(OLD), &config(&elsewhere));
    assert!(!d.is_empty() && d.refused.is_empty() && d.apps.is_empty());
}

#[test]
fn durations_are_exact() {
    let cases = [
        (Duration::ZERO, "0ms"),
        (Duration::from_millis(100), "100ms"),
        (Duration::from_millis(999), "999ms"),
        (Duration::from_secs(5), "5s"),
        (Duration::from_millis(1500), "1s500ms"),
        (Duration::from_millis(1550), "1s550ms"),
        (Duration::from_secs(90), "1m30s"),
        (Duration::from_secs(300), "5m"),
        (Duration::from_secs(3605), "1h5s"),
        (Duration::from_secs(86_400 * 2), "2d"),
        (Duration::from_micros(1500), "1.5ms"),
    ];
    for (d, want) in cases {
        assert_eq!(duration(d), want, "{d:?}");
        if d.subsec_nanos() % 1_000_000 == 0 {
            let back = crate::config::units::parse_duration(want).expect("reads back");
            assert_eq!(back, d, "{want} can be copied into the file");
        }
    }
}

#[test]
fn choices_are_the_values_the_file_takes() {
    let all: Vec<(String, &[&str])> = vec![
        (choice(&RestartMode::Always), RESTART_VALUES),
        (choice(&RestartMode::OnFailure), RESTART_VALUES),
        (choice(&RestartMode::Never), RESTART_VALUES),
        (choice(&LogFormat::Text), LOG_FORMAT_VALUES),
        (choice(&LogFormat::Json), LOG_FORMAT_VALUES),
        (choice(&LogJson::String), LOG_JSON_VALUES),
        (choice(&LogJson::Embed), LOG_JSON_VALUES),
        (choice(&LogRotate::Daily), LOG_ROTATE_VALUES),
        (choice(&LogRotate::Hourly), LOG_ROTATE_VALUES),
        (choice(&LogTarget::File), LOG_TARGET_VALUES),
        (choice(&LogTarget::Stdout), LOG_TARGET_VALUES),
        (choice(&LogTarget::Both), LOG_TARGET_VALUES),
        (choice(&MemoryAction::Restart), MEMORY_ACTION_VALUES),
        (choice(&MemoryAction::Stop), MEMORY_ACTION_VALUES),
        (choice(&CronOverlap::Skip), CRON_OVERLAP_VALUES),
        (choice(&CronOverlap::Restart), CRON_OVERLAP_VALUES),
    ];
    for (shown, values) in all {
        assert!(values.contains(&shown.as_str()), "{shown} in {values:?}");
    }
    assert_eq!(
        signal(Signal(libc::SIGRTMIN() + 1)),
        format!("signal {}", libc::SIGRTMIN() + 1)
    );
}
