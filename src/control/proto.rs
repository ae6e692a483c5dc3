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
    /// Replace the running instances of a target one `max_unavailable` batch at a time,
    /// each replacement ready before the next goes down (reason `reload`).
    Reload {
        /// `name`, `name:INDEX` or `all`.
        app: String,
    },
    /// Change how many instances an app runs: new ones start, the highest indexes stop.
    /// Lasts until the next `apply` or supd restart (the config file is not changed).
    /// Exactly one of `instances` and `by` is given.
    Scale {
        /// The app's name.
        app: String,
        /// The new number of instances.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instances: Option<u32>,
        /// Or how many to add (negative: remove, the highest indexes first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<i64>,
    },
    /// Send a signal to the main process (the leader) of each running instance of a target,
    /// or with `group` to every process of each instance's process group.
    Signal {
        /// A signal name (`SIGHUP`, `HUP`) or number.
        signal: String,
        /// `name`, `name:INDEX` or `all`.
        app: String,
        /// Every process of the group, not only the leader.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        group: bool,
    },
    /// Stop everything and exit, as SIGTERM does.
    Shutdown,
    /// Execute supd's binary again in place (as SIGUSR2 does), every app kept running.
    /// Answered by the new supd: [`Reexeced`].
    Reexec,
    /// The last `lines` log records of a target, then (with `follow`) every new one as it
    /// is written. Streams: replies with `more` carry `{"records":[…]}`.
    Logs {
        /// `name`, `name:INDEX`, `all` or none for every app.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<String>,
        /// How many past records to send first.
        #[serde(default = "default_log_lines")]
        lines: u32,
        /// Keep sending new records until the client hangs up.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        follow: bool,
        /// Only stdout or only stderr.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<StreamName>,
    },
    /// Empty the log files of a target (all apps when none), as `pm2 flush` does.
    Flush {
        /// `name` or `all`; none for every app.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<String>,
    },
    /// Close and reopen every log file (after an external logrotate moved them).
    Reopen,
    /// Whether every instance that should run is online and ready: a container's
    /// HEALTHCHECK. Answers [`Health`].
    Health,
    /// How the config file (supd's own, or `config`) differs from what runs. Answers
    /// [`Plan`]; changes nothing.
    Diff {
        /// Another config file to compare (read by supd).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<String>,
    },
    /// Re-read supd's config file and make the running apps what it says, changing only
    /// what differs (also SIGHUP to supd). With `dry_run`, only say what it would do.
    /// Answers [`Plan`] once the last rolled instance is ready.
    Apply {
        /// Plan only.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
    },
}

/// `data` of `health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Every instance that should run is online and ready.
    pub healthy: bool,
    /// One line per instance that is not, e.g. `backend:1 is backoff (exited with code 1)`.
    pub problems: Vec<String>,
}

/// Past records `logs` sends when the request does not say.
pub const DEFAULT_LOG_LINES: u32 = 20;

fn default_log_lines() -> u32 {
    DEFAULT_LOG_LINES
}

/// A child's output stream, as the protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamName {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// A reply's payload: JSON as it goes on the wire. supd serializes its replies straight
/// into it and supctl reads its typed rows straight out of it; a `serde_json::Value` tree
/// in between cost both sides an allocation per field (a status of 5000 instances has
/// 70,000).
pub type Data = Box<serde_json::value::RawValue>;

/// `value` as reply data.
pub fn data<T: Serialize + ?Sized>(value: &T) -> Data {
    // Protocol types hold only strings, numbers and string-keyed maps: serde_json cannot
    // fail on them; `null` keeps the fallback valid JSON anyway.
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| null())
}

fn null() -> Data {
    serde_json::value::RawValue::from_string("null".to_string())
        .unwrap_or_else(|_| unreachable!("`null` is JSON"))
}

