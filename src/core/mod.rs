//! The pure lifecycle: [`handle`] takes the state, one event and the time, changes the
//! state and returns the effects the runtime must perform.
//!
//! Nothing here touches the OS or reads a clock; failures arrive as events and leave as
//! replies or log lines. That keeps every restart, backoff, stop and shutdown scenario
//! testable in microseconds (see the harness in `tests.rs`).
//!
//! The vocabulary is the core's own: [`Event`]s (facts) and [`Order`]s (requests) come in,
//! [`Effect`]s go out, requests end in an [`Answer`] or a [`Refusal`]. The runtime maps
//! the control protocol onto these. [`handle`] dispatches to one `impl Cx` per concern:
//! `lifecycle` (spawn, exit, stop, the restart policy), `memory` (limits), `rollout`
//! (cron restarts, reload, scale), `ready` (readiness, health, sd_notify), `requests`
//! and `shutdown`.

pub mod apply;
pub mod effect;
pub mod event;
mod lifecycle;
mod memory;
pub mod order;
pub mod policy;
mod ready;
mod requests;
mod rollout;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod view;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use effect::{Answer, Effect, Level, LogQuery};
pub use event::{Event, ProbeKind, Sample, Timer};
pub use order::{Action, Count, Order, Refusal, RefusalKind, Stream};
pub use state::{
    AfterStop, ExitStatus, Gen, Goal, LastExit, Notice, Pending, Phase, Reason, ReqId, Shutdown,
    Slot, State, Time,
};

/// The most instances `scale` gives an app: a typo must not fork a million processes.
pub const MAX_SCALE: u32 = 4096;

/// After a forced kill, how long supd waits for the groups to vanish before it exits anyway
/// (a process stuck in uninterruptible sleep cannot be killed).
pub const ABANDON_AFTER: Duration = Duration::from_secs(5);

/// Apply one event at time `now`; return what the runtime must do, in order.
pub fn handle(state: &mut State, event: Event, now: Time) -> Vec<Effect> {
    let mut cx = Cx {
        state,
        now,
        fx: Vec::new(),
    };
    match event {
        Event::Boot => cx.boot(),
        Event::Adopted { slot, pid, since } => cx.on_adopted(slot, pid, since),
        Event::Spawned { slot, gen, pid } => cx.on_spawned(slot, gen, pid),
        Event::SpawnFailed { slot, gen, error } => cx.on_spawn_failed(slot, gen, error),
        Event::Exited {
            slot,
            gen,
            status,
            group_alive,
        } => cx.on_exited(slot, gen, status, group_alive),
        Event::GroupGone { slot, gen } => cx.on_group_gone(slot, gen),
        Event::Timer(timer) => cx.on_timer(timer),
        Event::Request { req, order } => cx.on_request(req, order),
        Event::Sampled { app, samples } => cx.on_sampled(app, &samples),
        Event::ProbeDone {
            slot,
            gen,
            kind,
            ok,
            detail,
        } => cx.on_probe_done(slot, gen, kind, ok, detail),
        Event::Notified { slot, gen, notice } => cx.on_notified(slot, gen, notice),
        Event::ShutdownSignal { force } => {
            cx.begin_shutdown();
            if force {
                cx.kill_everything();
            }
        }
    }
    cx.advance_rollouts();
    cx.settle_pending();
    cx.maybe_exit();
    cx.fx
}

/// One call of [`handle`]: the state, the time, and the effects gathered so far.
struct Cx<'a> {
    state: &'a mut State,
    now: Time,
    fx: Vec<Effect>,
}

impl Cx<'_> {
    fn inst(&mut self, slot: Slot) -> &mut state::Instance {
        &mut self.state.apps[slot.app].instances[slot.index as usize]
    }

    fn app(&self, slot: Slot) -> &crate::config::App {
        &self.state.apps[slot.app].config
    }

    fn log(&mut self, level: Level, message: String) {
        self.fx.push(Effect::Log { level, message });
    }

    fn timer(&mut self, at: Time, timer: Timer) {
        self.fx.push(Effect::SetTimer { at, timer });
    }

    /// The one terminal reply to `req`.
    fn reply(&mut self, req: ReqId, outcome: Result<Answer, Refusal>) {
        self.fx.push(Effect::Reply { req, outcome });
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Start { slot, at } => self.on_start_timer(slot, at),
            Timer::Kill { slot, gen } => self.on_kill_timer(slot, gen),
            Timer::ShutdownDeadline => self.on_shutdown_deadline(),
            Timer::ShutdownAbandon => self.on_shutdown_abandon(),
            Timer::Cron { app, epoch } => self.on_cron(app, epoch),
            Timer::Probe { slot, gen, kind } => self.on_probe_timer(slot, gen, kind),
            Timer::ReadyDeadline { slot, gen } => self.on_ready_deadline(slot, gen),
            Timer::Sample { app } => self.on_sample_timer(app),
        }
    }
}
