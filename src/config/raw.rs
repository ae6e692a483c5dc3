//! The spanned TOML tree and the helpers that walk it: the known keys of every section,
//! unknown-key detection with "did you mean" suggestions, type checks, and the error sink
//! that turns byte spans into `FILE:LINE:COL`.
//!
//! We walk `toml::de::DeTable` by hand instead of deriving serde types because serde stops
//! at the first error, and a config check must report every error of the file at once.
//! This module knows the shape of the file, never the meaning of a value (that is
//! [`super::units`] and [`super::validate`]).

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{ConfigError, ConfigErrors, Locator};

/// The top-level keys of `ecosystem.toml`.
pub const TOP_KEYS: &[&str] = &["supervisor", "defaults", "app"];

/// The keys of `[supervisor]`.
pub const SUPERVISOR_KEYS: &[&str] = &["socket", "log_dir", "shutdown_timeout", "http", "readers"];

/// The keys of an `[[app]]` table, declared in [`super::validate`] with how each is read.
/// `[defaults]` and `[app.profile.NAME]` take the same keys except `name` and `profile`.
pub use super::validate::APP_KEYS;

/// The values of `restart`.
pub const RESTART_VALUES: &[&str] = &["always", "on-failure", "never"];

/// The values of `log_format`.
pub const LOG_FORMAT_VALUES: &[&str] = &["text", "json"];

/// The values of `log_json`.
pub const LOG_JSON_VALUES: &[&str] = &["string", "embed"];

/// The values of `log_rotate`.
pub const LOG_ROTATE_VALUES: &[&str] = &["daily", "hourly"];

/// The values of `log_target`.
pub const LOG_TARGET_VALUES: &[&str] = &["file", "stdout", "both"];

/// The values of `memory_action`.
pub const MEMORY_ACTION_VALUES: &[&str] = &["restart", "stop"];

/// The values of `cron_overlap`.
pub const CRON_OVERLAP_VALUES: &[&str] = &["skip", "restart"];

/// A spanned TOML value.
pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// Parse `text` into a spanned tree. On a syntax error, every error the parser could
/// recover from is returned as `(byte span, message)`, in file order.
pub(crate) fn parse(text: &str) -> Result<Spanned<DeTable<'_>>, Vec<(Range<usize>, String)>> {
    let (table, errors) = DeTable::parse_recoverable(text);
    if errors.is_empty() {
        return Ok(table);
    }
    let mut out: Vec<(Range<usize>, String)> = errors
        .iter()
        .map(|e| (e.span().unwrap_or(0..0), e.message().to_string()))
        .collect();
    // The recovering parser may report one problem twice (once per nesting level).
    out.sort_by(|a, b| (a.0.start, a.0.end, &a.1).cmp(&(b.0.start, b.0.end, &b.1)));
    out.dedup();
    Err(out)
}

/// "a string", "an integer", ...: how a value's TOML type is named in messages.
pub(crate) fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The value of a TOML integer, whatever its radix. `None` only for numbers beyond
/// ±2^127, which every caller treats as "too large" anyway.
pub(crate) fn integer(v: &DeValue<'_>) -> Option<Option<i128>> {
    match v {
        DeValue::Integer(i) => Some(i128::from_str_radix(i.as_str(), i.radix()).ok()),
        _ => None,
    }
}

