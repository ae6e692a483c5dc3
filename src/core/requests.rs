//! Control requests: what each order does to the slots it names, and the one terminal
//! answer each gets once its slots reach their goals. Part of [`super::handle`].

use super::effect::{Answer, Effect, LogQuery};
use super::order::{Action, Order, Refusal, RefusalKind};
use super::state::{AfterStop, Goal, Pending, Phase, Reason, ReqId, Slot};
use super::{view, Cx};

impl Cx<'_> {
    pub(super) fn on_request(&mut self, req: ReqId, order: Order) {
        let now = self.now;
        match &order {
            Order::Status { target } => {
                let outcome = view::status(self.state, target.as_deref(), now).map(Answer::Status);
                self.reply(req, outcome);
            }
            Order::Logs {
                target,
                lines,
                follow,
                stream,
            } => {
                let target = target.as_deref().filter(|a| *a != "all");
                let query = |app: Option<String>, index: Option<u32>| LogQuery {
                    app,
                    index,
                    stream: *stream,
                    lines: *lines,
                    follow: *follow,
                };
                match target.map(|t| (t, view::resolve(self.state, t))) {
                    None => self.fx.push(Effect::ShowLogs {
                        req,
                        query: query(None, None),
                    }),
                    Some((_, Err(error))) => self.reply(req, Err(error)),
                    Some((target, Ok(slots))) => {
                        // `app` names every instance; `app:N` exactly one.
                        let first = slots.first().copied();
                        let name = first.map(|s| self.state.apps[s.app].config.name.clone());
                        let index = first.filter(|_| target.contains(':')).map(|s| s.index);
                        self.fx.push(Effect::ShowLogs {
                            req,
                            query: query(name, index),
                        });
                    }
                }
            }
            Order::Flush { target } => {
                match view::resolve(self.state, target.as_deref().unwrap_or("all")) {
                    Ok(slots) => {
                        let mut apps: Vec<String> = slots
                            .iter()
                            .map(|s| self.state.apps[s.app].config.name.clone())
                            .collect();
                        apps.dedup();
                        self.fx.push(Effect::FlushLogs { req, apps });
                    }
                    Err(error) => self.reply(req, Err(error)),
                }
            }
            Order::Reopen => self.fx.push(Effect::ReopenLogs { req }),
            Order::Health => {
                let health = view::health(self.state, now);
                self.reply(req, Ok(Answer::Health(health)));
            }
            Order::Act {
                action: Action::Reload,
                target,
            } => self.reload(req, target, &order),
            Order::Scale { app, count } => self.scale(req, &order, app, *count),
            Order::Apply { plan } => {
                let plan = plan.0.clone();
                self.apply(req, &order, &plan);
            }
            Order::Signal {
                signal,
                target,
                group,
            } => {
                let running = |state: &super::State, slots: Vec<Slot>| {
                    let any = slots.iter().any(|&s| {
                        state
                            .instance(s)
                            .is_some_and(|i| matches!(i.phase, Phase::Online { .. }))
                    });
                    if any {
                        Ok(slots)
                    } else {
                        Err(Refusal::new(
                            RefusalKind::BadRequest,
                            format!("no instance of `{target}` is running: nothing to signal"),
                        ))
                    }
                };
                let outcome = view::resolve(self.state, target)
                    .and_then(|slots| running(self.state, slots))
                    .map(|slots| {
                        for &slot in &slots {
                            if let Phase::Online { pid, gen, .. } = self.inst(slot).phase {
                                let signal = *signal;
                                self.fx.push(if *group {
                                    Effect::Signal {
                                        slot,
                                        gen,
                                        pgid: pid,
                                        signal,
                                    }
                                } else {
                                    Effect::SignalLeader {
                                        slot,
                                        gen,
                                        pid,
                                        signal,
                                    }
                                });
                            }
                        }
                        Answer::Instances(view::apps(self.state, &slots, now))
                    });
                self.reply(req, outcome);
            }
            Order::Shutdown => {
                self.begin_shutdown();
                if let Some(shutdown) = self.state.shutdown.as_mut() {
                    shutdown.waiting.push(req);
                }
            }
            Order::Act { action, target } => {
                let Some(slots) = self.targets(req, target) else {
                    return;
                };
                let action = *action;
                let goals = slots
                    .into_iter()
                    .map(|slot| (slot, self.act(slot, action)))
                    .collect();
                self.state.pending.push(Pending {
                    req,
                    order,
                    goals,
                    failures: Vec::new(),
                });
            }
        }
    }

    /// The slots an order names, or `None` after replying with why there are none (an
    /// unknown target, or a shutdown under way: nothing may start then).
    pub(super) fn targets(&mut self, req: ReqId, target: &str) -> Option<Vec<Slot>> {
        let outcome = match view::resolve(self.state, target) {
            Ok(_) if self.state.shutdown.is_some() => Err(Refusal::shutting_down()),
            other => other,
        };
        match outcome {
            Ok(slots) => Some(slots),
            Err(error) => {
                self.reply(req, Err(error));
                None
            }
        }
    }

    /// Carry out start/stop/restart on one slot; returns the goal that completes it.
    pub(super) fn act(&mut self, slot: Slot, action: Action) -> Goal {
        let phase = self.inst(slot).phase;
        let gen = self.inst(slot).gen;
        match action {
            Action::Stop => {
                self.stop(slot, AfterStop::Stop);
                Goal::Gone(gen)
            }
            Action::Start => match phase {
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

    /// Answer every pending request whose slots reached their goals.
    pub(super) fn settle_pending(&mut self) {
        let now = self.now;
        let mut i = 0;
        while i < self.state.pending.len() {
            let pending = &self.state.pending[i];
            let done = pending.goals.iter().all(|&(slot, goal)| {
                let Some(inst) = self.state.instance(slot) else {
                    return true;
                };
                match goal {
                    Goal::Gone(gen) => {
                        (inst.gen > gen || !inst.phase.is_live())
                            && inst.old.iter().all(|o| o.gen > gen)
                    }
                    Goal::Settled => !in_transition(inst.phase) && inst.serving_old().is_none(),
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
                if !pending.failures.is_empty() {
                    let message = format!(
                        "{}; the rollout stopped, instances not replaced keep their old process",
                        pending.failures.join("; ")
                    );
                    self.reply(pending.req, Err(Refusal::new(RefusalKind::Failed, message)));
                    continue;
                }
                let answer = match &pending.order {
                    // The app as it is now, not the slots scaled away.
                    Order::Scale { app, .. } => {
                        let slots = view::resolve(self.state, app).unwrap_or_default();
                        let file_instances = self
                            .state
                            .app_named(app)
                            .map_or(0, |a| self.state.apps[a].config.instances);
                        Answer::Scaled {
                            apps: view::apps(self.state, &slots, now),
                            file_instances,
                        }
                    }
                    Order::Apply { plan } => Answer::Applied(plan.0.clone()),
                    _ => {
                        let slots: Vec<Slot> = pending.goals.iter().map(|(s, _)| *s).collect();
                        Answer::Instances(view::apps(self.state, &slots, now))
                    }
                };
                self.reply(pending.req, Ok(answer));
            } else {
                i += 1;
            }
        }
    }
}

/// Spawned but not ready yet, or stopping: a request waiting on the slot waits on.
fn in_transition(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Spawning { .. } | Phase::Online { ready: false, .. } | Phase::Stopping { .. }
    )
}
