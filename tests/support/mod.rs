//! Test support: a sandbox directory, a supd guard whose `Drop` really kills, a supctl
//! runner, and ONE poller (`wait_until`) — tests wait on facts, never on time.

#![allow(dead_code)]

pub mod load;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const SUPD: &str = env!("CARGO_BIN_EXE_supd");
pub const SUPCTL: &str = env!("CARGO_BIN_EXE_supctl");

/// The testkit helper program, built by cargo with the examples.
pub fn testkit() -> String {
    let bin = Path::new(SUPD).parent().expect("target dir");
    bin.join("examples/testkit").display().to_string()
}

/// Poll `probe` until it returns `Some`, or panic after `timeout` naming `what`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(5)); // the poll interval
    }
}

/// A short temp directory (a socket path must fit in 107 bytes), removed on drop.
pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/supt-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("sandbox dir");
        Sandbox { dir }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("s.sock")
    }

    pub fn log(&self, app: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{app}.log"))
    }

    /// Write `ecosystem.toml`: a `[supervisor]` table pointing into the sandbox, then `apps`.
    pub fn config(&self, apps: &str) -> PathBuf {
        let text = format!(
            "[supervisor]\nsocket = \"{}\"\nlog_dir = \"{}\"\nshutdown_timeout = \"10s\"\n\n{apps}",
            self.socket().display(),
            self.dir.join("logs").display()
        );
        self.write("ecosystem.toml", &text)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, text).expect("write file");
        path
    }

    /// Start supd on `config`, wait until its socket answers.
    pub fn start(&self, config: &Path) -> Daemon {
        let daemon = self.spawn_supd(&["-c", config.to_str().expect("utf-8 path")]);
        wait_until(
            Duration::from_secs(10),
            "supd to answer on its socket",
            || {
                daemon.assert_running();
                let out = daemon.supctl(&["status"]);
                out.status.success().then_some(())
            },
        );
        daemon
    }

    /// Spawn supd with `args` without waiting for anything.
    pub fn spawn_supd(&self, args: &[&str]) -> Daemon {
        self.spawn_supd_env(args, &[])
    }

    /// [`Sandbox::spawn_supd`] with extra environment variables.
    pub fn spawn_supd_env(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        self.spawn_binary(Path::new(SUPD), args, env)
    }

    /// [`Sandbox::spawn_supd_env`] running the supd binary at `program` (a copy).
    pub fn spawn_binary(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let stderr = fs::File::create(self.dir.join("supd.err")).expect("stderr file");
        let stdout = fs::File::create(self.dir.join("supd.out")).expect("stdout file");
        let command = || {
            Command::new(program)
                .args(args)
                .envs(env.iter().copied())
                .env("RUST_LOG", "debug")
                .stdin(Stdio::null())
                .stdout(stdout.try_clone().expect("stdout file"))
                .stderr(stderr.try_clone().expect("stderr file"))
                .spawn()
        };
        // A copy just written may still be open for writing in a child another test
        // thread forked meanwhile, until that child execs: ETXTBSY for that moment.
        let child = wait_until(Duration::from_secs(5), "supd to spawn", || {
            match command() {
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32) => None,
                spawned => Some(spawned.expect("spawn supd")),
            }
        });
        Daemon {
            child: Some(child),
            socket: self.socket(),
            stderr: self.dir.join("supd.err"),
        }
    }

    pub fn read_log(&self, app: &str) -> String {
        fs::read_to_string(self.log(app)).unwrap_or_default()
    }

    /// Wait up to `timeout` until the last 4 KiB of `app`'s log contain `needle`: for a
    /// big log, which reading whole every poll would slow down (and the machine with it).
    pub fn wait_log_end(&self, app: &str, needle: &str, timeout: Duration) -> String {
        use std::io::{Read, Seek, SeekFrom};
        wait_until(
            timeout,
            &format!("`{needle}` at the end of {app}.log"),
            || {
                let mut file = fs::File::open(self.log(app)).ok()?;
                let len = file.metadata().ok()?.len();
                file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
                let mut end = Vec::new();
                file.read_to_end(&mut end).ok()?;
                let end = String::from_utf8_lossy(&end);
                end.lines().find(|l| l.contains(needle)).map(str::to_string)
            },
        )
    }

    /// Wait until `app`'s log has a line containing `needle`; return that line.
    pub fn wait_log(&self, app: &str, needle: &str) -> String {
        wait_until(
            Duration::from_secs(10),
            &format!("`{needle}` in {app}.log"),
            || {
                self.read_log(app)
                    .lines()
                    .find(|l| l.contains(needle))
                    .map(str::to_string)
            },
        )
    }

    /// Every pid the testkit reported in `app`'s log for lines containing `needle`.
    pub fn pids(&self, app: &str, needle: &str) -> Vec<i32> {
        self.read_log(app)
            .lines()
            .filter(|l| l.contains(needle))
            .filter_map(|l| {
                let at = l.find("pid=")? + 4;
                l[at..].split(' ').next()?.parse().ok()
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A running supd. Dropping it sends SIGTERM, then SIGKILL if it lingers, and reaps it.
pub struct Daemon {
    pub child: Option<Child>,
    pub socket: PathBuf,
    pub stderr: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn supctl(&self, args: &[&str]) -> Output {
        supctl(&self.socket, args)
    }

    /// `supctl --json ARGS`, which must succeed; its stdout parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.supctl(&all);
        assert!(
            out.status.success(),
            "supctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("supctl --json prints JSON")
    }

    /// The status row of `app:index`.
    pub fn instance(&self, app: &str, index: usize) -> Value {
        let status = self.json(&["status"]);
        let apps = status["apps"].as_array().expect("apps");
        let app = apps
            .iter()
            .find(|a| a["name"] == app)
            .expect("app in status");
        app["instances"][index].clone()
    }

    /// Wait until `app:index` satisfies `pred`; return its row.
    pub fn wait_instance(
        &self,
        app: &str,
        index: usize,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_until(
            Duration::from_secs(10),
            &format!("{app}:{index} {what}"),
            || {
                self.assert_running();
                let row = self.instance(app, index);
                pred(&row).then_some(row)
            },
        )
    }

    pub fn assert_running(&self) {
        let pid = self.pid();
        // Not reaped yet and not a zombie.
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        assert!(
            !matches!(state, None | Some("Z")),
            "supd died; its stderr:\n{}",
            self.stderr_text()
        );
    }

    /// Wait until supd's own log (stderr, written by a background thread) has `needle`.
    pub fn wait_stderr(&self, needle: &str) {
        wait_until(
            Duration::from_secs(10),
            &format!("`{needle}` in supd's log"),
            || self.stderr_text().contains(needle).then_some(()),
        );
    }

    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Wait for supd to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut().expect("running");
        let status = wait_until(timeout, "supd to exit", || {
            child.try_wait().expect("try_wait")
        });
        self.child = None;
        status.code()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .expect("signal supd");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10)); // poll for the exit
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Run supctl against `socket`.
pub fn supctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(SUPCTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("SUP_SOCKET")
        .output()
        .expect("run supctl")
}

/// Whether `pid` no longer exists (ESRCH), as opposed to alive or a zombie not yet reaped.
pub fn gone(pid: i32) -> bool {
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// One `[[app]]` running the testkit in `mode` with extra TOML lines.
pub fn kit_app(name: &str, args: &[&str], extra: &str) -> String {
    let mut cmd = vec![toml_str(&testkit())];
    cmd.extend(args.iter().map(|a| toml_str(a)));
    format!(
        "[[app]]\nname = \"{name}\"\ncmd = [{}]\n{extra}\n",
        cmd.join(", ")
    )
}

/// `text` as a TOML basic string, so backslashes and quotes reach the program as written.
pub fn toml_str(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The path of `program` on `PATH`, if it is installed.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