/// A reply to one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub data: Option<Data>,
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
    /// Reading or changing the log files failed.
    LogIo,
    /// Carried out in part, then failed: a rollout whose new instance never got ready.
    Failed,
    /// The config file has errors, or asks for a change that cannot be made while supd
    /// runs; nothing was changed.
    BadConfig,
    /// The client may not ask this (see [`super::access`]).
    PermissionDenied,
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
    /// Log lines lost to write errors (disk full...) since supd started.
    #[serde(default)]
    pub log_dropped: u64,
    /// Log lines taken from its output since supd started.
    #[serde(default)]
    pub log_lines: u64,
    /// With `cron_restart`: when the schedule fires next (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cron: Option<String>,
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
    /// Whether the instance is ready: online, its `ready` check passed (if it has one), and
    /// it has not said `STOPPING=1`.
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
    /// The last `STATUS=` the instance sent over sd_notify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_text: Option<String>,
    /// The last `MAINPID=` the instance sent over sd_notify (shown only; the instance is
    /// still its leader's process group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_pid: Option<i32>,
    /// CPU time of the process tree so far, in seconds (when measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// Restarts since supd started, by reason.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub restarts_by_reason: std::collections::BTreeMap<Reason, u32>,
    /// The process runs settings an `apply` has changed since it started (a rollout of
    /// the app stopped before replacing it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outdated: bool,
    /// The process this one replaces, while it still runs beside it (surge first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<OldStatus>,
}

/// An old process beside its replacement during a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldStatus {
    /// Its pid.
    pub pid: i32,
    /// `online` while it still serves, then `stopping`.
    pub state: StateName,
}

#[cfg(test)]
impl InstanceStatus {
    /// A row with `index` and `state` and nothing else known: the base of test rows, so a
    /// new field is added in one place.
    pub(crate) fn blank(index: u32, state: StateName) -> InstanceStatus {
        InstanceStatus {
            index,
            pid: None,
            state,
            ready: false,
            restarts: 0,
            last_reason: None,
            uptime_ms: None,
            memory_bytes: None,
            cpu_percent: None,
            exit_code: None,
            last_exit: None,
            next_start_ms: None,
            status_text: None,
            main_pid: None,
            cpu_seconds: None,
            restarts_by_reason: Default::default(),
            outdated: false,
            old: None,
        }
    }
}

// Instance states and restart reasons are DESIGN §5's vocabulary, which the core owns; on
// the wire each is its name (`"backoff"`, `"memory"`), so the names are written once.
pub use crate::core::view::StateName;
pub use crate::core::Reason;

/// On the wire as its name (`as_str`), read back from it (one of `ALL`).
macro_rules! by_name {
    ($($name:ty),*) => {$(
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                read_name(deserializer, &<$name>::ALL, |t| t.as_str())
            }
        }
    )*};
}

by_name!(StateName, Reason);

/// The one of `all` whose name is the string read.
fn read_name<'de, D, T>(
    deserializer: D,
    all: &[T],
    name: fn(&T) -> &'static str,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Copy,
{
    let read = String::deserialize(deserializer)?;
    match all.iter().find(|t| name(t) == read) {
        Some(t) => Ok(*t),
        None => {
            // The words of serde's own unknown_variant, which wants a static list.
            let names: Vec<String> = all.iter().map(|t| format!("`{}`", name(t))).collect();
            Err(serde::de::Error::custom(format_args!(
                "unknown variant `{read}`, expected one of {}",
                names.join(", ")
            )))
        }
    }
}

/// `data` of each streamed `logs` reply: log records as JSON objects (the shape of
/// `log_format = "json"`). The terminal reply carries none.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Records {
    /// The records, oldest first.
    #[serde(default)]
    pub records: Vec<serde_json::Value>,
}

/// `data` of the terminal `logs` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsEnd {
    /// Always true.
    pub end: bool,
}

/// `data` of `shutdown`, once every app is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    /// Always true: the reply comes only once everything is stopped.
    pub stopped: bool,
}

/// `data` of `flush`: the apps whose log files were emptied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flushed {
    /// App names.
    pub flushed: Vec<String>,
}

/// `data` of `reexec`, given by the new supd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reexeced {
    /// supd's pid, the same before and after.
    pub pid: i32,
    /// The version that was running.
    pub from: String,
    /// The version running now.
    pub to: String,
    /// The binary executed.
    pub exe: String,
    /// From the exec to the new supd serving, in milliseconds.
    pub took_ms: u64,
    /// Processes, pipes and sockets the new supd took over.
    pub processes: usize,
}

/// `data` of `reopen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reopened {
    /// Always true: every log file was closed and opened again.
    pub reopened: bool,
}

