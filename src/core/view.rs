//! What `status` and `health` show, as the core sees it: pure functions from [`State`] to
//! views (the runtime turns them into the wire's rows), and the resolution of `APP`,
//! `APP:N` and `all` to slots.

use std::collections::BTreeMap;
use std::time::Duration;

use super::order::{Refusal, RefusalKind};
use super::state::{LastExit, Notice, Phase, Reason, Slot, State, Time, Usage};

/// An instance's state, by DESIGN §5's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateName {
    /// Spawned, not yet ready.
    Starting,
    /// Running (and ready).
    Online,
    /// Told to stop; waiting for its process group to be gone.
    Stopping,
    /// Stopped by request (or never started).
    Stopped,
    /// Waiting to restart after a failure.
    Backoff,
    /// Gave up after `max_restarts` failures in a row.
    Errored,
    /// Finished and not restarted by policy.
    Exited,
}

impl StateName {
    /// Every state, in the order of DESIGN §5.
    pub const ALL: [StateName; 7] = [
        StateName::Starting,
        StateName::Online,
        StateName::Stopping,
        StateName::Stopped,
        StateName::Backoff,
        StateName::Errored,
        StateName::Exited,
    ];

    /// The name as DESIGN §5 spells it (`"backoff"`).
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Starting => "starting",
            StateName::Online => "online",
            StateName::Stopping => "stopping",
            StateName::Stopped => "stopped",
            StateName::Backoff => "backoff",
            StateName::Errored => "errored",
            StateName::Exited => "exited",
        }
    }
}

/// The whole status, or the apps and instances asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusView {
    /// supd's pid.
    pub pid: i32,
    /// supd's version.
    pub version: String,
    /// Time since supd started.
    pub uptime: Duration,
    /// The config file.
    pub config: String,
    /// The apps, in config order.
    pub apps: Vec<AppView>,
}

/// One app and the instances asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct AppView {
    /// The app's name.
    pub name: String,
    /// The instances, by index.
    pub instances: Vec<InstanceView>,
}

/// One instance as the core knows it (what only the runtime measures is not here).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceView {
    /// 0-based index.
    pub index: u32,
    /// Its state.
    pub state: StateName,
    /// Online, ready, and it has not said `STOPPING=1`.
    pub ready: bool,
    /// The leader, when a process exists, and how long it has run.
    pub pid: Option<i32>,
    /// See `pid`.
    pub uptime: Option<Duration>,
    /// In `backoff` or `errored`: time until the next attempt.
    pub next_start: Option<Duration>,
    /// Replacements since supd started: how many, the last one's reason, and by reason.
    pub restarts: u32,
    /// See `restarts`.
    pub last_reason: Option<Reason>,
    /// See `restarts`.
    pub restarts_by_reason: BTreeMap<Reason, u32>,
    /// The last sample of the live process tree.
    pub usage: Option<Usage>,
    /// What the live process last said over sd_notify.
    pub notice: Notice,
    /// How the previous process ended.
    pub last_exit: Option<LastExit>,
    /// Runs settings older than the app's (an `apply` changed them; not replaced yet).
    pub outdated: bool,
    /// The process this one replaces, while it still runs (surge first).
    pub old: Option<OldView>,
}

/// An old process beside its replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldView {
    /// Its pid.
    pub pid: i32,
    /// `online` while it still serves, then `stopping`.
    pub state: StateName,
}

impl InstanceView {
    /// How the previous process ended, for people: "exited with code 1".
    pub fn last_exit_text(&self) -> Option<String> {
        match &self.last_exit {
            Some(LastExit::Status(status)) => Some(status.describe()),
            Some(LastExit::SpawnFailed(error)) => Some(format!("spawn failed: {error}")),
            None => None,
        }
    }

    /// The exit code of the previous process, when it exited with one.
    pub fn exit_code(&self) -> Option<i32> {
        match &self.last_exit {
            Some(LastExit::Status(status)) => status.code(),
            _ => None,
        }
    }
}

/// `health`: whether every instance that should run is online and ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthView {
    /// Nothing is wrong.
    pub healthy: bool,
    /// One line per instance that is not as it should be.
    pub problems: Vec<String>,
}

/// The full status, or one app's / instance's (`filter`: `None`, `all`, `APP`, `APP:N`).
pub fn status(state: &State, filter: Option<&str>, now: Time) -> Result<StatusView, Refusal> {
    let slots = match filter {
        None => state.slots().collect(),
        Some(target) => resolve(state, target)?,
    };
    Ok(StatusView {
        pid: state.info.pid,
        version: state.info.version.clone(),
        uptime: now,
        config: state.info.config.clone(),
        apps: if filter.is_none() || filter == Some("all") {
            // Every app, even one with zero slots selected, so a script sees them all.
            (0..state.apps.len())
                .filter(|&app| !state.apps[app].removed)
                .map(|app| app_view(state, app, &slots, now))
                .collect()
        } else {
            apps(state, &slots, now)
        },
    })
}

/// The apps that own `slots`, each with only those instances, in config order.
pub fn apps(state: &State, slots: &[Slot], now: Time) -> Vec<AppView> {
    let mut ids: Vec<usize> = slots.iter().map(|s| s.app).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|app| app_view(state, app, slots, now))
        .collect()
}

