//! The writer thread: frames and formats the chunks the readers send, and writes the
//! records to each app's files and/or supd's stdout, in batches; rotates, truncates and
//! reopens files between its own writes; copies records to followers.
//!
//! Owns the log files and supd's stdout, one [`Framer`] and [`LineHead`] per attached
//! stream, and the dropped-line accounting. Never runs on the event loop (writes block),
//! never compresses (the compressor thread of [`super::archive`] does), never panics on
//! I/O errors and never stops before the channel closes: a failed write drops that
//! write's lines for that output, counts them, and a marker record reports them once
//! writing works again (DESIGN §2).
//!
//! Batching: after one message arrives, whatever else is already queued is taken too (up
//! to [`BATCH_MSGS`] messages or [`BATCH_BYTES`] bytes), the messages are grouped per app
//! (order within an app preserved), and each output gets one `write` per batch — more only
//! if its formatted text passes [`WRITE_AT`], or a rotation falls inside the batch.
//! Control messages (reopen, flush, follow) take effect exactly between the records read
//! before them and those read after.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use memchr::memchr_iter;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::archive::{open_log, Archive};
use super::follow::Followers;
use super::format::{write_dropped_marker, Format, LineHead};
use super::framer::{Framer, Mark};
use super::record::{parse_line, Filter, Record};
use super::rotate::{self, Policy};
use super::stream::{Stream, StreamMeta};
use super::time::now_ms;
use super::watch::{self, LineWatch, Watches};

/// Most messages taken into one batch.
pub const BATCH_MSGS: usize = 16;
/// A batch stops taking messages once it holds this many bytes of child output.
pub const BATCH_BYTES: usize = 256 * 1024;
/// Formatted text for one output is written out once it reaches this size, even mid-batch,
/// so a chunk of very short lines (which expand ~40×) cannot balloon the buffer.
pub const WRITE_AT: usize = 512 * 1024;

/// What the readers and [`super::Logs`] tell the writer thread.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A stream starts; always the first message of its reader.
    Open {
        /// Unique per attached pipe.
        id: u64,
        /// Whose output it is.
        meta: StreamMeta,
    },
    /// Bytes read from the pipe at `ms` (milliseconds since the Unix epoch). `_permit` is
    /// the app's in-flight budget share, returned (dropped) once the chunk is written.
    Chunk {
        id: u64,
        ms: i64,
        bytes: Vec<u8>,
        _permit: Option<OwnedSemaphorePermit>,
    },
    /// The pipe reached end of file (or its reader stopped) at `ms`.
    Eof { id: u64, ms: i64 },
    /// Close and reopen every log file (after an external logrotate moved them).
    Reopen,
    /// Truncate the current files of `app` (every app if `None`) and delete their rotated
    /// files.
    Flush {
        app: Option<Arc<str>>,
        reply: oneshot::Sender<io::Result<()>>,
    },
    /// Copy the records passing `filter` to `tx` from now on.
    Follow {
        filter: Filter,
        tx: mpsc::Sender<Record>,
    },
    /// Call `watch.matched` once a line of process `pid` matches `watch.regex`.
    Watch { pid: i32, watch: LineWatch },
}

impl Msg {
    fn payload_len(&self) -> usize {
        match self {
            Msg::Chunk { bytes, .. } => bytes.len(),
            _ => 0,
        }
    }
}

/// Counters shared between the writer thread, the readers and [`super::Logs`].
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Lines lost to write errors, per app of the configuration.
    pub dropped: HashMap<Box<str>, Arc<AtomicU64>>,
    /// Lines (records) taken from the app's pipes, per app of the configuration.
    pub lines: HashMap<Box<str>, Arc<AtomicU64>>,
    /// Lines of apps that have no log outputs (discarded by design, still counted).
    pub unknown: AtomicU64,
    /// Pipes whose read failed (the reader ended there).
    pub read_errors: AtomicU64,
}

/// What the writer needs to know of one app.
#[derive(Clone, Debug)]
pub(crate) struct AppSpec {
    pub name: String,
    pub format: Format,
    pub max_line: usize,
    pub policy: Policy,
    pub retain: u32,
    pub compress: bool,
    /// Current files: none, one for both streams, or `[stdout's, stderr's]`.
    pub files: Vec<PathBuf>,
    /// Whether records also go to supd's stdout.
    pub stdout: bool,
}

/// supd's stdout, shared by every app that writes there.
#[derive(Clone, Debug)]
pub(crate) struct SharedOut(pub Arc<File>);

impl Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match (&*self.0).write(buf) {
                // stdout may be a non-blocking description shared with others: wait for
                // room rather than drop, like a blocking file would.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut fds = [nix::poll::PollFd::new(
                        self.0.as_fd(),
                        nix::poll::PollFlags::POLLOUT,
                    )];
                    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(errno) => return Err(errno.into()),
                    }
                }
                result => return result,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One output of an app (a file or stdout) and the state of its current error episode.
