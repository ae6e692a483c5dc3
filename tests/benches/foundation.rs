//! Foundation benchmarks: how fast and how small the real `supd` and `supctl` are.
//!
//! Run everything with one command (it first runs `cargo build --release --bins
//! --examples` itself, so `target/release/{supd,supctl}` and
//! `target/release/examples/testkit` are fresh):
//!
//! ```sh
//! cargo bench --bench foundation
//! ```
//!
//! Each scenario starts a fresh `supd` in its own short temp dir under `/tmp` (socket,
//! logs and `ecosystem.toml` live there) and supervises `testkit sleep` children. A child
//! counts as running once `/proc/<pid>/exe` is the testkit binary, i.e. once it has
//! exec'd (before that it is a copy of supd). Children are read from supd's
//! `/proc/<supd>/task/<supd>/children` (supd forks on its main thread).
//!
//! | scenario   | what it measures                                                      |
//! |------------|-----------------------------------------------------------------------|
//! | `restart`  | SIGKILL the only child, busy-poll (yielding) until a new one has exec'd; 30 rounds |
//! | `start100` | spawn supd until 100 children have exec'd; 5 repetitions              |
//! | `status`   | `supctl --json status` with 100 instances (whole process), and the raw socket round trip |
//! | `idle`     | 10 children, 10 s window: supd's RSS, CPU and threads                 |
//! | `shutdown` | 100 children: `supctl shutdown` until every child and supd are gone   |
//! | `stubborn` | 10 children ignoring SIGTERM, `kill_timeout = "1s"`: shutdown until gone |
//!
//! Nothing is asserted on time: it prints one line per scenario, then a table against the
//! best of PM2, supervisord, circus, s6 and Horust, measured with the same scenarios on a
//! 2-core VM (ratio = sup / peer, lower is better). Every supd is stopped (SIGTERM, then
//! SIGKILL) and every temp dir removed, even on error. Keep the machine otherwise quiet
//! while it runs.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

type Res<T> = Result<T, String>;
/// A scenario: runs against the binaries, returns its figures.
type Scenario = fn(&Bins) -> Res<Figures>;

const RESTART_ROUNDS: usize = 30;
const START_REPS: usize = 5;
const STATUS_CALLS: usize = 50;
const SHUTDOWN_REPS: usize = 3;
const STUBBORN_REPS: usize = 3;
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// How long any wait for supd or its children may take before the scenario fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// Poll interval where a busy poll would steal the CPU supd needs (2-core machines).
const POLL: Duration = Duration::from_micros(200);

fn main() -> ExitCode {
    let bins = match Bins::build() {
        Ok(bins) => bins,
        Err(e) => {
            eprintln!("foundation: {e}");
            eprintln!("foundation: run `cargo build --release --bins --examples` first");
            return ExitCode::FAILURE;
        }
    };
    let scenarios: [(&str, Scenario); 6] = [
        ("restart", restart),
        ("start100", start100),
        ("status", status),
        ("idle", idle),
        ("shutdown", shutdown),
        ("stubborn", stubborn),
    ];
    let mut all = Vec::new();
    let mut failed = false;
    for (name, run) in scenarios {
        eprintln!("foundation: {name} ...");
        match run(&bins) {
            Ok(figures) => {
                println!("{name} {}", figures.line());
                all.push(figures);
            }
            Err(e) => {
                println!("{name} status=error reason={e:?}");
                failed = true;
            }
        }
    }
    print_comparison(&all);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

// ---------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------

/// The release binaries the scenarios run.
struct Bins {
    supd: PathBuf,
    supctl: PathBuf,
    testkit: PathBuf,
}

impl Bins {
    /// Build `--release --bins --examples` with the cargo that runs us, then find them.
    fn build() -> Res<Bins> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--bins",
                "--examples",
                "--manifest-path",
            ])
            .arg(&manifest)
            .status()
            .map_err(|e| format!("cannot run cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build failed ({status})"));
        }
        let release = Path::new(env!("CARGO_BIN_EXE_supd"))
            .parent()
            .ok_or("no target dir")?
            .to_path_buf();
        let bins = Bins {
            supd: release.join("supd"),
            supctl: release.join("supctl"),
            testkit: release.join("examples/testkit"),
        };
        for bin in [&bins.supd, &bins.supctl, &bins.testkit] {
            if !bin.is_file() {
                return Err(format!("{} is missing", bin.display()));
            }
        }
        Ok(bins)
    }
}

