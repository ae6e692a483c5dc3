//! The supervisor's state: apps, their instance slots, and the phase of each slot.
//! Owned by the runtime's one task; changed only by [`super::handle`].

use std::time::Duration;

use super::order::Order;
use crate::config::{App as AppConfig, Config};

/// An id the runtime gives each control request, so a reply finds its connection.
pub type ReqId = u64;

/// How a process ended, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl ExitStatus {
    /// A clean exit: code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The exit code, when it exited with one.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Code(code) => Some(code),
            ExitStatus::Signal(_) => None,
        }
    }

    /// "exited with code 1", "killed by SIGKILL".
    pub fn describe(self) -> String {
        match self {
            ExitStatus::Code(code) => crate::human::exited(code),
            ExitStatus::Signal(signal) => crate::human::killed(signal),
        }
    }
}

/// What an instance said on its sd_notify socket (one datagram, already parsed).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    /// `READY=1`.
    pub ready: bool,
    /// `STOPPING=1`.
    pub stopping: bool,
    /// `STATUS=...`.
    pub status: Option<String>,
    /// `MAINPID=...`.
    pub main_pid: Option<i32>,
}

/// Why an instance was replaced (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// It exited or was killed on its own (or could not be spawned).
    Crash,
    /// It passed its memory limit.
    Memory,
    /// Its cron schedule fired.
    Cron,
    /// Its health probe failed.
    Probe,
    /// Someone asked (`restart`).
    Manual,
    /// A rolling reload.
    Reload,
    /// `apply` (or SIGHUP) changed a setting that needs a new process.
    Apply,
}

impl Reason {
    /// Every reason, in the order of DESIGN §5.
    pub const ALL: [Reason; 7] = [
        Reason::Crash,
        Reason::Memory,
        Reason::Cron,
        Reason::Probe,
        Reason::Manual,
        Reason::Reload,
        Reason::Apply,
    ];

    /// The name DESIGN §5 gives it (`"memory"`): in status, metrics and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Crash => "crash",
            Reason::Memory => "memory",
            Reason::Cron => "cron",
            Reason::Probe => "probe",
            Reason::Manual => "manual",
            Reason::Reload => "reload",
            Reason::Apply => "apply",
        }
    }
}

/// Monotonic time since supd started. The core never reads a clock: time is an argument.
pub type Time = Duration;

/// A generation: bumped by every spawn of a slot, so events about an older process are
/// recognised and ignored.
pub type Gen = u64;

/// One instance position: app (by position in the config) and index.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Slot {
    /// Position of the app in [`State::apps`].
    pub app: usize,
    /// 0-based instance index.
    pub index: u32,
}

/// The whole supervisor state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Facts about supd itself, for `status`.
    pub info: SupervisorFacts,
    /// The apps, in config order.
    pub apps: Vec<App>,
    /// Set once a shutdown began.
    pub shutdown: Option<Shutdown>,
    /// Requests waiting for their instances to reach a goal.
    pub pending: Vec<Pending>,
}

/// What `status` says about supd itself.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SupervisorFacts {
    /// supd's pid.
    pub pid: i32,
    /// supd's version.
    pub version: String,
    /// The config file.
    pub config: String,
    /// `shutdown_timeout`.
    pub shutdown_timeout: Duration,
    /// `[supervisor]` as the running config set it (for `diff`).
    pub supervisor: crate::config::Supervisor,
}

/// A shutdown in progress.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Shutdown {
    /// Shutdown requests to answer just before exiting.
    pub waiting: Vec<ReqId>,
    /// SIGKILL was already sent to everything.
    pub forced: bool,
    /// The exit order was given.
    pub exited: bool,
}

/// One app and its slots.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct App {
    /// Its validated configuration.
    pub config: AppConfig,
    /// One per instance index. Slots at `count` and above were scaled away: they are
    /// stopped (or still stopping) and kept, generation and all, for a later scale up.
    pub instances: Vec<Instance>,
    /// How many instances the app has now (`instances`, or the last `scale`).
    pub count: u32,
    /// Instances waiting for their turn in a rolling restart (cron, reload, apply), in
    /// order, with the reason their replacement will carry.
    pub rollout: std::collections::VecDeque<(u32, Reason)>,
    /// Bumped by every `apply` that changes a setting only a new process takes: an
    /// instance spawned under an older epoch still runs the older settings.
    pub epoch: u64,
    /// Bumped when `apply` changes the cron schedule, so the old schedule's timer is
    /// recognised and ignored.
    pub cron_epoch: u64,
    /// A memory-sampling timer is armed for this app.
    pub sampling: bool,
    /// The settings and epoch before the last `apply` that needed new processes, kept
    /// until its rollout ends: a rollout that fails before replacing anything puts the
    /// process settings back, so what runs and what the state says agree.
    pub previous: Option<(Box<AppConfig>, u64)>,
    /// Removed from the config by `apply`: no slots, hidden from `status` and names;
    /// kept so that positions (and the slots of its last processes) stay valid.
    pub removed: bool,
}

