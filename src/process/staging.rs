//! Low fd numbers reserved for the fds a child inherits, so that its copy of supd's fd
//! table can stop there.
//!
//! A child gets its own fd table by copying supd's, and exec then closes every
//! close-on-exec fd of the copy, one by one. supd holds two pipes per instance, so with
//! 5000 instances each spawn copied and closed 10,000 fds: the part of a spawn's cost that
//! grew with the number of instances. Instead the child shares supd's table
//! (`CLONE_FILES`) and makes its own with `close_range(below, ~0, CLOSE_RANGE_UNSHARE)`,
//! which copies only the fds under `below`. What the child needs (stdin, the two pipes,
//! the exec-status pipe, listening sockets) is first put on reserved slots under it: a
//! handful of fds taken at the first spawn, when few are open, held on `/dev/null` while
//! no spawn uses them.
//!
//! Owns the slots; never closes one (a slot is only ever replaced, so no other thread's
//! `open` can take its number).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Slots: stdin, stdout, stderr, the exec-status pipe and the listening sockets.
pub(super) const SLOTS: usize = 4 + super::spawn::MAX_LISTEN_FDS;

/// The reserved fds, each a close-on-exec duplicate of `holder` while unused.
#[derive(Debug)]
pub(super) struct Slots {
    holder: OwnedFd,
    fds: Vec<OwnedFd>,
    /// One above the highest slot.
    below: RawFd,
}

/// Taken at the first spawn; `None` if they could not be (spawns copy the whole table
/// then, as before).
static SLOTS_TAKEN: OnceLock<Option<Slots>> = OnceLock::new();

/// Held while a spawn uses the slots.
static IN_USE: Mutex<()> = Mutex::new(());

/// Set once a clone sharing the fd table was refused: stage nothing from then on.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// A clone with `CLONE_FILES` failed: spawns copy the whole table from now on.
pub(super) fn refused() {
    REFUSED.store(true, Ordering::Relaxed);
}

/// `fds` put on slots for one spawn; back on `/dev/null` when dropped.
pub(super) struct Staged {
    _in_use: MutexGuard<'static, ()>,
    slots: &'static Slots,
    used: usize,
    /// Where each fd of the request is now, in its order.
    pub fds: [RawFd; SLOTS],
}

impl Staged {
    /// One above the highest slot: the fds a child's table must keep are all below.
    pub fn below(&self) -> RawFd {
        self.slots.below
    }
}

/// Put `fds` (at most [`SLOTS`]) on slots, or `None` if there are no slots (the child
/// then copies the whole table). Spawns are serialised while a `Staged` lives.
pub(super) fn stage(fds: &[RawFd]) -> Option<Staged> {
    if REFUSED.load(Ordering::Relaxed) {
        return None;
    }
    if fds.len() > SLOTS {
        return None;
    }
    let slots = SLOTS_TAKEN.get_or_init(take).as_ref()?;
    let in_use = IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    let mut staged = [-1; SLOTS];
    for (i, (&fd, slot)) in fds.iter().zip(&slots.fds).enumerate() {
        // SAFETY: dup3 onto a slot we own replaces what it held; both fds are open.
        if unsafe { libc::dup3(fd, slot.as_raw_fd(), libc::O_CLOEXEC) } < 0 {
            release(slots, i);
            return None;
        }
        staged[i] = slot.as_raw_fd();
    }
    Some(Staged {
        _in_use: in_use,
        slots,
        used: fds.len(),
        fds: staged,
    })
}

impl Drop for Staged {
    fn drop(&mut self) {
        release(self.slots, self.used);
    }
}

/// Put the first `used` slots back on `/dev/null`, dropping their hold on the child's
/// fds (a pipe's write end held here would keep its reader from ever seeing EOF).
fn release(slots: &Slots, used: usize) {
    for slot in &slots.fds[..used] {
        // SAFETY: as in `stage`: both fds are ours and open. A failure (EBADF, EBUSY) is
        // not possible for an open target; were it, the slot would keep a duplicate, no
        // worse than a leaked fd.
        unsafe { libc::dup3(slots.holder.as_raw_fd(), slot.as_raw_fd(), libc::O_CLOEXEC) };
    }
}

/// The lowest free fd numbers above stdio, as duplicates of `/dev/null`.
fn take() -> Option<Slots> {
    // Valgrind runs only clones of threads, fork and vfork, and exits on any other (it
    // preloads its `vgpreload_*.so`): under it, copy the table.
    if std::env::var_os("LD_PRELOAD").is_some_and(|p| p.to_string_lossy().contains("vgpreload")) {
        return None;
    }
    let holder: OwnedFd = File::open("/dev/null").ok()?.into();
    let mut fds = Vec::with_capacity(SLOTS);
    for _ in 0..SLOTS {
        // SAFETY: F_DUPFD_CLOEXEC returns a new fd, which OwnedFd then owns alone.
        let fd = unsafe { libc::fcntl(holder.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just returned by fcntl and is owned by nothing else.
        fds.push(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) });
    }
    let below = fds.iter().map(AsRawFd::as_raw_fd).max()? + 1;
    Some(Slots { holder, fds, below })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;

    fn same_file(a: RawFd, b: RawFd) -> bool {
        let target = |fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        target(a) == target(b)
    }

    #[test]
    fn staged_fds_sit_on_low_slots_until_dropped() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let staged = stage(&[r.as_raw_fd(), w.as_raw_fd()]).unwrap();
        assert!(staged.fds[0] < staged.below() && staged.fds[1] < staged.below());
        assert!(same_file(staged.fds[0], r.as_raw_fd()));
        let slot = staged.fds[1];
        drop(staged);
        // Back on /dev/null: the pipe's write end is only `w` now.
        assert!(!same_file(slot, w.as_raw_fd()));
        drop(w);
        let mut buf = [0u8; 1];
        let read = std::io::Read::read(&mut File::from(r), &mut buf).unwrap();
        assert_eq!(read, 0, "EOF: no slot holds the write end any more");
    }

    #[test]
    fn more_fds_than_slots_are_not_staged() {
        let fds = [0; SLOTS + 1];
        assert!(stage(&fds).is_none());
    }
}
