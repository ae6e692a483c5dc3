//! `apply` (and `diff`, and SIGHUP): what it takes to make the running apps what a config
//! file says, as a [`Plan`] computed from the state and the file ([`plan`], pure), and
//! carrying it out. Only what differs changes: an unchanged app keeps its processes, a
//! changed count scales, settings supd itself uses take effect at once, and only settings
//! a process takes at its start (command, environment, ...) roll the app's instances.
//! Part of [`super::handle`].

use std::sync::Arc;

use super::effect::{Effect, Level};
use super::event::Timer;
use super::order::{Order, Refusal, RefusalKind};
use super::state::{self, AfterStop, Goal, Pending, Phase, Reason, ReqId, Slot, State};
use super::Cx;
use crate::config::diff::{self, AppDiff, Diff, DiffKind};
use crate::config::{App as AppConfig, Config};
use crate::human::count;

/// A plan handed to the core in an [`Order::Apply`]; equal only to itself (orders are
/// compared in tests, plans are not).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Planned(pub Arc<Plan>);

impl PartialEq for Planned {
    fn eq(&self, other: &Planned) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Planned {}

/// What an apply of `config` does, app by app.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The file, validated.
    pub config: Arc<Config>,
    /// Key by key, what differs between the running config and the file.
    pub diff: Diff,
    /// Each app something happens to, in the order it is done.
    pub apps: Vec<AppPlan>,
}

/// What happens to one app.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppPlan {
    /// Its name.
    pub name: String,
    /// Its position in [`State::apps`] (a new app's is past the end).
    pub position: usize,
    /// Its position in the file's apps (none for a removed one).
    pub file_index: Option<usize>,
    /// What happens.
    pub step: Step,
}

/// What happens to one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Step {
    /// New: started (if `autostart`).
    Add {
        /// Its instances.
        instances: u32,
    },
    /// Gone from the file: stopped gracefully, then forgotten.
    Remove {
        /// Its running instances.
        instances: u32,
    },
    /// In both: the new settings apply.
    Update {
        /// The instances before and after, when the count changes.
        scale: Option<(u32, u32)>,
        /// Running instances replaced (rolling) because a setting changed that only a new
        /// process takes, or because they still run older settings.
        roll: u32,
        /// Instances that ran older settings before this apply (a rollout that stopped).
        outdated: u32,
    },
}

impl Plan {
    /// Nothing would change.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty() && self.diff.supervisor.is_empty()
    }

    /// The changes that cannot be made while supd runs (the apply is refused whole).
    pub fn refused(&self) -> &[String] {
        &self.diff.refused
    }

    /// The key-level changes of app `name`, if it has some.
    pub fn changes_of(&self, name: &str) -> Option<&AppDiff> {
        self.diff.apps.iter().find(|a| a.name == name)
    }

    /// The actions, in order, for people: what `apply --dry-run` prints.
    pub fn steps(&self) -> Vec<String> {
        let mut steps = Vec::new();
        for change in &self.diff.supervisor {
            steps.push(format!(
                "set [supervisor] {} to {}",
                change.key,
                change.new.as_deref().unwrap_or("its default")
            ));
        }
        let of = |kind: fn(&Step) -> bool| self.apps.iter().filter(move |a| kind(&a.step));
        for app in of(|s| matches!(s, Step::Add { .. })) {
            if let Step::Add { instances } = app.step {
                steps.push(format!(
                    "start {} ({})",
                    app.name,
                    count(instances as usize, "instance")
                ));
            }
        }
        for app in of(|s| matches!(s, Step::Update { .. })) {
            let Step::Update { scale, roll, .. } = app.step else {
                continue;
            };
            let live: Vec<&str> = self
                .changes_of(&app.name)
                .map(|d| {
                    d.changes
                        .iter()
                        .filter(|c| c.needs == diff::Needs::Live)
                        .map(|c| c.key.as_str())
                        .collect()
                })
                .unwrap_or_default();
            if !live.is_empty() {
                steps.push(format!("update {} in place: {}", app.name, live.join(", ")));
            }
            if let Some((from, to)) = scale {
                steps.push(format!("scale {} from {from} to {to}", app.name));
            }
            if roll > 0 {
                steps.push(format!(
                    "replace {} of {} rolling (reason apply)",
                    count(roll as usize, "instance"),
                    app.name
                ));
            }
        }
        for app in of(|s| matches!(s, Step::Remove { .. })) {
            steps.push(match app.step {
                Step::Remove { instances: 0 } => format!("remove {} (not running)", app.name),
                Step::Remove { instances } => {
                    let n = count(instances as usize, "instance");
                    format!("stop {} ({n}) and remove it", app.name)
                }
                _ => continue,
            });
        }
        steps
    }
}