/// One instance slot and its history.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    /// Where it is in its lifecycle.
    pub phase: Phase,
    /// The last generation spawned (0: never).
    pub gen: Gen,
    /// Replacements spawned since supd started.
    pub restarts: u32,
    /// Why the last replacement was spawned.
    pub last_reason: Option<Reason>,
    /// Consecutive runs shorter than `min_uptime` (drives backoff and give-up).
    pub failures: u32,
    /// How the last process ended, for `status`.
    pub last_exit: Option<LastExit>,
    /// The latest measurement of the current process tree.
    pub usage: Option<Usage>,
    /// Consecutive samples above `max_memory`.
    pub over_limit: u32,
    /// Consecutive failed health probes of the current process.
    pub probe_failures: u32,
    /// What the current process last said (sd_notify): `STATUS=`, `MAINPID=`, `STOPPING=1`.
    pub notice: Notice,
    /// Restarts by reason, for metrics.
    pub restarts_by: std::collections::BTreeMap<Reason, u32>,
    /// The app's [`App::epoch`] when the current process was spawned.
    pub epoch: u64,
    /// The current process replaces another in a rollout and is not ready yet: if it
    /// never gets ready, the rollout stops.
    pub rolling: Option<Reason>,
    /// Earlier processes of this slot still alive during a surge-first replacement: the
    /// one being replaced keeps serving until its successor is ready, then it is stopped.
    pub old: Vec<OldProcess>,
}

/// A process of a slot that a newer one replaces (surge first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OldProcess {
    /// Its leader (and process group).
    pub pid: i32,
    /// Its generation.
    pub gen: Gen,
    /// When it was spawned.
    pub since: Time,
    /// The app's epoch when it was spawned.
    pub epoch: u64,
    /// `None` while it still serves; set once it was told to stop.
    pub stopping: Option<OldStop>,
}

/// How far the stop of an [`OldProcess`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OldStop {
    /// The leader is not reaped yet.
    pub leader_alive: bool,
    /// SIGKILL was sent to its group.
    pub killed: bool,
}

/// What the last sample of an instance found.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Resident memory of the whole tree.
    pub rss_bytes: u64,
    /// CPU use since the sample before.
    pub cpu_percent: Option<f64>,
}

/// How the previous process of a slot ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LastExit {
    /// Reaped with this status.
    Status(ExitStatus),
    /// Never ran: fork/exec failed.
    SpawnFailed(String),
}

/// What to do once a stopping generation's group is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AfterStop {
    /// Stay stopped.
    Stop,
    /// Spawn again, counted as a restart with this reason.
    Restart(Reason),
    /// Spawn again, not counted as a restart (a `start` arrived while stopping).
    Start,
    /// A rollout's replacement that failed is gone: the process it replaced (if it still
    /// serves) becomes the slot's process again, else the slot stays stopped.
    Restore,
    /// It was stopped for not becoming ready in time: a failed start for the policy.
    NotReady {
        /// How long it had run.
        uptime: Duration,
    },
    /// The leader ended on its own; apply the restart policy to this run.
    Policy {
        /// How the leader ended.
        status: ExitStatus,
        /// How long it had run.
        uptime: Duration,
    },
}

/// The lifecycle phase of a slot (DESIGN §5). A pid exists only in the phases where a
/// process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    /// A spawn order is out; the runtime reports back before anything else happens.
    Spawning {
        /// The generation being spawned.
        gen: Gen,
    },
    /// Running: `starting` until ready, then `online`.
    Online {
        /// The leader (and process group id).
        pid: i32,
        /// Its generation.
        gen: Gen,
        /// When it was spawned.
        since: Time,
        /// Its `ready` check passed (always, for an app without one).
        ready: bool,
    },
    /// Told to stop (or its leader died and the rest of its group is being cleaned up).
    Stopping {
        /// The leader's pid, which is also the group id.
        pid: i32,
        /// Its generation.
        gen: Gen,
        /// When it was spawned.
        since: Time,
        /// The leader is not reaped yet.
        leader_alive: bool,
        /// SIGKILL was sent to the group.
        killed: bool,
        /// What follows.
        then: AfterStop,
    },
    /// Waiting to restart after a failure.
    Backoff {
        /// When it starts again.
        until: Time,
    },
    /// Stopped on request, or never started.
    Stopped,
    /// Finished and not restarted by policy.
    Exited,
    /// Gave up after too many failures in a row.
    Errored {
        /// When it is tried again (`errored_retry`), if ever.
        retry_at: Option<Time>,
    },
}

