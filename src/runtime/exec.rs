//! Performing effects: spawn, signal, timers, replies, log lines, exit.

use std::cmp::Reverse;
use std::sync::Arc;

use super::{Proc, Runtime};
use crate::control::proto::{self, ErrorBody, ErrorKind};
use crate::core::{Answer, Effect, Event, Level};
use crate::logs::{Stream, StreamMeta};
use crate::process::{self, SpawnSpec};

impl Runtime {
    pub(super) fn perform(&mut self, effect: Effect) {
        match effect {
            Effect::Spawn { slot, gen } => {
                let wants_notify = matches!(
                    self.state.apps[slot.app].config.ready_check(),
                    Some(crate::config::Check::Notify)
                );
                let notify = if wants_notify {
                    self.notify_socket(slot)
                } else {
                    None
                };
                let app = &self.state.apps[slot.app].config;
                let mut spec = SpawnSpec::new(app, slot.index, self.base_env.iter().cloned());
                if let Some(socket) = notify {
                    spec.env.insert("NOTIFY_SOCKET".into(), socket);
                }
                if let Some(fds) = self.listeners.get(&slot.app) {
                    spec.listen_fds = fds.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
                    // systemd names a unit's sockets after the unit; here, the app.
                    let names = vec![app.name.as_str(); fds.len()].join(":");
                    spec.env.insert("LISTEN_FDNAMES".into(), names);
                }
                let name: Arc<str> = Arc::from(app.name.as_str());
                let event = match process::spawn(&spec) {
                    Ok(child) => {
                        let pid = child.pid;
                        for (stream, fd) in
                            [(Stream::Out, child.stdout), (Stream::Err, child.stderr)]
                        {
                            let meta = StreamMeta {
                                app: name.clone(),
                                index: slot.index,
                                pid,
                                stream,
                            };
                            if let Err(e) = self.logs.attach(meta, fd) {
                                tracing::warn!("{}: cannot read its output: {e}", spec.label);
                            }
                        }
                        self.procs.insert(
                            pid,
                            Proc {
                                slot,
                                gen,
                                exec_error: child.exec_error,
                            },
                        );
                        self.groups.insert(pid, (slot, gen));
                        self.groups_changed = true;
                        self.watch_log(slot, gen, pid);
                        Event::Spawned { slot, gen, pid }
                    }
                    Err(e) => Event::SpawnFailed {
                        slot,
                        gen,
                        error: format!("{}: {}", e.stage, e.source),
                    },
                };
                self.feedback.push_back(event);
            }
            Effect::Signal {
                slot,
                gen,
                pgid,
                signal,
            } => {
                // Only a group we spawned and have not seen empty: never a reused pid.
                if self.groups.get(&pgid) == Some(&(slot, gen)) {
                    if let Err(e) = process::kill::signal_group(pgid, signal) {
                        tracing::warn!(
                            "{}: cannot signal process group {pgid}: {e}",
                            self.state.label(slot)
                        );
                    }
                }
            }
            Effect::SignalLeader {
                slot,
                gen,
                pid,
                signal,
            } => {
                // Only a leader not reaped yet: never a reused pid.
                let ours = self
                    .procs
                    .get(&pid)
                    .is_some_and(|p| p.slot == slot && p.gen == gen);
                if ours {
                    if let Err(e) = process::kill::signal_process(pid, signal) {
                        tracing::warn!("{}: cannot signal pid {pid}: {e}", self.state.label(slot));
                    }
                }
            }
            Effect::Probe { slot, gen, kind } => self.probe(slot, gen, kind),
            Effect::SetTimer { at, timer } => self.timers.push(Reverse((at, timer))),
            Effect::Reply { req, outcome } => match outcome {
                Ok(Answer::Status(view)) => self.reply_status(req, super::wire::status(view)),
                outcome => {
                    let outcome = outcome
                        .map(super::wire::answer)
                        .map_err(super::wire::refusal);
                    self.reply(req, outcome);
                }
            },
            Effect::ArmCron { app, epoch } => {
                let wall = std::time::SystemTime::now();
                let next = self.schedules.get(&app).and_then(|s| s.next_after(wall));
                match next.and_then(|next| next.duration_since(wall).ok()) {
                    Some(wait) => {
                        let at = self.now() + wait;
                        self.timers
                            .push(Reverse((at, crate::core::Timer::Cron { app, epoch })));
                    }
                    None => tracing::warn!(
                        "{}: cron_restart has no future time; it will not fire",
                        self.state.apps[app].config.name
                    ),
                }
            }
            Effect::Sample { app, targets } => {
                self.sampler.send(super::sampler::Job::App { app, targets });
            }
            Effect::ShowLogs { req, query } => {
                if let Some(responder) = self.replies.remove(&req) {
                    let apps: Vec<String> = self
                        .state
                        .apps
                        .iter()
                        .map(|a| a.config.name.clone())
                        .collect();
                    super::logview::show(&self.logs, &apps, query, responder);
                }
            }
            Effect::FlushLogs { req, apps } => {
                let Some(responder) = self.replies.remove(&req) else {
                    return;
                };
                // The writer thread truncates between two writes; the loop does not wait.
                let flushes: Vec<_> = apps.iter().map(|app| self.logs.flush(Some(app))).collect();
                tokio::spawn(async move {
                    let mut failed = Vec::new();
                    for (app, flush) in apps.iter().zip(flushes) {
                        if let Err(e) = flush.await {
                            failed.push(format!("{app}: {e}"));
                        }
                    }
                    let outcome = if failed.is_empty() {
                        tracing::info!("flushed the logs of {}", apps.join(", "));
                        Ok(proto::data(&proto::Flushed { flushed: apps }))
                    } else {
                        Err(ErrorBody {
                            kind: ErrorKind::LogIo,
                            message: format!("could not flush {}", failed.join("; ")),
                        })
                    };
                    let _ = responder.reply.send(outcome);
                });
            }
            Effect::ReopenLogs { req } => {
                self.logs.reopen();
                self.reply(req, Ok(proto::data(&proto::Reopened { reopened: true })));
            }
            Effect::Log { level, message } => match level {
                Level::Info => tracing::info!("{message}"),
                Level::Warn => tracing::warn!("{message}"),
                Level::Error => tracing::error!("{message}"),
            },
            Effect::Exit { code } => self.exit = Some(code),
        }
    }
}

