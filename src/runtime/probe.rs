//! Performing probes: HTTP and TCP attempts as tasks, exec probes as processes (spawned
//! and reaped like instances, killed at their timeout), the sd_notify socket of each slot
//! that asks for one, and the log-line watch of `ready = { log = ... }`. Every outcome
//! goes back to the loop as an event; nothing here decides what it means.

use std::time::Duration;

use super::{Inner, Runtime};
use crate::config::{App, Check};
use crate::core::{Event, ExitStatus, Gen, Notice, ProbeKind, Slot};
use crate::probe::{notify, ready};
use crate::process::{self, SpawnSpec};

/// An exec probe not yet reaped.
pub(super) struct ProbeProc {
    slot: Slot,
    gen: Gen,
    kind: ProbeKind,
    timeout: Duration,
    timed_out: bool,
    exec_error: Option<String>,
}

/// The check of `kind` for `app`, and how long one attempt may take.
fn check_of(app: &App, kind: ProbeKind) -> Option<(&Check, Duration)> {
    match kind {
        // One ready attempt may take an interval, at least a second, at most the whole
        // ready timeout.
        ProbeKind::Ready => app.ready.as_ref().map(|r| {
            let attempt = r.interval.max(Duration::from_secs(1)).min(r.timeout);
            (&r.check, attempt)
        }),
        ProbeKind::Health => app.health.as_ref().map(|h| (&h.check, h.timeout)),
    }
}

