//! One log record as a value: what followers receive, what `tail` returns, and the parser
//! that reads a written line (either format) back into one.
//!
//! Owns [`Record`], [`Filter`] and [`parse_line`]. Pure: never reads a file (that is
//! [`mod@super::tail`]) and renders through [`mod@super::format`], so a record prints exactly as
//! it was written.

use serde_json::Value;

use super::format::{is_json_object, write_record, Format};
use super::stream::Stream;
use super::time::{format_ms, parse_ms, TIMESTAMP_LEN};

/// One record: a line (or a piece of a long line) of a child, or a note from supd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// When supd read it, in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The app.
    pub app: String,
    /// The instance index; `None` for supd's own records (dropped lines, skipped records).
    pub instance: Option<u32>,
    /// The child's pid; `None` for supd's records and for records read back from the text
    /// format (which does not carry it).
    pub pid: Option<i32>,
    /// stdout or stderr.
    pub stream: Stream,
    /// The child's bytes, without the line terminator; not necessarily UTF-8.
    pub msg: Vec<u8>,
    /// A continuation piece of a line longer than `log_max_line`.
    pub cont: bool,
    /// `msg` is a JSON object that the JSON format embedded under `msg` (`log_json =
    /// "embed"`), so [`Record::to_json`] embeds it too.
    pub embedded: bool,
}

impl Record {
    /// A note from supd about `app` (`instance` and `pid` are `None`), on stderr.
    pub fn note(ts_ms: i64, app: &str, msg: String) -> Record {
        Record {
            ts_ms,
            app: app.to_string(),
            instance: None,
            pid: None,
            stream: Stream::Err,
            msg: msg.into_bytes(),
            cont: false,
            embedded: false,
        }
    }

    /// The record as the JSON format writes it (`ts`, `app`, `instance`, `pid`, `stream`,
    /// `msg`, then `cont` and `bin` when true; `msg` an object when embedded, one
    /// character per byte with `bin` when not UTF-8: see [`super::format`]). The map's key
    /// order is serde_json's; [`Record::to_json_line`] has the file's exact bytes.
    pub fn to_json(&self) -> Value {
        let mut ts = [0u8; TIMESTAMP_LEN];
        format_ms(self.ts_ms, &mut ts);
        let mut map = serde_json::Map::new();
        map.insert(
            "ts".into(),
            Value::String(String::from_utf8_lossy(&ts).into_owned()),
        );
        map.insert("app".into(), Value::String(self.app.clone()));
        map.insert("instance".into(), self.instance.into());
        map.insert("pid".into(), self.pid.into());
        map.insert("stream".into(), self.stream.as_str().into());
        let mut bin = false;
        let object = if self.embedded && is_json_object(&self.msg) {
            serde_json::from_slice::<Value>(&self.msg).ok()
        } else {
            None
        };
        let msg = match (object, std::str::from_utf8(&self.msg)) {
            (Some(object), _) => object,
            (None, Ok(text)) => Value::String(text.to_string()),
            (None, Err(_)) => {
                bin = true;
                Value::String(self.msg.iter().map(|&b| char::from(b)).collect())
            }
        };
        map.insert("msg".into(), msg);
        if self.cont {
            map.insert("cont".into(), Value::Bool(true));
        }
        if bin {
            map.insert("bin".into(), Value::Bool(true));
        }
        Value::Object(map)
    }

    /// The record as one line of the JSON format, `\n` included: the exact bytes a log
    /// file holds.
    pub fn to_json_line(&self) -> Vec<u8> {
        self.render(Format::Json {
            embed: self.embedded,
        })
    }

    /// The record as one line of the text format, `\n` included:
    /// `2026-11-23T03:40:00.123Z backend:0 out | message` (` + ` for a continuation piece,
    /// `-` as index for supd's records).
    pub fn to_text(&self) -> Vec<u8> {
        self.render(Format::Text)
    }

    fn render(&self, format: Format) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.app.len() + self.msg.len());
        write_record(
            &mut out,
            format,
            self.ts_ms,
            &self.app,
            self.instance,
            self.pid,
            self.stream,
            self.cont,
            self.embedded,
            &self.msg,
        );
        out
    }
}

/// Which records a follower or `tail` wants. The default wants everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this app.
    pub app: Option<String>,
    /// Only this instance (and supd's own records about the app, which have none).
    pub index: Option<u32>,
    /// Only this stream.
    pub stream: Option<Stream>,
}