/// The running config as the state holds it, with each app's current count.
fn running(state: &State) -> Config {
    Config {
        path: state.info.config.clone().into(),
        supervisor: state.info.supervisor.clone(),
        apps: state
            .apps
            .iter()
            .filter(|a| !a.removed)
            .map(|a| AppConfig {
                instances: a.count,
                ..a.config.clone()
            })
            .collect(),
    }
}

/// What applying `config` to `state` does.
pub fn plan(state: &State, config: Arc<Config>) -> Plan {
    let diff = diff::diff(&running(state), &config);
    let mut apps = Vec::new();
    let mut next = state.apps.len()..;
    for (file_index, new) in config.apps.iter().enumerate() {
        let Some(position) = state.app_named(&new.name) else {
            let position = next.next().unwrap_or(usize::MAX);
            apps.push(AppPlan {
                name: new.name.clone(),
                position,
                file_index: Some(file_index),
                step: Step::Add {
                    instances: new.instances,
                },
            });
            continue;
        };
        let app = &state.apps[position];
        let changes = diff.apps.iter().find(|d| d.name == new.name);
        let restart = changes.is_some_and(AppDiff::needs_restart);
        let count = new.instances;
        // Only the slots that remain are replaced; new ones start with the new settings.
        let kept = app.count.min(count);
        let running = |index: u32| {
            let inst = &app.instances[index as usize];
            matches!(inst.phase, Phase::Online { .. }).then_some(inst.epoch)
        };
        let outdated = (0..app.count)
            .filter(|&i| running(i).is_some_and(|e| e < app.epoch))
            .count() as u32;
        let roll = (0..kept)
            .filter(|&i| running(i).is_some_and(|e| restart || e < app.epoch))
            .count() as u32;
        let scale = (app.count != count).then_some((app.count, count));
        if changes.is_none() && roll == 0 && scale.is_none() {
            continue;
        }
        apps.push(AppPlan {
            name: new.name.clone(),
            position,
            file_index: Some(file_index),
            step: Step::Update {
                scale,
                roll,
                outdated,
            },
        });
    }
    for (position, app) in state.apps.iter().enumerate() {
        if app.removed || config.apps.iter().any(|a| a.name == app.config.name) {
            continue;
        }
        let instances = (0..app.count)
            .filter(|&i| app.instances[i as usize].has_process())
            .count() as u32;
        apps.push(AppPlan {
            name: app.config.name.clone(),
            position,
            file_index: None,
            step: Step::Remove { instances },
        });
    }
    Plan { config, diff, apps }
}

