//! The control protocol: wire types and the line codec, shared by `supd` and `supctl`.
//!
//! Newline-delimited JSON over a Unix stream socket (DESIGN §4). A request is
//! `{"v":1,"id":7,"cmd":"restart","app":"backend"}`; every request gets exactly one
//! terminal reply `{"id":7,"ok":true,"data":…}` or
//! `{"id":7,"ok":false,"error":{"kind":"unknown_app","message":"…"}}`. Streaming commands
//! send replies with `"more":true` first. serde only: no I/O here.

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// The longest request line the daemon accepts, newline included.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// A request: the envelope plus the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version, [`VERSION`].
    pub v: u32,
    /// Chosen by the client; echoed in every reply to this request.
    pub id: u64,
    /// What to do.
    #[serde(flatten)]
    pub cmd: Command,
}

/// The verbs of DESIGN §6 that reach the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Status of every app, or of one app / instance.
    Status {
        /// `None` or `"all"` for everything.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<String>,
    },
    /// Start stopped instances of a target.
    Start {
        /// `name`, `name:INDEX` or `all`.
        app: String,
    },
    /// Stop the instances of a target (stop_signal, then SIGKILL after kill_timeout).
    Stop {
        /// `name`, `name:INDEX` or `all`.
        app: String,
    },
    /// Stop then start the instances of a target (reason `manual`).
    Restart {
        /// `name`, `name:INDEX` or `all`.
        app: String,
    },
    /// Stop everything and exit, as SIGTERM does.
    Shutdown,
}

/// A reply to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's id (0 when the request was too broken to carry one).
    pub id: u64,
    /// Success or failure.
    pub ok: bool,
    /// `true` on the non-terminal replies of a stream.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
    /// The payload of a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// The reason of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// What went wrong, machine-readable (`kind`) and for people (`message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The class of error.
    pub kind: ErrorKind,
    /// One sentence for a person.
    pub message: String,
}

/// Classes of error a reply can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The line is not a JSON request object.
    BadRequest,
    /// The line is longer than [`MAX_REQUEST_LINE`].
    TooLarge,
    /// The request speaks another protocol version.
    Version,
    /// The `cmd` is not one this daemon knows.
    UnknownCommand,
    /// No app has that name.
    UnknownApp,
    /// The app has no instance with that index.
    UnknownInstance,
    /// supd is shutting down and takes no more orders.
    ShuttingDown,
}

/// `data` of `status`: the shape of DESIGN §6 (fields may be added, none renamed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// supd itself.
    pub supervisor: SupervisorInfo,
    /// Every app (or the one asked for), in config order.
    pub apps: Vec<AppStatus>,
}

/// supd's own facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorInfo {
    /// supd's pid.
    pub pid: i32,
    /// supd's version.
    pub version: String,
    /// Time since supd started.
    pub uptime_ms: u64,
    /// The config file in use.
    pub config: String,
}

/// One app and its instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppStatus {
    /// The app's name.
    pub name: String,
    /// Its instances, by index.
    pub instances: Vec<InstanceStatus>,
}

/// One instance, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// 0-based index within the app.
    pub index: u32,
    /// The process, when one exists.
    pub pid: Option<i32>,
    /// One of DESIGN §5's states.
    pub state: StateName,
    /// Whether the instance is ready (online and, later, passing its readiness check).
    pub ready: bool,
    /// Restarts since supd started.
    pub restarts: u32,
    /// Why it last restarted.
    pub last_reason: Option<Reason>,
    /// How long the current process has run.
    pub uptime_ms: Option<u64>,
    /// Memory of the instance's process tree (not sampled yet: null).
    pub memory_bytes: Option<u64>,
    /// CPU use of the instance's process tree (not sampled yet: null).
    pub cpu_percent: Option<f64>,
    /// Exit code of the last run, for `exited` and `errored`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// How the last process ended, e.g. `"exit 1"`, `"signal SIGKILL"`, or a spawn error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// In `backoff` or `errored`: time until the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_start_ms: Option<u64>,
}

/// Instance states (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    /// Spawned, not yet ready.
    Starting,
    /// Running (and ready).
    Online,
    /// Told to stop; waiting for its process group to be gone.
    Stopping,
    /// Stopped by request (or never started: autostart = false).
    Stopped,
    /// Waiting to restart after a failure.
    Backoff,
    /// Gave up after `max_restarts` failures in a row (retried after `errored_retry`).
    Errored,
    /// Finished and not restarted by policy.
    Exited,
}

/// Why an instance restarted (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// It exited or was killed on its own (or could not be spawned).
    Crash,
    /// It passed its memory limit.
    Memory,
    /// Its cron schedule fired.
    Cron,
    /// Its health probe failed.
    Probe,
    /// Someone asked (`supctl restart`).
    Manual,
    /// A rolling reload or a config apply.
    Reload,
}

/// `data` of `start`, `stop`, `restart`: the targeted instances once the order completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    /// The apps touched, with only the targeted instances.
    pub apps: Vec<AppStatus>,
}
