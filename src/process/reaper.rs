//! The only caller of `wait*` in supd: reaps every exited child, instance leaders and
//! adopted orphans alike (supd is a child subreaper, or PID 1).

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How a reaped child ended, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// This signal killed it.
    Signal(i32),
}

/// Make supd the reaper of every orphaned descendant, so that grandchildren of an instance
/// come back to it (and can be killed and reaped) instead of escaping to init.
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Reap every child that has exited, without blocking.
pub fn reap_all() -> Vec<(i32, Exit)> {
    let mut reaped = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => reaped.push((pid.as_raw(), Exit::Code(code))),
            Ok(WaitStatus::Signaled(pid, signal, _core)) => {
                reaped.push((pid.as_raw(), Exit::Signal(signal as i32)))
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            // Stop/continue reports need WUNTRACED/WCONTINUED, which are not asked for.
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    reaped
}
