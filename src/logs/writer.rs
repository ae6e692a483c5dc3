//! The writer thread: frames and formats the chunks the readers send, and writes them to
//! each app's log file in batches.
//!
//! Owns the log files, one [`Framer`] and [`LineHead`] per attached stream, and the
//! dropped-line accounting. Never runs on the event loop (file writes block), never
//! panics on I/O errors and never stops before the channel closes: a failed write drops
//! that batch's lines for that app, counts them, and a marker line reports them once
//! writing works again (DESIGN §2).
//!
//! Batching: after one message arrives, whatever else is already queued is taken too (up
//! to [`BATCH_MSGS`] messages or [`BATCH_BYTES`] bytes), the messages are grouped per file
//! (order within a file preserved), and each file gets one `write` per batch — more only
//! if its formatted text passes [`WRITE_AT`].

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memchr::memchr_iter;
use tokio::sync::mpsc;

use super::format::{write_dropped_marker, Format, LineHead};
use super::framer::{Framer, Mark};
use super::time::now_ms;
use super::StreamMeta;

/// Most messages taken into one batch.
pub const BATCH_MSGS: usize = 16;
/// A batch stops taking messages once it holds this many bytes of child output.
pub const BATCH_BYTES: usize = 256 * 1024;
/// Formatted text for one file is written out once it reaches this size, even mid-batch,
/// so a chunk of very short lines (which expand ~40×) cannot balloon the buffer.
pub const WRITE_AT: usize = 512 * 1024;

/// What a reader task tells the writer thread.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A stream starts; always the first message of its reader.
    Open {
        /// Unique per attached pipe.
        id: u64,
        /// Whose output it is.
        meta: StreamMeta,
    },
    /// Bytes read from the pipe at `ms` (milliseconds since the Unix epoch).
    Chunk { id: u64, ms: i64, bytes: Vec<u8> },
    /// The pipe reached end of file (or its reader stopped) at `ms`.
    Eof { id: u64, ms: i64 },
}

impl Msg {
    fn payload_len(&self) -> usize {
        match self {
            Msg::Chunk { bytes, .. } => bytes.len(),
            Msg::Open { .. } | Msg::Eof { .. } => 0,
        }
    }
}

/// Counters shared between the writer thread, the readers and [`super::Logs`].
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Lines lost to write errors, per app of the configuration.
    pub dropped: HashMap<Box<str>, Arc<AtomicU64>>,
    /// Lines of apps that have no log file (discarded by design, still counted).
    pub unknown: AtomicU64,
    /// Pipes whose read failed (the reader ended there).
    pub read_errors: AtomicU64,
}

/// One app's log file and the state of its current error episode.
#[derive(Debug)]
struct Sink<W> {
    app: Arc<str>,
    out: W,
    dropped: Arc<AtomicU64>,
    /// Lines dropped since the last marker was written.
    unreported: u64,
    /// The latest write error, shown in the marker.
    last_error: String,
    /// Inside an error episode (one warning per episode, not per batch).
    failing: bool,
    /// The file ends in the middle of a line (a write failed part-way), so the next text
    /// must start on a new line.
    torn: bool,
}

impl<W: Write> Sink<W> {
    /// Starts a batch in the empty `buf`; puts the dropped-lines marker first if lines were
    /// lost since the last one. Returns the marker's length.
    fn begin(&self, buf: &mut Vec<u8>, format: Format) -> usize {
        if self.unreported == 0 {
            return 0;
        }
        if self.torn {
            buf.push(b'\n');
        }
        write_dropped_marker(
            buf,
            format,
            now_ms(),
            &self.app,
            self.unreported,
            &self.last_error,
        );
        buf.len()
    }

