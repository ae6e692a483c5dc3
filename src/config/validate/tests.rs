//! Validation tests: defaults, layering, profiles, and every error with its position.
//! The tests of a group of keys are in the submodules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{summary, validate_as, Files};
use crate::config::raw::{APP_KEYS, SUPERVISOR_KEYS};
use crate::config::units::DURATION_EXPECTED;
use crate::config::{App, Config, ConfigErrors, LogSettings, MemorySettings, RestartMode};
use crate::config::{Signal, Supervisor};

mod env_file;
mod logs;
mod probe;
mod watch;

const FILE: &str = "/cfg/ecosystem.toml";

fn is_dir(p: &Path) -> bool {
    ["/", "/cfg", "/cfg/web", "/srv/app", "/tmp"]
        .iter()
        .any(|d| p == Path::new(d))
}

/// The env files the tests may name; any other path does not exist.
fn read(p: &Path) -> std::io::Result<Vec<u8>> {
    let bytes: &[u8] = match p.to_str().unwrap_or_default() {
        "/cfg/.env" => b"# shared\nA=from file\nB=from file\n",
        "/cfg/local.env" => b"B=from local\nC=from local\n",
        "/cfg/secret.env" => b"export TOKEN='s3cr3t'\n",
        "/cfg/bad.env" => b"OK=1\n1X=2\n  Y = 'open\n",
        "/cfg/binary.env" => b"A=1\nB=\xff\n",
        "/cfg/web" => return Err(std::io::Error::from_raw_os_error(libc::EISDIR)),
        _ => return Err(std::io::Error::from_raw_os_error(libc::ENOENT)),
    };
    Ok(bytes.to_vec())
}

const FILES: Files<'static> = Files {
    is_dir: &is_dir,
    read: &read,
};

fn check_with(text: &str, profile: Option<&str>) -> Result<Config, ConfigErrors> {
    validate_as(Path::new(FILE), text, profile, 4, &FILES, false)
}

fn check(text: &str) -> Result<Config, ConfigErrors> {
    check_with(text, None)
}

/// The errors as displayed, without the file name.
fn errors_with(text: &str, profile: Option<&str>) -> Vec<String> {
    let errors = check_with(text, profile).err().unwrap();
    errors
        .iter()
        .map(|e| {
            let shown = e.to_string();
            shown.strip_prefix(&format!("{FILE}:")).unwrap().to_string()
        })
        .collect()
}

fn errors(text: &str) -> Vec<String> {
    errors_with(text, None)
}

fn app(text: &str) -> App {
    let mut config = check(text).unwrap();
    assert_eq!(config.apps.len(), 1);
    config.apps.remove(0)
}

#[test]
fn minimal_app_gets_every_default() {
    let config = check("[[app]]\nname = \"web\"\ncmd = \"node server.js\"\n").unwrap();
    assert_eq!(config.path, PathBuf::from(FILE));
    assert_eq!(
        config.supervisor,
        Supervisor {
            socket: None,
            log_dir: PathBuf::from("/cfg/logs"),
            shutdown_timeout: Duration::from_secs(30),
            http: None,
            readers: Vec::new(),
        }
    );
    assert_eq!(
        config.apps,
        vec![App {
            name: "web".into(),
            cmd: vec!["node".into(), "server.js".into()],
            cwd: PathBuf::from("/cfg"),
            env: BTreeMap::new(),
            env_file: Vec::new(),
            instances: 1,
            restart: RestartMode::Always,
            restart_delay: Duration::from_millis(100),
            max_restarts: 16,
            min_uptime: Duration::from_secs(1),
            errored_retry: Duration::from_secs(300),
            stop_signal: Signal::TERM,
            kill_timeout: Duration::from_secs(5),
            autostart: true,
            user: None,
            group: None,
            log: LogSettings::default(),
            memory: MemorySettings::default(),
            max_surge: 1,
            cron: None,
            ready: None,
            health: None,
            listen: Vec::new(),
        }]
    );
}

#[test]
fn root_logs_to_var_log() {
    let config = validate_as(Path::new(FILE), "", None, 1, &FILES, true).unwrap();
    assert_eq!(config.supervisor.log_dir, PathBuf::from("/var/log/sup"));
}

