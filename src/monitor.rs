//! Sampling of each instance's whole process tree from `/proc`: resident memory, CPU time
//! and process count of the instance leader, its descendants and its process group.
//!
//! This module owns reading and parsing `/proc/<pid>/stat` and summing it over trees. It
//! never decides anything (no limits, no restarts, no state), never signals or waits for a
//! process, and keeps nothing between calls: whoever samples keeps the previous sample to
//! compute CPU % with [`cpu_percent`]. Everything but [`snapshot`], [`page_size`] and
//! [`clock_ticks`] is pure, so it is tested with synthetic snapshots.
//!
//! One sample for many instances: take one [`snapshot`], build one [`Tree`] from it, then
//! ask [`Tree::usage`] per instance leader. [`tree_usage`] is the one-shot form.
//!
//! The memory of a tree is the sum of its processes' RSS, as PM2 and `ps` count it: pages
//! shared between processes (a pre-fork server's copy-on-write memory, shared libraries)
//! are counted once per process, so the sum can exceed what the tree really costs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The process id (field 1).
    pub pid: i32,
    /// The parent's pid (field 4); 0 for the kernel's own roots.
    pub ppid: i32,
    /// The process group id (field 5).
    pub pgid: i32,
    /// CPU time used so far, user plus system (fields 14 and 15), in clock ticks (see
    /// [`clock_ticks`]). Children it has reaped are not included.
    pub cpu_ticks: u64,
    /// Resident set size (field 24), in pages (see [`page_size`]).
    pub rss_pages: u64,
    /// State `Z` (zombie) or `X` (dead): exited, not reaped yet; it holds no memory.
    pub zombie: bool,
}

/// Parse the text of one `/proc/<pid>/stat`, or `None` when it is not one.
///
/// The command name (field 2) is in parentheses and may itself contain spaces and `)`,
/// so the fields after it are read from after the *last* `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid: i32 = text[..open].trim().parse().ok()?;
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    let fields: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    let state = field(3)?;
    let ppid: i32 = field(4)?.parse().ok()?;
    let pgid: i32 = field(5)?.parse().ok()?;
    let utime: u64 = field(14)?.parse().ok()?;
    let stime: u64 = field(15)?.parse().ok()?;
    // RSS is a signed long in the kernel; a negative value (never seen, but the type
    // allows it) is read as 0.
    let rss: i64 = field(24)?.parse().ok()?;
    Some(ProcStat {
        pid,
        ppid,
        pgid,
        cpu_ticks: utime.saturating_add(stime),
        rss_pages: u64::try_from(rss).unwrap_or(0),
        zombie: matches!(state, "Z" | "X"),
    })
}

