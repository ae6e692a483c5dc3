//! The log pipeline: every child's stdout and stderr, read from its pipes and appended to
//! its app's log file as `2026-11-23T03:40:00.123Z backend:0 out | message` lines
//! (DESIGN §3).
//!
//! Owns the pipe readers, the writer thread and the log files. Never touches supervisor
//! state: it only moves bytes, and reports through counters ([`Logs::dropped`]).
//!
//! ```text
//!  child pipe ─► reader task (event loop) ──(id, time, ≤64 KiB chunk)──► bounded channel
//!                                                                          │
//!                  writer thread: framer ─► format ─► one write per file per batch
//! ```
//! - [`reader`]: one tokio task per pipe; reads and stamps chunks, nothing more, so the
//!   event loop stays light.
//! - [`framer`] (pure): bytes → lines; `\r\n`, over-long lines, invalid UTF-8.
//! - [`format`](mod@format) (pure): line → text (` | `, or ` + ` for a continuation piece of a line
//!   longer than [`framer::MAX_LINE`]).
//! - [`writer`]: the one thread that frames, formats and writes, and counts what an I/O
//!   error drops.
//! - [`time`]: RFC 3339 timestamps without a date crate.
//!
//! A line's time is when supd read the chunk that completed it (one clock read per chunk,
//! not per line). Each attached pipe has its own framer, so the lines of different
//! streams, instances and pids never mix, even in the same file.
//!
//! **Nothing is lost to speed** (DESIGN §2): the channel is bounded, so when the writer
//! falls behind, readers wait on it, stop reading, the pipe fills and the child blocks
//! in `write`. Only an I/O error on the log file drops lines, and then they are counted
//! per app and a marker line `<time> <app>:- err | [supd] N lines dropped (<error>)` is
//! written before the next lines once writing works again.
//!
//! **Memory bound**, whatever the children write: queued chunks ≤ [`CHANNEL_CAPACITY`] ×
//! [`reader::READ_SIZE`] = 32 × 64 KiB = 2 MiB; the batch in the writer ≤
//! [`writer::BATCH_BYTES`] + 64 KiB = 320 KiB; formatted text ≤ [`writer::WRITE_AT`] + one
//! line ≈ 0.6 MiB (1 MiB buffer). Per attached stream, the framer keeps ≤ 4 KiB, or up to
//! 128 KiB while a line longer than 4 KiB is incomplete. An idle reader holds no buffer.

pub mod format;
pub mod framer;
pub mod reader;
pub mod time;
pub mod writer;

use std::fmt;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use self::format::Format;
use self::writer::{Msg, Shared, Writer};

/// Chunks that may wait for the writer before readers block (see the memory bound above).
pub const CHANNEL_CAPACITY: usize = 32;

/// How long [`Logs::finish`] waits for the writer to write what was read, after the
/// readers stopped. Only a hung file system makes it matter.
pub const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// Which output of a child a pipe carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

impl Stream {
    /// `"out"` or `"err"`, as written in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose output a pipe carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamMeta {
    /// The app's name, as in the configuration.
    pub app: Arc<str>,
    /// The instance index, 0-based.
    pub index: u32,
    /// The child's pid (kept for the JSON format and diagnostics; not in text lines).
    pub pid: i32,
    /// stdout or stderr.
    pub stream: Stream,
}

/// The running log pipeline: one writer thread and a reader task per attached pipe.
#[derive(Debug)]
pub struct Logs {
    tx: mpsc::Sender<Msg>,
    /// Set to true when readers must stop at the shutdown deadline.
    stop: watch::Sender<bool>,
    /// Completes when the writer thread has written everything and ended.
    done: oneshot::Receiver<()>,
    readers: Mutex<Vec<JoinHandle<()>>>,
    next_id: AtomicU64,
    shared: Arc<Shared>,
}