// ---------------------------------------------------------------------------------------
// A supd in its own temp dir
// ---------------------------------------------------------------------------------------

/// A short temp dir (a socket path must fit in 107 bytes), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Res<TempDir> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/supb-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A running supd. Dropping it sends SIGTERM, then SIGKILL if it lingers, reaps it, and
/// removes its temp dir (fields drop after `drop`).
struct Daemon {
    child: Child,
    pid: Pid,
    socket: PathBuf,
    started: Instant,
    dir: TempDir,
}

impl Daemon {
    /// Write a config with `apps` (TOML `[[app]]` tables) into a fresh temp dir and spawn
    /// supd on it. Returns at once; `started` is taken just before the spawn.
    fn spawn(bins: &Bins, apps: &str) -> Res<Daemon> {
        let dir = TempDir::new()?;
        let socket = dir.0.join("s.sock");
        let config = dir.0.join("ecosystem.toml");
        let text = format!(
            "[supervisor]\nsocket = {:?}\nlog_dir = {:?}\n\n{apps}",
            socket.display().to_string(),
            dir.0.join("logs").display().to_string()
        );
        fs::write(&config, text).map_err(|e| format!("write config: {e}"))?;
        let stderr = fs::File::create(dir.0.join("supd.err")).map_err(|e| e.to_string())?;
        let mut command = Command::new(&bins.supd);
        command
            .arg("-c")
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
        // which is async-signal-safe; it allocates nothing and takes no lock. It makes supd
        // die with this process even if it aborts before any Drop runs.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let started = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bins.supd.display()))?;
        let pid = Pid::from_raw(child.id() as i32);
        Ok(Daemon {
            child,
            pid,
            socket,
            started,
            dir,
        })
    }

    /// supd's stderr, for error messages.
    fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.0.join("supd.err")).unwrap_or_default();
        let start = text.len().saturating_sub(400);
        text.get(start..).unwrap_or("").trim().to_string()
    }

    /// Fail if supd has exited.
    fn check_alive(&mut self) -> Res<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("supd exited ({status}): {}", self.stderr_tail())),
            Err(e) => Err(format!("wait supd: {e}")),
        }
    }

    /// Has supd exited (reaping it if so)?
    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The pids of supd's children that run the testkit (have exec'd), in file order.
    fn running(&self, testkit: &Path) -> Vec<i32> {
        children(self.pid)
            .into_iter()
            .filter(|&pid| runs(pid, testkit))
            .collect()
    }

    /// Poll until `n` children run the testkit; returns their pids.
    fn wait_running(&mut self, n: usize, testkit: &Path) -> Res<Vec<i32>> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let pids = self.running(testkit);
            if pids.len() >= n {
                return Ok(pids);
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {n} children after {PATIENCE:?}",
                    pids.len()
                ));
            }
            sleep(Duration::from_millis(1));
        }
    }

    /// `supctl --socket S ARGS`, spawned (not waited for).
    fn supctl(&self, bins: &Bins, args: &[&str]) -> Res<Child> {
        Command::new(&bins.supctl)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn supctl: {e}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = kill(self.pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------------------

/// The children of supd's main thread (where it forks), from /proc.
fn children(supd: Pid) -> Vec<i32> {
    let path = format!("/proc/{supd}/task/{supd}/children");
    fs::read_to_string(path)
        .unwrap_or_default()
        .split_ascii_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Does `pid` run `exe` (has it exec'd)? A zombie or a vanished pid does not.
fn runs(pid: i32, exe: &Path) -> bool {
    fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe)
}

/// Does `pid` still exist (zombies included: they are gone once supd reaps them)?
fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None) != Err(Errno::ESRCH)
}

/// One `Key:  value kB` field of /proc/PID/status, as a number.
fn status_field(pid: Pid, key: &str) -> Res<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
}

