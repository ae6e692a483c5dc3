//! Effects: orders the core gives; the runtime performs them and decides nothing.

use super::event::{ReqId, Timer};
use super::state::{Gen, Slot, Time};
use crate::config::Signal;
use crate::control::proto::ErrorBody;

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
    /// Deliver `Event::Timer(timer)` at `at`.
    SetTimer {
        /// When.
        at: Time,
        /// What.
        timer: Timer,
    },
    /// The terminal reply to a request.
    Reply {
        /// The request.
        req: ReqId,
        /// Its outcome.
        outcome: Result<serde_json::Value, ErrorBody>,
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