/// Every process of the system, read once from `/proc/[0-9]*/stat`.
///
/// Processes that vanish while it reads (or whose file cannot be read or parsed) are
/// skipped; an unreadable `/proc` gives an empty snapshot. Not atomic: a process forked
/// meanwhile may or may not be in it.
///
/// Three system calls per process (`openat` relative to `/proc`, one `read` into a stack
/// buffer, `close`): `read_to_string` added a `statx`, an `lseek` and a second `read`, and
/// `open` a path walk from `/`. Most of the time is the kernel's making of the line
/// (~25 µs a process on a 2-core VM), so a read of 5000 processes still takes ~130 ms.
pub fn snapshot() -> Vec<ProcStat> {
    let (Ok(proc_fd), Ok(dir)) = (std::fs::File::open("/proc"), std::fs::read_dir("/proc")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // "<pid>/stat" and its NUL; a pid has at most 10 digits.
    let mut path = [0u8; 16];
    // A stat line is at most ~1 KiB (a 15-byte name and 50 numbers).
    let mut text = [0u8; 2048];
    for entry in dir.flatten() {
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let end = name.len() + b"/stat".len();
        path[..name.len()].copy_from_slice(name);
        path[name.len()..end].copy_from_slice(b"/stat");
        path[end] = 0;
        let Ok(path) = std::ffi::CStr::from_bytes_with_nul(&path[..=end]) else {
            continue;
        };
        let Ok(fd) = nix::fcntl::openat(
            &proc_fd,
            path,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        // The kernel makes the whole line at the first read.
        let read = nix::unistd::read(&fd, &mut text);
        drop(fd);
        let Ok(n) = read else { continue };
        if n == text.len() {
            continue;
        }
        // Lossy: a process may name itself with bytes that are not UTF-8.
        if let Some(stat) = parse_stat(&String::from_utf8_lossy(&text[..n])) {
            out.push(stat);
        }
    }
    out
}

/// What one tree uses, summed over its processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Resident memory in bytes (zombies count 0).
    pub rss_bytes: u64,
    /// CPU time used so far, in clock ticks (zombies included: their time was spent).
    pub cpu_ticks: u64,
    /// Processes in the tree, zombies included; 0 when nothing of it is left.
    pub processes: u32,
}

/// A snapshot indexed for many [`Tree::usage`] questions: children by parent and members
/// by process group, built once in O(n). A question costs the size of its tree, not of
/// the snapshot: asking for each of N instances is O(N), not O(N²).
#[derive(Debug)]
pub struct Tree {
    procs: Vec<ProcStat>,
    page_size: u64,
    /// Indexes into `procs` of the processes whose parent is the key.
    children: HashMap<i32, Vec<usize>>,
    /// Indexes into `procs` of the members of the process group that is the key.
    groups: HashMap<i32, Vec<usize>>,
    /// Index into `procs` of each pid.
    by_pid: HashMap<i32, usize>,
    /// Which of `procs` the current [`Tree::usage`] has counted; all false between calls.
    seen: RefCell<Vec<bool>>,
}

impl Tree {
    /// Index `snapshot`, whose RSS is counted in pages of `page_size` bytes.
    pub fn new(snapshot: Vec<ProcStat>, page_size: u64) -> Self {
        let mut children: HashMap<i32, Vec<usize>> = HashMap::new();
        let mut groups: HashMap<i32, Vec<usize>> = HashMap::new();
        let mut by_pid = HashMap::with_capacity(snapshot.len());
        for (i, p) in snapshot.iter().enumerate() {
            children.entry(p.ppid).or_default().push(i);
            groups.entry(p.pgid).or_default().push(i);
            by_pid.insert(p.pid, i);
        }
        Tree {
            seen: RefCell::new(vec![false; snapshot.len()]),
            procs: snapshot,
            page_size,
            children,
            groups,
            by_pid,
        }
    }

    /// The usage of the tree rooted at `root` (an instance leader): `root` itself, every
    /// member of process group `root` (workers re-parented to supd after their master
    /// died still count), and every descendant of those by parent links. Each process is
    /// counted once. A `root` that is not a positive pid gives an empty usage.
    pub fn usage(&self, root: i32) -> Usage {
        let mut usage = Usage::default();
        if root <= 0 {
            return usage;
        }
        let mut seen = self.seen.borrow_mut();
        let mut counted: Vec<usize> = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        stack.extend(self.by_pid.get(&root).copied());
        stack.extend(self.groups.get(&root).into_iter().flatten().copied());
        while let Some(i) = stack.pop() {
            let Some(slot) = seen.get_mut(i) else {
                continue;
            };
            if *slot {
                continue;
            }
            *slot = true;
            counted.push(i);
            let Some(p) = self.procs.get(i) else { continue };
            if !p.zombie {
                usage.rss_bytes = usage
                    .rss_bytes
                    .saturating_add(p.rss_pages.saturating_mul(self.page_size));
            }
            usage.cpu_ticks = usage.cpu_ticks.saturating_add(p.cpu_ticks);
            usage.processes = usage.processes.saturating_add(1);
            // The kernel's pid 0 is no process; its "children" are not this tree's.
            if p.pid > 0 {
                stack.extend(self.children.get(&p.pid).into_iter().flatten().copied());
            }
        }
        for i in counted {
            seen[i] = false;
        }
        usage
    }
}

/// The usage of the tree rooted at `root` in `snapshot` (see [`Tree::usage`]). For many
/// roots over one snapshot, build one [`Tree`] instead.
pub fn tree_usage(snapshot: &[ProcStat], root: i32, page_size: u64) -> Usage {
    Tree::new(snapshot.to_vec(), page_size).usage(root)
}

/// The size of a memory page in bytes (`sysconf(_SC_PAGE_SIZE)`; 4096 if it fails).
pub fn page_size() -> u64 {
    sysconf_or(nix::unistd::SysconfVar::PAGE_SIZE, 4096)
}

/// Clock ticks per second, the unit of [`ProcStat::cpu_ticks`] (`sysconf(_SC_CLK_TCK)`;
/// 100 if it fails).
pub fn clock_ticks() -> u64 {
    sysconf_or(nix::unistd::SysconfVar::CLK_TCK, 100)
}

fn sysconf_or(var: nix::unistd::SysconfVar, fallback: u64) -> u64 {
    match nix::unistd::sysconf(var) {
        Ok(Some(n)) => u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(fallback),
        _ => fallback,
    }
}

/// CPU % of one tree between two samples `elapsed` apart:
/// `(ticks1 - ticks0) / clock_ticks / seconds * 100`. 100 is one CPU busy; several busy
/// CPUs give more. 0 when `elapsed` or `clock_ticks` is zero, and when the tree's ticks
/// went down (a process left it between the samples).
pub fn cpu_percent(ticks0: u64, ticks1: u64, elapsed: Duration, clock_ticks: u64) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 || clock_ticks == 0 {
        return 0.0;
    }
    let used = ticks1.saturating_sub(ticks0) as f64 / clock_ticks as f64;
    used / seconds * 100.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, pgid: i32, rss_pages: u64) -> ProcStat {
        ProcStat {
            pid,
            ppid,
            pgid,
            cpu_ticks: 10,
            rss_pages,
            zombie: false,
        }
    }

    /// A `/proc/<pid>/stat` line (Linux 6.x has 52 fields) with the given values.
    fn stat_line(pid: i32, comm: &str, state: char, ppid: i32, pgid: i32, rss: i64) -> String {
        // fields 6..=13, then utime 14, stime 15, cutime, cstime, priority, nice,
        // num_threads, itrealvalue, starttime, vsize, rss 24, then the rest.
        let mut rest: Vec<String> = vec!["1".into(); 8];
        rest.extend(["7".into(), "5".into(), "100".into(), "200".into()]);
        rest.extend(["20", "0", "3", "0", "12345", "99999"].map(String::from));
        rest.push(rss.to_string());
        rest.extend(std::iter::repeat("0".to_string()).take(28));
        format!("{pid} ({comm}) {state} {ppid} {pgid} {}\n", rest.join(" "))
    }

    #[test]
    fn parses_a_real_looking_line() {
        let line = "57 (node) S 41 57 57 0 -1 4194560 9000 0 3 0 120 30 0 0 20 0 11 0 \
                    8123 1234567 12730 18446744073709551615 1 1 0 0 0 0 0 4096 134234626 \
                    0 0 0 17 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                pid: 57,
                ppid: 41,
                pgid: 57,
                cpu_ticks: 150,
                rss_pages: 12730,
                zombie: false,
            })
        );
    }

    #[test]
    fn comm_with_spaces_and_parens() {
        for comm in [") (", "a b", "x) S 1 2 (y", "()", ""] {
            let line = stat_line(900, comm, 'R', 41, 57, 321);
            let s = parse_stat(&line).unwrap();
            assert_eq!((s.pid, s.ppid, s.pgid), (900, 41, 57), "{comm:?}");
            assert_eq!((s.cpu_ticks, s.rss_pages), (12, 321), "{comm:?}");
            assert!(!s.zombie);
        }
    }

    #[test]
    fn zombies_and_dead() {
        assert!(
            parse_stat(&stat_line(5, "sh", 'Z', 1, 5, 0))
                .unwrap()
                .zombie
        );
        assert!(
            parse_stat(&stat_line(5, "sh", 'X', 1, 5, 0))
                .unwrap()
                .zombie
        );
        assert!(
            !parse_stat(&stat_line(5, "sh", 'D', 1, 5, 0))
                .unwrap()
                .zombie
        );
        assert_eq!(
            parse_stat(&stat_line(5, "sh", 'S', 1, 5, -1))
                .unwrap()
                .rss_pages,
            0
        );
    }

    #[test]
    fn rejects_what_is_not_a_stat_line() {
        for bad in [
            "",
            "57",
            "57 (node)",
            "57 (node) S 41 57",
            "x (node) S 41 57 57 0 0 0 0 0 0 0 1 1 0 0 20 0 1 0 1 1 1",
            "57 node) S 41 57 57 0 0 0 0 0 0 0 1 1 0 0 20 0 1 0 1 1 1",
            ") 57 (node S 41 57 57 0 0 0 0 0 0 0 1 1 0 0 20 0 1 0 1 1 1",
            "57 (node) S 41 57 57 0 0 0 0 0 0 0 x 1 0 0 20 0 1 0 1 1 1",
        ] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
        // The shortest line that has every field read (through rss, field 24).
        assert!(parse_stat("57 (n) S 41 57 57 0 0 0 0 0 0 0 1 1 0 0 20 0 1 0 1 1 1").is_some());
    }

    /// supd (10) runs two instances: 100 (a master with workers 101, 102, and 103 under
    /// 101) and 200. 300 was a worker of group 100 whose master chain died: re-parented to
    /// supd, still in group 100. 104 is a child of 101 that left the group (setsid) but is
    /// still a descendant. 500 is unrelated.
    fn system() -> Vec<ProcStat> {
        vec![
            p(1, 0, 1, 100),
            p(10, 1, 10, 1000),
            p(100, 10, 100, 1),
            p(101, 100, 100, 2),
            p(102, 100, 100, 4),
            p(103, 101, 100, 8),
            p(104, 101, 104, 16),
            p(200, 10, 200, 32),
            p(300, 10, 100, 64),
            p(500, 1, 500, 128),
        ]
    }

    #[test]
    fn a_tree_with_its_group_and_descendants() {
        let snap = system();
        let tree = Tree::new(snap.clone(), 4096);
        assert_eq!(
            tree.usage(100),
            Usage {
                rss_bytes: (1 + 2 + 4 + 8 + 16 + 64) * 4096,
                cpu_ticks: 60,
                processes: 6,
            }
        );
        assert_eq!(
            tree.usage(200),
            Usage {
                rss_bytes: 32 * 4096,
                cpu_ticks: 10,
                processes: 1,
            }
        );
        assert_eq!(tree_usage(&snap, 100, 4096), tree.usage(100));
    }

    #[test]
    fn a_dead_leader_still_counts_its_group() {
        // The master 100 died; its workers were re-parented to supd and keep group 100.
        let snap = vec![
            p(10, 1, 10, 1000),
            p(101, 10, 100, 2),
            p(102, 10, 100, 4),
            p(103, 101, 100, 8),
        ];
        let u = tree_usage(&snap, 100, 1000);
        assert_eq!(u.processes, 3);
        assert_eq!(u.rss_bytes, 14_000);
    }

    #[test]
    fn zombies_count_no_memory() {
        let mut snap = system();
        for s in snap.iter_mut().filter(|s| s.pid == 102 || s.pid == 300) {
            s.zombie = true;
        }
        let u = tree_usage(&snap, 100, 1);
        assert_eq!(u.rss_bytes, 1 + 2 + 8 + 16);
        assert_eq!(u.processes, 6, "zombies are still processes");
        assert_eq!(u.cpu_ticks, 60, "and their CPU time was spent");
    }

    #[test]
    fn missing_and_odd_roots() {
        let snap = system();
        let tree = Tree::new(snap.clone(), 4096);
        assert_eq!(tree.usage(999), Usage::default());
        assert_eq!(tree.usage(0), Usage::default(), "pid 0 is not a tree");
        assert_eq!(tree.usage(-100), Usage::default());
        assert_eq!(tree_usage(&[], 100, 4096), Usage::default());
    }

    #[test]
    fn a_cycle_from_pid_reuse_ends() {
        // Not possible in one instant, but a snapshot is not one instant.
        let snap = vec![p(100, 101, 100, 1), p(101, 100, 100, 1)];
        assert_eq!(tree_usage(&snap, 100, 1).processes, 2);
    }

    #[test]
    fn many_roots_over_one_tree() {
        // 100 instance leaders under supd, each with 3 workers: 401 processes.
        let mut snap = vec![p(10, 1, 10, 1)];
        for i in 0..100 {
            let leader = 1000 + i * 10;
            snap.push(p(leader, 10, leader, 1));
            for w in 1..=3 {
                snap.push(p(leader + w, leader, leader, 2));
            }
        }
        let tree = Tree::new(snap.clone(), 1);
        for i in 0..100 {
            let u = tree.usage(1000 + i * 10);
            assert_eq!((u.processes, u.rss_bytes), (4, 7));
        }
        assert_eq!(tree.usage(10).processes, 401);
    }

    #[test]
    fn cpu_percent_between_samples() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(
            cpu_percent(100, 150, Duration::from_secs(1), 100),
            50.0
        ));
        assert!(close(
            cpu_percent(0, 400, Duration::from_secs(2), 100),
            200.0
        ));
        assert!(close(
            cpu_percent(0, 25, Duration::from_millis(500), 100),
            50.0
        ));
        assert_eq!(cpu_percent(150, 100, Duration::from_secs(1), 100), 0.0);
        assert_eq!(cpu_percent(0, 100, Duration::ZERO, 100), 0.0);
        assert_eq!(cpu_percent(0, 100, Duration::from_secs(1), 0), 0.0);
    }

    #[test]
    fn sysconf_values_are_sane() {
        let page = page_size();
        assert!(page >= 4096 && page.is_power_of_two(), "{page}");
        let hz = clock_ticks();
        assert!((10..=10_000).contains(&hz), "{hz}");
    }

    #[test]
    fn the_real_proc_has_this_process() {
        let me = i32::try_from(std::process::id()).unwrap();
        let snap = snapshot();
        assert!(snap.len() > 1, "{} processes", snap.len());
        let mine = snap
            .iter()
            .find(|s| s.pid == me)
            .expect("this test process");
        assert!(!mine.zombie);
        assert_eq!(
            mine.ppid,
            i32::try_from(std::os::unix::process::parent_id()).unwrap()
        );
        let u = Tree::new(snap.clone(), page_size()).usage(me);
        assert!(u.processes >= 1);
        // A test binary is resident: more than 1 MiB, well under 16 GiB.
        let rss = mine.rss_pages * page_size();
        assert!(rss > 1 << 20 && rss < 16 << 30, "rss {rss}");
        assert!(u.rss_bytes >= rss);
    }
}
