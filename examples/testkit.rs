//! `testkit`: the one helper program the integration tests run under `supd`.
//!
//! Cargo builds examples during `cargo test`, so tests find it at
//! `target/debug/examples/testkit`. Every mode announces what it did with a line
//! `testkit: <event> pid=<n> ...` on stdout, written with a single write(2) (so lines of
//! several processes sharing a pipe never interleave), so tests wait on facts, not time.
//! A line is printed only once the fact it states is true (a signal disposition is in
//! place, every child exists, ...).
//!
//! Modes (the first argument):
//!
//! | mode                      | stdout                                                        |
//! |---------------------------|---------------------------------------------------------------|
//! | `sleep`                   | `started`, then sleeps forever                                |
//! | `crash [CODE] [AFTER_MS]` | `started`, waits AFTER_MS (0), exits with CODE (1)           |
//! | `exit CODE`               | `started`, exits with CODE at once                            |
//! | `ignore-term`             | ignores SIGTERM/INT/HUP/QUIT, `ignoring`, sleeps forever      |
//! | `fork-tree N [--escape]`  | N children, each with one grandchild; every member prints     |
//! |                           | `tree-member ... role=parent|child|grandchild` and sleeps;    |
//! |                           | `--escape`: grandchildren call setsid(), print `role=escaped` |
//! | `spam N [BYTES]`          | N lines `L000000001 xxx…` of BYTES (100) incl. newline,       |
//! |                           | through a 64 KiB buffer, then `spam-done ... count=N`, exit 0 |
//! | `spam-lines N [BYTES]`    | the same with one write(2) per line                           |
//! | `print-env`               | `env`, one `env KEY=VALUE` line per variable (sorted), then   |
//! |                           | `env-done ... count=K`; sleeps forever                        |
//! | `print-fds`               | one `fd N -> TARGET` line per open fd, then                   |
//! |                           | `fds ... fds=0,1,2`; sleeps forever                           |
//! | `stderr LINE`             | LINE on stderr, then `started`; sleeps forever                |
//! | `term-exit CODE`          | `started`; on SIGTERM `got-term`, exits with CODE             |
//! | `orphan`                  | a child prints `orphan` and sleeps forever; then the parent   |
//! |                           | prints `started` and exits 0 (the child is reparented)        |
//! | `zombies N`               | N children exit at once and are never waited for; then        |
//! |                           | `zombies-made ... count=N pids=a,b,c`; sleeps forever         |
//! | `emit TEXT`               | TEXT with `\n`, `\r`, `\\` and `\xNN` decoded, as raw bytes in |
//! |                           | one write (no `testkit:` line, no added newline), exit 0      |
//! | `long-line BYTES`         | one line of BYTES `y`s, then `long-done`; sleeps forever      |
//! | `both N`                  | lines `out 1`, `err 1`, ... alternately on stdout and stderr, |
//! |                           | then `both-done`; sleeps forever                              |
//! | `alloc MIB EVERY_MS [--child]` | grows by MIB MiB (touched) every EVERY_MS, printing      |
//! |                           | `alloc ... total_mib=N`; `--child`: a forked child grows while |
//! |                           | the parent sleeps (a worker the leader's RSS does not show)   |
//! | `notify GATE`             | sends `STATUS=waiting` to `$NOTIFY_SOCKET`, `notify-waiting`; |
//! |                           | once file GATE exists sends `READY=1` + `STATUS=serving`,     |
//! |                           | `notify-ready`; sleeps forever                                |
//! | `serve PORT GATE`         | once file GATE exists listens on 127.0.0.1:PORT, `listening`; |
//! |                           | answers every HTTP request 200, or 503 while `GATE.sick`      |
//! |                           | exists                                                        |
//! | `accept`                  | `listen-ready ... fds=N pid_match=B names=X` from `LISTEN_*`, |
//! |                           | then answers each connection on fd 3 with its pid and a newline; |
//! |                           | SIGTERM ends it between two connections (a graceful server)   |
//!
//! A bad invocation prints a usage line on stderr and exits 2. The process is
//! single-threaded on purpose: that is what makes `fork` without `exec` sound here.

