//! The writer thread: takes what the readers send from the channel, in batches, frames
//! and formats the chunks, and hands the records to each app's outputs
//! ([`super::output`]) and to the followers; rotates, empties and reopens files between
//! its own writes; matches the line watches ([`super::watch`]).
//!
//! Owns the receiving end of the channel, one [`Framer`] and [`LineHead`] per attached
//! stream, and the buffers of a batch. Never runs on the event loop (writes block), never
//! compresses (the compressor thread of [`super::archive`] does), never writes but through
//! an output (which counts what an I/O error drops and marks it, DESIGN §2) and never
//! stops before the channel closes.
//!
//! Batching: after one message arrives, whatever else is already queued is taken too (up
//! to [`BATCH_MSGS`] messages or [`BATCH_BYTES`] bytes), the messages are grouped per app
//! (order within an app preserved), and each output gets one `write` per batch — more only
//! if its formatted text passes [`WRITE_AT`], or a rotation falls inside the batch.
//! Control messages (reopen, flush, follow, configure) take effect exactly between the
//! records read before them and those read after.
//!
//! **A new configuration** (from [`super::Logs::configure`]) arrives with the outputs of
//! its new and changed apps already open. Between two writes, each changed app's outputs
//! are replaced (the old ones closed) and its streams attached so far are pointed at the
//! new ones, with the new format and `log_max_line` for what they frame from then on; a
//! line half read is written whole, once, to the new output. An app no longer configured
//! keeps its outputs until every stream attached to it so far has reached end of file
//! (its processes are being stopped and may still write).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::archive::Archive;
use super::follow::Followers;
use super::format::{Format, LineHead};
use super::framer::{self, Framer, Mark};
use super::output::{AppOut, FileOut, SharedOut, Sink};
use super::pool::Pool;
use super::record::{parse_line, Filter, Record};
use super::rotate;
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
        /// The line it had begun before a re-exec, and whether a piece of it was written.
        partial: Option<(Vec<u8>, bool)>,
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
    /// A new set of apps: switch to the outputs of the new and changed ones.
    Configure(Configure),
    /// A re-exec (every reader paused): write everything, forget every stream and send
    /// back the unfinished line of each, by stream id.
    Handover {
        reply: oneshot::Sender<HashMap<u64, (Vec<u8>, bool)>>,
    },
}

/// What changes with a new configuration (the apps left as they were are not in it).
#[derive(Debug)]
pub(crate) struct Configure {
    /// The new and changed apps, their outputs open.
    pub apps: Vec<AppOut>,
    /// The apps no longer configured.
    pub removed: Vec<Arc<str>>,
}

impl Msg {
    fn payload_len(&self) -> usize {
        match self {
            Msg::Chunk { bytes, .. } => bytes.len(),
            _ => 0,
        }
    }
}

/// Counters shared between the writer thread, the readers and [`super::Logs`] (each app
/// has its own, in its [`Counters`](super::output::Counters)).
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Lines of apps that have no log outputs (discarded by design, still counted).
    pub unknown: AtomicU64,
    /// Pipes whose read failed (the reader ended there).
    pub read_errors: AtomicU64,
    /// Read buffers the writer is done with, for the readers to fill again.
    pub pool: Pool,
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

/// An app's outputs in the writer, and the streams that write to them.
#[derive(Debug)]
struct Slot {
    out: AppOut,
    /// Streams pointing at this slot that have not reached end of file.
    streams: usize,
    /// No longer configured: closed once `streams` is 0.
    retiring: bool,
}

