//! Turns framed lines into the bytes of a log record (DESIGN §3): the pure rendering step.
//!
//! Owns the exact shape of a record in both formats, of the "lines dropped" marker, and
//! the JSON escaping of a child's bytes. Never does I/O, never frames (it is handed pieces
//! without `\n`), and allocates nothing per line: it appends to the caller's buffer.
//!
//! Text format, one line per record:
//! ```text
//! 2026-11-23T03:40:00.123Z backend:0 out | message
//! 2026-11-23T03:40:00.123Z backend:0 out + rest of a line longer than the limit
//! 2026-11-23T03:40:00.123Z backend:- err | [supd] 3 lines dropped (No space left on device (os error 28))
//! ```
//! The separator is ` | ` for a whole line or the first piece of a split one, ` + ` for a
//! continuation piece, so a reader can join pieces back losslessly. The child's bytes are
//! written as they are, invalid UTF-8 included. supd's own records have `-` as index.
//!
//! JSON format, one object per line, keys always in this order:
//! ```text
//! {"ts":"2026-11-23T03:40:00.123Z","app":"backend","instance":0,"pid":57,"stream":"out","msg":"message"}
//! ```
//! then `,"cont":true` for a continuation piece and `,"bin":true` for bytes that are not
//! UTF-8 (below). supd's own records have `"instance":null,"pid":null`.
//! - With `embed`, a whole line that is a JSON object (valid UTF-8, parsed by serde_json)
//!   goes in as `"msg":{…}`, as the child wrote it minus surrounding whitespace. Anything
//!   else (arrays, numbers, pieces of a split line) stays a string.
//! - **Invalid UTF-8** (lossless, one rule): a line that is valid UTF-8 is a normal JSON
//!   string. A line that is not is written with `"bin":true`, and its `msg` string holds
//!   one character per *byte*, U+0000..=U+00FF (ISO-8859-1 decoding; bytes ≥ 0x80 are
//!   written as `\u00XX` escapes, so the file stays ASCII). A reader gets the exact bytes
//!   back by taking each character's code point as a byte. ASCII text in such a line stays
//!   readable; other valid UTF-8 characters in it show as their bytes.

use super::framer::Mark;
use super::stream::{Stream, StreamMeta};
use super::time::{format_ms, TIMESTAMP_LEN};
use crate::config::{LogFormat, LogJson, LogSettings};

/// How log records are rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `<time> <app>:<index> <out|err> | <bytes>` (DESIGN §3).
    #[default]
    Text,
    /// One JSON object per line; `embed`: a line that is a JSON object goes in as one.
    Json {
        /// `log_json = "embed"`.
        embed: bool,
    },
}

impl Format {
    /// The format an app's settings ask for.
    pub fn of(settings: &LogSettings) -> Format {
        match settings.format {
            LogFormat::Text => Format::Text,
            LogFormat::Json => Format::Json {
                embed: settings.json == LogJson::Embed,
            },
        }
    }
}

/// The cached start of every record of one stream, with the time re-rendered only when the
/// millisecond changes: `<time> <app>:<index> <stream>` or
/// `{"ts":"<time>","app":…,"instance":…,"pid":…,"stream":…,"msg":`.
#[derive(Debug)]
pub struct LineHead {
    format: Format,
    prefix: Vec<u8>,
    /// Where the time sits in `prefix`.
    ts_at: usize,
    /// The millisecond the time in `prefix` shows; `None` before the first line.
    ms: Option<i64>,
}

impl LineHead {
    /// The head for records of the stream `meta`.
    pub fn new(format: Format, meta: &StreamMeta) -> LineHead {
        let mut prefix = Vec::with_capacity(96 + meta.app.len());
        let ts_at = push_head(
            &mut prefix,
            format,
            0,
            &meta.app,
            Some(meta.index),
            Some(meta.pid),
            meta.stream,
        );
        if format == Format::Text {
            // A whole line's separator; a continuation's `+` is put in its place.
            prefix.extend_from_slice(TEXT_WHOLE);
        }
        LineHead {
            format,
            prefix,
            ts_at,
            ms: None,
        }
    }

    /// Sets the time (milliseconds since the Unix epoch) of the records that follow.
    pub fn set_time(&mut self, ms: i64) {
        if self.ms != Some(ms) {
            let mut ts = [0u8; TIMESTAMP_LEN];
            format_ms(ms, &mut ts);
            self.prefix[self.ts_at..self.ts_at + TIMESTAMP_LEN].copy_from_slice(&ts);
            self.ms = Some(ms);
        }
    }

    /// The start of every whole line's record, separator included, if records are text:
    /// such a record is this, the line, and `\n`.
    pub fn text_prefix(&self) -> Option<&[u8]> {
        (self.format == Format::Text).then_some(&self.prefix)
    }