#[derive(Debug)]
struct Sink<W> {
    app: Arc<str>,
    format: Format,
    /// The stream of the marker records: the file's stream for a split file, else `err`.
    stream: Stream,
    /// `None` while a file cannot be opened.
    out: Option<W>,
    dropped: Arc<AtomicU64>,
    /// Lines dropped since the last marker was written.
    unreported: u64,
    /// The latest write (or open) error, shown in the marker.
    last_error: String,
    /// Inside an error episode (one warning per episode, not per batch).
    failing: bool,
    /// The output ends in the middle of a line (a write failed part-way), so the next text
    /// must start on a new line.
    torn: bool,
    /// "log file <path>" or "stdout", for diagnostics.
    what: String,
}

/// What one [`Sink::write`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Written {
    bytes: usize,
    /// The dropped-lines marker at the start of the buffer was written.
    marker: bool,
}

impl<W: Write> Sink<W> {
    fn new(
        app: &Arc<str>,
        format: Format,
        stream: Stream,
        dropped: &Arc<AtomicU64>,
        what: String,
    ) -> Self {
        Sink {
            app: Arc::clone(app),
            format,
            stream,
            out: None,
            dropped: Arc::clone(dropped),
            unreported: 0,
            last_error: String::new(),
            failing: false,
            torn: false,
            what,
        }
    }

    /// Starts a buffer in the empty `buf`; puts the dropped-lines marker first if lines
    /// were lost since the last one. Returns the marker's length.
    fn begin(&self, buf: &mut Vec<u8>) -> usize {
        if self.unreported == 0 {
            return 0;
        }
        if self.torn {
            buf.push(b'\n');
        }
        write_dropped_marker(
            buf,
            self.format,
            now_ms(),
            &self.app,
            self.stream,
            self.unreported,
            &self.last_error,
        );
        buf.len()
    }

    /// Writes `buf` (a marker of `marker_len` bytes, then records). On error the records
    /// not written are counted as dropped; the marker is retried with the next buffer.
    fn write(&mut self, buf: &[u8], marker_len: usize) -> Written {
        if buf.len() == marker_len {
            return Written::default(); // no records: the marker waits for the next ones
        }
        let mut written = 0;
        // write_all would hide how far it got; we need that to count exactly.
        let result = match self.out.as_mut() {
            None => Err(io::Error::other(self.last_error.clone())),
            Some(out) => loop {
                if written == buf.len() {
                    break Ok(());
                }
                match out.write(&buf[written..]) {
                    Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            },
        };
        if written > 0 {
            self.torn = buf[written - 1] != b'\n';
        }
        let marker = marker_len > 0 && written >= marker_len;
        if marker {
            self.unreported = 0;
        }
        match result {
            Ok(()) => {
                if self.failing {
                    self.failing = false;
                    tracing::info!(app = %self.app, "{} writable again", self.what);
                }
            }
            Err(e) => {
                // Every formatted record ends in exactly one '\n' (pieces contain none,
                // and JSON escapes it), so counting them in the unwritten part counts the
                // lost lines, a torn one included; the marker's own '\n' is excluded.
                let lost = memchr_iter(b'\n', &buf[written.max(marker_len)..]).count() as u64;
                self.unreported += lost;
                self.dropped.fetch_add(lost, Ordering::Relaxed);
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(app = %self.app, error = %e, "cannot write {}; dropping lines until it works again", self.what);
                }
                self.last_error = e.to_string();
            }
        }
        Written {
            bytes: written,
            marker,
        }
    }
}

/// One log file of an app.
#[derive(Debug)]
struct FileOut {
    path: PathBuf,
    sink: Sink<File>,
    /// Bytes in the file (as far as supd wrote or found them).
    size: u64,
    /// When the file's content started (for time rotation); `None` while empty.
    since: Option<i64>,
}

impl FileOut {
    /// Takes over an open `file`, finding its size and age.
    fn load(&mut self, file: File) {
        let meta = file.metadata().ok();
        self.size = meta.as_ref().map_or(0, |m| m.len());
        // A file supd finds non-empty started before now; its last write dates it.
        self.since = meta
            .filter(|m| m.len() > 0)
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok());
        self.sink.out = Some(file);
        self.sink.torn = false;
    }

    /// Opens the file if it is not open (it failed before, or was just rotated).
    fn ensure_open(&mut self) {
        if self.sink.out.is_some() {
            return;
        }
        match open_log(&self.path) {
            Ok(file) => self.load(file),
            Err(e) => self.sink.last_error = format!("{}: {e}", self.path.display()),
        }
    }

    fn write(&mut self, buf: &[u8], marker_len: usize) -> Written {
        self.ensure_open();
        let w = self.sink.write(buf, marker_len);
        self.size += w.bytes as u64;
        w
    }

    /// Rotates the file (names in [`super::archive`]) and opens a new one.
    fn rotate(&mut self, archive: &mut Archive, retain: u32, compress: bool) {
        let current = self.sink.out.take();
        if let Err(e) = archive.rotate(&self.path, current.as_ref(), retain, compress) {
            tracing::warn!(file = %self.path.display(), error = %e, "log rotation failed");
        }
        drop(current);
        // Even after a failed rename: counting from zero again retries a size rotation only
        // after another log_max_size bytes, not at every record.
        self.size = 0;
        self.since = None;
        self.ensure_open();
    }

    /// Closes and reopens the file by name.
    fn reopen(&mut self) {
        self.sink.out = None;
        self.ensure_open();
    }

    /// Empties the file and deletes its rotated files.
    fn flush(&mut self, archive: &Archive) -> io::Result<()> {
        self.ensure_open();
        let truncated = match &self.sink.out {
            Some(file) => file.set_len(0),
            None => Err(io::Error::other(self.sink.last_error.clone())),
        };
        if truncated.is_ok() {
            self.size = 0;
            self.since = None;
            self.sink.torn = false;
        }
        let purged = archive.purge(&self.path);
        truncated
            .and(purged)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }
}