impl Phase {
    /// The leader pid, for the phases where a process exists.
    pub fn pid(&self) -> Option<i32> {
        match *self {
            Phase::Online { pid, .. } => Some(pid),
            Phase::Stopping {
                pid, leader_alive, ..
            } if leader_alive => Some(pid),
            _ => None,
        }
    }

    /// The generation of the process, for the phases where one exists.
    pub fn gen(&self) -> Option<Gen> {
        match *self {
            Phase::Spawning { gen } | Phase::Online { gen, .. } | Phase::Stopping { gen, .. } => {
                Some(gen)
            }
            _ => None,
        }
    }

    /// A process (or what is left of its group) may exist.
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            Phase::Spawning { .. } | Phase::Online { .. } | Phase::Stopping { .. }
        )
    }
}

/// A request that completes when its slots reach a goal.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// The request.
    pub req: ReqId,
    /// What it asked (for the reply's wording and data).
    pub order: Order,
    /// Each slot and what it must reach.
    pub goals: Vec<(Slot, Goal)>,
    /// Why a rollout it waits for stopped; the answer is an error then.
    pub failures: Vec<String>,
}

/// What completes a request for one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Goal {
    /// The process of this generation is gone (stopped, or already replaced by a later
    /// order).
    Gone(Gen),
    /// A process of at least this generation was spawned (or failed to be) and is no longer
    /// in transition.
    Reached(Gen),
    /// The process of this generation was replaced by a later one that is no longer in
    /// transition, or there is nothing left to replace (stopped, exited, errored).
    Replaced(Gen),
    /// A failed replacement is gone and the slot settled (its old process restored, or
    /// stopped).
    Settled,
}

impl State {
    /// A state for `config`, every slot stopped. `pid`/`version` describe supd itself.
    pub fn new(config: &Config, pid: i32, version: &str) -> State {
        let apps = config.apps.iter().cloned().map(App::new).collect();
        State {
            info: SupervisorFacts {
                pid,
                version: version.to_string(),
                config: config.path.display().to_string(),
                shutdown_timeout: config.supervisor.shutdown_timeout,
                supervisor: config.supervisor.clone(),
            },
            apps,
            shutdown: None,
            pending: Vec::new(),
        }
    }

    /// The instance in `slot`, if the slot exists.
    pub fn instance(&self, slot: Slot) -> Option<&Instance> {
        self.apps.get(slot.app)?.instances.get(slot.index as usize)
    }

    /// Every slot of every app's current instances, in config order.
    pub fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.apps
            .iter()
            .enumerate()
            .flat_map(|(app, a)| (0..a.count).map(move |index| Slot { app, index }))
    }

    /// Every slot, scaled away ones included.
    pub fn all_slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.apps.iter().enumerate().flat_map(|(app, a)| {
            (0..a.instances.len() as u32).map(move |index| Slot { app, index })
        })
    }

    /// The slots where a process (or what is left of its group) may exist, scaled away
    /// ones and old processes of a surge included.
    pub fn live_slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.all_slots()
            .filter(|&s| self.instance(s).is_some_and(Instance::has_process))
    }

    /// The app named `name` (removed ones are no longer names).
    pub fn app_named(&self, name: &str) -> Option<usize> {
        self.apps
            .iter()
            .position(|a| !a.removed && a.config.name == name)
    }

    /// `app:index`, for log lines.
    pub fn label(&self, slot: Slot) -> String {
        match self.apps.get(slot.app) {
            Some(app) => format!("{}:{}", app.config.name, slot.index),
            None => format!("?:{}", slot.index),
        }
    }
}

impl App {
    /// An app of `config`, every slot stopped.
    pub fn new(config: AppConfig) -> App {
        App {
            instances: (0..config.instances).map(|_| Instance::default()).collect(),
            count: config.instances,
            rollout: Default::default(),
            epoch: 0,
            cron_epoch: 0,
            sampling: false,
            previous: None,
            removed: false,
            config,
        }
    }
}

impl Default for Instance {
    /// A slot that never ran.
    fn default() -> Instance {
        Instance {
            phase: Phase::Stopped,
            gen: 0,
            restarts: 0,
            last_reason: None,
            failures: 0,
            last_exit: None,
            usage: None,
            over_limit: 0,
            probe_failures: 0,
            notice: Default::default(),
            restarts_by: Default::default(),
            epoch: 0,
            rolling: None,
            old: Vec::new(),
        }
    }
}

impl Instance {
    /// A process of this slot (current or old, or what is left of a group) may exist.
    pub fn has_process(&self) -> bool {
        self.phase.is_live() || !self.old.is_empty()
    }

    /// An old process still serving while its replacement starts.
    pub fn serving_old(&self) -> Option<&OldProcess> {
        self.old.iter().find(|o| o.stopping.is_none())
    }
}