/// Edit distance between `a` and `b`, in characters: insertions, deletions, substitutions
/// and swaps of two neighbours each cost 1 (optimal string alignment). Swaps count as one
/// edit because `SIGTREM` should suggest `SIGTERM`, not `SIGTRAP`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j] = distance between a[..i] and b[..j]
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word` (ignoring case), if it is close enough to be a typo:
/// at most 2 edits and at most one per three characters (so `FOO` does not suggest `FPE`),
/// with one edit always allowed.
pub fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lower = word.to_lowercase();
    let len = lower.chars().count();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), *c))
        .filter(|&(d, _)| d <= 2 && d <= (len / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// "one of `a`, `b`, `c`".
pub fn one_of(candidates: &[&str]) -> String {
    let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
    format!("one of {}", list.join(", "))
}

/// Collects every error of one file, each pinned to a position.
pub(crate) struct Sink<'t> {
    file: PathBuf,
    at: Locator<'t>,
    errors: Vec<ConfigError>,
    /// Errors located in other files (env files), listed after the config file's.
    elsewhere: Vec<ConfigError>,
}

impl<'t> Sink<'t> {
    /// A sink for errors in `text`, displayed as coming from `file`.
    pub(crate) fn new(file: &Path, text: &'t str) -> Self {
        Sink {
            file: file.to_path_buf(),
            at: Locator::new(text),
            errors: Vec::new(),
            elsewhere: Vec::new(),
        }
    }

    /// The 1-based line of byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.at.line(offset)
    }

    /// Record an error at the start of `span`.
    pub(crate) fn error(
        &mut self,
        span: Range<usize>,
        key: Option<&str>,
        message: impl Into<String>,
        expected: Option<&str>,
    ) {
        let (line, col) = self.at.position(span.start);
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            col,
            key: key.map(String::from),
            message: message.into(),
            expected: expected.map(String::from),
        });
    }

    /// Record "invalid type for `field`: found an integer (expected ...)" at `value`.
    pub(crate) fn wrong_type(&mut self, value: &Value<'_>, key: &str, field: &str, expected: &str) {
        self.error(
            value.span(),
            Some(key),
            format!(
                "invalid type for `{field}`: found {}",
                type_name(value.get_ref())
            ),
            Some(expected),
        );
    }

    /// Record an unknown key, with a suggestion when one of `known` is close, else the
    /// list of `known` keys.
    pub(crate) fn unknown_key(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        path: &str,
        known: &[&str],
    ) {
        let name = key.get_ref();
        match suggest(name, known) {
            Some(near) => self.error(
                key.span(),
                Some(path),
                format!("unknown field `{name}`, did you mean `{near}`?"),
                None,
            ),
            None => self.error(
                key.span(),
                Some(path),
                format!("unknown field `{name}`"),
                Some(&one_of(known)),
            ),
        }
    }

    /// Record an error located in another file than the config file (an env file's line).
    pub(crate) fn error_elsewhere(&mut self, e: ConfigError) {
        self.elsewhere.push(e);
    }

    /// True once any error was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty() || !self.elsewhere.is_empty()
    }

    /// The errors, sorted by position: the config file's, then those of each other file
    /// in the order they were first reported.
    pub(crate) fn finish(mut self) -> ConfigErrors {
        self.errors.append(&mut self.elsewhere);
        let mut all = ConfigErrors(self.errors);
        all.sort();
        all
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let cases = [
            ("", "", 0),
            ("abc", "", 3),
            ("kill_timout", "kill_timeout", 1),
            ("on_failure", "on-failure", 1),
            ("kitten", "sitting", 3),
            ("naem", "name", 1),
            ("TREM", "TERM", 1),
            ("TREM", "TRAP", 2),
        ];
        for (a, b, d) in cases {
            assert_eq!(edit_distance(a, b), d, "{a} / {b}");
            assert_eq!(edit_distance(b, a), d, "{b} / {a}");
        }
    }

    #[test]
    fn suggestions() {
        let cases: &[(&str, Option<&str>)] = &[
            ("kill_timout", Some("kill_timeout")),
            ("restart_dealy", Some("restart_delay")),
            ("Name", Some("name")),
            ("instance", Some("instances")),
            ("commands", None),
            ("x", None),
            ("cw", Some("cwd")),
            ("max_memroy", Some("max_memory")),
            ("memory_sample", Some("memory_samples")),
            ("cron_restart", Some("cron_restart")),
            ("cron_tx", Some("cron_tz")),
            ("cron_overlpa", Some("cron_overlap")),
            ("redy", Some("ready")),
            ("helth", Some("health")),
        ];
        for (word, want) in cases {
            assert_eq!(suggest(word, APP_KEYS), *want, "{word}");
        }
        assert_eq!(suggest("on_failure", RESTART_VALUES), Some("on-failure"));
        assert_eq!(suggest("allways", RESTART_VALUES), Some("always"));
    }

    #[test]
    fn one_of_lists_in_order() {
        assert_eq!(
            one_of(RESTART_VALUES),
            "one of `always`, `on-failure`, `never`"
        );
    }

    #[test]
    fn syntax_errors_are_deduplicated_and_ordered() {
        let errors = parse("a = 1\na = 2\nb = [1,\n").err().unwrap();
        assert!(errors.windows(2).all(|w| w[0].0.start <= w[1].0.start));
        assert!(errors.iter().any(|(_, m)| m == "duplicate key"));
        let unique: std::collections::BTreeSet<_> =
            errors.iter().map(|(s, m)| (s.start, m.clone())).collect();
        assert_eq!(unique.len(), errors.len());
    }

    #[test]
    fn integers_in_any_radix() {
        let doc =
            parse("a = 0x1F\nb = -1_000\nc = 99999999999999999999999999999999999999999\n").unwrap();
        let get = |k: &str| integer(doc.get_ref().get(k).unwrap().get_ref()).unwrap();
        assert_eq!(get("a"), Some(31));
        assert_eq!(get("b"), Some(-1000));
        assert_eq!(get("c"), None);
    }
}