/// `data` of `diff`, `apply --dry-run` and `apply`: how the config file differs from
/// what runs, and what applying it does (or did).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Plan {
    /// The config file compared.
    pub config: String,
    /// Whether anything differs.
    pub changed: bool,
    /// Each app that differs: added and changed ones in file order, then removed ones.
    pub apps: Vec<AppPlan>,
    /// `[supervisor]` keys that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supervisor: Vec<KeyChange>,
    /// Changes that cannot be made while supd runs: an apply is refused whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
    /// The actions of an apply, in order.
    pub steps: Vec<String>,
}

/// One app in a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPlan {
    /// The app.
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// The keys that differ (a changed app).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyChange>,
    /// Running instances that still run older settings (a rollout that stopped).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub outdated: u32,
    /// Running instances an apply replaces.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub roll: u32,
    /// `[before, after]` when the instance count changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<[u32; 2]>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One key that differs: old and new value (absent = not set), and what it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    /// The key (`env.NAME` for one variable).
    pub key: String,
    /// The running value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// The file's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
    /// `restart` (new processes), `scale` or `live` (no process restarted).
    pub needs: String,
}

/// `data` of `start`, `stop`, `restart`: the targeted instances once the order completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    /// The apps touched, with only the targeted instances.
    pub apps: Vec<AppStatus>,
    /// Something the caller should know about the result (how long a `scale` lasts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

// ---------------------------------------------------------------------------------------
// The line codec. Both binaries frame messages the same way: one JSON object per line, so
// a reader never needs more than `BufRead::read_until(b'\n')`. serde_json never emits a raw
// newline (control characters inside strings are escaped), so a line is always a message.

/// The `cmd` names this build knows, in the order `unknown_command` errors list them.
///
/// Keep in step with [`Command`] ([`Command::name`] is the exhaustive match that names them).
pub const COMMANDS: &[&str] = &[
    "status", "start", "stop", "restart", "reload", "scale", "signal", "shutdown", "reexec",
    "logs", "flush", "reopen", "health", "diff", "apply",
];

/// A reply line that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The line is not JSON, or not a reply object.
    #[error("malformed reply: {0}")]
    Malformed(#[source] serde_json::Error),
    /// `ok` is false but the reply carries no `error` to say why.
    #[error("malformed reply: \"ok\" is false but there is no \"error\"")]
    MissingError,
    /// The reply's `data` does not have the expected shape.
    #[error("unexpected data in reply: {0}")]
    Data(#[source] serde_json::Error),
}

impl Command {
    /// Asks only for facts and changes nothing: safe to send again when a connection was
    /// cut before its answer (as a re-exec of supd may cut one).
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Command::Status { .. } | Command::Health | Command::Diff { .. }
        ) || matches!(self, Command::Logs { follow: false, .. })
    }

    /// The wire name of this command (`"restart"`), as in the request's `cmd` field.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Status { .. } => "status",
            Command::Start { .. } => "start",
            Command::Stop { .. } => "stop",
            Command::Restart { .. } => "restart",
            Command::Reload { .. } => "reload",
            Command::Signal { .. } => "signal",
            Command::Scale { .. } => "scale",
            Command::Shutdown => "shutdown",
            Command::Reexec => "reexec",
            Command::Logs { .. } => "logs",
            Command::Flush { .. } => "flush",
            Command::Reopen => "reopen",
            Command::Health => "health",
            Command::Diff { .. } => "diff",
            Command::Apply { .. } => "apply",
        }
    }
}

impl Request {
    /// A request of this build's protocol [`VERSION`].
    pub fn new(id: u64, cmd: Command) -> Request {
        Request {
            v: VERSION,
            id,
            cmd,
        }
    }
}

impl Reply {
    /// A terminal success. A `null` payload is left out of the line (`data` absent), so a
    /// reply reads back equal to what was sent.
    pub fn ok(id: u64, data: Data) -> Reply {
        Reply {
            id,
            ok: true,
            more: false,
            data: non_null(data),
            error: None,
        }
    }

    /// A terminal failure.
    pub fn error(id: u64, kind: ErrorKind, message: impl Into<String>) -> Reply {
        Reply {
            id,
            ok: false,
            more: false,
            data: None,
            error: Some(ErrorBody {
                kind,
                message: message.into(),
            }),
        }
    }