impl Runtime {
    /// Fill in what only the runtime knows (log line counts, the next cron time), and
    /// memory and CPU for the running instances no memory limit samples (measured now, off
    /// the loop), then reply.
    fn reply_status(&mut self, req: crate::core::ReqId, mut status: proto::Status) {
        let wall = std::time::SystemTime::now();
        for app in &mut status.apps {
            app.log_dropped = self.logs.dropped(&app.name);
            app.log_lines = self.logs.lines(&app.name);
            let position = self
                .state
                .apps
                .iter()
                .position(|a| a.config.name == app.name);
            app.next_cron = position
                .and_then(|p| self.schedules.get(&p))
                .and_then(|s| s.next_after(wall))
                .map(rfc3339);
        }
        let pids: Vec<i32> = status
            .apps
            .iter()
            .flat_map(|a| &a.instances)
            .filter_map(|i| i.pid)
            .collect();
        let Some(responder) = self.replies.remove(&req) else {
            return;
        };
        if pids.is_empty() {
            let _ = responder.reply.send(Ok(proto::data(&status)));
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.sampler
            .send(super::sampler::Job::Trees { pids, reply: tx });
        tokio::spawn(async move {
            if let Ok(usage) = rx.await {
                let ticks_per_s = crate::monitor::clock_ticks() as f64;
                // One usage per pid, in the order of `pids`: the rows that have one.
                let rows = status
                    .apps
                    .iter_mut()
                    .flat_map(|a| a.instances.iter_mut())
                    .filter(|row| row.pid.is_some());
                for (row, u) in rows.zip(&usage) {
                    row.memory_bytes = Some(u.rss_bytes);
                    row.cpu_seconds = Some(u.cpu_ticks as f64 / ticks_per_s);
                    if row.cpu_percent.is_none() {
                        // No earlier sample to compare with: the average over its life.
                        let secs = row.uptime_ms.unwrap_or(0) as f64 / 1000.0;
                        if secs > 0.0 {
                            let pct = u.cpu_ticks as f64 / ticks_per_s / secs * 100.0;
                            row.cpu_percent = Some((pct * 10.0).round() / 10.0);
                        }
                    }
                }
            }
            let _ = responder.reply.send(Ok(proto::data(&status)));
        });
    }

    fn reply(
        &mut self,
        req: crate::core::ReqId,
        outcome: Result<crate::control::proto::Data, ErrorBody>,
    ) {
        if let Some(responder) = self.replies.remove(&req) {
            // The client may have gone away; nothing to do then.
            let _ = responder.reply.send(outcome);
        }
    }
}

/// A wall-clock time as `2026-11-23T03:00:00.000Z`.
fn rfc3339(time: std::time::SystemTime) -> String {
    let ms = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut buf = [0u8; crate::logs::time::TIMESTAMP_LEN];
    crate::logs::time::format_ms(ms, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// At exit: processes that escaped their instance's group (a daemon that called setsid)
/// were re-parented to supd when their parent died. Kill them rather than leave them
/// running unsupervised once supd is gone, then reap them: woken by SIGCHLD, for at most
/// a second (one stuck in uninterruptible sleep is left to init).
pub(super) async fn sweep_adopted_orphans(chld: &mut tokio::signal::unix::Signal) {
    let me = std::process::id() as i32;
    let mut children = children_of(me);
    if children.is_empty() {
        return;
    }
    tracing::warn!(
        "killing {} leftover processes that escaped their app's process group: {:?}",
        children.len(),
        children
    );
    for pid in &children {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let reaped: Vec<i32> = process::reaper::reap_all()
            .into_iter()
            .map(|(pid, _)| pid)
            .collect();
        children.retain(|pid| !reaped.contains(pid));
        if children.is_empty() {
            return;
        }
        tokio::select! {
            _ = chld.recv() => {}
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// Pids whose parent is `ppid`, from /proc.
fn children_of(ppid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let name = entry.ok()?.file_name();
        let pid: i32 = name.to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may contain spaces and parentheses: fields resume after the
        // last ')'. Field 2 after it is the parent pid; a zombie (state Z) is not a child
        // we need to kill, only to reap.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?;
        let parent: i32 = fields.next()?.parse().ok()?;
        (parent == ppid && state != "Z").then_some(pid)
    })
    .collect()
}