/// One app's outputs.
#[derive(Debug)]
struct AppOut {
    name: Arc<str>,
    format: Format,
    max_line: usize,
    policy: Policy,
    retain: u32,
    compress: bool,
    /// None, one file for both streams, or `[stdout's, stderr's]`.
    files: Vec<FileOut>,
    stdout: Option<Sink<SharedOut>>,
    /// Records framed so far (shared with [`Shared::lines`]).
    lines: Arc<AtomicU64>,
}

/// Per attached stream: where it goes and how its lines are cut and prefixed.
#[derive(Debug)]
struct StreamState {
    /// Index into `Writer::apps`; `None` for an app the pipeline does not know.
    app: Option<usize>,
    meta: StreamMeta,
    framer: Framer,
    head: LineHead,
}

/// A buffer of formatted records for one output, starting with a marker of `marker_len`
/// bytes (0 without).
#[derive(Debug, Default)]
struct Buf {
    bytes: Vec<u8>,
    marker_len: usize,
}

/// Where `Buf`s of an app sit: its files first, then stdout.
const STDOUT_BUF: usize = 2;

/// The state owned by the writer thread.
#[derive(Debug)]
pub(crate) struct Writer {
    apps: Vec<AppOut>,
    by_app: HashMap<Arc<str>, usize>,
    streams: HashMap<u64, StreamState>,
    shared: Arc<Shared>,
    archive: Archive,
    followers: Followers,
    /// The formatted records of the app being written, per output; reused.
    bufs: [Buf; 3],
    /// The batch's messages tagged with their app, reused across batches.
    grouped: Vec<(usize, Msg)>,
    /// Readiness watches on the lines of a process, by pid (usually empty).
    watches: Watches,
}

impl Writer {
    /// Opens every app's files (creating directories, finishing the rotation work an
    /// earlier supd left) and returns the writer and its counters. Fails on the first
    /// file that cannot be opened, naming it. When a name repeats, the first app wins.
    pub fn new(specs: Vec<AppSpec>, stdout: Option<Arc<File>>) -> io::Result<(Self, Arc<Shared>)> {
        let mut apps = Vec::with_capacity(specs.len());
        let mut by_app = HashMap::with_capacity(specs.len());
        let mut dropped = HashMap::with_capacity(specs.len());
        let mut line_counts = HashMap::with_capacity(specs.len());
        let mut archive = Archive::default();
        for spec in specs {
            let name: Arc<str> = Arc::from(spec.name.as_str());
            if by_app.contains_key(&name) {
                tracing::warn!(app = %name, "app listed twice for logs; its first settings are used");
                continue;
            }
            let counter = Arc::new(AtomicU64::new(0));
            let split = spec.files.len() == 2;
            let mut files = Vec::with_capacity(spec.files.len());
            for (i, path) in spec.files.into_iter().enumerate() {
                let stream = if split && i == 0 {
                    Stream::Out
                } else {
                    Stream::Err
                };
                let what = format!("log file {}", path.display());
                let file = open_log(&path).map_err(|e| {
                    io::Error::new(e.kind(), format!("log file {}: {e}", path.display()))
                })?;
                if let Err(e) = archive.recover(&path, spec.retain, spec.compress) {
                    tracing::warn!(file = %path.display(), error = %e, "cannot tidy the rotated logs");
                }
                let mut out = FileOut {
                    sink: Sink::new(&name, spec.format, stream, &counter, what),
                    path,
                    size: 0,
                    since: None,
                };
                out.load(file);
                files.push(out);
            }
            let stdout = match (&stdout, spec.stdout) {
                (Some(fd), true) => {
                    let mut sink =
                        Sink::new(&name, spec.format, Stream::Err, &counter, "stdout".into());
                    sink.out = Some(SharedOut(Arc::clone(fd)));
                    Some(sink)
                }
                _ => None,
            };
            dropped.insert(Box::from(&*name), counter);
            let lines = Arc::new(AtomicU64::new(0));
            line_counts.insert(Box::from(&*name), Arc::clone(&lines));
            by_app.insert(Arc::clone(&name), apps.len());
            apps.push(AppOut {
                name,
                format: spec.format,
                max_line: spec.max_line,
                policy: spec.policy,
                retain: spec.retain,
                compress: spec.compress,
                files,
                stdout,
                lines,
            });
        }
        let shared = Arc::new(Shared {
            dropped,
            lines: line_counts,
            ..Shared::default()
        });
        let writer = Writer {
            apps,
            by_app,
            streams: HashMap::new(),
            shared: Arc::clone(&shared),
            archive,
            followers: Followers::default(),
            bufs: Default::default(),
            grouped: Vec::with_capacity(BATCH_MSGS),
            watches: Watches::default(),
        };
        Ok((writer, shared))
    }