    /// A non-terminal reply of a stream (`"more":true`); the terminal one follows later.
    pub fn more(id: u64, data: Data) -> Reply {
        Reply {
            id,
            ok: true,
            more: true,
            data: non_null(data),
            error: None,
        }
    }

    /// `data` read as a typed payload ([`Status`], [`ActionResult`], …). An absent `data`
    /// reads as JSON `null`, which suits payload types where everything is optional.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, ProtoError> {
        let text = self.data.as_deref().map_or("null", |d| d.get());
        serde_json::from_str(text).map_err(ProtoError::Data)
    }
}

/// Equal when every field is, `data` compared as JSON values (key order aside).
impl PartialEq for Reply {
    fn eq(&self, other: &Reply) -> bool {
        let value = |d: &Option<Data>| {
            d.as_deref()
                .map(|d| serde_json::from_str::<serde_json::Value>(d.get()).ok())
        };
        self.id == other.id
            && self.ok == other.ok
            && self.more == other.more
            && self.error == other.error
            && value(&self.data) == value(&other.data)
    }
}

fn non_null(data: Data) -> Option<Data> {
    (data.get() != "null").then_some(data)
}

/// One request as a line: compact JSON and `'\n'`.
pub fn encode_request(request: &Request) -> Vec<u8> {
    to_line(request).unwrap_or_else(|_| {
        // Unreachable in practice: serde_json fails only on non-string map keys or a
        // failing Serialize impl, and a Request holds neither. Rather than panic, send a
        // line the daemon rejects with an error reply that carries the id.
        format!(
            "{{\"v\":{},\"id\":{},\"cmd\":null}}\n",
            request.v, request.id
        )
        .into_bytes()
    })
}

/// One reply as a line: compact JSON and `'\n'`.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    to_line(reply).unwrap_or_else(|_| {
        // Unreachable in practice (see encode_request); `data` is JSON already. Still
        // answer the request, so it gets its one terminal reply.
        format!(
            "{{\"id\":{},\"ok\":false,\"error\":{{\"kind\":\"bad_request\",\"message\":\"supd could not encode its reply\"}}}}\n",
            reply.id
        )
        .into_bytes()
    })
}

fn to_line<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    Ok(line)
}

/// Read one reply line (with or without its `'\n'`).
pub fn decode_reply(line: &[u8]) -> Result<Reply, ProtoError> {
    let reply: Reply = serde_json::from_slice(line).map_err(ProtoError::Malformed)?;
    if !reply.ok && reply.error.is_none() {
        return Err(ProtoError::MissingError);
    }
    Ok(reply)
}

