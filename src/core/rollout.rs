//! Rolling replacement: cron restarts, reload and scale, each moving on as far as
//! `max_unavailable` allows. Part of [`super::handle`].

use super::effect::{Effect, Level};
use super::order::{Action, Order, Refusal, RefusalKind};
use super::state::{self, AfterStop, Goal, Pending, Phase, Reason, ReqId, Slot};
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
    pub(super) fn on_cron(&mut self, app: usize) {
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
    pub(super) fn advance_rollouts(&mut self) {
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

    /// `scale APP N`: start the new slots, stop the ones at `N` and above; the request
    /// completes when they are up (or failed) and gone.
    pub(super) fn scale(&mut self, req: ReqId, order: &Order, name: &str, instances: u32) {
        let found = self.state.apps.iter().position(|a| a.config.name == name);
        let outcome = match found {
            _ if self.state.shutdown.is_some() => Err(Refusal::shutting_down()),
            _ if instances > MAX_SCALE => Err(Refusal::new(
                RefusalKind::BadRequest,
                format!("at most {MAX_SCALE} instances, not {instances}"),
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
        self.state.pending.push(Pending {
            req,
            order: order.clone(),
            goals,
        });
    }

    /// `reload`: queue the running instances of a target for a rolling replacement; the
    /// request completes when each was replaced (or has nothing left to replace).
    pub(super) fn reload(&mut self, req: ReqId, target: &str, order: &Order) {
        let Some(slots) = self.targets(req, target) else {
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
        self.state.pending.push(Pending {
            req,
            order: order.clone(),
            goals,
        });
    }
}