    /// Writes `buf` (a marker of `marker_len` bytes, then lines). On error the lines not
    /// written are counted as dropped; the marker is retried with the next batch.
    fn write(&mut self, buf: &[u8], marker_len: usize) {
        if buf.len() == marker_len {
            return; // no lines: the marker waits for the next ones
        }
        let mut written = 0;
        // write_all would hide how far it got; we need that to count exactly.
        let result = loop {
            if written == buf.len() {
                break Ok(());
            }
            match self.out.write(&buf[written..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if written > 0 {
            self.torn = buf[written - 1] != b'\n';
        }
        if marker_len > 0 && written >= marker_len {
            self.unreported = 0;
        }
        match result {
            Ok(()) => {
                if self.failing {
                    self.failing = false;
                    tracing::info!(app = %self.app, "log file writable again");
                }
            }
            Err(e) => {
                // Every formatted line ends in exactly one '\n' (pieces contain none), so
                // counting them in the unwritten part counts the lost lines, a torn one
                // included; the marker's own '\n' is excluded.
                let lost = memchr_iter(b'\n', &buf[written.max(marker_len)..]).count() as u64;
                self.unreported += lost;
                self.dropped.fetch_add(lost, Ordering::Relaxed);
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(app = %self.app, error = %e, "cannot write log file; dropping lines until it works again");
                }
                self.last_error = e.to_string();
            }
        }
    }
}

/// Per attached stream: where it goes and how its lines are cut and prefixed.
#[derive(Debug)]
struct StreamState {
    /// Index into `Writer::sinks`; `None` for an app without a log file.
    sink: Option<usize>,
    framer: Framer,
    head: LineHead,
}

/// The state owned by the writer thread. Generic over the output so tests can use a
/// writer that fails on demand.
#[derive(Debug)]
pub(crate) struct Writer<W> {
    format: Format,
    max_line: usize,
    sinks: Vec<Sink<W>>,
    by_app: HashMap<Arc<str>, usize>,
    streams: HashMap<u64, StreamState>,
    shared: Arc<Shared>,
    /// Formatted text of the file being written; reused across batches.
    buf: Vec<u8>,
    /// The batch's messages tagged with their sink, reused across batches.
    grouped: Vec<(usize, Msg)>,
}

impl<W: Write> Writer<W> {
    /// A writer for `outputs` (app name, its log file). When a name repeats, the first one
    /// wins.
    pub fn new(format: Format, max_line: usize, outputs: Vec<(String, W)>) -> (Self, Arc<Shared>) {
        let mut sinks = Vec::with_capacity(outputs.len());
        let mut by_app = HashMap::with_capacity(outputs.len());
        let mut dropped = HashMap::with_capacity(outputs.len());
        for (name, out) in outputs {
            let app: Arc<str> = Arc::from(name);
            if by_app.contains_key(&app) {
                tracing::warn!(app = %app, "app listed twice for logs; its first file is used");
                continue;
            }
            let counter = Arc::new(AtomicU64::new(0));
            dropped.insert(Box::from(&*app), Arc::clone(&counter));
            by_app.insert(Arc::clone(&app), sinks.len());
            sinks.push(Sink {
                app,
                out,
                dropped: counter,
                unreported: 0,
                last_error: String::new(),
                failing: false,
                torn: false,
            });
        }
        let shared = Arc::new(Shared {
            dropped,
            ..Shared::default()
        });
        let writer = Writer {
            format,
            max_line,
            sinks,
            by_app,
            streams: HashMap::new(),
            shared: Arc::clone(&shared),
            buf: Vec::new(),
            grouped: Vec::with_capacity(BATCH_MSGS),
        };
        (writer, shared)
    }

    /// The thread's body: batches until every sender is gone, then emits the tails of any
    /// stream whose reader vanished without an end-of-file message.
    pub fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
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
    }

    /// Emits the partial last line of every stream still open, as if it reached EOF.
    pub fn close_all(&mut self) {
        let mut ids: Vec<u64> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        let ms = now_ms();
        let mut eofs = ids.into_iter().map(|id| Msg::Eof { id, ms }).collect();
        self.process(&mut eofs);
    }

    /// Frames, formats and writes one batch, emptying `batch`.
    pub fn process(&mut self, batch: &mut Vec<Msg>) {
        let mut grouped = std::mem::take(&mut self.grouped);
        for msg in batch.drain(..) {
            let id = match &msg {
                Msg::Open { id, meta } => {
                    self.open(*id, meta);
                    continue;
                }
                Msg::Chunk { id, .. } | Msg::Eof { id, .. } => *id,
            };
            match self.streams.get(&id).map(|s| s.sink) {
                Some(Some(sink)) => grouped.push((sink, msg)),
                Some(None) => self.discard(msg),
                None => {} // cannot happen: Open always comes first from the same reader
            }
        }
        // Stable, so each stream's chunks stay in the order they were read.
        grouped.sort_by_key(|(sink, _)| *sink);
        for group in grouped.chunk_by(|a, b| a.0 == b.0) {
            self.write_group(group[0].0, group);
        }
        grouped.clear();
        self.grouped = grouped;
    }

    fn open(&mut self, id: u64, meta: &StreamMeta) {
        let sink = self.by_app.get(&meta.app).copied();
        if sink.is_none() {
            tracing::warn!(app = %meta.app, index = meta.index, "no log file for this app; its output is discarded");
        }
        let state = StreamState {
            sink,
            framer: Framer::new(self.max_line),
            head: LineHead::new(self.format, meta),
        };
        self.streams.insert(id, state);
    }

    /// Frames the output of an app without a log file only to count its lines.
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
            Msg::Open { .. } => {}
        }
        self.shared.unknown.fetch_add(lines, Ordering::Relaxed);
    }

    /// Formats the messages of one file into `buf` and writes it.
    fn write_group(&mut self, sink: usize, msgs: &[(usize, Msg)]) {
        let Writer {
            format,
            sinks,
            streams,
            buf,
            ..
        } = self;
        let Some(sink) = sinks.get_mut(sink) else {
            return;
        };
        buf.clear();
        let mut out = Out {
            sink,
            buf,
            format: *format,
            marker_len: 0,
        };
        out.marker_len = out.sink.begin(out.buf, out.format);
        for (_, msg) in msgs {
            match msg {
                Msg::Chunk { id, ms, bytes } => {
                    if let Some(st) = streams.get_mut(id) {
                        st.head.set_time(*ms);
                        let head = &st.head;
                        st.framer
                            .push(bytes, |piece, mark| out.line(head, mark, piece));
                    }
                }
                Msg::Eof { id, ms } => {
                    if let Some(mut st) = streams.remove(id) {
                        st.head.set_time(*ms);
                        let head = &st.head;
                        st.framer.finish(|piece, mark| out.line(head, mark, piece));
                    }
                }
                Msg::Open { .. } => {}
            }
        }
        out.flush();
    }
}

