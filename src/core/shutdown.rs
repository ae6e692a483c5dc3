//! Shutdown: stop everything, kill what is left after `shutdown_timeout`, and exit
//! once every group is gone. Part of [`super::handle`].

use super::effect::{Answer, Effect, Level};
use super::event::Timer;
use super::order::Refusal;
use super::state::{AfterStop, Goal, Pending, Shutdown, Slot};
use super::{Cx, ABANDON_AFTER};

impl Cx<'_> {
    pub(super) fn begin_shutdown(&mut self) {
        if self.state.shutdown.is_some() {
            return;
        }
        self.state.shutdown = Some(Shutdown {
            waiting: Vec::new(),
            forced: false,
            exited: false,
        });
        let live = self.state.live_slots().count();
        self.log(
            Level::Info,
            format!("shutting down: stopping {live} running instances"),
        );
        let slots: Vec<Slot> = self.state.all_slots().collect();
        for slot in slots {
            self.stop(slot, AfterStop::Stop);
        }
        // Orders that wait for a process to come up cannot complete any more.
        let (dead, keep): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.state.pending)
            .into_iter()
            .partition(|p| {
                p.goals
                    .iter()
                    .any(|(_, goal)| matches!(goal, Goal::Reached(_)))
            });
        self.state.pending = keep;
        for pending in dead {
            self.reply(pending.req, Err(Refusal::shutting_down()));
        }
        let at = self.now + self.state.info.shutdown_timeout;
        self.timer(at, Timer::ShutdownDeadline);
    }

    /// SIGKILL every group still stopping (second SIGINT, or shutdown_timeout passed).
    pub(super) fn kill_everything(&mut self) {
        let Some(shutdown) = self.state.shutdown.as_mut() else {
            return;
        };
        if shutdown.forced {
            return;
        }
        shutdown.forced = true;
        let slots: Vec<Slot> = self.state.all_slots().collect();
        for slot in slots {
            self.kill_group(slot, None);
        }
        self.timer(self.now + ABANDON_AFTER, Timer::ShutdownAbandon);
    }

    /// During a shutdown, once nothing is live: answer the shutdown requests and exit 0.
    pub(super) fn maybe_exit(&mut self) {
        if self.state.shutdown.is_none() || self.state.live_slots().next().is_some() {
            return;
        }
        self.exit(0);
    }

    pub(super) fn exit(&mut self, code: i32) {
        let Some(shutdown) = self.state.shutdown.as_mut() else {
            return;
        };
        if shutdown.exited {
            return;
        }
        shutdown.exited = true;
        for req in std::mem::take(&mut shutdown.waiting) {
            self.reply(req, Ok(Answer::Stopped));
        }
        self.fx.push(Effect::Exit { code });
    }

    /// `shutdown_timeout` passed: kill whatever is left.
    pub(super) fn on_shutdown_deadline(&mut self) {
        if self.state.shutdown.as_ref().is_some_and(|s| !s.forced) {
            self.log(
                Level::Warn,
                "shutdown_timeout passed; killing what is left".to_string(),
            );
            self.kill_everything();
        }
    }

    /// Even SIGKILL did not empty every group in time: exit anyway, saying which.
    pub(super) fn on_shutdown_abandon(&mut self) {
        let live: Vec<String> = self
            .state
            .live_slots()
            .map(|s| self.state.label(s))
            .collect();
        if self.state.shutdown.is_some() && !live.is_empty() {
            self.log(
                Level::Error,
                format!(
                    "exiting although these did not go away after SIGKILL: {}",
                    live.join(", ")
                ),
            );
            self.exit(1);
        }
    }
}

/// The longest a graceful shutdown of `config`'s apps can take before supd exits (pure):
/// every app is SIGKILLed after its `kill_timeout`, everything after `shutdown_timeout`,
/// whichever comes first.
pub fn longest_stop(config: &crate::config::Config) -> std::time::Duration {
    let kill = config
        .apps
        .iter()
        .map(|a| a.kill_timeout)
        .max()
        .unwrap_or_default();
    kill.min(config.supervisor.shutdown_timeout)
}