use std::env;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::exit;
use std::str::FromStr;
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{signal, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::{fork, getpid, pause, pipe, setsid, write, ForkResult, Pid};

const USAGE: &str = "usage: testkit sleep | crash [CODE] [AFTER_MS] | exit CODE | ignore-term \
                     | fork-tree N [--escape] | spam N [BYTES] | spam-lines N [BYTES] | print-env \
                     | print-fds | stderr LINE | term-exit CODE | orphan | zombies N | emit TEXT \
                     | long-line BYTES | both N \
                     | alloc MIB EVERY_MS [--child] | notify GATE | serve PORT GATE | accept";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((mode, rest)) = args.split_first() else {
        usage("no mode given");
    };
    match mode.as_str() {
        "sleep" => sleep(),
        "crash" => crash(arg(rest, 0, Some(1)), arg(rest, 1, Some(0))),
        "exit" => crash(arg(rest, 0, None), 0),
        "ignore-term" => ignore_term(),
        "fork-tree" => {
            let (flags, counts): (Vec<String>, Vec<String>) =
                rest.iter().cloned().partition(|a| a == "--escape");
            fork_tree(arg(&counts, 0, None), !flags.is_empty())
        }
        "spam" => spam(arg(rest, 0, None), arg(rest, 1, Some(100))),
        "spam-lines" => spam_lines(arg(rest, 0, None), arg(rest, 1, Some(100))),
        "print-env" => print_env(),
        "print-fds" => print_fds(),
        "stderr" => stderr_line(rest.first().map_or("", String::as_str)),
        "term-exit" => term_exit(arg(rest, 0, None)),
        "orphan" => orphan(),
        "zombies" => zombies(arg(rest, 0, None)),
        "emit" => emit(rest.first().map_or("", String::as_str)),
        "long-line" => long_line(arg(rest, 0, None)),
        "both" => both(arg(rest, 0, None)),
        "alloc" => alloc(
            arg(rest, 0, None),
            arg(rest, 1, None),
            rest.iter().any(|a| a == "--child"),
        ),
        "notify" => notify(rest.first().map_or("", String::as_str)),
        "serve" => serve(arg(rest, 0, None), rest.get(1).map_or("", String::as_str)),
        "accept" => accept(),
        other => usage(&format!("unknown mode {other:?}")),
    }
}

/// Waits until `path` exists (a test's go-ahead), checking every 10 ms.
fn wait_for_file(path: &str) {
    if path.is_empty() {
        usage("a GATE file is needed");
    }
    while !Path::new(path).exists() {
        thread::sleep(Duration::from_millis(10));
    }
}

/// `notify GATE`: an sd_notify service that becomes ready when told to.
fn notify(gate: &str) -> ! {
    let Ok(socket) = env::var("NOTIFY_SOCKET") else {
        usage("NOTIFY_SOCKET is not set")
    };
    let send = |text: &str| {
        use std::os::linux::net::SocketAddrExt;
        let sock = std::os::unix::net::UnixDatagram::unbound().expect("datagram socket");
        let sent = match socket.strip_prefix('@') {
            Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|addr| sock.send_to_addr(text.as_bytes(), &addr)),
            None => sock.send_to(text.as_bytes(), &socket),
        };
        if let Err(e) = sent {
            usage(&format!("cannot send to {socket}: {e}"));
        }
    };
    send("STATUS=waiting");
    say("notify-waiting", "");
    wait_for_file(gate);
    send("READY=1\nSTATUS=serving");
    say("notify-ready", "");
    forever()
}

