//! Splits one stream's bytes into lines: the pure part of the log pipeline.
//!
//! Owns the partial line between chunks, `\r\n` handling and the splitting of over-long
//! lines. Never reads, writes, allocates per line, or looks at the text's meaning: bytes
//! that are not valid UTF-8 pass through unchanged (DESIGN §2, "Logs lose nothing").
//!
//! Rules, in order:
//! - A line ends at `\n`. A `\r` right before that `\n` is part of the terminator and is
//!   removed, even when the chunk boundary falls between the two; any other `\r` is kept.
//! - A line of at most `max_line` bytes is emitted whole, marked [`Mark::Whole`].
//! - A longer line is emitted in pieces of at most `max_line` bytes. The first piece is
//!   marked [`Mark::First`], the following ones [`Mark::Continuation`] (the text format
//!   writes ` + ` instead of ` | ` for them, JSON adds `"cont":true`). A cut is moved back by up to
//!   three bytes so it does not fall inside a UTF-8 sequence, so each piece of valid UTF-8
//!   stays valid UTF-8 (this matters for the JSON format). Nothing is ever truncated.
//! - At end of file, bytes after the last `\n` are emitted as a final line (a lone trailing
//!   `\r` there is content, since no `\n` follows it).
//!
//! Memory: the carried tail is at most `max_line` + 1 bytes between calls (plus the chunk
//! being appended during one); its buffer shrinks back once a long line is done.

use memchr::memchr_iter;

/// Default longest line, in bytes, before it is split into pieces.
pub const MAX_LINE: usize = 64 * 1024;

/// A tail buffer bigger than this is shrunk once it holds no more than this.
const TAIL_RETAIN: usize = 4 * 1024;

/// Whether an emitted piece is a whole line, or which part of a split one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A whole line (at most `max_line` bytes).
    Whole,
    /// The first piece of a line longer than `max_line`.
    First,
    /// A later piece of a line longer than `max_line`.
    Continuation,
}

impl Mark {
    /// True for a later piece of a split line (written ` + ` / `"cont":true`).
    pub fn is_continuation(self) -> bool {
        self == Mark::Continuation
    }
}

/// Line splitter for one stream of one process. Feed it chunks in order with
/// [`push`](Framer::push), then call [`finish`](Framer::finish) at end of file.
#[derive(Debug)]
pub struct Framer {
    /// Bytes after the last `\n` seen, not yet emitted.
    tail: Vec<u8>,
    max_line: usize,
    /// A piece of the current line was already emitted, so the next one is a continuation.
    continued: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(MAX_LINE)
    }
}

impl Framer {
    /// A framer that splits lines longer than `max_line` bytes (at least 4, so that moving
    /// a cut to a UTF-8 boundary always leaves a non-empty piece).
    pub fn new(max_line: usize) -> Framer {
        Framer {
            tail: Vec::new(),
            max_line: max_line.max(4),
            continued: false,
        }
    }

    /// Splits the lines finished from now on at `max_line` bytes (at least 4), the part
    /// of a line already held included; a line already being split stays marked as one.
    pub fn set_max_line(&mut self, max_line: usize) {
        self.max_line = max_line.max(4);
    }

    /// Consumes `chunk`, calling `emit(piece, mark)` for every complete line (or piece of
    /// an over-long line) it finishes, in order. Pieces never contain `\n`.
    pub fn push<F: FnMut(&[u8], Mark)>(&mut self, chunk: &[u8], mut emit: F) {
        let mut start = 0;
        for nl in memchr_iter(b'\n', chunk) {
            let line = &chunk[start..nl];
            start = nl + 1;
            if self.tail.is_empty() {
                // The common case: the whole line is inside this chunk; no copy.
                emit_pieces(
                    strip_cr(line),
                    self.max_line,
                    &mut self.continued,
                    &mut emit,
                );
            } else {
                self.tail.extend_from_slice(line);
                emit_pieces(
                    strip_cr(&self.tail),
                    self.max_line,
                    &mut self.continued,
                    &mut emit,
                );
                self.tail.clear();
            }
        }
        self.tail.extend_from_slice(&chunk[start..]);
        self.spill(&mut emit);
        if self.tail.capacity() > TAIL_RETAIN && self.tail.len() <= TAIL_RETAIN {
            self.tail.shrink_to(TAIL_RETAIN);
        }
    }

    /// End of file: emits the bytes after the last `\n`, if any, as the final line.
    pub fn finish<F: FnMut(&[u8], Mark)>(&mut self, mut emit: F) {
        if !self.tail.is_empty() {
            emit_pieces(&self.tail, self.max_line, &mut self.continued, &mut emit);
        }
        self.tail = Vec::new();
        self.continued = false;
    }

    /// Takes the line not finished yet and whether a piece of it was already emitted,
    /// leaving the framer empty: what a re-exec carries to the next supd's framer.
    pub fn take_partial(&mut self) -> (Vec<u8>, bool) {
        let continued = std::mem::replace(&mut self.continued, false);
        (std::mem::take(&mut self.tail), continued)
    }