impl Filter {
    /// Whether a record of `app`, `instance`, `stream` passes.
    pub fn matches(&self, app: &str, instance: Option<u32>, stream: Stream) -> bool {
        self.app.as_deref().map_or(true, |a| a == app)
            && (self.index.is_none() || instance.is_none() || self.index == instance)
            && self.stream.map_or(true, |s| s == stream)
    }

    /// [`Filter::matches`] for a record.
    pub fn accepts(&self, record: &Record) -> bool {
        self.matches(&record.app, record.instance, record.stream)
    }
}

/// Reads one line of a log file, in either format (a trailing `\n` is allowed), back into
/// a record. `None` for anything that is not a record supd writes (a torn line left by a
/// failed write, for instance).
pub fn parse_line(line: &[u8]) -> Option<Record> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.first() == Some(&b'{') {
        parse_json(line)
    } else {
        parse_text(line)
    }
}

/// `<ts> <app>:<index|-> <stream> <|+> <msg>`.
fn parse_text(line: &[u8]) -> Option<Record> {
    let ts_ms = parse_ms(line.get(..TIMESTAMP_LEN)?)?;
    let rest = line.get(TIMESTAMP_LEN..)?.strip_prefix(b" ")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let (who, rest) = rest.split_at(space);
    let colon = who.iter().rposition(|&b| b == b':')?;
    let app = std::str::from_utf8(&who[..colon]).ok()?;
    let instance = match &who[colon + 1..] {
        b"-" => None,
        digits => Some(parse_uint(digits)?),
    };
    let stream = parse_stream(rest.get(1..4)?)?;
    let (sep, msg): (u8, &[u8]) = match rest.get(4..)? {
        [b' ', sep, b' ', msg @ ..] => (*sep, msg),
        // A line whose trailing space (an empty message) was stripped by some tool.
        [b' ', sep] => (*sep, &[]),
        _ => return None,
    };
    let cont = parse_sep(sep)?;
    if app.is_empty() {
        return None;
    }
    Some(Record {
        ts_ms,
        app: app.to_string(),
        instance,
        pid: None,
        stream,
        msg: msg.to_vec(),
        cont,
        embedded: false,
    })
}

fn parse_sep(sep: u8) -> Option<bool> {
    match sep {
        b'|' => Some(false),
        b'+' => Some(true),
        _ => None,
    }
}

fn parse_stream(word: &[u8]) -> Option<Stream> {
    match word {
        b"out" => Some(Stream::Out),
        b"err" => Some(Stream::Err),
        _ => None,
    }
}

