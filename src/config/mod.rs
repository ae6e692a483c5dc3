//! The configuration: `ecosystem.toml` parsed, validated and turned into typed values.
//!
//! [`load`] is the only function here that reads files (the config file and its env
//! files, [`dotenv`]). Everything else is pure: the
//! parser walks TOML with byte spans ([`raw`]), units are parsed in [`units`], and
//! [`validate`] turns the spanned tree plus an optional profile into a [`Config`],
//! collecting every error (not just the first) as a [`ConfigError`] with file:line:col.

pub mod cron;
pub mod diff;
pub mod dotenv;
pub mod error;
pub mod listen;
pub mod probe;
pub mod raw;
pub mod units;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cron::{CronExpr, CronOverlap, CronSettings, CronZone};
pub use error::{ConfigError, ConfigErrors};
pub use probe::{Check, HealthSettings, ReadySettings};

/// A validated configuration: what supd runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// The file it was read from (absolute), shown in `status` and in errors.
    pub path: PathBuf,
    /// `[supervisor]`.
    pub supervisor: Supervisor,
    /// `[[app]]`, in file order, profile and `[defaults]` already applied.
    pub apps: Vec<App>,
}

/// `[supervisor]`: settings of supd itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Supervisor {
    /// `socket`: the control socket path, when the file sets one.
    pub socket: Option<PathBuf>,
    /// `log_dir`: where app logs go (relative paths are relative to the config file's
    /// directory). Default: `<config dir>/logs` when not root, `/var/log/sup` as root.
    pub log_dir: PathBuf,
    /// `shutdown_timeout`: the whole graceful shutdown's bound (default 30s).
    pub shutdown_timeout: Duration,
    /// `http`: where `/metrics`, `/healthz` and `/readyz` are served (off by default).
    pub http: Option<std::net::SocketAddr>,
    /// `readers`: groups whose members may use the read-only verbs on the control socket
    /// (root, supd's own user and group `sup` may use every verb).
    #[serde(default)]
    pub readers: Vec<String>,
}

/// One `[[app]]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct App {
    /// `name`: unique, `[A-Za-z0-9_.-]+`, not `all`.
    pub name: String,
    /// `cmd`: the argv; a string is split like a shell would (never run by one).
    pub cmd: Vec<String>,
    /// `cwd`: absolute (relative ones are resolved against the config file's directory).
    pub cwd: PathBuf,
    /// `env`: added to supd's own environment. Holds the variables of the `env_file`s
    /// too, under those of the `env` tables (an `env` variable wins).
    pub env: BTreeMap<String, String>,
    /// `env_file`: the dotenv files read into `env`, absolute, in order (a later file's
    /// variable wins over an earlier one's). Empty: none.
    pub env_file: Vec<PathBuf>,
    /// `instances`: resolved count ("max" = number of CPUs).
    pub instances: u32,
    /// `restart`.
    pub restart: RestartMode,
    /// `restart_delay`: the first backoff step (default 100ms).
    pub restart_delay: Duration,
    /// `max_restarts`: failures in a row (each shorter than `min_uptime`) before `errored`
    /// (default 16).
    pub max_restarts: u32,
    /// `min_uptime`: an instance up this long has started well; its backoff resets (default 1s).
    pub min_uptime: Duration,
    /// `errored_retry`: how long an errored app waits before it is tried again (default 5m).
    pub errored_retry: Duration,
    /// `stop_signal`: sent to the process group to stop (default SIGTERM).
    pub stop_signal: Signal,
    /// `kill_timeout`: after this, SIGKILL to the group (default 5s).
    pub kill_timeout: Duration,
    /// `autostart`: start when supd starts (default true).
    pub autostart: bool,
    /// `user`: run as this user (supd must be root).
    pub user: Option<String>,
    /// `group`: run with this primary group (default: the user's).
    pub group: Option<String>,
    /// The `log_*` keys: format, files, rotation and target of the app's output.
    pub log: LogSettings,
    /// The memory-watch keys: `max_memory`, `memory_interval`, `memory_samples`,
    /// `memory_action`, `max_unavailable`.
    pub memory: MemorySettings,
    /// `max_surge`: during a rolling replacement, how many new instances may start before
    /// old ones are stopped, above `instances` (default 1; 0 = stop an old one first).
    pub max_surge: u32,
    /// The cron keys: `cron_restart`, `cron_tz`, `cron_overlap`. `None`: no
    /// `cron_restart`, nothing is restarted on a schedule (default).
    pub cron: Option<CronSettings>,
    /// `ready`: what makes a new instance ready. `None`: ready once spawned.
    pub ready: Option<ReadySettings>,
    /// `health`: the liveness probe of a ready instance, if any.
    pub health: Option<HealthSettings>,
    /// `listen`: sockets bound once by supd and inherited by every instance (fds 3, 4, ...).
    pub listen: Vec<listen::Listen>,
}

