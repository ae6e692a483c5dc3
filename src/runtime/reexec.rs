//! `supctl reexec` and SIGUSR2: supd executes its binary again, in place (same pid, so
//! systemd's `MainPID` and a container's PID 1 stay valid), and the new program goes on
//! supervising the same processes. Nothing is stopped, restarted or lost:
//!
//! - the log readers pause with the bytes not read yet left in their pipes, the writer
//!   writes what was read and gives back each stream's unfinished line
//!   ([`crate::logs::Logs::pause`]);
//! - the state, the timers (absolute times on a clock that goes on) and the fds of the
//!   pipes, sockets and waiting control connections are written to a sealed memfd as a
//!   versioned document (`handover.rs`), and those fds are made to survive the exec;
//! - supd's signals are blocked across the exec, so a SIGTERM or SIGCHLD meanwhile waits
//!   for the new supd instead of killing it or getting lost;
//! - the new supd ([`Runtime::adopt`]) takes everything over, answers the waiting
//!   `supctl reexec` and the requests that were waiting, and serves.
//!
//! If the exec itself fails, everything is put back and the caller gets the error. A new
//! binary that cannot read the document takes the processes over without it (`rescue.rs`).

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::ffi::CString;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use tokio::sync::{mpsc, oneshot};

use super::handover::{self, Connection, Document, Waits};
use super::rescue::Rescue;
use super::{Proc, Responder, Runtime};
use crate::config::Config;
use crate::control::proto::{self, ErrorBody, ErrorKind};
use crate::control::server::{self, ConnState, ControlRequest, Origin};
use crate::core::{Phase, Slot, State};
use crate::logs::{AppLog, Logs, Paused, Stream, StreamMeta};
use crate::process::inherited::set_cloexec;

/// A handover document read from the supd that executed this one.
#[derive(Debug)]
pub struct Handover(Document);

/// What the adopted runtime does once its loop runs.
pub(super) struct Resumed {
    /// The waiting `supctl reexec`, answered once the loop serves.
    pub reexec: Option<oneshot::Sender<server::Outcome>>,
    /// Requests read by the old supd and not handled yet.
    pub queued: Vec<ControlRequest>,
    /// What the old supd was, for the answer.
    pub from: String,
    /// When the old supd executed this one (ms since the Unix epoch).
    pub wall_ms: i64,
    /// Processes taken over.
    pub processes: usize,
}

/// The signals blocked across the exec: delivered to the new supd once it handles them.
fn held_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    set
}

/// Unblocks what a re-exec blocked (a no-op for a supd started afresh).
pub(super) fn release_signals() {
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&held_signals()), None);
}

/// The binary supd runs from: `/proc/self/exe` read at start, so a file renamed over it
/// later (a package upgrade) is the one executed.
pub(super) fn own_exe() -> PathBuf {
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_default();
    let bytes = exe.as_os_str().as_bytes();
    match bytes.strip_suffix(b" (deleted)") {
        Some(path) => PathBuf::from(std::ffi::OsStr::from_bytes(path)),
        None => exe,
    }
}

/// Whether `exe` can be executed: a regular file with an execute bit for us.
fn check_exe(exe: &Path) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot re-execute {}: {e}", exe.display());
    let meta = std::fs::metadata(exe).map_err(|e| fail(&e))?;
    if !meta.is_file() {
        return Err(fail(&"not a regular file"));
    }
    nix::unistd::access(exe, nix::unistd::AccessFlags::X_OK).map_err(|e| fail(&e))
}

/// How long a re-exec waits for control connections to write the answers they hold
/// (the log pipes are not read meanwhile).
const SETTLE: Duration = Duration::from_millis(100);

/// The document in a sealed memfd that the exec keeps open.
fn memfd(bytes: &[u8]) -> io::Result<OwnedFd> {
    let fd = nix::sys::memfd::memfd_create(
        c"sup-handover",
        nix::sys::memfd::MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals))?;
    std::io::Seek::rewind(&mut file)?;
    Ok(file.into())
}