    /// Goes on with a line [`Framer::take_partial`] took from another framer.
    pub fn resume(&mut self, tail: Vec<u8>, continued: bool) {
        self.tail = tail;
        self.continued = continued;
    }

    /// Bytes held back waiting for the rest of their line.
    pub fn pending(&self) -> usize {
        self.tail.len()
    }

    /// Whether the next byte starts a new line (nothing held, no long line being split):
    /// then the complete lines at the start of a chunk, none longer than
    /// [`Framer::max_line`], are exactly the pieces `push` would emit, each `Mark::Whole`
    /// (after a `\r` before its `\n` is dropped).
    pub fn at_line_start(&self) -> bool {
        self.tail.is_empty() && !self.continued
    }

    /// The longest piece it emits.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Emits full-size pieces of an unterminated line so the tail stays bounded.
    fn spill<F: FnMut(&[u8], Mark)>(&mut self, emit: &mut F) {
        // A trailing '\r' may turn out to be half of "\r\n", so it does not count as content
        // yet: otherwise a line of exactly max_line bytes + "\r\n", cut between '\r' and
        // '\n', would be split into a full piece and an empty continuation.
        let content = self.tail.len() - usize::from(self.tail.last() == Some(&b'\r'));
        let mut start = 0;
        while content - start > self.max_line {
            let cut = cut_point(&self.tail[start..], self.max_line);
            emit(&self.tail[start..start + cut], mark(self.continued));
            self.continued = true;
            start += cut;
        }
        if start > 0 {
            self.tail.drain(..start);
        }
    }
}

fn mark(continued: bool) -> Mark {
    if continued {
        Mark::Continuation
    } else {
        Mark::First
    }
}

/// Emits a complete line (terminator already removed) in pieces of at most `max_line`.
fn emit_pieces<F: FnMut(&[u8], Mark)>(
    mut line: &[u8],
    max_line: usize,
    continued: &mut bool,
    emit: &mut F,
) {
    while line.len() > max_line {
        let cut = cut_point(line, max_line);
        emit(&line[..cut], mark(*continued));
        *continued = true;
        line = &line[cut..];
    }
    emit(
        line,
        if *continued {
            Mark::Continuation
        } else {
            Mark::Whole
        },
    );
    *continued = false;
}

