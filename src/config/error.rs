//! Config errors: one [`ConfigError`] per problem, each pinned to `FILE:LINE:COL`, and
//! [`ConfigErrors`], the whole list a bad file produces.
//!
//! This module only describes errors and turns byte offsets into line and column; it never
//! decides what is wrong (that is [`super::validate`]).

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config file, located at the offending key or value.
///
/// Displayed as `FILE:LINE:COL: message`, followed by ` (expected ...)` when `expected` is
/// set. An error with no position (`line == 0`, e.g. an unreadable file) is displayed as
/// `FILE: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {}{}", .file.display(), position(*.line, *.col), .message, expected_suffix(.expected))]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line; 0 when the error has no position in the file.
    pub line: usize,
    /// 1-based column, counted in characters; 0 when the error has no position.
    pub col: usize,
    /// The dotted key the error is about (`app.backend.kill_timeout`), when there is one.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What would have been accepted, e.g. `a duration like "500ms", "5s", "2m"`.
    pub expected: Option<String>,
}

fn position(line: usize, col: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{col}")
    }
}

fn expected_suffix(expected: &Option<String>) -> String {
    match expected {
        Some(e) => format!(" (expected {e})"),
        None => String::new(),
    }
}

impl ConfigError {
    /// The file could not be read; the error has no line or column.
    pub fn io(path: &Path, e: &std::io::Error) -> Self {
        ConfigError {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            key: None,
            message: format!("cannot read config file: {e}"),
            expected: None,
        }
    }

    /// `FILE:LINE:COL: not UTF-8`, at the first byte of `bytes` (the contents of `file`)
    /// that is not UTF-8; `valid_up_to` is where that byte is ([`std::str::Utf8Error`]).
    pub fn not_utf8(file: &Path, bytes: &[u8], valid_up_to: usize) -> Self {
        let (line, col) = utf8_error_position(bytes, valid_up_to);
        ConfigError {
            file: file.to_path_buf(),
            line,
            col,
            key: None,
            message: "not UTF-8".into(),
            expected: None,
        }
    }
}

/// The 1-based `(line, col)` of byte `valid_up_to` of `bytes`, all of whose bytes before
/// it are UTF-8: the column is 1 + the number of characters before it on its line.
pub fn utf8_error_position(bytes: &[u8], valid_up_to: usize) -> (usize, usize) {
    let end = valid_up_to.min(bytes.len());
    // Everything before the first bad byte is UTF-8 by definition; were it not (a wrong
    // `valid_up_to`), lossy decoding still counts one character per bad sequence.
    let before = String::from_utf8_lossy(&bytes[..end]);
    Locator::new(&before).position(before.len())
}

/// The text of `file` from its `bytes`, or the error at its first byte that is not UTF-8.
pub fn decode<'b>(file: &Path, bytes: &'b [u8]) -> Result<&'b str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| ConfigError::not_utf8(file, bytes, e.valid_up_to()))
}

/// Every problem found in one config file, sorted by position.
///
/// Displayed as one error per line, without a trailing newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A list holding just `e`.
    pub fn single(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }

    /// The errors, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the list is empty (a successful validation never returns one).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sort by file (in the order each file first appears), then line, then column, so
    /// the output reads top to bottom like each file.
    pub(crate) fn sort(&mut self) {
        let mut files: Vec<PathBuf> = Vec::new();
        for e in &self.0 {
            if !files.contains(&e.file) {
                files.push(e.file.clone());
            }
        }
        let rank = |e: &ConfigError| files.iter().position(|f| *f == e.file);
        self.0.sort_by(|a, b| {
            (rank(a), a.line, a.col, &a.message).cmp(&(rank(b), b.line, b.col, &b.message))
        });
        self.0.dedup();
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Turns byte offsets of one text into 1-based line and column numbers.
///
/// Columns count characters, not bytes, so they match what an editor shows on a line with
/// non-ASCII text.
#[derive(Debug)]
pub struct Locator<'t> {
    text: &'t str,
    line_starts: Vec<usize>,
}

