//! Who may do what on the control socket. The kernel says who a client is (its uid and
//! groups, `SO_PEERCRED` and `SO_PEERGROUPS`, which it cannot forge); the file mode of
//! the socket is not trusted alone, since a wider mode or a copied fd would let anyone in.
//!
//! Root, supd's own user and the members of group `sup` may use every verb; the members
//! of a `[supervisor] readers` group may use the read-only ones (`status`, `logs`,
//! `health`, `diff`); everyone else is refused, with the reason.

use std::os::fd::{AsFd, AsRawFd};

use super::proto::Command;

/// The group whose members may do everything, as root may.
pub const ADMIN_GROUP: &str = "sup";

/// The local group file, where the package's `adduser --system` puts group `sup`.
const GROUP_FILE: &str = "/etc/group";

/// Group `sup`'s gid, from the local group file only. Not through NSS, which a
/// `readers` group may need: the first NSS lookup loads glibc's modules for good
/// (`libnss_systemd` brings `libcap` and `libm`), about 0.7 MiB of every supd's RSS and
/// a dozen file lookups at its start, for a group that is local by design.
pub fn admin_gid() -> Option<u32> {
    gid_in(&std::fs::read_to_string(GROUP_FILE).ok()?, ADMIN_GROUP)
}

/// The gid of group `name` in the text of a group file (`name:password:gid:members`).
fn gid_in(group_file: &str, name: &str) -> Option<u32> {
    group_file.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        fields.nth(1)?.trim().parse().ok()
    })
}

/// A client of the control socket, as the kernel tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its effective uid.
    pub uid: u32,
    /// Its pid (for messages).
    pub pid: i32,
    /// Its effective gid and supplementary groups.
    pub groups: Vec<u32>,
}

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every verb.
    Full,
    /// The read-only verbs.
    ReadOnly,
    /// Nothing.
    None,
}

/// Who supd lets in: its own uid, the admin group's gid and the readers' gids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// supd's effective uid.
    pub owner: u32,
    /// Group `sup`, if it exists.
    pub admin: Option<u32>,
    /// The `readers` groups that exist, by gid.
    pub readers: Vec<u32>,
}

impl Policy {
    /// The policy for this supd with `readers` (group names; unknown ones are skipped).
    pub fn resolve(readers: &[String]) -> Policy {
        let gid = |name: &str| {
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
        };
        Policy {
            owner: nix::unistd::geteuid().as_raw(),
            admin: admin_gid(),
            readers: readers.iter().filter_map(|n| gid(n)).collect(),
        }
    }

    /// What `peer` may do (pure).
    pub fn access(&self, peer: &Peer) -> Access {
        let member = |gid: u32| peer.groups.contains(&gid);
        if peer.uid == 0 || peer.uid == self.owner || self.admin.is_some_and(member) {
            Access::Full
        } else if self.readers.iter().any(|&g| member(g)) {
            Access::ReadOnly
        } else {
            Access::None
        }
    }

    /// Whether `peer` may ask `cmd`; the refusal names why (pure).
    pub fn check(&self, peer: &Peer, cmd: &Command) -> Result<(), String> {
        let verb = cmd.name();
        match self.access(peer) {
            Access::Full => Ok(()),
            Access::ReadOnly if read_only(cmd) => Ok(()),
            Access::ReadOnly => Err(format!(
                "permission denied: uid {} may only read (status, logs, health, diff); \
                 `{verb}` needs root or group {ADMIN_GROUP}",
                peer.uid
            )),
            Access::None => Err(format!(
                "permission denied: uid {} is not root, nor supd's user, nor in group \
                 {ADMIN_GROUP}{}",
                peer.uid,
                if self.readers.is_empty() {
                    String::new()
                } else {
                    " or a `readers` group".to_string()
                }
            )),
        }
    }
}

/// The verbs that change nothing.
pub fn read_only(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Status { .. } | Command::Logs { .. } | Command::Health | Command::Diff { .. }
    )
}

