//! The outputs of an app: its log files and supd's stdout, as the writer thread writes
//! them. Each output counts the lines an I/O error drops and, once writing works again,
//! puts a marker record `[supd] N lines dropped (<error>)` before its next records
//! (DESIGN §2).
//!
//! Owns the open log files (opened `O_APPEND`, reopened by name, rotated, emptied) and
//! each output's error episode. Never frames, formats or batches records (it is handed
//! formatted text by [`super::writer`]), never decides when to rotate ([`super::rotate`]
//! does), never compresses ([`super::archive`]'s thread does) and never panics on an I/O
//! error: a failed write drops that write's lines, for that output only.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use memchr::memchr_iter;

use super::archive::{open_log, Archive};
use super::format::{write_dropped_marker, Format};
use super::rotate::Policy;
use super::stream::Stream;
use super::time::now_ms;

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
pub(crate) struct Sink<W> {
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
pub(crate) struct Written {
    pub bytes: usize,
    /// The dropped-lines marker at the start of the buffer was written.
    pub marker: bool,
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
    pub fn begin(&self, buf: &mut Vec<u8>) -> usize {
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
    pub fn write(&mut self, buf: &[u8], marker_len: usize) -> Written {
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
pub(crate) struct FileOut {
    path: PathBuf,
    pub sink: Sink<File>,
    /// Bytes in the file (as far as supd wrote or found them).
    pub size: u64,
    /// When the file's content started (for time rotation); `None` while empty.
    pub since: Option<i64>,
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

    /// Makes the file, opened on another thread a moment ago, right for the writer that
    /// takes it over: reopened by name if it was renamed meanwhile (rotated by the outputs
    /// it replaces), its size and age read again (they may have written to it).
    fn settle(&mut self) {
        let open = self.sink.out.as_ref().and_then(|f| f.metadata().ok());
        let named = std::fs::metadata(&self.path).ok();
        match (open, named) {
            (Some(open), Some(named)) if (open.dev(), open.ino()) == (named.dev(), named.ino()) => {
                if let Some(file) = self.sink.out.take() {
                    self.load(file);
                }
            }
            _ => self.reopen(),
        }
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

    pub fn write(&mut self, buf: &[u8], marker_len: usize) -> Written {
        self.ensure_open();
        let w = self.sink.write(buf, marker_len);
        self.size += w.bytes as u64;
        w
    }

    /// Rotates the file (names in [`super::archive`]) and opens a new one.
    pub fn rotate(&mut self, archive: &mut Archive, retain: u32, compress: bool) {
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
    pub fn reopen(&mut self) {
        self.sink.out = None;
        self.ensure_open();
    }

    /// Empties the file and deletes its rotated files.
    pub fn flush(&mut self, archive: &Archive) -> io::Result<()> {
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
pub(crate) struct AppOut {
    pub name: Arc<str>,
    pub format: Format,
    pub max_line: usize,
    pub policy: Policy,
    pub retain: u32,
    pub compress: bool,
    /// None, one file for both streams, or `[stdout's, stderr's]`.
    pub files: Vec<FileOut>,
    pub stdout: Option<Sink<SharedOut>>,
    /// Records framed so far (the app's [`Counters::lines`]).
    pub lines: Arc<AtomicU64>,
}

impl AppOut {
    /// Opens the outputs of `spec`: its files, and supd's `stdout` if it writes there.
    /// Lines its outputs drop are counted in `counters.dropped`, records it frames in
    /// `counters.lines`. Fails on the first file that cannot be opened, naming it.
    ///
    /// Rotated files an earlier writer of the same names left are not tidied here (the
    /// writer thread does it with [`AppOut::take_over`], which may queue compressions).
    pub fn open(
        spec: AppSpec,
        stdout: Option<&Arc<File>>,
        counters: &Counters,
    ) -> io::Result<AppOut> {
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let dropped = &counters.dropped;
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
            let mut out = FileOut {
                sink: Sink::new(&name, spec.format, stream, dropped, what),
                path,
                size: 0,
                since: None,
            };
            out.load(file);
            files.push(out);
        }
        let stdout = match (stdout, spec.stdout) {
            (Some(fd), true) => {
                let mut sink = Sink::new(&name, spec.format, Stream::Err, dropped, "stdout".into());
                sink.out = Some(SharedOut(Arc::clone(fd)));
                Some(sink)
            }
            (None, true) => {
                return Err(io::Error::other(format!(
                    "stdout: not open for the log of `{name}`"
                )))
            }
            (_, false) => None,
        };
        Ok(AppOut {
            name,
            format: spec.format,
            max_line: spec.max_line,
            policy: spec.policy,
            retain: spec.retain,
            compress: spec.compress,
            files,
            stdout,
            lines: Arc::clone(&counters.lines),
        })
    }

    /// On the writer thread, before its first write: finishes the rotation work an
    /// earlier writer of its files left (interrupted compressions, rotated files past
    /// `log_retain`; failures are only logged), and settles each file, which the outputs
    /// it replaces may have written, rotated or emptied since it was opened.
    pub fn take_over(&mut self, archive: &mut Archive) {
        for f in &mut self.files {
            if let Err(e) = archive.recover(&f.path, self.retain, self.compress) {
                tracing::warn!(file = %f.path.display(), error = %e, "cannot tidy the rotated logs");
            }
            f.settle();
        }
    }
}

/// The counters of one app, which outlive its outputs when they are replaced
/// ([`super::Logs::configure`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    /// Records framed from the app's pipes.
    pub lines: Arc<AtomicU64>,
    /// Lines its outputs lost to I/O errors.
    pub dropped: Arc<AtomicU64>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use crate::logs::format::LineHead;
    use crate::logs::framer::Mark;
    use crate::logs::record::parse_line;
    use crate::logs::stream::StreamMeta;
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
