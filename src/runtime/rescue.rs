//! A re-exec whose new binary cannot read the handover document (a version it does not
//! know, a damaged document) must not cost the apps their processes. The new supd reads
//! the config file as a fresh start would, then takes over what it finds instead of
//! starting it: each child that supd's environment variables name as an instance
//! (`SUP_APP`, `SUP_INSTANCE`) becomes that slot's running, ready process, with its log
//! pipes, its notify socket, and the `listen`, control and HTTP sockets the old supd kept
//! open (the state file beside the socket names them too, and first: a program that
//! rewrites its process title overwrites its environment). What it cannot place (an app or index the config no longer has, a probe, an old
//! generation still stopping) is stopped as a supd killed outright would have it stopped.
//!
//! What only the document held is lost and said so: restart counters and last exits,
//! armed timers (backoffs, cron and probe times start over), the unfinished line of each
//! stream, and the replies owed to waiting control connections (they are closed, so
//! `supctl reexec` sees its connection end and asks the new supd what it is).

use std::collections::HashSet;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Proc, Runtime};
use crate::core::{Event, Phase, Slot};
use crate::logs::{Stream, StreamMeta};
use crate::process::inherited::Inherited;
use crate::process::leftovers::{self, Child};

/// What a supd executed by a re-exec has when it cannot read the document.
#[derive(Debug)]
pub struct Rescue {
    /// Why the document could not be read.
    pub error: String,
    inherited: Inherited,
}

impl Rescue {
    /// Takes stock of the fds the old supd left open. First thing in main, see
    /// [`Inherited::scan`].
    pub(super) fn new(error: String) -> Rescue {
        Rescue {
            error,
            inherited: Inherited::scan(),
        }
    }

    /// The control socket the old supd served at `path`, still listening: clients that
    /// connect meanwhile wait in its backlog.
    pub fn take_control(&mut self, path: &Path) -> Option<UnixListener> {
        let listener = UnixListener::from(self.inherited.take_unix(path)?);
        listener.set_nonblocking(true).ok()?;
        Some(listener)
    }

    pub(super) fn inherited(&mut self) -> &mut Inherited {
        &mut self.inherited
    }
}

/// Names each child the state file lists (its pid and start time) as the instance the
/// file says (pure). The file comes first: a program that rewrites its process title
/// (nginx, redis) overwrites the environment `/proc/PID/environ` shows.
pub(super) fn name_from_record(children: &mut [Child], groups: &[leftovers::Group]) {
    for child in children {
        let listed = groups
            .iter()
            .find(|g| g.pgid == child.pid && g.start == child.start);
        let named = listed.and_then(|g| {
            let (name, index) = g.label.rsplit_once(':')?;
            Some((name.to_string(), index.parse().ok()?))
        });
        if let Some(instance) = named {
            child.instance = Some(instance);
        }
    }
}

/// Which child becomes which slot (pure): a child naming an app of the config and an
/// index below its instance count; of two for one slot, the one started last (a reload's
/// new process, not the old one it replaces). `apps` holds each app's name and instance
/// count, by position. The rest are strays, to be stopped.
pub(super) fn assign<'a>(
    apps: &[(&str, u32)],
    children: &'a [Child],
) -> (Vec<(Slot, &'a Child)>, Vec<&'a Child>) {
    let mut taken: Vec<(Slot, &Child)> = Vec::new();
    let mut strays = Vec::new();
    for child in children {
        let slot = child.instance.as_ref().and_then(|(name, index)| {
            let app = apps
                .iter()
                .position(|(n, count)| n == name && index < count)?;
            Some(Slot { app, index: *index })
        });
        let Some(slot) = slot else {
            strays.push(child);
            continue;
        };
        match taken.iter_mut().find(|(s, _)| *s == slot) {
            Some(entry) if (child.start, child.pid) > (entry.1.start, entry.1.pid) => {
                strays.push(entry.1);
                entry.1 = child;
            }
            Some(_) => strays.push(child),
            None => taken.push((slot, child)),
        }
    }
    (taken, strays)
}

/// Seconds since boot, from `/proc/uptime`.
fn uptime() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

fn ticks(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / crate::monitor::clock_ticks() as f64)
}