#[test]
fn no_apps_is_fine() {
    let config = check("[supervisor]\nshutdown_timeout = \"1m\"\n").unwrap();
    assert!(config.apps.is_empty());
    assert_eq!(config.supervisor.shutdown_timeout, Duration::from_secs(60));
    assert_eq!(summary(&config), "ok: 0 apps, 0 instances");
}

#[test]
fn relative_paths_resolve_against_the_config_dir() {
    let config = check(
        "[supervisor]\nsocket = \"run/supd.sock\"\nlog_dir = \"./logs\"\n\
         [[app]]\nname = \"a\"\ncmd = \"x\"\ncwd = \"web\"\n\
         [[app]]\nname = \"b\"\ncmd = \"x\"\ncwd = \".\"\n\
         [[app]]\nname = \"c\"\ncmd = \"x\"\ncwd = \"/srv/app\"\n",
    )
    .unwrap();
    assert_eq!(
        config.supervisor.socket,
        Some(PathBuf::from("/cfg/run/supd.sock"))
    );
    assert_eq!(config.supervisor.log_dir, PathBuf::from("/cfg/logs"));
    let cwds: Vec<&Path> = config.apps.iter().map(|a| a.cwd.as_path()).collect();
    assert_eq!(
        cwds,
        [
            Path::new("/cfg/web"),
            Path::new("/cfg"),
            Path::new("/srv/app")
        ]
    );
}

