//! The `log_*` keys.

use super::*;
use crate::config::{LogFormat, LogJson, LogRotate, LogTarget};

#[test]
fn every_log_field_is_read_and_layered() {
    let text = r#"
[defaults]
log_format = "json"
log_max_size = "50M"
log_retain = 3
log_compress = true

[[app]]
name = "api"
cmd = "x"
log_json = "embed"
log_max_line = "1K"
log_split = true
log_file = "out/api.txt"
log_rotate = "hourly"
log_retain = 0
log_target = "both"

[app.profile.prod]
log_format = "text"
log_target = "stdout"
log_rotate = "daily"

[[app]]
name = "plain"
cmd = "x"
log_max_size = 2048
"#;
    let config = check(text).unwrap();
    let [api, plain] = &config.apps[..] else {
        panic!("two apps expected")
    };
    assert_eq!(
        api.log,
        LogSettings {
            format: LogFormat::Json,
            json: LogJson::Embed,
            max_line: 1024,
            split: true,
            file: Some(PathBuf::from("/cfg/out/api.txt")),
            max_size: Some(50 << 20),
            rotate: Some(LogRotate::Hourly),
            retain: 0,
            compress: true,
            target: Some(LogTarget::Both),
        }
    );
    assert_eq!(
        api.log.paths("api", &config.supervisor.log_dir),
        [
            PathBuf::from("/cfg/out/api.out.txt"),
            PathBuf::from("/cfg/out/api.err.txt")
        ]
    );
    assert_eq!(
        plain.log,
        LogSettings {
            format: LogFormat::Json,
            max_size: Some(2048),
            retain: 3,
            compress: true,
            ..LogSettings::default()
        }
    );
    assert_eq!(
        plain.log.paths("plain", &config.supervisor.log_dir),
        [PathBuf::from("/cfg/logs/plain.log")]
    );

    let prod = check_with(text, Some("prod")).unwrap();
    let api = &prod.apps[0].log;
    assert_eq!(api.format, LogFormat::Text);
    assert_eq!(api.target, Some(LogTarget::Stdout));
    assert_eq!(api.rotate, Some(LogRotate::Daily));
    assert_eq!(api.json, LogJson::Embed, "kept from the app");
}

#[test]
fn log_defaults_and_targets() {
    let d = LogSettings::default();
    assert_eq!(d.format, LogFormat::Text);
    assert_eq!(d.json, LogJson::String);
    assert_eq!(d.max_line, 64 * 1024);
    assert!(!d.split && !d.compress);
    assert_eq!((d.file.as_ref(), d.max_size, d.rotate), (None, None, None));
    assert_eq!(d.retain, 10);
    assert_eq!(d.target_for(false), LogTarget::File);
    assert_eq!(d.target_for(true), LogTarget::Stdout);
    let both = LogSettings {
        target: Some(LogTarget::Both),
        ..LogSettings::default()
    };
    assert_eq!(both.target_for(true), LogTarget::Both);
    let file = LogSettings {
        target: Some(LogTarget::File),
        ..LogSettings::default()
    };
    assert_eq!(file.target_for(true), LogTarget::File);
}

#[test]
fn split_names_without_an_extension() {
    let s = LogSettings {
        split: true,
        file: Some(PathBuf::from("/var/log/web")),
        ..LogSettings::default()
    };
    assert_eq!(
        s.paths("ignored", Path::new("/l")),
        [
            PathBuf::from("/var/log/web.out"),
            PathBuf::from("/var/log/web.err")
        ]
    );
    let s = LogSettings {
        split: true,
        ..LogSettings::default()
    };
    assert_eq!(
        s.paths("a.b", Path::new("/l")),
        [
            PathBuf::from("/l/a.b.out.log"),
            PathBuf::from("/l/a.b.err.log")
        ]
    );
}

