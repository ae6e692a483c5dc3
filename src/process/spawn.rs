//! Spawning one instance (clone + exec), by hand rather than with `std::process::Command`.
//!
//! Why not `Command`: when exec fails, std waits for the failed child itself, racing
//! supd's single `waitpid(-1)` reaper (and panicking when the reaper wins). Doing the
//! clone ourselves also lets the child report *which* step failed.
//!
//! Everything the child needs (C strings, pointer arrays, group list, fds) is prepared
//! before the clone, because between it and `exec` a child of a multi-threaded process
//! may only make async-signal-safe calls: no allocation, no locks. The child therefore
//! uses raw `libc` calls, each with a `// SAFETY:` note.
//!
//! The child is made with `clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn` does, not
//! with `fork`: it borrows supd's memory until it execs instead of copying its page
//! tables. A `fork` copies every page table entry of supd, makes supd take a
//! copy-on-write fault for each page it writes next, and tears the copy down at exec; all
//! of that grows with supd's memory, which grows with the instances. supd's
//! thread waits only until the child has exec'd (or failed), which takes microseconds.
//! The child writes `(step, errno)` to a CLOEXEC pipe if a step fails; by the time
//! `clone` returns, that pipe holds the answer, so no fd is kept per instance for it.
//! The child shares supd's fd table too and copies only its lowest fds, where
//! `process::staging` has put the ones it inherits: copying all of them made a spawn's
//! cost grow with the number of instances.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::fcntl::OFlag;
use nix::unistd::{Gid, Group, Uid, User};

use super::spec::SpawnSpec;

/// A started child.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid, which is also its process group id.
    pub pid: i32,
    /// Read end of its stdout.
    pub stdout: OwnedFd,
    /// Read end of its stderr.
    pub stderr: OwnedFd,
    /// The step that failed and the OS error, if the child never reached its program;
    /// it has exited then, and is reported when the reaper finds it.
    pub exec_error: Option<String>,
}

/// A spawn that failed before the child could exec.
#[derive(Debug, thiserror::Error)]
#[error("{label}: {stage}: {source}")]
pub struct SpawnError {
    /// `app:index`.
    pub label: String,
    /// The step that failed: `command not found`, `user`, `pipe`, `fork`, `exec`...
    pub stage: String,
    /// The OS error.
    pub source: io::Error,
}

/// The steps the child can fail at, as written to the exec-status pipe.
const STAGES: [&str; 7] = [
    "setsid",
    "stdio",
    "chdir",
    "setgroups",
    "setgid/setuid",
    "exec",
    "listen fds",
];

/// The most listening sockets passed to one child (see `config::listen::MAX_LISTEN`).
pub(super) const MAX_LISTEN_FDS: usize = crate::config::listen::MAX_LISTEN;

