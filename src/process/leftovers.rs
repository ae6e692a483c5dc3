//! What a supd that was killed outright (`kill -9`, the OOM killer) leaves behind: its
//! instances' leaders die with it (`PR_SET_PDEATHSIG`), but their children live on,
//! holding ports and doing work twice once the next supd starts the apps again.
//!
//! So supd keeps a small state file next to its control socket naming the process
//! groups (sessions) of its instances, with each leader's start time. A supd that starts
//! and finds the file of one that is gone stops what is left of those sessions (their
//! stop signal, then SIGKILL after `kill_timeout`) before it starts anything.
//! A clean exit removes the file; a re-exec keeps it.
//!
//! A re-exec whose new binary cannot read the handover document leaves it children
//! instead: [`children`] says which instance each one is, from what supd put in its
//! environment, so the new supd can take them over.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The state file that goes with the control socket at `socket`.
pub fn state_file(socket: &Path) -> PathBuf {
    socket.with_extension("state")
}

/// The file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The kernel's boot id: after a reboot nothing of the groups is left.
    pub boot_id: String,
    /// The supd that wrote it.
    pub supd_pid: i32,
    /// Its groups.
    pub groups: Vec<Group>,
}

/// One instance's process group (and session: instances call `setsid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The leader's pid: the group and session id.
    pub pgid: i32,
    /// The leader's start time (clock ticks after boot, `/proc/PID/stat` field 22), so
    /// that a new process that got the pid is never taken for it.
    pub start: u64,
    /// `app:index`, for the log.
    pub label: String,
    /// The app's stop signal.
    pub signal: i32,
    /// The app's `kill_timeout`, in ms.
    pub kill_timeout_ms: u64,
}

/// A process as `/proc` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    /// Its pid.
    pub pid: i32,
    /// Its parent.
    pub ppid: i32,
    /// Its process group.
    pub pgrp: i32,
    /// Its session.
    pub session: i32,
    /// Its start time, in clock ticks after boot.
    pub start: u64,
}

/// Which processes are left of `groups` (pure): those in a recorded group's session or
/// process group. A group whose leader pid now belongs to a process started at another
/// time is someone else's and is left alone (the kernel does not give a new process a
/// pid still used as a group or session id, so members found without their leader are
/// the old group's).
pub fn targets<'a>(groups: &'a [Group], procs: &[ProcInfo]) -> Vec<(&'a Group, Vec<i32>)> {
    groups
        .iter()
        .filter(|g| {
            procs
                .iter()
                .find(|p| p.pid == g.pgid)
                .map_or(true, |leader| leader.start == g.start)
        })
        .map(|g| {
            let pids = procs
                .iter()
                .filter(|p| p.pgrp == g.pgid || p.session == g.pgid)
                .map(|p| p.pid)
                .collect();
            (g, pids)
        })
        .filter(|(_, pids): &(_, Vec<i32>)| !pids.is_empty())
        .collect()
}

/// Parse `/proc/PID/stat`.
pub fn parse_stat(stat: &str) -> Option<ProcInfo> {
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let pid = stat[..stat.find(" (")?].trim().parse().ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) pgrp(2) session(3) ... starttime(19).
    Some(ProcInfo {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn stat_of(pid: i32) -> Option<ProcInfo> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time of `pid`, if it exists.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_of(pid).map(|p| p.start)
}

/// This boot's id.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Writes `record` to `path` (replacing it whole, never half-written).
pub fn write(path: &Path, record: &Record) -> io::Result<()> {
    let tmp = path.with_extension("state.tmp");
    std::fs::write(&tmp, serde_json::to_vec(record).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// Every process but this one.
pub fn all_processes() -> Vec<ProcInfo> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        stat_of(pid).filter(|p| p.pid != me)
    })
    .collect()
}

