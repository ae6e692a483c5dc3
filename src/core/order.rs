//! The core's side of a control request: the [`Order`] it is asked to carry out, and the
//! [`Refusal`] when it cannot (the answers are [`super::Answer`]). The runtime maps the wire's commands and replies to
//! and from these, so the wire can grow without the lifecycle knowing its format.

use crate::config::Signal;

/// What a request asks. A `target` is `name`, `name:INDEX` or `all`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Order {
    /// Status of every app (`None`, `all`) or of one app or instance.
    Status {
        /// What to show.
        target: Option<String>,
    },
    /// Start, stop, restart or reload the instances of a target.
    Act {
        /// Which.
        action: Action,
        /// Whose.
        target: String,
    },
    /// Run this many instances of one app (an app name, not a target).
    Scale {
        /// The app's name.
        app: String,
        /// How many instances.
        count: Count,
    },
    /// Send `signal` to the leader of each running instance of a target, or to its whole
    /// process group.
    Signal {
        /// The signal, already parsed.
        signal: Signal,
        /// Whose.
        target: String,
        /// Every process of the group, not only the leader.
        group: bool,
    },
    /// Stop everything and exit.
    Shutdown,
    /// The last `lines` log records of a target (every app when none), then maybe follow.
    Logs {
        /// Whose.
        target: Option<String>,
        /// Only stdout or only stderr.
        stream: Option<Stream>,
        /// How many past records.
        lines: u32,
        /// Keep following.
        follow: bool,
    },
    /// Empty the log files of a target (every app when none).
    Flush {
        /// Whose.
        target: Option<String>,
    },
    /// Close and reopen every log file.
    Reopen,
    /// Whether every instance that should run is online and ready.
    Health,
    /// `apply`: carry out a plan made against the current state by
    /// [`super::apply::plan`].
    Apply {
        /// The plan.
        plan: super::apply::Planned,
    },
}

/// What [`Order::Act`] does to each instance it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Action {
    /// Start a stopped instance; a running one is left alone.
    Start,
    /// Stop it (`stop_signal`, then SIGKILL after `kill_timeout`).
    Stop,
    /// Stop it, then start it again (reason `manual`).
    Restart,
    /// Replace a running instance rolling, each replacement ready before the next goes
    /// down (reason `reload`).
    Reload,
}

impl Order {
    /// `action` on `target`.
    pub fn act(action: Action, target: &str) -> Order {
        Order::Act {
            action,
            target: target.to_string(),
        }
    }
}

/// How many instances `scale` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Count {
    /// This many.
    To(u32),
    /// This many more (fewer, when negative) than now.
    By(i64),
}

/// A child's output stream, for log queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// Why an order was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// The class of refusal.
    pub kind: RefusalKind,
    /// One sentence for a person.
    pub message: String,
}

/// Classes of [`Refusal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RefusalKind {
    /// The order's arguments are out of range.
    BadRequest,
    /// No app has that name.
    UnknownApp,
    /// The app has no instance with that index.
    UnknownInstance,
    /// supd is shutting down and takes no more orders.
    ShuttingDown,
    /// The config asks for something that cannot be done while supd runs.
    BadConfig,
    /// It was carried out in part and failed (a rollout whose new instance never got
    /// ready).
    Failed,
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