#[test]
fn every_field_is_read() {
    let a = app(r#"
[[app]]
name = "w.e_b-1"
cmd = ["node", "a b.js"]
cwd = "/tmp"
env = { A = "1", B = "" }
instances = "max"
restart = "on-failure"
restart_delay = "250ms"
max_restarts = 0
min_uptime = "1m30s"
errored_retry = "1h"
stop_signal = "int"
kill_timeout = "0"
autostart = false
user = "nobody"
group = "nogroup"
"#);
    assert_eq!(a.name, "w.e_b-1");
    assert_eq!(a.cmd, ["node", "a b.js"]);
    assert_eq!(a.cwd, PathBuf::from("/tmp"));
    assert_eq!(a.env.get("A").map(String::as_str), Some("1"));
    assert_eq!(a.env.get("B").map(String::as_str), Some(""));
    assert_eq!(a.instances, 4);
    assert_eq!(a.restart, RestartMode::OnFailure);
    assert_eq!(a.restart_delay, Duration::from_millis(250));
    assert_eq!(a.max_restarts, 0);
    assert_eq!(a.min_uptime, Duration::from_secs(90));
    assert_eq!(a.errored_retry, Duration::from_secs(3600));
    assert_eq!(a.stop_signal, Signal(libc::SIGINT));
    assert_eq!(a.kill_timeout, Duration::ZERO);
    assert!(!a.autostart);
    assert_eq!(a.user.as_deref(), Some("nobody"));
    assert_eq!(a.group.as_deref(), Some("nogroup"));
}

#[test]
fn group_without_user_and_never_restart() {
    let a = app("[[app]]\nname = \"j\"\ncmd = [\"j\"]\ngroup = \"staff\"\nrestart = \"never\"\n");
    assert_eq!(a.user, None);
    assert_eq!(a.group.as_deref(), Some("staff"));
    assert_eq!(a.restart, RestartMode::Never);
}

/// One error per case: the snippet, and the error as displayed after `FILE:`.
#[test]
fn each_error_kind() {
    let cases: &[(&str, &str)] = &[
        // unknown keys, with and without a suggestion
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nkill_timout = \"5s\"\n",
            "4:1: unknown field `kill_timout`, did you mean `kill_timeout`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory = \"5M\"\n",
            "4:1: unknown field `memory` (expected one of `name`, `cmd`, `cwd`, `env`, `env_file`, \
             `instances`, `restart`, `restart_delay`, `max_restarts`, `min_uptime`, \
             `errored_retry`, `stop_signal`, `kill_timeout`, `autostart`, `user`, \
             `group`, `log_format`, `log_json`, `log_max_line`, `log_split`, `log_file`, \
             `log_max_size`, `log_rotate`, `log_retain`, `log_compress`, `log_target`, \
             `max_memory`, `memory_interval`, `memory_samples`, `memory_action`, \
             `max_unavailable`, `max_surge`, `cron_restart`, `cron_tz`, `cron_overlap`, `ready`, `health`, `listen`, `profile`)",
        ),
        (
            "[supervisor]\nsocked = \"/tmp/s\"\n",
            "2:1: unknown field `socked`, did you mean `socket`?",
        ),
        (
            "[supervisor]\nhtp = \"127.0.0.1:9615\"\n",
            "2:1: unknown field `htp`, did you mean `http`?",
        ),
        ("[default]\n", "1:2: unknown field `default`, did you mean `defaults`?"),
        (
            "[defaults]\nkill_timeot = \"1s\"\n",
            "2:1: unknown field `kill_timeot`, did you mean `kill_timeout`?",
        ),
        (
            "[defaults]\nname = \"x\"\n",
            "2:1: `name` cannot be set in [defaults]: every app names itself",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.prod]\ninstanses = 2\n",
            "5:1: unknown field `instanses`, did you mean `instances`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.prod]\nname = \"b\"\n",
            "5:1: `name` cannot be changed by a profile",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.prod.profile.x]\n",
            "4:19: profiles cannot be nested",
        ),
        // wrong types
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\ncwd = 5\n",
            "4:7: invalid type for `cwd`: found an integer (expected a path)",
        ),
        (
            "[[app]]\nname = 5\ncmd = \"x\"\n",
            "2:8: invalid type for `name`: found an integer (expected a string)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nkill_timeout = true\n",
            "4:16: invalid type for `kill_timeout`: found a boolean \
             (expected a duration like \"500ms\", \"5s\", \"2m\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nkill_timeout = 5\n",
            "4:16: invalid `kill_timeout`: the number 5 has no unit; write a string like \
             \"5s\" or \"5ms\" (expected a duration like \"500ms\", \"5s\", \"2m\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmin_uptime = \"5\"\n",
            "4:14: invalid `min_uptime`: duration `5` has no unit; add one, e.g. \"5s\" or \
             \"5ms\" (expected a duration like \"500ms\", \"5s\", \"2m\")",
        ),
        (
            "[supervisor]\nshutdown_timeout = \"30 sec\"\n",
            "2:20: invalid `shutdown_timeout`: invalid duration `30 sec`: unexpected ' ' \
             (expected a duration like \"500ms\", \"5s\", \"2m\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nautostart = \"yes\"\n",
            "4:13: invalid type for `autostart`: found a string (expected true or false)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nenv = [\"A=1\"]\n",
            "4:7: invalid type for `env`: found an array \
             (expected a table of strings, like { NODE_ENV = \"production\" })",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nenv = { PORT = 3000 }\n",
            "4:16: invalid type for `env.PORT`: found an integer \
             (expected a string (quote numbers and booleans))",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nenv = { \"A=B\" = \"1\" }\n",
            "4:9: invalid environment variable name \"A=B\" (expected a non-empty name without `=`)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_restarts = \"3\"\n",
            "4:16: invalid type for `max_restarts`: found a string (expected a non-negative integer)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = [\"x\", 1]\n",
            "3:13: invalid type for a `cmd` element: found an integer (expected a string)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = { x = 1 }\n",
            "3:7: invalid type for `cmd`: found a table (expected an array of strings, or a string)",
        ),
        ("[supervisor]\nlog_dir = \"\"\n", "2:11: `log_dir` is empty (expected a path)"),
        ("supervisor = 1\n", "1:14: invalid type for `supervisor`: found an integer (expected a table: [supervisor])"),
        // `app` of the wrong shape
        (
            "[app]\nname = \"a\"\n",
            "1:1: `app` must be an array of tables: write [[app]], not [app]",
        ),
        (
            "app = \"web\"\n",
            "1:7: invalid type for `app`: found a string (expected an array of tables: [[app]])",
        ),
        (
            "app = [1]\n",
            "1:8: invalid type for `app`: found an integer (expected a table like [[app]])",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nprofile = \"prod\"\n",
            "4:11: invalid type for `profile`: found a string (expected tables like [app.profile.NAME])",
        ),
        // required fields
        ("[[app]]\ncmd = \"x\"\n", "1:1: missing field `name`"),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\n[[app]]\n",
            "4:1: missing field `cmd`\n4:1: missing field `name`",
        ),
        ("[[app]]\nname = \"a\"\n", "1:1: missing field `cmd` in app `a`"),
        // names
        ("[[app]]\nname = \"\"\ncmd = \"x\"\n", "2:8: app name is empty"),
        (
            "[[app]]\nname = \"all\"\ncmd = \"x\"\n",
            "2:8: app name `all` is reserved: supctl uses it for every app",
        ),
        (
            "[[app]]\nname = \"web:1\"\ncmd = \"x\"\n",
            "2:8: app name `web:1` contains `:`, which supctl uses for `name:INDEX`",
        ),
        (
            "[[app]]\nname = \"wéb\"\ncmd = \"x\"\n",
            "2:8: app name `wéb` contains the character 'é' (expected only letters, digits, `_`, `.` and `-`)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\n\n[[app]]\nname = \"a\"\ncmd = \"y\"\n",
            "6:8: duplicate app name `a` (first defined on line 2)",
        ),
        // cmd
        ("[[app]]\nname = \"a\"\ncmd = []\n", "3:7: `cmd` is empty (expected an array of strings, or a string)"),
        ("[[app]]\nname = \"a\"\ncmd = \"  \"\n", "3:7: `cmd` is empty (expected an array of strings, or a string)"),
        (
            "[[app]]\nname = \"a\"\ncmd = [\"\", \"x\"]\n",
            "3:8: the program (first word of `cmd`) is empty",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"echo 'hi\"\n",
            "3:7: `cmd` cannot be split into words (an unclosed quote or a trailing backslash?)",
        ),
        // instances
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\ninstances = 0\n",
            "4:13: `instances` must be at least 1, found 0 (expected a positive integer or \"max\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\ninstances = -3\n",
            "4:13: `instances` must be at least 1, found -3 (expected a positive integer or \"max\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\ninstances = \"all\"\n",
            "4:13: invalid `instances` \"all\" (expected a positive integer or \"max\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\ninstances = 2.5\n",
            "4:13: invalid type for `instances`: found a float (expected a positive integer or \"max\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\ninstances = 99999999999999999999999999999999999999999\n",
            "4:13: `instances` is too large, found 99999999999999999999999999999999999999999 \
             (expected a positive integer or \"max\")",
        ),
        // integers out of range
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_restarts = -1\n",
            "4:16: `max_restarts` cannot be negative, found -1 (expected a non-negative integer)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_restarts = 4294967296\n",
            "4:16: `max_restarts` is too large, found 4294967296 (at most 4294967295) \
             (expected a non-negative integer)",
        ),
        // signals
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nstop_signal = \"SIGFOO\"\n",
            "4:15: unknown signal `SIGFOO` (expected a signal name like \"SIGTERM\", \
             \"SIGINT\", \"SIGHUP\", \"SIGQUIT\", \"SIGUSR1\", \"SIGUSR2\")",
        ),
        // restart
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nrestart = \"on_failure\"\n",
            "4:11: unknown restart mode `on_failure`, did you mean `on-failure`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nrestart = \"sometimes\"\n",
            "4:11: unknown restart mode `sometimes` (expected one of `always`, `on-failure`, `never`)",
        ),
        // user / group
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nuser = \"\"\n",
            "4:8: `user` is empty (expected a user name or numeric uid)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\ngroup = \" \"\n",
            "4:9: `group` is empty (expected a group name or numeric gid)",
        ),
        // cwd that does not exist (as answered by `is_dir`)
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\ncwd = \"nope\"\n",
            "4:7: `cwd` `/cfg/nope` does not exist or is not a directory",
        ),
        // the socket path must fit in sun_path
        (
            &*Box::leak(format!("[supervisor]\nsocket = \"/{}\"\n", "s".repeat(107)).into_boxed_str()),
            &*Box::leak(format!(
                "2:10: `socket` path `/{}` is too long for a Unix socket (108 bytes, at most 107)",
                "s".repeat(107)
            ).into_boxed_str()),
        ),
        // log keys
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_format = \"jsno\"\n",
            "4:14: unknown `log_format` value `jsno`, did you mean `json`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_format = \"yaml\"\n",
            "4:14: unknown `log_format` value `yaml` (expected one of `text`, `json`)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_json = \"embd\"\n",
            "4:12: unknown `log_json` value `embd`, did you mean `embed`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_rotate = \"weekly\"\n",
            "4:14: unknown `log_rotate` value `weekly` (expected one of `daily`, `hourly`)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_rotate = \"dayly\"\n",
            "4:14: unknown `log_rotate` value `dayly`, did you mean `daily`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_target = \"stdot\"\n",
            "4:14: unknown `log_target` value `stdot`, did you mean `stdout`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_target = 1\n",
            "4:14: invalid type for `log_target`: found an integer \
             (expected one of `file`, `stdout`, `both`)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_max_line = \"512\"\n",
            "4:16: `log_max_line` must be at least 1K, found 512B \
             (expected a size like \"512M\", \"1G\", \"64K\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_max_line = \"17M\"\n",
            "4:16: `log_max_line` must be at most 16M, found 17M \
             (expected a size like \"512M\", \"1G\", \"64K\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_max_size = \"50Q\"\n",
            "4:16: invalid `log_max_size`: invalid size `50Q`: unknown unit `Q` \
             (units: B, K, M, G, T) (expected a size like \"512M\", \"1G\", \"64K\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_max_size = 0\n",
            "4:16: `log_max_size` must be at least 1K, found 0B \
             (expected a size like \"512M\", \"1G\", \"64K\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_max_size = true\n",
            "4:16: invalid type for `log_max_size`: found a boolean \
             (expected a size like \"512M\", \"1G\", \"64K\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_retain = -1\n",
            "4:14: `log_retain` cannot be negative, found -1 (expected a non-negative integer)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_retain = 1001\n",
            "4:14: `log_retain` is too large, found 1001 (at most 1000) \
             (expected a non-negative integer)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_split = \"yes\"\n",
            "4:13: invalid type for `log_split`: found a string (expected true or false)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_file = \"\"\n",
            "4:12: `log_file` is empty (expected a path)",
        ),
        (
            "[defaults]\nlog_formt = \"json\"\n",
            "2:1: unknown field `log_formt`, did you mean `log_format`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.p]\nlog_taget = \"both\"\n",
            "5:1: unknown field `log_taget`, did you mean `log_target`?",
        ),
        // memory keys
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_memory = \"512K\"\n",
            "4:14: `max_memory` must be at least 1M, found 512K \
             (expected a size like \"512M\", \"1G\", \"64K\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_memory = \"300X\"\n",
            "4:14: invalid `max_memory`: invalid size `300X`: unknown unit `X` \
             (units: B, K, M, G, T) (expected a size like \"512M\", \"1G\", \"64K\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_memory = true\n",
            "4:14: invalid type for `max_memory`: found a boolean \
             (expected a size like \"512M\", \"1G\", \"64K\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_memory = -5\n",
            "4:14: invalid `max_memory`: invalid size `-5` \
             (expected a size like \"512M\", \"1G\", \"64K\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_interval = \"50ms\"\n",
            "4:19: `memory_interval` must be at least 100ms, found 50ms \
             (expected a duration like \"500ms\", \"5s\", \"2m\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_interval = 0\n",
            "4:19: `memory_interval` must be at least 100ms, found 0 \
             (expected a duration like \"500ms\", \"5s\", \"2m\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_interval = 5\n",
            "4:19: invalid `memory_interval`: the number 5 has no unit; write a string like \
             \"5s\" or \"5ms\" (expected a duration like \"500ms\", \"5s\", \"2m\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_interval = \"1x\"\n",
            "4:19: invalid `memory_interval`: invalid duration `1x`: unknown unit `x` \
             (units: ms, s, m, h, d) (expected a duration like \"500ms\", \"5s\", \"2m\")",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_samples = 0\n",
            "4:18: `memory_samples` must be at least 1, found 0 (expected a positive integer)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_samples = \"2\"\n",
            "4:18: invalid type for `memory_samples`: found a string (expected a positive integer)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_samples = 4294967296\n",
            "4:18: `memory_samples` is too large, found 4294967296 (at most 4294967295) \
             (expected a positive integer)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_action = \"restrat\"\n",
            "4:17: unknown `memory_action` value `restrat`, did you mean `restart`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_action = \"Stop\"\n",
            "4:17: unknown `memory_action` value `Stop`, did you mean `stop`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_action = \"kill\"\n",
            "4:17: unknown `memory_action` value `kill` (expected one of `restart`, `stop`)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_action = 1\n",
            "4:17: invalid type for `memory_action`: found an integer \
             (expected one of `restart`, `stop`)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_unavailable = -1\n",
            "4:19: `max_unavailable` must be at least 1, found -1 (expected a positive integer)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_unavailable = 1.5\n",
            "4:19: invalid type for `max_unavailable`: found a float (expected a positive integer)",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_memmory = \"1G\"\n",
            "4:1: unknown field `max_memmory`, did you mean `max_memory`?",
        ),
        (
            "[defaults]\nmax_memroy = \"1G\"\n",
            "2:1: unknown field `max_memroy`, did you mean `max_memory`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.p]\nmemory_acton = \"stop\"\n",
            "5:1: unknown field `memory_acton`, did you mean `memory_action`?",
        ),
        (
            "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.p]\nmemory_samples = 0\n",
            "5:18: `memory_samples` must be at least 1, found 0 (expected a positive integer)",
        ),
        // TOML syntax
        (
            "[[app]]\nname = \"a\ncmd = \"x\"\n",
            "2:10: TOML syntax error: invalid basic string, expected `\"`",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(errors(text).join("\n"), *want, "\n--- input:\n{text}");
    }
}