fn parse_uint<T: std::str::FromStr>(digits: &[u8]) -> Option<T> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The JSON format, keys in the order supd writes them (module doc of
/// [`super::format`]). Strict on purpose: it reads supd's own lines, and an embedded
/// object must come back byte for byte, which a generic JSON parse would not give.
fn parse_json(line: &[u8]) -> Option<Record> {
    let mut c = Cursor { s: line, at: 0 };
    c.lit(b"{\"ts\":\"")?;
    let ts_ms = parse_ms(c.take(TIMESTAMP_LEN)?)?;
    c.lit(b"\",\"app\":")?;
    let app: String = c.value()?;
    c.lit(b",\"instance\":")?;
    let instance = c.null_or(parse_uint::<u32>)?;
    c.lit(b",\"pid\":")?;
    let pid = c.null_or(|d| match d {
        [b'-', digits @ ..] => parse_uint::<i32>(digits).map(|p| -p),
        digits => parse_uint::<i32>(digits),
    })?;
    c.lit(b",\"stream\":\"")?;
    let stream = parse_stream(c.take(3)?)?;
    c.lit(b"\",\"msg\":")?;
    let (text, object) = match c.peek()? {
        b'"' => (Some(c.value::<String>()?), None),
        b'{' => (None, Some(c.raw_object()?)),
        _ => return None,
    };
    let cont = c.lit(b",\"cont\":true").is_some();
    let bin = c.lit(b",\"bin\":true").is_some();
    c.lit(b"}")?;
    if c.at != line.len() {
        return None;
    }
    let (msg, embedded) = match (text, object) {
        (_, Some(object)) if !bin => (object.to_vec(), true),
        (Some(text), None) if bin => (
            text.chars()
                .map(|ch| u8::try_from(u32::from(ch)).ok())
                .collect::<Option<Vec<u8>>>()?,
            false,
        ),
        (Some(text), None) => (text.into_bytes(), false),
        _ => return None,
    };
    Some(Record {
        ts_ms,
        app,
        instance,
        pid,
        stream,
        msg,
        cont,
        embedded,
    })
}

/// A read position in a JSON line.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// Consumes `lit` if the line continues with it.
    fn lit(&mut self, lit: &[u8]) -> Option<()> {
        if self.s.get(self.at..)?.starts_with(lit) {
            self.at += lit.len();
            Some(())
        } else {
            None
        }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.s.get(self.at..self.at + n)?;
        self.at += n;
        Some(bytes)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    /// One JSON value of type `T`, ending where serde_json's stream reader stops.
    fn value<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        let mut values =
            serde_json::Deserializer::from_slice(self.s.get(self.at..)?).into_iter::<T>();
        let value = values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(value)
    }

    /// The exact bytes of one JSON object.
    fn raw_object(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        self.value::<serde::de::IgnoredAny>()?;
        Some(&self.s[start..self.at])
    }

    /// `null`, or digits (with an optional `-`) read by `parse`.
    fn null_or<T>(&mut self, parse: impl Fn(&[u8]) -> Option<T>) -> Option<Option<T>> {
        if self.lit(b"null").is_some() {
            return Some(None);
        }
        let rest = self.s.get(self.at..)?;
        let len = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'-'))
            .unwrap_or(rest.len());
        let value = parse(&rest[..len])?;
        self.at += len;
        Some(Some(value))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;
    use crate::logs::format::{write_dropped_marker, LineHead};
    use crate::logs::framer::Mark;
    use crate::logs::StreamMeta;
    use std::sync::Arc;

    const T: i64 = 1_795_405_200_123; // 2026-11-23T03:40:00.123Z

    fn rec(msg: &[u8]) -> Record {
        Record {
            ts_ms: T,
            app: "backend".into(),
            instance: Some(2),
            pid: Some(57),
            stream: Stream::Out,
            msg: msg.to_vec(),
            cont: false,
            embedded: false,
        }
    }

    /// Every piece, written by the real head in every format, reads back as the same
    /// record (the text format has no pid; only whole-line objects embed).
    #[test]
    fn both_formats_round_trip_through_parse_line() {
        let pieces: &[&[u8]] = &[
            b"message",
            b"",
            b" | fake separator + and \"quotes\" \\ and \t tab",
            "é€😀 unicode".as_bytes(),
            b"bad \xff\xfe utf-8 \xc3",
            b"\r trailing cr\r",
            br#"{"level":30,"msg":"structured","n":[1,2.50,{"x":null}]}"#,
            br#"  {"spaced": true}  "#,
            b"[1,2,3]",
            b"\x00\x1f control",
        ];
        let formats = [
            Format::Text,
            Format::Json { embed: false },
            Format::Json { embed: true },
        ];
        for format in formats {
            for mark in [Mark::Whole, Mark::First, Mark::Continuation] {
                for stream in [Stream::Out, Stream::Err] {
                    for &piece in pieces {
                        let meta = StreamMeta {
                            app: Arc::from("web.api-1"),
                            index: 7,
                            pid: 4242,
                            stream,
                        };
                        let mut head = LineHead::new(format, &meta);
                        head.set_time(T);
                        let mut line = Vec::new();
                        let embedded = head.write_line(&mut line, mark, piece);
                        let got = parse_line(&line).unwrap_or_else(|| {
                            panic!("{format:?} {mark:?}: {}", String::from_utf8_lossy(&line))
                        });
                        let want_msg = if embedded { piece.trim_ascii() } else { piece };
                        assert_eq!(got.msg, want_msg, "{}", String::from_utf8_lossy(&line));
                        assert_eq!(got.ts_ms, T);
                        assert_eq!(got.app, "web.api-1");
                        assert_eq!(got.instance, Some(7));
                        assert_eq!(got.stream, stream);
                        assert_eq!(got.cont, mark == Mark::Continuation);
                        assert_eq!(got.embedded, embedded);
                        let want_pid = (format != Format::Text).then_some(4242);
                        assert_eq!(got.pid, want_pid);
                        // ...and renders back to the very same line.
                        let again = match format {
                            Format::Text => got.to_text(),
                            Format::Json { .. } => got.to_json_line(),
                        };
                        assert_eq!(again, line);
                    }
                }
            }
        }
    }

    #[test]
    fn markers_parse_in_both_formats() {
        for format in [Format::Text, Format::Json { embed: true }] {
            let mut line = Vec::new();
            write_dropped_marker(&mut line, format, T, "api", Stream::Err, 3, "disk full");
            let got = parse_line(&line).unwrap();
            assert_eq!(
                got,
                Record::note(T, "api", "[supd] 3 lines dropped (disk full)".into())
            );
        }
    }

    #[test]
    fn to_json_has_the_file_fields() {
        let v = rec(b"hello").to_json();
        assert_eq!(
            v,
            serde_json::json!({"ts": "2026-11-23T03:40:00.123Z", "app": "backend",
                "instance": 2, "pid": 57, "stream": "out", "msg": "hello"})
        );
        let mut r = rec(br#"{"a":1}"#);
        r.embedded = true;
        r.cont = false;
        assert_eq!(r.to_json()["msg"], serde_json::json!({"a": 1}));
        let mut r = rec(b"\xff");
        r.cont = true;
        r.instance = None;
        r.pid = None;
        let v = r.to_json();
        assert_eq!(v["msg"], "\u{ff}");
        assert_eq!(v["bin"], true);
        assert_eq!(v["cont"], true);
        assert_eq!(v["instance"], Value::Null);
        assert_eq!(
            String::from_utf8(rec(b"x").to_text()).unwrap(),
            "2026-11-23T03:40:00.123Z backend:2 out | x\n"
        );
        assert_eq!(
            String::from_utf8(rec(b"x").to_json_line()).unwrap(),
            "{\"ts\":\"2026-11-23T03:40:00.123Z\",\"app\":\"backend\",\"instance\":2,\
             \"pid\":57,\"stream\":\"out\",\"msg\":\"x\"}\n"
        );
    }

    #[test]
    fn what_is_not_a_record() {
        for line in [
            &b""[..],
            b"2026-11-23T03:40:00.123Z",
            b"2026-11-23T03:40:00.123Z backend:0 out",
            b"2026-11-23T03:40:00.123Z backend:0 out ! x",
            b"2026-11-23T03:40:00.123Z backend:0 in | x",
            b"2026-11-23T03:40:00.123Z backend:x out | x",
            b"2026-11-23T03:40:00.123Z :0 out | x",
            b"2026-11-23T03:40:0",
            b"garbage",
            b"{\"ts\":\"2026-11-23T03:40:00.123Z\",\"app\":\"a\"}",
            b"{\"ts\":\"2026-11-23T03:40:00.123Z\",\"app\":\"a\",\"instance\":0,\"pid\":1,\
              \"stream\":\"out\",\"msg\":\"x\"} trailing",
            b"{\"ts\":\"2026-11-23T03:40:00.123Z\",\"app\":\"a\",\"instance\":0,\"pid\":1,\
              \"stream\":\"out\",\"msg\":\"\\u0100\",\"bin\":true}",
            b"{\"ts\":\"2026-11-23T03:40:00.123Z\",\"app\":\"a\",\"instance\":0,\"pid\":1,\
              \"stream\":\"out\",\"msg\":[1]}",
        ] {
            assert_eq!(parse_line(line), None, "{}", String::from_utf8_lossy(line));
        }
        // An empty message is a record; so is one whose trailing space was stripped.
        let empty = parse_line(b"2026-11-23T03:40:00.123Z a:0 out | \n").unwrap();
        assert_eq!(empty.msg, b"");
        let stripped = parse_line(b"2026-11-23T03:40:00.123Z a:0 out |").unwrap();
        assert_eq!(stripped.msg, b"");
    }

    #[test]
    fn filters() {
        let all = Filter::default();
        let app = Filter {
            app: Some("a".into()),
            ..Filter::default()
        };
        let one = Filter {
            app: Some("a".into()),
            index: Some(1),
            stream: Some(Stream::Err),
        };
        assert!(all.matches("x", Some(3), Stream::Out));
        assert!(app.matches("a", Some(3), Stream::Out));
        assert!(!app.matches("b", Some(3), Stream::Out));
        assert!(one.matches("a", Some(1), Stream::Err));
        assert!(
            one.matches("a", None, Stream::Err),
            "supd's records of the app"
        );
        assert!(!one.matches("a", Some(0), Stream::Err));
        assert!(!one.matches("a", Some(1), Stream::Out));
        assert!(one.accepts(&Record::note(0, "a", "n".into())));
    }
}