/// Read one request line (with or without its `'\n'`), or the error reply to send back.
///
/// The checks run in the order that gives the most useful answer: the `id` is picked out
/// first so every error reply carries it (0 when there is none to find); then the version,
/// because a request of another version may differ in anything else; then `cmd`; then the
/// command's arguments.
pub fn decode_request(line: &[u8]) -> Result<Request, Reply> {
    use serde_json::Value;

    let value: Value = serde_json::from_slice(line).map_err(|e| {
        Reply::error(
            0,
            ErrorKind::BadRequest,
            format!("the request is not JSON: {e}"),
        )
    })?;
    let Value::Object(object) = &value else {
        return Err(Reply::error(
            0,
            ErrorKind::BadRequest,
            "the request is not a JSON object",
        ));
    };
    let raw_id = object.get("id");
    let id = raw_id.and_then(Value::as_u64).unwrap_or(0);
    let bad = |message: String| Reply::error(id, ErrorKind::BadRequest, message);

    match object.get("v") {
        Some(v) if v.as_u64() == Some(u64::from(VERSION)) => {}
        Some(v) => {
            let theirs = match v.as_u64() {
                Some(n) => format!("v{n}"),
                None => format!("{v} (not a version number)"),
            };
            return Err(Reply::error(
                id,
                ErrorKind::Version,
                format!("this daemon speaks protocol v{VERSION}, the request is {theirs}"),
            ));
        }
        None => {
            return Err(Reply::error(
                id,
                ErrorKind::Version,
                format!("this daemon speaks protocol v{VERSION}, the request has no \"v\""),
            ))
        }
    }

    match raw_id {
        None => return Err(bad("the request has no \"id\"".to_owned())),
        Some(raw) if raw.as_u64().is_none() => {
            return Err(bad(format!(
                "\"id\" must be an integer from 0 to {}, not {raw}",
                u64::MAX
            )))
        }
        Some(_) => {}
    }

    let name = match object.get("cmd") {
        None => return Err(bad("the request has no \"cmd\"".to_owned())),
        Some(Value::String(name)) => name,
        Some(other) => return Err(bad(format!("\"cmd\" must be a string, not {other}"))),
    };
    if !COMMANDS.contains(&name.as_str()) {
        return Err(Reply::error(
            id,
            ErrorKind::UnknownCommand,
            format!(
                "unknown command \"{name}\"; this daemon knows: {}",
                COMMANDS.join(", ")
            ),
        ));
    }

    let request = serde_json::from_value::<Request>(value.clone())
        .map_err(|e| bad(format!("bad arguments for \"{name}\": {e}")))?;
    // serde's deny_unknown_fields does not reach the unit variants of an internally tagged
    // enum, so `{"cmd":"shutdown","now":true}` would pass silently; a newer client's
    // argument must not be ignored without a word.
    if takes_no_arguments(&request.cmd) {
        if let Some(extra) = object
            .keys()
            .find(|key| !matches!(key.as_str(), "v" | "id" | "cmd"))
        {
            return Err(bad(format!(
                "bad arguments for \"{name}\": unknown field `{extra}`, it takes none"
            )));
        }
    }
    Ok(request)
}