fn app_view(state: &State, app: usize, slots: &[Slot], now: Time) -> AppView {
    AppView {
        name: state.apps[app].config.name.clone(),
        instances: slots
            .iter()
            .filter(|s| s.app == app)
            .filter_map(|&s| instance(state, s, now))
            .collect(),
    }
}

/// One instance's view.
pub fn instance(state: &State, slot: Slot, now: Time) -> Option<InstanceView> {
    let inst = state.instance(slot)?;
    let (name, uptime, next) = match inst.phase {
        Phase::Spawning { .. } => (StateName::Starting, None, None),
        Phase::Online { since, ready, .. } => (
            if ready {
                StateName::Online
            } else {
                StateName::Starting
            },
            Some(now.saturating_sub(since)),
            None,
        ),
        Phase::Stopping { since, .. } => {
            (StateName::Stopping, Some(now.saturating_sub(since)), None)
        }
        Phase::Backoff { until } => (StateName::Backoff, None, Some(until.saturating_sub(now))),
        Phase::Stopped => (StateName::Stopped, None, None),
        Phase::Exited => (StateName::Exited, None, None),
        Phase::Errored { retry_at } => (
            StateName::Errored,
            None,
            retry_at.map(|at| at.saturating_sub(now)),
        ),
    };
    let live = inst.phase.is_live();
    Some(InstanceView {
        index: slot.index,
        state: name,
        // STOPPING=1 (sd_notify): the app is on its way out and wants no more traffic.
        ready: matches!(inst.phase, Phase::Online { ready: true, .. }) && !inst.notice.stopping,
        pid: inst.phase.pid(),
        uptime,
        next_start: next,
        restarts: inst.restarts,
        last_reason: inst.last_reason,
        restarts_by_reason: inst.restarts_by.clone(),
        usage: inst.usage.filter(|_| live),
        notice: if live {
            inst.notice.clone()
        } else {
            Notice::default()
        },
        last_exit: inst.last_exit.clone(),
        outdated: live && inst.epoch < state.apps[slot.app].epoch,
        old: inst
            .old
            .iter()
            .find(|o| o.stopping.is_none())
            .or(inst.old.first())
            .map(|o| OldView {
                pid: o.pid,
                state: match o.stopping {
                    None => StateName::Online,
                    Some(_) => StateName::Stopping,
                },
            }),
    })
}

/// `all`, `APP` or `APP:N` → the slots it names.
pub fn resolve(state: &State, target: &str) -> Result<Vec<Slot>, Refusal> {
    if target == "all" {
        return Ok(state.slots().collect());
    }
    let (name, index) = match target.rsplit_once(':') {
        Some((name, n)) => match n.parse::<u32>() {
            Ok(i) => (name, Some(i)),
            Err(_) => {
                return Err(Refusal::new(
                    RefusalKind::UnknownInstance,
                    format!("`{n}` in `{target}` is not an instance index"),
                ))
            }
        },
        None => (target, None),
    };
    let Some(app) = state.app_named(name) else {
        let known: Vec<&str> = state
            .apps
            .iter()
            .filter(|a| !a.removed)
            .map(|a| a.config.name.as_str())
            .collect();
        let message = if known.is_empty() {
            format!("no app named `{name}` (no apps are configured)")
        } else {
            format!("no app named `{name}` (apps: {})", known.join(", "))
        };
        return Err(Refusal::new(RefusalKind::UnknownApp, message));
    };
    let count = state.apps[app].count;
    match index {
        None => Ok((0..count).map(|index| Slot { app, index }).collect()),
        Some(index) if index < count => Ok(vec![Slot { app, index }]),
        Some(index) => Err(Refusal::new(
            RefusalKind::UnknownInstance,
            format!("`{name}` has {count} instances (0..{count}); there is no {index}"),
        )),
    }
}

/// `health`: every instance that should run is online and ready. Instances stopped on
/// purpose (`stop`, `autostart = false`) and runs finished by policy (`exited`) are not
/// expected to run; anything starting, stopping, backing off or errored is a problem.
pub fn health(state: &State, now: Time) -> HealthView {
    let mut problems = Vec::new();
    if state.shutdown.is_some() {
        problems.push("supd is shutting down".to_string());
    }
    for slot in state.slots() {
        let Some(row) = instance(state, slot, now) else {
            continue;
        };
        // An old process still serving while its replacement starts keeps the slot up.
        let fine = matches!(row.state, StateName::Stopped | StateName::Exited)
            || (row.state == StateName::Online && row.ready)
            || row.old.is_some_and(|o| o.state == StateName::Online);
        if !fine {
            let state_name = match row.state {
                // Ready once, then said STOPPING=1.
                StateName::Online => "online but not ready (it said STOPPING=1)".to_string(),
                other => other.as_str().to_string(),
            };
            let why = row
                .last_exit_text()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            problems.push(format!("{} is {state_name}{why}", state.label(slot)));
        }
    }
    HealthView {
        healthy: problems.is_empty(),
        problems,
    }
}