    /// Appends one record (a piece from the framer, without `\n`) to `out`. Returns true
    /// when the piece was embedded as a JSON object.
    #[inline]
    pub fn write_line(&self, out: &mut Vec<u8>, mark: Mark, piece: &[u8]) -> bool {
        out.reserve(self.prefix.len() + 4 + piece.len());
        out.extend_from_slice(&self.prefix);
        match self.format {
            Format::Text => {
                // The prefix ends with the separator (see `new`).
                if mark.is_continuation() {
                    let at = out.len() - 2;
                    out[at] = TEXT_CONT[1];
                }
                out.extend_from_slice(piece);
                out.push(b'\n');
                false
            }
            Format::Json { embed } => push_json_body(
                out,
                mark.is_continuation(),
                embed && mark == Mark::Whole,
                piece,
            ),
        }
    }
}

/// Appends the head of a record and returns where its timestamp starts.
fn push_head(
    out: &mut Vec<u8>,
    format: Format,
    ms: i64,
    app: &str,
    instance: Option<u32>,
    pid: Option<i32>,
    stream: Stream,
) -> usize {
    let mut ts = [0u8; TIMESTAMP_LEN];
    format_ms(ms, &mut ts);
    match format {
        Format::Text => {
            let at = out.len();
            out.extend_from_slice(&ts);
            out.push(b' ');
            out.extend_from_slice(app.as_bytes());
            out.push(b':');
            match instance {
                Some(i) => out.extend_from_slice(i.to_string().as_bytes()),
                None => out.push(b'-'),
            }
            out.push(b' ');
            out.extend_from_slice(stream.as_str().as_bytes());
            at
        }
        Format::Json { .. } => {
            out.extend_from_slice(b"{\"ts\":\"");
            let at = out.len();
            out.extend_from_slice(&ts);
            out.extend_from_slice(b"\",\"app\":");
            push_json_str(out, app);
            out.extend_from_slice(b",\"instance\":");
            match instance {
                Some(i) => out.extend_from_slice(i.to_string().as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"pid\":");
            match pid {
                Some(p) => out.extend_from_slice(p.to_string().as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"stream\":\"");
            out.extend_from_slice(stream.as_str().as_bytes());
            out.extend_from_slice(b"\",\"msg\":");
            at
        }
    }
}

/// ` | msg\n` or ` + msg\n`.
/// What separates a text record's head from a whole line, and from a continuation.
const TEXT_WHOLE: &[u8; 3] = b" | ";
const TEXT_CONT: &[u8; 3] = b" + ";

fn push_text_body(out: &mut Vec<u8>, cont: bool, msg: &[u8]) {
    out.extend_from_slice(if cont { TEXT_CONT } else { TEXT_WHOLE });
    out.extend_from_slice(msg);
    out.push(b'\n');
}

/// `<msg>[,"cont":true][,"bin":true]}\n`; returns true if `msg` was embedded as an object.
fn push_json_body(out: &mut Vec<u8>, cont: bool, may_embed: bool, msg: &[u8]) -> bool {
    let embedded = may_embed && push_json_object(out, msg);
    let mut bin = false;
    if !embedded {
        match std::str::from_utf8(msg) {
            Ok(s) => push_json_str(out, s),
            Err(_) => {
                push_json_latin1(out, msg);
                bin = true;
            }
        }
    }
    if cont {
        out.extend_from_slice(b",\"cont\":true");
    }
    if bin {
        out.extend_from_slice(b",\"bin\":true");
    }
    out.extend_from_slice(b"}\n");
    embedded
}

/// Appends `line` as is (minus surrounding whitespace) if it is one JSON object.
fn push_json_object(out: &mut Vec<u8>, line: &[u8]) -> bool {
    let trimmed = line.trim_ascii();
    if trimmed.first() != Some(&b'{') || !is_json_object(trimmed) {
        return false;
    }
    out.extend_from_slice(trimmed);
    true
}

/// One JSON object and nothing else, in valid UTF-8 (serde_json does not check the UTF-8
/// of strings it skips, so that is checked first).
pub(crate) fn is_json_object(text: &[u8]) -> bool {
    text.trim_ascii_start().first() == Some(&b'{')
        && std::str::from_utf8(text).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        push_escape(out, b);
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Appends `bytes` as a JSON string of one character per byte (U+0000..=U+00FF), the
/// lossless form of a line that is not UTF-8 (module doc).
fn push_json_latin1(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for &b in bytes {
        if b >= 0x80 {
            push_u_escape(out, b);
        } else if b >= 0x20 && b != b'"' && b != b'\\' {
            out.push(b);
        } else {
            push_escape(out, b);
        }
    }
    out.push(b'"');
}

fn push_escape(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => push_u_escape(out, b),
    }
}

fn push_u_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u00");
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

/// Appends one whole record, in `format`: the slow path for records not cut by a framer
/// (supd's markers, [`super::Record`]'s rendering). Byte for byte what [`LineHead`]
/// writes for the same values.
#[allow(clippy::too_many_arguments)] // the fields of a record, each needed
pub(crate) fn write_record(
    out: &mut Vec<u8>,
    format: Format,
    ms: i64,
    app: &str,
    instance: Option<u32>,
    pid: Option<i32>,
    stream: Stream,
    cont: bool,
    embedded: bool,
    msg: &[u8],
) {
    push_head(out, format, ms, app, instance, pid, stream);
    match format {
        Format::Text => push_text_body(out, cont, msg),
        Format::Json { .. } => {
            push_json_body(out, cont, embedded, msg);
        }
    }
}

/// Appends the record written once writing works again after an I/O error:
/// `<time> <app>:- <stream> | [supd] N lines dropped (<error>)`, or the same as JSON.
pub fn write_dropped_marker(
    out: &mut Vec<u8>,
    format: Format,
    ms: i64,
    app: &str,
    stream: Stream,
    dropped: u64,
    error: &str,
) {
    // An error text has no newline in practice; make sure it cannot break the line.
    let error: String = error
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    let msg = format!("[supd] {dropped} lines dropped ({error})");
    write_record(
        out,
        format,
        ms,
        app,
        None,
        None,
        stream,
        false,
        false,
        msg.as_bytes(),
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use std::sync::Arc;

    const T: i64 = 1_795_405_200_123; // 2026-11-23T03:40:00.123Z
    const JSON: Format = Format::Json { embed: false };
    const EMBED: Format = Format::Json { embed: true };

    fn meta(app: &str, index: u32, stream: Stream) -> StreamMeta {
        StreamMeta {
            app: Arc::from(app),
            index,
            pid: 57,
            stream,
        }
    }

    fn line(format: Format, mark: Mark, piece: &[u8]) -> String {
        let mut head = LineHead::new(format, &meta("backend", 0, Stream::Out));
        head.set_time(T);
        let mut out = Vec::new();
        head.write_line(&mut out, mark, piece);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_line_has_the_exact_shape() {
        assert_eq!(
            line(Format::Text, Mark::Whole, b"message"),
            "2026-11-23T03:40:00.123Z backend:0 out | message\n"
        );
        assert_eq!(
            line(Format::Text, Mark::First, b"message"),
            "2026-11-23T03:40:00.123Z backend:0 out | message\n"
        );
    }

    #[test]
    fn continuation_err_and_raw_bytes() {
        let mut head = LineHead::new(Format::Text, &meta("w", 12, Stream::Err));
        head.set_time(T);
        let mut out = Vec::new();
        head.write_line(&mut out, Mark::Whole, b"");
        head.write_line(&mut out, Mark::Continuation, b"\xff\xfe tail");
        let want: &[u8] = b"2026-11-23T03:40:00.123Z w:12 err | \n\
                            2026-11-23T03:40:00.123Z w:12 err + \xff\xfe tail\n";
        assert_eq!(out, want);
    }

    #[test]
    fn time_is_rerendered_only_when_it_changes() {
        for format in [Format::Text, JSON] {
            let mut head = LineHead::new(format, &meta("a", 1, Stream::Out));
            let mut out = Vec::new();
            head.set_time(T);
            head.write_line(&mut out, Mark::Whole, b"x");
            head.set_time(T + 1);
            head.write_line(&mut out, Mark::Whole, b"y");
            head.set_time(0);
            head.write_line(&mut out, Mark::Whole, b"z");
            let text = String::from_utf8(out).unwrap();
            let times: Vec<&str> = text
                .lines()
                .map(|l| &l[l.find("20").or(l.find("19")).unwrap()..][..24])
                .collect();
            assert_eq!(
                times,
                [
                    "2026-11-23T03:40:00.123Z",
                    "2026-11-23T03:40:00.124Z",
                    "1970-01-01T00:00:00.000Z"
                ],
                "{format:?}"
            );
        }
    }

    #[test]
    fn json_record_has_the_exact_shape() {
        assert_eq!(
            line(JSON, Mark::Whole, b"message"),
            "{\"ts\":\"2026-11-23T03:40:00.123Z\",\"app\":\"backend\",\"instance\":0,\"pid\":57,\
             \"stream\":\"out\",\"msg\":\"message\"}\n"
        );
        assert_eq!(
            line(JSON, Mark::Continuation, b"rest"),
            "{\"ts\":\"2026-11-23T03:40:00.123Z\",\"app\":\"backend\",\"instance\":0,\"pid\":57,\
             \"stream\":\"out\",\"msg\":\"rest\",\"cont\":true}\n"
        );
    }

    #[test]
    fn json_escapes_quotes_backslashes_and_controls() {
        let got = line(JSON, Mark::Whole, "a\"b\\c\td\re\x01\x7fé€".as_bytes());
        assert!(
            got.ends_with("\"msg\":\"a\\\"b\\\\c\\td\\re\\u0001\x7fé€\"}\n"),
            "{got}"
        );
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["msg"], "a\"b\\c\td\re\x01\x7fé€");
    }

    #[test]
    fn json_invalid_utf8_is_one_char_per_byte_with_bin() {
        let got = line(JSON, Mark::Continuation, b"ok \xff\xc3 \"q\" \xe2\x82\xac");
        assert!(
            got.ends_with(
                "\"msg\":\"ok \\u00ff\\u00c3 \\\"q\\\" \\u00e2\\u0082\\u00ac\",\
                 \"cont\":true,\"bin\":true}\n"
            ),
            "{got}"
        );
        assert!(got.is_ascii());
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        let bytes: Vec<u8> = v["msg"]
            .as_str()
            .unwrap()
            .chars()
            .map(|c| c as u8)
            .collect();
        assert_eq!(bytes, b"ok \xff\xc3 \"q\" \xe2\x82\xac");
    }

    #[test]
    fn embed_only_whole_lines_that_are_objects() {
        let obj = br#"  {"level":30,"msg":"hi","nested":{"a":[1,2]}} "#;
        assert!(line(EMBED, Mark::Whole, obj)
            .ends_with("\"msg\":{\"level\":30,\"msg\":\"hi\",\"nested\":{\"a\":[1,2]}}}\n"));
        // Not embedded: without embed, pieces of split lines, arrays, numbers, broken JSON,
        // two objects, and an object holding invalid UTF-8.
        for (format, mark, text) in [
            (JSON, Mark::Whole, &br#"{"a":1}"#[..]),
            (EMBED, Mark::First, br#"{"a":1}"#),
            (EMBED, Mark::Continuation, br#"{"a":1}"#),
            (EMBED, Mark::Whole, b"[1,2]"),
            (EMBED, Mark::Whole, b"42"),
            (EMBED, Mark::Whole, br#"{"a":1"#),
            (EMBED, Mark::Whole, br#"{"a":1} {"b":2}"#),
            (EMBED, Mark::Whole, b"{\"a\":\"\xff\"}"),
        ] {
            let got = line(format, mark, text);
            let v: serde_json::Value = serde_json::from_str(&got).unwrap();
            assert!(!v["msg"].is_object(), "{got}");
        }
        let mut head = LineHead::new(EMBED, &meta("a", 0, Stream::Out));
        assert!(head.write_line(&mut Vec::new(), Mark::Whole, b"{}"));
        head.set_time(0);
        assert!(!head.write_line(&mut Vec::new(), Mark::Whole, b"{"));
    }

    #[test]
    fn dropped_marker_has_the_exact_shape() {
        let mut out = Vec::new();
        let error = "No space left on device (os error 28)";
        write_dropped_marker(&mut out, Format::Text, T, "backend", Stream::Err, 42, error);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-23T03:40:00.123Z backend:- err | [supd] 42 lines dropped \
             (No space left on device (os error 28))\n"
        );
        let mut out = Vec::new();
        write_dropped_marker(&mut out, EMBED, T, "backend", Stream::Out, 1, "x\ny");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"ts\":\"2026-11-23T03:40:00.123Z\",\"app\":\"backend\",\"instance\":null,\
             \"pid\":null,\"stream\":\"out\",\"msg\":\"[supd] 1 lines dropped (x y)\"}\n"
        );
    }

    #[test]
    fn the_slow_path_writes_what_the_head_writes() {
        for format in [Format::Text, JSON, EMBED] {
            for mark in [Mark::Whole, Mark::First, Mark::Continuation] {
                for piece in [&b"plain"[..], b"{\"a\":1}", b"\xff", b""] {
                    let mut head = LineHead::new(format, &meta("web", 3, Stream::Err));
                    head.set_time(T);
                    let mut fast = Vec::new();
                    let embedded = head.write_line(&mut fast, mark, piece);
                    let mut slow = Vec::new();
                    write_record(
                        &mut slow,
                        format,
                        T,
                        "web",
                        Some(3),
                        Some(57),
                        Stream::Err,
                        mark.is_continuation(),
                        embedded,
                        piece,
                    );
                    assert_eq!(fast, slow, "{format:?} {mark:?} {piece:?}");
                }
            }
        }
    }
}