/// The client at the other end of `socket`, if the kernel tells.
pub fn peer_of(socket: &impl AsFd) -> Option<Peer> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let creds = getsockopt(socket, PeerCredentials).ok()?;
    let mut groups = vec![creds.gid()];
    groups.extend(peer_groups(socket.as_fd().as_raw_fd()));
    Some(Peer {
        uid: creds.uid(),
        pid: creds.pid(),
        groups,
    })
}

/// The supplementary groups of the peer (`SO_PEERGROUPS`, Linux 4.13): empty if the
/// kernel does not tell.
fn peer_groups(fd: std::os::fd::RawFd) -> Vec<u32> {
    let mut groups = vec![0u32; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<u32>()) as libc::socklen_t;
        // SAFETY: `groups` is a writable buffer of `len` bytes for the call; the kernel
        // writes at most `len` bytes and says how many in `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / std::mem::size_of::<u32>();
        if rc == 0 {
            groups.truncate(needed);
            return groups;
        }
        // ERANGE: the kernel says how large a buffer it needs.
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE)
            && needed > groups.len()
        {
            groups.resize(needed, 0);
            continue;
        }
        return Vec::new();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;

    fn peer(uid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            pid: 1,
            groups: groups.to_vec(),
        }
    }

    const POLICY: Policy = Policy {
        owner: 0,
        admin: Some(900),
        readers: Vec::new(),
    };

    #[test]
    fn the_admin_group_is_found_in_a_group_file_by_its_whole_name() {
        let file = "root:x:0:\nsupervisors:x:998:\nsup:x:999:alice,bob\nbroken\n";
        assert_eq!(gid_in(file, "sup"), Some(999));
        assert_eq!(gid_in(file, "supervisors"), Some(998));
        assert_eq!(gid_in(file, "su"), None);
        assert_eq!(gid_in("sup:x:notanumber:\n", "sup"), None);
        assert_eq!(gid_in("", "sup"), None);
    }

    #[test]
    fn root_the_owner_and_group_sup_do_everything() {
        let policy = Policy {
            owner: 1000,
            ..POLICY
        };
        let stop = Command::Shutdown;
        assert!(policy.check(&peer(0, &[0]), &stop).is_ok());
        assert!(policy.check(&peer(1000, &[1000]), &stop).is_ok());
        assert!(policy.check(&peer(1001, &[1001, 900]), &stop).is_ok());
        let err = policy.check(&peer(1002, &[1002]), &stop).unwrap_err();
        assert_eq!(
            err,
            "permission denied: uid 1002 is not root, nor supd's user, nor in group sup"
        );
        let err = policy
            .check(&peer(1002, &[1002]), &Command::Status { app: None })
            .unwrap_err();
        assert!(err.starts_with("permission denied"), "{err}");
    }

    #[test]
    fn readers_may_only_read() {
        let policy = Policy {
            readers: vec![4],
            ..POLICY
        };
        let reader = peer(1003, &[1003, 4]);
        assert_eq!(policy.access(&reader), Access::ReadOnly);
        for cmd in [
            Command::Status { app: None },
            Command::Health,
            Command::Diff { config: None },
        ] {
            assert!(policy.check(&reader, &cmd).is_ok(), "{cmd:?}");
        }
        for cmd in [Command::Shutdown, Command::Reexec, Command::Reopen] {
            let err = policy.check(&reader, &cmd).unwrap_err();
            assert!(err.contains("may only read"), "{err}");
        }
        // No group sup on this machine: only root and the owner do everything.
        let policy = Policy {
            admin: None,
            ..policy
        };
        assert_eq!(policy.access(&peer(1001, &[900])), Access::None);
    }

    #[test]
    fn the_kernel_tells_who_is_on_the_other_end() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let me = peer_of(&a).unwrap();
        assert_eq!(me.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(me.groups.contains(&nix::unistd::getegid().as_raw()));
    }
}
