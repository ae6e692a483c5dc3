//! Signalling process groups. Every instance leads its own group (it calls `setsid`), so
//! one `killpg` reaches its workers and their children too.
//!
//! PID reuse: the runtime only signals a group it spawned and has not yet seen empty. A
//! group id stays reserved by the kernel while any member lives, so a group that still has
//! members cannot have been reused.

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal as NixSignal};
use nix::unistd::Pid;

use crate::config::Signal;

/// Send `signal` to every process in group `pgid`. A group already gone is not an error.
pub fn signal_group(pgid: i32, signal: Signal) -> nix::Result<()> {
    let signal = NixSignal::try_from(signal.0)?;
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Send `signal` to process `pid` alone. The caller guarantees it is not reaped yet (so
/// not a reused pid). A process already gone is not an error.
pub fn signal_process(pid: i32, signal: Signal) -> nix::Result<()> {
    let signal = NixSignal::try_from(signal.0)?;
    match nix::sys::signal::kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether any process is left in group `pgid` (zombies count until reaped).
pub fn group_alive(pgid: i32) -> bool {
    // Signal 0 checks existence and permission without sending anything.
    match nix::sys::signal::kill(Pid::from_raw(-pgid), None) {
        Ok(()) => true,
        Err(Errno::EPERM) => true,
        Err(_) => false,
    }
}