/// `accept`: an instance of a clustered server, on the socket supd passed as fd 3.
fn accept() -> ! {
    let var = |name: &str| env::var(name).unwrap_or_default();
    let pid_match = var("LISTEN_PID") == getpid().to_string();
    // A graceful server: SIGTERM stops it between two connections, never inside one, so
    // a stop loses no request. The signal is taken through a signalfd beside the socket.
    let mut term = SigSet::empty();
    term.add(Signal::SIGTERM);
    term.thread_block().expect("testkit: cannot block SIGTERM");
    let signals =
        nix::sys::signalfd::SignalFd::new(&term).expect("testkit: cannot make a signalfd");
    say(
        "listen-ready",
        &format!(
            "fds={} pid_match={pid_match} names={}",
            var("LISTEN_FDS"),
            var("LISTEN_FDNAMES")
        ),
    );
    if var("LISTEN_FDS") != "1" {
        usage("LISTEN_FDS is not 1");
    }
    use std::os::fd::FromRawFd;
    // SAFETY: LISTEN_FDS=1 says fd 3 is the listening socket supd passed; nothing else in
    // this process owns it.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(3) };
    // Every instance polls before it accepts; non-blocking, one that lost the race for a
    // connection goes back to waiting (and can see SIGTERM) instead of blocking in accept.
    listener
        .set_nonblocking(true)
        .expect("testkit: cannot make the socket non-blocking");
    let pid = getpid();
    loop {
        let mut fds = [
            nix::poll::PollFd::new(listener.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(signals.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => usage(&format!("poll: {e}")),
        }
        let ready = |fd: &nix::poll::PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[1]) {
            exit(0);
        }
        if ready(&fds[0]) {
            if let Ok((mut stream, _)) = listener.accept() {
                let _ = stream.set_nonblocking(false);
                let _ = stream.write_all(format!("{pid}\n").as_bytes());
            }
        }
    }
}

/// `serve PORT GATE`: a tiny HTTP server for readiness and health probes.
fn serve(port: u16, gate: &str) -> ! {
    wait_for_file(gate);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| usage(&format!("cannot listen on port {port}: {e}")));
    say("listening", &format!("port={port}"));
    let sick = format!("{gate}.sick");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        // A TCP probe connects and closes without a request; read what comes.
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => continue,
        }
        let status = if Path::new(&sick).exists() {
            "503 Service Unavailable"
        } else {
            "200 OK"
        };
        let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let _ = stream.write_all(reply.as_bytes());
    }
    exit(0)
}

/// `sleep`: the well-behaved app; dies of the default action of any fatal signal.
fn sleep() -> ! {
    say("started", "");
    forever()
}

/// `crash [CODE] [AFTER_MS]` and `exit CODE`.
fn crash(code: i32, after_ms: u64) -> ! {
    say("started", "");
    if after_ms > 0 {
        thread::sleep(Duration::from_millis(after_ms));
    }
    exit(code)
}

/// `ignore-term`: only SIGKILL ends it, so stop has to escalate after `kill_timeout`.
fn ignore_term() -> ! {
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: SIG_IGN installs no handler, so no code of ours runs in signal context.
        unsafe { signal(sig, SigHandler::SigIgn) }.expect("testkit: cannot ignore signal");
    }
    say("ignoring", "");
    forever()
}

/// `fork-tree N [--escape]`: a leader, N children, one grandchild each, all in the
/// leader's process group (unless `--escape` moves the grandchildren to new sessions).
fn fork_tree(children: u32, escape: bool) -> ! {
    say("tree-member", "role=parent");
    for _ in 0..children {
        if spawn_child() {
            say("tree-member", "role=child");
            if spawn_child() {
                if escape {
                    setsid().expect("testkit: setsid failed");
                    say("tree-member", "role=escaped");
                } else {
                    say("tree-member", "role=grandchild");
                }
            }
            forever()
        }
    }
    forever()
}

/// `spam N [BYTES]`: as fast as a buffered writer goes, to test log throughput and
/// backpressure.
fn spam(count: u64, bytes: usize) -> ! {
    let tail = line_tail(bytes);
    let mut out = BufWriter::with_capacity(64 * 1024, stdout_file());
    for i in 1..=count {
        write!(out, "L{i:09}")
            .and_then(|()| out.write_all(&tail))
            .expect("testkit: write to stdout failed");
    }
    out.flush().expect("testkit: write to stdout failed");
    say("spam-done", &format!("count={count}"));
    exit(0)
}

/// `spam-lines N [BYTES]`: one write(2) per line, so the reader sees many small reads.
fn spam_lines(count: u64, bytes: usize) -> ! {
    let tail = line_tail(bytes);
    let mut out = stdout_file();
    let mut line = Vec::with_capacity(bytes.max(16));
    for i in 1..=count {
        line.clear();
        write!(line, "L{i:09}").expect("testkit: format into a Vec cannot fail");
        line.extend_from_slice(&tail);
        out.write_all(&line)
            .expect("testkit: write to stdout failed");
    }
    say("spam-done", &format!("count={count}"));
    exit(0)
}