/// Fork and exec `spec`. The child leads a new session (and process group), gets
/// `/dev/null` as stdin and pipes as stdout/stderr, dies with SIGKILL if supd's spawning
/// thread dies, and inherits no other fd.
pub fn spawn(spec: &SpawnSpec) -> Result<Spawned, SpawnError> {
    let fail = |stage: &str, source: io::Error| SpawnError {
        label: spec.label.clone(),
        stage: stage.to_string(),
        source,
    };
    let program = resolve_program(spec).map_err(|e| fail("command not found", e))?;
    let creds = match &spec.user {
        Some(user) => Some(credentials(user, spec.group.as_deref()).map_err(|e| fail("user", e))?),
        None => match &spec.group {
            Some(group) => Some(group_only(group).map_err(|e| fail("group", e))?),
            None => None,
        },
    };
    if spec.listen_fds.len() > MAX_LISTEN_FDS {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "too many listening sockets");
        return Err(fail("listen fds", e));
    }
    // What spawn itself adds to the spec's environment; the spec's map is read, not
    // copied (a spawn's cost was mostly copies of the environment).
    let mut extra: Vec<(&str, String)> = Vec::new();
    if !spec.listen_fds.is_empty() {
        extra.push(("LISTEN_FDS", spec.listen_fds.len().to_string()));
    }
    if let Some(c) = creds.as_ref().and_then(|c| c.user.as_ref()) {
        // What login(1) and systemd's User= set; an app's own env wins.
        for (key, value) in [
            ("USER", &c.name),
            ("LOGNAME", &c.name),
            ("HOME", &c.home.to_string_lossy().into_owned()),
        ] {
            if !spec.env.contains_key(key) {
                extra.push((key, value.clone()));
            }
        }
    }
    let replaced = |key: &str| {
        // LISTEN_PID is added below: only the child knows its pid.
        extra.iter().any(|(k, _)| *k == key) || (!spec.listen_fds.is_empty() && key == "LISTEN_PID")
    };

    let path = cstring(program.as_os_str().as_bytes()).map_err(|e| fail("exec", e))?;
    let argv = spec
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| fail("exec", e))?;
    let envp = spec
        .env
        .iter()
        .filter(|(k, _)| !replaced(k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .map(|(k, v)| {
            let mut pair = Vec::with_capacity(k.len() + v.len() + 2);
            pair.extend_from_slice(k.as_bytes());
            pair.push(b'=');
            pair.extend_from_slice(v.as_bytes());
            cstring_vec(pair)
        })
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| fail("exec", e))?;
    let cwd = cstring(spec.cwd.as_os_str().as_bytes()).map_err(|e| fail("chdir", e))?;
    let argv_ptrs = null_terminated(&argv);
    let mut envp_ptrs = null_terminated(&envp);
    // `LISTEN_PID=` and room for the digits the child writes (sd_listen_fds checks that it
    // names the process itself).
    let mut listen_pid = b"LISTEN_PID=".to_vec();
    let digits_at = listen_pid.len();
    listen_pid.resize(digits_at + 12, 0);
    if !spec.listen_fds.is_empty() {
        let at = envp_ptrs.len() - 1;
        envp_ptrs.insert(at, listen_pid.as_ptr().cast());
    }

    let devnull = File::open("/dev/null").map_err(|e| fail("stdin", e))?;
    let (out_r, out_w) = pipe().map_err(|e| fail("pipe", e))?;
    let (err_r, err_w) = pipe().map_err(|e| fail("pipe", e))?;
    let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(|e| fail("pipe", e.into()))?;
    let parent = nix::unistd::getpid().as_raw();

    // What the child inherits, on low slots if there are any (see `super::staging`).
    let mut inherit = vec![
        devnull.as_raw_fd(),
        out_w.as_raw_fd(),
        err_w.as_raw_fd(),
        status_w.as_raw_fd(),
    ];
    inherit.extend_from_slice(&spec.listen_fds);
    let staged = super::staging::stage(&inherit);
    let fds = staged
        .as_ref()
        .map_or(&inherit[..], |s| &s.fds[..inherit.len()]);
    let child = ChildPlan {
        path: &path,
        argv: &argv_ptrs,
        envp: &envp_ptrs,
        cwd: &cwd,
        stdin: fds[0],
        stdout: fds[1],
        stderr: fds[2],
        status: fds[3],
        unshare_below: staged.as_ref().map(super::staging::Staged::below),
        parent,
        creds: creds.as_ref(),
        listen: &fds[4..],
        // SAFETY: in bounds: the buffer has 12 bytes after `digits_at`.
        listen_pid: unsafe { listen_pid.as_mut_ptr().add(digits_at) },
        reset: signals_to_reset(),
    };
    let pid = match clone_vfork(&child) {
        // A sandbox (seccomp, valgrind) may refuse to share the fd table: copy it then,
        // from now on. The staged fds are valid in a full copy too.
        Err(e)
            if child.unshare_below.is_some()
                && matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EPERM)) =>
        {
            super::staging::refused();
            clone_vfork(&ChildPlan {
                unshare_below: None,
                ..child
            })
        }
        other => other,
    }
    .map_err(|e| fail("fork", e))?;
    drop(staged);
    // The child has exec'd or exited: whatever it reported is in the pipe already (its
    // write end is non-blocking, the read end too).
    let exec_error = read_exec_error(&status_r);
    drop(status_w);
    Ok(Spawned {
        pid,
        stdout: out_r,
        stderr: err_r,
        exec_error,
    })
    // The write ends (and /dev/null) drop here in the parent, so EOF on the pipes means
    // the child's side is closed.
}

