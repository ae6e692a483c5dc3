//! `diff`, `apply` and SIGHUP: read the config file, plan against the state (pure, in
//! the core), and before the core carries an apply out, do the I/O it needs: bind new
//! `listen` addresses, open new log outputs, replace cron schedules. Any failure there
//! changes nothing.

use std::path::PathBuf;
use std::sync::Arc;

use super::{wire, Responder, Runtime};
use crate::control::proto::{self, ErrorBody, ErrorKind};
use crate::core::apply::{self, Planned};
use crate::core::{Event, Order, ReqId};

/// What is asked of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ask {
    /// `diff`: compare only.
    Diff,
    /// `apply --dry-run`: plan only.
    DryRun,
    /// `apply`, SIGHUP: make it so.
    Apply,
}

impl Runtime {
    /// Handle a `diff`/`apply` request, or SIGHUP (`responder` is `None`: the outcome
    /// is only logged).
    pub(super) fn apply_file(
        &mut self,
        ask: Ask,
        file: Option<PathBuf>,
        responder: Option<Responder>,
    ) {
        let outcome = self.plan_file(ask, file);
        let (plan, responder) = match (outcome, responder) {
            (Err(error), responder) => {
                if ask == Ask::Apply {
                    tracing::error!("apply: {}", error.message);
                }
                if let Some(responder) = responder {
                    let _ = responder.reply.send(Err(error));
                }
                return;
            }
            (Ok(plan), Some(responder)) if ask != Ask::Apply => {
                let _ = responder.reply.send(Ok(proto::data(&wire::plan(&plan))));
                return;
            }
            (Ok(plan), responder) => (plan, responder),
        };
        let req: ReqId = self.next_req;
        self.next_req += 1;
        if let Some(responder) = responder {
            self.replies.insert(req, responder);
        }
        let order = Order::Apply {
            plan: Planned(Arc::new(plan)),
        };
        self.dispatch(Event::Request { req, order });
    }

    /// Read and plan the file; for an apply, also do the I/O that must succeed before
    /// anything changes.
    fn plan_file(&mut self, ask: Ask, file: Option<PathBuf>) -> Result<apply::Plan, ErrorBody> {
        let path = file.unwrap_or_else(|| PathBuf::from(&self.state.info.config));
        let unchanged = if ask == Ask::Apply {
            "; nothing changed"
        } else {
            ""
        };
        let config =
            crate::config::load(&path, self.profile.as_deref(), self.cpus).map_err(|errors| {
                ErrorBody {
                    kind: ErrorKind::BadConfig,
                    message: format!(
                        "{errors}\n{} in {}{unchanged}",
                        crate::human::count(errors.len(), "error"),
                        path.display()
                    ),
                }
            })?;
        let plan = apply::plan(&self.state, Arc::new(config));
        if ask != Ask::Apply {
            return Ok(plan);
        }
        if self.state.shutdown.is_some() {
            return Err(ErrorBody {
                kind: ErrorKind::ShuttingDown,
                message: "supd is shutting down".into(),
            });
        }
        if !plan.refused().is_empty() {
            return Err(ErrorBody {
                kind: ErrorKind::BadConfig,
                message: format!("{}; nothing changed", plan.refused().join("; ")),
            });
        }
        let (listeners, gone) = super::listen::rebind(&self.listeners, &self.state, &plan)
            .map_err(|message| ErrorBody {
                kind: ErrorKind::BadConfig,
                message: format!("{message}; nothing changed"),
            })?;
        // Dropping `listeners` on failure closes what was bound for this apply only.
        self.logs
            .configure(crate::logs::AppLog::all(&plan.config))
            .map_err(|e| ErrorBody {
                kind: ErrorKind::LogIo,
                message: format!("cannot open the new log files: {e}; nothing changed"),
            })?;
        self.listeners = listeners;
        self.set_access(&plan.config.supervisor.readers);
        for path in gone {
            let _ = std::fs::remove_file(path);
        }
        for app in &plan.apps {
            let cron = app
                .file_index
                .and_then(|i| plan.config.apps[i].cron.as_ref());
            match cron {
                Some(cron) => {
                    self.schedules
                        .insert(app.position, crate::schedule::Schedule::new(cron));
                }
                None => {
                    self.schedules.remove(&app.position);
                }
            }
        }
        Ok(plan)
    }
}