/// The formatted text of one file in one batch.
struct Out<'a, W> {
    sink: &'a mut Sink<W>,
    buf: &'a mut Vec<u8>,
    format: Format,
    marker_len: usize,
}

impl<W: Write> Out<'_, W> {
    #[inline]
    fn line(&mut self, head: &LineHead, mark: Mark, piece: &[u8]) {
        head.write_line(self.buf, mark, piece);
        if self.buf.len() >= WRITE_AT {
            self.flush();
            self.marker_len = self.sink.begin(self.buf, self.format);
        }
    }

    fn flush(&mut self) {
        self.sink.write(self.buf, self.marker_len);
        self.buf.clear();
        self.marker_len = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use crate::logs::Stream;
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

    fn meta(app: &str) -> StreamMeta {
        StreamMeta {
            app: Arc::from(app),
            index: 0,
            pid: 1,
            stream: Stream::Out,
        }
    }

    fn chunk(id: u64, s: &str) -> Msg {
        Msg::Chunk {
            id,
            ms: 0,
            bytes: s.as_bytes().to_vec(),
        }
    }

    fn text(f: &Flaky) -> String {
        String::from_utf8(f.data.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn write_error_drops_counts_and_marks_then_recovers() {
        let flaky = Flaky::default();
        let (mut w, shared) = Writer::new(Format::Text, 1024, vec![("a".into(), flaky.clone())]);
        w.process(&mut vec![
            Msg::Open {
                id: 1,
                meta: meta("a"),
            },
            chunk(1, "one\n"),
        ]);

        *flaky.fail.lock().unwrap() = Some(0);
        w.process(&mut vec![chunk(1, "two\nthree\n")]);
        w.process(&mut vec![chunk(1, "four\n")]);
        assert_eq!(shared.dropped["a"].load(Ordering::Relaxed), 3);

        *flaky.fail.lock().unwrap() = None;
        w.process(&mut vec![chunk(1, "five\n"), Msg::Eof { id: 1, ms: 0 }]);
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
        assert_eq!(shared.dropped["a"].load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_write_failing_part_way_counts_the_torn_line_and_restarts_on_a_new_line() {
        let flaky = Flaky::default();
        let (mut w, shared) = Writer::new(Format::Text, 1024, vec![("a".into(), flaky.clone())]);
        w.process(&mut vec![Msg::Open {
            id: 1,
            meta: meta("a"),
        }]);
        // The first line (39 bytes with prefix) is written whole, the second torn.
        *flaky.fail.lock().unwrap() = Some(54);
        w.process(&mut vec![chunk(1, "one\ntwo\nthree\n")]);
        assert_eq!(shared.dropped["a"].load(Ordering::Relaxed), 2);

        *flaky.fail.lock().unwrap() = None;
        w.process(&mut vec![chunk(1, "four\n")]);
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
        let flaky = Flaky::default();
        let (mut w, _) = Writer::new(Format::Text, 1024, vec![("a".into(), flaky.clone())]);
        w.process(&mut vec![Msg::Open {
            id: 1,
            meta: meta("a"),
        }]);
        *flaky.fail.lock().unwrap() = Some(0);
        w.process(&mut vec![chunk(1, "x\n")]);
        *flaky.fail.lock().unwrap() = None;
        // A chunk that completes no line writes nothing, not even the marker.
        w.process(&mut vec![chunk(1, "partial")]);
        assert_eq!(text(&flaky), "");
        w.process(&mut vec![Msg::Eof { id: 1, ms: 0 }]);
        let got = text(&flaky);
        assert!(got.contains("[supd] 1 lines dropped"), "{got}");
        assert!(got.ends_with(" a:0 out | partial\n"), "{got}");
    }

    #[test]
    fn unknown_apps_are_counted_and_batches_are_grouped_per_file() {
        let (fa, fb) = (Flaky::default(), Flaky::default());
        let (mut w, shared) = Writer::new(
            Format::Text,
            1024,
            vec![("a".into(), fa.clone()), ("b".into(), fb.clone())],
        );
        w.process(&mut vec![
            Msg::Open {
                id: 1,
                meta: meta("b"),
            },
            Msg::Open {
                id: 2,
                meta: meta("a"),
            },
            Msg::Open {
                id: 3,
                meta: meta("ghost"),
            },
            chunk(1, "b1\n"),
            chunk(2, "a1\n"),
            chunk(3, "g1\ng2\n"),
            chunk(1, "b2\n"),
            chunk(3, "g3"),
            Msg::Eof { id: 3, ms: 0 },
        ]);
        w.close_all();
        assert_eq!(shared.unknown.load(Ordering::Relaxed), 3);
        assert_eq!(text(&fa), "1970-01-01T00:00:00.000Z a:0 out | a1\n");
        assert_eq!(
            text(&fb),
            "1970-01-01T00:00:00.000Z b:0 out | b1\n1970-01-01T00:00:00.000Z b:0 out | b2\n"
        );
        assert!(w.streams.is_empty());
    }

    #[test]
    fn close_all_emits_unterminated_tails() {
        let f = Flaky::default();
        let (mut w, _) = Writer::new(Format::Text, 1024, vec![("a".into(), f.clone())]);
        w.process(&mut vec![
            Msg::Open {
                id: 7,
                meta: meta("a"),
            },
            chunk(7, "no newline"),
        ]);
        assert_eq!(text(&f), "");
        w.close_all();
        assert!(text(&f).ends_with(" a:0 out | no newline\n"));
    }
}