impl Runtime {
    /// Takes over the children and fds the supd before the re-exec left, then boots
    /// what is still stopped.
    pub(super) fn take_over(&mut self, mut rescue: Rescue) {
        let me = self.state.info.pid;
        let procs = leftovers::all_processes();
        let mut children = leftovers::children(&procs);
        let groups: Vec<leftovers::Group> = leftovers::read(&leftovers::state_file(&self.socket))
            .filter(|r| r.boot_id == leftovers::boot_id())
            .map(|r| r.groups)
            .unwrap_or_default();
        name_from_record(&mut children, &groups);
        // supd's clock starts when the process did, so adopted uptimes stay true.
        let my_start = leftovers::start_time(me).unwrap_or(0);
        if let Some(age) = uptime().and_then(|up| up.checked_sub(ticks(my_start))) {
            let now = Instant::now();
            self.start = now.checked_sub(age).unwrap_or(now);
        }
        let apps: Vec<(&str, u32)> = self
            .state
            .apps
            .iter()
            .map(|a| (a.config.name.as_str(), a.instances.len() as u32))
            .collect();
        let (taken, mut strays) = assign(&apps, &children);
        let mut adopted = HashSet::new();
        for (slot, child) in taken {
            let since = ticks(child.start.saturating_sub(my_start));
            self.dispatch(Event::Adopted {
                slot,
                pid: child.pid,
                since,
            });
            match self.state.instance(slot).map(|i| &i.phase) {
                Some(&Phase::Online { pid, gen, .. }) if pid == child.pid => {
                    self.procs.insert(
                        pid,
                        Proc {
                            slot,
                            gen,
                            exec_error: None,
                        },
                    );
                    self.groups.insert(pid, (slot, gen));
                    self.groups_changed = true;
                    self.attach_adopted(slot, child, rescue.inherited());
                    adopted.insert(pid);
                }
                _ => strays.push(child),
            }
        }
        self.stop_strays(&strays, &adopted, groups, procs);
        let inherited = rescue.inherited();
        let closed = inherited.closed + inherited.left();
        tracing::warn!(
            "took over {} processes of the supd before the re-exec; stopping {} more it left \
             that no instance in {} names; closed {closed} fds nothing claimed (control \
             connections waiting for an answer among them); lost with the handover: restart \
             counts, last exits, timers (backoffs, cron and probe times start over) and each \
             stream's unfinished line",
            adopted.len(),
            strays.len(),
            self.state.info.config,
        );
        drop(rescue);
        self.dispatch(Event::Boot);
    }

    /// The adopted child's output pipes and notify socket, as its spawn would have set up.
    fn attach_adopted(&mut self, slot: Slot, child: &Child, inherited: &mut Inherited) {
        let label = self.state.label(slot);
        let app: Arc<str> = Arc::from(self.state.apps[slot.app].config.name.as_str());
        let streams = [
            (Stream::Out, "stdout", child.pipes[0]),
            (Stream::Err, "stderr", child.pipes[1]),
        ];
        for (stream, name, inode) in streams {
            let Some(pipe) = inode.and_then(|i| inherited.pipes.remove(&i)) else {
                tracing::warn!("{label}: its {name} is not a pipe supd holds; not logged");
                continue;
            };
            let meta = StreamMeta {
                app: app.clone(),
                index: slot.index,
                pid: child.pid,
                stream,
            };
            if let Err(e) = self.logs.attach(meta, pipe) {
                tracing::warn!("{label}: cannot read its output: {e}");
            }
        }
        let Some(env) = &child.notify else {
            return;
        };
        if let Some(fd) = inherited.take_notify(env) {
            match crate::probe::notify::Socket::from_fd(fd, env.clone()) {
                Ok(socket) => self.serve_notify(slot, socket),
                Err(e) => tracing::warn!("{label}: its notify socket is lost: {e}"),
            }
        }
    }

