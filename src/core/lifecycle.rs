//! Spawn and exit, stop and kill: one slot's way through its phases, and the restart
//! policy applied when a run ends. Part of [`super::handle`].

use std::time::Duration;

use super::effect::{Effect, Level};
use super::event::Timer;
use super::policy::{self, Decision, RunEnd};
use super::state::{AfterStop, ExitStatus, Gen, LastExit, Notice, Phase, Reason, Slot, Time};
use super::Cx;
use crate::config::Signal;
use crate::human;

impl Cx<'_> {
    pub(super) fn boot(&mut self) {
        let slots: Vec<Slot> = self.state.slots().collect();
        for slot in slots {
            if self.app(slot).autostart && self.inst(slot).phase == Phase::Stopped {
                self.spawn(slot, None);
            }
        }
        for app in 0..self.state.apps.len() {
            if self.state.apps[app].config.cron.is_some() {
                let epoch = self.state.apps[app].cron_epoch;
                self.fx.push(Effect::ArmCron { app, epoch });
            }
        }
        // Only apps with a memory limit are measured on a timer: an idle supd without
        // one has nothing to wake up for.
        for app in 0..self.state.apps.len() {
            let memory = &self.state.apps[app].config.memory;
            if memory.max_memory.is_some() {
                let at = self.now + memory.interval;
                self.state.apps[app].sampling = true;
                self.timer(at, Timer::Sample { app });
            }
        }
    }

    /// Order a spawn; `reason` is set for a replacement (counted as a restart).
    pub(super) fn spawn(&mut self, slot: Slot, reason: Option<Reason>) {
        let inst = self.inst(slot);
        inst.gen += 1;
        let gen = inst.gen;
        inst.phase = Phase::Spawning { gen };
        inst.usage = None;
        inst.over_limit = 0;
        inst.probe_failures = 0;
        inst.notice = Notice::default();
        let epoch = self.state.apps[slot.app].epoch;
        self.inst(slot).epoch = epoch;
        if let Some(reason) = reason {
            self.count_restart(slot, reason);
        }
        self.fx.push(Effect::Spawn { slot, gen });
    }

    /// One more replacement of the slot's process, for `reason`.
    pub(super) fn count_restart(&mut self, slot: Slot, reason: Reason) {
        let inst = self.inst(slot);
        inst.restarts += 1;
        inst.last_reason = Some(reason);
        *inst.restarts_by.entry(reason).or_default() += 1;
    }

    pub(super) fn on_adopted(&mut self, slot: Slot, pid: i32, since: Time) {
        let epoch = self.state.apps[slot.app].epoch;
        let inst = self.inst(slot);
        if inst.phase != Phase::Stopped {
            return;
        }
        inst.gen += 1;
        let gen = inst.gen;
        inst.epoch = epoch;
        // Its readiness was decided before the exec; a running process is taken as ready.
        inst.phase = Phase::Online {
            pid,
            gen,
            since,
            ready: true,
        };
        let label = self.state.label(slot);
        self.log(Level::Info, format!("{label} adopted (pid {pid})"));
        self.arm_health(slot, gen);
    }

    pub(super) fn on_spawned(&mut self, slot: Slot, gen: Gen, pid: i32) {
        let now = self.now;
        let inst = self.inst(slot);
        if inst.phase == (Phase::Spawning { gen }) {
            let ready = self.state.apps[slot.app].config.ready.is_none();
            self.inst(slot).phase = Phase::Online {
                pid,
                gen,
                since: now,
                ready,
            };
            let label = self.state.label(slot);
            self.log(Level::Info, format!("{label} started (pid {pid})"));
            self.began(slot, gen);
            if ready {
                self.became_ready(slot);
            }
        } else {
            // Stopped while the spawn was under way: this process is not wanted.
            self.fx.push(Effect::Signal {
                slot,
                gen,
                pgid: pid,
                signal: Signal::KILL,
            });
        }
    }

    pub(super) fn on_spawn_failed(&mut self, slot: Slot, gen: Gen, error: String) {
        let label = self.state.label(slot);
        let inst = self.inst(slot);
        if inst.gen != gen {
            return;
        }
        inst.last_exit = Some(LastExit::SpawnFailed(error.clone()));
        let rolling = inst.rolling.is_some();
        match inst.phase {
            Phase::Spawning { .. } | Phase::Online { .. } if rolling => {
                self.fail_rollout(slot, &format!("could not be spawned: {error}"));
                self.restore(slot);
            }
            Phase::Spawning { .. } | Phase::Online { .. } => {
                self.log(
                    Level::Warn,
                    format!("{label} could not be spawned: {error}"),
                );
                self.run_ended(slot, RunEnd::SpawnFailed, Duration::ZERO);
            }
            Phase::Stopping { .. } => self.stop_complete(slot),
            _ => {}
        }
    }

    pub(super) fn on_exited(
        &mut self,
        slot: Slot,
        gen: Gen,
        status: ExitStatus,
        group_alive: bool,
    ) {
        let now = self.now;
        let label = self.state.label(slot);
        if self.inst(slot).phase.gen() != Some(gen) && self.on_old_exited(slot, gen, group_alive) {
            return;
        }
        let inst = self.inst(slot);
        match inst.phase {
            Phase::Online {
                pid,
                gen: g,
                since,
                ready: false,
            } if g == gen && inst.rolling.is_some() => {
                inst.last_exit = Some(LastExit::Status(status));
                let why = format!("{} before it was ready", status.describe());
                self.fail_rollout(slot, &why);
                if group_alive {
                    self.begin_stop(slot, pid, gen, since, false, AfterStop::Restore);
                } else {
                    self.restore(slot);
                }
            }
            Phase::Online {
                pid, gen: g, since, ..
            } if g == gen => {
                inst.last_exit = Some(LastExit::Status(status));
                let uptime = now.saturating_sub(since);
                if group_alive {
                    // Like systemd's control-group kill mode: the orphaned workers of a
                    // pre-fork master would keep the port and block the replacement.
                    let then = AfterStop::Policy { status, uptime };
                    self.begin_stop(slot, pid, gen, since, false, then);
                    self.log(
                        Level::Warn,
                        format!(
                            "{label} {} after {}; stopping what is left of its process group",
                            status.describe(),
                            human::duration(uptime)
                        ),
                    );
                } else {
                    self.run_ended(slot, RunEnd::Exited(status), uptime);
                }
            }
            Phase::Stopping {
                gen: g,
                ref mut leader_alive,
                ..
            } if g == gen => {
                *leader_alive = false;
                inst.last_exit = Some(LastExit::Status(status));
                if !group_alive {
                    self.stop_complete(slot);
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_group_gone(&mut self, slot: Slot, gen: Gen) {
        if self.inst(slot).phase.gen() != Some(gen) {
            self.on_old_exited(slot, gen, false);
            return;
        }
        if let Phase::Stopping {
            gen: g,
            leader_alive: false,
            ..
        } = self.inst(slot).phase
        {
            if g == gen {
                self.stop_complete(slot);
            }
        }
    }

    /// A run is over (the leader and its whole group are gone): apply the restart policy.
    pub(super) fn run_ended(&mut self, slot: Slot, end: RunEnd, uptime: Duration) {
        let label = self.state.label(slot);
        if self.state.shutdown.is_some() {
            self.inst(slot).phase = Phase::Stopped;
            return;
        }
        let now = self.now;
        let app = self.app(slot).clone();
        let failures = self.inst(slot).failures;
        let seed = policy::jitter_seed(slot.app, slot.index, failures);
        let (failures, decision) = policy::after_run(&app, failures, end, uptime, seed);
        self.inst(slot).failures = failures;
        let what = match (end, &self.inst(slot).last_exit) {
            (RunEnd::SpawnFailed, _) => "failed to spawn".to_string(),
            (RunEnd::NotReady, _) => format!("was not ready after {}", human::duration(uptime)),
            (RunEnd::Exited(status), _) => {
                format!("{} after {}", status.describe(), human::duration(uptime))
            }
        };
        match decision {
            Decision::Restart { delay } if delay.is_zero() => {
                self.log(Level::Warn, format!("{label} {what}; restarting now"));
                self.spawn(slot, Some(Reason::Crash));
            }
            Decision::Restart { delay } => {
                let until = now + delay;
                self.inst(slot).phase = Phase::Backoff { until };
                self.timer(until, Timer::Start { slot, at: until });
                let row = if failures == 0 {
                    String::new()
                } else {
                    format!(
                        " (short run {failures} in a row; errored after {})",
                        app.max_restarts
                    )
                };
                self.log(
                    Level::Warn,
                    format!(
                        "{label} {what}; restarting in {}{row}",
                        human::duration(delay)
                    ),
                );
            }
            Decision::GiveUp { retry } => {
                let retry_at = retry.map(|r| now + r);
                self.inst(slot).phase = Phase::Errored { retry_at };
                if let Some(at) = retry_at {
                    self.timer(at, Timer::Start { slot, at });
                }
                let next = match retry {
                    Some(r) => format!("trying again in {} (errored_retry)", human::duration(r)),
                    None => "not restarted (restart = never)".to_string(),
                };
                self.log(
                    Level::Error,
                    format!("{label} {what}; errored after {failures} failures in a row, {next}"),
                );
            }
            Decision::Finish => {
                self.inst(slot).phase = Phase::Exited;
                self.log(
                    Level::Info,
                    format!(
                        "{label} {what}; not restarted (restart = {:?})",
                        app.restart
                    ),
                );
            }
        }
    }

    /// The stopping generation's whole group is gone: do what was planned.
    pub(super) fn stop_complete(&mut self, slot: Slot) {
        let Phase::Stopping { then, since, .. } = self.inst(slot).phase else {
            return;
        };
        let label = self.state.label(slot);
        let shutting_down = self.state.shutdown.is_some();
        match then {
            AfterStop::Stop => {
                self.inst(slot).phase = Phase::Stopped;
                let uptime = human::duration(self.now.saturating_sub(since));
                self.log(Level::Info, format!("{label} stopped (it ran {uptime})"));
            }
            _ if shutting_down => self.inst(slot).phase = Phase::Stopped,
            AfterStop::Restart(reason) => {
                self.inst(slot).failures = 0;
                self.spawn(slot, Some(reason));
            }
            AfterStop::Start => {
                self.inst(slot).failures = 0;
                self.spawn(slot, None);
            }
            AfterStop::Policy { status, uptime } => {
                self.run_ended(slot, RunEnd::Exited(status), uptime)
            }
            AfterStop::NotReady { uptime } => self.run_ended(slot, RunEnd::NotReady, uptime),
            AfterStop::Restore => self.restore(slot),
        }
    }

    /// Begin stopping a slot; `then` says what follows. Slots without a process take
    /// their next phase at once.
    pub(super) fn stop(&mut self, slot: Slot, then: AfterStop) {
        if then != AfterStop::Restore {
            // Any other order for the slot ends a replacement under way, old one included.
            self.inst(slot).rolling = None;
            self.retire_old(slot, "an order for the instance ends its rollout");
        }
        let inst = self.inst(slot);
        match inst.phase {
            Phase::Online {
                pid, gen, since, ..
            } => self.begin_stop(slot, pid, gen, since, true, then),
            Phase::Stopping {
                then: ref mut current,
                ..
            } => *current = then,
            Phase::Spawning { .. } => {
                // The runtime reports every spawn before the next event, so this is not
                // reached; if it were, on_spawned kills the unwanted process.
                inst.phase = Phase::Stopped;
            }
            Phase::Backoff { .. } | Phase::Stopped | Phase::Exited | Phase::Errored { .. } => {
                match then {
                    AfterStop::Stop | AfterStop::Policy { .. } | AfterStop::NotReady { .. } => {
                        inst.phase = Phase::Stopped
                    }
                    AfterStop::Restore => self.restore(slot),
                    AfterStop::Restart(reason) => {
                        inst.failures = 0;
                        self.spawn(slot, Some(reason));
                    }
                    AfterStop::Start => {
                        inst.failures = 0;
                        self.spawn(slot, None);
                    }
                }
            }
        }
    }

    /// Put generation `gen` into `Stopping`: `stop_signal` to its group now, SIGKILL when
    /// `kill_timeout` has passed.
    pub(super) fn begin_stop(
        &mut self,
        slot: Slot,
        pid: i32,
        gen: Gen,
        since: Time,
        leader_alive: bool,
        then: AfterStop,
    ) {
        let signal = self.app(slot).stop_signal;
        let deadline = self.now + self.app(slot).kill_timeout;
        self.inst(slot).phase = Phase::Stopping {
            pid,
            gen,
            since,
            leader_alive,
            killed: false,
            then,
        };
        self.fx.push(Effect::Signal {
            slot,
            gen,
            pgid: pid,
            signal,
        });
        self.timer(deadline, Timer::Kill { slot, gen });
    }

    /// SIGKILL the group of a stopping slot (of generation `only`, if given), once.
    /// Returns whether the signal went out.
    pub(super) fn kill_group(&mut self, slot: Slot, only: Option<Gen>) -> bool {
        let old = self.kill_old(slot, only);
        let Phase::Stopping {
            pid,
            gen,
            ref mut killed,
            ..
        } = self.inst(slot).phase
        else {
            return old;
        };
        if *killed || only.is_some_and(|g| g != gen) {
            return old;
        }
        *killed = true;
        self.fx.push(Effect::Signal {
            slot,
            gen,
            pgid: pid,
            signal: Signal::KILL,
        });
        true
    }

    /// A backoff or errored pause ended: start the slot again if it still waits for `at`.
    pub(super) fn on_start_timer(&mut self, slot: Slot, at: Time) {
        match self.inst(slot).phase {
            Phase::Backoff { until } if until == at => self.spawn(slot, Some(Reason::Crash)),
            Phase::Errored { retry_at } if retry_at == Some(at) => {
                self.inst(slot).failures = 0;
                self.spawn(slot, Some(Reason::Crash));
            }
            _ => {}
        }
    }

    /// `kill_timeout` passed for generation `gen`: SIGKILL its group, if still there.
    pub(super) fn on_kill_timer(&mut self, slot: Slot, gen: Gen) {
        if self.kill_group(slot, Some(gen)) {
            let label = self.state.label(slot);
            let kill_timeout = human::duration(self.app(slot).kill_timeout);
            self.log(
                Level::Warn,
                format!(
                    "{label} still running {kill_timeout} after the stop signal (kill_timeout); sent SIGKILL to its process group"
                ),
            );
        }
    }
}