impl Cx<'_> {
    /// Carry out `plan` (computed against this very state); the request completes when
    /// every rolled instance is ready, every new one up and every removed one gone.
    pub(super) fn apply(&mut self, req: ReqId, order: &Order, plan: &Plan) {
        if self.state.shutdown.is_some() {
            return self.reply(req, Err(Refusal::shutting_down()));
        }
        if !plan.refused().is_empty() {
            let message = plan.refused().join("; ");
            return self.reply(req, Err(Refusal::new(RefusalKind::BadConfig, message)));
        }
        let config = &plan.config;
        self.state.info.config = config.path.display().to_string();
        self.state.info.supervisor = config.supervisor.clone();
        self.state.info.shutdown_timeout = config.supervisor.shutdown_timeout;
        let mut goals = Vec::new();
        for app in &plan.apps {
            let new = app.file_index.map(|i| config.apps[i].clone());
            match (app.step, new) {
                (Step::Add { .. }, Some(new)) => goals.extend(self.add_app(app.position, new)),
                (Step::Remove { .. }, _) => goals.extend(self.remove_app(app.position)),
                (Step::Update { .. }, Some(new)) => {
                    let restart = plan
                        .changes_of(&app.name)
                        .is_some_and(AppDiff::needs_restart);
                    goals.extend(self.update_app(app.position, new, restart));
                }
                _ => {}
            }
        }
        let summary = summary(plan);
        self.log(
            Level::Info,
            format!("apply {}: {summary}", config.path.display()),
        );
        self.state.pending.push(Pending {
            req,
            order: order.clone(),
            goals,
            failures: Vec::new(),
        });
    }

    fn add_app(&mut self, position: usize, config: AppConfig) -> Vec<(Slot, Goal)> {
        debug_assert_eq!(
            position,
            self.state.apps.len(),
            "planned against this state"
        );
        let autostart = config.autostart;
        let count = config.instances;
        self.state.apps.push(state::App::new(config));
        let app = self.state.apps.len() - 1;
        self.arm_app_timers(app, None);
        let mut goals = Vec::new();
        if autostart {
            for index in 0..count {
                let slot = Slot { app, index };
                self.spawn(slot, None);
                goals.push((slot, Goal::Reached(self.inst(slot).gen)));
            }
        }
        goals
    }

    fn remove_app(&mut self, app: usize) -> Vec<(Slot, Goal)> {
        self.state.apps[app].removed = true;
        self.state.apps[app].rollout.clear();
        self.state.apps[app].count = 0;
        let mut goals = Vec::new();
        for index in 0..self.state.apps[app].instances.len() as u32 {
            let slot = Slot { app, index };
            let gen = self.inst(slot).gen;
            self.stop(slot, AfterStop::Stop);
            goals.push((slot, Goal::Gone(gen)));
        }
        goals
    }

    fn update_app(&mut self, app: usize, config: AppConfig, restart: bool) -> Vec<(Slot, Goal)> {
        let old = std::mem::replace(&mut self.state.apps[app].config, config.clone());
        if restart {
            let epoch = self.state.apps[app].epoch;
            self.state.apps[app].previous = Some((Box::new(old.clone()), epoch));
            self.state.apps[app].epoch += 1;
        }
        self.arm_app_timers(app, Some(&old));
        let mut goals = Vec::new();
        if self.state.apps[app].count != config.instances {
            goals.extend(self.resize(app, config.instances));
        }
        let epoch = self.state.apps[app].epoch;
        for index in 0..self.state.apps[app].count {
            let slot = Slot { app, index };
            let Phase::Online { gen, .. } = self.inst(slot).phase else {
                continue;
            };
            if self.inst(slot).epoch >= epoch {
                continue;
            }
            let rollout = &mut self.state.apps[app].rollout;
            match rollout.iter_mut().find(|(i, _)| *i == index) {
                Some(queued) => queued.1 = Reason::Apply,
                None => rollout.push_back((index, Reason::Apply)),
            }
            goals.push((slot, Goal::Replaced(gen)));
        }
        goals
    }

    /// Arm what a new or changed app's settings need and `old` (its settings before, if
    /// any) did not: its cron schedule, memory sampling, health probes.
    fn arm_app_timers(&mut self, app: usize, old: Option<&AppConfig>) {
        let config = self.state.apps[app].config.clone();
        if old.map(|o| &o.cron) != Some(&config.cron) {
            self.state.apps[app].cron_epoch += 1;
            if config.cron.is_some() {
                let epoch = self.state.apps[app].cron_epoch;
                self.fx.push(Effect::ArmCron { app, epoch });
            }
        }
        if config.memory.max_memory.is_some() && !self.state.apps[app].sampling {
            self.state.apps[app].sampling = true;
            let at = self.now + config.memory.interval;
            self.timer(at, Timer::Sample { app });
        }
        let had_health = old.is_some_and(|o| o.health.is_some());
        if config.health.is_some() && !had_health {
            for index in 0..self.state.apps[app].count {
                let slot = Slot { app, index };
                if let Phase::Online {
                    gen, ready: true, ..
                } = self.inst(slot).phase
                {
                    self.arm_health(slot, gen);
                }
            }
        }
    }
}

/// `added web; removed old; changed api (rolling 2)`, or `nothing to change`.
fn summary(plan: &Plan) -> String {
    if plan.is_empty() {
        return "nothing to change".to_string();
    }
    let mut parts = Vec::new();
    for app in &plan.apps {
        let kind = plan.changes_of(&app.name).map(|d| d.kind);
        parts.push(match (app.step, kind) {
            (Step::Add { .. }, _) => format!("added {}", app.name),
            (Step::Remove { .. }, _) => format!("removed {}", app.name),
            (Step::Update { roll, .. }, Some(DiffKind::Changed) | None) if roll > 0 => {
                format!("changed {} (rolling {roll})", app.name)
            }
            (Step::Update { .. }, _) => format!("changed {}", app.name),
        });
    }
    if !plan.diff.supervisor.is_empty() {
        parts.push("changed [supervisor]".to_string());
    }
    parts.join("; ")
}