/// Executes `exe` with the document and `fds` carried over; returns only on failure,
/// with everything as it was.
fn exec(exe: &Path, doc: &Document, fds: &[RawFd]) -> io::Error {
    let memfd = match memfd(&handover::encode(doc)) {
        Ok(fd) => fd,
        Err(e) => return e,
    };
    let cstr = |s: &std::ffi::OsStr| CString::new(s.as_bytes()).ok();
    let Some(path) = cstr(exe.as_os_str()) else {
        return io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the binary's path");
    };
    let args: Vec<CString> = std::env::args_os().filter_map(|a| cstr(&a)).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != handover::ENV)
        .filter_map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(&kv)
        })
        .collect();
    env.extend(CString::new(format!("{}={}", handover::ENV, memfd.as_raw_fd())).ok());
    for &fd in fds.iter().chain([memfd.as_raw_fd()].iter()) {
        set_cloexec(fd, false);
    }
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&held_signals()), None);
    let error = match nix::unistd::execve(&path, &args, &env) {
        Err(e) => io::Error::from(e),
        Ok(never) => match never {},
    };
    release_signals();
    for &fd in fds {
        set_cloexec(fd, true);
    }
    error
}

/// The document the supd before this one left, if this supd was executed by a re-exec;
/// when it cannot be read, what is needed to take the processes over without it.
/// Takes it out of the environment, so no child inherits the variable.
pub fn take_handover() -> Option<Result<Handover, Rescue>> {
    let value = std::env::var_os(handover::ENV)?;
    std::env::remove_var(handover::ENV);
    // After the document's fd is closed: the rest are what the old supd kept open.
    Some(read_handover(&value).map_err(Rescue::new))
}

fn read_handover(value: &std::ffi::OsStr) -> Result<Handover, String> {
    let fd: RawFd = match value.to_str().and_then(|v| v.parse().ok()) {
        Some(fd) => fd,
        None => return Err(format!("{} is not an fd: {value:?}", handover::ENV)),
    };
    // SAFETY: the fd was named by the supd that executed this one and is owned by no one
    // else here; a bad number fails the read below rather than touching another file,
    // since nothing else is open yet this early in main.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    if let Err(e) = file.read_to_end(&mut bytes) {
        return Err(format!("cannot read the handover document: {e}"));
    }
    handover::decode(&bytes)
        .map(Handover)
        .map_err(|e| e.to_string())
}