impl App {
    /// The check of `ready`, if the app has one.
    pub fn ready_check(&self) -> Option<&Check> {
        self.ready.as_ref().map(|r| &r.check)
    }

    /// How many new instances a rollout starts beside old ones: `max_surge`, but 0 (stop
    /// first) when the ready check is an `http` or `tcp` probe, which the old instance
    /// would answer as well as the new one: it could not tell the new one is ready.
    pub fn rollout_surge(&self) -> u32 {
        match self.ready_check() {
            Some(Check::Http(_) | Check::Tcp(_)) => 0,
            _ => self.max_surge,
        }
    }

    /// The `tcp://` listen address a `http`/`tcp` ready check probes, if it probes one:
    /// any instance answers there, so such a check says nothing about a new one.
    pub fn ready_on_own_listen(&self) -> Option<String> {
        let target = match self.ready_check()? {
            Check::Http(http) => http.address.as_str(),
            Check::Tcp(address) => address.as_str(),
            _ => return None,
        };
        let (host, port) = target.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.listen.iter().find_map(|listen| match listen {
            listen::Listen::Tcp(addr) if addr.port() == port => {
                let same = addr.ip().is_unspecified()
                    || host == "localhost"
                    || host.parse::<std::net::IpAddr>().ok() == Some(addr.ip());
                same.then(|| format!("tcp://{addr}"))
            }
            _ => None,
        })
    }
}

/// The memory-watch keys of an app. [`Default`] gives the documented defaults: no limit,
/// sampled every second, two samples over the limit in a row before acting, restart, one
/// instance down at a time.
///
/// This is configuration only; sampling is [`crate::monitor`]'s, deciding is the core's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemorySettings {
    /// `max_memory`: the limit in bytes on an instance's whole process tree (its RSS
    /// summed). `None`: no limit, nothing is acted on (default). At least 1 MiB.
    pub max_memory: Option<u64>,
    /// `memory_interval`: how often each instance's tree is sampled (default 1s, at
    /// least 100ms).
    pub interval: Duration,
    /// `memory_samples`: consecutive samples over `max_memory` before acting (default 2, at
    /// least 1), so one spike does not restart an app.
    pub samples: u32,
    /// `memory_action`: what happens to an instance over its limit (default restart).
    pub action: MemoryAction,
    /// `max_unavailable`: how many instances of the app may be down at once for a memory
    /// restart (default 1, at least 1); the others wait their turn.
    pub max_unavailable: u32,
}

impl MemorySettings {
    /// The smallest `max_memory`: below it nothing useful runs.
    pub const MIN_MAX_MEMORY: u64 = 1 << 20;
    /// `memory_interval` when the file sets none.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
    /// The smallest `memory_interval`: each sample reads all of `/proc`.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
    /// `memory_samples` when the file sets none.
    pub const DEFAULT_SAMPLES: u32 = 2;
    /// `max_unavailable` when the file sets none.
    pub const DEFAULT_MAX_UNAVAILABLE: u32 = 1;
}

impl Default for MemorySettings {
    fn default() -> Self {
        MemorySettings {
            max_memory: None,
            interval: MemorySettings::DEFAULT_INTERVAL,
            samples: MemorySettings::DEFAULT_SAMPLES,
            action: MemoryAction::Restart,
            max_unavailable: MemorySettings::DEFAULT_MAX_UNAVAILABLE,
        }
    }
}

/// `memory_action = "restart" | "stop"`: what happens to an instance over `max_memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemoryAction {
    /// Restart it (reason `memory`), at most `max_unavailable` instances at a time.
    Restart,
    /// Stop it, as `supctl stop` would: it is not restarted.
    Stop,
}

/// The `log_*` keys of an app (DESIGN §3). [`Default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogSettings {
    /// `log_format`: how a record is written (default text).
    pub format: LogFormat,
    /// `log_json`: whether a child's own JSON object line is embedded under `msg` in the
    /// JSON format (default: kept as a string).
    pub json: LogJson,
    /// `log_max_line`: longer lines are split into continuation records (default 64 KiB,
    /// 1 KiB ..= 16 MiB).
    pub max_line: usize,
    /// `log_split`: stdout and stderr in two files instead of one (default false).
    pub split: bool,
    /// `log_file`: the app's log file, absolute (relative ones are resolved against the
    /// config file's directory). `None`: `<log_dir>/<app>.log`.
    pub file: Option<PathBuf>,
    /// `log_max_size`: rotate before a record would make the file larger (default none).
    pub max_size: Option<u64>,
    /// `log_rotate`: rotate when the UTC hour or day changed (default none).
    pub rotate: Option<LogRotate>,
    /// `log_retain`: how many rotated files are kept, compressed or not (default 10).
    pub retain: u32,
    /// `log_compress`: gzip rotated files (default false).
    pub compress: bool,
    /// `log_target`: where records go. `None`: the default for how supd runs (stdout as
    /// PID 1, files otherwise).
    pub target: Option<LogTarget>,
}

