//! How far supd's own start has come, for its service manager: systemd is told READY=1
//! only once every autostart instance is ready or has failed its first start, so
//! `systemctl start` returns with the apps up (or known broken), not while they boot.

use super::state::{Phase, State, Time};

/// Startup progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Startup {
    /// Apps with autostart whose every instance is settled: ready, or failed its start.
    pub settled: usize,
    /// Apps with autostart.
    pub apps: usize,
    /// The latest `ready` deadline among instances still starting: the time the start
    /// may take at most, unless a spawn is still under way.
    pub deadline: Option<Time>,
}

impl Startup {
    /// Every autostart app is settled.
    pub fn done(&self) -> bool {
        self.settled == self.apps
    }
}

/// The progress in `state` (pure).
pub fn startup(state: &State) -> Startup {
    let mut progress = Startup {
        settled: 0,
        apps: 0,
        deadline: None,
    };
    for app in state
        .apps
        .iter()
        .filter(|a| !a.removed && a.config.autostart)
    {
        progress.apps += 1;
        let mut settled = true;
        for inst in &app.instances {
            // A run that ended (a crash, a failed ready check) is a failed first start:
            // settled, even while the restart that follows is starting.
            if inst.last_exit.is_some() || inst.restarts > 0 {
                continue;
            }
            match inst.phase {
                Phase::Spawning { .. } => settled = false,
                Phase::Online {
                    since,
                    ready: false,
                    ..
                } => {
                    settled = false;
                    if let Some(ready) = &app.config.ready {
                        let at = since + ready.timeout;
                        progress.deadline = progress.deadline.max(Some(at));
                    }
                }
                // Ready, being stopped, or stopped on request.
                _ => {}
            }
        }
        if settled {
            progress.settled += 1;
        }
    }
    progress
}