#[test]
fn every_error_of_a_file_is_reported_in_order() {
    let text = r#"
[supervisor]
shutdown_timeout = "30"
bogus = 1

[defaults]
kill_timeout = "5x"

[[app]]
name = "web"
cmd = []
instances = 0
restart = "on_failure"

[[app]]
name = "web"
cmd = "ok"
stop_signal = "SIGTREM"
cwd = "missing"

[[app]]
cmd = "x"
user = ""
"#;
    assert_eq!(
        errors(text),
        [
            "3:20: invalid `shutdown_timeout`: duration `30` has no unit; add one, e.g. \
             \"30s\" or \"30ms\" (expected a duration like \"500ms\", \"5s\", \"2m\")",
            "4:1: unknown field `bogus` (expected one of `socket`, `log_dir`, `shutdown_timeout`, `http`, `readers`)",
            "7:16: invalid `kill_timeout`: invalid duration `5x`: unknown unit `x` \
             (units: ms, s, m, h, d) (expected a duration like \"500ms\", \"5s\", \"2m\")",
            "11:7: `cmd` is empty (expected an array of strings, or a string)",
            "12:13: `instances` must be at least 1, found 0 (expected a positive integer or \"max\")",
            "13:11: unknown restart mode `on_failure`, did you mean `on-failure`?",
            "16:8: duplicate app name `web` (first defined on line 10)",
            "18:15: unknown signal `SIGTREM`, did you mean `SIGTERM`? (expected a signal name \
             like \"SIGTERM\", \"SIGINT\", \"SIGHUP\", \"SIGQUIT\", \"SIGUSR1\", \"SIGUSR2\")",
            "19:7: `cwd` `/cfg/missing` does not exist or is not a directory",
            "21:1: missing field `name`",
            "23:8: `user` is empty (expected a user name or numeric uid)",
        ]
    );
}

