//! Between the wire and the core: a control [`Command`] becomes a core [`Order`]; the
//! core's answers, refusals and views become the protocol's replies and status rows. Pure
//! mapping; the wire's names are fixed by DESIGN §6, the core's are its own.

use crate::control::proto::{
    self, ActionResult, AppStatus, Command, ErrorBody, ErrorKind, Health, InstanceStatus, Status,
    StreamName, SupervisorInfo,
};
use crate::core::view::{AppView, HealthView, InstanceView, StatusView};
use crate::core::{Action, Answer, Count, Order, Refusal, RefusalKind, Stream};

/// The order a command gives, or the error reply for a command the core cannot take as
/// it stands (a signal name that does not exist).
pub(super) fn order(command: Command) -> Result<Order, ErrorBody> {
    Ok(match command {
        Command::Status { app } => Order::Status { target: app },
        Command::Start { app } => Order::act(Action::Start, &app),
        Command::Stop { app } => Order::act(Action::Stop, &app),
        Command::Restart { app } => Order::act(Action::Restart, &app),
        Command::Reload { app } => Order::act(Action::Reload, &app),
        Command::Scale { app, instances, by } => {
            let count = match (instances, by) {
                (Some(n), None) => Count::To(n),
                (None, Some(n)) => Count::By(n),
                _ => {
                    return Err(ErrorBody {
                        kind: ErrorKind::BadRequest,
                        message: "`scale` takes exactly one of `instances` and `by`".into(),
                    })
                }
            };
            Order::Scale { app, count }
        }
        Command::Signal { signal, app, group } => {
            let signal =
                crate::config::units::parse_signal(&signal).map_err(|message| ErrorBody {
                    kind: ErrorKind::BadRequest,
                    message,
                })?;
            Order::Signal {
                signal,
                target: app,
                group,
            }
        }
        Command::Shutdown => Order::Shutdown,
        // The loop handles it before the core sees any order.
        Command::Reexec => {
            return Err(ErrorBody {
                kind: ErrorKind::BadRequest,
                message: "`reexec` is not an order of the core".into(),
            })
        }
        Command::Logs {
            app,
            lines,
            follow,
            stream,
        } => Order::Logs {
            target: app,
            lines,
            follow,
            stream: stream.map(|s| match s {
                StreamName::Out => Stream::Out,
                StreamName::Err => Stream::Err,
            }),
        },
        Command::Flush { app } => Order::Flush { target: app },
        Command::Reopen => Order::Reopen,
        Command::Health => Order::Health,
        // The runtime reads the file and plans before the core sees an order.
        Command::Diff { .. } | Command::Apply { .. } => {
            return Err(ErrorBody {
                kind: ErrorKind::BadRequest,
                message: format!("`{}` is not an order for the core", command.name()),
            })
        }
    })
}

/// A refusal as the wire's error.
pub(super) fn refusal(refusal: Refusal) -> ErrorBody {
    ErrorBody {
        kind: match refusal.kind {
            RefusalKind::BadRequest => ErrorKind::BadRequest,
            RefusalKind::UnknownApp => ErrorKind::UnknownApp,
            RefusalKind::UnknownInstance => ErrorKind::UnknownInstance,
            RefusalKind::ShuttingDown => ErrorKind::ShuttingDown,
            RefusalKind::Failed => ErrorKind::Failed,
            RefusalKind::BadConfig => ErrorKind::BadConfig,
        },
        message: refusal.message,
    }
}

/// An answer other than a status (which the runtime completes first) as reply data.
pub(super) fn answer(answer: Answer) -> proto::Data {
    match answer {
        Answer::Status(view) => proto::data(&status(view)),
        Answer::Scaled {
            apps,
            file_instances,
        } => {
            let name = apps.first().map(|a| a.name.clone()).unwrap_or_default();
            let now = apps.first().map_or(0, |a| a.instances.len());
            let note = (now != file_instances as usize).then(|| {
                format!(
                    "{name} keeps this count until the next `apply` or supd restart, which bring back the config file's {file_instances}"
                )
            });
            proto::data(&ActionResult {
                apps: apps.into_iter().map(app).collect(),
                note,
            })
        }
        Answer::Instances(apps) => proto::data(&ActionResult {
            apps: apps.into_iter().map(app).collect(),
            note: None,
        }),
        Answer::Health(view) => proto::data(&health(view)),
        Answer::Applied(plan) => proto::data(&self::plan(&plan)),
        Answer::Stopped => proto::data(&proto::Stopped { stopped: true }),
    }
}

/// The status rows of a core status view; what only the runtime measures is left empty.
pub(super) fn status(view: StatusView) -> Status {
    Status {
        supervisor: SupervisorInfo {
            pid: view.pid,
            version: view.version,
            uptime_ms: view.uptime.as_millis() as u64,
            config: view.config,
        },
        apps: view.apps.into_iter().map(app).collect(),
    }
}

fn app(view: AppView) -> AppStatus {
    AppStatus {
        name: view.name,
        instances: view.instances.into_iter().map(instance).collect(),
        log_dropped: 0,
        log_lines: 0,
        next_cron: None,
    }
}