/// Bytes of stack for the child until it execs: `ChildPlan::exec` needs well under 4 KiB.
const CHILD_STACK: usize = 64 * 1024;

/// Start the child of `plan` sharing supd's memory; returns its pid once it has exec'd or
/// exited.
fn clone_vfork(plan: &ChildPlan<'_>) -> io::Result<i32> {
    extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the `ChildPlan` borrowed by `clone_vfork`, which (with supd's
        // thread suspended by CLONE_VFORK) outlives the child's use of it.
        let plan = unsafe { &*(arg as *const ChildPlan<'_>) };
        plan.exec()
    }
    // Not zeroed: a stack needs no initial contents.
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // SAFETY: one past the end of the allocation, which is where a downward stack starts.
    let top = unsafe { stack.as_mut_ptr().add(CHILD_STACK) };
    // The stack must be 16-byte aligned for the x86-64 and aarch64 ABIs.
    let top = (top as usize & !15) as *mut libc::c_void;
    // Every signal stays blocked until the child has reset supd's handlers to the default
    // (see `ChildPlan::exec`): a handler running in the child would write supd's memory.
    // SAFETY: plain sigset manipulation on local values.
    let saved = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut saved: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut saved);
        saved
    };
    // SAFETY: the child runs `child_main` on its own stack and only makes the
    // async-signal-safe calls of `ChildPlan::exec`, on memory prepared before the call;
    // CLONE_VFORK suspends this thread until it has exec'd or exited, so neither the
    // stack nor the plan is dropped while it uses them.
    let pid = unsafe {
        libc::clone(
            child_main,
            top,
            libc::CLONE_VM
                | libc::CLONE_VFORK
                | libc::SIGCHLD
                | if plan.unshare_below.is_some() {
                    libc::CLONE_FILES
                } else {
                    0
                },
            plan as *const ChildPlan<'_> as *mut libc::c_void,
        )
    };
    let error = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut());
    }
    drop(stack);
    if pid < 0 {
        return Err(error);
    }
    Ok(pid)
}

/// The step that failed and its OS error, as the child wrote them to the exec-status
/// pipe, or `None` if it wrote nothing (it reached exec).
fn read_exec_error(exec_status: &OwnedFd) -> Option<String> {
    let mut buf = [0u8; 8];
    match nix::unistd::read(exec_status, &mut buf) {
        Ok(8) => {
            let stage = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
            let stage = STAGES.get(stage).copied().unwrap_or("exec");
            Some(format!("{stage}: {}", io::Error::from_raw_os_error(errno)))
        }
        _ => None,
    }
}

/// Resolved identity for a child that changes user or group.
#[derive(Debug)]
struct Credentials {
    user: Option<UserInfo>,
    gid: Gid,
    groups: Vec<Gid>,
}

#[derive(Debug)]
struct UserInfo {
    name: String,
    uid: Uid,
    home: PathBuf,
}

/// `user` (name or uid) and optional `group`: the uid, primary gid, and the supplementary
/// groups of the user (initgroups), resolved before fork because NSS lookups allocate.
fn credentials(user: &str, group: Option<&str>) -> io::Result<Credentials> {
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid))?,
        Err(_) => User::from_name(user)?,
    };
    let found = found.ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("no user named `{user}`"))
    })?;
    let gid = match group {
        Some(g) => lookup_group(g)?,
        None => found.gid,
    };
    let cname = cstring(found.name.as_bytes())?;
    let mut groups = nix::unistd::getgrouplist(&cname, gid)?;
    if !groups.contains(&gid) {
        groups.push(gid);
    }
    Ok(Credentials {
        user: Some(UserInfo {
            name: found.name,
            uid: found.uid,
            home: found.dir,
        }),
        gid,
        groups,
    })
}

fn group_only(group: &str) -> io::Result<Credentials> {
    let gid = lookup_group(group)?;
    Ok(Credentials {
        user: None,
        gid,
        groups: vec![gid],
    })
}

fn lookup_group(group: &str) -> io::Result<Gid> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(Gid::from_raw(gid));
    }
    Group::from_name(group)?
        .map(|g| g.gid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no group named `{group}`")))
}

