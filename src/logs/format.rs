//! Turns framed lines into the bytes of a log file (DESIGN §3): the pure rendering step.
//!
//! Owns the exact shape of a line and of the "lines dropped" marker. Never does I/O, never
//! frames (it is handed pieces without `\n`), never allocates per line: it appends to the
//! caller's buffer.
//!
//! Text format, one line per piece:
//! ```text
//! 2026-11-23T03:40:00.123Z backend:0 out | message
//! 2026-11-23T03:40:00.123Z backend:0 out + rest of a line longer than the limit
//! ```
//! The separator is ` | ` for the start of a line and ` + ` for a continuation piece of a
//! line that was split at the length limit, so a reader can join pieces back losslessly.
//! The child's bytes are written as they are, invalid UTF-8 included.
//!
//! Only the text format exists today. [`Format`] is the switch a JSON-lines variant will
//! join; [`LineHead`] keeps per-stream state so that variant can cache its own prefix
//! (`{"ts":…,"app":…,"instance":…,"pid":…,"stream":…,"msg":`) the same way.

use super::framer::Mark;
use super::time::{format_ms, TIMESTAMP_LEN};
use super::StreamMeta;

/// How log records are rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `<time> <app>:<index> <out|err> | <bytes>` (DESIGN §3).
    #[default]
    Text,
}

/// The cached start of every line of one stream: `<time> <app>:<index> <stream>`, with the
/// time re-rendered only when the millisecond changes.
#[derive(Debug)]
pub struct LineHead {
    format: Format,
    /// The first [`TIMESTAMP_LEN`] bytes are the time, then ` app:index stream`.
    prefix: Vec<u8>,
    /// The millisecond the time in `prefix` shows; `None` before the first line.
    ms: Option<i64>,
}

impl LineHead {
    /// The head for lines of the stream `meta`.
    pub fn new(format: Format, meta: &StreamMeta) -> LineHead {
        let mut prefix = Vec::with_capacity(TIMESTAMP_LEN + meta.app.len() + 16);
        prefix.extend_from_slice(&[b'0'; TIMESTAMP_LEN]);
        prefix.push(b' ');
        prefix.extend_from_slice(meta.app.as_bytes());
        prefix.push(b':');
        prefix.extend_from_slice(meta.index.to_string().as_bytes());
        prefix.push(b' ');
        prefix.extend_from_slice(meta.stream.as_str().as_bytes());
        LineHead {
            format,
            prefix,
            ms: None,
        }
    }

    /// Sets the time (milliseconds since the Unix epoch) of the lines that follow.
    pub fn set_time(&mut self, ms: i64) {
        if self.ms != Some(ms) {
            let mut ts = [0u8; TIMESTAMP_LEN];
            format_ms(ms, &mut ts);
            self.prefix[..TIMESTAMP_LEN].copy_from_slice(&ts);
            self.ms = Some(ms);
        }
    }

    /// Appends one rendered line (a piece from the framer, without `\n`) to `out`.
    #[inline]
    pub fn write_line(&self, out: &mut Vec<u8>, mark: Mark, piece: &[u8]) {
        match self.format {
            Format::Text => {
                out.reserve(self.prefix.len() + 4 + piece.len());
                out.extend_from_slice(&self.prefix);
                out.extend_from_slice(match mark {
                    Mark::First => b" | ",
                    Mark::Continuation => b" + ",
                });
                out.extend_from_slice(piece);
                out.push(b'\n');
            }
        }
    }
}

/// Appends the marker written once writing works again after an I/O error:
/// `<time> <app>:- err | [supd] N lines dropped (<error>)`.
pub fn write_dropped_marker(
    out: &mut Vec<u8>,
    format: Format,
    ms: i64,
    app: &str,
    dropped: u64,
    error: &str,
) {
    match format {
        Format::Text => {
            let mut ts = [0u8; TIMESTAMP_LEN];
            format_ms(ms, &mut ts);
            out.extend_from_slice(&ts);
            out.push(b' ');
            out.extend_from_slice(app.as_bytes());
            out.extend_from_slice(b":- err | [supd] ");
            out.extend_from_slice(dropped.to_string().as_bytes());
            out.extend_from_slice(b" lines dropped (");
            // An error text has no newline in practice; make sure it cannot break the line.
            out.extend(error.bytes().map(|b| if b == b'\n' { b' ' } else { b }));
            out.extend_from_slice(b")\n");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use crate::logs::Stream;
    use std::sync::Arc;

    const T: i64 = 1_795_405_200_123; // 2026-11-23T03:40:00.123Z

    fn meta(app: &str, index: u32, stream: Stream) -> StreamMeta {
        StreamMeta {
            app: Arc::from(app),
            index,
            pid: 57,
            stream,
        }
    }

    #[test]
    fn text_line_has_the_exact_shape() {
        let mut head = LineHead::new(Format::Text, &meta("backend", 0, Stream::Out));
        head.set_time(T);
        let mut out = Vec::new();
        head.write_line(&mut out, Mark::First, b"message");
        assert_eq!(out, b"2026-11-23T03:40:00.123Z backend:0 out | message\n");
    }

    #[test]
    fn continuation_err_and_raw_bytes() {
        let mut head = LineHead::new(Format::Text, &meta("w", 12, Stream::Err));
        head.set_time(T);
        let mut out = Vec::new();
        head.write_line(&mut out, Mark::First, b"");
        head.write_line(&mut out, Mark::Continuation, b"\xff\xfe tail");
        let want: &[u8] = b"2026-11-23T03:40:00.123Z w:12 err | \n\
                            2026-11-23T03:40:00.123Z w:12 err + \xff\xfe tail\n";
        assert_eq!(out, want);
    }

    #[test]
    fn time_is_rerendered_only_when_it_changes() {
        let mut head = LineHead::new(Format::Text, &meta("a", 1, Stream::Out));
        let mut out = Vec::new();
        head.set_time(T);
        head.write_line(&mut out, Mark::First, b"x");
        head.set_time(T + 1);
        head.write_line(&mut out, Mark::First, b"y");
        head.set_time(0);
        head.write_line(&mut out, Mark::First, b"z");
        let want: &[u8] = b"2026-11-23T03:40:00.123Z a:1 out | x\n\
                            2026-11-23T03:40:00.124Z a:1 out | y\n\
                            1970-01-01T00:00:00.000Z a:1 out | z\n";
        assert_eq!(out, want);
    }

    #[test]
    fn dropped_marker_has_the_exact_shape() {
        let mut out = Vec::new();
        write_dropped_marker(
            &mut out,
            Format::Text,
            T,
            "backend",
            42,
            "No space left on device (os error 28)",
        );
        assert_eq!(
            out,
            b"2026-11-23T03:40:00.123Z backend:- err | [supd] 42 lines dropped \
              (No space left on device (os error 28))\n"
        );
    }
}