fn instance(view: InstanceView) -> InstanceStatus {
    InstanceStatus {
        exit_code: view.exit_code(),
        last_exit: view.last_exit_text(),
        index: view.index,
        pid: view.pid,
        state: view.state,
        ready: view.ready,
        restarts: view.restarts,
        last_reason: view.last_reason,
        uptime_ms: view.uptime.map(|d| d.as_millis() as u64),
        memory_bytes: view.usage.map(|u| u.rss_bytes),
        cpu_percent: view.usage.and_then(|u| u.cpu_percent),
        next_start_ms: view.next_start.map(|d| d.as_millis() as u64),
        status_text: view.notice.status,
        main_pid: view.notice.main_pid,
        cpu_seconds: None,
        restarts_by_reason: view.restarts_by_reason,
        outdated: view.outdated,
        old: view.old.map(|o| crate::control::proto::OldStatus {
            pid: o.pid,
            state: o.state,
        }),
    }
}

/// A plan as the wire's diff document.
pub(super) fn plan(plan: &crate::core::apply::Plan) -> proto::Plan {
    use crate::config::diff::{Change, Needs};
    use crate::core::apply::Step;
    let key = |c: &Change| proto::KeyChange {
        key: c.key.clone(),
        old: c.old.clone(),
        new: c.new.clone(),
        needs: match c.needs {
            Needs::Restart => "restart",
            Needs::Scale => "scale",
            Needs::Live => "live",
        }
        .to_string(),
    };
    let mut apps = Vec::new();
    for app in &plan.apps {
        let diff = plan.changes_of(&app.name);
        let (change, outdated, roll, scale) = match app.step {
            Step::Add { .. } => ("added", 0, 0, None),
            Step::Remove { .. } => ("removed", 0, 0, None),
            Step::Update {
                scale,
                roll,
                outdated,
            } => ("changed", outdated, roll, scale.map(|(a, b)| [a, b])),
        };
        apps.push(proto::AppPlan {
            name: app.name.clone(),
            change: change.to_string(),
            keys: diff
                .map(|d| d.changes.iter().map(key).collect())
                .unwrap_or_default(),
            outdated,
            roll,
            scale,
        });
    }
    proto::Plan {
        config: plan.config.path.display().to_string(),
        changed: !plan.is_empty(),
        apps,
        supervisor: plan.diff.supervisor.iter().map(key).collect(),
        refused: plan.diff.refused.clone(),
        steps: plan.steps(),
    }
}

fn health(view: HealthView) -> Health {
    Health {
        healthy: view.healthy,
        problems: view.problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A booted core with one app, its status asked at `at_ms` and answered as data.
    fn status_data(at_ms: u64) -> serde_json::Value {
        let config = crate::config::Config {
            path: "/etc/sup/ecosystem.toml".into(),
            supervisor: crate::config::Supervisor {
                socket: None,
                log_dir: "/tmp".into(),
                shutdown_timeout: std::time::Duration::from_secs(30),
                http: None,
                readers: Vec::new(),
            },
            apps: vec![crate::config::test_app("backend")],
        };
        let mut state = crate::core::State::new(&config, 41, "0.1.0");
        let zero = std::time::Duration::ZERO;
        for effect in crate::core::handle(&mut state, crate::core::Event::Boot, zero) {
            if let crate::core::Effect::Spawn { slot, gen } = effect {
                let spawned = crate::core::Event::Spawned {
                    slot,
                    gen,
                    pid: 101,
                };
                crate::core::handle(&mut state, spawned, zero);
            }
        }
        let order = order(Command::Status { app: None }).expect("order");
        let request = crate::core::Event::Request { req: 1, order };
        let now = std::time::Duration::from_millis(at_ms);
        let effects = crate::core::handle(&mut state, request, now);
        let Some(crate::core::Effect::Reply {
            outcome: Ok(Answer::Status(view)),
            ..
        }) = effects.into_iter().next()
        else {
            panic!("no status answer");
        };
        serde_json::to_value(status(view)).expect("json")
    }

    #[test]
    fn status_has_the_contract_shape() {
        let v = status_data(3000);
        assert_eq!(v["supervisor"]["pid"], 41);
        assert_eq!(v["supervisor"]["uptime_ms"], 3000);
        assert_eq!(v["supervisor"]["config"], "/etc/sup/ecosystem.toml");
        let i = &v["apps"][0]["instances"][0];
        assert_eq!(v["apps"][0]["name"], "backend");
        assert_eq!(i["index"], 0);
        assert_eq!(i["pid"], 101);
        assert_eq!(i["state"], "online");
        assert_eq!(i["ready"], true);
        assert_eq!(i["restarts"], 0);
        assert_eq!(i["last_reason"], serde_json::Value::Null);
        assert_eq!(i["uptime_ms"], 3000);
        assert!(i.get("memory_bytes").is_some() && i.get("cpu_percent").is_some());
    }

    #[test]
    fn a_bad_signal_is_a_bad_request_before_the_core_sees_it() {
        let command = Command::Signal {
            group: false,
            signal: "SIGNOPE".into(),
            app: "web".into(),
        };
        let error = order(command).expect_err("unknown signal");
        assert_eq!(error.kind, ErrorKind::BadRequest);
        assert!(error.message.contains("SIGNOPE"), "{}", error.message);
        let command = Command::Signal {
            group: false,
            signal: "HUP".into(),
            app: "web".into(),
        };
        assert!(matches!(order(command), Ok(Order::Signal { .. })));
    }

    #[test]
    fn shutdown_answers_stopped_and_refusals_keep_their_kind() {
        assert_eq!(answer(Answer::Stopped).get(), r#"{"stopped":true}"#);
        let error = refusal(Refusal {
            kind: RefusalKind::ShuttingDown,
            message: "supd is shutting down".into(),
        });
        assert_eq!(error.kind, ErrorKind::ShuttingDown);
    }
}
