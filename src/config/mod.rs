//! The configuration: `ecosystem.toml` parsed, validated and turned into typed values.
//!
//! [`load`] is the only function here that reads a file. Everything else is pure: the
//! parser walks TOML with byte spans ([`raw`]), units are parsed in [`units`], and
//! [`validate`] turns the spanned tree plus an optional profile into a [`Config`],
//! collecting every error (not just the first) as a [`ConfigError`] with file:line:col.

pub mod error;
pub mod raw;
pub mod units;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors};

/// A validated configuration: what supd runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from (absolute), shown in `status` and in errors.
    pub path: PathBuf,
    /// `[supervisor]`.
    pub supervisor: Supervisor,
    /// `[[app]]`, in file order, profile and `[defaults]` already applied.
    pub apps: Vec<App>,
}

/// `[supervisor]`: settings of supd itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Supervisor {
    /// `socket`: the control socket path, when the file sets one.
    pub socket: Option<PathBuf>,
    /// `log_dir`: where app logs go (relative paths are relative to the config file's
    /// directory). Default: `<config dir>/logs` when not root, `/var/log/sup` as root.
    pub log_dir: PathBuf,
    /// `shutdown_timeout`: the whole graceful shutdown's bound (default 30s).
    pub shutdown_timeout: Duration,
}

/// One `[[app]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// `name`: unique, `[A-Za-z0-9_.-]+`, not `all`.
    pub name: String,
    /// `cmd`: the argv; a string is split like a shell would (never run by one).
    pub cmd: Vec<String>,
    /// `cwd`: absolute (relative ones are resolved against the config file's directory).
    pub cwd: PathBuf,
    /// `env`: added to supd's own environment.
    pub env: BTreeMap<String, String>,
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
}

/// `restart = "always" | "on-failure" | "never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartMode {
    /// Restart whatever the exit status (PM2's behaviour).
    Always,
    /// Restart on a non-zero exit or a signal; a clean exit 0 ends in `exited`.
    OnFailure,
    /// Never restart: a job.
    Never,
}

/// A signal by number, validated from a name like `"SIGINT"` or `"INT"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub i32);

impl Signal {
    /// SIGTERM.
    pub const TERM: Signal = Signal(15);
    /// SIGKILL.
    pub const KILL: Signal = Signal(9);
}

/// Read, parse and validate `path` with `profile` applied. `cpus` resolves `"max"`.
/// Every problem in the file is returned at once.
pub fn load(path: &Path, profile: Option<&str>, cpus: u32) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::single(ConfigError::io(path, &e)))?;
    validate::validate(path, &text, profile, cpus, &|p: &Path| p.is_dir())
}
