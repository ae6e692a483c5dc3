//! The running log pipeline, [`Logs`]: starts the writer thread, attaches a reader task
//! to each child pipe, opens the outputs of a new configuration, hands the control calls
//! (reopen, flush, follow, line watches, configure) to the writer in order with the
//! chunks already read, and shuts it all down.
//!
//! Owns the channel to the writer thread, the reader tasks, each app's settings,
//! in-flight budget and counters. Never frames, formats or writes a record (the writer thread does, see
//! [`super::writer`]) and never touches supervisor state.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::{Config, LogSettings, LogTarget};

use super::follow::Followers;
use super::format::Format;
use super::output::{AppOut, AppSpec, Counters};
use super::reader;
use super::record::{Filter, Record};
use super::rotate::Policy;
use super::stream::StreamMeta;
use super::watch::LineWatch;
use super::writer::{Configure, Msg, Shared, Writer};

/// Chunks of one app that may be read and not yet written (the app's in-flight budget;
/// see the memory bound in [the pipeline's overview](super)).
pub const APP_BUDGET: usize = 16;

/// How long [`Logs::finish`] waits for the writer to write what was read, after the
/// readers stopped. Only a hung file system (or a long compression) makes it matter.
pub const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// A reader task and what it reads.
#[derive(Debug)]
struct ReaderTask {
    id: u64,
    meta: StreamMeta,
    /// Gives the pipe back when paused.
    task: JoinHandle<Option<OwnedFd>>,
}

/// A child's pipe taken out of the pipeline by [`Logs::pause`], with its unfinished line.
#[derive(Debug)]
pub struct Paused {
    /// Whose output it carries.
    pub meta: StreamMeta,
    /// The read end, bytes not read yet still in it.
    pub pipe: OwnedFd,
    /// Bytes read after the stream's last complete line.
    pub partial: Vec<u8>,
    /// A piece of that line (longer than `log_max_line`) was already written.
    pub continued: bool,
}

/// One app as the log pipeline needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppLog {
    /// The app's name.
    pub name: String,
    /// Its `log_*` keys.
    pub settings: LogSettings,
    /// `log_dir`, where its file goes unless `log_file` says otherwise.
    pub dir: PathBuf,
}

impl AppLog {
    /// Every app of `config`.
    pub fn all(config: &Config) -> Vec<AppLog> {
        config
            .apps
            .iter()
            .map(|app| AppLog {
                name: app.name.clone(),
                settings: app.log.clone(),
                dir: config.supervisor.log_dir.clone(),
            })
            .collect()
    }
}

/// What [`Logs`] keeps of an app.
#[derive(Debug)]
struct AppEntry {
    /// Its settings, to tell what a new configuration changes.
    log: AppLog,
    /// Its current files (none when it writes to stdout only).
    paths: Vec<PathBuf>,
    budget: Arc<Semaphore>,
    counters: Counters,
}

/// The running log pipeline: one writer thread and a reader task per attached pipe.
#[derive(Debug)]
pub struct Logs {
    tx: mpsc::UnboundedSender<Msg>,
    /// Tells the readers to stop (the shutdown deadline) or to pause (a re-exec).
    stop: watch::Sender<reader::Halt>,
    /// Completes when the writer thread has written everything and ended.
    done: oneshot::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    readers: Mutex<Vec<ReaderTask>>,
    next_id: AtomicU64,
    shared: Arc<Shared>,
    apps: HashMap<String, AppEntry>,
    /// The budget of pipes of apps the pipeline does not know.
    unknown_budget: Arc<Semaphore>,
    /// supd runs as PID 1 (stdout is the default target).
    pid1: bool,
    /// What the stdout target writes to, once an app needs it.
    stdout: Option<Arc<File>>,
}

/// The outputs of the new and changed apps of a configuration, open, with what [`Logs`]
/// keeps of them.
type Opened = (Vec<AppOut>, Vec<AppEntry>);

impl Logs {
    /// Opens every app's log files and starts the writer thread.
    ///
    /// `pid1`: supd runs as PID 1, which makes stdout the default `log_target`.
    /// Missing directories are created (mode 0750, before umask); files are opened
    /// `O_APPEND | O_CREAT | O_CLOEXEC` with mode 0640. Rotated files left by an earlier
    /// run are tidied (interrupted compressions finished, files past `log_retain`
    /// deleted). Fails on the first file that cannot be opened, naming it. When a name
    /// repeats, the first app wins.
    pub fn start(apps: Vec<AppLog>, pid1: bool) -> io::Result<Logs> {
        Logs::start_with(apps, pid1, None)
    }

    /// [`Logs::start`] writing the stdout target to `stdout` instead of a duplicate of
    /// fd 1 (tests).
    pub(crate) fn start_with(
        apps: Vec<AppLog>,
        pid1: bool,
        stdout: Option<File>,
    ) -> io::Result<Logs> {
        let mut stdout = stdout.map(Arc::new);
        let apps = distinct(apps);
        let (outs, entries) = open_all(apps, pid1, &HashMap::new(), &mut stdout)?;
        let (writer, shared) = Writer::new(outs);
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("sup-logs".into())
            .spawn(move || {
                writer.run(rx);
                let _ = done_tx.send(());
            })?;
        let (stop, _) = watch::channel(reader::Halt::No);
        Ok(Logs {
            tx,
            stop,
            done,
            thread: Some(thread),
            readers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            shared,
            apps: entries
                .into_iter()
                .map(|e| (e.log.name.clone(), e))
                .collect(),
            unknown_budget: Arc::new(Semaphore::new(APP_BUDGET)),
            pid1,
            stdout,
        })
    }

