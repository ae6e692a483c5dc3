//! The pure lifecycle: [`handle`] takes the state, one event and the time, changes the
//! state and returns the effects the runtime must perform.
//!
//! Nothing here touches the OS or reads a clock; failures arrive as events and leave as
//! replies or log lines. That keeps every restart, backoff, stop and shutdown scenario
//! testable in microseconds (see the harness in `tests.rs`).

pub mod effect;
pub mod event;
pub mod policy;
mod ready;
pub mod state;
pub mod view;

#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::config::Signal;
use crate::control::proto::{ActionResult, Command, ErrorBody, ErrorKind, Reason};
pub use effect::{Effect, Level, LogQuery};
pub use event::{Event, ExitStatus, Notice, ProbeKind, ReqId, Sample, Timer};
use policy::{Decision, RunEnd};
pub use state::{AfterStop, Gen, Goal, LastExit, Pending, Phase, Shutdown, Slot, State, Time};

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
        Event::Request { req, cmd } => cx.on_request(req, cmd),
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

/// Shared test fixture: an app with the documented defaults, as the config layer gives
/// them (so the defaults are written down in one place only).
#[cfg(test)]
pub(crate) fn test_app(name: &str) -> crate::config::App {
    let text = format!("[[app]]\nname = \"{name}\"\ncmd = \"true\"\ncwd = \"/\"\n");
    let path = std::path::Path::new("/etc/sup/ecosystem.toml");
    let mut config = crate::config::validate::validate(path, &text, None, 1, &|_| true)
        .unwrap_or_else(|e| panic!("test app: {e}"));
    config.apps.remove(0)
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

    fn boot(&mut self) {
        let slots: Vec<Slot> = self.state.slots().collect();
        for slot in slots {
            if self.app(slot).autostart && self.inst(slot).phase == Phase::Stopped {
                self.spawn(slot, None);
            }
        }
        for app in 0..self.state.apps.len() {
            if self.state.apps[app].config.cron.is_some() {
                self.fx.push(Effect::ArmCron { app });
            }
        }
        // Only apps with a memory limit are measured on a timer: an idle supd without
        // one has nothing to wake up for.
        for app in 0..self.state.apps.len() {
            let memory = &self.state.apps[app].config.memory;
            if memory.max_memory.is_some() {
                let at = self.now + memory.interval;
                self.timer(at, Timer::Sample { app });
            }
        }
    }

    /// Order a spawn; `reason` is set for a replacement (counted as a restart).
    fn spawn(&mut self, slot: Slot, reason: Option<Reason>) {
        let inst = self.inst(slot);
        inst.gen += 1;
        let gen = inst.gen;
        inst.phase = Phase::Spawning { gen };
        inst.usage = None;
        inst.over_limit = 0;
        inst.probe_failures = 0;
        inst.notice = Notice::default();
        if let Some(reason) = reason {
            inst.restarts += 1;
            inst.last_reason = Some(reason);
            *inst.restarts_by.entry(reason).or_default() += 1;
        }
        self.fx.push(Effect::Spawn { slot, gen });
    }

    fn on_spawned(&mut self, slot: Slot, gen: Gen, pid: i32) {
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

    fn on_spawn_failed(&mut self, slot: Slot, gen: Gen, error: String) {
        let label = self.state.label(slot);
        let inst = self.inst(slot);
        if inst.gen != gen {
            return;
        }
        inst.last_exit = Some(LastExit::SpawnFailed(error.clone()));
        match inst.phase {
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

    fn on_exited(&mut self, slot: Slot, gen: Gen, status: ExitStatus, group_alive: bool) {
        let now = self.now;
        let label = self.state.label(slot);
        let inst = self.inst(slot);
        match inst.phase {
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
                            describe_status(status),
                            human(uptime)
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

    fn on_group_gone(&mut self, slot: Slot, gen: Gen) {
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
    fn run_ended(&mut self, slot: Slot, end: RunEnd, uptime: Duration) {
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
            (RunEnd::NotReady, _) => format!("was not ready after {}", human(uptime)),
            (RunEnd::Exited(status), _) => {
                format!("{} after {}", describe_status(status), human(uptime))
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
                    format!("{label} {what}; restarting in {}{row}", human(delay)),
                );
            }
            Decision::GiveUp { retry } => {
                let retry_at = retry.map(|r| now + r);
                self.inst(slot).phase = Phase::Errored { retry_at };
                if let Some(at) = retry_at {
                    self.timer(at, Timer::Start { slot, at });
                }
                let next = match retry {
                    Some(r) => format!("trying again in {} (errored_retry)", human(r)),
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
    fn stop_complete(&mut self, slot: Slot) {
        let Phase::Stopping { then, since, .. } = self.inst(slot).phase else {
            return;
        };
        let label = self.state.label(slot);
        let shutting_down = self.state.shutdown.is_some();
        match then {
            AfterStop::Stop => {
                self.inst(slot).phase = Phase::Stopped;
                let uptime = human(self.now.saturating_sub(since));
                self.log(Level::Info, format!("{label} stopped after {uptime}"));
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
        }
    }

    /// Begin stopping a slot; `then` says what follows. Slots without a process take
    /// their next phase at once.
    fn stop(&mut self, slot: Slot, then: AfterStop) {
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

    /// Record a measurement; restart (or stop) instances over `max_memory` for
    /// `memory_samples` samples in a row, at most `max_unavailable` of the app at a time,
    /// the largest first.
    fn on_sampled(&mut self, app: usize, samples: &[Sample]) {
        let Some(config) = self.state.apps.get(app).map(|a| a.config.memory.clone()) else {
            return;
        };
        for sample in samples {
            let inst = self.inst(sample.slot);
            if !matches!(inst.phase, Phase::Online { gen, .. } if gen == sample.gen) {
                continue;
            }
            inst.usage = Some(state::Usage {
                rss_bytes: sample.rss_bytes,
                cpu_percent: sample.cpu_percent,
            });
            inst.over_limit =
                policy::over_limit(inst.over_limit, sample.rss_bytes, config.max_memory);
        }
        if self.state.shutdown.is_some() {
            return;
        }
        let Some(limit) = config.max_memory else {
            return;
        };
        let budget = self.budget(app);
        let instances = &self.state.apps[app].instances;
        let mut over: Vec<(u64, Slot)> = instances
            .iter()
            .enumerate()
            .filter(|(_, i)| {
                matches!(i.phase, Phase::Online { .. }) && i.over_limit >= config.samples
            })
            .map(|(index, i)| {
                let rss = i.usage.map_or(0, |u| u.rss_bytes);
                (
                    rss,
                    Slot {
                        app,
                        index: index as u32,
                    },
                )
            })
            .collect();
        over.sort_by_key(|&(rss, _)| std::cmp::Reverse(rss));
        for (rss, slot) in over.into_iter().take(budget) {
            let label = self.state.label(slot);
            let samples = self.inst(slot).over_limit;
            self.inst(slot).over_limit = 0;
            let (then, what) = match config.action {
                crate::config::MemoryAction::Restart => {
                    (AfterStop::Restart(Reason::Memory), "restarting it")
                }
                crate::config::MemoryAction::Stop => {
                    self.inst(slot).last_reason = Some(Reason::Memory);
                    (AfterStop::Stop, "stopping it (memory_action = stop)")
                }
            };
            self.log(
                Level::Warn,
                format!(
                    "{label} uses {} MiB, over max_memory {} MiB for {samples} samples in a row; {what}",
                    rss >> 20,
                    limit >> 20
                ),
            );
            self.stop(slot, then);
        }
    }

    /// How many more instances of `app` may go down now: `max_unavailable` minus those
    /// already starting, stopping or backing off.
    fn budget(&self, app: usize) -> usize {
        let app = &self.state.apps[app];
        let down = app
            .instances
            .iter()
            .filter(|i| {
                matches!(
                    i.phase,
                    Phase::Spawning { .. }
                        | Phase::Online { ready: false, .. }
                        | Phase::Stopping { .. }
                        | Phase::Backoff { .. }
                )
            })
            .count() as u32;
        app.config.memory.max_unavailable.saturating_sub(down) as usize
    }

    /// A cron tick. A service restarts rolling, one `max_unavailable` batch at a time, so
    /// a nightly restart is never an outage; a job (`restart = "never"`) is started, and
    /// `cron_overlap` decides about a run that is still going.
    fn on_cron(&mut self, app: usize) {
        self.fx.push(Effect::ArmCron { app });
        let Some(cron) = self.state.apps.get(app).and_then(|a| a.config.cron.clone()) else {
            return;
        };
        if self.state.shutdown.is_some() {
            return;
        }
        let name = self.state.apps[app].config.name.clone();
        let count = self.state.apps[app].count;
        if self.state.apps[app].config.restart == crate::config::RestartMode::Never {
            for index in 0..count {
                let slot = Slot { app, index };
                match (self.inst(slot).phase.is_live(), cron.overlap) {
                    (false, _) => self.spawn(slot, Some(Reason::Cron)),
                    (true, crate::config::CronOverlap::Restart) => {
                        self.stop(slot, AfterStop::Restart(Reason::Cron))
                    }
                    (true, crate::config::CronOverlap::Skip) => {
                        let label = self.state.label(slot);
                        self.log(
                            Level::Info,
                            format!("{label} is still running at its cron time; skipped (cron_overlap = skip)"),
                        );
                    }
                }
            }
            return;
        }
        let online: std::collections::VecDeque<(u32, Reason)> = (0..count)
            .filter(|&index| matches!(self.inst(Slot { app, index }).phase, Phase::Online { .. }))
            .map(|index| (index, Reason::Cron))
            .collect();
        self.log(
            Level::Info,
            format!(
                "cron: restarting {name} ({} instances, {} at a time)",
                online.len(),
                self.state.apps[app].config.memory.max_unavailable
            ),
        );
        self.state.apps[app].rollout = online;
    }

    /// Move every rolling restart on as far as `max_unavailable` allows.
    fn advance_rollouts(&mut self) {
        if self.state.shutdown.is_some() {
            return;
        }
        for app in 0..self.state.apps.len() {
            let mut budget = self.budget(app);
            while budget > 0 {
                let Some((index, reason)) = self.state.apps[app].rollout.pop_front() else {
                    break;
                };
                let slot = Slot { app, index };
                // One that crashed or was stopped meanwhile has no old process to replace.
                if matches!(self.inst(slot).phase, Phase::Online { .. }) {
                    self.stop(slot, AfterStop::Restart(reason));
                    budget -= 1;
                }
            }
        }
    }

    /// Put generation `gen` into `Stopping`: `stop_signal` to its group now, SIGKILL when
    /// `kill_timeout` has passed.
    fn begin_stop(
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
    fn kill_group(&mut self, slot: Slot, only: Option<Gen>) -> bool {
        let Phase::Stopping {
            pid,
            gen,
            ref mut killed,
            ..
        } = self.inst(slot).phase
        else {
            return false;
        };
        if *killed || only.is_some_and(|g| g != gen) {
            return false;
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

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Start { slot, at } => match self.inst(slot).phase {
                Phase::Backoff { until } if until == at => self.spawn(slot, Some(Reason::Crash)),
                Phase::Errored { retry_at } if retry_at == Some(at) => {
                    self.inst(slot).failures = 0;
                    self.spawn(slot, Some(Reason::Crash));
                }
                _ => {}
            },
            Timer::Kill { slot, gen } => {
                if self.kill_group(slot, Some(gen)) {
                    let label = self.state.label(slot);
                    let kill_timeout = human(self.app(slot).kill_timeout);
                    self.log(
                        Level::Warn,
                        format!(
                            "{label} still running {kill_timeout} after the stop signal (kill_timeout); sent SIGKILL to its process group"
                        ),
                    );
                }
            }
            Timer::ShutdownDeadline => {
                if self.state.shutdown.as_ref().is_some_and(|s| !s.forced) {
                    self.log(
                        Level::Warn,
                        "shutdown_timeout passed; killing what is left".to_string(),
                    );
                    self.kill_everything();
                }
            }
            Timer::Cron { app } => self.on_cron(app),
            Timer::Probe { slot, gen, kind } => self.on_probe_timer(slot, gen, kind),
            Timer::ReadyDeadline { slot, gen } => self.on_ready_deadline(slot, gen),
            Timer::Sample { app } => {
                if self.state.shutdown.is_some() {
                    return;
                }
                let targets: Vec<(Slot, Gen, i32)> = self.state.apps[app]
                    .instances
                    .iter()
                    .enumerate()
                    .filter_map(|(index, inst)| match inst.phase {
                        Phase::Online { pid, gen, .. } => Some((
                            Slot {
                                app,
                                index: index as u32,
                            },
                            gen,
                            pid,
                        )),
                        _ => None,
                    })
                    .collect();
                if !targets.is_empty() {
                    self.fx.push(Effect::Sample { app, targets });
                }
                let at = self.now + self.state.apps[app].config.memory.interval;
                self.timer(at, Timer::Sample { app });
            }
            Timer::ShutdownAbandon => {
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
    }

    fn on_request(&mut self, req: ReqId, cmd: Command) {
        let now = self.now;
        match &cmd {
            Command::Status { app } => match view::status(self.state, app.as_deref(), now) {
                Ok(status) => self.fx.push(Effect::ReplyStatus { req, status }),
                Err(error) => self.fx.push(Effect::Reply {
                    req,
                    outcome: Err(error),
                }),
            },
            Command::Logs {
                app,
                lines,
                follow,
                stream,
            } => {
                let target = app.as_deref().filter(|a| *a != "all");
                let query = |app: Option<String>, index: Option<u32>| LogQuery {
                    app,
                    index,
                    stream: *stream,
                    lines: *lines,
                    follow: *follow,
                };
                let effect = match target.map(|t| (t, view::resolve(self.state, t))) {
                    None => Effect::ShowLogs {
                        req,
                        query: query(None, None),
                    },
                    Some((_, Err(error))) => Effect::Reply {
                        req,
                        outcome: Err(error),
                    },
                    Some((target, Ok(slots))) => {
                        // `app` names every instance; `app:N` exactly one.
                        let first = slots.first().copied();
                        let name = first.map(|s| self.state.apps[s.app].config.name.clone());
                        let index = first.filter(|_| target.contains(':')).map(|s| s.index);
                        Effect::ShowLogs {
                            req,
                            query: query(name, index),
                        }
                    }
                };
                self.fx.push(effect);
            }
            Command::Flush { app } => {
                let effect = match view::resolve(self.state, app.as_deref().unwrap_or("all")) {
                    Ok(slots) => {
                        let mut apps: Vec<String> = slots
                            .iter()
                            .map(|s| self.state.apps[s.app].config.name.clone())
                            .collect();
                        apps.dedup();
                        Effect::FlushLogs { req, apps }
                    }
                    Err(error) => Effect::Reply {
                        req,
                        outcome: Err(error),
                    },
                };
                self.fx.push(effect);
            }
            Command::Reopen => self.fx.push(Effect::ReopenLogs { req }),
            Command::Health => {
                let health = view::health(self.state, now);
                self.fx.push(Effect::Reply {
                    req,
                    outcome: Ok(serde_json::to_value(health).unwrap_or_default()),
                });
            }
            Command::Reload { app } => {
                let Some(slots) = self.targets(req, app) else {
                    return;
                };
                let mut goals = Vec::new();
                for slot in slots {
                    // Only running instances are replaced; `start` is for the others.
                    let Phase::Online { gen, .. } = self.inst(slot).phase else {
                        goals.push((slot, Goal::Replaced(self.inst(slot).gen)));
                        continue;
                    };
                    let rollout = &mut self.state.apps[slot.app].rollout;
                    if !rollout.iter().any(|(i, _)| *i == slot.index) {
                        rollout.push_back((slot.index, Reason::Reload));
                    }
                    goals.push((slot, Goal::Replaced(gen)));
                }
                self.state.pending.push(Pending { req, cmd, goals });
            }
            Command::Scale { app, instances } => self.scale(req, &cmd, app, *instances),
            Command::Signal { signal, app } => {
                let parsed = crate::config::units::parse_signal(signal);
                let outcome = match (parsed, view::resolve(self.state, app)) {
                    (Err(message), _) => Err(ErrorBody {
                        kind: ErrorKind::BadRequest,
                        message,
                    }),
                    (_, Err(error)) => Err(error),
                    (Ok(signal), Ok(slots)) => {
                        for &slot in &slots {
                            if let Phase::Online { pid, gen, .. } = self.inst(slot).phase {
                                self.fx.push(Effect::SignalLeader {
                                    slot,
                                    gen,
                                    pid,
                                    signal,
                                });
                            }
                        }
                        let result = ActionResult {
                            apps: view::apps(self.state, &slots, now),
                        };
                        Ok(serde_json::to_value(result).unwrap_or_default())
                    }
                };
                self.fx.push(Effect::Reply { req, outcome });
            }
            Command::Shutdown => {
                self.begin_shutdown();
                if let Some(shutdown) = self.state.shutdown.as_mut() {
                    shutdown.waiting.push(req);
                }
            }
            Command::Start { app } | Command::Stop { app } | Command::Restart { app } => {
                let Some(slots) = self.targets(req, app) else {
                    return;
                };
                let goals = slots
                    .into_iter()
                    .map(|slot| (slot, self.order(slot, &cmd)))
                    .collect();
                self.state.pending.push(Pending { req, cmd, goals });
            }
        }
    }

    /// The slots an order names, or `None` after replying with why there are none (an
    /// unknown target, or a shutdown under way: nothing may start then).
    fn targets(&mut self, req: ReqId, target: &str) -> Option<Vec<Slot>> {
        let outcome = match view::resolve(self.state, target) {
            Ok(_) if self.state.shutdown.is_some() => Err(shutting_down()),
            other => other,
        };
        match outcome {
            Ok(slots) => Some(slots),
            Err(error) => {
                self.fx.push(Effect::Reply {
                    req,
                    outcome: Err(error),
                });
                None
            }
        }
    }

    /// `scale APP N`: start the new slots, stop the ones at `N` and above; the request
    /// completes when they are up (or failed) and gone.
    fn scale(&mut self, req: ReqId, cmd: &Command, name: &str, instances: u32) {
        let found = self.state.apps.iter().position(|a| a.config.name == name);
        let outcome = match found {
            _ if self.state.shutdown.is_some() => Err(shutting_down()),
            _ if instances > MAX_SCALE => Err(ErrorBody {
                kind: ErrorKind::BadRequest,
                message: format!("at most {MAX_SCALE} instances, not {instances}"),
            }),
            // `APP:N` and `all` name no single app: resolve says which is wrong.
            None => Err(view::resolve(self.state, name).err().unwrap_or(ErrorBody {
                kind: ErrorKind::UnknownApp,
                message: format!("`scale` takes an app name, not `{name}`"),
            })),
            Some(app) => Ok(app),
        };
        let app = match outcome {
            Ok(app) => app,
            Err(error) => {
                self.fx.push(Effect::Reply {
                    req,
                    outcome: Err(error),
                });
                return;
            }
        };
        let old = self.state.apps[app].count;
        while self.state.apps[app].instances.len() < instances as usize {
            self.state.apps[app]
                .instances
                .push(state::Instance::default());
        }
        self.state.apps[app].count = instances;
        self.state.apps[app]
            .rollout
            .retain(|(index, _)| *index < instances);
        let start = Command::Start {
            app: name.to_string(),
        };
        let mut goals = Vec::new();
        for index in old..instances {
            let slot = Slot { app, index };
            goals.push((slot, self.order(slot, &start)));
        }
        for index in instances..old {
            let slot = Slot { app, index };
            let gen = self.inst(slot).gen;
            self.stop(slot, AfterStop::Stop);
            goals.push((slot, Goal::Gone(gen)));
        }
        let label = &self.state.apps[app].config.name;
        self.log(
            Level::Info,
            format!("scaling {label} from {old} to {instances} instances"),
        );
        self.state.pending.push(Pending {
            req,
            cmd: cmd.clone(),
            goals,
        });
    }

    /// Carry out start/stop/restart on one slot; returns the goal that completes it.
    fn order(&mut self, slot: Slot, cmd: &Command) -> Goal {
        let phase = self.inst(slot).phase;
        let gen = self.inst(slot).gen;
        match cmd {
            Command::Stop { .. } => {
                self.stop(slot, AfterStop::Stop);
                Goal::Gone(gen)
            }
            Command::Start { .. } => match phase {
                Phase::Online { .. } | Phase::Spawning { .. } => Goal::Reached(gen),
                Phase::Stopping { then, .. } => {
                    if then == AfterStop::Stop || matches!(then, AfterStop::Policy { .. }) {
                        self.stop(slot, AfterStop::Start);
                    }
                    Goal::Reached(gen + 1)
                }
                _ => {
                    self.stop(slot, AfterStop::Start);
                    Goal::Reached(gen + 1)
                }
            },
            _ => {
                self.stop(slot, AfterStop::Restart(Reason::Manual));
                Goal::Reached(gen + 1)
            }
        }
    }

    fn begin_shutdown(&mut self) {
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
            self.fx.push(Effect::Reply {
                req: pending.req,
                outcome: Err(shutting_down()),
            });
        }
        let at = self.now + self.state.info.shutdown_timeout;
        self.timer(at, Timer::ShutdownDeadline);
    }

    /// SIGKILL every group still stopping (second SIGINT, or shutdown_timeout passed).
    fn kill_everything(&mut self) {
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

    /// Answer every pending request whose slots reached their goals.
    fn settle_pending(&mut self) {
        let now = self.now;
        let mut i = 0;
        while i < self.state.pending.len() {
            let pending = &self.state.pending[i];
            let done = pending.goals.iter().all(|&(slot, goal)| {
                let Some(inst) = self.state.instance(slot) else {
                    return true;
                };
                match goal {
                    Goal::Gone(gen) => inst.gen > gen || !inst.phase.is_live(),
                    Goal::Reached(gen) => inst.gen >= gen && !in_transition(inst.phase),
                    Goal::Replaced(gen) => {
                        (inst.gen > gen && !in_transition(inst.phase))
                            || matches!(
                                inst.phase,
                                Phase::Stopped | Phase::Exited | Phase::Errored { .. }
                            )
                    }
                }
            });
            if done {
                let pending = self.state.pending.remove(i);
                let slots: Vec<Slot> = match &pending.cmd {
                    // The app as it is now, not the slots scaled away.
                    Command::Scale { app, .. } => {
                        view::resolve(self.state, app).unwrap_or_default()
                    }
                    _ => pending.goals.iter().map(|(s, _)| *s).collect(),
                };
                let result = ActionResult {
                    apps: view::apps(self.state, &slots, now),
                };
                self.fx.push(Effect::Reply {
                    req: pending.req,
                    outcome: Ok(serde_json::to_value(result).unwrap_or_default()),
                });
            } else {
                i += 1;
            }
        }
    }

    /// During a shutdown, once nothing is live: answer the shutdown requests and exit 0.
    fn maybe_exit(&mut self) {
        if self.state.shutdown.is_none() || self.state.live_slots().next().is_some() {
            return;
        }
        self.exit(0);
    }

    fn exit(&mut self, code: i32) {
        let Some(shutdown) = self.state.shutdown.as_mut() else {
            return;
        };
        if shutdown.exited {
            return;
        }
        shutdown.exited = true;
        for req in std::mem::take(&mut shutdown.waiting) {
            self.fx.push(Effect::Reply {
                req,
                outcome: Ok(serde_json::json!({ "stopped": true })),
            });
        }
        self.fx.push(Effect::Exit { code });
    }
}

/// Spawned but not ready yet, or stopping: a request waiting on the slot waits on.
fn in_transition(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Spawning { .. } | Phase::Online { ready: false, .. } | Phase::Stopping { .. }
    )
}

fn shutting_down() -> ErrorBody {
    ErrorBody {
        kind: ErrorKind::ShuttingDown,
        message: "supd is shutting down".to_string(),
    }
}

/// "exited with code 1", "killed by SIGKILL".
pub fn describe_status(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(code) => format!("exited with code {code}"),
        ExitStatus::Signal(sig) => match crate::config::units::signal_name(sig) {
            Some(name) => format!("killed by {name}"),
            None => format!("killed by signal {sig}"),
        },
    }
}

/// A short human duration: "0ms", "250ms", "1.5s", "2m5s", "3h".
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let tenths = ms / 100;
        if tenths % 10 == 0 {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        }
    } else if ms < 3_600_000 {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h{}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}