impl Runtime {
    /// Start one attempt of the `kind` probe of `slot`'s generation `gen`.
    pub(super) fn probe(&mut self, slot: Slot, gen: Gen, kind: ProbeKind) {
        let app = &self.state.apps[slot.app].config;
        let Some((check, timeout)) = check_of(app, kind) else {
            return;
        };
        let tx = self.inner_tx.clone();
        let done = move |outcome: ready::Outcome| {
            let (ok, detail) = match outcome {
                Ok(d) => (true, d),
                Err(d) => (false, d),
            };
            let event = Event::ProbeDone {
                slot,
                gen,
                kind,
                ok,
                detail,
            };
            let _ = tx.send(Inner::Event(event));
        };
        match check {
            Check::Http(target) => {
                let target = target.clone();
                tokio::spawn(async move { done(ready::http(&target, timeout).await) });
            }
            Check::Tcp(address) => {
                let address = address.clone();
                tokio::spawn(async move { done(ready::tcp(&address, timeout).await) });
            }
            Check::Exec(argv) => {
                let mut spec = SpawnSpec::new(app, slot.index, self.base_env.iter().cloned());
                spec.label = format!("{} {} probe", spec.label, check.kind());
                // Tells a probe from the instance it probes (same SUP_APP and
                // SUP_INSTANCE) to a supd that must find its children without a handover.
                let which = match kind {
                    ProbeKind::Ready => "ready",
                    ProbeKind::Health => "health",
                };
                spec.env.insert("SUP_PROBE".into(), which.into());
                spec.argv = argv.clone();
                match process::spawn(&spec) {
                    Ok(child) => {
                        // Its output only needs to go somewhere; the exit code decides.
                        for fd in [child.stdout, child.stderr] {
                            tokio::spawn(drain(fd));
                        }
                        let pid = child.pid;
                        self.probe_procs.insert(
                            pid,
                            ProbeProc {
                                slot,
                                gen,
                                kind,
                                timeout,
                                timed_out: false,
                                exec_error: child.exec_error,
                            },
                        );
                        let tx = self.inner_tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(timeout).await;
                            let _ = tx.send(Inner::ProbeTimeout { pid });
                        });
                    }
                    Err(e) => done(Err(format!("cannot run: {}: {}", e.stage, e.source))),
                }
            }
            // Not polled: they arrive on their own.
            Check::Notify | Check::Log(_) => {}
        }
    }

    /// An exec probe outlived its timeout: kill its group (only while it is unreaped, so
    /// never a reused pid).
    pub(super) fn probe_timed_out(&mut self, pid: i32) {
        if let Some(p) = self.probe_procs.get_mut(&pid) {
            p.timed_out = true;
            let _ = process::kill::signal_group(pid, crate::config::Signal::KILL);
        }
    }

    /// The reaper found `pid`: if it was an exec probe, report its outcome.
    pub(super) fn probe_reaped(&mut self, pid: i32, status: ExitStatus) -> bool {
        let Some(p) = self.probe_procs.remove(&pid) else {
            return false;
        };
        // Whatever it forked must not outlive the probe.
        let _ = process::kill::signal_group(pid, crate::config::Signal::KILL);
        let (ok, detail) = match (p.exec_error, status) {
            (Some(error), _) => (false, format!("cannot run: {error}")),
            _ if p.timed_out => (
                false,
                format!("timed out after {}", crate::human::duration(p.timeout)),
            ),
            (None, ExitStatus::Code(0)) => (true, "exit code 0".to_string()),
            (None, status) => (false, status.describe()),
        };
        self.dispatch(Event::ProbeDone {
            slot: p.slot,
            gen: p.gen,
            kind: p.kind,
            ok,
            detail,
        });
        true
    }

    /// The `NOTIFY_SOCKET` of `slot`, binding its socket on first use.
    pub(super) fn notify_socket(&mut self, slot: Slot) -> Option<String> {
        if let Some((env, _)) = self.notify.get(&slot) {
            return Some(env.clone());
        }
        let app = &self.state.apps[slot.app].config;
        // Abstract names are global to the network namespace, which the containers of a
        // pod share, each with a supd that may be pid 1: a random tag per supd keeps them
        // apart. A long app name falls back to its position (names are at most 107 bytes).
        let who = if app.name.len() <= 48 {
            app.name.clone()
        } else {
            format!("app{}", slot.app)
        };
        let name = format!(
            "sup/{}-{:016x}/{who}/{}",
            self.state.info.pid, self.notify_tag, slot.index
        );
        let socket = match notify::Socket::bind(&name) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "{}: cannot bind the sd_notify socket @{name}: {e}",
                    self.state.label(slot)
                );
                return None;
            }
        };
        let env = socket.env.clone();
        self.serve_notify(slot, socket);
        Some(env)
    }

    /// Read `slot`'s notify socket in a task, reporting each datagram to the loop.
    pub(super) fn serve_notify(&mut self, slot: Slot, socket: notify::Socket) {
        let tx = self.inner_tx.clone();
        let name = socket.env.trim_start_matches('@').to_string();
        self.notify
            .insert(slot, (socket.env.clone(), socket.raw_fd()));
        tokio::spawn(async move {
            loop {
                match socket.recv().await {
                    Ok((data, pid)) => {
                        let message = notify::parse(&data);
                        if tx.send(Inner::Notify { slot, pid, message }).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("sd_notify socket @{name}: {e}");
                        break;
                    }
                }
            }
        });
    }

    /// A datagram on `slot`'s notify socket: accepted only from a process in the session of
    /// the slot's current generation (the instance's leader or its descendants).
    pub(super) fn notified(&mut self, slot: Slot, pid: Option<i32>, message: notify::Message) {
        let owner = pid
            .and_then(notify::session_of)
            .and_then(|sid| self.groups.get(&sid).copied());
        let Some((owner_slot, gen)) = owner.filter(|(s, _)| *s == slot) else {
            tracing::warn!(
                "{}: ignored an sd_notify message from pid {} (not a process of this instance)",
                self.state.label(slot),
                pid.map_or("unknown".to_string(), |p| p.to_string())
            );
            return;
        };
        let notice = Notice {
            ready: message.ready,
            stopping: message.stopping,
            status: message.status,
            main_pid: message.main_pid,
        };
        self.dispatch(Event::Notified {
            slot: owner_slot,
            gen,
            notice,
        });
    }

    /// `ready = { log = ... }`: report a passed ready probe at the first matching line of
    /// the new process.
    pub(super) fn watch_log(&self, slot: Slot, gen: Gen, pid: i32) {
        let Some(Check::Log(pattern)) = self.state.apps[slot.app].config.ready_check() else {
            return;
        };
        // Validated with the config.
        let Ok(regex) = regex_lite::Regex::new(pattern) else {
            return;
        };
        let tx = self.inner_tx.clone();
        let matched = Box::new(move |line: String| {
            let mut shown: String = line.trim_end().chars().take(80).collect();
            if shown.len() < line.trim_end().len() {
                shown.push('…');
            }
            let event = Event::ProbeDone {
                slot,
                gen,
                kind: ProbeKind::Ready,
                ok: true,
                detail: format!("line {shown:?}"),
            };
            let _ = tx.send(Inner::Event(event));
        });
        self.logs
            .watch(pid, crate::logs::LineWatch { regex, matched });
    }
}

/// Read a probe's pipe to its end, keeping nothing.
async fn drain(fd: std::os::fd::OwnedFd) {
    let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return;
    };
    let mut buf = vec![0u8; 4096];
    loop {
        if pipe.readable().await.is_err() {
            return;
        }
        match pipe.try_read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
