//! The imperative shell: one task owns the [`State`], waits for the next event (a signal,
//! a control request, a timer), runs [`core::handle`] and performs the effects
//! (`exec.rs`). It decides nothing itself.
//!
//! supd runs tokio's current-thread runtime on its main thread. Forks happen on that
//! thread too: it lives as long as supd, which is what `PR_SET_PDEATHSIG` needs (the
//! signal fires when the forking *thread* exits), and because the spawn and the reaper run
//! on the same thread, an exit can never be reaped before its spawn is registered.

mod apply;
mod exec;
mod handover;
mod listen;
mod logview;
mod probe;
mod reexec;
mod rescue;
mod sampler;
mod wire;

pub use reexec::{take_handover, Handover};
pub use rescue::Rescue;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::control::proto::{self, Command, ErrorBody};
use crate::control::server::{self, ControlRequest};
use crate::core::{self, Event, ExitStatus, Gen, ReqId, Slot, State, Time, Timer};
use crate::logs::{AppLog, Logs};
use crate::process::reaper::Exit;

/// How long supd waits, after the last instance is gone, for log pipes held by stray
/// descendants to reach EOF before it exits anyway.
const LOG_DRAIN: Duration = Duration::from_secs(2);

/// Run supd until it shuts down; returns the process exit code. With `rescue`, supd was
/// executed by a re-exec whose document it could not read: it takes over the processes
/// and sockets it finds before it starts the rest.
pub fn run(
    config: Config,
    profile: Option<String>,
    listener: UnixListener,
    socket: PathBuf,
    mut rescue: Option<Rescue>,
) -> i32 {
    let path = socket.clone();
    on_event_loop(&socket, move || {
        let inherited = rescue.as_mut().map(Rescue::inherited);
        let runtime = Runtime::new(config, profile, listener, path, inherited)?;
        let start = match rescue {
            Some(rescue) => Start::Rescued(rescue),
            None => Start::Boot,
        };
        Ok((runtime, start))
    })
}

/// Go on supervising what the supd before a re-exec handed over; returns the process
/// exit code.
pub fn resume(handover: Handover) -> i32 {
    let socket = handover.socket().to_path_buf();
    on_event_loop(&socket, move || {
        Runtime::adopt(handover)
            .map(|(runtime, resumed)| (runtime, Start::Resumed(resumed)))
            .map_err(|e| format!("cannot take over from the supd before the re-exec: {e}"))
    })
}

/// How the loop begins.
enum Start {
    /// Start every autostart app.
    Boot,
    /// Take over what the supd before a re-exec left, without its document; then boot.
    Rescued(Rescue),
    /// Serve what the supd before a re-exec handed over.
    Resumed(reexec::Resumed),
}

/// Build the runtime with `start` inside a current-thread event loop (it registers fds
/// with it), run it, and remove the control socket once it is done.
fn on_event_loop(socket: &Path, start: impl FnOnce() -> Result<(Runtime, Start), String>) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the event loop: {e}");
            return 1;
        }
    };
    let code = rt.block_on(async move {
        match start() {
            Ok((runtime, how)) => runtime.run(how).await,
            Err(e) => {
                tracing::error!("{e}");
                1
            }
        }
    });
    let _ = std::fs::remove_file(socket);
    code
}

/// Added to the latest readiness deadline in `EXTEND_TIMEOUT_USEC`: the time to handle
/// the deadline and report.
const STARTUP_MARGIN: Duration = Duration::from_secs(5);

/// How long `docker stop` and `podman stop` wait after SIGTERM by default.
const CONTAINER_STOP: Duration = Duration::from_secs(10);

/// What the service manager was told of supd's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Nothing yet.
    Nothing,
    /// `STATUS=starting: SETTLED of APPS apps ready`.
    Shown(usize, usize),
    /// READY=1 (or there is no manager to tell).
    Told,
}

/// The variables a service manager sets for supd itself, which its apps must not take
/// for theirs (`NOTIFY_SOCKET` is set per app that asks for one).
const MANAGER_VARS: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// How often to tell systemd `WATCHDOG=1`: half its `WatchdogSec=`, if it set one for
/// this process.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let for_us =
        std::env::var("WATCHDOG_PID").map_or(true, |pid| pid.parse() == Ok(std::process::id()));
    (usec > 0 && for_us).then(|| Duration::from_micros(usec / 2))
}