/// Does `pid` ignore SIGTERM yet (bit 15 of SigIgn)?
fn ignores_term(pid: i32) -> bool {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
}

/// utime + stime of the whole process, in clock ticks.
fn cpu_ticks(pid: Pid) -> Res<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // Fields after the last ')' start at field 3 (state); utime is 14, stime 15.
    let rest = stat.rsplit_once(')').ok_or("bad /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    match (field(14), field(15)) {
        (Some(utime), Some(stime)) => Ok(utime + stime),
        _ => Err("bad /proc/PID/stat".into()),
    }
}

/// Time on CPU of every thread, in ns (first field of each task's schedstat).
fn cpu_ns(pid: Pid) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn ms_per_tick() -> f64 {
    // SAFETY: sysconf only reads a configuration value; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        1000.0 / ticks as f64
    } else {
        10.0
    }
}

fn threads(pid: Pid) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

// ---------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------

/// A scenario's result: `key=value` pairs for its line, and the rows it adds to the
/// comparison table.
struct Figures {
    pairs: Vec<(&'static str, String)>,
    rows: Vec<Row>,
}

/// One comparison row: our figure against the best peer's.
struct Row {
    what: &'static str,
    ours: f64,
    peer: f64,
    peer_name: &'static str,
    unit: &'static str,
}

impl Figures {
    fn new() -> Figures {
        Figures {
            pairs: Vec::new(),
            rows: Vec::new(),
        }
    }

    fn with(mut self, key: &'static str, value: impl ToString) -> Figures {
        self.pairs.push((key, value.to_string()));
        self
    }

    fn ms(self, key: &'static str, value: f64) -> Figures {
        self.with(key, format!("{value:.2}"))
    }

    fn row(mut self, what: &'static str, ours: f64, peer: (&'static str, f64)) -> Figures {
        let unit = if what.contains("MiB") { "MiB" } else { "ms" };
        self.rows.push(Row {
            what,
            ours,
            peer: peer.1,
            peer_name: peer.0,
            unit,
        });
        self
    }