/// `emit TEXT`: arbitrary bytes (invalid UTF-8, CRLF, no final newline) for the log tests.
fn emit(text: &str) -> ! {
    let mut out = Vec::new();
    let mut chars = text.bytes();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match chars.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'x') => {
                let hex: Vec<u8> = chars.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => out.push(byte),
                    Err(_) => usage(&format!("bad \\x escape in {text:?}")),
                }
            }
            Some(other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    write_stdout(&out);
    exit(0)
}

/// `alloc MIB EVERY_MS [--child]`: memory that really is resident (every page written).
fn alloc(step_mib: usize, every_ms: u64, in_child: bool) -> ! {
    if in_child {
        // SAFETY: single-threaded process; the child only allocates, prints and sleeps.
        if let ForkResult::Parent { .. } = unsafe { fork() }.expect("testkit: fork failed") {
            say("started", "");
            forever()
        }
    }
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        kept.push(vec![1u8; step_mib << 20]);
        say("alloc", &format!("total_mib={}", kept.len() * step_mib));
        thread::sleep(Duration::from_millis(every_ms));
    }
}

/// `long-line BYTES`: one line far longer than any log line limit.
fn long_line(bytes: usize) -> ! {
    let mut line = vec![b'y'; bytes];
    line.push(b'\n');
    write_stdout(&line);
    say("long-done", &format!("bytes={bytes}"));
    forever()
}

/// `both N`: stdout and stderr alternately, one write(2) each, so the order is known.
fn both(count: u64) -> ! {
    let mut err = File::from(
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .expect("testkit: cannot dup stderr"),
    );
    for i in 1..=count {
        write_stdout(format!("out {i}\n").as_bytes());
        err.write_all(format!("err {i}\n").as_bytes())
            .expect("testkit: write to stderr failed");
    }
    say("both-done", &format!("count={count}"));
    forever()
}

/// What follows the line number `L000000001` in a spam line: a space, `x` padding and the
/// newline, so the whole line is `bytes` long (never shorter than the number and newline).
fn line_tail(bytes: usize) -> Vec<u8> {
    const NUMBER: usize = "L000000001".len();
    let mut tail = Vec::with_capacity(bytes.saturating_sub(NUMBER));
    if bytes > NUMBER + 1 {
        tail.push(b' ');
        tail.resize(bytes - NUMBER - 1, b'x');
    }
    tail.push(b'\n');
    tail
}

/// `print-env`: the whole block goes out in one write, header first, `env-done` last.
fn print_env() -> ! {
    let mut vars: Vec<(String, String)> = env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    vars.sort();
    let pid = getpid();
    let mut block = format!("testkit: env pid={pid}\n");
    for (key, value) in &vars {
        block.push_str(&format!("env {key}={value}\n"));
    }
    block.push_str(&format!(
        "testkit: env-done pid={pid} count={}\n",
        vars.len()
    ));
    write_stdout(block.as_bytes());
    forever()
}

/// `print-fds`: every fd this process was started with, to catch fds leaking from supd.
fn print_fds() -> ! {
    // read_dir holds an fd of its own on /proc/<pid>/fd while we iterate; that one is not
    // inherited, so it is recognised by its link target and left out.
    let own_dir = Path::new("/proc").join(getpid().to_string()).join("fd");
    let mut fds: Vec<(i32, String)> = Vec::new();
    for entry in fs::read_dir("/proc/self/fd").expect("testkit: cannot list /proc/self/fd") {
        let entry = entry.expect("testkit: cannot read /proc/self/fd");
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        match fs::read_link(entry.path()) {
            Ok(target) if target == own_dir => {}
            Ok(target) => fds.push((fd, target.to_string_lossy().into_owned())),
            Err(_) => {} // closed since the listing
        }
    }
    fds.sort();
    let pid = getpid();
    let mut block = String::new();
    for (fd, target) in &fds {
        block.push_str(&format!("fd {fd} -> {target}\n"));
    }
    let list: Vec<String> = fds.iter().map(|(fd, _)| fd.to_string()).collect();
    block.push_str(&format!("testkit: fds pid={pid} fds={}\n", list.join(",")));
    write_stdout(block.as_bytes());
    forever()
}