#[test]
fn error_fields_carry_file_key_and_expected() {
    let errors = check("[[app]]\nname = \"web\"\ncmd = \"x\"\nkill_timeout = 5\n")
        .err()
        .unwrap();
    let e = &errors.0[0];
    assert_eq!(e.file, PathBuf::from(FILE));
    assert_eq!((e.line, e.col), (4, 16));
    assert_eq!(e.key.as_deref(), Some("app.web.kill_timeout"));
    assert_eq!(e.expected.as_deref(), Some(DURATION_EXPECTED));
}

#[test]
fn invalid_values_in_unused_profiles_are_still_errors() {
    let text = "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.prod]\ninstances = 0\n";
    assert_eq!(errors(text).len(), 1);
    assert_eq!(errors_with(text, Some("prod")).len(), 1);
}

const LAYERED: &str = r#"
[defaults]
kill_timeout = "9s"
max_restarts = 3
env = { TZ = "UTC", LEVEL = "info" }

[[app]]
name = "web"
cmd = ["node", "web.js"]
max_restarts = 5
env = { LEVEL = "debug", PORT = "3000" }

[app.profile.production]
instances = 4
cmd = "node --max-old-space-size=512 web.js"
env = { LEVEL = "warn", NODE_ENV = "production" }

[app.profile.staging]
instances = 2