    /// Make the pipeline's apps those of `apps` (the full new set), without restarting
    /// anything and without losing, cutting or repeating a line.
    ///
    /// - A new app's outputs are opened as by [`Logs::start`] (its rotated files are
    ///   tidied by the writer thread); pipes attached for it afterwards are written there,
    ///   and so is what pipes of that name, attached while it was unknown, read from now
    ///   on.
    /// - A changed app (any of its [`AppLog`] differs): its new outputs are opened, and the
    ///   writer switches to them between two writes: records read before go whole to the
    ///   old outputs, the rest to the new ones (a line half read then goes whole to the new
    ///   one); its pipes already attached keep flowing, framed and formatted as the new
    ///   settings say. Its [`Logs::lines`] and [`Logs::dropped`] go on counting.
    /// - An app whose [`AppLog`] is the same is untouched (its files are not reopened).
    /// - An app no longer in `apps` is unknown from now on to [`Logs::lines`],
    ///   [`Logs::paths`], [`Logs::flush`] and to pipes attached later, but the pipes
    ///   attached for it so far keep writing to its outputs, which are closed once the
    ///   last of them reached end of file.
    ///
    /// Files are opened here, on the caller's thread, before anything changes: if one
    /// cannot be opened, the error names it and the pipeline stays as it was (a file or
    /// directory already created for another new output stays, empty). When a name
    /// repeats, the first app wins.
    pub fn configure(&mut self, apps: Vec<AppLog>) -> io::Result<()> {
        let apps = distinct(apps);
        let mut removed: Vec<Arc<str>> = Vec::new();
        for name in self.apps.keys() {
            if !apps.iter().any(|a| a.name == *name) {
                removed.push(Arc::from(name.as_str()));
            }
        }
        let changed: Vec<AppLog> = apps
            .into_iter()
            .filter(|a| self.apps.get(&a.name).map_or(true, |e| e.log != *a))
            .collect();
        if changed.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let mut stdout = self.stdout.clone();
        let (outs, entries) = open_all(changed, self.pid1, &self.apps, &mut stdout)?;
        self.tx
            .send(Msg::Configure(Configure {
                apps: outs,
                removed: removed.clone(),
            }))
            .map_err(|_| writer_gone())?;
        self.stdout = stdout;
        for name in &removed {
            self.apps.remove(&**name);
        }
        for entry in entries {
            self.apps.insert(entry.log.name.clone(), entry);
        }
        Ok(())
    }

    /// Starts reading `pipe` (the read end of a child's stdout or stderr pipe, blocking or
    /// not: it is made non-blocking here) in a task on the current tokio runtime.
    ///
    /// Must be called inside a tokio runtime with I/O enabled; fails otherwise, if `pipe`
    /// is not the read end of a pipe, or after the writer stopped.
    pub fn attach(&self, meta: StreamMeta, pipe: OwnedFd) -> io::Result<()> {
        self.attach_with(meta, pipe, None)
    }

    /// [`Logs::attach`] for a pipe [`Logs::pause`] gave back (here or in the supd before a
    /// re-exec): its first line begins with the bytes the pipeline had already read.
    pub fn resume(&self, paused: Paused) -> io::Result<()> {
        let partial = (paused.partial, paused.continued);
        self.attach_with(paused.meta, paused.pipe, Some(partial))
    }