/// `argv[0]` as a path: as given when it contains a `/` (relative to the child's cwd),
/// else the first executable match in the child's `PATH`.
fn resolve_program(spec: &SpawnSpec) -> io::Result<PathBuf> {
    let Some(name) = spec.argv.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty cmd"));
    };
    if name.contains('/') {
        let path = Path::new(name);
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            spec.cwd.join(path)
        };
        // Checked here for a clear error; exec reports anything that changes meanwhile.
        std::fs::metadata(&full)?;
        return Ok(full);
    }
    let search = spec
        .env
        .get("PATH")
        .map(String::as_str)
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in search.split(':').filter(|d| !d.is_empty()) {
        let dir = Path::new(dir);
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            spec.cwd.join(dir)
        };
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("`{name}` is not in PATH ({search})"),
    ))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    cstring_vec(bytes.to_vec())
}

/// `bytes` as a C string, without a copy.
fn cstring_vec(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "contains a NUL byte: {:?}",
                OsStr::from_bytes(&e.into_vec())
            ),
        )
    })
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// Everything the child uses between fork and exec, borrowed from the parent's memory.
struct ChildPlan<'a> {
    path: &'a CString,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    cwd: &'a CString,
    stdin: i32,
    stdout: i32,
    stderr: i32,
    status: i32,
    /// Set when the child starts on supd's own fd table (`CLONE_FILES`): it first makes
    /// a private copy of the fds under this, which hold everything it needs.
    unshare_below: Option<i32>,
    parent: i32,
    creds: Option<&'a Credentials>,
    /// Listening sockets for fds 3, 4, ...
    listen: &'a [i32],
    /// Where the child writes its pid, NUL-terminated, after `LISTEN_PID=`.
    listen_pid: *mut u8,
    /// The signals to set back to their default action ([`signals_to_reset`]).
    reset: &'a [libc::c_int],
}

/// The signals a child sets back to the default before it unblocks signals: those with a
/// handler of supd's, which would run in the child on supd's memory (a signal-hook
/// handler would tell supd's event loop of a signal supd never got), and SIGPIPE if it is
/// ignored (Rust ignores it; programs expect the default). Other ignored signals stay
/// ignored, as exec keeps them.
///
/// Read once, at the first spawn: supd installs all its handlers before it
/// (`runtime::run`). Asking about every signal in each child cost 64 system calls of the
/// time supd waits for the child to exec. Debug builds check at every spawn that no
/// handler came later.
fn signals_to_reset() -> &'static [libc::c_int] {
    static SET: OnceLock<Vec<libc::c_int>> = OnceLock::new();
    let set = SET.get_or_init(read_signals_to_reset);
    debug_assert_eq!(
        *set,
        read_signals_to_reset(),
        "a signal handler was installed after the first spawn"
    );
    set
}

fn read_signals_to_reset() -> Vec<libc::c_int> {
    (1..=libc::SIGRTMAX())
        .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
        .filter(|&sig| {
            // SAFETY: a query only (no new action); `action` is a valid out-pointer.
            let handler = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                (libc::sigaction(sig, std::ptr::null(), &mut action) == 0)
                    .then_some(action.sa_sigaction)
            };
            match handler {
                Some(libc::SIG_DFL) | None => false,
                Some(libc::SIG_IGN) => sig == libc::SIGPIPE,
                Some(_) => true,
            }
        })
        .collect()
}