[[app]]
name = "worker"
cmd = "worker"
"#;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_then_app_then_profile() {
    let plain = check_with(LAYERED, None).unwrap();
    let web = &plain.apps[0];
    assert_eq!(web.kill_timeout, Duration::from_secs(9), "from [defaults]");
    assert_eq!(web.max_restarts, 5, "the app's own value beats [defaults]");
    assert_eq!(web.instances, 1);
    assert_eq!(web.cmd, ["node", "web.js"]);
    assert_eq!(
        web.env,
        env(&[("LEVEL", "debug"), ("PORT", "3000"), ("TZ", "UTC")])
    );
    let worker = &plain.apps[1];
    assert_eq!(worker.max_restarts, 3);
    assert_eq!(worker.env, env(&[("LEVEL", "info"), ("TZ", "UTC")]));
    assert_eq!(summary(&plain), "ok: 2 apps, 2 instances");

    let prod = check_with(LAYERED, Some("production")).unwrap();
    let web = &prod.apps[0];
    assert_eq!(web.instances, 4);
    assert_eq!(web.cmd, ["node", "--max-old-space-size=512", "web.js"]);
    assert_eq!(web.max_restarts, 5);
    assert_eq!(
        web.env,
        env(&[
            ("LEVEL", "warn"),
            ("NODE_ENV", "production"),
            ("PORT", "3000"),
            ("TZ", "UTC"),
        ])
    );
    assert_eq!(
        prod.apps[1], plain.apps[1],
        "an app without the profile is unchanged"
    );
    assert_eq!(summary(&prod), "ok: 2 apps, 5 instances");

    let staging = check_with(LAYERED, Some("staging")).unwrap();
    assert_eq!(staging.apps[0].instances, 2);
    assert_eq!(staging.apps[0].env, plain.apps[0].env);
}