/// The state owned by the writer thread.
#[derive(Debug)]
pub(crate) struct Writer {
    /// Streams hold indices into it; `None`: a free slot (a removed app, closed).
    apps: Vec<Option<Slot>>,
    /// The configured apps' slots (not the retiring ones).
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
    /// The writer of `apps` (their outputs open, names distinct), with its counters.
    /// Finishes the rotation work an earlier supd left in their files' directories.
    pub fn new(apps: Vec<AppOut>) -> (Self, Arc<Shared>) {
        let shared = Arc::new(Shared::default());
        let mut writer = Writer {
            apps: Vec::with_capacity(apps.len()),
            by_app: HashMap::with_capacity(apps.len()),
            streams: HashMap::new(),
            shared: Arc::clone(&shared),
            archive: Archive::default(),
            followers: Followers::default(),
            bufs: Default::default(),
            grouped: Vec::with_capacity(BATCH_MSGS),
            watches: Watches::default(),
        };
        for app in apps {
            writer.install(app);
        }
        (writer, shared)
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
                Msg::Open { id, meta, partial } => {
                    self.open(id, meta, partial);
                    continue;
                }
                Msg::Handover { reply } => {
                    self.write_grouped();
                    let _ = reply.send(self.hand_over());
                    continue;
                }
                Msg::Chunk { id, .. } | Msg::Eof { id, .. } => id,
                Msg::Reopen => {
                    self.write_grouped();
                    for f in self.slots_mut().flat_map(|s| s.out.files.iter_mut()) {
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
                Msg::Configure(change) => {
                    self.write_grouped();
                    self.configure(change);
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

    fn slots_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.apps.iter_mut().flatten()
    }

    /// Forgets every stream (their readers are paused) without ending their lines.
    fn hand_over(&mut self) -> HashMap<u64, (Vec<u8>, bool)> {
        let mut partials = HashMap::with_capacity(self.streams.len());
        for (id, mut st) in self.streams.drain() {
            if let Some(slot) = st
                .app
                .and_then(|a| self.apps.get_mut(a))
                .and_then(Option::as_mut)
            {
                slot.streams = slot.streams.saturating_sub(1);
            }
            partials.insert(id, st.framer.take_partial());
        }
        partials
    }

    fn open(&mut self, id: u64, meta: StreamMeta, partial: Option<(Vec<u8>, bool)>) {
        let app = self.by_app.get(&meta.app).copied();
        let slot = app
            .and_then(|a| self.apps.get_mut(a))
            .and_then(Option::as_mut);
        let (format, max_line) = match slot {
            Some(slot) => {
                slot.streams += 1;
                (slot.out.format, slot.out.max_line)
            }
            None => {
                tracing::warn!(app = %meta.app, index = meta.index, "no log output for this app; its output is discarded");
                (Format::Text, super::framer::MAX_LINE)
            }
        };
        let mut framer = Framer::new(max_line);
        if let Some((tail, continued)) = partial {
            framer.resume(tail, continued);
        }
        let state = StreamState {
            app,
            framer,
            head: LineHead::new(format, &meta),
            meta,
        };
        self.streams.insert(id, state);
    }

    /// Gives `app` a slot: its own if it is configured or retiring (whose outputs it
    /// replaces), else a free one. Returns the slot.
    fn install(&mut self, mut app: AppOut) -> usize {
        app.take_over(&mut self.archive);
        let name = Arc::clone(&app.name);
        let own = self.by_app.get(&name).copied().or_else(|| {
            self.apps
                .iter()
                .position(|s| s.as_ref().is_some_and(|s| s.retiring && s.out.name == name))
        });
        let slot = match own.and_then(|i| self.apps[i].as_mut().map(|s| (i, s))) {
            Some((i, slot)) => {
                // The old outputs close here, after their last write.
                slot.out = app;
                slot.retiring = false;
                i
            }
            None => {
                let slot = Some(Slot {
                    out: app,
                    streams: 0,
                    retiring: false,
                });
                match self.apps.iter().position(Option::is_none) {
                    Some(i) => {
                        self.apps[i] = slot;
                        i
                    }
                    None => {
                        self.apps.push(slot);
                        self.apps.len() - 1
                    }
                }
            }
        };
        self.by_app.insert(name, slot);
        slot
    }

    /// Switches to a new configuration (see the module doc).
    fn configure(&mut self, change: Configure) {
        for name in change.removed {
            if let Some(i) = self.by_app.remove(&name) {
                if let Some(slot) = self.apps[i].as_mut() {
                    slot.retiring = true;
                }
                self.close_if_done(i);
            }
        }
        if change.apps.is_empty() {
            return;
        }
        let mut installed = HashMap::with_capacity(change.apps.len());
        for app in change.apps {
            let name = Arc::clone(&app.name);
            installed.insert(name, self.install(app));
        }
        // Streams of these apps attached so far, an unknown app's included: from now on
        // they write to the new outputs, framed and formatted as the new settings say.
        for st in self.streams.values_mut() {
            let Some(&i) = installed.get(&st.meta.app) else {
                continue;
            };
            let Some(slot) = self.apps[i].as_mut() else {
                continue;
            };
            // `install` keeps an app in its own slot: only a stream of an app that was
            // unknown moves.
            if st.app != Some(i) {
                slot.streams += 1;
                st.app = Some(i);
            }
            st.framer.set_max_line(slot.out.max_line);
            st.head = LineHead::new(slot.out.format, &st.meta);
        }
    }

    /// Closes the outputs of slot `i` if its app is retiring and its last stream ended.
    fn close_if_done(&mut self, i: usize) {
        if let Some(slot) = self.apps.get_mut(i) {
            if slot.as_ref().is_some_and(|s| s.retiring && s.streams == 0) {
                *slot = None;
            }
        }
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
        let Writer { apps, archive, .. } = self;
        for a in apps.iter_mut().flatten().map(|s| &mut s.out) {
            if app.is_some_and(|name| name != &*a.name) {
                continue;
            }
            for f in &mut a.files {
                let flushed = f.flush(archive);
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
        // Dropping the chunks returns their budget to the readers, their buffers to the
        // pool.
        for (_, msg) in grouped.drain(..) {
            if let Msg::Chunk { bytes, .. } = msg {
                self.shared.pool.give(bytes);
            }
        }
        self.grouped = grouped;
    }

    /// Frames, formats and writes the messages of one app.
    fn write_app(&mut self, slot: usize, msgs: &[(usize, Msg)]) {
        let ended = self.write_slot(slot, msgs);
        if ended > 0 {
            if let Some(s) = self.apps.get_mut(slot).and_then(Option::as_mut) {
                s.streams = s.streams.saturating_sub(ended);
            }
            self.close_if_done(slot);
        }
    }

    /// [`Writer::write_app`] but for the slot's bookkeeping; returns how many of its
    /// streams reached end of file.
    fn write_slot(&mut self, app: usize, msgs: &[(usize, Msg)]) -> usize {
        let Writer {
            apps,
            streams,
            archive,
            followers,
            bufs,
            watches,
            ..
        } = self;
        let Some(Slot { out: app, .. }) = apps.get_mut(app).and_then(Option::as_mut) else {
            return 0;
        };
        let mut ended = 0;
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
                        match watch {
                            // The common case: no check per line; whole lines that
                            // need only their file skip the framer.
                            None => {
                                let mut rest: &[u8] = bytes;
                                if !st.framer.at_line_start() {
                                    // The line the last chunk ended in, through the framer.
                                    let end =
                                        memchr::memchr(b'\n', rest).map_or(rest.len(), |nl| nl + 1);
                                    st.framer.push(&rest[..end], |piece, mark| {
                                        out.record(head, meta, *ms, mark, piece)
                                    });
                                    rest = &rest[end..];
                                }
                                if st.framer.at_line_start() {
                                    let max_line = st.framer.max_line();
                                    let taken = out.whole_lines(head, meta, *ms, rest, max_line);
                                    rest = &rest[taken..];
                                }
                                st.framer.push(rest, |piece, mark| {
                                    out.record(head, meta, *ms, mark, piece)
                                })
                            }
                            Some(_) => st.framer.push(bytes, |piece, mark| {
                                watch::check(&mut watch, piece);
                                out.record(head, meta, *ms, mark, piece)
                            }),
                        }
                        watches.settle(meta.pid, watch);
                    }
                }
                Msg::Eof { id, ms } => {
                    if let Some(mut st) = streams.remove(id) {
                        ended += 1;
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
        ended
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

    /// Appends a record to file `i`'s buffer, the file rotated first if the policy says
    /// so. Returns whether the piece was embedded (JSON) and the record's length, at the
    /// end of the buffer.
    #[inline]
    fn append(
        &mut self,
        i: usize,
        head: &LineHead,
        ms: i64,
        mark: Mark,
        piece: &[u8],
    ) -> (bool, usize) {
        let app = &mut *self.app;
        let (f, b) = (&mut app.files[i], &mut self.bufs[i]);
        let start = b.bytes.len();
        let embedded = head.write_line(&mut b.bytes, mark, piece);
        let len = b.bytes.len() - start;
        // The marker's few bytes are not counted: it must not rotate an empty file.
        let pending = (start - b.marker_len) as u64;
        if rotate::before_write(&app.policy, f.size + pending, f.since, len as u64, ms).is_some() {
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
        (embedded, len)
    }

    /// The whole lines at the start of `chunk` while they need only their file: text
    /// records, no stdout copy, no follower, no rotation due, none longer than `max_line`
    /// (the framer's `at_line_start` must hold). The records are what
    /// [`AppWrite::record`] would append, with one check per line instead of its calls.
    /// Returns the bytes taken, each line with its `\n`; the framer gets the rest.
    fn whole_lines(
        &mut self,
        head: &LineHead,
        meta: &StreamMeta,
        ms: i64,
        chunk: &[u8],
        max_line: usize,
    ) -> usize {
        let Some(prefix) = head.text_prefix() else {
            return 0;
        };
        let app = &mut *self.app;
        if app.stdout.is_some()
            || self
                .followers
                .want(&app.name, Some(meta.index), meta.stream)
        {
            return 0;
        }
        let Some(i) = file_of(app, meta) else {
            return 0;
        };
        let (f, b) = (&mut app.files[i], &mut self.bufs[i]);
        // A rotation due now (by time: `ms` is the whole chunk's) is the general path's.
        let pending = (b.bytes.len() - b.marker_len) as u64;
        if rotate::before_write(&app.policy, f.size + pending, f.since, 0, ms).is_some() {
            return 0;
        }
        let mut taken = 0;
        let mut records = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let line = framer::strip_cr(&chunk[taken..nl]);
            if line.len() > max_line {
                break;
            }
            let len = prefix.len() + line.len() + 1;
            // The record that would cross the size limit rotates first: the general path's.
            let size = f.size + (b.bytes.len() - b.marker_len) as u64;
            if rotate::crosses_size(&app.policy, size, len as u64) {
                break;
            }
            b.bytes.reserve(len);
            b.bytes.extend_from_slice(prefix);
            b.bytes.extend_from_slice(line);
            b.bytes.push(b'\n');
            taken = nl + 1;
            records += 1;
            spill(f, b, self.followers);
        }
        if records > 0 && f.since.is_none() {
            f.since = Some(ms);
        }
        self.records += records;
        taken
    }

    /// Writes file `i`'s buffer out once it holds [`WRITE_AT`] bytes.
    #[inline]
    fn spill_file(&mut self, i: usize) {
        spill(&mut self.app.files[i], &mut self.bufs[i], self.followers);
    }

    /// One piece from a framer: into its file's buffer (rotating first if the policy says
    /// so), into the stdout buffer, and to the followers that want it.
    #[inline]
    fn record(&mut self, head: &LineHead, meta: &StreamMeta, ms: i64, mark: Mark, piece: &[u8]) {
        self.records += 1;
        let embedded = match file_of(self.app, meta) {
            Some(i) => {
                let (embedded, len) = self.append(i, head, ms, mark, piece);
                if self.app.stdout.is_some() {
                    let (bufs, stdout_buf) = self.bufs.split_at_mut(STDOUT_BUF);
                    let b = &bufs[i].bytes;
                    stdout_buf[0].bytes.extend_from_slice(&b[b.len() - len..]);
                }
                self.spill_file(i);
                embedded
            }
            None => head.write_line(&mut self.bufs[STDOUT_BUF].bytes, mark, piece),
        };
        let app = &mut *self.app;
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

/// The file of `app` that `meta`'s lines go to: its one file, or with `log_split` the
/// stream's own; `None` if the app writes to stdout only.
fn file_of(app: &AppOut, meta: &StreamMeta) -> Option<usize> {
    match app.files.len() {
        0 => None,
        1 => Some(0),
        _ => Some(usize::from(meta.stream == Stream::Err)),
    }
}

/// Writes `b` to `f` once it holds [`WRITE_AT`] bytes, and starts it again.
#[inline]
fn spill(f: &mut FileOut, b: &mut Buf, followers: &mut Followers) {
    if b.bytes.len() >= WRITE_AT {
        write_file(f, b, followers);
        b.bytes.clear();
        b.marker_len = f.sink.begin(&mut b.bytes);
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
    // The whole writer, driven message by message with chosen times.

    use super::*;
    use crate::config::LogRotate;
    use crate::logs::output::{AppSpec, Counters};
    use crate::logs::rotate::Policy;
    use crate::logs::tests::TempDir;
    use std::fs::File;
    use std::path::{Path, PathBuf};

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

    /// A writer of the apps of `specs`, as [`super::super::Logs`] starts it.
    fn writer(specs: Vec<AppSpec>, stdout: Option<Arc<File>>) -> Writer {
        let outs = specs
            .into_iter()
            .map(|s| AppOut::open(s, stdout.as_ref(), &Counters::default()).unwrap())
            .collect();
        Writer::new(outs).0
    }

    fn open_msg(id: u64, stream: Stream) -> Msg {
        Msg::Open {
            id,
            partial: None,
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
    fn every_chunking_gives_the_records_of_framer_and_head() {
        // Whole lines take a shorter path than the framer's pieces: the file must not
        // tell which. Long lines (max_line 16), CR LF, empty lines, invalid UTF-8, a line
        // carried across chunks and an unterminated last one.
        let mut text = b"short\n\nexactly-16-bytes\n17-bytes-is-split\r\n".to_vec();
        text.extend_from_slice(b"crlf\r\nbad \xff\xfe utf-8\n");
        text.extend_from_slice(b"a line of forty bytes, cut in three....\n\r\nlast, no newline");
        let meta = StreamMeta {
            app: Arc::from("a"),
            index: 0,
            pid: 9,
            stream: Stream::Out,
        };
        let mut head = LineHead::new(Format::Text, &meta);
        head.set_time(DAY);
        let mut expected = Vec::new();
        let mut framer = Framer::new(16);
        let mut put = |piece: &[u8], mark| {
            head.write_line(&mut expected, mark, piece);
        };
        framer.push(&text, &mut put);
        framer.finish(&mut put);

        for size in [1, 2, 3, 5, 7, 16, 17, 40, text.len()] {
            let tmp = TempDir::new("w-chunking");
            let path = tmp.0.join("a.log");
            let mut app = spec(vec![path.clone()], Policy::default(), 0);
            app.max_line = 16;
            let mut w = writer(vec![app], None);
            let mut batch = vec![open_msg(1, Stream::Out)];
            batch.extend(text.chunks(size).map(|c| Msg::Chunk {
                id: 1,
                ms: DAY,
                bytes: c.to_vec(),
                _permit: None,
            }));
            // At the chunks' time, so the last line's record has it too.
            batch.push(Msg::Eof { id: 1, ms: DAY });
            w.process(&mut batch);
            end(w);
            let got = std::fs::read(&path).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected),
                "chunks of {size}"
            );
            assert_eq!(got, expected, "chunks of {size}");
        }
    }

    #[test]
    fn size_rotation_happens_before_the_record_that_would_cross() {
        let tmp = TempDir::new("w-size");
        let path = tmp.0.join("a.log");
        let policy = Policy {
            max_size: Some(200),
            every: None,
        };
        let mut w = writer(vec![spec(vec![path.clone()], policy, 5)], None);
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
        let mut w = writer(vec![spec(vec![path.clone()], policy, 3)], None);
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
        let mut w = writer(vec![spec(vec![path.clone()], policy, 3)], None);
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
        let mut w = writer(vec![spec(vec![path.clone()], policy, 3)], None);
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

    /// The new outputs of a changed app are opened on another thread while the old
    /// ones still write: when the old ones rotate the same file in between, the writer
    /// reopens it by name at the switch, so records go to the current file.
    #[test]
    fn a_file_rotated_between_open_and_switch_is_reopened_by_name() {
        let tmp = TempDir::new("w-switch");
        let path = tmp.0.join("a.log");
        let policy = Policy {
            max_size: Some(200),
            every: None,
        };
        let mut w = writer(vec![spec(vec![path.clone()], policy, 5)], None);
        let lines = Counters::default();
        let new = AppOut::open(spec(vec![path.clone()], policy, 3), None, &lines).unwrap();
        // Five 50-byte records: the fifth rotates the file the new outputs hold.
        let text: String = (0..5)
            .map(|i| format!("{i:02}{}\n", "x".repeat(12)))
            .collect();
        w.process(&mut vec![open_msg(1, Stream::Out), chunk_at(1, DAY, &text)]);
        w.process(&mut vec![
            Msg::Configure(Configure {
                apps: vec![new],
                removed: Vec::new(),
            }),
            chunk_at(1, DAY, "after\n"),
        ]);
        end(w);
        assert_eq!(msgs(&rotate::rotated_name(&path, 1, false)).len(), 4);
        assert_eq!(msgs(&path).len(), 2, "{}", read(&path));
        assert_eq!(msgs(&path)[1], "after");
        assert_eq!(
            lines.lines.load(Ordering::Relaxed),
            1,
            "counted by the new outputs"
        );
    }

    #[test]
    fn split_files_and_stdout_get_their_records() {
        let tmp = TempDir::new("w-split");
        let (out, err) = (tmp.0.join("a.out.log"), tmp.0.join("a.err.log"));
        let stdout_path = tmp.0.join("stdout");
        let stdout = Arc::new(File::create(&stdout_path).unwrap());
        let mut app = spec(vec![out.clone(), err.clone()], Policy::default(), 1);
        app.stdout = true;
        let mut w = writer(vec![app], Some(stdout));
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
}
