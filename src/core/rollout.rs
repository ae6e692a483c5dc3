//! Rolling replacement: cron restarts, reload and scale, each moving on as far as
//! `max_unavailable` allows. Part of [`super::handle`].

use super::effect::{Effect, Level};
use super::event::Timer;
use super::order::{Action, Count, Order, Refusal, RefusalKind};
use super::state::{self, AfterStop, Gen, Goal, OldProcess, OldStop, Pending, Phase, Reason};
use super::state::{ReqId, Slot, Time};
use super::{view, Cx, MAX_SCALE};

impl Cx<'_> {
    /// How many more instances of `app` may go down now: `max_unavailable` minus those
    /// already starting, stopping or backing off.
    pub(super) fn budget(&self, app: usize) -> usize {
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
    pub(super) fn on_cron(&mut self, app: usize, epoch: u64) {
        // A schedule that `apply` replaced or removed fires no more.
        let current = self.state.apps.get(app).filter(|a| !a.removed);
        if !current.is_some_and(|a| a.cron_epoch == epoch) {
            return;
        }
        let Some(cron) = self.state.apps[app].config.cron.clone() else {
            return;
        };
        self.fx.push(Effect::ArmCron { app, epoch });
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

    /// Move every rolling replacement on. Surge first (`max_surge` > 0): a new process is
    /// started beside the old one, which is stopped once the new one is ready, at most
    /// `max_surge` at a time. With a ready check, an old process that was told to stop no
    /// longer counts (its replacement is known to serve: the next one does not wait for
    /// it to drain); without one, "ready" only means spawned, so the old one's exit paces
    /// the rollout. Stop first (`max_surge = 0`): as many are stopped and replaced as
    /// `max_unavailable` allows.
    pub(super) fn advance_rollouts(&mut self) {
        if self.state.shutdown.is_some() {
            return;
        }
        for app in 0..self.state.apps.len() {
            // Runs after every event: with nothing queued, no pass over the instances
            // (that made starting N instances cost N² steps).
            if self.state.apps[app].rollout.is_empty() {
                continue;
            }
            let surge = self.state.apps[app].config.rollout_surge() as usize;
            let mut room = if surge == 0 {
                self.budget(app)
            } else {
                let checked = self.state.apps[app].config.ready.is_some();
                let extra: usize = self.state.apps[app]
                    .instances
                    .iter()
                    .map(|i| match checked {
                        true => usize::from(i.serving_old().is_some()),
                        false => i.old.len(),
                    })
                    .sum();
                surge.saturating_sub(extra)
            };
            while room > 0 {
                let Some((index, reason)) = self.state.apps[app].rollout.pop_front() else {
                    break;
                };
                let slot = Slot { app, index };
                match self.inst(slot).phase {
                    Phase::Online {
                        pid,
                        gen,
                        since,
                        ready: true,
                    } if surge > 0 => self.surge(slot, pid, gen, since, reason),
                    // Not serving yet (or stop first): nothing to keep running meanwhile.
                    // The restart counts once the replacement is ready.
                    Phase::Online { .. } => {
                        self.stop(slot, AfterStop::Start);
                        self.inst(slot).rolling = Some(reason);
                    }
                    // One that crashed or was stopped meanwhile has no process to replace.
                    _ => continue,
                }
                room -= 1;
            }
        }
    }

    /// Start the replacement of a serving process beside it; the old one becomes an
    /// [`OldProcess`] and is stopped once the new one is ready (see `became_ready`).
    fn surge(&mut self, slot: Slot, pid: i32, gen: Gen, since: Time, reason: Reason) {
        let inst = self.inst(slot);
        let epoch = inst.epoch;
        inst.old.push(OldProcess {
            pid,
            gen,
            since,
            epoch,
            stopping: None,
        });
        inst.phase = Phase::Stopped;
        self.spawn(slot, None);
        self.inst(slot).rolling = Some(reason);
    }

    /// The slot's process is ready: a replacement in a rollout is done (and counted: one
    /// that never got ready replaced nothing), and the process it replaces can go.
    pub(super) fn became_ready(&mut self, slot: Slot) {
        if let Some(reason) = self.inst(slot).rolling.take() {
            self.count_restart(slot, reason);
            self.retire_old(slot, "its replacement is ready");
        }
    }

    /// Tell every old process of the slot that still serves to stop.
    /// `why` says for the log line.
    pub(super) fn retire_old(&mut self, slot: Slot, why: &str) {
        let serving: Vec<OldProcess> = self
            .inst(slot)
            .old
            .iter()
            .filter(|o| o.stopping.is_none())
            .copied()
            .collect();
        for old in serving {
            let label = self.state.label(slot);
            self.log(
                Level::Info,
                format!("{label}: {why}; stopping the old process (pid {})", old.pid),
            );
            self.stop_old(slot, old, true);
        }
    }

    /// `stop_signal` to the group of old process `old`, SIGKILL after `kill_timeout`.
    fn stop_old(&mut self, slot: Slot, old: OldProcess, leader_alive: bool) {
        let signal = self.app(slot).stop_signal;
        let deadline = self.now + self.app(slot).kill_timeout;
        for o in self.inst(slot).old.iter_mut().filter(|o| o.gen == old.gen) {
            o.stopping = Some(OldStop {
                leader_alive,
                killed: false,
            });
        }
        self.fx.push(Effect::Signal {
            slot,
            gen: old.gen,
            pgid: old.pid,
            signal,
        });
        self.timer(deadline, Timer::Kill { slot, gen: old.gen });
    }

    /// A rollout's replacement in `slot` will not get ready (`why`): stop the rollout of
    /// its app, stop the replacement and keep every old process that still runs. The
    /// requests waiting on the rollout fail, once the slot settled.
    pub(super) fn fail_rollout(&mut self, slot: Slot, why: &str) {
        let app = slot.app;
        self.inst(slot).rolling = None;
        let label = self.state.label(slot);
        let kept = self.state.apps[app].rollout.len()
            + self.state.apps[app]
                .instances
                .iter()
                .filter(|i| i.serving_old().is_some())
                .count();
        self.state.apps[app].rollout.clear();
        self.undo_process_settings(slot);
        let message = format!("{label} {why}");
        self.log(
            Level::Error,
            format!(
                "{message}; the rollout of {} stopped, {kept} old instances keep running",
                self.state.apps[app].config.name
            ),
        );
        for pending in &mut self.state.pending {
            let waits = pending
                .goals
                .iter()
                .any(|(s, g)| s.app == app && matches!(g, Goal::Replaced(_)));
            if !waits {
                continue;
            }
            pending.failures.push(message.clone());
            // The others will not be replaced now; this one must settle first.
            pending
                .goals
                .retain(|(s, g)| s.app != app || !matches!(g, Goal::Replaced(_)) || *s == slot);
            for (s, goal) in &mut pending.goals {
                if *s == slot {
                    *goal = Goal::Settled;
                }
            }
        }
    }

    /// A rollout of an `apply` failed at `failed` before any instance of the app runs the
    /// new settings: put back the settings a process takes at its start (the keys whose
    /// change needs a restart, and `env_file`), so the state says what runs and `diff`
    /// shows the change as still to apply. Settings supd uses stay applied; so does a
    /// changed `listen` (its new sockets are bound and the old ones closed), and then the
    /// instances are `outdated` instead.
    fn undo_process_settings(&mut self, failed: Slot) {
        let app = &self.state.apps[failed.app];
        let Some((previous, epoch)) = app.previous.as_ref() else {
            return;
        };
        let replaced = app.instances.iter().enumerate().any(|(index, inst)| {
            index as u32 != failed.index && inst.has_process() && inst.epoch == app.epoch
        });
        if replaced || previous.listen != app.config.listen {
            return;
        }
        let (previous, epoch) = (previous.clone(), *epoch);
        let app = &mut self.state.apps[failed.app];
        let config = &mut app.config;
        config.cmd = previous.cmd;
        config.cwd = previous.cwd;
        config.env = previous.env;
        config.env_file = previous.env_file;
        config.user = previous.user;
        config.group = previous.group;
        app.epoch = epoch;
        app.previous = None;
        let name = app.config.name.clone();
        self.log(
            Level::Info,
            format!("{name}: nothing was replaced; its processes keep their settings (`supctl diff` shows the change still to apply)"),
        );
    }

    /// A failed replacement is gone: its old process (if one still serves) is the slot's
    /// process again; else the slot stays stopped.
    pub(super) fn restore(&mut self, slot: Slot) {
        let inst = self.inst(slot);
        match inst.old.iter().position(|o| o.stopping.is_none()) {
            Some(at) => {
                let old = inst.old.remove(at);
                inst.epoch = old.epoch;
                inst.phase = Phase::Online {
                    pid: old.pid,
                    gen: old.gen,
                    since: old.since,
                    ready: true,
                };
                let label = self.state.label(slot);
                self.log(
                    Level::Info,
                    format!("{label} keeps its old process (pid {})", old.pid),
                );
            }
            None => inst.phase = Phase::Stopped,
        }
    }

    /// An event about an old process of `slot`: its leader was reaped (`group_alive`:
    /// other members remain), its group is empty, or its kill timer fired. Returns false
    /// when `gen` is no old process of the slot.
    pub(super) fn on_old_exited(&mut self, slot: Slot, gen: Gen, group_alive: bool) -> bool {
        let Some(at) = self.inst(slot).old.iter().position(|o| o.gen == gen) else {
            return false;
        };
        let old = self.inst(slot).old[at];
        let label = self.state.label(slot);
        match old.stopping {
            None => {
                // It died while its replacement was starting: nothing to restore later.
                self.log(
                    Level::Warn,
                    format!(
                        "{label}: the old process (pid {}) ended while its replacement starts",
                        old.pid
                    ),
                );
                if group_alive {
                    self.stop_old(slot, old, false);
                } else {
                    self.inst(slot).old.remove(at);
                }
            }
            Some(_) if group_alive => {
                if let Some(stop) = self.inst(slot).old[at].stopping.as_mut() {
                    stop.leader_alive = false;
                }
            }
            Some(_) => {
                self.inst(slot).old.remove(at);
                let ran = crate::human::duration(self.now.saturating_sub(old.since));
                self.log(
                    Level::Info,
                    format!(
                        "{label}: the old process (pid {}) stopped (it ran {ran})",
                        old.pid
                    ),
                );
            }
        }
        true
    }

    /// SIGKILL the group of old process `gen` of `slot` (every old one if `None`), once.
    pub(super) fn kill_old(&mut self, slot: Slot, only: Option<Gen>) -> bool {
        let mut sent = false;
        let olds = self.inst(slot).old.clone();
        for old in olds {
            if only.is_some_and(|g| g != old.gen) {
                continue;
            }
            let Some(stop) = old.stopping else { continue };
            if stop.killed {
                continue;
            }
            for o in self.inst(slot).old.iter_mut().filter(|o| o.gen == old.gen) {
                o.stopping = Some(OldStop {
                    killed: true,
                    ..stop
                });
            }
            self.fx.push(Effect::Signal {
                slot,
                gen: old.gen,
                pgid: old.pid,
                signal: crate::config::Signal::KILL,
            });
            sent = true;
        }
        sent
    }

    /// `scale APP N`: start the new slots, stop the ones at `N` and above; the request
    /// completes when they are up (or failed) and gone.
    pub(super) fn scale(&mut self, req: ReqId, order: &Order, name: &str, count: Count) {
        let found = self.state.app_named(name);
        let now = found.map_or(0, |app| i64::from(self.state.apps[app].count));
        let wanted = match count {
            Count::To(n) => i64::from(n),
            Count::By(n) => now.saturating_add(n),
        };
        let instances = wanted.clamp(0, i64::from(u32::MAX)) as u32;
        let outcome = match found {
            _ if self.state.shutdown.is_some() => Err(Refusal::shutting_down()),
            Some(_) if wanted < 1 => Err(Refusal::new(
                RefusalKind::BadRequest,
                match count {
                    Count::By(n) => format!(
                        "{name} has {now} instances; {n:+} would leave {wanted}: at least 1 \
                         (`stop {name}` stops them all)"
                    ),
                    Count::To(_) => {
                        format!("at least 1 instance, not {wanted} (`stop {name}` stops them all)")
                    }
                },
            )),
            _ if wanted > i64::from(MAX_SCALE) => Err(Refusal::new(
                RefusalKind::BadRequest,
                format!("at most {MAX_SCALE} instances, not {wanted}"),
            )),
            // `APP:N` and `all` name no single app: resolve says which is wrong.
            None => Err(view::resolve(self.state, name)
                .err()
                .unwrap_or(Refusal::new(
                    RefusalKind::UnknownApp,
                    format!("`scale` takes an app name, not `{name}`"),
                ))),
            Some(app) => Ok(app),
        };
        let app = match outcome {
            Ok(app) => app,
            Err(error) => return self.reply(req, Err(error)),
        };
        let goals = self.resize(app, instances);
        self.state.pending.push(Pending {
            req,
            order: order.clone(),
            goals,
            failures: Vec::new(),
        });
    }

    /// Give `app` `instances` slots: start the new ones, stop those at `instances` and
    /// above. Returns what completes it for each slot touched.
    pub(super) fn resize(&mut self, app: usize, instances: u32) -> Vec<(Slot, Goal)> {
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
        let mut goals = Vec::new();
        for index in old..instances {
            let slot = Slot { app, index };
            goals.push((slot, self.act(slot, Action::Start)));
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
        goals
    }

    /// `reload`: queue the running instances of a target for a rolling replacement; the
    /// request completes when each was replaced (or has nothing left to replace).
    pub(super) fn reload(&mut self, req: ReqId, target: &str, order: &Order) {
        let Some(slots) = self.targets(req, target) else {
            return;
        };
        let mut goals = Vec::new();
        let mut queued = 0;
        for &slot in &slots {
            queued += usize::from(matches!(self.inst(slot).phase, Phase::Online { .. }));
        }
        if let Some(first) = slots.first() {
            let config = &self.state.apps[first.app].config;
            let how = match config.rollout_surge() {
                0 => format!(
                    "stop first, {} at a time (max_unavailable)",
                    config.memory.max_unavailable
                ),
                n => format!("surge first, {n} at a time (max_surge)"),
            };
            let name = config.name.clone();
            self.log(
                Level::Info,
                format!("reload: replacing {queued} running instances of {name}, {how}"),
            );
        }
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
        self.state.pending.push(Pending {
            req,
            order: order.clone(),
            goals,
            failures: Vec::new(),
        });
    }
}
