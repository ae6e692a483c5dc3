//! The core's side of a control request: the [`Order`] it is asked to carry out, and the
//! [`Answer`] or [`Refusal`] it gives. The runtime maps the wire's commands and replies to
//! and from these, so the wire can grow without the lifecycle knowing its format.

use super::view::{AppView, HealthView, StatusView};
use crate::config::Signal;

/// What a request asks. `app` is a target: `name`, `name:INDEX` or `all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// Status of every app (`None`, `all`) or of one app or instance.
    Status {
        /// The target, if any.
        app: Option<String>,
    },
    /// Start the stopped instances of a target.
    Start {
        /// The target.
        app: String,
    },
    /// Stop the instances of a target.
    Stop {
        /// The target.
        app: String,
    },
    /// Stop then start the instances of a target (reason `manual`).
    Restart {
        /// The target.
        app: String,
    },
    /// Replace the running instances of a target, rolling (reason `reload`).
    Reload {
        /// The target.
        app: String,
    },
    /// Run this many instances of one app.
    Scale {
        /// The app's name.
        app: String,
        /// The new number of instances.
        instances: u32,
    },
    /// Send `signal` to the leader of each running instance of a target.
    Signal {
        /// The signal, already parsed.
        signal: Signal,
        /// The target.
        app: String,
    },
    /// Stop everything and exit.
    Shutdown,
    /// The last `lines` log records of a target (every app when none), then maybe follow.
    Logs {
        /// The target, if any.
        app: Option<String>,
        /// How many past records.
        lines: u32,
        /// Keep following.
        follow: bool,
        /// Only stdout or only stderr.
        stream: Option<Stream>,
    },
    /// Empty the log files of a target (every app when none).
    Flush {
        /// The target, if any.
        app: Option<String>,
    },
    /// Close and reopen every log file.
    Reopen,
    /// Whether every instance that should run is online and ready.
    Health,
}

/// A child's output stream, for log queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// What a completed order answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `status`: supd and the apps asked for.
    Status(StatusView),
    /// start, stop, restart, reload, scale, signal: the targeted instances once done.
    Instances(Vec<AppView>),
    /// `health`.
    Health(HealthView),
    /// `shutdown`: every process is gone.
    Stopped,
}

/// Why an order was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The class of refusal.
    pub kind: RefusalKind,
    /// One sentence for a person.
    pub message: String,
}

/// Classes of [`Refusal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The order's arguments are out of range.
    BadRequest,
    /// No app has that name.
    UnknownApp,
    /// The app has no instance with that index.
    UnknownInstance,
    /// supd is shutting down and takes no more orders.
    ShuttingDown,
}

impl Refusal {
    pub(super) fn new(kind: RefusalKind, message: String) -> Refusal {
        Refusal { kind, message }
    }

    pub(super) fn shutting_down() -> Refusal {
        Refusal::new(
            RefusalKind::ShuttingDown,
            "supd is shutting down".to_string(),
        )
    }
}