/// `line` without the `\r` of a `\r\n` ending.
pub(super) fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Where to cut `bytes` (longer than `max`, `max` ≥ 4): at `max`, or earlier if that would
/// split a UTF-8 sequence that starts within the last three bytes before `max`.
fn cut_point(bytes: &[u8], max: usize) -> usize {
    let is_continuation = |b: u8| b & 0xC0 == 0x80;
    if !is_continuation(bytes[max]) {
        return max;
    }
    let mut lead = max;
    while lead > max - 3 && is_continuation(bytes[lead]) {
        lead -= 1;
    }
    let len = match bytes[lead] {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        // Not a lead byte: the input is not UTF-8 here; any cut is as good as another.
        _ => return max,
    };
    if lead + len > max {
        lead
    } else {
        max
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;

    type Pieces = Vec<(Vec<u8>, Mark)>;

    fn frame(max_line: usize, chunks: &[&[u8]]) -> Pieces {
        let mut f = Framer::new(max_line);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, |p, m| out.push((p.to_vec(), m)));
        }
        f.finish(|p, m| out.push((p.to_vec(), m)));
        out
    }

    /// A whole line.
    fn first(s: &[u8]) -> (Vec<u8>, Mark) {
        (s.to_vec(), Mark::Whole)
    }

    /// The first piece of a split line.
    fn head(s: &[u8]) -> (Vec<u8>, Mark) {
        (s.to_vec(), Mark::First)
    }

    fn cont(s: &[u8]) -> (Vec<u8>, Mark) {
        (s.to_vec(), Mark::Continuation)
    }

    #[test]
    fn splits_lines_and_keeps_empty_ones() {
        assert_eq!(
            frame(MAX_LINE, &[b"a\n\nbc\n"]),
            vec![first(b"a"), first(b""), first(b"bc")]
        );
    }

    #[test]
    fn nothing_for_empty_input() {
        assert_eq!(frame(MAX_LINE, &[]), Pieces::new());
        assert_eq!(frame(MAX_LINE, &[b""]), Pieces::new());
    }

    #[test]
    fn partial_line_is_carried_between_chunks() {
        assert_eq!(
            frame(MAX_LINE, &[b"hel", b"lo\nwor", b"ld\n"]),
            vec![first(b"hello"), first(b"world")]
        );
    }

    #[test]
    fn final_line_without_newline_is_emitted_at_eof() {
        assert_eq!(
            frame(MAX_LINE, &[b"a\nlast"]),
            vec![first(b"a"), first(b"last")]
        );
        // ...and only once, and nothing extra after a terminated last line.
        assert_eq!(frame(MAX_LINE, &[b"a\n"]), vec![first(b"a")]);
    }

    #[test]
    fn crlf_is_stripped_even_across_chunks() {
        assert_eq!(
            frame(MAX_LINE, &[b"a\r\nb\r", b"\nc\r\n"]),
            vec![first(b"a"), first(b"b"), first(b"c")]
        );
        assert_eq!(
            frame(MAX_LINE, &[b"\r", b"\n", b"\r\n"]),
            vec![first(b""), first(b"")]
        );
    }

    #[test]
    fn other_carriage_returns_are_kept() {
        assert_eq!(
            frame(MAX_LINE, &[b"progress\r50%\r\r\n"]),
            vec![first(b"progress\r50%\r")]
        );
        // A '\r' at end of file has no '\n' after it, so it is content.
        assert_eq!(frame(MAX_LINE, &[b"x\r"]), vec![first(b"x\r")]);
    }

    #[test]
    fn invalid_utf8_is_kept_raw() {
        let bytes: &[u8] = b"ok \xff\xfe bad \xc3\n\x80\n";
        assert_eq!(
            frame(MAX_LINE, &[bytes]),
            vec![first(b"ok \xff\xfe bad \xc3"), first(b"\x80")]
        );
    }

    #[test]
    fn multibyte_utf8_split_across_chunks_is_rejoined() {
        // "é" = C3 A9, "€" = E2 82 AC, "😀" = F0 9F 98 80
        let text = "é€😀\n".as_bytes();
        for cut in 0..text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(frame(MAX_LINE, &[a, b]), vec![first("é€😀".as_bytes())]);
        }
    }

    #[test]
    fn line_of_exactly_max_is_not_split() {
        assert_eq!(frame(8, &[b"12345678\n"]), vec![first(b"12345678")]);
        assert_eq!(frame(8, &[b"12345678"]), vec![first(b"12345678")]);
        assert_eq!(frame(8, &[b"12345678\r\n"]), vec![first(b"12345678")]);
    }

    #[test]
    fn long_lines_are_split_and_marked() {
        let want = vec![
            head(b"12345678"),
            cont(b"9abcdefg"),
            cont(b"h"),
            first(b"x"),
        ];
        assert_eq!(frame(8, &[b"123456789abcdefgh\nx\n"]), want);
        // The same when the line arrives in small chunks, and when it ends at EOF.
        assert_eq!(frame(8, &[b"12345", b"6789ab", b"cdefgh", b"\nx\n"]), want);
        assert_eq!(frame(8, &[b"123456789abcdefgh\nx"]), want);
    }

    #[test]
    fn no_empty_continuation_when_crlf_straddles_the_limit() {
        for chunks in [
            &[&b"12345678\r"[..], b"\nz\n"][..],
            &[b"12345678", b"\r", b"\n", b"z\n"],
            &[b"123456789\r", b"\n", b"z\n"],
        ] {
            let got = frame(8, chunks);
            assert!(got.iter().all(|(p, _)| !p.is_empty()), "{got:?}");
            assert_eq!(got.last(), Some(&first(b"z")));
        }
        assert_eq!(
            frame(8, &[b"123456789\r", b"\n"]),
            vec![head(b"12345678"), cont(b"9")]
        );
    }

    #[test]
    fn long_line_cut_does_not_split_utf8() {
        // max 8: "abcdef" + "é" (2 bytes) fits exactly; "abcdefg" + "é" must cut before é.
        assert_eq!(
            frame(8, &["abcdefgé\n".as_bytes()]),
            vec![head(b"abcdefg"), cont("é".as_bytes())]
        );
        assert_eq!(
            frame(8, &["abcdef😀z\n".as_bytes()]),
            vec![head(b"abcdef"), cont("😀z".as_bytes())]
        );
        // Stray continuation bytes (not UTF-8): cut at the limit, keep every byte.
        let junk: &[u8] = b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\n";
        assert_eq!(
            frame(8, &[junk]),
            vec![head(&junk[..8]), cont(&junk[8..10])]
        );
    }

    #[test]
    fn pieces_never_exceed_max_and_tail_stays_bounded() {
        let line = vec![b'x'; 1000];
        let mut f = Framer::new(64);
        let mut total = 0;
        for c in line.chunks(7) {
            f.push(c, |p, _| {
                assert!(p.len() <= 64);
                total += p.len();
            });
            assert!(f.pending() <= 65);
        }
        f.finish(|p, _| total += p.len());
        assert_eq!(total, 1000);
    }

    /// Every way of cutting the input into two or three chunks gives the same pieces as
    /// feeding it whole: the chunk boundary never matters.
    #[test]
    fn chunk_boundaries_never_change_the_output() {
        let input = [
            "a\r\nbé\r\r\n\n0123456789€x\r\n".as_bytes(),
            b"\xff?\n\xe2\x82\nend\r",
        ]
        .concat();
        let input = &input[..];
        let whole = frame(6, &[input]);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got = frame(6, &[&input[..i], &input[i..j], &input[j..]]);
                assert_eq!(got, whole, "cuts at {i}, {j}");
            }
        }
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(frame(6, &bytewise), whole);
    }
}