/// A child of this process found at start: what the supd before a re-exec started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Child {
    /// Its pid.
    pub pid: i32,
    /// Its start time, in clock ticks after boot.
    pub start: u64,
    /// The instance it is (`SUP_APP`, `SUP_INSTANCE`), if it is one: a session leader
    /// with both in its environment, and not a probe (`SUP_PROBE`).
    pub instance: Option<(String, u32)>,
    /// Its `NOTIFY_SOCKET`.
    pub notify: Option<String>,
    /// The inodes of the pipes on its stdout and stderr.
    pub pipes: [Option<u64>; 2],
}

/// What supd's variables in a child's environment (`/proc/PID/environ`) say: the
/// instance, unless it is a probe, and its notify socket.
pub fn instance_env(environ: &[u8]) -> (Option<(String, u32)>, Option<String>) {
    let (mut app, mut index, mut probe, mut notify) = (None, None, false, None);
    for var in environ.split(|&b| b == 0) {
        let Ok(var) = std::str::from_utf8(var) else {
            continue;
        };
        match var.split_once('=') {
            Some(("SUP_APP", v)) => app = Some(v.to_string()),
            Some(("SUP_INSTANCE", v)) => index = v.parse().ok(),
            Some(("SUP_PROBE", _)) => probe = true,
            Some(("NOTIFY_SOCKET", v)) => notify = Some(v.to_string()),
            _ => {}
        }
    }
    let instance = app.zip(index).filter(|_| !probe);
    (instance, notify)
}

/// This process's children, with what each is (see [`Child`]).
pub fn children(procs: &[ProcInfo]) -> Vec<Child> {
    let me = std::process::id() as i32;
    procs
        .iter()
        .filter(|p| p.ppid == me)
        .map(|p| {
            let environ = std::fs::read(format!("/proc/{}/environ", p.pid)).unwrap_or_default();
            let (instance, notify) = instance_env(&environ);
            let pipe = |fd: u8| {
                let link = std::fs::read_link(format!("/proc/{}/fd/{fd}", p.pid)).ok()?;
                super::inherited::pipe_inode(&link.to_string_lossy())
            };
            Child {
                pid: p.pid,
                start: p.start,
                instance: instance.filter(|_| p.session == p.pid),
                notify,
                pipes: [pipe(1), pipe(2)],
            }
        })
        .collect()
}

/// Reads the state file at `path`, if there is one.
pub fn read(path: &Path) -> Option<Record> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("ignoring the damaged state file {}: {e}", path.display());
            None
        }
    }
}

/// At start (not after a re-exec): stops what a supd that is gone left of its instances,
/// as its state file names them, and removes the file. Returns how many processes were
/// stopped. Blocks for at most the longest `kill_timeout` plus a second.
pub fn clear(path: &Path) -> usize {
    let record = read(path);
    let _ = std::fs::remove_file(path);
    let Some(record) = record.filter(|r| r.boot_id == boot_id()) else {
        return 0;
    };
    let procs = all_processes();
    let found = targets(&record.groups, &procs);
    let whose = format!("supd pid {} that is gone", record.supd_pid);
    stop(&found, &procs, &whose)
}

