//! Effects: orders the core gives, and the answers it sends back to requests; the
//! runtime performs them and decides nothing.

use super::event::{ProbeKind, Timer};
use super::order::{Refusal, Stream};
use super::state::{Gen, ReqId, Slot, Time};
use super::view::{AppView, HealthView, StatusView};
use crate::config::Signal;

/// The level of a [`Effect::Log`] line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Routine lifecycle facts.
    Info,
    /// Something failed and was handled (crash, spawn failure, kill escalation).
    Warn,
    /// Something gave up (errored).
    Error,
}

/// An order for the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Fork and exec the slot's app as generation `gen`, then report `Spawned` or `SpawnFailed`.
    Spawn {
        /// The slot.
        slot: Slot,
        /// The new generation.
        gen: Gen,
    },
    /// Send `signal` to the process group led by `pgid` (generation `gen` of `slot`).
    Signal {
        /// The slot.
        slot: Slot,
        /// The generation whose group is signalled.
        gen: Gen,
        /// The group (the leader's pid).
        pgid: i32,
        /// The signal.
        signal: Signal,
    },
    /// Send `signal` to the leader `pid` of generation `gen` of `slot` alone (not its group).
    SignalLeader {
        /// The slot.
        slot: Slot,
        /// The generation.
        gen: Gen,
        /// The leader.
        pid: i32,
        /// The signal.
        signal: Signal,
    },
    /// Deliver `Event::Timer(timer)` at `at`.
    SetTimer {
        /// When.
        at: Time,
        /// What.
        timer: Timer,
    },
    /// The terminal reply to a request. The runtime adds what only it measures (log
    /// lines, memory of a tree no limit samples) to a status before sending it.
    Reply {
        /// The request.
        req: ReqId,
        /// Its outcome.
        outcome: Result<Answer, Refusal>,
    },
    /// Send the logs of `query` to request `req`; the runtime streams and answers.
    ShowLogs {
        /// The request.
        req: ReqId,
        /// What to show.
        query: LogQuery,
    },
    /// Empty the log files of `apps`; the runtime answers `req`.
    FlushLogs {
        /// The request.
        req: ReqId,
        /// App names.
        apps: Vec<String>,
    },
    /// Close and reopen every log file; the runtime answers `req`.
    ReopenLogs {
        /// The request.
        req: ReqId,
    },
    /// Measure the process trees of these instances (off the loop) and report `Sampled`.
    Sample {
        /// Position of the app.
        app: usize,
        /// Each slot, its generation and its leader's pid.
        targets: Vec<(Slot, Gen, i32)>,
    },
    /// Run the `kind` probe of the slot's app against generation `gen` (off the loop,
    /// bounded by the probe's timeout) and report `ProbeDone`.
    Probe {
        /// The slot.
        slot: Slot,
        /// The generation probed.
        gen: Gen,
        /// Which probe.
        kind: ProbeKind,
    },
    /// Fire `Timer::Cron` for this app at its schedule's next time (wall clock, which only
    /// the runtime reads).
    ArmCron {
        /// Position of the app.
        app: usize,
        /// To put into the timer.
        epoch: u64,
    },
    /// Write a line to supd's own log.
    Log {
        /// How loud.
        level: Level,
        /// The line.
        message: String,
    },
    /// Every process is gone: exit supd with this code.
    Exit {
        /// The exit code.
        code: i32,
    },
}

/// What a completed order answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `status`: supd and the apps asked for.
    Status(StatusView),
    /// start, stop, restart, reload, scale, signal: the targeted instances once done.
    Instances(Vec<AppView>),
    /// `apply` done: what it did.
    Applied(std::sync::Arc<super::apply::Plan>),
    /// `scale` done: the app as it is now, and the instances its config file sets (which
    /// the next `apply` or supd restart brings back).
    Scaled {
        /// The app, every current instance.
        apps: Vec<AppView>,
        /// `instances` of the config file.
        file_instances: u32,
    },
    /// `health`.
    Health(HealthView),
    /// `shutdown`: every process is gone.
    Stopped,
}

/// Which log records a `logs` request wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// One app, or every app.
    pub app: Option<String>,
    /// One instance of that app.
    pub index: Option<u32>,
    /// Only stdout or only stderr.
    pub stream: Option<Stream>,
    /// How many past records first.
    pub lines: u32,
    /// Then keep following.
    pub follow: bool,
}