    fn attach_with(
        &self,
        meta: StreamMeta,
        pipe: OwnedFd,
        partial: Option<(Vec<u8>, bool)>,
    ) -> io::Result<()> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let _guard = runtime.enter();
        let pipe = pipe::Receiver::from_owned_fd(pipe)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let budget = match self.apps.get(&*meta.app) {
            Some(app) => Arc::clone(&app.budget),
            None => Arc::clone(&self.unknown_budget),
        };
        // Sent here, not by the task, so it is queued before a later configure.
        self.tx
            .send(Msg::Open {
                id,
                meta: meta.clone(),
                partial,
            })
            .map_err(|_| writer_gone())?;
        let task = runtime.spawn(reader::read_pipe(
            id,
            meta.clone(),
            pipe,
            self.tx.clone(),
            self.stop.subscribe(),
            Arc::clone(&self.shared),
            budget,
        ));
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        // Instances restart for months; keep only the readers still running. Pruned only
        // when the vector is full, so an attach costs O(1) on average rather than a pass
        // over every reader (which made starting N instances cost N² checks).
        if readers.len() == readers.capacity() {
            readers.retain(|r| !r.task.is_finished());
        }
        readers.push(ReaderTask { id, meta, task });
        Ok(())
    }

    /// A re-exec: stops every reader, leaving the bytes not read yet in their pipes, has
    /// the writer write everything read so far, and returns each open pipe with the line
    /// its stream had begun. Nothing is lost, cut or written twice: the next supd (or this
    /// one, if the exec fails) [`Logs::resume`]s each pipe where it was.
    pub async fn pause(&self) -> io::Result<Vec<Paused>> {
        self.stop.send_replace(reader::Halt::Pause);
        let readers =
            std::mem::take(&mut *self.readers.lock().unwrap_or_else(PoisonError::into_inner));
        let mut pipes = Vec::new();
        for ReaderTask { id, meta, task } in readers {
            if let Ok(Some(pipe)) = task.await {
                pipes.push((id, meta, pipe));
            }
        }
        let (reply, partials) = oneshot::channel();
        let handed = self.tx.send(Msg::Handover { reply });
        self.stop.send_replace(reader::Halt::No);
        handed.map_err(|_| writer_gone())?;
        let mut partials = partials.await.map_err(|_| writer_gone())?;
        Ok(pipes
            .into_iter()
            .map(|(id, meta, pipe)| {
                let (partial, continued) = partials.remove(&id).unwrap_or_default();
                Paused {
                    meta,
                    pipe,
                    partial,
                    continued,
                }
            })
            .collect())
    }

    /// Lines of `app` lost to write errors since start, or since it was added by
    /// [`Logs::configure`] (0 for an app the pipeline does not know).
    pub fn dropped(&self, app: &str) -> u64 {
        self.apps
            .get(app)
            .map_or(0, |a| a.counters.dropped.load(Ordering::Relaxed))
    }

    /// Lines discarded because the pipeline did not know their app.
    pub fn dropped_unknown(&self) -> u64 {
        self.shared.unknown.load(Ordering::Relaxed)
    }

    /// Pipes whose reading failed with an error (their reader ended there).
    pub fn read_errors(&self) -> u64 {
        self.shared.read_errors.load(Ordering::Relaxed)
    }

    /// The current log files of `app`: one, or two with `log_split`; none when it writes
    /// to stdout only or is unknown. Rotated files are these names plus `.1`, `.2`, …
    /// (`.gz` when compressed).
    pub fn paths(&self, app: &str) -> Vec<PathBuf> {
        self.apps
            .get(app)
            .map(|a| a.paths.clone())
            .unwrap_or_default()
    }

    /// Closes and reopens every log file by name, between two writes of the writer
    /// thread: after an external logrotate renamed them, new files are created. Returns at
    /// once (the writer does it in order with the records already read).
    pub fn reopen(&self) {
        let _ = self.tx.send(Msg::Reopen);
    }

    /// Call `watch.matched` (on the writer thread) with the first line of process `pid`
    /// that matches `watch.regex`: `ready = { log = "..." }`. The watch ends with a match
    /// or when one of the process's pipes closes.
    pub fn watch(&self, pid: i32, watch: LineWatch) {
        let _ = self.tx.send(Msg::Watch { pid, watch });
    }

    /// Lines taken from `app`'s pipes since supd started, or since it was added by
    /// [`Logs::configure`] (0 for an app the pipeline does not know).
    pub fn lines(&self, app: &str) -> u64 {
        self.apps
            .get(app)
            .map_or(0, |a| a.counters.lines.load(Ordering::Relaxed))
    }

    /// `pm2 flush`: empties the current files of `app` (every app if `None`) and deletes
    /// their rotated files. Done by the writer thread between two writes, so no record is
    /// cut; records read before the call are flushed away too, a line the child has not
    /// finished yet is written whole afterwards.
    ///
    /// Returns at once; the future (which borrows nothing, so it can be spawned) completes
    /// when it is done, with the first error met (`NotFound` for an unknown app).
    pub fn flush(
        &self,
        app: Option<&str>,
    ) -> impl Future<Output = io::Result<()>> + Send + 'static {
        let (reply, done) = oneshot::channel();
        let sent = match app {
            Some(name) if !self.apps.contains_key(name) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("unknown app `{name}`"),
            )),
            _ => self
                .tx
                .send(Msg::Flush {
                    app: app.map(Arc::from),
                    reply,
                })
                .map_err(|_| writer_gone()),
        };
        async move {
            sent?;
            done.await.map_err(|_| writer_gone())?
        }
    }

    /// Live records passing `filter`, from the next one the writer writes on. The queue
    /// holds [`FOLLOW_QUEUE`](super::follow::FOLLOW_QUEUE) records; a follower that falls
    /// behind never slows the writer: records are skipped for it, and before its next
    /// record it receives a [`Record`] (stream `err`, no instance) saying `[supd] N
    /// records skipped` (its app: the filter's, or `supd` for a follower of every app).
    /// Dropping the receiver ends the follow; the channel closes when the pipeline
    /// finishes.
    pub fn follow(&self, filter: Filter) -> mpsc::Receiver<Record> {
        let (tx, rx) = Followers::channel();
        let _ = self.tx.send(Msg::Follow { filter, tx });
        rx
    }

    /// Shutdown: waits until every attached pipe reached end of file or `deadline` passed
    /// (then the readers stop; what they already read is still written), lets the writer
    /// write everything and ends its thread.
    ///
    /// Only a file system that hangs for longer than [`FLUSH_GRACE`] (or compressions
    /// still running after it) makes this return before the writer thread ended; the last
    /// record is written before compressions are waited for, and an interrupted
    /// compression is finished at the next start.
    pub async fn finish(mut self, deadline: Duration) {
        // Detached: `done` says when it ends.
        drop(self.thread.take());
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
                let _ = reader.task.await;
            }
        };
        if tokio::time::timeout(deadline, all_eof).await.is_err() {
            tracing::warn!(
                ?deadline,
                "some child pipes are still open (a descendant holds them); stopped reading them"
            );
            stop.send_replace(reader::Halt::Stop);
        }
        if tokio::time::timeout(FLUSH_GRACE, done).await.is_err() {
            tracing::warn!(grace = ?FLUSH_GRACE, "log writer did not finish in time");
        }
    }
}

fn writer_gone() -> io::Error {
    io::Error::other("the log writer has stopped")
}

/// `apps` without the later ones of a repeated name.
fn distinct(mut apps: Vec<AppLog>) -> Vec<AppLog> {
    let mut seen = HashSet::with_capacity(apps.len());
    apps.retain(|app| {
        let first = seen.insert(app.name.clone());
        if !first {
            tracing::warn!(app = %app.name, "app listed twice for logs; its first settings are used");
        }
        first
    });
    apps
}