/// Stops the members of each group (its stop signal, then SIGKILL after its
/// `kill_timeout`) and waits until they are gone; `whose` says whose they were, for the
/// log. Returns how many processes there were.
pub fn stop(found: &[(&Group, Vec<i32>)], procs: &[ProcInfo], whose: &str) -> usize {
    if found.is_empty() {
        return 0;
    }
    // Each pid with its start time: one that ends and whose pid is taken by a new
    // process meanwhile is not signalled again.
    let mut pids: Vec<(i32, u64)> = Vec::new();
    let mut wait = Duration::ZERO;
    for (group, members) in found {
        tracing::warn!(
            "{}: {} processes left by {whose}; stopping them",
            group.label,
            members.len(),
        );
        let signal = nix::sys::signal::Signal::try_from(group.signal)
            .unwrap_or(nix::sys::signal::Signal::SIGTERM);
        for &pid in members {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
            let start = procs.iter().find(|p| p.pid == pid).map_or(0, |p| p.start);
            pids.push((pid, start));
        }
        wait = wait.max(Duration::from_millis(group.kill_timeout_ms));
    }
    let alive = |pids: &[(i32, u64)]| -> Vec<(i32, u64)> {
        pids.iter()
            .copied()
            .filter(|&(p, start)| start_time(p) == Some(start) && !is_zombie(p))
            .collect()
    };
    let until = |deadline: Instant, pids: &[(i32, u64)]| -> Vec<(i32, u64)> {
        loop {
            let left = alive(pids);
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let left = until(Instant::now() + wait, &pids);
    for &(pid, _) in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let stuck = until(Instant::now() + Duration::from_secs(1), &left);
    tracing::warn!(
        "cleared {} processes left by {whose} ({} needed SIGKILL{})",
        pids.len(),
        left.len(),
        if stuck.is_empty() {
            String::new()
        } else {
            format!(", {} still there", stuck.len())
        }
    );
    pids.len()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;

    fn group(pgid: i32, start: u64) -> Group {
        Group {
            pgid,
            start,
            label: "web:0".into(),
            signal: 15,
            kill_timeout_ms: 100,
        }
    }

    fn p(pid: i32, pgrp: i32, session: i32, start: u64) -> ProcInfo {
        ProcInfo {
            pid,
            ppid: 1,
            pgrp,
            session,
            start,
        }
    }

    #[test]
    fn members_of_a_recorded_session_are_targets() {
        let groups = [group(100, 5)];
        let procs = [
            p(101, 100, 100, 6), // a worker in the group
            p(102, 102, 100, 7), // moved to its own group, still in the session
            p(200, 200, 200, 8), // unrelated
        ];
        let found = targets(&groups, &procs);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, vec![101, 102]);
    }

    #[test]
    fn a_reused_leader_pid_is_left_alone() {
        let groups = [group(100, 5)];
        // pid 100 is now a process started later: another program's group.
        let procs = [p(100, 100, 100, 50), p(101, 100, 100, 51)];
        assert!(targets(&groups, &procs).is_empty());
        // The same leader, still alive (its PDEATHSIG not yet delivered): a target.
        let procs = [p(100, 100, 100, 5), p(101, 100, 100, 6)];
        assert_eq!(targets(&groups, &procs)[0].1, vec![100, 101]);
    }

    #[test]
    fn stat_fields_after_a_name_with_spaces_and_parens() {
        let stat = "42 (a (b) c) S 1 40 41 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10";
        let parsed = parse_stat(stat).unwrap();
        assert_eq!(
            (
                parsed.pid,
                parsed.ppid,
                parsed.pgrp,
                parsed.session,
                parsed.start
            ),
            (42, 1, 40, 41, 12345)
        );
        assert_eq!(parse_stat("42 (x) S 1"), None);
    }

    #[test]
    fn the_environment_names_the_instance_unless_a_probe() {
        let env = b"PATH=/bin\0SUP_APP=web\0SUP_INSTANCE=3\0NOTIFY_SOCKET=@sup/1\0";
        assert_eq!(
            instance_env(env),
            (Some(("web".into(), 3)), Some("@sup/1".into()))
        );
        let probe = b"SUP_APP=web\0SUP_INSTANCE=3\0SUP_PROBE=ready\0";
        assert_eq!(instance_env(probe), (None, None));
        assert_eq!(instance_env(b"SUP_APP=web\0SUP_INSTANCE=x\0"), (None, None));
        assert_eq!(instance_env(b""), (None, None));
    }

    #[test]
    fn a_record_round_trips() {
        let r = Record {
            boot_id: "b".into(),
            supd_pid: 9,
            groups: vec![group(100, 5)],
        };
        let back: Record = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            state_file(Path::new("/run/sup/supd.sock")),
            Path::new("/run/sup/supd.state")
        );
    }
}
