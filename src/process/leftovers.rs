//! What a supd that was killed outright (`kill -9`, the OOM killer) leaves behind: its
//! instances' leaders die with it (`PR_SET_PDEATHSIG`), but their children live on,
//! holding ports and doing work twice once the next supd starts the apps again.
//!
//! So supd keeps a small state file next to its control socket naming the process
//! groups (sessions) of its instances, with each leader's start time. A supd that starts
//! and finds the file of one that is gone stops what is left of those sessions (their
//! stop signal, then SIGKILL after `kill_timeout`) before it starts anything.
//! A clean exit removes the file; a re-exec keeps it.

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

/// Parse `/proc/PID/stat`: (pgrp, session, start time).
pub fn parse_stat(stat: &str) -> Option<(i32, i32, u64)> {
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) pgrp(2) session(3) ... starttime(19).
    Some((
        fields.get(2)?.parse().ok()?,
        fields.get(3)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
    ))
}

/// The start time of `pid`, if it exists.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, _, start)| start)
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

fn all_processes() -> Vec<ProcInfo> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (pgrp, session, start) = parse_stat(&stat)?;
        (pid != me).then_some(ProcInfo {
            pid,
            pgrp,
            session,
            start,
        })
    })
    .collect()
}

/// At start (not after a re-exec): stops what a supd that is gone left of its instances,
/// as its state file names them, and removes the file. Returns how many processes were
/// stopped. Blocks for at most the longest `kill_timeout` plus a second.
pub fn clear(path: &Path) -> usize {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    let record: Record = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("ignoring the damaged state file {}: {e}", path.display());
            let _ = std::fs::remove_file(path);
            return 0;
        }
    };
    let _ = std::fs::remove_file(path);
    if record.boot_id != boot_id() {
        return 0;
    }
    let procs = all_processes();
    let found = targets(&record.groups, &procs);
    if found.is_empty() {
        return 0;
    }
    let mut pids: Vec<i32> = Vec::new();
    let mut wait = Duration::ZERO;
    for (group, members) in &found {
        tracing::warn!(
            "{}: {} processes left by supd pid {} that is gone; stopping them",
            group.label,
            members.len(),
            record.supd_pid
        );
        let signal = nix::sys::signal::Signal::try_from(group.signal)
            .unwrap_or(nix::sys::signal::Signal::SIGTERM);
        for &pid in members {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
        pids.extend(members);
        wait = wait.max(Duration::from_millis(group.kill_timeout_ms));
    }
    let alive = |pids: &[i32]| -> Vec<i32> {
        pids.iter()
            .copied()
            .filter(|&p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok())
            .filter(|&p| !is_zombie(p))
            .collect()
    };
    let until = |deadline: Instant, pids: &[i32]| -> Vec<i32> {
        loop {
            let left = alive(pids);
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let left = until(Instant::now() + wait, &pids);
    for &pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let stuck = until(Instant::now() + Duration::from_secs(1), &left);
    tracing::warn!(
        "cleared {} processes left by supd pid {} ({} needed SIGKILL{})",
        pids.len(),
        record.supd_pid,
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
        assert_eq!(parse_stat(stat), Some((40, 41, 12345)));
        assert_eq!(parse_stat("42 (x) S 1"), None);
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