    fn line(&self) -> String {
        let pairs: Vec<String> = self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(" ")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile (as the peer comparison computes it).
fn pct(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &[f64]) -> f64 {
    pct(values, 50.0)
}

fn runs_list(values: &[f64]) -> String {
    let v: Vec<String> = values.iter().map(|x| format!("{x:.1}")).collect();
    v.join(",")
}

/// Median / p95 / min / max of `values` in ms.
fn spread(figures: Figures, values: &[f64]) -> Figures {
    figures
        .ms("median_ms", median(values))
        .ms("p95_ms", pct(values, 95.0))
        .ms("min_ms", pct(values, 0.0))
        .ms("max_ms", pct(values, 100.0))
}

fn print_comparison(all: &[Figures]) {
    println!();
    println!(
        "{:<34} {:>10} {:>10}  {:<12} {:>8}",
        "vs best peer", "sup", "peer", "peer name", "sup/peer"
    );
    for row in all.iter().flat_map(|f| &f.rows) {
        let ratio = if row.peer > 0.0 {
            format!("{:.2}", row.ours / row.peer)
        } else {
            "n/a".to_string()
        };
        println!(
            "{:<34} {:>7.1} {:<3}{:>7.1} {:<3} {:<12} {:>8}",
            row.what, row.ours, row.unit, row.peer, row.unit, row.peer_name, ratio
        );
    }
}

// ---------------------------------------------------------------------------------------
// Config snippets
// ---------------------------------------------------------------------------------------

fn app(bins: &Bins, mode: &str, instances: usize, extra: &str) -> String {
    format!(
        "[[app]]\nname = \"bench\"\ncmd = [{:?}, {mode:?}]\ninstances = {instances}\n{extra}",
        bins.testkit.display().to_string()
    )
}

/// A supd with `n` sleeping children, all exec'd.
fn running_daemon(bins: &Bins, n: usize, extra: &str) -> Res<(Daemon, Vec<i32>)> {
    let mut daemon = Daemon::spawn(bins, &app(bins, "sleep", n, extra))?;
    let pids = daemon.wait_running(n, &bins.testkit)?;
    Ok((daemon, pids))
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// SIGKILL the only child; busy-poll until a different pid has exec'd the testkit.
fn restart(bins: &Bins) -> Res<Figures> {
    let extra = "restart_delay = \"0ms\"\nmin_uptime = \"1ms\"\n";
    let (mut daemon, _) = running_daemon(bins, 1, extra)?;
    let mut values = Vec::with_capacity(RESTART_ROUNDS);
    for round in 0..RESTART_ROUNDS {
        // Past min_uptime by far, so every kill is an ordinary crash without backoff.
        sleep(Duration::from_millis(100));
        let old = *daemon
            .wait_running(1, &bins.testkit)?
            .first()
            .ok_or("no child")?;
        let t0 = Instant::now();
        kill(Pid::from_raw(old), Signal::SIGKILL).map_err(|e| format!("kill {old}: {e}"))?;
        values.push(ms(busy_wait_replacement(
            &mut daemon,
            old,
            &bins.testkit,
            t0,
        )
        .map_err(|e| format!("round {round}: {e}"))?));
    }
    Ok(spread(Figures::new(), &values).with("n", values.len()).row(
        "restart median",
        median(&values),
        ("pm2", 8.6),
    ))
}

/// Busy-poll supd's children until one other than `old` runs `exe`; time since `t0`.
///
/// Each turn ends with `sched_yield`: on a 2-vCPU VM with a non-preemptible HZ=250 kernel,
/// a pure spin keeps supd (woken on the spinning CPU) off it until the next tick, which
/// measured ~3.7 ms instead of ~1.2 ms. Yielding never sleeps, so nothing is missed.
fn busy_wait_replacement(daemon: &mut Daemon, old: i32, exe: &Path, t0: Instant) -> Res<Duration> {
    loop {
        if children(daemon.pid)
            .into_iter()
            .any(|pid| pid != old && runs(pid, exe))
        {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > PATIENCE {
            daemon.check_alive()?;
            return Err(format!("no new child after {PATIENCE:?}"));
        }
        std::thread::yield_now();
    }
}

/// From spawning supd until 100 children have exec'd.
fn start100(bins: &Bins) -> Res<Figures> {
    let mut values = Vec::with_capacity(START_REPS);
    for _ in 0..START_REPS {
        let mut daemon = Daemon::spawn(bins, &app(bins, "sleep", 100, ""))?;
        values.push(ms(wait_exec(&mut daemon, 100, &bins.testkit)?));
        stop_and_wait(&mut daemon, bins)?;
    }
    Ok(Figures::new()
        .ms("median_ms", median(&values))
        .with("runs_ms", runs_list(&values))
        .with("n", 100)
        .row("start100 median", median(&values), ("s6", 357.2)))
}

/// Until `n` children have exec'd `exe`, since the daemon was spawned. Each pid is
/// checked until it has exec'd, then remembered.
fn wait_exec(daemon: &mut Daemon, n: usize, exe: &Path) -> Res<Duration> {
    let mut seen = HashSet::new();
    while seen.len() < n {
        for pid in children(daemon.pid) {
            if !seen.contains(&pid) && runs(pid, exe) {
                seen.insert(pid);
            }
        }
        if daemon.started.elapsed() > PATIENCE {
            daemon.check_alive()?;
            return Err(format!(
                "only {} of {n} children after {PATIENCE:?}",
                seen.len()
            ));
        }
        sleep(POLL);
    }
    Ok(daemon.started.elapsed())
}

/// `supctl shutdown`, then wait until supd has exited.
fn stop_and_wait(daemon: &mut Daemon, bins: &Bins) -> Res<()> {
    let out = daemon
        .supctl(bins, &["shutdown"])?
        .wait_with_output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "supctl shutdown: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let deadline = Instant::now() + PATIENCE;
    while !daemon.exited() {
        if Instant::now() > deadline {
            return Err("supd still running after shutdown".into());
        }
        sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// `supctl --json status` as a whole process, then the bare socket round trip.
fn status(bins: &Bins) -> Res<Figures> {
    let (daemon, _) = running_daemon(bins, 100, "")?;
    let mut cli = Vec::with_capacity(STATUS_CALLS);
    for _ in 0..STATUS_CALLS {
        let t0 = Instant::now();
        let out = daemon
            .supctl(bins, &["--json", "status"])?
            .wait_with_output()
            .map_err(|e| e.to_string())?;
        cli.push(ms(t0.elapsed()));
        check_status(&out.stdout)?;
    }
    let mut raw = Vec::with_capacity(STATUS_CALLS);
    for _ in 0..STATUS_CALLS {
        raw.push(ms(raw_status(&daemon.socket)?));
    }
    Ok(Figures::new()
        .ms("median_ms", median(&cli))
        .ms("p95_ms", pct(&cli, 95.0))
        .ms("raw_median_ms", median(&raw))
        .ms("raw_p95_ms", pct(&raw, 95.0))
        .with("n", STATUS_CALLS)
        .with("instances", 100)
        .row("status median (100 vs 10)", median(&cli), ("s6", 19.9)))
}

/// The output of `supctl --json status` must list 100 instances.
fn check_status(stdout: &[u8]) -> Res<()> {
    let doc: Value = serde_json::from_slice(stdout).map_err(|e| format!("status JSON: {e}"))?;
    let count: usize = doc["apps"]
        .as_array()
        .ok_or("status JSON without apps")?
        .iter()
        .filter_map(|a| a["instances"].as_array().map(Vec::len))
        .sum();
    if count == 100 {
        Ok(())
    } else {
        Err(format!("status listed {count} instances, not 100"))
    }
}

/// Connect, send one status request, read one reply line.
fn raw_status(socket: &Path) -> Res<Duration> {
    let t0 = Instant::now();
    let mut stream = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(b"{\"v\":1,\"id\":1,\"cmd\":\"status\"}\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    let elapsed = t0.elapsed();
    if !line.contains("\"ok\":true") {
        return Err(format!("status reply: {}", line.trim()));
    }
    Ok(elapsed)
}

/// 10 children, settled: supd's RSS, CPU and threads over the window.
fn idle(bins: &Bins) -> Res<Figures> {
    let (daemon, _) = running_daemon(bins, 10, "")?;
    sleep(Duration::from_secs(1));
    let pid = daemon.pid;
    let (ticks0, ns0) = (cpu_ticks(pid)?, cpu_ns(pid));
    let mut rss_kib = status_field(pid, "VmRSS")?;
    let deadline = Instant::now() + IDLE_WINDOW;
    while Instant::now() < deadline {
        sleep(Duration::from_millis(500));
        rss_kib = rss_kib.max(status_field(pid, "VmRSS")?);
    }
    let (ticks1, ns1) = (cpu_ticks(pid)?, cpu_ns(pid));
    let rss_mib = rss_kib as f64 / 1024.0;
    let cpu_ms = (ticks1 - ticks0) as f64 * ms_per_tick();
    Ok(Figures::new()
        .with("rss_mib", format!("{rss_mib:.2}"))
        .with("cpu_ms", format!("{cpu_ms:.0}"))
        .with("cpu_sched_ms", format!("{:.2}", (ns1 - ns0) as f64 / 1e6))
        .with("threads", threads(pid))
        .with("children", daemon.running(&bins.testkit).len())
        .with("window_s", IDLE_WINDOW.as_secs())
        .row("idle RSS MiB", rss_mib, ("horust", 5.2))
        .row("idle CPU ms per 10 s", cpu_ms, ("s6", 0.0)))
}

/// When the children were all gone, when `supctl shutdown` returned, when supd exited.
struct Stopped {
    children: Duration,
    command: Duration,
    daemon: Duration,
}

/// Run `supctl shutdown` and poll until every pid and supd are gone.
fn timed_shutdown(daemon: &mut Daemon, bins: &Bins, pids: &[i32]) -> Res<Stopped> {
    let mut left: Vec<i32> = pids.to_vec();
    let t0 = Instant::now();
    let mut supctl = daemon.supctl(bins, &["shutdown"])?;
    let (mut children, mut command, mut gone) = (None, None, None);
    while children.is_none() || command.is_none() || gone.is_none() {
        left.retain(|&pid| alive(pid));
        if left.is_empty() && children.is_none() {
            children = Some(t0.elapsed());
        }
        if command.is_none() && !matches!(supctl.try_wait(), Ok(None)) {
            command = Some(t0.elapsed());
        }
        if gone.is_none() && daemon.exited() {
            gone = Some(t0.elapsed());
        }
        if t0.elapsed() > PATIENCE {
            let _ = supctl.kill();
            let _ = supctl.wait();
            return Err(format!("{} children left after {PATIENCE:?}", left.len()));
        }
        sleep(POLL);
    }
    Ok(Stopped {
        children: children.unwrap_or_default(),
        command: command.unwrap_or_default(),
        daemon: gone.unwrap_or_default(),
    })
}

/// 100 children: `supctl shutdown` until all are gone; median of 3.
fn shutdown(bins: &Bins) -> Res<Figures> {
    let mut stops = Vec::with_capacity(SHUTDOWN_REPS);
    for _ in 0..SHUTDOWN_REPS {
        let (mut daemon, pids) = running_daemon(bins, 100, "")?;
        sleep(Duration::from_millis(500));
        stops.push(timed_shutdown(&mut daemon, bins, &pids)?);
    }
    let gone: Vec<f64> = stops.iter().map(|s| ms(s.children)).collect();
    let cmd: Vec<f64> = stops.iter().map(|s| ms(s.command)).collect();
    let exit: Vec<f64> = stops.iter().map(|s| ms(s.daemon)).collect();
    Ok(Figures::new()
        .ms("median_ms", median(&gone))
        .with("runs_ms", runs_list(&gone))
        .ms("cmd_return_ms", median(&cmd))
        .ms("daemon_gone_ms", median(&exit))
        .with("daemon_runs_ms", runs_list(&exit))
        .with("n", 100)
        .row(
            "shutdown children gone",
            median(&gone),
            ("supervisord", 95.0),
        )
        .row("shutdown supd gone", median(&exit), ("supervisord", 136.1)))
}

/// 10 children that ignore SIGTERM, `kill_timeout = "1s"`: shutdown until all are gone.
fn stubborn(bins: &Bins) -> Res<Figures> {
    let mut stops = Vec::with_capacity(STUBBORN_REPS);
    for _ in 0..STUBBORN_REPS {
        let config = app(bins, "ignore-term", 10, "kill_timeout = \"1s\"\n");
        let mut daemon = Daemon::spawn(bins, &config)?;
        let pids = daemon.wait_running(10, &bins.testkit)?;
        wait_ignoring(&pids)?;
        stops.push(timed_shutdown(&mut daemon, bins, &pids)?);
    }
    let gone: Vec<f64> = stops.iter().map(|s| ms(s.children)).collect();
    let exit: Vec<f64> = stops.iter().map(|s| ms(s.daemon)).collect();
    Ok(Figures::new()
        .ms("gone_ms", median(&gone))
        .with("runs_ms", runs_list(&gone))
        .ms("daemon_gone_ms", median(&exit))
        .with("n", 10)
        .with("kill_timeout_ms", 1000)
        .row(
            "stubborn all gone (1s vs 1.6s)",
            median(&gone),
            ("pm2", 1939.9),
        ))
}

/// Wait until every pid ignores SIGTERM, so the stop really has to escalate.
fn wait_ignoring(pids: &[i32]) -> Res<()> {
    let deadline = Instant::now() + PATIENCE;
    while !pids.iter().all(|&pid| ignores_term(pid)) {
        if Instant::now() > deadline {
            return Err("children never ignored SIGTERM".into());
        }
        sleep(Duration::from_millis(1));
    }
    Ok(())
}
