//! sd_notify: one datagram socket per instance slot, in the abstract namespace (so an app
//! running as another user can reach it without file permissions), named in the child's
//! `NOTIFY_SOCKET`. The kernel attaches each sender's credentials (`SO_PASSCRED`); the
//! runtime accepts a message only from a process of the instance's own session.
//!
//! Never decides what a message means for the instance: [`parse`] gives a [`Message`].

use std::io;
use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;
use tokio::net::UnixDatagram;

/// The largest datagram read; systemd allows 4 KiB of state changes too.
const MAX_DATAGRAM: usize = 4096;

/// What one datagram says (the assignments sup acts on; others are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// `READY=1`.
    pub ready: bool,
    /// `STOPPING=1`.
    pub stopping: bool,
    /// `STATUS=...`.
    pub status: Option<String>,
    /// `MAINPID=...`.
    pub main_pid: Option<i32>,
}

/// A bound notify socket.
#[derive(Debug)]
pub struct Socket {
    sock: UnixDatagram,
    /// The `NOTIFY_SOCKET` value: `@` then the abstract name.
    pub env: String,
}

impl Socket {
    /// Bind the abstract name `name` (without the leading `@`). Needs a tokio runtime.
    pub fn bind(name: &str) -> io::Result<Socket> {
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let std_sock = std::os::unix::net::UnixDatagram::bind_addr(&addr)?;
        setsockopt(&std_sock, sockopt::PassCred, &true).map_err(io::Error::from)?;
        std_sock.set_nonblocking(true)?;
        Ok(Socket {
            sock: UnixDatagram::from_std(std_sock)?,
            env: format!("@{name}"),
        })
    }

    /// A socket [`Socket::bind`] made in the supd before a re-exec, whose `NOTIFY_SOCKET`
    /// value was `env`. Needs a tokio runtime.
    pub fn from_fd(fd: std::os::fd::OwnedFd, env: String) -> io::Result<Socket> {
        let std_sock = std::os::unix::net::UnixDatagram::from(fd);
        std_sock.set_nonblocking(true)?;
        Ok(Socket {
            sock: UnixDatagram::from_std(std_sock)?,
            env,
        })
    }

    /// The socket's fd (owned by the socket).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }

    /// The next datagram and its sender's pid (none if the kernel attached no
    /// credentials). File descriptors sent along (`FDSTORE=1`) are closed: sup does not
    /// keep them.
    pub async fn recv(&self) -> io::Result<(Vec<u8>, Option<i32>)> {
        self.sock
            .async_io(Interest::READABLE, || {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                let mut cmsg = nix::cmsg_space!(libc::ucred, [std::os::fd::RawFd; 16]);
                let mut iov = [IoSliceMut::new(&mut buf)];
                let msg = recvmsg::<()>(
                    self.sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
                )
                .map_err(io::Error::from)?;
                let len = msg.bytes;
                let mut pid = None;
                for c in msg.cmsgs().map_err(io::Error::from)? {
                    match c {
                        ControlMessageOwned::ScmCredentials(cred) => pid = Some(cred.pid()),
                        ControlMessageOwned::ScmRights(fds) => {
                            for fd in fds {
                                let _ = nix::unistd::close(fd);
                            }
                        }
                        _ => {}
                    }
                }
                buf.truncate(len);
                Ok((buf, pid))
            })
            .await
    }
}

/// Parse a datagram: newline-separated `KEY=VALUE` assignments.
pub fn parse(datagram: &[u8]) -> Message {
    let mut m = Message::default();
    for line in String::from_utf8_lossy(datagram).lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "READY" => m.ready |= value == "1",
            "STOPPING" => m.stopping |= value == "1",
            "STATUS" => m.status = Some(value.to_string()),
            "MAINPID" => m.main_pid = value.parse().ok().filter(|&p: &i32| p > 0),
            _ => {}
        }
    }
    m
}

/// Send `text` to the service manager that started supd (systemd with `Type=notify`):
/// `socket` is its `NOTIFY_SOCKET`, a path or `@` and an abstract name.
pub fn tell_manager(socket: &str, text: &str) -> io::Result<()> {
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    match socket.strip_prefix('@') {
        Some(name) => {
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(text.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(text.as_bytes(), socket)?;
        }
    }
    Ok(())
}

/// The session of `pid` (each instance leads its own), if the process still exists.
pub fn session_of(pid: i32) -> Option<i32> {
    nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid)))
        .ok()
        .map(|p| p.as_raw())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_assignments_sup_uses() {
        let m = parse(b"READY=1\nSTATUS=Serving 3 clients\nMAINPID=42\nWATCHDOG=1\n");
        assert!(m.ready && !m.stopping);
        assert_eq!(m.status.as_deref(), Some("Serving 3 clients"));
        assert_eq!(m.main_pid, Some(42));
        let m = parse(b"STOPPING=1");
        assert!(m.stopping && !m.ready && m.status.is_none());
        assert_eq!(
            parse(b"READY=0\nMAINPID=x\ngarbage\n\xff"),
            Message::default()
        );
    }

    #[test]
    fn a_datagram_arrives_with_the_sender_pid() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let name = format!("sup-test/{}/notify", std::process::id());
            let socket = Socket::bind(&name).unwrap();
            assert_eq!(socket.env, format!("@{name}"));
            let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            client.send_to_addr(b"READY=1", &addr).unwrap();
            let (data, pid) = socket.recv().await.unwrap();
            assert_eq!(data, b"READY=1");
            assert_eq!(pid, Some(std::process::id() as i32));
        });
    }
}