impl Logs {
    /// Opens every app's log file and starts the writer thread.
    ///
    /// `files`: (app name, log file path) for every app. Missing directories are created
    /// (mode 0750, before umask); files are opened `O_APPEND | O_CREAT | O_CLOEXEC` with
    /// mode 0640. Fails on the first file that cannot be opened, naming it.
    pub fn start(files: Vec<(String, PathBuf)>) -> io::Result<Logs> {
        let mut outputs = Vec::with_capacity(files.len());
        for (app, path) in files {
            let file = open_log(&path).map_err(|e| {
                io::Error::new(e.kind(), format!("log file {}: {e}", path.display()))
            })?;
            outputs.push((app, file));
        }
        let (writer, shared) = Writer::new(Format::Text, framer::MAX_LINE, outputs);
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("sup-logs".into())
            .spawn(move || {
                writer.run(rx);
                let _ = done_tx.send(());
            })?;
        let (stop, _) = watch::channel(false);
        Ok(Logs {
            tx,
            stop,
            done,
            readers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            shared,
        })
    }

    /// Starts reading `pipe` (the read end of a child's stdout or stderr pipe, blocking or
    /// not: it is made non-blocking here) in a task on the current tokio runtime.
    ///
    /// Must be called inside a tokio runtime with I/O enabled; fails otherwise, or if
    /// `pipe` is not the read end of a pipe.
    pub fn attach(&self, meta: StreamMeta, pipe: OwnedFd) -> io::Result<()> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let _guard = runtime.enter();
        let pipe = pipe::Receiver::from_owned_fd(pipe)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let task = runtime.spawn(reader::read_pipe(
            id,
            meta,
            pipe,
            self.tx.clone(),
            self.stop.subscribe(),
            Arc::clone(&self.shared),
        ));
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        // Instances restart for months; keep only the readers still running.
        readers.retain(|r| !r.is_finished());
        readers.push(task);
        Ok(())
    }

    /// Lines of `app` lost to write errors since start (0 for an app without a log file).
    pub fn dropped(&self, app: &str) -> u64 {
        self.shared
            .dropped
            .get(app)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Lines discarded because their app has no log file (not in `files` at start).
    pub fn dropped_unknown(&self) -> u64 {
        self.shared.unknown.load(Ordering::Relaxed)
    }

    /// Pipes whose reading failed with an error (their reader ended there).
    pub fn read_errors(&self) -> u64 {
        self.shared.read_errors.load(Ordering::Relaxed)
    }

    /// Shutdown: waits until every attached pipe reached end of file or `deadline` passed
    /// (then the readers stop; what they already read is still written), lets the writer
    /// write everything and ends its thread.
    ///
    /// Only a file system that hangs for longer than [`FLUSH_GRACE`] makes this return
    /// before the last line is written.
    pub async fn finish(self, deadline: Duration) {
        let Logs {
            tx,
            stop,
            done,
            readers,
            ..
        } = self;
        // The writer ends when the last sender is gone: ours now, the readers' at EOF.
        drop(tx);
        let readers = readers.into_inner().unwrap_or_else(PoisonError::into_inner);
        let all_eof = async {
            for reader in readers {
                let _ = reader.await;
            }
        };
        if tokio::time::timeout(deadline, all_eof).await.is_err() {
            tracing::warn!(
                ?deadline,
                "some child pipes are still open (a descendant holds them); stopped reading them"
            );
            stop.send_replace(true);
        }
        if tokio::time::timeout(FLUSH_GRACE, done).await.is_err() {
            tracing::warn!(grace = ?FLUSH_GRACE, "log writer did not finish writing in time");
        }
    }
}