/// `stderr LINE`: the stderr line is written before `started`, so once a test sees
/// `started` the other line is in the (separate) stderr pipe too.
fn stderr_line(line: &str) -> ! {
    let mut err = std::io::stderr().lock();
    writeln!(err, "{line}").expect("testkit: write to stderr failed");
    drop(err);
    say("started", "");
    forever()
}

/// `term-exit CODE`: a graceful app whose exit code after SIGTERM is chosen by the test.
fn term_exit(code: i32) -> ! {
    // Blocking SIGTERM and taking it with sigwait needs no handler (and no unsafe), and
    // `started` is printed only once a SIGTERM can no longer kill us by default action.
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.thread_block().expect("testkit: cannot block SIGTERM");
    say("started", "");
    loop {
        if set.wait() == Ok(Signal::SIGTERM) {
            say("got-term", "");
            exit(code);
        }
    }
}

/// `orphan`: the leader leaves a child behind, which the subreaper inherits. The leader
/// waits until the child has printed its line, so `orphan` always precedes the leader's
/// exit and tests know the orphan's pid by then.
fn orphan() -> ! {
    let (read_end, write_end) = pipe().expect("testkit: pipe failed");
    if spawn_child() {
        drop(read_end);
        say("orphan", "");
        drop(write_end); // EOF tells the leader the line is out
        forever()
    }
    drop(write_end);
    let mut done = Vec::new();
    File::from(read_end)
        .read_to_end(&mut done)
        .expect("testkit: waiting for the orphan failed");
    say("started", "");
    exit(0)
}

/// `zombies N`: children that are dead but never waited for; whoever inherits them
/// after this process dies must reap them.
fn zombies(count: u32) -> ! {
    let mut pids = Vec::new();
    for _ in 0..count {
        match spawn() {
            None => exit(0),
            Some(pid) => pids.push(pid),
        }
    }
    // WNOWAIT: wait until each child is a zombie without reaping it, so that
    // `zombies-made` states a fact.
    for &pid in &pids {
        waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
            .expect("testkit: waitid failed");
    }
    let list: Vec<String> = pids.iter().map(Pid::to_string).collect();
    say(
        "zombies-made",
        &format!("count={count} pids={}", list.join(",")),
    );
    forever()
}

/// Forks; `true` in the child, `false` in the parent.
fn spawn_child() -> bool {
    spawn().is_none()
}

/// Forks; `None` in the child, `Some(child pid)` in the parent.
fn spawn() -> Option<Pid> {
    // SAFETY: testkit never starts a thread, so the child is an exact copy of a
    // single-threaded process: no lock can be held by a thread that no longer exists, and
    // the child may go on running ordinary Rust code. stdout is unbuffered here (every
    // line is a direct write(2)), so nothing is printed twice.
    match unsafe { fork() }.expect("testkit: fork failed") {
        ForkResult::Child => None,
        ForkResult::Parent { child } => Some(child),
    }
}

/// Prints `testkit: <event> pid=<n> [rest]` with one write(2).
fn say(event: &str, rest: &str) {
    let pid = getpid();
    let line = if rest.is_empty() {
        format!("testkit: {event} pid={pid}\n")
    } else {
        format!("testkit: {event} pid={pid} {rest}\n")
    };
    write_stdout(line.as_bytes());
}

/// Writes all of `buf` to fd 1 directly, bypassing std's line buffer.
fn write_stdout(mut buf: &[u8]) {
    while !buf.is_empty() {
        match write(std::io::stdout(), buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => panic!("testkit: write to stdout failed: {e}"),
        }
    }
}

/// fd 1 as a `File` (a dup), so `spam` writes to the pipe without std's `LineWriter` in
/// between.
fn stdout_file() -> File {
    File::from(
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .expect("testkit: cannot dup stdout"),
    )
}

fn forever() -> ! {
    loop {
        pause();
    }
}

/// The `i`th argument after the mode, or `default` when absent; usage error otherwise.
fn arg<T: FromStr>(rest: &[String], i: usize, default: Option<T>) -> T {
    match (rest.get(i), default) {
        (Some(text), _) => text
            .parse()
            .unwrap_or_else(|_| usage(&format!("not a number: {text:?}"))),
        (None, Some(value)) => value,
        (None, None) => usage("missing argument"),
    }
}

fn usage(problem: &str) -> ! {
    eprintln!("testkit: {problem}\n{USAGE}");
    exit(2)
}