#[test]
fn a_profile_can_fix_a_missing_cwd_only_when_selected() {
    let text = "[[app]]\nname = \"a\"\ncmd = \"x\"\ncwd = \"/srv/app\"\n\
                [app.profile.dev]\ncwd = \"/home/dev/app\"\n";
    assert!(check_with(text, None).is_ok());
    assert_eq!(
        errors_with(text, Some("dev")),
        ["6:7: `cwd` `/home/dev/app` does not exist or is not a directory"]
    );
}

#[test]
fn unknown_profile() {
    assert_eq!(
        errors_with(LAYERED, Some("prod")),
        ["13:14: profile `prod` is not defined by any app \
          (profiles are [app.profile.NAME] tables; this file defines `production`, `staging`)"]
    );
    assert_eq!(
        errors_with(LAYERED, Some("stagin")),
        [
            "13:14: profile `stagin` is not defined by any app, did you mean `staging`? \
          (profiles are [app.profile.NAME] tables; this file defines `production`, `staging`)"
        ]
    );
    assert_eq!(
        errors_with("[[app]]\nname = \"a\"\ncmd = \"x\"\n", Some("prod")),
        [
            "1:1: profile `prod` is not defined: this file has no profiles \
          (add an [app.profile.prod] table to an app)"
        ]
    );
}

#[test]
fn summary_counts() {
    let config = check("[[app]]\nname = \"a\"\ncmd = \"x\"\n").unwrap();
    assert_eq!(summary(&config), "ok: 1 app, 1 instance");
}

/// A copy of the contract sample `foundation.toml`, which uses every foundation key.
const FOUNDATION: &str = r#"# Every key of the foundation (DESIGN §3, §6).
[supervisor]
socket = "/tmp/sup-contract/supd.sock"
log_dir = "/tmp/sup-contract/logs"
shutdown_timeout = "30s"

[defaults]
kill_timeout = "5s"
restart_delay = "100ms"

[[app]]
name = "backend"
cmd = ["node", "examples/backend/server.js"]
cwd = "/"
env = { NODE_ENV = "development", PORT = "3000" }
instances = "max"
restart = "always"
restart_delay = "250ms"
max_restarts = 10
min_uptime = "1s"
stop_signal = "SIGINT"
kill_timeout = "3s"
autostart = true

[app.profile.production]
instances = 4
env = { NODE_ENV = "production" }

[[app]]
name = "studio"
cmd = "python3 -m http.server 8000"   # a string is split like a shell would, never run by one
restart = "on-failure"
errored_retry = "5m"

[[app]]
name = "jobs"
cmd = ["python3", "examples/jobs/worker.py"]
instances = 2
restart = "never"
autostart = false
user = "nobody"
group = "nogroup"
"#;