    /// Stops, off the loop, the children no slot took and what is left of the groups
    /// the state file names that were not adopted (old generations still stopping).
    fn stop_strays(
        &self,
        strays: &[&Child],
        adopted: &HashSet<i32>,
        mut groups: Vec<leftovers::Group>,
        procs: Vec<leftovers::ProcInfo>,
    ) {
        groups.retain(|g| !adopted.contains(&g.pgid));
        for child in strays {
            if groups.iter().any(|g| g.pgid == child.pid) {
                continue;
            }
            let app = child
                .instance
                .as_ref()
                .and_then(|(name, _)| self.state.apps.iter().find(|a| &a.config.name == name));
            groups.push(leftovers::Group {
                pgid: child.pid,
                start: child.start,
                label: match &child.instance {
                    Some((name, index)) => format!("{name}:{index}"),
                    None => format!("pid {}", child.pid),
                },
                signal: app.map_or(15, |a| a.config.stop_signal.0),
                kill_timeout_ms: app.map_or(5000, |a| a.config.kill_timeout.as_millis() as u64),
            });
        }
        if groups.is_empty() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("supd-strays".into())
            .spawn(move || {
                let found = leftovers::targets(&groups, &procs);
                leftovers::stop(&found, &procs, "the supd before the re-exec");
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot stop what the supd before the re-exec left: {e}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;

    fn child(pid: i32, start: u64, instance: Option<(&str, u32)>) -> Child {
        Child {
            pid,
            start,
            instance: instance.map(|(n, i)| (n.to_string(), i)),
            ..Child::default()
        }
    }

    #[test]
    fn the_state_file_names_children_whose_environment_is_gone() {
        let group = |pgid, start, label: &str| leftovers::Group {
            pgid,
            start,
            label: label.into(),
            signal: 15,
            kill_timeout_ms: 100,
        };
        let mut children = [
            child(10, 5, None),                // nginx: its title over its environment
            child(11, 5, Some(("web", 1))),    // the file wins over the environment
            child(12, 5, None),                // a pid listed with another start time
            child(13, 5, Some(("worker", 0))), // not listed: its environment says
        ];
        let groups = [
            group(10, 5, "nginx:0"),
            group(11, 5, "web:0"),
            group(12, 4, "x:0"),
        ];
        name_from_record(&mut children, &groups);
        let names: Vec<_> = children.iter().map(|c| c.instance.clone()).collect();
        assert_eq!(
            names,
            vec![
                Some(("nginx".into(), 0)),
                Some(("web".into(), 0)),
                None,
                Some(("worker".into(), 0)),
            ]
        );
    }

    #[test]
    fn children_go_to_their_slots_and_the_rest_are_strays() {
        let apps = [("web", 2), ("worker", 1)];
        let children = [
            child(10, 5, Some(("web", 0))),
            child(11, 5, Some(("web", 1))),
            child(12, 5, Some(("web", 2))),  // past the instance count
            child(13, 5, Some(("gone", 0))), // an app the config no longer has
            child(14, 5, None),              // a probe, a zombie
            child(15, 4, Some(("worker", 0))), // old generation still stopping
            child(16, 9, Some(("worker", 0))), // its replacement
        ];
        let (taken, strays) = assign(&apps, &children);
        let taken: Vec<(Slot, i32)> = taken.iter().map(|(s, c)| (*s, c.pid)).collect();
        assert_eq!(
            taken,
            vec![
                (Slot { app: 0, index: 0 }, 10),
                (Slot { app: 0, index: 1 }, 11),
                (Slot { app: 1, index: 0 }, 16),
            ]
        );
        let mut strays: Vec<i32> = strays.iter().map(|c| c.pid).collect();
        strays.sort();
        assert_eq!(strays, vec![12, 13, 14, 15]);
        // The older one coming second is a stray too.
        let children = [
            child(16, 9, Some(("worker", 0))),
            child(15, 4, Some(("worker", 0))),
        ];
        let (taken, strays) = assign(&apps, &children);
        assert_eq!((taken[0].1.pid, strays[0].pid), (16, 15));
    }
}