impl LogSettings {
    /// `log_max_line` when the file sets none.
    pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
    /// `log_retain` when the file sets none.
    pub const DEFAULT_RETAIN: u32 = 10;

    /// The app's current log files: one holding both streams, or with `log_split`
    /// `[stdout file, stderr file]`.
    ///
    /// The file is `log_file`, else `<log_dir>/<app>.log`. Split, `<stem>.<ext>` becomes
    /// `<stem>.out.<ext>` and `<stem>.err.<ext>` (`<name>.out` and `<name>.err` for a
    /// name without extension): `web.log` gives `web.out.log` and `web.err.log`.
    pub fn paths(&self, app: &str, log_dir: &Path) -> Vec<PathBuf> {
        let file = match &self.file {
            Some(f) => f.clone(),
            None => log_dir.join(format!("{app}.log")),
        };
        if !self.split {
            return vec![file];
        }
        let named = |stream: &str| {
            let mut name = file.file_stem().unwrap_or_default().to_os_string();
            name.push(".");
            name.push(stream);
            if let Some(ext) = file.extension() {
                name.push(".");
                name.push(ext);
            }
            file.with_file_name(name)
        };
        vec![named("out"), named("err")]
    }

    /// The target, with `None` resolved: stdout when supd is PID 1 (a container's
    /// entrypoint, whose runtime collects stdout), files otherwise.
    pub fn target_for(&self, pid1: bool) -> LogTarget {
        match self.target {
            Some(t) => t,
            None if pid1 => LogTarget::Stdout,
            None => LogTarget::File,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            json: LogJson::String,
            max_line: LogSettings::DEFAULT_MAX_LINE,
            split: false,
            file: None,
            max_size: None,
            rotate: None,
            retain: LogSettings::DEFAULT_RETAIN,
            compress: false,
            target: None,
        }
    }
}

/// `log_format = "text" | "json"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogFormat {
    /// `2026-11-23T03:40:00.123Z backend:0 out | message`.
    Text,
    /// One JSON object per line: `{"ts":…,"app":…,"instance":…,"pid":…,"stream":…,"msg":…}`.
    Json,
}

/// `log_json = "string" | "embed"`: what the JSON format does with a child's line that is
/// itself a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogJson {
    /// Every line is a string under `msg`.
    String,
    /// A line that is a JSON object goes under `msg` as an object (pino, structlog).
    Embed,
}

/// `log_rotate = "daily" | "hourly"`: rotation when the UTC day or hour changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogRotate {
    /// At the first record of a new UTC day.
    Daily,
    /// At the first record of a new UTC hour.
    Hourly,
}

/// `log_target = "file" | "stdout" | "both"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogTarget {
    /// The app's log files only.
    File,
    /// supd's stdout only (containers).
    Stdout,
    /// Both.
    Both,
}

/// `restart = "always" | "on-failure" | "never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RestartMode {
    /// Restart whatever the exit status (PM2's behaviour).
    Always,
    /// Restart on a non-zero exit or a signal; a clean exit 0 ends in `exited`.
    OnFailure,
    /// Never restart: a job.
    Never,
}

/// A signal by number, validated from a name like `"SIGINT"` or `"INT"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signal(pub i32);

impl Signal {
    /// SIGTERM.
    pub const TERM: Signal = Signal(15);
    /// SIGKILL.
    pub const KILL: Signal = Signal(9);
}

/// The config supd uses when given none: `./ecosystem.toml`, else
/// `/etc/sup/ecosystem.toml`, the first that exists. supctl reads the same one to find the
/// control socket.
pub fn default_path() -> Option<&'static Path> {
    ["ecosystem.toml", "/etc/sup/ecosystem.toml"]
        .map(Path::new)
        .into_iter()
        .find(|path| path.exists())
}

/// Read, parse and validate `path` with `profile` applied, reading the apps' env files.
/// `cpus` resolves `"max"`. Every problem in the file (and its env files) is returned at
/// once.
pub fn load(path: &Path, profile: Option<&str>, cpus: u32) -> Result<Config, ConfigErrors> {
    let bytes = std::fs::read(path).map_err(|e| ConfigErrors::single(ConfigError::io(path, &e)))?;
    let text = error::decode(path, &bytes).map_err(ConfigErrors::single)?;
    let files = validate::Files {
        is_dir: &|p: &Path| p.is_dir(),
        read: &|p: &Path| std::fs::read(p),
    };
    validate::validate_with(path, text, profile, cpus, &files)
}

/// Shared test fixture: an app with the documented defaults, as the config layer gives
/// them (so the defaults are written down in one place only).
#[cfg(test)]
pub(crate) fn test_app(name: &str) -> App {
    let text = format!("[[app]]\nname = \"{name}\"\ncmd = \"true\"\ncwd = \"/\"\n");
    let path = std::path::Path::new("/etc/sup/ecosystem.toml");
    let mut config = validate::validate(path, &text, None, 1, &|_| true)
        .unwrap_or_else(|e| panic!("test app: {e}"));
    config.apps.remove(0)
}