    /// The thread's body: batches until every sender is gone, then emits the tails of any
    /// stream whose reader vanished without an end-of-file message, and waits for the
    /// compressor.
    pub fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut batch = Vec::with_capacity(BATCH_MSGS);
        while let Some(first) = rx.blocking_recv() {
            let mut bytes = first.payload_len();
            batch.push(first);
            while batch.len() < BATCH_MSGS && bytes < BATCH_BYTES {
                match rx.try_recv() {
                    Ok(msg) => {
                        bytes += msg.payload_len();
                        batch.push(msg);
                    }
                    Err(_) => break,
                }
            }
            self.process(&mut batch);
        }
        self.close_all();
        self.archive.finish();
    }

    /// Emits the partial last line of every stream still open, as if it reached EOF.
    pub fn close_all(&mut self) {
        let mut ids: Vec<u64> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        let ms = now_ms();
        let mut eofs = ids.into_iter().map(|id| Msg::Eof { id, ms }).collect();
        self.process(&mut eofs);
    }

    /// Handles one batch, emptying `batch`.
    pub fn process(&mut self, batch: &mut Vec<Msg>) {
        for msg in batch.drain(..) {
            let id = match msg {
                Msg::Open { id, meta } => {
                    self.open(id, meta);
                    continue;
                }
                Msg::Chunk { id, .. } | Msg::Eof { id, .. } => id,
                Msg::Reopen => {
                    self.write_grouped();
                    for f in self.apps.iter_mut().flat_map(|a| a.files.iter_mut()) {
                        f.reopen();
                    }
                    continue;
                }
                Msg::Flush { app, reply } => {
                    self.write_grouped();
                    let _ = reply.send(self.flush(app.as_deref()));
                    continue;
                }
                Msg::Follow { filter, tx } => {
                    self.write_grouped();
                    self.followers.add(filter, tx);
                    continue;
                }
                Msg::Watch { pid, watch } => {
                    self.watches.insert(pid, watch);
                    continue;
                }
            };
            match self.streams.get(&id).map(|s| s.app) {
                Some(Some(app)) => self.grouped.push((app, msg)),
                Some(None) => self.discard(msg),
                None => {} // cannot happen: Open always comes first from the same reader
            }
        }
        self.write_grouped();
        self.followers.prune();
    }

    fn open(&mut self, id: u64, meta: StreamMeta) {
        let app = self.by_app.get(&meta.app).copied();
        let (format, max_line) = match app.and_then(|a| self.apps.get(a)) {
            Some(a) => (a.format, a.max_line),
            None => {
                tracing::warn!(app = %meta.app, index = meta.index, "no log output for this app; its output is discarded");
                (Format::Text, super::framer::MAX_LINE)
            }
        };
        let state = StreamState {
            app,
            framer: Framer::new(max_line),
            head: LineHead::new(format, &meta),
            meta,
        };
        self.streams.insert(id, state);
    }

    /// Frames the output of an unknown app only to count its lines.
    fn discard(&mut self, msg: Msg) {
        let mut lines = 0u64;
        match msg {
            Msg::Chunk { id, bytes, .. } => {
                if let Some(st) = self.streams.get_mut(&id) {
                    st.framer.push(&bytes, |_, _| lines += 1);
                }
            }
            Msg::Eof { id, .. } => {
                if let Some(mut st) = self.streams.remove(&id) {
                    st.framer.finish(|_, _| lines += 1);
                }
            }
            _ => {}
        }
        self.shared.unknown.fetch_add(lines, Ordering::Relaxed);
    }

    /// Truncates and purges the files of `app` (or of every app).
    fn flush(&mut self, app: Option<&str>) -> io::Result<()> {
        let mut result = Ok(());
        for a in &mut self.apps {
            if app.is_some_and(|name| name != &*a.name) {
                continue;
            }
            for f in &mut a.files {
                let flushed = f.flush(&self.archive);
                if result.is_ok() {
                    result = flushed;
                }
            }
        }
        result
    }

    /// Writes the data messages gathered so far, app by app.
    fn write_grouped(&mut self) {
        if self.grouped.is_empty() {
            return;
        }
        let mut grouped = std::mem::take(&mut self.grouped);
        // Stable, so each stream's chunks stay in the order they were read.
        grouped.sort_by_key(|(app, _)| *app);
        for group in grouped.chunk_by(|a, b| a.0 == b.0) {
            self.write_app(group[0].0, group);
        }
        // Dropping the chunks returns their budget to the readers.
        grouped.clear();
        self.grouped = grouped;
    }

    /// Frames, formats and writes the messages of one app.
    fn write_app(&mut self, app: usize, msgs: &[(usize, Msg)]) {
        let Writer {
            apps,
            streams,
            archive,
            followers,
            bufs,
            watches,
            ..
        } = self;
        let Some(app) = apps.get_mut(app) else {
            return;
        };
        let mut out = AppWrite {
            app,
            bufs,
            archive,
            followers,
            records: 0,
        };
        out.begin();
        for (_, msg) in msgs {
            match msg {
                Msg::Chunk { id, ms, bytes, .. } => {
                    if let Some(st) = streams.get_mut(id) {
                        st.head.set_time(*ms);
                        let (head, meta) = (&st.head, &st.meta);
                        let mut watch = watches.take(meta.pid);
                        st.framer.push(bytes, |piece, mark| {
                            watch::check(&mut watch, piece);
                            out.record(head, meta, *ms, mark, piece)
                        });
                        watches.settle(meta.pid, watch);
                    }
                }
                Msg::Eof { id, ms } => {
                    if let Some(mut st) = streams.remove(id) {
                        st.head.set_time(*ms);
                        let (head, meta) = (&st.head, &st.meta);
                        let mut watch = watches.take(meta.pid);
                        st.framer.finish(|piece, mark| {
                            watch::check(&mut watch, piece);
                            out.record(head, meta, *ms, mark, piece)
                        });
                        // Its process is going away: nothing more can match.
                        drop(watch);
                        watches.end(meta.pid);
                    }
                }
                _ => {}
            }
        }
        out.end();
    }
}