/// Takes ownership of an fd the document names.
fn owned(fd: RawFd) -> OwnedFd {
    // The exec cleared close-on-exec to carry it: set it again, or every later exec
    // would carry it too, handed over or not (a connection nobody serves stays open).
    set_cloexec(fd, true);
    // SAFETY: every fd in the document was kept open across the exec for this supd and
    // is named once; nothing else in this process owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

impl Handover {
    /// The control socket path the old supd served.
    pub fn socket(&self) -> &Path {
        &self.0.socket
    }
}

impl Runtime {
    /// `supctl reexec` (`request`) or SIGUSR2 (none).
    pub(super) async fn reexec(&mut self, request: Option<ControlRequest>) {
        let refuse = |request: Option<ControlRequest>, kind, message: String| {
            tracing::warn!("reexec refused: {message}");
            if let Some(r) = request {
                let _ = r.reply.send(Err(ErrorBody { kind, message }));
            }
        };
        if self.state.shutdown.is_some() {
            return refuse(
                request,
                ErrorKind::ShuttingDown,
                "supd is shutting down".into(),
            );
        }
        if let Err(message) = check_exe(&self.exe) {
            return refuse(request, ErrorKind::Failed, message);
        }
        tracing::info!("re-executing {} in place", self.exe.display());
        let paused = match self.logs.pause().await {
            Ok(paused) => paused,
            Err(e) => {
                return refuse(
                    request,
                    ErrorKind::Failed,
                    format!("cannot hand the log pipes over: {e}"),
                )
            }
        };
        // Reexecs still waiting their turn go over as queued requests too: the next supd
        // carries them out.
        let mut queued: Vec<_> = self.reexecs.drain(..).collect();
        let requester = request.as_ref().and_then(|r| r.origin);
        let idle = self.settle(&mut queued, requester).await;
        let doc = self.document(&paused, &queued, requester, &idle);
        let fds = handover::fds(&doc);
        let error = exec(&self.exe, &doc, &fds);
        // Still here: the exec failed. Everything goes on as before.
        for p in paused {
            let label = format!("{}:{}", p.meta.app, p.meta.index);
            if let Err(e) = self.logs.resume(p) {
                tracing::warn!("{label}: cannot read its output again: {e}");
            }
        }
        for r in queued {
            self.take_request(r);
        }
        let message = format!("cannot re-execute {}: {error}", self.exe.display());
        refuse(request, ErrorKind::Failed, message);
    }

    /// Let the control connections that have an answer in hand write it, taking in the
    /// requests they forward meanwhile (into `queued`), for at most [`SETTLE`]. The idle
    /// connections then, to be carried over as they are; one still busy is not carried,
    /// so the exec closes it and its client sees the answer lost. A `logs -f` is not
    /// waited for: the exec ends it (its client sees the stream close).
    async fn settle(
        &mut self,
        queued: &mut Vec<ControlRequest>,
        requester: Option<Origin>,
    ) -> Vec<RawFd> {
        let deadline = Instant::now() + SETTLE;
        let mut turn = 0;
        loop {
            while let Ok(r) = self.requests.try_recv() {
                queued.extend(self.admit(r));
            }
            let known: HashSet<RawFd> = (self.replies.values().filter_map(|r| r.origin))
                .chain(queued.iter().filter_map(|r| r.origin))
                .chain(requester)
                .map(|o| o.conn)
                .collect();
            let open = server::connections();
            let busy = open.iter().any(|&(fd, state)| match state {
                ConnState::Idle | ConnState::Following => false,
                // Its answer is sent, not yet written.
                ConnState::Waiting => !known.contains(&fd),
                ConnState::Writing => true,
            });
            if !busy || Instant::now() >= deadline {
                return open
                    .into_iter()
                    .filter(|&(fd, state)| state == ConnState::Idle && !known.contains(&fd))
                    .map(|(fd, _)| fd)
                    .collect();
            }
            // A write to a socket with room needs only a turn; a full one, the reactor.
            turn += 1;
            if turn <= 16 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    /// Everything the next supd needs.
    fn document(
        &self,
        paused: &[Paused],
        queued: &[ControlRequest],
        requester: Option<Origin>,
        idle: &[RawFd],
    ) -> Document {
        let now = self.now();
        let mut timers: Vec<_> = self.timers.iter().map(|r| r.0).collect();
        timers.sort();
        let mut connections: Vec<Connection> = Vec::new();
        for (&req, responder) in &self.replies {
            if let Some(o) = responder.origin {
                connections.push(Connection {
                    fd: o.conn,
                    wire_id: o.wire_id,
                    waits: Waits::Request(req),
                });
            }
        }
        for r in queued {
            if let Some(o) = r.origin {
                connections.push(Connection {
                    fd: o.conn,
                    wire_id: o.wire_id,
                    waits: Waits::Queued(r.cmd.clone()),
                });
            }
        }
        if let Some(o) = requester {
            connections.push(Connection {
                fd: o.conn,
                wire_id: o.wire_id,
                waits: Waits::Reexec,
            });
        }
        connections.extend(idle.iter().map(|&fd| Connection {
            fd,
            wire_id: 0,
            waits: Waits::Idle,
        }));
        Document {
            format: handover::FORMAT.into(),
            version: handover::VERSION,
            from: env!("CARGO_PKG_VERSION").into(),
            exe: self.exe.clone(),
            profile: self.profile.clone(),
            socket: self.socket.clone(),
            now,
            wall_ms: crate::logs::time::now_ms(),
            state: self.state.clone(),
            procs: self
                .procs
                .iter()
                .map(|(&pid, p)| handover::Proc {
                    pid,
                    slot: p.slot,
                    gen: p.gen,
                    exec_error: p.exec_error.clone(),
                })
                .collect(),
            groups: self.groups.iter().map(|(&g, &(s, n))| (g, s, n)).collect(),
            draining: self.draining.clone(),
            timers,
            next_req: self.next_req,
            notify_tag: self.notify_tag,
            notify: self
                .notify
                .iter()
                .map(|(&slot, (env, fd))| handover::Notify {
                    slot,
                    env: env.clone(),
                    fd: *fd,
                })
                .collect(),
            listeners: self
                .listeners
                .iter()
                .map(|(&app, fds)| (app, fds.iter().map(AsRawFd::as_raw_fd).collect()))
                .collect(),
            control: self.control_fd.as_raw_fd(),
            http: self.http_fd.as_ref().map(AsRawFd::as_raw_fd),
            streams: paused
                .iter()
                .map(|p| handover::Stream {
                    app: p.meta.app.to_string(),
                    index: p.meta.index,
                    pid: p.meta.pid,
                    err: p.meta.stream == Stream::Err,
                    fd: p.pipe.as_raw_fd(),
                    partial: p.partial.clone(),
                    continued: p.continued,
                })
                .collect(),
            connections,
        }
    }

    /// The runtime a re-exec hands over, from its document: the same processes, pipes,
    /// sockets, timers and state, served by this binary.
    pub(super) fn adopt(Handover(doc): Handover) -> Result<(Runtime, Resumed), String> {
        let mut state: State = doc.state;
        state.info.version = env!("CARGO_PKG_VERSION").into();
        let config = Config {
            path: PathBuf::from(&state.info.config),
            supervisor: state.info.supervisor.clone(),
            apps: state
                .apps
                .iter()
                .filter(|a| !a.removed)
                .map(|a| a.config.clone())
                .collect(),
        };
        let pid1 = nix::unistd::getpid().as_raw() == 1;
        let logs = Logs::start(AppLog::all(&config), pid1)
            .map_err(|e| format!("cannot open the app logs: {e}"))?;
        for s in doc.streams {
            let meta = StreamMeta {
                app: s.app.as_str().into(),
                index: s.index,
                pid: s.pid,
                stream: if s.err { Stream::Err } else { Stream::Out },
            };
            let paused = Paused {
                meta,
                pipe: owned(s.fd),
                partial: s.partial,
                continued: s.continued,
            };
            if let Err(e) = logs.resume(paused) {
                tracing::warn!("{}:{}: cannot read its output: {e}", s.app, s.index);
            }
        }
        let (tx, requests) = mpsc::channel(64);
        let control = std::os::unix::net::UnixListener::from(owned(doc.control));
        control
            .set_nonblocking(true)
            .map_err(|e| format!("control socket: {e}"))?;
        let control_fd = control
            .try_clone()
            .map(OwnedFd::from)
            .map_err(|e| format!("control socket: {e}"))?;
        server::serve(control, tx.clone()).map_err(|e| format!("control socket: {e}"))?;
        let http_fd = match doc.http {
            Some(fd) => {
                let http = std::net::TcpListener::from(owned(fd));
                let dup = http.try_clone().map(OwnedFd::from).ok();
                crate::http::serve(http, tx.clone()).map_err(|e| format!("http: {e}"))?;
                dup
            }
            None => None,
        };
        let mut replies = HashMap::new();
        let mut resumed = Resumed {
            reexec: None,
            queued: Vec::new(),
            from: doc.from,
            wall_ms: doc.wall_ms,
            processes: doc.procs.len(),
        };
        for c in doc.connections {
            let (reply, rx) = oneshot::channel();
            let origin = Some(Origin {
                conn: c.fd,
                wire_id: c.wire_id,
            });
            let answer = (c.waits != Waits::Idle).then_some((c.wire_id, rx));
            if let Err(e) = server::adopt(owned(c.fd), answer, tx.clone()) {
                tracing::warn!("a control connection is lost: {e}");
                continue;
            }
            match c.waits {
                Waits::Idle => {}
                Waits::Reexec => resumed.reexec = Some(reply),
                Waits::Request(req) => {
                    replies.insert(
                        req,
                        Responder {
                            reply,
                            stream: None,
                            origin,
                        },
                    );
                }
                // Let in by the old supd before it wrote them down.
                Waits::Queued(cmd) => resumed.queued.push(ControlRequest {
                    cmd,
                    reply,
                    stream: None,
                    origin,
                    peer: None,
                }),
            }
        }
        let listeners = doc
            .listeners
            .into_iter()
            .map(|(app, fds)| (app, fds.into_iter().map(owned).collect()))
            .collect();
        let now = Instant::now();
        let start = now.checked_sub(doc.now).unwrap_or(now);
        let mut timers: BinaryHeap<_> = doc.timers.into_iter().map(std::cmp::Reverse).collect();
        for t in handover::lost_probes(&state, timers.iter().map(|r| &r.0), doc.now) {
            timers.push(std::cmp::Reverse(t));
        }
        let mut runtime = Runtime::assemble(super::Parts {
            state,
            start,
            logs,
            requests,
            listeners,
            profile: doc.profile,
            socket: doc.socket,
            control_fd,
            http_fd,
            exe: doc.exe,
            notify_tag: doc.notify_tag,
        });
        runtime.replies = replies;
        runtime.timers = timers;
        runtime.next_req = doc.next_req;
        runtime.procs = doc
            .procs
            .into_iter()
            .map(|p| {
                let proc = Proc {
                    slot: p.slot,
                    gen: p.gen,
                    exec_error: p.exec_error,
                };
                (p.pid, proc)
            })
            .collect();
        runtime.groups = doc
            .groups
            .into_iter()
            .map(|(g, s, n)| (g, (s, n)))
            .collect();
        runtime.draining = doc.draining;
        for n in doc.notify {
            match crate::probe::notify::Socket::from_fd(owned(n.fd), n.env) {
                Ok(socket) => runtime.serve_notify(n.slot, socket),
                Err(e) => tracing::warn!(
                    "{}: its notify socket is lost: {e}",
                    runtime.state.label(n.slot)
                ),
            }
        }
        // Readiness by log line: the watch lived in the old writer.
        let waiting: Vec<(Slot, u64, i32)> = runtime
            .state
            .slots()
            .filter_map(|slot| match runtime.state.instance(slot)?.phase {
                Phase::Online {
                    gen,
                    pid,
                    ready: false,
                    ..
                } => Some((slot, gen, pid)),
                _ => None,
            })
            .collect();
        for (slot, gen, pid) in waiting {
            runtime.watch_log(slot, gen, pid);
        }
        Ok((runtime, resumed))
    }

    /// Serve what the re-exec left waiting, once the loop handles signals.
    pub(super) fn resumed(&mut self, resumed: Resumed) {
        let took_ms = (crate::logs::time::now_ms() - resumed.wall_ms).max(0) as u64;
        tracing::info!(
            "supd {} took over from supd {} in {took_ms} ms ({} processes)",
            env!("CARGO_PKG_VERSION"),
            resumed.from,
            resumed.processes
        );
        if let Some(reply) = resumed.reexec {
            let data = proto::Reexeced {
                pid: self.state.info.pid,
                from: resumed.from,
                to: env!("CARGO_PKG_VERSION").into(),
                exe: self.exe.display().to_string(),
                took_ms,
                processes: resumed.processes,
            };
            let _ = reply.send(Ok(proto::data(&data)));
        }
        for r in resumed.queued {
            self.take_request(r);
        }
    }
}
