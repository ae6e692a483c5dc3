//! What `status` shows: pure functions from [`State`] to the protocol's status rows, and
//! the resolution of `APP`, `APP:N` and `all` to slots.

use super::event::ExitStatus;
use super::state::{LastExit, Phase, Slot, State, Time};
use crate::control::proto::{
    AppStatus, ErrorBody, ErrorKind, Health, InstanceStatus, StateName, Status, SupervisorInfo,
};

/// The full status, or one app's / instance's (`filter`: `None`, `all`, `APP`, `APP:N`).
pub fn status(state: &State, filter: Option<&str>, now: Time) -> Result<Status, ErrorBody> {
    let slots = match filter {
        None => state.slots().collect(),
        Some(target) => resolve(state, target)?,
    };
    Ok(Status {
        supervisor: SupervisorInfo {
            pid: state.info.pid,
            version: state.info.version.clone(),
            uptime_ms: now.as_millis() as u64,
            config: state.info.config.clone(),
        },
        apps: if filter.is_none() || filter == Some("all") {
            // Every app, even one with zero slots selected, so a script sees them all.
            (0..state.apps.len())
                .map(|app| app_status(state, app, &slots, now))
                .collect()
        } else {
            apps(state, &slots, now)
        },
    })
}

/// The apps that own `slots`, each with only those instances, in config order.
pub fn apps(state: &State, slots: &[Slot], now: Time) -> Vec<AppStatus> {
    let mut ids: Vec<usize> = slots.iter().map(|s| s.app).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|app| app_status(state, app, slots, now))
        .collect()
}

fn app_status(state: &State, app: usize, slots: &[Slot], now: Time) -> AppStatus {
    AppStatus {
        name: state.apps[app].config.name.clone(),
        instances: slots
            .iter()
            .filter(|s| s.app == app)
            .filter_map(|&s| instance_status(state, s, now))
            .collect(),
        // Only the runtime knows; it fills this in before replying.
        log_dropped: 0,
        log_lines: 0,
        next_cron: None,
    }
}

/// One status row.
pub fn instance_status(state: &State, slot: Slot, now: Time) -> Option<InstanceStatus> {
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
    let (exit_code, last_exit) = match &inst.last_exit {
        Some(LastExit::Status(status)) => (
            match status {
                ExitStatus::Code(code) => Some(*code),
                ExitStatus::Signal(_) => None,
            },
            Some(super::describe_status(*status)),
        ),
        Some(LastExit::SpawnFailed(error)) => (None, Some(format!("spawn failed: {error}"))),
        None => (None, None),
    };
    Some(InstanceStatus {
        index: slot.index,
        pid: inst.phase.pid(),
        state: name,
        // STOPPING=1 (sd_notify): the app is on its way out and wants no more traffic.
        ready: matches!(inst.phase, Phase::Online { ready: true, .. }) && !inst.notice.stopping,
        restarts: inst.restarts,
        last_reason: inst.last_reason,
        uptime_ms: uptime.map(|d| d.as_millis() as u64),
        memory_bytes: inst
            .usage
            .filter(|_| inst.phase.is_live())
            .map(|u| u.rss_bytes),
        cpu_percent: inst
            .usage
            .filter(|_| inst.phase.is_live())
            .and_then(|u| u.cpu_percent),
        exit_code,
        last_exit,
        next_start_ms: next.map(|d| d.as_millis() as u64),
        status_text: inst.notice.status.clone().filter(|_| inst.phase.is_live()),
        main_pid: inst.notice.main_pid.filter(|_| inst.phase.is_live()),
        cpu_seconds: None,
        restarts_by_reason: inst.restarts_by.clone(),
    })
}

/// `all`, `APP` or `APP:N` → the slots it names.
pub fn resolve(state: &State, target: &str) -> Result<Vec<Slot>, ErrorBody> {
    if target == "all" {
        return Ok(state.slots().collect());
    }
    let (name, index) = match target.rsplit_once(':') {
        Some((name, n)) => match n.parse::<u32>() {
            Ok(i) => (name, Some(i)),
            Err(_) => {
                return Err(ErrorBody {
                    kind: ErrorKind::UnknownInstance,
                    message: format!("`{n}` in `{target}` is not an instance index"),
                })
            }
        },
        None => (target, None),
    };
    let Some(app) = state.apps.iter().position(|a| a.config.name == name) else {
        let known: Vec<&str> = state.apps.iter().map(|a| a.config.name.as_str()).collect();
        return Err(ErrorBody {
            kind: ErrorKind::UnknownApp,
            message: if known.is_empty() {
                format!("no app named `{name}` (no apps are configured)")
            } else {
                format!("no app named `{name}` (apps: {})", known.join(", "))
            },
        });
    };
    let count = state.apps[app].count;
    match index {
        None => Ok((0..count).map(|index| Slot { app, index }).collect()),
        Some(index) if index < count => Ok(vec![Slot { app, index }]),
        Some(index) => Err(ErrorBody {
            kind: ErrorKind::UnknownInstance,
            message: format!("`{name}` has {count} instances (0..{count}); there is no {index}"),
        }),
    }
}

/// `health`: every instance that should run is online and ready. Instances stopped on
/// purpose (`stop`, `autostart = false`) and runs finished by policy (`exited`) are not
/// expected to run; anything starting, stopping, backing off or errored is a problem.
pub fn health(state: &State, now: Time) -> Health {
    let mut problems = Vec::new();
    if state.shutdown.is_some() {
        problems.push("supd is shutting down".to_string());
    }
    for slot in state.slots() {
        let Some(row) = instance_status(state, slot, now) else {
            continue;
        };
        let fine = matches!(row.state, StateName::Stopped | StateName::Exited)
            || (row.state == StateName::Online && row.ready);
        if !fine {
            let state_name = match row.state {
                // Ready once, then said STOPPING=1.
                StateName::Online => "online but not ready (it said STOPPING=1)".to_string(),
                other => serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            };
            let why = row.last_exit.map(|e| format!(" ({e})")).unwrap_or_default();
            problems.push(format!("{} is {state_name}{why}", state.label(slot)));
        }
    }
    Health {
        healthy: problems.is_empty(),
        problems,
    }
}