async fn tick(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Where the replies to one request go.
struct Responder {
    reply: oneshot::Sender<Result<proto::Data, ErrorBody>>,
    /// Non-terminal replies, for streaming commands.
    stream: Option<mpsc::Sender<proto::Data>>,
    /// The control connection waiting, which a re-exec carries over.
    origin: Option<server::Origin>,
}

/// What the loop's helpers (probe tasks, notify sockets, log watches) report.
enum Inner {
    /// An event for the core, ready as is.
    Event(Event),
    /// A datagram on a slot's sd_notify socket, from `pid`.
    Notify {
        slot: Slot,
        pid: Option<i32>,
        message: crate::probe::notify::Message,
    },
    /// The exec probe `pid` reached its timeout.
    ProbeTimeout { pid: i32 },
}

/// A leader not yet reaped.
struct Proc {
    slot: Slot,
    gen: Gen,
    /// Why it never reached its program, if it did not (see `process::spawn`).
    exec_error: Option<String>,
}

struct Runtime {
    state: State,
    start: Instant,
    /// supd's environment, the base of every child's.
    base_env: Vec<(String, String)>,
    /// Leaders by pid.
    procs: HashMap<i32, Proc>,
    /// Process groups that may still have members, by pgid: only these may be signalled.
    groups: HashMap<i32, (Slot, Gen)>,
    /// Groups whose leader was reaped while other members lived.
    draining: Vec<i32>,
    timers: BinaryHeap<Reverse<(Time, Timer)>>,
    replies: HashMap<ReqId, Responder>,
    next_req: ReqId,
    requests: mpsc::Receiver<ControlRequest>,
    /// `reexec` requests that came in while another re-exec (or its hand-over) was under
    /// way: each is carried out in turn, from the loop.
    reexecs: VecDeque<ControlRequest>,
    logs: Logs,
    /// Events produced by performing effects (spawn results), handled before anything else.
    feedback: VecDeque<Event>,
    /// Measures process trees off the loop.
    sampler: sampler::Sampler,
    /// Its answers to memory-limit samples.
    sampled: mpsc::UnboundedReceiver<Event>,
    /// The cron schedule of each app that has one, by app position.
    schedules: HashMap<usize, crate::schedule::Schedule>,
    /// Reports of probe tasks, notify sockets and log watches.
    inner: mpsc::UnboundedReceiver<Inner>,
    inner_tx: mpsc::UnboundedSender<Inner>,
    /// Exec probes not yet reaped, by pid.
    probe_procs: HashMap<i32, probe::ProbeProc>,
    /// The `NOTIFY_SOCKET` value and fd of each slot that has a socket.
    notify: HashMap<Slot, (String, std::os::fd::RawFd)>,
    /// Random, per supd: part of every notify socket's name.
    notify_tag: u64,
    /// supd's own `NOTIFY_SOCKET` (systemd `Type=notify`), told READY=1 and STOPPING=1.
    manager: Option<String>,
    /// The `listen` sockets of each app that has some, by app position.
    listeners: HashMap<usize, Vec<OwnedFd>>,
    /// The profile supd was started with: `apply` reads the file with it again.
    profile: Option<String>,
    /// What `instances = "max"` resolves to.
    cpus: u32,
    exit: Option<i32>,
    /// The binary supd runs from, executed again by a re-exec.
    exe: PathBuf,
    /// The control socket's path.
    socket: PathBuf,
    /// A duplicate of the control socket's listening fd, for a re-exec to carry over.
    control_fd: OwnedFd,
    /// The same for the HTTP endpoint's.
    http_fd: Option<OwnedFd>,
    /// `groups` changed since the state file was written.
    groups_changed: bool,
    /// The start time of each group's leader, as written to the state file.
    group_starts: HashMap<i32, u64>,
    /// What the service manager was told of the start.
    startup: Progress,
    /// Who may use the control socket (see `set_access`).
    access: crate::control::access::Policy,
}

/// What a new or an adopted runtime is built from.
struct Parts {
    state: State,
    start: Instant,
    logs: Logs,
    requests: mpsc::Receiver<ControlRequest>,
    listeners: HashMap<usize, Vec<OwnedFd>>,
    profile: Option<String>,
    socket: PathBuf,
    control_fd: OwnedFd,
    http_fd: Option<OwnedFd>,
    exe: PathBuf,
    notify_tag: u64,
}

impl Runtime {
    fn new(
        config: Config,
        profile: Option<String>,
        listener: UnixListener,
        socket: PathBuf,
        mut inherited: Option<&mut crate::process::inherited::Inherited>,
    ) -> Result<Runtime, String> {
        let pid1 = nix::unistd::getpid().as_raw() == 1;
        let longest = core::shutdown::longest_stop(&config);
        if pid1 && longest > CONTAINER_STOP {
            tracing::warn!(
                "as PID 1, a shutdown may take {} (the shorter of shutdown_timeout and the \
                 longest kill_timeout), more than the {}s `docker stop`/`podman stop` wait \
                 before they SIGKILL everything: lower them, or stop with a longer timeout \
                 (-t, stop_grace_period, terminationGracePeriodSeconds)",
                crate::human::duration(longest),
                CONTAINER_STOP.as_secs()
            );
        }
        let logs = Logs::start(AppLog::all(&config), pid1).map_err(|e| {
            format!(
                "cannot open the app logs under {}: {e}",
                config.supervisor.log_dir.display()
            )
        })?;
        let listeners = listen::bind_all(&config, inherited.as_deref_mut())?;
        let (tx, requests) = mpsc::channel(64);
        let mut http_fd = None;
        if let Some(addr) = config.supervisor.http {
            let http = match inherited.and_then(|i| i.take_tcp(addr)) {
                Some(fd) => std::net::TcpListener::from(fd),
                None => std::net::TcpListener::bind(addr)
                    .map_err(|e| format!("cannot listen on http {addr}: {e}"))?,
            };
            http_fd = http.try_clone().map(OwnedFd::from).ok();
            crate::http::serve(http, tx.clone())
                .map_err(|e| format!("cannot serve http {addr}: {e}"))?;
            tracing::info!("serving /metrics, /healthz and /readyz on http://{addr}");
        }
        let control_fd = listener
            .try_clone()
            .map(OwnedFd::from)
            .map_err(|e| format!("cannot serve {}: {e}", socket.display()))?;
        server::serve(listener, tx)
            .map_err(|e| format!("cannot serve {}: {e}", socket.display()))?;
        let pid = std::process::id() as i32;
        tracing::info!(
            "supd {} (pid {pid}) managing {} from {}, control socket {}",
            env!("CARGO_PKG_VERSION"),
            crate::human::count(config.apps.len(), "app"),
            config.path.display(),
            socket.display()
        );
        Ok(Runtime::assemble(Parts {
            state: State::new(&config, pid, env!("CARGO_PKG_VERSION")),
            start: Instant::now(),
            logs,
            requests,
            listeners,
            profile,
            socket,
            control_fd,
            http_fd,
            exe: reexec::own_exe(),
            notify_tag: {
                use std::hash::{BuildHasher, Hasher};
                // std seeds RandomState from the OS's randomness.
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish()
            },
        }))
    }

    fn assemble(parts: Parts) -> Runtime {
        let Parts {
            state,
            start,
            logs,
            requests,
            listeners,
            profile,
            socket,
            control_fd,
            http_fd,
            exe,
            notify_tag,
        } = parts;
        let (sampled_tx, sampled) = mpsc::unbounded_channel();
        let mut schedules = HashMap::new();
        for (i, app) in state.apps.iter().enumerate() {
            if let Some(cron) = app.config.cron.as_ref().filter(|_| !app.removed) {
                schedules.insert(i, crate::schedule::Schedule::new(cron));
            }
        }
        let (inner_tx, inner) = mpsc::unbounded_channel();
        Runtime {
            state,
            start,
            base_env: std::env::vars_os()
                .filter(|(k, _)| !MANAGER_VARS.iter().any(|m| k == m))
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
            procs: HashMap::new(),
            groups: HashMap::new(),
            draining: Vec::new(),
            timers: BinaryHeap::new(),
            replies: HashMap::new(),
            next_req: 1,
            requests,
            reexecs: VecDeque::new(),
            logs,
            feedback: VecDeque::new(),
            sampler: sampler::Sampler::new(sampled_tx),
            sampled,
            schedules,
            inner,
            inner_tx,
            probe_procs: HashMap::new(),
            notify: HashMap::new(),
            notify_tag,
            manager: std::env::var("NOTIFY_SOCKET")
                .ok()
                .filter(|s| !s.is_empty()),
            listeners,
            profile,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            exit: None,
            exe,
            socket,
            control_fd,
            http_fd,
            groups_changed: true,
            group_starts: HashMap::new(),
            startup: Progress::Nothing,
            access: crate::control::access::Policy::default(),
        }
    }

    fn now(&self) -> Time {
        self.start.elapsed()
    }

    /// The loop, begun as `start` says.
    async fn run(mut self, start: Start) -> i32 {
        let signals = (
            signal(SignalKind::child()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
            signal(SignalKind::user_defined1()),
            signal(SignalKind::user_defined2()),
        );
        let (mut chld, mut term, mut int, mut hup, mut usr1, mut usr2) = match signals {
            (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e), Ok(f)) => (a, b, c, d, e, f),
            _ => {
                tracing::error!("cannot install signal handlers");
                return 1;
            }
        };
        // Signals that came during a re-exec waited, blocked: they are handled now.
        reexec::release_signals();
        let mut interrupts = 0;
        match start {
            Start::Boot => self.dispatch(Event::Boot),
            Start::Rescued(rescue) => self.take_over(rescue),
            Start::Resumed(resumed) => {
                // Exits during the exec: their SIGCHLD may have been merged with none.
                self.reap();
                self.resumed(resumed);
                // The service manager saw this supd ready before the exec.
                self.startup = Progress::Told;
                self.tell_ready();
            }
        }
        // glibc's allocator keeps freed start-up memory; musl's returns it by itself.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free heap pages to the OS.
        unsafe {
            libc::malloc_trim(0)
        };
        self.report_startup();
        // Named from the start: a supd killed before anything else happens leaves the
        // groups of its first instances to clear.
        self.write_state_file();
        let readers = self.state.info.supervisor.readers.clone();
        self.set_access(&readers);
        let mut watchdog = watchdog_interval().map(tokio::time::interval);
        while self.exit.is_none() {
            if let Some(request) = self.reexecs.pop_front() {
                self.reexec(Some(request)).await;
                continue;
            }
            let next = self.timers.peek().map(|Reverse((at, _))| *at);
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until((self.start + at).into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = chld.recv() => self.reap(),
                _ = term.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    self.dispatch(Event::ShutdownSignal { force: false });
                }
                _ = int.recv() => {
                    interrupts += 1;
                    let force = interrupts > 1;
                    tracing::info!("SIGINT: {}", if force { "killing everything now" } else { "shutting down (SIGINT again to kill at once)" });
                    self.dispatch(Event::ShutdownSignal { force });
                }
                _ = usr1.recv() => {
                    tracing::info!("SIGUSR1: reopening the log files");
                    self.logs.reopen();
                }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: applying {}", self.state.info.config);
                    self.apply_file(apply::Ask::Apply, None, None);
                }
                _ = usr2.recv() => {
                    tracing::info!("SIGUSR2: re-executing");
                    self.reexec(None).await;
                }
                Some(event) = self.sampled.recv() => self.dispatch(event),
                Some(inner) = self.inner.recv() => match inner {
                    Inner::Event(event) => self.dispatch(event),
                    Inner::Notify { slot, pid, message } => self.notified(slot, pid, message),
                    Inner::ProbeTimeout { pid } => self.probe_timed_out(pid),
                },
                Some(request) = self.requests.recv() => {
                    if let Some(request) = self.admit(request) {
                        self.take_request(request);
                    }
                }
                _ = sleep => self.fire_timers(),
                // From the loop itself: a loop that hangs stops the pings.
                _ = tick(&mut watchdog) => self.tell_manager("WATCHDOG=1"),
            }
            if self.groups_changed {
                self.write_state_file();
            }
            if self.startup != Progress::Told {
                self.report_startup();
            }
        }
        let code = self.exit.unwrap_or(1);
        // Let connection tasks write the last replies (shutdown's) before the loop stops.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
        exec::sweep_adopted_orphans(&mut chld).await;
        listen::remove_unix_sockets(&self.state);
        self.logs.finish(LOG_DRAIN).await;
        let _ = std::fs::remove_file(crate::process::leftovers::state_file(&self.socket));
        tracing::info!("supd exits with code {code}");
        code
    }

    /// The request, if its client may ask it; else it is refused here.
    fn admit(&self, request: ControlRequest) -> Option<ControlRequest> {
        let Some(peer) = &request.peer else {
            return Some(request);
        };
        match self.access.check(peer, &request.cmd) {
            Ok(()) => Some(request),
            Err(message) => {
                tracing::warn!("control socket: {message} (pid {})", peer.pid);
                let kind = proto::ErrorKind::PermissionDenied;
                let _ = request.reply.send(Err(ErrorBody { kind, message }));
                None
            }
        }
    }

    /// A control request: to the core as an order, (apply, diff) to the config reader
    /// first, or (reexec) to the loop's turn.
    fn take_request(&mut self, request: ControlRequest) {
        if request.cmd == Command::Reexec {
            return self.reexecs.push_back(request);
        }
        let req = self.next_req;
        self.next_req += 1;
        let responder = Responder {
            reply: request.reply,
            stream: request.stream,
            origin: request.origin,
        };
        let ask = match &request.cmd {
            Command::Diff { config } => Some((apply::Ask::Diff, config.clone().map(PathBuf::from))),
            Command::Apply { dry_run: true } => Some((apply::Ask::DryRun, None)),
            Command::Apply { dry_run: false } => Some((apply::Ask::Apply, None)),
            _ => None,
        };
        if let Some((ask, file)) = ask {
            self.apply_file(ask, file, Some(responder));
            return;
        }
        match wire::order(request.cmd) {
            Ok(order) => {
                self.replies.insert(req, responder);
                self.dispatch(Event::Request { req, order });
            }
            Err(error) => {
                let _ = responder.reply.send(Err(error));
            }
        }
    }

    /// Name every process group that may have members in the state file, so a supd that
    /// starts after this one was killed can stop what is left of them.
    fn write_state_file(&mut self) {
        use crate::process::leftovers;
        self.groups_changed = false;
        self.group_starts
            .retain(|pgid, _| self.groups.contains_key(pgid));
        let groups = self
            .groups
            .iter()
            .map(|(&pgid, &(slot, _))| {
                let app = &self.state.apps[slot.app].config;
                leftovers::Group {
                    pgid,
                    start: *self
                        .group_starts
                        .entry(pgid)
                        .or_insert_with(|| leftovers::start_time(pgid).unwrap_or(0)),
                    label: self.state.label(slot),
                    signal: app.stop_signal.0,
                    kill_timeout_ms: app.kill_timeout.as_millis() as u64,
                }
            })
            .collect();
        let record = leftovers::Record {
            boot_id: leftovers::boot_id(),
            supd_pid: self.state.info.pid,
            groups,
        };
        let path = leftovers::state_file(&self.socket);
        if let Err(e) = leftovers::write(&path, &record) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    /// Tell the service manager how far the start has come (`STATUS=`, and
    /// `EXTEND_TIMEOUT_USEC=` while readiness checks may still pass), and READY=1 once
    /// every autostart instance is ready or has failed its first start.
    fn report_startup(&mut self) {
        if self.manager.is_none() {
            self.startup = Progress::Told;
            return;
        }
        let progress = core::startup::startup(&self.state);
        if progress.done() || self.state.shutdown.is_some() {
            self.startup = Progress::Told;
            self.tell_ready();
            return;
        }
        let shown = Progress::Shown(progress.settled, progress.apps);
        if self.startup == shown {
            return;
        }
        self.startup = shown;
        let mut text = format!(
            "STATUS=starting: {} of {} apps ready",
            progress.settled, progress.apps
        );
        if let Some(deadline) = progress.deadline {
            let left = deadline.saturating_sub(self.now()) + STARTUP_MARGIN;
            text.push_str(&format!("\nEXTEND_TIMEOUT_USEC={}", left.as_micros()));
        }
        self.tell_manager(&text);
    }

    fn tell_ready(&self) {
        self.tell_manager(&format!(
            "READY=1\nMAINPID={}\nSTATUS=managing {}",
            self.state.info.pid,
            crate::human::count(self.state.apps.len(), "app")
        ));
    }

    /// Who may use the control socket, for `readers` (at start and on each apply, so
    /// no request costs a group lookup), and the socket's mode: 0660 (root:sup for a
    /// system supd), or 0666 while `readers` names groups, whose members must reach it to
    /// be let in; who may do what is checked per client either way ([`Runtime::admit`]).
    pub(super) fn set_access(&mut self, readers: &[String]) {
        use std::os::unix::fs::PermissionsExt;
        self.access = crate::control::access::Policy::resolve(readers);
        let mode = if readers.is_empty() { 0o660 } else { 0o666 };
        let perms = std::fs::Permissions::from_mode(mode);
        if let Err(e) = std::fs::set_permissions(&self.socket, perms) {
            tracing::warn!("cannot set the mode of {}: {e}", self.socket.display());
        }
    }

    /// Tell supd's own service manager, if it runs under one that listens.
    fn tell_manager(&self, text: &str) {
        if let Some(socket) = &self.manager {
            if let Err(e) = crate::probe::notify::tell_manager(socket, text) {
                tracing::warn!("cannot notify the service manager at {socket}: {e}");
            }
        }
    }

    /// Handle one event, then every event its effects produce, in order.
    fn dispatch(&mut self, event: Event) {
        let stopping = self.state.shutdown.is_some();
        self.feedback.push_back(event);
        while let Some(event) = self.feedback.pop_front() {
            let now = self.now();
            let effects = core::handle(&mut self.state, event, now);
            for effect in effects {
                self.perform(effect);
            }
        }
        if !stopping && self.state.shutdown.is_some() {
            self.tell_manager("STOPPING=1\nSTATUS=stopping every app");
        }
        self.check_draining();
    }

    fn fire_timers(&mut self) {
        let now = self.now();
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.dispatch(Event::Timer(timer));
        }
    }

    /// SIGCHLD: reap everything, then report leaders (after any orphans of their group
    /// were reaped in the same pass, so the group check sees them gone).
    fn reap(&mut self) {
        let mut leaders = Vec::new();
        for (pid, exit) in crate::process::reaper::reap_all() {
            let status = match exit {
                Exit::Code(code) => ExitStatus::Code(code),
                Exit::Signal(signal) => ExitStatus::Signal(signal),
            };
            match self.procs.remove(&pid) {
                Some(proc) => leaders.push((pid, proc, status)),
                None if self.probe_reaped(pid, status) => {}
                None => {
                    tracing::debug!("reaped adopted orphan pid {pid} ({status:?})");
                }
            }
        }
        for (pid, proc, status) in leaders {
            if let Some(error) = proc.exec_error {
                self.groups.remove(&pid);
                self.groups_changed = true;
                self.dispatch(Event::SpawnFailed {
                    slot: proc.slot,
                    gen: proc.gen,
                    error,
                });
                continue;
            }
            let group_alive = crate::process::kill::group_alive(pid);
            if group_alive {
                self.draining.push(pid);
            } else {
                self.groups.remove(&pid);
                self.groups_changed = true;
            }
            self.dispatch(Event::Exited {
                slot: proc.slot,
                gen: proc.gen,
                status,
                group_alive,
            });
        }
        self.check_draining();
    }

    /// Report every draining group that has no member left.
    fn check_draining(&mut self) {
        if self.draining.is_empty() {
            return;
        }
        let (gone, alive): (Vec<i32>, Vec<i32>) = std::mem::take(&mut self.draining)
            .into_iter()
            .partition(|&pgid| !crate::process::kill::group_alive(pgid));
        self.draining = alive;
        for pgid in gone {
            if let Some((slot, gen)) = self.groups.remove(&pgid) {
                self.groups_changed = true;
                self.dispatch(Event::GroupGone { slot, gen });
            }
        }
    }
}
