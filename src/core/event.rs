//! Events: facts that happened, fed to [`super::handle`] by the runtime.

use super::order::Order;
use super::state::ExitStatus;
use super::state::{Gen, Notice, ReqId, Slot, Time};

/// A timer the core asked for. A timer that no longer matches the state is ignored, so
/// the runtime never has to cancel one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Timer {
    /// Start the slot again (end of a backoff or an errored pause), if it still waits for `at`.
    Start {
        /// The slot.
        slot: Slot,
        /// When it was due; matches the slot's `until` / `retry_at`.
        at: Time,
    },
    /// `kill_timeout` passed for a stopping generation: SIGKILL its group.
    Kill {
        /// The slot.
        slot: Slot,
        /// The generation being stopped.
        gen: Gen,
    },
    /// `shutdown_timeout` passed: kill everything that is left.
    ShutdownDeadline,
    /// Even SIGKILL did not empty every group in time: exit anyway.
    ShutdownAbandon,
    /// An app's cron schedule fired (armed by the runtime for [`super::Effect::ArmCron`]).
    Cron {
        /// Position of the app.
        app: usize,
        /// The app's [`super::state::App::cron_epoch`] when it was armed.
        epoch: u64,
    },
    /// Time to measure the instances of an app with a memory limit.
    Sample {
        /// Position of the app.
        app: usize,
    },
    /// Time to run the `kind` probe of generation `gen` again.
    Probe {
        /// The slot.
        slot: Slot,
        /// The generation probed.
        gen: Gen,
        /// Which probe.
        kind: ProbeKind,
    },
    /// The `ready.timeout` of generation `gen` passed: not ready by now is a failed start.
    ReadyDeadline {
        /// The slot.
        slot: Slot,
        /// The generation.
        gen: Gen,
    },
}

/// Which of an app's probes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ProbeKind {
    /// `ready`: gates `starting` → `online`.
    Ready,
    /// `health`: restarts a ready instance that keeps failing it.
    Health,
}

/// One instance's resource use, measured over its whole process tree.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// The slot.
    pub slot: Slot,
    /// The generation measured.
    pub gen: Gen,
    /// Resident memory of the leader and every descendant.
    pub rss_bytes: u64,
    /// CPU use since the previous sample of this tree (none for a first sample).
    pub cpu_percent: Option<f64>,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// supd is up: start every app with `autostart`.
    Boot,
    /// A process of the slot was found running at start (a re-exec whose handover could
    /// not be read): it becomes the slot's current generation, ready, running since `since`.
    /// Sent before [`Event::Boot`], for a slot still stopped.
    Adopted {
        /// The slot.
        slot: Slot,
        /// The process (leader of its own session).
        pid: i32,
        /// When it started, on supd's clock.
        since: Time,
    },
    /// A spawn order succeeded: the process exists.
    Spawned {
        /// The slot.
        slot: Slot,
        /// The generation the order carried.
        gen: Gen,
        /// The new process (leader of its own process group).
        pid: i32,
    },
    /// A spawn order failed before or at exec (no such file, permission, bad user...).
    SpawnFailed {
        /// The slot.
        slot: Slot,
        /// The generation the order carried.
        gen: Gen,
        /// What failed, with the OS error.
        error: String,
    },
    /// The leader of a generation was reaped.
    Exited {
        /// The slot.
        slot: Slot,
        /// Its generation.
        gen: Gen,
        /// How it ended.
        status: ExitStatus,
        /// Other members of its process group are still alive.
        group_alive: bool,
    },
    /// The last member of a generation's process group is gone (after its leader).
    GroupGone {
        /// The slot.
        slot: Slot,
        /// The generation.
        gen: Gen,
    },
    /// A timer fired.
    Timer(Timer),
    /// A control request arrived.
    Request {
        /// Where the reply goes.
        req: ReqId,
        /// What was asked.
        order: Order,
    },
    /// The instances of an app were measured (answering [`super::Effect::Sample`]).
    Sampled {
        /// Position of the app.
        app: usize,
        /// One per instance that still existed.
        samples: Vec<Sample>,
    },
    /// A probe ordered by [`super::Effect::Probe`] finished (or, for `ready.log`, the
    /// instance printed a matching line: a passed ready probe).
    ProbeDone {
        /// The slot.
        slot: Slot,
        /// The generation probed.
        gen: Gen,
        /// Which probe.
        kind: ProbeKind,
        /// It passed.
        ok: bool,
        /// What was seen, for the log line ("HTTP 503", "connection refused", ...).
        detail: String,
    },
    /// A process of generation `gen` sent a datagram to the slot's sd_notify socket.
    Notified {
        /// The slot.
        slot: Slot,
        /// The generation the sender belongs to.
        gen: Gen,
        /// What it said.
        notice: Notice,
    },
    /// SIGTERM or SIGINT; `force` for a second SIGINT (kill everything at once).
    ShutdownSignal {
        /// Kill at once instead of stopping gracefully.
        force: bool,
    },
}