/// Creates the directory of `path` if needed and opens the file for appending.
fn open_log(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new().recursive(true).mode(0o750).create(dir)?;
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        // std sets O_CLOEXEC already; spelled out because no log fd may leak into a child.
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use nix::fcntl::OFlag;
    use nix::unistd::pipe2;
    use std::io::Write;
    use std::sync::atomic::AtomicUsize;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "sup-logs-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn meta(app: &str, index: u32, stream: Stream) -> StreamMeta {
        StreamMeta {
            app: Arc::from(app),
            index,
            pid: 4242,
            stream,
        }
    }

    /// Checks `line` is `<RFC 3339 ms Z> <rest>` and returns `rest`.
    fn after_timestamp(line: &str) -> &str {
        let b = line.as_bytes();
        assert!(b.len() > 25, "{line:?}");
        for (i, &c) in b[..24].iter().enumerate() {
            let ok = match i {
                4 | 7 => c == b'-',
                10 => c == b'T',
                13 | 16 => c == b':',
                19 => c == b'.',
                23 => c == b'Z',
                _ => c.is_ascii_digit(),
            };
            assert!(ok, "bad timestamp in {line:?}");
        }
        assert_eq!(b[24], b' ', "{line:?}");
        &line[25..]
    }

    #[test]
    fn logs_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Logs>();
    }

    #[test]
    fn every_line_once_in_order() {
        const LINES: usize = 100_000;
        let tmp = TempDir::new("order");
        let path = tmp.0.join("nested/dir/backend.log");
        let logs = Logs::start(vec![("backend".into(), path.clone())]).unwrap();
        runtime().block_on(async {
            let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
            logs.attach(meta("backend", 3, Stream::Out), r).unwrap();
            let child = std::thread::spawn(move || {
                // Like a child with a 64 KiB stdio buffer: writes in 64 KiB chunks, so
                // chunk boundaries fall mid-line.
                let mut out = io::BufWriter::with_capacity(64 * 1024, File::from(w));
                for i in 0..LINES {
                    // 100 bytes with the newline.
                    writeln!(out, "line {i:07} {}", "x".repeat(87)).unwrap();
                }
                write!(out, "final line without newline").unwrap();
                out.flush().unwrap();
            });
            logs.finish(Duration::from_secs(60)).await;
            child.join().unwrap();
        });

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        let mut last_ts = "";
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let rest = after_timestamp(line);
            assert!(&line[..24] >= last_ts, "time went backwards at line {i}");
            last_ts = &line[..24];
            if i < LINES {
                assert_eq!(
                    rest,
                    format!("backend:3 out | line {i:07} {}", "x".repeat(87)),
                    "line {i}"
                );
            } else {
                assert_eq!(rest, "backend:3 out | final line without newline");
            }
            n += 1;
        }
        assert_eq!(n, LINES + 1);
        let mode = std::fs::metadata(&path).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o7022, 0o000, "not group/world writable");
    }

    #[test]
    fn streams_and_instances_share_the_app_file() {
        let tmp = TempDir::new("share");
        let path = tmp.0.join("web.log");
        let logs = Logs::start(vec![("web".into(), path.clone())]).unwrap();
        runtime().block_on(async {
            let mut writers = Vec::new();
            for (index, stream) in [(0, Stream::Out), (0, Stream::Err), (1, Stream::Out)] {
                let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
                logs.attach(meta("web", index, stream), r).unwrap();
                writers.push((format!("{index} {stream}"), File::from(w)));
            }
            for (tag, w) in &mut writers {
                write!(w, "hello from {tag}\r\nbye").unwrap();
            }
            drop(writers);
            logs.finish(Duration::from_secs(10)).await;
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rests: Vec<&str> = text.lines().map(after_timestamp).collect();
        rests.sort_unstable();
        assert_eq!(
            rests,
            [
                "web:0 err | bye",
                "web:0 err | hello from 0 err",
                "web:0 out | bye",
                "web:0 out | hello from 0 out",
                "web:1 out | bye",
                "web:1 out | hello from 1 out",
            ]
        );
    }

    /// /dev/full accepts the open and fails every write with ENOSPC: a deterministic full
    /// disk. Its lines are counted as dropped, and the writer thread keeps serving others.
    #[test]
    fn write_errors_are_counted_and_the_writer_keeps_going() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let tmp = TempDir::new("full");
        let ok_path = tmp.0.join("ok.log");
        let logs = Logs::start(vec![
            ("full".into(), PathBuf::from("/dev/full")),
            ("ok".into(), ok_path.clone()),
        ])
        .unwrap();
        let shared = Arc::clone(&logs.shared);
        runtime().block_on(async {
            let (r, mut w) = pipe2(OFlag::O_CLOEXEC)
                .map(|(r, w)| (r, File::from(w)))
                .unwrap();
            logs.attach(meta("full", 0, Stream::Out), r).unwrap();
            for i in 0..10 {
                writeln!(w, "lost {i}").unwrap();
            }
            drop(w);
            // The writer must have failed on /dev/full before "ok" writes a byte.
            let failed = async {
                while logs.dropped("full") < 10 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(10), failed)
                .await
                .expect("dropped lines counted");

            let (r, mut w) = pipe2(OFlag::O_CLOEXEC)
                .map(|(r, w)| (r, File::from(w)))
                .unwrap();
            logs.attach(meta("ok", 0, Stream::Err), r).unwrap();
            let (r, mut g) = pipe2(OFlag::O_CLOEXEC)
                .map(|(r, w)| (r, File::from(w)))
                .unwrap();
            logs.attach(meta("ghost", 0, Stream::Out), r).unwrap();
            write!(w, "kept 1\nkept 2\n").unwrap();
            write!(g, "nobody\nlistens").unwrap();
            drop((w, g));
            logs.finish(Duration::from_secs(10)).await;
        });
        let text = std::fs::read_to_string(&ok_path).unwrap();
        let rests: Vec<&str> = text.lines().map(after_timestamp).collect();
        assert_eq!(rests, ["ok:0 err | kept 1", "ok:0 err | kept 2"]);
        assert_eq!(shared.dropped["full"].load(Ordering::Relaxed), 10);
        assert_eq!(shared.dropped["ok"].load(Ordering::Relaxed), 0);
        assert_eq!(shared.unknown.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn counters_after_finish() {
        let tmp = TempDir::new("counters");
        let logs = Logs::start(vec![("a".into(), tmp.0.join("a.log"))]).unwrap();
        assert_eq!(logs.dropped("a"), 0);
        assert_eq!(logs.dropped("nope"), 0);
        assert_eq!(logs.read_errors(), 0);
        runtime().block_on(logs.finish(Duration::from_millis(10)));
    }

    /// A descendant keeps the write end open: finish returns at the deadline and still
    /// writes what was read, including the unterminated tail.
    #[test]
    fn finish_stops_at_the_deadline_without_losing_what_was_read() {
        let tmp = TempDir::new("deadline");
        let path = tmp.0.join("a.log");
        let logs = Logs::start(vec![("a".into(), path.clone())]).unwrap();
        let (r, mut w) = pipe2(OFlag::O_CLOEXEC)
            .map(|(r, w)| (r, File::from(w)))
            .unwrap();
        runtime().block_on(async {
            logs.attach(meta("a", 0, Stream::Out), r).unwrap();
            write!(w, "done\nhalf").unwrap();
            let started = std::time::Instant::now();
            logs.finish(Duration::from_millis(200)).await;
            assert!(started.elapsed() < Duration::from_secs(5));
        });
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        let rests: Vec<&str> = text.lines().map(after_timestamp).collect();
        assert_eq!(rests, ["a:0 out | done", "a:0 out | half"]);
    }

    #[test]
    fn attach_outside_a_runtime_or_to_a_file_fails() {
        let tmp = TempDir::new("attach");
        let logs = Logs::start(vec![("a".into(), tmp.0.join("a.log"))]).unwrap();
        let (r, _w) = pipe2(OFlag::O_CLOEXEC).unwrap();
        assert!(logs.attach(meta("a", 0, Stream::Out), r).is_err());
        runtime().block_on(async {
            let file = OwnedFd::from(File::open("/dev/null").unwrap());
            assert!(logs.attach(meta("a", 0, Stream::Out), file).is_err());
            logs.finish(Duration::from_secs(1)).await;
        });
    }

    #[test]
    fn start_names_the_file_it_cannot_open() {
        let tmp = TempDir::new("badpath");
        std::fs::write(tmp.0.join("file"), b"").unwrap();
        let bad = tmp.0.join("file/sub/a.log");
        let err = Logs::start(vec![("a".into(), bad.clone())]).unwrap_err();
        assert!(err.to_string().contains(&*bad.to_string_lossy()), "{err}");
    }
}