impl ChildPlan<'_> {
    /// Runs in the child: set up and exec, or report the failed step and `_exit(127)`.
    fn exec(&self) -> ! {
        // SAFETY: async-signal-safe calls only (setsid, prctl, getppid, sigaction,
        // sigprocmask, dup2, chdir, setgroups, setgid, setuid, syscall, execve, write,
        // _exit), on memory the parent prepared and keeps until the child has exec'd. The
        // child shares that memory, so it writes nothing of supd's but `listen_pid`'s
        // buffer and errno (whose thread waits meanwhile).
        unsafe {
            if let Some(below) = self.unshare_below {
                // Before anything that changes an fd: until then the table is supd's.
                // Kernels before 5.9 lack close_range; unshare copies the whole table.
                if libc::syscall(
                    libc::SYS_close_range,
                    below as libc::c_uint,
                    libc::c_uint::MAX,
                    libc::CLOSE_RANGE_UNSHARE,
                ) < 0
                    && libc::syscall(libc::SYS_unshare, libc::CLONE_FILES) < 0
                {
                    self.fail(1);
                }
            }
            if libc::setsid() < 0 {
                self.fail(0);
            }
            // If supd dies, its instances die too instead of running unsupervised. The
            // signal fires when the forking *thread* exits, which is supd's main thread.
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != self.parent {
                // supd died between fork and prctl: the death signal will never come.
                libc::_exit(1);
            }
            // supd's handlers would run on supd's memory: back to the default before any
            // signal is unblocked (exec would reset them too, but only at exec).
            for &sig in self.reset {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
            // tokio may block signals (and `clone_vfork` blocked all); children expect none.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if libc::dup2(self.stdin, 0) < 0
                || libc::dup2(self.stdout, 1) < 0
                || libc::dup2(self.stderr, 2) < 0
            {
                self.fail(1);
            }
            // The listening sockets become fds 3, 4, ...: first everything they could
            // collide with (the sockets themselves, the exec-status pipe) moves above.
            let n = self.listen.len();
            let first_free = (3 + n) as libc::c_int;
            let mut status = self.status;
            if n > 0 {
                status = libc::fcntl(self.status, libc::F_DUPFD_CLOEXEC, first_free);
                if status < 0 {
                    self.fail(6);
                }
                let mut moved = [0 as libc::c_int; MAX_LISTEN_FDS];
                for (i, &fd) in self.listen.iter().enumerate() {
                    moved[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, first_free);
                    if moved[i] < 0 {
                        report(status, 6);
                    }
                }
                for (i, &fd) in moved[..n].iter().enumerate() {
                    // dup2 clears close-on-exec on the new fd: these are inherited.
                    if libc::dup2(fd, 3 + i as libc::c_int) < 0 {
                        report(status, 6);
                    }
                }
                write_decimal(self.listen_pid, libc::syscall(libc::SYS_getpid) as u32);
            }
            if libc::chdir(self.cwd.as_ptr()) < 0 {
                report(status, 2);
            }
            if let Some(creds) = self.creds {
                // setgroups and setgid first: after setuid we no longer may. Raw system
                // calls: glibc's wrappers would change the credentials of every thread of
                // supd (whose memory, thread list included, the child shares).
                let groups: &[Gid] = &creds.groups;
                if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) < 0 {
                    report(status, 3);
                }
                if libc::syscall(libc::SYS_setgid, creds.gid.as_raw()) < 0 {
                    report(status, 4);
                }
                if let Some(user) = &creds.user {
                    if libc::syscall(libc::SYS_setuid, user.uid.as_raw()) < 0 {
                        report(status, 4);
                    }
                }
            }
            // Belt and braces over O_CLOEXEC everywhere: nothing but 0, 1, 2 (and the
            // listening sockets) reaches the app even if some library opened an fd without
            // the flag. Errors are ignored: kernels before 5.11 lack the flag, and
            // everything of ours is CLOEXEC anyway.
            libc::syscall(
                libc::SYS_close_range,
                first_free as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
            report(status, 5)
        }
    }

    /// Report step `stage` with the current errno to the parent and exit.
    fn fail(&self, stage: u32) -> ! {
        report(self.status, stage)
    }
}

/// Write step `stage` and the current errno to the exec-status pipe `status`, then exit.
/// Runs in the child.
fn report(status: i32, stage: u32) -> ! {
    // SAFETY: errno location, write and _exit are async-signal-safe; the buffer is on
    // the stack.
    unsafe {
        let errno = *libc::__errno_location();
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&stage.to_ne_bytes());
        buf[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(status, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

/// Write `n` in decimal at `at`, then a NUL: no allocation, so it may run in the child.
///
/// # Safety
/// `at` must point to at least 11 writable bytes.
unsafe fn write_decimal(at: *mut u8, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        // SAFETY: i < len <= 10, within the caller's 11 bytes.
        unsafe { *at.add(i) = digits[len - 1 - i] };
    }
    // SAFETY: len <= 10, so this is the 11th byte at most.
    unsafe { *at.add(len) = 0 };
}