/// Opens the outputs of `apps`, all or none. An app in `known` keeps its budget and
/// counters. `stdout` is opened (a duplicate of fd 1) if an app writes there and it is
/// not open yet.
fn open_all(
    apps: Vec<AppLog>,
    pid1: bool,
    known: &HashMap<String, AppEntry>,
    stdout: &mut Option<Arc<File>>,
) -> io::Result<Opened> {
    let mut outs = Vec::with_capacity(apps.len());
    let mut entries = Vec::with_capacity(apps.len());
    for app in apps {
        let target = app.settings.target_for(pid1);
        let files = match target {
            LogTarget::Stdout => Vec::new(),
            LogTarget::File | LogTarget::Both => app.settings.paths(&app.name, &app.dir),
        };
        let spec = AppSpec {
            name: app.name.clone(),
            format: Format::of(&app.settings),
            max_line: app.settings.max_line,
            policy: Policy::of(&app.settings),
            retain: app.settings.retain,
            compress: app.settings.compress,
            files: files.clone(),
            stdout: target != LogTarget::File,
        };
        if spec.stdout && stdout.is_none() {
            // A duplicate, so the writer owns what it writes to (CLOEXEC, like every fd).
            let fd = io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| io::Error::new(e.kind(), format!("stdout: {e}")))?;
            *stdout = Some(Arc::new(File::from(fd)));
        }
        let (budget, counters) = match known.get(&app.name) {
            Some(e) => (Arc::clone(&e.budget), e.counters.clone()),
            None => (Arc::new(Semaphore::new(APP_BUDGET)), Counters::default()),
        };
        outs.push(AppOut::open(spec, stdout.as_ref(), &counters)?);
        entries.push(AppEntry {
            log: app,
            paths: files,
            budget,
            counters,
        });
    }
    Ok((outs, entries))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use crate::logs::tests::TempDir;
    use crate::logs::{follow, parse_line, rotate, tail, time, Stream};
    use nix::fcntl::OFlag;
    use nix::unistd::pipe2;
    use std::io::Write;
    use std::path::Path;

    /// Apps writing to exactly these files, with default settings otherwise.
    fn files(list: &[(&str, PathBuf)]) -> Vec<AppLog> {
        list.iter()
            .map(|(name, path)| AppLog {
                name: name.to_string(),
                settings: LogSettings {
                    file: Some(path.clone()),
                    ..LogSettings::default()
                },
                dir: PathBuf::from("/nonexistent"),
            })
            .collect()
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
        assert!(
            time::parse_ms(&b[..24]).is_some(),
            "bad timestamp in {line:?}"
        );
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
        let logs = Logs::start(files(&[("backend", path.clone())]), false).unwrap();
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
        let logs = Logs::start(files(&[("web", path.clone())]), false).unwrap();
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
        let logs = Logs::start(
            files(&[
                ("full", PathBuf::from("/dev/full")),
                ("ok", ok_path.clone()),
            ]),
            false,
        )
        .unwrap();
        let shared = Arc::clone(&logs.shared);
        let (full, ok) = (
            logs.apps["full"].counters.clone(),
            logs.apps["ok"].counters.clone(),
        );
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
        assert_eq!(full.dropped.load(Ordering::Relaxed), 10);
        assert_eq!(ok.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(shared.unknown.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn counters_after_finish() {
        let tmp = TempDir::new("counters");
        let logs = Logs::start(files(&[("a", tmp.0.join("a.log"))]), false).unwrap();
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
        let logs = Logs::start(files(&[("a", path.clone())]), false).unwrap();
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
        let logs = Logs::start(files(&[("a", tmp.0.join("a.log"))]), false).unwrap();
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
        let err = Logs::start(files(&[("a", bad.clone())]), false).unwrap_err();
        assert!(err.to_string().contains(&*bad.to_string_lossy()), "{err}");
    }

    // --- Rotation, compression, flush, reopen, follow, tail, targets, JSON. ---

    use crate::config::{LogFormat, LogJson};
    use std::io::Read;

    fn app_with(name: &str, path: &Path, edit: impl FnOnce(&mut LogSettings)) -> AppLog {
        let mut settings = LogSettings {
            file: Some(path.to_path_buf()),
            ..LogSettings::default()
        };
        edit(&mut settings);
        AppLog {
            name: name.into(),
            settings,
            dir: PathBuf::from("/nonexistent"),
        }
    }

    /// A pipe attached as `app`'s instance 0 `stream`, and its write end.
    fn pipe_for(logs: &Logs, app: &str, stream: Stream) -> File {
        let (r, w) = pipe2(OFlag::O_CLOEXEC).unwrap();
        logs.attach(meta(app, 0, stream), r).unwrap();
        File::from(w)
    }

    /// Polls until `done` holds (the writer works on its own thread).
    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The messages of the whole lines: a file read while the writer appends may end in
    /// part of one.
    fn msgs_of(text: &[u8]) -> Vec<String> {
        text.split_inclusive(|&b| b == b'\n')
            .filter_map(|l| l.strip_suffix(b"\n"))
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(&parse_line(l).unwrap().msg).into_owned())
            .collect()
    }

    fn file_msgs(path: &Path) -> Vec<String> {
        msgs_of(&std::fs::read(path).unwrap_or_default())
    }

    fn gunzip(path: &Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    }

    /// `lines` numbered lines from a child writing flat out, through size rotation with
    /// gzip: after decompressing, every line is there exactly once, in order, no file is
    /// larger than the limit, and every file holds whole records only.
    fn flood_through_rotation_with_gzip(lines: usize) {
        const MAX_SIZE: u64 = 1 << 20;
        let tmp = TempDir::new("flood");
        let path = tmp.0.join("flood.log");
        let app = app_with("flood", &path, |s| {
            s.max_size = Some(MAX_SIZE);
            s.retain = 1000;
            s.compress = true;
        });
        let mut logs = Logs::start(vec![app], false).unwrap();
        let thread = logs.thread.take().unwrap();
        runtime().block_on(async {
            let w = pipe_for(&logs, "flood", Stream::Out);
            let child = std::thread::spawn(move || {
                let mut out = io::BufWriter::with_capacity(64 * 1024, w);
                for i in 0..lines {
                    writeln!(out, "{i:08}").unwrap();
                }
            });
            logs.finish(Duration::from_secs(600)).await;
            child.join().unwrap();
        });
        // The writer thread waits for the compressor before it ends.
        thread.join().unwrap();

        let mut rotated = Vec::new();
        for entry in std::fs::read_dir(&tmp.0).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name == "flood.log" {
                continue;
            }
            let k: u32 = name
                .strip_prefix("flood.log.")
                .and_then(|n| n.strip_suffix(".gz"))
                .unwrap_or_else(|| panic!("unexpected file {name}"))
                .parse()
                .unwrap();
            rotated.push(k);
        }
        rotated.sort_unstable();
        let files = rotated.len();
        assert_eq!(rotated, (1..=files as u32).collect::<Vec<_>>());
        let min_files = (lines as u64 * 40) / MAX_SIZE;
        assert!(files as u64 >= min_files, "{files} rotated files");

        let mut next = 0usize;
        let mut check = |bytes: &[u8]| {
            assert!(
                bytes.len() as u64 <= MAX_SIZE,
                "a file of {} bytes",
                bytes.len()
            );
            assert!(bytes.is_empty() || bytes.ends_with(b"\n"));
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let record = parse_line(line).unwrap();
                assert_eq!(record.msg, format!("{next:08}").as_bytes(), "line {next}");
                next += 1;
            }
        };
        for k in (1..=files as u32).rev() {
            check(&gunzip(&rotate::rotated_name(&path, k, true)));
        }
        check(&std::fs::read(&path).unwrap());
        assert_eq!(next, lines);
    }

    /// A million lines (about 3.5 s in a debug build, most of it gzip).
    #[test]
    fn a_million_lines_through_size_rotation_with_gzip_lose_and_repeat_nothing() {
        flood_through_rotation_with_gzip(1_000_000);
    }

    #[test]
    fn flush_truncates_and_deletes_rotated_files() {
        let tmp = TempDir::new("flush");
        let path = tmp.0.join("a.log");
        let other = tmp.0.join("b.log");
        let logs = Logs::start(
            vec![
                app_with("a", &path, |s| {
                    s.max_size = Some(1024);
                    s.retain = 3;
                }),
                app_with("b", &other, |_| {}),
            ],
            false,
        )
        .unwrap();
        runtime().block_on(async {
            let mut a = pipe_for(&logs, "a", Stream::Out);
            let mut b = pipe_for(&logs, "b", Stream::Out);
            for i in 0..100 {
                writeln!(a, "line {i:02}").unwrap();
            }
            writeln!(b, "kept").unwrap();
            wait_until("a's last line written", || {
                file_msgs(&path).last().map(String::as_str) == Some("line 99")
            })
            .await;
            wait_until("b written", || file_msgs(&other) == ["kept"]).await;
            assert!(rotate::rotated_name(&path, 1, false).exists());

            logs.flush(Some("a")).await.unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
            for k in 1..=3 {
                assert!(!rotate::rotated_name(&path, k, false).exists());
            }
            assert_eq!(
                file_msgs(&other),
                ["kept"],
                "another app's file is untouched"
            );
            let err = logs.flush(Some("nope")).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);

            writeln!(a, "after").unwrap();
            drop((a, b));
            logs.finish(Duration::from_secs(10)).await;
        });
        assert_eq!(file_msgs(&path), ["after"]);
    }

    #[test]
    fn reopen_after_the_file_was_renamed_away_writes_a_new_file() {
        let tmp = TempDir::new("reopen");
        let path = tmp.0.join("a.log");
        let moved = tmp.0.join("a.log.moved");
        let logs = Logs::start(files(&[("a", path.clone())]), false).unwrap();
        runtime().block_on(async {
            let mut w = pipe_for(&logs, "a", Stream::Out);
            writeln!(w, "before").unwrap();
            wait_until("before written", || file_msgs(&path) == ["before"]).await;
            std::fs::rename(&path, &moved).unwrap();
            logs.reopen();
            writeln!(w, "after").unwrap();
            drop(w);
            logs.finish(Duration::from_secs(10)).await;
        });
        assert_eq!(file_msgs(&moved), ["before"]);
        assert_eq!(file_msgs(&path), ["after"]);
    }

    #[test]
    fn followers_receive_the_records_as_written() {
        let tmp = TempDir::new("follow");
        let path = tmp.0.join("a.log");
        let logs = Logs::start(files(&[("a", path.clone())]), false).unwrap();
        runtime().block_on(async {
            let mut all = logs.follow(Filter::default());
            let mut err = logs.follow(Filter {
                app: Some("a".into()),
                index: Some(0),
                stream: Some(Stream::Err),
            });
            let mut out = pipe_for(&logs, "a", Stream::Out);
            let mut e = pipe_for(&logs, "a", Stream::Err);
            for i in 0..100 {
                writeln!(out, "out {i}").unwrap();
            }
            write!(e, "oops").unwrap();
            drop((out, e));
            for i in 0..100 {
                let r = all.recv().await.unwrap();
                if r.stream == Stream::Err {
                    assert_eq!(r.msg, b"oops");
                    continue;
                }
                assert_eq!(
                    (r.app.as_str(), r.instance, r.pid, r.cont),
                    ("a", Some(0), Some(4242), false)
                );
                assert_eq!(r.msg, format!("out {i}").as_bytes());
            }
            let r = err.recv().await.unwrap();
            assert_eq!((r.stream, r.msg.as_slice()), (Stream::Err, &b"oops"[..]));
            logs.finish(Duration::from_secs(10)).await;
            assert!(
                err.recv().await.is_none(),
                "the follow ends with the pipeline"
            );
        });
    }

    #[test]
    fn a_slow_follower_is_told_what_it_missed_and_never_slows_the_writer() {
        let tmp = TempDir::new("slow");
        let path = tmp.0.join("a.log");
        let logs = Logs::start(files(&[("a", path.clone())]), false).unwrap();
        let lines = follow::FOLLOW_QUEUE + 500;
        runtime().block_on(async {
            let mut slow = logs.follow(Filter::default());
            let mut w = pipe_for(&logs, "a", Stream::Out);
            for i in 0..lines {
                writeln!(w, "line {i}").unwrap();
            }
            // Nobody reads `slow`, yet every line reaches the file.
            wait_until("every line written", || file_msgs(&path).len() == lines).await;
            for i in 0..follow::FOLLOW_QUEUE {
                assert_eq!(
                    slow.recv().await.unwrap().msg,
                    format!("line {i}").as_bytes()
                );
            }
            assert!(slow.try_recv().is_err());
            writeln!(w, "next").unwrap();
            let note = slow.recv().await.unwrap();
            assert_eq!(note.msg, b"[supd] 500 records skipped");
            assert_eq!((note.app.as_str(), note.instance), (follow::ALL_APPS, None));
            assert_eq!(slow.recv().await.unwrap().msg, b"next");
            drop(w);
            logs.finish(Duration::from_secs(10)).await;
        });
    }

    #[test]
    fn tail_reads_the_current_file_then_the_compressed_rotated_one() {
        let tmp = TempDir::new("tail");
        let path = tmp.0.join("a.log");
        let app = app_with("a", &path, |s| {
            s.max_size = Some(1024);
            s.retain = 3;
            s.compress = true;
        });
        let mut logs = Logs::start(vec![app], false).unwrap();
        let thread = logs.thread.take().unwrap();
        let paths = logs.paths("a");
        assert_eq!(paths, std::slice::from_ref(&path));
        runtime().block_on(async {
            let mut w = pipe_for(&logs, "a", Stream::Out);
            for i in 0..100 {
                writeln!(w, "line {i:02}").unwrap();
            }
            drop(w);
            logs.finish(Duration::from_secs(10)).await;
        });
        thread.join().unwrap();
        let current = file_msgs(&path).len();
        assert!(current < 30, "the current file holds {current} records");
        assert!(rotate::rotated_name(&path, 1, true).exists());
        let got = tail(&paths, &Filter::default(), 30).unwrap();
        let want: Vec<String> = (70..100).map(|i| format!("line {i:02}")).collect();
        let got: Vec<String> = got
            .iter()
            .map(|r| String::from_utf8(r.msg.clone()).unwrap())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn stdout_and_both_targets_and_the_pid1_default() {
        use crate::config::LogTarget;
        let tmp = TempDir::new("targets");
        let stdout_path = tmp.0.join("stdout");
        let stdout = File::create(&stdout_path).unwrap();
        let (s, b, d) = (
            tmp.0.join("s.log"),
            tmp.0.join("b.log"),
            tmp.0.join("d.log"),
        );
        let apps = vec![
            app_with("s", &s, |x| x.target = Some(LogTarget::Stdout)),
            app_with("b", &b, |x| x.target = Some(LogTarget::Both)),
            app_with("d", &d, |_| {}),
        ];
        // As PID 1, an app without log_target writes to stdout.
        let logs = Logs::start_with(apps.clone(), true, Some(stdout)).unwrap();
        assert!(logs.paths("s").is_empty());
        assert_eq!(logs.paths("b"), std::slice::from_ref(&b));
        assert!(logs.paths("d").is_empty());
        runtime().block_on(async {
            for name in ["s", "b", "d"] {
                let mut w = pipe_for(&logs, name, Stream::Out);
                writeln!(w, "from {name}").unwrap();
            }
            logs.finish(Duration::from_secs(10)).await;
        });
        let mut on_stdout = file_msgs(&stdout_path);
        on_stdout.sort();
        assert_eq!(on_stdout, ["from b", "from d", "from s"]);
        assert_eq!(file_msgs(&b), ["from b"]);
        assert!(!s.exists() && !d.exists());

        // Not PID 1: files by default, and stdout is never touched for them.
        let logs = Logs::start_with(apps[2..].to_vec(), false, None).unwrap();
        assert_eq!(logs.paths("d"), std::slice::from_ref(&d));
        runtime().block_on(logs.finish(Duration::from_secs(1)));
    }

    #[test]
    fn json_files_embed_objects_and_keep_every_byte() {
        let tmp = TempDir::new("json");
        let path = tmp.0.join("api.log");
        let app = app_with("api", &path, |s| {
            s.format = LogFormat::Json;
            s.json = LogJson::Embed;
            s.max_line = 1024;
        });
        let logs = Logs::start(vec![app], false).unwrap();
        let long: Vec<u8> = (0..3000u32).map(|i| b"abc\xff"[(i % 4) as usize]).collect();
        runtime().block_on(async {
            let mut w = pipe_for(&logs, "api", Stream::Out);
            w.write_all(b"{\"level\":30,\"msg\":\"hi\"}\r\nplain\nbad \xfe\n")
                .unwrap();
            w.write_all(&long).unwrap();
            w.write_all(b"\n{\"unterminated\":true}").unwrap();
            drop(w);
            logs.finish(Duration::from_secs(10)).await;
        });
        let text = std::fs::read(&path).unwrap();
        assert!(text.is_ascii(), "invalid UTF-8 is escaped");
        let records: Vec<Record> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| parse_line(l).unwrap())
            .collect();
        let lines: Vec<&str> = std::str::from_utf8(&text).unwrap().lines().collect();
        assert!(
            lines[0].ends_with(",\"msg\":{\"level\":30,\"msg\":\"hi\"}}"),
            "{}",
            lines[0]
        );
        assert!(records[0].embedded);
        assert_eq!(records[1].msg, b"plain");
        assert_eq!(records[2].msg, b"bad \xfe");
        assert!(lines[2].ends_with(",\"bin\":true}"));
        // The long line: pieces of at most 1024 bytes, marked, joined back exactly.
        let pieces = &records[3..6];
        assert_eq!(
            pieces.iter().map(|r| r.cont).collect::<Vec<_>>(),
            [false, true, true]
        );
        assert!(pieces.iter().all(|r| r.msg.len() <= 1024 && !r.embedded));
        assert_eq!(pieces.concat_msgs(), long);
        assert!(
            records[6].embedded,
            "the last line, without newline, at exit"
        );
        assert_eq!(records[6].msg, b"{\"unterminated\":true}");
        assert_eq!(records.len(), 7);
        assert!(records.iter().all(|r| r.pid == Some(4242)));
    }

    // --- configure: apps added, changed, kept and removed while pipes flow. ---

    /// How many of this process's fds are open on `path`.
    fn fds_on(path: &Path) -> usize {
        let Ok(path) = path.canonicalize() else {
            return 0;
        };
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| *target == path)
            .count()
    }

    #[test]
    fn an_app_added_later_gets_its_file_and_lines_and_a_kept_app_is_not_reopened() {
        let tmp = TempDir::new("cfg-add");
        let (a, b) = (tmp.0.join("a.log"), tmp.0.join("sub/b.log"));
        let moved = tmp.0.join("a.log.moved");
        let mut logs = Logs::start(files(&[("a", a.clone())]), false).unwrap();
        runtime().block_on(async {
            let mut wa = pipe_for(&logs, "a", Stream::Out);
            // Attached while `b` is unknown: discarded until `b` is configured.
            let mut early = pipe_for(&logs, "b", Stream::Err);
            writeln!(early, "unknown yet").unwrap();
            wait_until("the unknown line counted", || logs.dropped_unknown() == 1).await;
            writeln!(wa, "before").unwrap();
            wait_until("before written", || file_msgs(&a) == ["before"]).await;
            assert!(logs.paths("b").is_empty());
            assert_eq!(
                logs.flush(Some("b")).await.unwrap_err().kind(),
                io::ErrorKind::NotFound
            );

            // `a` kept as it was: its file is not reopened, so after a rename its lines
            // still go to the renamed file.
            std::fs::rename(&a, &moved).unwrap();
            logs.configure(files(&[("a", a.clone()), ("b", b.clone())]))
                .unwrap();
            assert_eq!(logs.paths("b"), std::slice::from_ref(&b));
            assert!(b.exists(), "opened by configure");
            let mut follow_b = logs.follow(Filter {
                app: Some("b".into()),
                ..Filter::default()
            });
            let mut wb = pipe_for(&logs, "b", Stream::Out);
            writeln!(wb, "b one").unwrap();
            writeln!(early, "adopted").unwrap();
            writeln!(wa, "after").unwrap();
            let r = follow_b.recv().await.unwrap();
            assert_eq!((r.app.as_str(), r.msg.as_slice()), ("b", &b"b one"[..]));
            wait_until("b's lines written", || file_msgs(&b).len() == 2).await;
            wait_until("a's line written", || file_msgs(&moved).len() == 2).await;
            assert_eq!(file_msgs(&moved), ["before", "after"]);
            assert!(!a.exists(), "a kept app's file is not reopened");
            let mut got = file_msgs(&b);
            got.sort();
            assert_eq!(got, ["adopted", "b one"]);
            assert_eq!(logs.lines("b"), 2);
            assert_eq!(logs.lines("a"), 2);
            assert_eq!(logs.dropped("b"), 0);
            assert_eq!(logs.dropped_unknown(), 1);

            logs.flush(Some("b")).await.unwrap();
            assert_eq!(std::fs::metadata(&b).unwrap().len(), 0);
            assert_eq!(file_msgs(&moved).len(), 2, "only b is flushed");
            writeln!(wb, "b two").unwrap();
            drop((wa, wb, early));
            logs.finish(Duration::from_secs(10)).await;
        });
        assert_eq!(file_msgs(&b), ["b two"]);
    }

    /// A child floods numbered lines of varying length in small writes (chunks end
    /// mid-line) while its app's `log_file` changes: every number is in exactly one of
    /// the two files, once, whole, in order.
    #[test]
    fn changing_the_file_mid_stream_writes_every_line_once_and_whole() {
        const LINES: usize = 200_000;
        let tmp = TempDir::new("cfg-move");
        let (old, new) = (tmp.0.join("old.log"), tmp.0.join("new.log"));
        let mut logs = Logs::start(files(&[("a", old.clone())]), false).unwrap();
        let (go_tx, go) = std::sync::mpsc::channel::<()>();
        runtime().block_on(async {
            let w = pipe_for(&logs, "a", Stream::Out);
            let child = std::thread::spawn(move || {
                let mut out = io::BufWriter::with_capacity(1000, w);
                for i in 0..LINES {
                    if i == LINES / 2 {
                        // The second half only once the switch was asked for.
                        go.recv().unwrap();
                    }
                    writeln!(out, "{i:07} {}", "y".repeat(i % 37)).unwrap();
                }
            });
            wait_until("a quarter written", || logs.lines("a") >= LINES as u64 / 4).await;
            logs.configure(files(&[("a", new.clone())])).unwrap();
            assert_eq!(logs.paths("a"), std::slice::from_ref(&new));
            go_tx.send(()).unwrap();
            logs.finish(Duration::from_secs(60)).await;
            child.join().unwrap();
        });
        let (before, after) = (file_msgs(&old), file_msgs(&new));
        assert!(before.len() >= LINES / 4, "{} lines before", before.len());
        assert!(after.len() >= LINES / 2, "{} lines after", after.len());
        for (i, msg) in before.iter().chain(&after).enumerate() {
            assert_eq!(*msg, format!("{i:07} {}", "y".repeat(i % 37)), "line {i}");
        }
        assert_eq!(before.len() + after.len(), LINES);
    }

    #[test]
    fn a_new_format_and_max_line_apply_to_the_lines_framed_after_the_switch() {
        let tmp = TempDir::new("cfg-format");
        let (old, new) = (tmp.0.join("a.log"), tmp.0.join("a.json"));
        let stdout_path = tmp.0.join("stdout");
        let stdout = File::create(&stdout_path).unwrap();
        let mut logs = Logs::start_with(files(&[("a", old.clone())]), false, Some(stdout)).unwrap();
        let long = "L".repeat(3000);
        runtime().block_on(async {
            let mut w = pipe_for(&logs, "a", Stream::Out);
            // One write, so one chunk: "hal" is held by the framer at the switch.
            write!(w, "whole\nhal").unwrap();
            wait_until("the first line written", || logs.lines("a") == 1).await;
            let json = app_with("a", &new, |s| {
                s.format = LogFormat::Json;
                s.max_line = 1024;
                s.target = Some(crate::config::LogTarget::Both);
            });
            logs.configure(vec![json]).unwrap();
            write!(w, "f\n{long}\nlast").unwrap();
            drop(w);
            logs.finish(Duration::from_secs(10)).await;
        });
        let text = std::fs::read_to_string(&old).unwrap();
        assert_eq!(
            text.lines().map(after_timestamp).collect::<Vec<_>>(),
            ["a:0 out | whole"]
        );
        let json = std::fs::read_to_string(&new).unwrap();
        assert!(json.lines().all(|l| l.starts_with("{\"ts\":")), "{json}");
        let records: Vec<Record> = json
            .lines()
            .map(|l| parse_line(l.as_bytes()).unwrap())
            .collect();
        let msgs: Vec<&[u8]> = records.iter().map(|r| r.msg.as_slice()).collect();
        assert_eq!(msgs[0], b"half", "the line half read at the switch, whole");
        assert_eq!(msgs[1..4].concat(), long.as_bytes());
        assert_eq!(
            records[1..4].iter().map(|r| r.cont).collect::<Vec<_>>(),
            [false, true, true],
            "split at the new log_max_line"
        );
        assert_eq!(msgs[4], b"last");
        assert_eq!(records.len(), 5);
        assert_eq!(
            std::fs::read_to_string(&stdout_path).unwrap(),
            json,
            "stdout became a target too"
        );
    }

    #[test]
    fn a_removed_app_keeps_writing_until_its_pipes_end_then_its_file_closes() {
        let tmp = TempDir::new("cfg-remove");
        let (a, gone) = (tmp.0.join("a.log"), tmp.0.join("gone.log"));
        let mut logs =
            Logs::start(files(&[("a", a.clone()), ("gone", gone.clone())]), false).unwrap();
        runtime().block_on(async {
            let mut w = pipe_for(&logs, "gone", Stream::Out);
            let mut e = pipe_for(&logs, "gone", Stream::Err);
            writeln!(w, "one").unwrap();
            logs.configure(files(&[("a", a.clone())])).unwrap();
            assert!(logs.paths("gone").is_empty());
            assert_eq!(logs.lines("gone"), 0);
            assert_eq!(
                logs.flush(Some("gone")).await.unwrap_err().kind(),
                io::ErrorKind::NotFound
            );
            // Being stopped, its processes write their last lines.
            for i in 0..1000 {
                writeln!(w, "out {i}").unwrap();
            }
            write!(e, "last words").unwrap();
            // A pipe attached after the removal is not its app's.
            let mut late = pipe_for(&logs, "gone", Stream::Out);
            writeln!(late, "too late").unwrap();
            drop((w, late));
            wait_until("the late line discarded", || logs.dropped_unknown() == 1).await;
            wait_until("the first pipe's lines written", || {
                file_msgs(&gone).len() == 1001
            })
            .await;
            assert_eq!(fds_on(&gone), 1, "open while a pipe is attached");
            drop(e);
            wait_until("gone.log closed", || fds_on(&gone) == 0).await;
            assert_eq!(fds_on(&a), 1);
            logs.finish(Duration::from_secs(10)).await;
        });
        let msgs = file_msgs(&gone);
        let mut want = vec!["one".to_string()];
        want.extend((0..1000).map(|i| format!("out {i}")));
        want.push("last words".into());
        assert_eq!(msgs, want);
    }

    #[test]
    fn an_app_removed_and_added_back_while_draining_loses_nothing() {
        let tmp = TempDir::new("cfg-back");
        let path = tmp.0.join("a.log");
        let mut logs = Logs::start(files(&[("a", path.clone())]), false).unwrap();
        runtime().block_on(async {
            let mut w = pipe_for(&logs, "a", Stream::Out);
            writeln!(w, "1").unwrap();
            logs.configure(Vec::new()).unwrap();
            writeln!(w, "2").unwrap();
            logs.configure(files(&[("a", path.clone())])).unwrap();
            writeln!(w, "3").unwrap();
            wait_until("three lines", || file_msgs(&path).len() == 3).await;
            assert_eq!(fds_on(&path), 1, "one slot, the old outputs closed");
            drop(w);
            logs.finish(Duration::from_secs(10)).await;
        });
        assert_eq!(file_msgs(&path), ["1", "2", "3"]);
    }

    #[test]
    fn a_configure_that_cannot_open_a_file_changes_nothing() {
        let tmp = TempDir::new("cfg-bad");
        let (a, b) = (tmp.0.join("a.log"), tmp.0.join("b.log"));
        std::fs::write(tmp.0.join("file"), b"").unwrap();
        let bad = tmp.0.join("file/sub/a.log");
        let mut logs = Logs::start(files(&[("a", a.clone())]), false).unwrap();
        runtime().block_on(async {
            let mut w = pipe_for(&logs, "a", Stream::Out);
            writeln!(w, "before").unwrap();
            let err = logs
                .configure(files(&[("b", b.clone()), ("a", bad.clone())]))
                .unwrap_err();
            assert!(err.to_string().contains(&*bad.to_string_lossy()), "{err}");
            assert_eq!(logs.paths("a"), std::slice::from_ref(&a));
            assert!(logs.paths("b").is_empty(), "b was not added");
            writeln!(w, "after").unwrap();
            drop(w);
            logs.finish(Duration::from_secs(10)).await;
        });
        assert_eq!(file_msgs(&a), ["before", "after"]);
        assert_eq!(file_msgs(&b), Vec::<String>::new());
    }

    trait ConcatMsgs {
        fn concat_msgs(&self) -> Vec<u8>;
    }

    impl ConcatMsgs for [Record] {
        fn concat_msgs(&self) -> Vec<u8> {
            self.iter().flat_map(|r| r.msg.iter().copied()).collect()
        }
    }
}