fn takes_no_arguments(cmd: &Command) -> bool {
    match cmd {
        Command::Shutdown | Command::Reexec | Command::Reopen | Command::Health => true,
        Command::Status { .. }
        | Command::Start { .. }
        | Command::Stop { .. }
        | Command::Restart { .. }
        | Command::Reload { .. }
        | Command::Signal { .. }
        | Command::Scale { .. }
        | Command::Logs { .. }
        | Command::Flush { .. }
        | Command::Diff { .. }
        | Command::Apply { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(s: &str) -> Vec<u8> {
        format!("{s}\n").into_bytes()
    }

    fn restart(app: &str) -> Command {
        Command::Restart {
            app: app.to_owned(),
        }
    }

    #[test]
    fn request_golden_lines() {
        let cases = [
            (
                Request::new(7, restart("backend")),
                r#"{"v":1,"id":7,"cmd":"restart","app":"backend"}"#,
            ),
            (
                Request::new(1, Command::Status { app: None }),
                r#"{"v":1,"id":1,"cmd":"status"}"#,
            ),
            (
                Request::new(
                    2,
                    Command::Status {
                        app: Some("backend:1".to_owned()),
                    },
                ),
                r#"{"v":1,"id":2,"cmd":"status","app":"backend:1"}"#,
            ),
            (
                Request::new(
                    3,
                    Command::Start {
                        app: "all".to_owned(),
                    },
                ),
                r#"{"v":1,"id":3,"cmd":"start","app":"all"}"#,
            ),
            (
                Request::new(
                    4,
                    Command::Stop {
                        app: "web".to_owned(),
                    },
                ),
                r#"{"v":1,"id":4,"cmd":"stop","app":"web"}"#,
            ),
            (
                Request::new(5, Command::Shutdown),
                r#"{"v":1,"id":5,"cmd":"shutdown"}"#,
            ),
        ];
        for (request, golden) in cases {
            assert_eq!(encode_request(&request), line(golden));
            assert_eq!(decode_request(golden.as_bytes()), Ok(request.clone()));
            assert_eq!(decode_request(&line(golden)), Ok(request));
        }
    }

    #[test]
    fn command_names_match_the_wire() {
        let all = [
            Command::Status { app: None },
            Command::Start { app: "a".into() },
            Command::Stop { app: "a".into() },
            restart("a"),
            Command::Reload { app: "a".into() },
            Command::Scale {
                app: "a".into(),
                instances: Some(3),
                by: None,
            },
            Command::Signal {
                signal: "HUP".into(),
                app: "a".into(),
                group: false,
            },
            Command::Shutdown,
            Command::Reexec,
            Command::Logs {
                app: None,
                lines: 5,
                follow: true,
                stream: Some(StreamName::Err),
            },
            Command::Flush { app: None },
            Command::Reopen,
            Command::Health,
            Command::Diff {
                config: Some("/etc/sup/next.toml".into()),
            },
            Command::Apply { dry_run: true },
        ];
        let names: Vec<&str> = all.iter().map(Command::name).collect();
        assert_eq!(names, COMMANDS);
        for cmd in all {
            let wire = serde_json::to_value(Request::new(1, cmd.clone())).unwrap();
            assert_eq!(wire["cmd"], cmd.name());
        }
    }

    #[test]
    fn reply_golden_lines() {
        let cases = [
            (
                Reply::ok(7, data(&json!({"apps": []}))),
                r#"{"id":7,"ok":true,"data":{"apps":[]}}"#,
            ),
            (
                Reply::ok(8, data(&serde_json::Value::Null)),
                r#"{"id":8,"ok":true}"#,
            ),
            (
                Reply::error(7, ErrorKind::UnknownApp, "no app named \"nope\""),
                r#"{"id":7,"ok":false,"error":{"kind":"unknown_app","message":"no app named \"nope\""}}"#,
            ),
            (
                Reply::more(9, data(&json!({"line": "a\nb"}))),
                r#"{"id":9,"ok":true,"more":true,"data":{"line":"a\nb"}}"#,
            ),
            (
                Reply::error(0, ErrorKind::TooLarge, "too long"),
                r#"{"id":0,"ok":false,"error":{"kind":"too_large","message":"too long"}}"#,
            ),
        ];
        for (reply, golden) in cases {
            assert_eq!(encode_reply(&reply), line(golden));
            assert_eq!(decode_reply(golden.as_bytes()).unwrap(), reply);
            assert_eq!(decode_reply(&line(golden)).unwrap(), reply);
        }
    }

    #[test]
    fn every_error_kind_has_its_wire_name() {
        let kinds = [
            (ErrorKind::BadRequest, "bad_request"),
            (ErrorKind::TooLarge, "too_large"),
            (ErrorKind::Version, "version"),
            (ErrorKind::UnknownCommand, "unknown_command"),
            (ErrorKind::UnknownApp, "unknown_app"),
            (ErrorKind::UnknownInstance, "unknown_instance"),
            (ErrorKind::ShuttingDown, "shutting_down"),
            (ErrorKind::LogIo, "log_io"),
            (ErrorKind::Failed, "failed"),
            (ErrorKind::BadConfig, "bad_config"),
        ];
        for (kind, name) in kinds {
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
        }
    }

    #[test]
    fn decode_reply_rejects_garbage() {
        assert!(matches!(
            decode_reply(b"hello\n"),
            Err(ProtoError::Malformed(_))
        ));
        assert!(matches!(
            decode_reply(br#"{"ok":true}"#),
            Err(ProtoError::Malformed(_))
        ));
        assert!(matches!(
            decode_reply(br#"{"id":1,"ok":false}"#),
            Err(ProtoError::MissingError)
        ));
        assert!(matches!(
            decode_reply(
                br#"{"id":1,"ok":false,"error":{"kind":"from_the_future","message":"x"}}"#
            ),
            Err(ProtoError::Malformed(_))
        ));
    }

    const STATUS_GOLDEN: &str = concat!(
        r#"{"supervisor":{"pid":41,"version":"0.1.0","uptime_ms":5012,"config":"/etc/sup/ecosystem.toml"},"#,
        r#""apps":[{"name":"backend","instances":[{"index":0,"pid":57,"state":"online","ready":true,"#,
        r#""restarts":2,"last_reason":"memory","uptime_ms":3000,"memory_bytes":52142080,"cpu_percent":1.5},"#,
        r#"{"index":1,"pid":null,"state":"backoff","ready":false,"restarts":3,"last_reason":"crash","#,
        r#""uptime_ms":null,"memory_bytes":null,"cpu_percent":null,"last_exit":"exit 1","next_start_ms":1200}],"log_dropped":0,"log_lines":0}]}"#
    );

    fn status_sample() -> Status {
        Status {
            supervisor: SupervisorInfo {
                pid: 41,
                version: "0.1.0".to_owned(),
                uptime_ms: 5012,
                config: "/etc/sup/ecosystem.toml".to_owned(),
            },
            apps: vec![AppStatus {
                name: "backend".to_owned(),
                instances: vec![
                    InstanceStatus {
                        index: 0,
                        pid: Some(57),
                        state: StateName::Online,
                        ready: true,
                        restarts: 2,
                        last_reason: Some(Reason::Memory),
                        uptime_ms: Some(3000),
                        memory_bytes: Some(52_142_080),
                        cpu_percent: Some(1.5),
                        exit_code: None,
                        last_exit: None,
                        next_start_ms: None,
                        status_text: None,
                        main_pid: None,
                        cpu_seconds: None,
                        restarts_by_reason: Default::default(),
                        outdated: false,
                        old: None,
                    },
                    InstanceStatus {
                        index: 1,
                        pid: None,
                        state: StateName::Backoff,
                        ready: false,
                        restarts: 3,
                        last_reason: Some(Reason::Crash),
                        uptime_ms: None,
                        memory_bytes: None,
                        cpu_percent: None,
                        exit_code: None,
                        last_exit: Some("exit 1".to_owned()),
                        next_start_ms: Some(1200),
                        status_text: None,
                        main_pid: None,
                        cpu_seconds: None,
                        restarts_by_reason: Default::default(),
                        outdated: false,
                        old: None,
                    },
                ],
                log_dropped: 0,
                log_lines: 0,
                next_cron: None,
            }],
        }
    }

    #[test]
    fn status_golden_shape() {
        let status = status_sample();
        assert_eq!(serde_json::to_string(&status).unwrap(), STATUS_GOLDEN);
        // Reply data is the same text: serialized once, never through a Value tree.
        let reply = Reply::ok(3, data(&status));
        let wire = encode_reply(&reply);
        assert_eq!(
            wire,
            format!("{{\"id\":3,\"ok\":true,\"data\":{STATUS_GOLDEN}}}\n").into_bytes()
        );
        let back = decode_reply(&wire).unwrap();
        assert_eq!(back, reply);
        assert_eq!(back.data_as::<Status>().unwrap(), status);
    }

    #[test]
    fn status_reads_the_design_example_and_tolerates_new_fields() {
        // DESIGN §6, verbatim, plus a field a later daemon might add.
        let doc = r#"{"supervisor": {"pid": 41, "version": "0.1.0", "uptime_ms": 5012, "config": "/etc/sup/ecosystem.toml", "later": 1},
 "apps": [{"name": "backend", "instances": [
   {"index": 0, "pid": 57, "state": "online", "ready": true, "restarts": 2,
    "last_reason": "memory", "uptime_ms": 3000, "memory_bytes": 52142080, "cpu_percent": 1.5}]}]}"#;
        let status: Status = serde_json::from_str(doc).unwrap();
        let mut expected = status_sample();
        expected.apps[0].instances.truncate(1);
        assert_eq!(status, expected);
    }

    fn rejected(line: &str) -> (u64, ErrorKind, String) {
        let reply = decode_request(line.as_bytes()).unwrap_err();
        assert!(!reply.ok);
        assert!(!reply.more);
        let error = reply.error.unwrap();
        (reply.id, error.kind, error.message)
    }

    #[test]
    fn decode_request_not_json_or_not_an_object() {
        let (id, kind, message) = rejected("restart backend");
        assert_eq!((id, kind), (0, ErrorKind::BadRequest));
        assert!(
            message.starts_with("the request is not JSON: "),
            "{message}"
        );

        for not_object in [r#"[1,2]"#, r#""status""#, "42", "null"] {
            assert_eq!(
                rejected(not_object),
                (
                    0,
                    ErrorKind::BadRequest,
                    "the request is not a JSON object".to_owned()
                )
            );
        }
        let (id, kind, _) = rejected("");
        assert_eq!((id, kind), (0, ErrorKind::BadRequest));
    }

    #[test]
    fn decode_request_version_keeps_the_id() {
        assert_eq!(
            rejected(r#"{"v":2,"id":7,"cmd":"frobnicate","whatever":[1]}"#),
            (
                7,
                ErrorKind::Version,
                "this daemon speaks protocol v1, the request is v2".to_owned()
            )
        );
        assert_eq!(
            rejected(r#"{"id":8,"cmd":"status"}"#),
            (
                8,
                ErrorKind::Version,
                "this daemon speaks protocol v1, the request has no \"v\"".to_owned()
            )
        );
        assert_eq!(
            rejected(r#"{"v":"1","id":9,"cmd":"status"}"#),
            (
                9,
                ErrorKind::Version,
                "this daemon speaks protocol v1, the request is \"1\" (not a version number)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn decode_request_bad_id() {
        assert_eq!(
            rejected(r#"{"v":1,"cmd":"status"}"#),
            (
                0,
                ErrorKind::BadRequest,
                "the request has no \"id\"".to_owned()
            )
        );
        let (id, kind, message) = rejected(r#"{"v":1,"id":-3,"cmd":"status"}"#);
        assert_eq!((id, kind), (0, ErrorKind::BadRequest));
        assert!(
            message.starts_with("\"id\" must be an integer"),
            "{message}"
        );
        assert!(message.ends_with("not -3"), "{message}");
    }

    #[test]
    fn decode_request_unknown_command_keeps_the_id() {
        assert_eq!(
            rejected(r#"{"v":1,"id":11,"cmd":"frobnicate"}"#),
            (
                11,
                ErrorKind::UnknownCommand,
                "unknown command \"frobnicate\"; this daemon knows: status, start, stop, restart, reload, scale, signal, shutdown, reexec, logs, flush, reopen, health, diff, apply"
                    .to_owned()
            )
        );
    }

    #[test]
    fn decode_request_bad_cmd_and_arguments_keep_the_id() {
        assert_eq!(
            rejected(r#"{"v":1,"id":12}"#),
            (
                12,
                ErrorKind::BadRequest,
                "the request has no \"cmd\"".to_owned()
            )
        );
        assert_eq!(
            rejected(r#"{"v":1,"id":13,"cmd":5}"#),
            (
                13,
                ErrorKind::BadRequest,
                "\"cmd\" must be a string, not 5".to_owned()
            )
        );
        let cases = [
            (r#"{"v":1,"id":14,"cmd":"restart"}"#, 14, "missing field"),
            (
                r#"{"v":1,"id":15,"cmd":"restart","app":3}"#,
                15,
                "invalid type",
            ),
            (
                r#"{"v":1,"id":16,"cmd":"status","colour":"red"}"#,
                16,
                "unknown field",
            ),
            (
                r#"{"v":1,"id":17,"cmd":"shutdown","now":true}"#,
                17,
                "unknown field",
            ),
        ];
        for (input, want_id, want_text) in cases {
            let (id, kind, message) = rejected(input);
            assert_eq!((id, kind), (want_id, ErrorKind::BadRequest), "{input}");
            assert!(message.starts_with("bad arguments for \""), "{message}");
            assert!(message.contains(want_text), "{input}: {message}");
        }
    }

    #[test]
    fn reason_names_match_the_wire() {
        for reason in Reason::ALL {
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                serde_json::json!(reason.as_str())
            );
        }
    }

    #[test]
    fn states_and_reasons_travel_by_their_names() {
        for state in StateName::ALL {
            let line = serde_json::to_string(&state).expect("json");
            assert_eq!(line, format!("\"{}\"", state.as_str()));
            assert_eq!(
                serde_json::from_str::<StateName>(&line).expect("read"),
                state
            );
        }
        let mut by_reason = std::collections::BTreeMap::new();
        for reason in Reason::ALL {
            let line = serde_json::to_string(&reason).expect("json");
            assert_eq!(line, format!("\"{}\"", reason.as_str()));
            by_reason.insert(reason, 1);
        }
        // As map keys too (restarts_by_reason).
        let line = serde_json::to_string(&by_reason).expect("json");
        assert!(line.starts_with("{\"crash\":1,\"memory\":1"), "{line}");
        let back: std::collections::BTreeMap<Reason, u32> =
            serde_json::from_str(&line).expect("read");
        assert_eq!(back, by_reason);
        let error = serde_json::from_str::<Reason>("\"boredom\"").expect_err("unknown");
        assert!(
            error
                .to_string()
                .starts_with("unknown variant `boredom`, expected one of `crash`"),
            "{error}"
        );
    }
}