/// The records of one app in one batch, on their way to its outputs.
struct AppWrite<'a> {
    app: &'a mut AppOut,
    bufs: &'a mut [Buf; 3],
    archive: &'a mut Archive,
    followers: &'a mut Followers,
    /// Records of this batch, added to the app's line count at the end.
    records: u64,
}

impl AppWrite<'_> {
    fn begin(&mut self) {
        for (f, b) in self.app.files.iter().zip(self.bufs.iter_mut()) {
            b.bytes.clear();
            b.marker_len = f.sink.begin(&mut b.bytes);
        }
        let b = &mut self.bufs[STDOUT_BUF];
        b.bytes.clear();
        b.marker_len = self
            .app
            .stdout
            .as_ref()
            .map_or(0, |s| s.begin(&mut b.bytes));
    }

    /// One piece from a framer: into its file's buffer (rotating first if the policy says
    /// so), into the stdout buffer, and to the followers that want it.
    #[inline]
    fn record(&mut self, head: &LineHead, meta: &StreamMeta, ms: i64, mark: Mark, piece: &[u8]) {
        self.records += 1;
        let app = &mut *self.app;
        let embedded;
        let file = match app.files.len() {
            0 => None,
            1 => Some(0),
            _ => Some(usize::from(meta.stream == Stream::Err)),
        };
        if let Some(i) = file {
            let (bufs, stdout_buf) = self.bufs.split_at_mut(STDOUT_BUF);
            let (f, b) = (&mut app.files[i], &mut bufs[i]);
            let start = b.bytes.len();
            embedded = head.write_line(&mut b.bytes, mark, piece);
            let len = b.bytes.len() - start;
            // The marker's few bytes are not counted: it must not rotate an empty file.
            let pending = (start - b.marker_len) as u64;
            if rotate::before_write(&app.policy, f.size + pending, f.since, len as u64, ms)
                .is_some()
            {
                let record = b.bytes.split_off(start);
                write_file(f, b, self.followers);
                f.rotate(self.archive, app.retain, app.compress);
                b.bytes.clear();
                b.marker_len = f.sink.begin(&mut b.bytes);
                b.bytes.extend_from_slice(&record);
            }
            if f.since.is_none() {
                f.since = Some(ms);
            }
            if app.stdout.is_some() {
                let end = b.bytes.len();
                stdout_buf[0].bytes.extend_from_slice(&b.bytes[end - len..]);
            }
            if b.bytes.len() >= WRITE_AT {
                write_file(f, b, self.followers);
                b.bytes.clear();
                b.marker_len = f.sink.begin(&mut b.bytes);
            }
        } else {
            embedded = head.write_line(&mut self.bufs[STDOUT_BUF].bytes, mark, piece);
        }
        if let Some(sink) = &mut app.stdout {
            let b = &mut self.bufs[STDOUT_BUF];
            if b.bytes.len() >= WRITE_AT {
                write_stdout(sink, b, self.followers);
                b.bytes.clear();
                b.marker_len = sink.begin(&mut b.bytes);
            }
        }
        if self
            .followers
            .want(&app.name, Some(meta.index), meta.stream)
        {
            self.followers.send(&Record {
                ts_ms: ms,
                app: app.name.to_string(),
                instance: Some(meta.index),
                pid: Some(meta.pid),
                stream: meta.stream,
                msg: piece.to_vec(),
                cont: mark.is_continuation(),
                embedded,
            });
        }
    }

    fn end(&mut self) {
        self.app.lines.fetch_add(self.records, Ordering::Relaxed);
        for (f, b) in self.app.files.iter_mut().zip(self.bufs.iter_mut()) {
            write_file(f, b, self.followers);
        }
        if let Some(sink) = &mut self.app.stdout {
            write_stdout(sink, &self.bufs[STDOUT_BUF], self.followers);
        }
        for b in self.bufs.iter_mut() {
            b.bytes.clear();
            b.marker_len = 0;
            // One huge record must not pin its buffer for the rest of supd's life.
            if b.bytes.capacity() > 2 * WRITE_AT {
                b.bytes.shrink_to(WRITE_AT);
            }
        }
    }
}

