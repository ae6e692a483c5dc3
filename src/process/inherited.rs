//! The fds a supd finds open when it was executed by a re-exec whose handover document
//! it cannot read (a version it does not know, a damaged document): the pipes of the
//! children and the listening sockets, which the old supd kept open across the exec.
//! They are sorted by what they are, so the new supd can take each one over by what it
//! matches (a child's stdout, an address in the config) instead of by the document;
//! what it does not take is closed when the inventory is dropped.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockopt, sockopt, SockType};

/// The inherited fds, by kind.
#[derive(Debug, Default)]
pub struct Inherited {
    /// Pipes, by inode (a child's end of the same pipe shows the same inode).
    pub pipes: HashMap<u64, OwnedFd>,
    /// Listening Unix stream sockets, by path.
    pub unix: Vec<(PathBuf, OwnedFd)>,
    /// Listening TCP sockets, by address.
    pub tcp: Vec<(std::net::SocketAddr, OwnedFd)>,
    /// Datagram sockets bound to an abstract name, by `NOTIFY_SOCKET` value (`@name`).
    pub notify: Vec<(String, OwnedFd)>,
    /// Fds closed at once: connected sockets (control connections whose request was
    /// read by the old supd) and anything else.
    pub closed: usize,
}

/// Whether `fd` closes on exec: cleared for the fds a re-exec carries, set again once
/// they are taken over (or the exec failed).
pub fn set_cloexec(fd: RawFd, on: bool) {
    // SAFETY: the fd is open and owned by supd for the duration of the call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let flags = if on {
        nix::fcntl::FdFlag::FD_CLOEXEC
    } else {
        nix::fcntl::FdFlag::empty()
    };
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(flags));
}

impl Inherited {
    /// Every fd above stderr open now. Call it first thing in main: it takes ownership
    /// of each one, so nothing else in the process may own an fd above 2 yet.
    pub fn scan() -> Inherited {
        let mut found = Inherited::default();
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return found;
        };
        // Collected first: the directory's own fd is in the listing and closes with it.
        let fds: Vec<RawFd> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect();
        for fd in fds {
            let Ok(link) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
                continue; // the listing's own fd, closed by now
            };
            // SAFETY: the fd is open (its link was just read) and, this early in main,
            // owned by nothing else in the process; from here it is owned once.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            // The exec that brought it here cleared close-on-exec: set it again, so a
            // later exec carries it only if it is handed over by name.
            set_cloexec(fd, true);
            found.sort(&link, owned);
        }
        found
    }

    fn sort(&mut self, link: &Path, fd: OwnedFd) {
        let link = link.to_string_lossy();
        if let Some(inode) = pipe_inode(&link) {
            self.pipes.insert(inode, fd);
            return;
        }
        if link.starts_with("socket:") {
            let listening = getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false);
            let kind = getsockopt(&fd, sockopt::SockType).ok();
            match (kind, listening) {
                (Some(SockType::Stream), true) => {
                    if let Some(addr) = unix_path(&fd) {
                        self.unix.push((addr, fd));
                        return;
                    }
                    if let Some(addr) = tcp_addr(&fd) {
                        self.tcp.push((addr, fd));
                        return;
                    }
                }
                (Some(SockType::Datagram), false) => {
                    if let Some(name) = abstract_name(&fd) {
                        self.notify.push((format!("@{name}"), fd));
                        return;
                    }
                }
                _ => {}
            }
        }
        self.closed += 1;
    }

    /// The listening Unix socket at `path`, if one was inherited.
    pub fn take_unix(&mut self, path: &Path) -> Option<OwnedFd> {
        let i = self.unix.iter().position(|(p, _)| p == path)?;
        Some(self.unix.swap_remove(i).1)
    }

    /// The listening TCP socket on `addr`, if one was inherited.
    pub fn take_tcp(&mut self, addr: std::net::SocketAddr) -> Option<OwnedFd> {
        let i = self.tcp.iter().position(|(a, _)| *a == addr)?;
        Some(self.tcp.swap_remove(i).1)
    }

    /// The notify socket a child was told about in `NOTIFY_SOCKET=env`.
    pub fn take_notify(&mut self, env: &str) -> Option<OwnedFd> {
        let i = self.notify.iter().position(|(e, _)| e == env)?;
        Some(self.notify.swap_remove(i).1)
    }

    /// How many fds are still held (and will be closed with the inventory).
    pub fn left(&self) -> usize {
        self.pipes.len() + self.unix.len() + self.tcp.len() + self.notify.len()
    }
}

/// The inode in a `/proc/PID/fd` link to a pipe: `pipe:[123]`.
pub fn pipe_inode(link: &str) -> Option<u64> {
    link.strip_prefix("pipe:[")?.strip_suffix(']')?.parse().ok()
}

fn unix_path(fd: &OwnedFd) -> Option<PathBuf> {
    let listener = UnixListener::from(fd.try_clone().ok()?);
    let path = listener.local_addr().ok()?.as_pathname()?.to_path_buf();
    Some(path)
}

fn tcp_addr(fd: &OwnedFd) -> Option<std::net::SocketAddr> {
    std::net::TcpListener::from(fd.try_clone().ok()?)
        .local_addr()
        .ok()
}

fn abstract_name(fd: &OwnedFd) -> Option<String> {
    let socket = UnixDatagram::from(fd.try_clone().ok()?);
    let addr = socket.local_addr().ok()?;
    let name = addr.as_abstract_name()?;
    String::from_utf8(name.to_vec()).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;

    #[test]
    fn a_pipe_link_gives_its_inode() {
        assert_eq!(pipe_inode("pipe:[4242]"), Some(4242));
        assert_eq!(pipe_inode("socket:[4242]"), None);
        assert_eq!(pipe_inode("/dev/null"), None);
    }

    #[test]
    fn sockets_and_pipes_are_sorted_by_what_they_are() {
        let dir = std::env::temp_dir().join(format!("sup-inherited-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let mut found = Inherited::default();
        let unix = UnixListener::bind(&path).unwrap();
        found.sort(Path::new("socket:[1]"), unix.into());
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        found.sort(Path::new("socket:[2]"), tcp.into());
        let name = format!("sup-test/{}", std::process::id());
        let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let dgram = UnixDatagram::bind_addr(&sa).unwrap();
        found.sort(Path::new("socket:[3]"), dgram.into());
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        found.sort(Path::new("socket:[4]"), a.into());
        let (r, _w) = nix::unistd::pipe().unwrap();
        found.sort(Path::new("pipe:[77]"), r);

        assert!(found.take_unix(&path).is_some());
        assert!(found.take_tcp(addr).is_some());
        assert!(found.take_notify(&format!("@{name}")).is_some());
        assert!(found.pipes.contains_key(&77));
        assert_eq!(found.closed, 1, "the connected socket is not kept");
        assert_eq!(found.left(), 1);
        drop(b);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