#[test]
fn the_contract_file_validates() {
    let config = validate_as(Path::new(FILE), FOUNDATION, None, 8, &FILES, false).unwrap();
    assert_eq!(summary(&config), "ok: 3 apps, 11 instances");
    assert_eq!(
        config.supervisor,
        Supervisor {
            socket: Some(PathBuf::from("/tmp/sup-contract/supd.sock")),
            log_dir: PathBuf::from("/tmp/sup-contract/logs"),
            shutdown_timeout: Duration::from_secs(30),
            http: None,
            readers: Vec::new(),
        }
    );
    let [backend, studio, jobs] = &config.apps[..] else {
        panic!("three apps expected");
    };
    assert_eq!(backend.cwd, PathBuf::from("/"));
    assert_eq!(backend.instances, 8);
    assert_eq!(backend.restart_delay, Duration::from_millis(250));
    assert_eq!(backend.kill_timeout, Duration::from_secs(3));
    assert_eq!(backend.stop_signal, Signal(libc::SIGINT));
    assert_eq!(backend.max_restarts, 10);
    assert_eq!(studio.cmd, ["python3", "-m", "http.server", "8000"]);
    assert_eq!(studio.restart, RestartMode::OnFailure);
    assert_eq!(studio.restart_delay, Duration::from_millis(100));
    assert_eq!(studio.kill_timeout, Duration::from_secs(5));
    assert_eq!(studio.errored_retry, Duration::from_secs(300));
    assert_eq!(studio.cwd, PathBuf::from("/cfg"));
    assert_eq!(jobs.restart, RestartMode::Never);
    assert!(!jobs.autostart);
    assert_eq!(jobs.user.as_deref(), Some("nobody"));
    assert_eq!(jobs.group.as_deref(), Some("nogroup"));

    let prod = check_with(FOUNDATION, Some("production")).unwrap();
    assert_eq!(summary(&prod), "ok: 3 apps, 7 instances");
    assert_eq!(
        prod.apps[0].env,
        env(&[("NODE_ENV", "production"), ("PORT", "3000")])
    );
}

#[test]
fn keys_tables_match_the_fields_read() {
    // Every APP_KEYS entry is accepted somewhere, and no other key is.
    for key in APP_KEYS {
        let text = format!("[[app]]\nname = \"a\"\ncmd = \"x\"\n{key} = true\n");
        let shown = check(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!shown.contains("unknown field"), "{key}: {shown}");
    }
    for key in SUPERVISOR_KEYS {
        let text = format!("[supervisor]\n{key} = true\n");
        let shown = check(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!shown.contains("unknown field"), "{key}: {shown}");
    }
}

#[test]
fn max_surge_is_read_and_layered() {
    let text = "[defaults]\nmax_surge = 2\n\
                [[app]]\nname = \"a\"\ncmd = \"x\"\n\
                [[app]]\nname = \"b\"\ncmd = \"x\"\nmax_surge = 0\n\
                [app.profile.prod]\nmax_surge = 3\n";
    let config = check(text).unwrap();
    assert_eq!(config.apps[0].max_surge, 2, "from [defaults]");
    assert_eq!(
        config.apps[1].max_surge, 0,
        "the app's own value beats [defaults]"
    );
    let prod = check_with(text, Some("prod")).unwrap();
    assert_eq!(prod.apps[1].max_surge, 3, "the profile's");
    assert_eq!(
        app("[[app]]\nname = \"a\"\ncmd = \"x\"\n").max_surge,
        1,
        "the built-in default"
    );
    assert_eq!(
        errors("[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_surge = -1\n"),
        ["4:13: `max_surge` cannot be negative, found -1 (expected a non-negative integer)"]
    );
    assert_eq!(
        errors("[defaults]\nmax_surge = \"25%\"\n"),
        ["2:13: invalid type for `max_surge`: found a string (expected a non-negative integer)"]
    );
}

#[test]
fn readers_are_groups_that_exist() {
    let config = check("[supervisor]\nreaders = [\"root\"]\n").unwrap();
    assert_eq!(config.supervisor.readers, vec!["root".to_string()]);
    assert_eq!(
        errors("[supervisor]\nreaders = [\"root\", \"no-such-group-here\"]\n"),
        vec!["2:20: `readers`: there is no group `no-such-group-here` on this machine"]
    );
    assert_eq!(
        errors("[supervisor]\nreaders = \"adm\"\n"),
        vec!["2:11: invalid type for `readers`: found a string (expected an array of group names: [\"adm\"])"]
    );
}