fn write_file(f: &mut FileOut, b: &Buf, followers: &mut Followers) {
    let w = f.write(&b.bytes, b.marker_len);
    if w.marker {
        tell_marker(b, followers);
    }
}

fn write_stdout(sink: &mut Sink<SharedOut>, b: &Buf, followers: &mut Followers) {
    if sink.write(&b.bytes, b.marker_len).marker {
        tell_marker(b, followers);
    }
}

/// A written marker goes to the followers too.
fn tell_marker(b: &Buf, followers: &mut Followers) {
    let marker = &b.bytes[..b.marker_len];
    let marker = marker.strip_prefix(b"\n").unwrap_or(marker);
    if let Some(record) = parse_line(marker) {
        if followers.want(&record.app, None, record.stream) {
            followers.send(&record);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An output that fails with ENOSPC while `fail` is set, optionally after accepting a
    /// few bytes (a write that fails part-way).
    #[derive(Clone, Default)]
    struct Flaky {
        data: Arc<Mutex<Vec<u8>>>,
        fail: Arc<Mutex<Option<usize>>>,
    }

    impl Write for Flaky {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut fail = self.fail.lock().unwrap();
            match *fail {
                None => {
                    self.data.lock().unwrap().extend_from_slice(b);
                    Ok(b.len())
                }
                Some(0) => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
                Some(n) => {
                    let n = n.min(b.len());
                    self.data.lock().unwrap().extend_from_slice(&b[..n]);
                    *fail = Some(0);
                    Ok(n)
                }
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn sink(format: Format) -> (Sink<Flaky>, Flaky, Arc<AtomicU64>) {
        let flaky = Flaky::default();
        let dropped = Arc::new(AtomicU64::new(0));
        let mut s = Sink::new(
            &Arc::from("a"),
            format,
            Stream::Err,
            &dropped,
            "test".into(),
        );
        s.out = Some(flaky.clone());
        (s, flaky, dropped)
    }

    /// Formats `lines` after the sink's marker, like the writer does, and writes them.
    fn write(s: &mut Sink<Flaky>, lines: &[&str]) -> Written {
        let mut buf = Vec::new();
        let marker_len = s.begin(&mut buf);
        let meta = StreamMeta {
            app: Arc::from("a"),
            index: 0,
            pid: 1,
            stream: Stream::Out,
        };
        let mut head = LineHead::new(s.format, &meta);
        head.set_time(0);
        for line in lines {
            head.write_line(&mut buf, Mark::Whole, line.as_bytes());
        }
        s.write(&buf, marker_len)
    }

    fn text(f: &Flaky) -> String {
        String::from_utf8(f.data.lock().unwrap().clone()).unwrap()
    }

    // --- The whole writer, driven message by message with chosen times. ---

    use crate::config::LogRotate;
    use crate::logs::tests::TempDir;
    use std::path::Path;

    /// 2026-11-23T00:00:00Z.
    const DAY: i64 = 1_795_392_000_000;
    const HOUR: i64 = 3_600_000;

    fn spec(files: Vec<PathBuf>, policy: Policy, retain: u32) -> AppSpec {
        AppSpec {
            name: "a".into(),
            format: Format::Text,
            max_line: 1024,
            policy,
            retain,
            compress: false,
            files,
            stdout: false,
        }
    }

    fn open_msg(id: u64, stream: Stream) -> Msg {
        Msg::Open {
            id,
            meta: StreamMeta {
                app: Arc::from("a"),
                index: 0,
                pid: 9,
                stream,
            },
        }
    }

    fn chunk_at(id: u64, ms: i64, s: &str) -> Msg {
        Msg::Chunk {
            id,
            ms,
            bytes: s.as_bytes().to_vec(),
            _permit: None,
        }
    }

    /// Ends the writer as its thread does (tails written, compressions waited for).
    fn end(mut w: Writer) {
        w.close_all();
        std::mem::take(&mut w.archive).finish();
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    fn msgs(path: &Path) -> Vec<String> {
        read(path)
            .lines()
            .map(|l| String::from_utf8(parse_line(l.as_bytes()).unwrap().msg).unwrap())
            .collect()
    }

    #[test]
    fn size_rotation_happens_before_the_record_that_would_cross() {
        let tmp = TempDir::new("w-size");
        let path = tmp.0.join("a.log");
        let policy = Policy {
            max_size: Some(200),
            every: None,
        };
        let (mut w, _) = Writer::new(vec![spec(vec![path.clone()], policy, 5)], None).unwrap();
        // Each record is 35 bytes of head + 14 + '\n' = 50 bytes: four fill a file exactly.
        let line = |i: usize| format!("{i:02}{}", "x".repeat(12));
        let text: String = (0..10).map(|i| line(i) + "\n").collect();
        w.process(&mut vec![open_msg(1, Stream::Out), chunk_at(1, DAY, &text)]);
        // A record larger than the limit goes alone into a fresh file.
        let big = "B".repeat(300);
        w.process(&mut vec![chunk_at(1, DAY, &format!("{big}\nlast\n"))]);
        end(w);
        let name = |k: u32| rotate::rotated_name(&path, k, false);
        let lines = |r: std::ops::Range<usize>| r.map(line).collect::<Vec<_>>();
        assert_eq!(msgs(&name(4)), lines(0..4));
        assert_eq!(msgs(&name(3)), lines(4..8));
        assert_eq!(msgs(&name(2)), lines(8..10));
        assert_eq!(msgs(&name(1)), [big]);
        assert_eq!(msgs(&path), ["last"]);
        assert_eq!(read(&name(4)).len(), 200);
        assert!(!name(5).exists());
    }

    #[test]
    fn time_rotation_follows_the_records_utc_day() {
        let tmp = TempDir::new("w-time");
        let path = tmp.0.join("a.log");
        // A file left by an earlier run, last written two days ago.
        std::fs::write(&path, "2026-11-21T10:00:00.000Z a:0 out | old\n").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
        File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let policy = Policy {
            max_size: None,
            every: Some(LogRotate::Daily),
        };
        let (mut w, _) = Writer::new(vec![spec(vec![path.clone()], policy, 3)], None).unwrap();
        let now = now_ms();
        w.process(&mut vec![
            open_msg(1, Stream::Out),
            chunk_at(1, now, "today 1\n"),
        ]);
        w.process(&mut vec![chunk_at(1, now, "today 2\n")]);
        end(w);
        assert_eq!(msgs(&rotate::rotated_name(&path, 1, false)), ["old"]);
        assert_eq!(msgs(&path), ["today 1", "today 2"]);

        let tmp = TempDir::new("w-time2");
        let path = tmp.0.join("a.log");
        let policy = Policy {
            max_size: None,
            every: Some(LogRotate::Hourly),
        };
        let (mut w, _) = Writer::new(vec![spec(vec![path.clone()], policy, 3)], None).unwrap();
        w.process(&mut vec![
            open_msg(1, Stream::Out),
            chunk_at(1, DAY + HOUR - 1, "h0\n"),
            chunk_at(1, DAY + HOUR, "h1 a\n"),
            chunk_at(1, DAY + 2 * HOUR - 1, "h1 b\n"),
        ]);
        // Within one chunk, every line has the chunk's time: no rotation inside it.
        w.process(&mut vec![chunk_at(1, DAY + 5 * HOUR, "h5 a\nh5 b\n")]);
        end(w);
        assert_eq!(msgs(&rotate::rotated_name(&path, 2, false)), ["h0"]);
        assert_eq!(
            msgs(&rotate::rotated_name(&path, 1, false)),
            ["h1 a", "h1 b"]
        );
        assert_eq!(msgs(&path), ["h5 a", "h5 b"]);
    }

    #[test]
    fn flush_never_cuts_a_line_and_deletes_rotated_files() {
        let tmp = TempDir::new("w-flush");
        let path = tmp.0.join("a.log");
        let policy = Policy {
            max_size: Some(100),
            every: None,
        };
        let (mut w, _) = Writer::new(vec![spec(vec![path.clone()], policy, 3)], None).unwrap();
        let (reply, mut done) = oneshot::channel();
        w.process(&mut vec![
            open_msg(1, Stream::Out),
            chunk_at(1, DAY, "one\ntwo\nthree\npart"),
            Msg::Flush { app: None, reply },
            chunk_at(1, DAY, "ial\n"),
        ]);
        assert!(done.try_recv().unwrap().is_ok());
        assert!(!rotate::rotated_name(&path, 1, false).exists());
        end(w);
        assert_eq!(msgs(&path), ["partial"]);
    }

    #[test]
    fn split_files_and_stdout_get_their_records() {
        let tmp = TempDir::new("w-split");
        let (out, err) = (tmp.0.join("a.out.log"), tmp.0.join("a.err.log"));
        let stdout_path = tmp.0.join("stdout");
        let stdout = Arc::new(File::create(&stdout_path).unwrap());
        let mut app = spec(vec![out.clone(), err.clone()], Policy::default(), 1);
        app.stdout = true;
        let (mut w, _) = Writer::new(vec![app], Some(stdout)).unwrap();
        w.process(&mut vec![
            open_msg(1, Stream::Out),
            open_msg(2, Stream::Err),
            chunk_at(1, DAY, "o1\n"),
            chunk_at(2, DAY, "e1\n"),
            chunk_at(1, DAY, "o2\n"),
        ]);
        end(w);
        assert_eq!(msgs(&out), ["o1", "o2"]);
        assert_eq!(msgs(&err), ["e1"]);
        assert_eq!(msgs(&stdout_path), ["o1", "e1", "o2"]);
        assert!(read(&stdout_path).contains(" a:0 err | e1\n"));
    }

    #[test]
    fn write_error_drops_counts_and_marks_then_recovers() {
        let (mut s, flaky, dropped) = sink(Format::Text);
        write(&mut s, &["one"]);
        *flaky.fail.lock().unwrap() = Some(0);
        write(&mut s, &["two", "three"]);
        write(&mut s, &["four"]);
        assert_eq!(dropped.load(Ordering::Relaxed), 3);

        *flaky.fail.lock().unwrap() = None;
        assert!(write(&mut s, &["five"]).marker);
        let got = text(&flaky);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 3, "{got}");
        assert_eq!(lines[0], "1970-01-01T00:00:00.000Z a:0 out | one");
        assert!(
            lines[1].ends_with(
                " a:- err | [supd] 3 lines dropped (No space left on device (os error 28))"
            ),
            "{}",
            lines[1]
        );
        assert!(lines[1].as_bytes()[10] == b'T' && lines[1].as_bytes()[23] == b'Z');
        assert_eq!(lines[2], "1970-01-01T00:00:00.000Z a:0 out | five");
        assert_eq!(dropped.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn the_marker_is_a_json_record_in_the_json_format() {
        let (mut s, flaky, _) = sink(Format::Json { embed: true });
        *flaky.fail.lock().unwrap() = Some(0);
        write(&mut s, &["lost"]);
        *flaky.fail.lock().unwrap() = None;
        write(&mut s, &["kept"]);
        let got = text(&flaky);
        let lines: Vec<&str> = got.lines().collect();
        let marker = parse_line(lines[0].as_bytes()).unwrap();
        assert_eq!(
            marker.msg,
            b"[supd] 1 lines dropped (No space left on device (os error 28))"
        );
        assert_eq!((marker.instance, marker.pid), (None, None));
        assert!(lines[0].contains("\"instance\":null,\"pid\":null,\"stream\":\"err\""));
        assert_eq!(parse_line(lines[1].as_bytes()).unwrap().msg, b"kept");
    }

    #[test]
    fn a_write_failing_part_way_counts_the_torn_line_and_restarts_on_a_new_line() {
        let (mut s, flaky, dropped) = sink(Format::Text);
        // The first line (39 bytes with prefix) is written whole, the second torn.
        *flaky.fail.lock().unwrap() = Some(54);
        write(&mut s, &["one", "two", "three"]);
        assert_eq!(dropped.load(Ordering::Relaxed), 2);

        *flaky.fail.lock().unwrap() = None;
        write(&mut s, &["four"]);
        let got = text(&flaky);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 4, "{got}");
        assert_eq!(lines[0], "1970-01-01T00:00:00.000Z a:0 out | one");
        assert_eq!(lines[1], "1970-01-01T00:0"); // the torn remains, on its own line
        assert!(lines[2].contains(" a:- err | [supd] 2 lines dropped ("));
        assert_eq!(lines[3], "1970-01-01T00:00:00.000Z a:0 out | four");
    }

    #[test]
    fn marker_waits_for_the_next_lines() {
        let (mut s, flaky, _) = sink(Format::Text);
        *flaky.fail.lock().unwrap() = Some(0);
        write(&mut s, &["x"]);
        *flaky.fail.lock().unwrap() = None;
        // A buffer without records writes nothing, not even the marker.
        assert_eq!(write(&mut s, &[]), Written::default());
        assert_eq!(text(&flaky), "");
        write(&mut s, &["y"]);
        let got = text(&flaky);
        assert!(got.contains("[supd] 1 lines dropped"), "{got}");
        assert!(got.ends_with(" a:0 out | y\n"), "{got}");
    }

    #[test]
    fn an_output_that_cannot_be_opened_drops_with_the_open_error() {
        let (mut s, _, dropped) = sink(Format::Text);
        s.out = None;
        s.last_error = "/x/a.log: Permission denied (os error 13)".into();
        write(&mut s, &["a", "b"]);
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
        let mut buf = Vec::new();
        s.begin(&mut buf);
        let marker = String::from_utf8(buf).unwrap();
        assert!(
            marker
                .ends_with("[supd] 2 lines dropped (/x/a.log: Permission denied (os error 13))\n"),
            "{marker}"
        );
    }
}