#[test]
fn two_apps_cannot_share_a_log_file() {
    let text = "[supervisor]\nlog_dir = \"/l\"\n\
                [[app]]\nname = \"a\"\ncmd = \"x\"\n\
                [[app]]\nname = \"b\"\ncmd = \"x\"\nlog_file = \"/l/a.log\"\n\
                [[app]]\nname = \"a.out\"\ncmd = \"x\"\n\
                [[app]]\nname = \"c\"\ncmd = \"x\"\nlog_file = \"/l/a.log\"\nlog_split = true\n";
    assert_eq!(
        errors(text),
        [
            "9:12: log file `/l/a.log` of app `b` is already the log file of app `a` \
             (expected a `log_file` of its own for each app)",
            "16:12: log file `/l/a.out.log` of app `c` is already the log file of app `a.out` \
             (expected a `log_file` of its own for each app)",
        ]
    );
    // A log_file in [defaults] would send every app to one file.
    assert_eq!(
        errors(
            "[defaults]\nlog_file = \"all.log\"\n\
             [[app]]\nname = \"a\"\ncmd = \"x\"\n[[app]]\nname = \"b\"\ncmd = \"x\"\n"
        ),
        [
            "2:12: log file `/cfg/all.log` of app `b` is already the log file of app `a` \
          (expected a `log_file` of its own for each app)"
        ]
    );
}

/// A copy of the contract sample `logs.toml`, which uses every log key.
const LOGS_CONTRACT: &str = r#"# Every key of the logs capability (issue "Structured, rotated, lossless logs").
[supervisor]
socket = "/tmp/sup-contract/supd.sock"
log_dir = "/tmp/sup-contract/logs"

[defaults]
log_format = "json"
log_max_size = "50M"
log_retain = 10
log_compress = true

[[app]]
name = "backend"
cmd = ["node", "server.js"]
log_json = "embed"
log_max_line = "64K"
log_rotate = "daily"
log_target = "both"

[[app]]
name = "studio"
cmd = ["python3", "app.py"]
log_format = "text"
log_split = true
log_rotate = "hourly"
log_target = "file"

[[app]]
name = "jobs"
cmd = ["python3", "worker.py"]
log_file = "/tmp/sup-contract/logs/jobs-custom.log"
log_target = "stdout"
"#;

#[test]
fn the_logs_contract_file_validates() {
    let config = check(LOGS_CONTRACT).unwrap();
    assert_eq!(summary(&config), "ok: 3 apps, 3 instances");
    let [backend, studio, jobs] = &config.apps[..] else {
        panic!("three apps expected");
    };
    let dir = &config.supervisor.log_dir;
    assert_eq!(backend.log.format, LogFormat::Json);
    assert_eq!(backend.log.json, LogJson::Embed);
    assert_eq!(backend.log.max_line, 64 * 1024);
    assert_eq!(backend.log.max_size, Some(50 << 20));
    assert_eq!(backend.log.rotate, Some(LogRotate::Daily));
    assert_eq!(backend.log.retain, 10);
    assert!(backend.log.compress);
    assert_eq!(backend.log.target, Some(LogTarget::Both));
    assert_eq!(
        backend.log.paths("backend", dir),
        [PathBuf::from("/tmp/sup-contract/logs/backend.log")]
    );
    assert_eq!(studio.log.format, LogFormat::Text);
    assert_eq!(studio.log.rotate, Some(LogRotate::Hourly));
    assert_eq!(studio.log.target, Some(LogTarget::File));
    assert_eq!(
        studio.log.paths("studio", dir),
        [
            PathBuf::from("/tmp/sup-contract/logs/studio.out.log"),
            PathBuf::from("/tmp/sup-contract/logs/studio.err.log")
        ]
    );
    assert_eq!(jobs.log.target, Some(LogTarget::Stdout));
    assert_eq!(jobs.log.json, LogJson::String);
    assert_eq!(
        jobs.log.paths("jobs", dir),
        [PathBuf::from("/tmp/sup-contract/logs/jobs-custom.log")]
    );
}