impl<'t> Locator<'t> {
    /// Index the line starts of `text`.
    pub fn new(text: &'t str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Locator { text, line_starts }
    }

    /// The 1-based `(line, col)` of byte `offset` (clamped to the text).
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        // A span may start inside a multi-byte character only if the parser is wrong;
        // round down rather than panic on the slice.
        let mut end = offset;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let col = self.text[start..end].chars().count() + 1;
        (line + 1, col)
    }

    /// The 1-based line of byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        self.position(offset).0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(line: usize, col: usize, expected: Option<&str>) -> ConfigError {
        ConfigError {
            file: PathBuf::from("/etc/sup/ecosystem.toml"),
            line,
            col,
            key: Some("app.web.kill_timeout".into()),
            message: "`kill_timeout` = 5 has no unit".into(),
            expected: expected.map(String::from),
        }
    }

    #[test]
    fn display_with_and_without_expected() {
        assert_eq!(
            err(3, 16, None).to_string(),
            "/etc/sup/ecosystem.toml:3:16: `kill_timeout` = 5 has no unit"
        );
        assert_eq!(
            err(3, 16, Some("a duration like \"5s\"")).to_string(),
            "/etc/sup/ecosystem.toml:3:16: `kill_timeout` = 5 has no unit \
             (expected a duration like \"5s\")"
        );
    }

    #[test]
    fn io_error_has_no_position() {
        let e = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = ConfigError::io(Path::new("x.toml"), &e);
        assert_eq!(e.to_string(), "x.toml: cannot read config file: gone");
    }

    #[test]
    fn errors_sort_and_print_one_per_line() {
        let mut all = ConfigErrors(vec![err(9, 1, None), err(2, 5, None), err(2, 3, None)]);
        all.sort();
        let text = all.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("/etc/sup/ecosystem.toml:2:3:"));
        assert!(lines[1].starts_with("/etc/sup/ecosystem.toml:2:5:"));
        assert!(lines[2].starts_with("/etc/sup/ecosystem.toml:9:1:"));
        assert!(!text.ends_with('\n'));
    }

    #[test]
    fn not_utf8_is_located_at_its_first_bad_byte() {
        assert_eq!(utf8_error_position(b"\xff", 0), (1, 1));
        assert_eq!(utf8_error_position(b"ab\xff", 2), (1, 3));
        // Two lines before; `é` is one character of two bytes.
        let bytes = b"a = 1\n\nn\xc3\xa9 = \"\xfe\"\n";
        let e = decode(Path::new("f"), bytes).unwrap_err();
        assert_eq!((e.line, e.col), (3, 7));
        assert_eq!(utf8_error_position(bytes, 14), (3, 7));
        // A line that ends right before the bad byte.
        assert_eq!(utf8_error_position(b"x\n\x80", 2), (2, 1));
        let e = decode(Path::new("/cfg/bin.toml"), b"ok\n\x00\x9f").unwrap_err();
        assert_eq!(e.to_string(), "/cfg/bin.toml:2:2: not UTF-8");
        assert_eq!(decode(Path::new("x"), "né".as_bytes()), Ok("né"));
    }

    #[test]
    fn locator_counts_lines_and_chars() {
        let text = "a = 1\nné = \"x\"\n\nz";
        let at = Locator::new(text);
        assert_eq!(at.position(0), (1, 1));
        assert_eq!(at.position(4), (1, 5));
        assert_eq!(at.position(6), (2, 1));
        // `=` after the two-byte `é` is the 4th character, 5th byte of the line.
        assert_eq!(at.position(10), (2, 4));
        assert_eq!(at.position(text.len() - 1), (4, 1));
        assert_eq!(at.position(text.len() + 10), (4, 2));
    }
}
