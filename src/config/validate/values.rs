//! Readers of values: one per kind of value an app or `[supervisor]` key takes, each
//! reporting what is wrong with the value at its position and returning `None` then.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeValue;

use super::keys::PathAt;
use super::{Value, Walker};
use crate::config::raw::{self, one_of, suggest, type_name, RESTART_VALUES};
use crate::config::units::{self, format_size, Instances};
use crate::config::units::{DURATION_EXPECTED, INSTANCES_EXPECTED, SIGNAL_EXPECTED, SIZE_EXPECTED};
use crate::config::{RestartMode, Signal};

impl Walker<'_> {
    pub(super) fn cmd(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<Vec<String>> {
        const EXPECTED: &str = "an array of strings, or a string";
        let (words, spans): (Vec<String>, Vec<Range<usize>>) = match value.get_ref() {
            DeValue::String(s) => match units::split_cmd(s) {
                Ok(words) => {
                    let spans = vec![value.span(); words.len()];
                    (words, spans)
                }
                Err(message) => {
                    self.sink.error(value.span(), Some(key), message, None);
                    return None;
                }
            },
            DeValue::Array(items) => {
                let mut ok = true;
                let mut words = Vec::with_capacity(items.len());
                let mut spans = Vec::with_capacity(items.len());
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => {
                            words.push(s.to_string());
                            spans.push(item.span());
                        }
                        other => {
                            self.wrong_element(item, other, key, field, "a string");
                            ok = false;
                        }
                    }
                }
                if !ok {
                    return None;
                }
                (words, spans)
            }
            _ => {
                self.sink.wrong_type(value, key, field, EXPECTED);
                return None;
            }
        };
        let Some(program) = words.first() else {
            self.sink.error(
                value.span(),
                Some(key),
                format!("`{field}` is empty"),
                Some(EXPECTED),
            );
            return None;
        };
        if program.trim().is_empty() {
            self.sink.error(
                spans[0].clone(),
                Some(key),
                format!("the program (first word of `{field}`) is empty"),
                None,
            );
            return None;
        }
        if let Some(i) = words.iter().position(|w| w.contains('\0')) {
            self.sink.error(
                spans[i].clone(),
                Some(key),
                format!("`{field}` contains a NUL byte, which no program can receive"),
                None,
            );
            return None;
        }
        Some(words)
    }

    /// A non-empty path string, resolved against the config file's directory.
    pub(super) fn path(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<PathBuf> {
        let s = self.string(value, key, field, "a path")?;
        if s.is_empty() {
            self.sink.error(
                value.span(),
                Some(key),
                format!("`{field}` is empty"),
                Some("a path"),
            );
            return None;
        }
        let joined = self.dir.join(s);
        // `absolute` drops `.` components, so `cwd = "."` is the directory itself.
        Some(std::path::absolute(&joined).unwrap_or(joined))
    }

    /// A [`Walker::path`] with where it was written.
    pub(super) fn path_at(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<PathAt> {
        self.path(value, key, field).map(|path| PathAt {
            path,
            span: value.span(),
            key: key.to_string(),
        })
    }

    /// `env_file`: a path or an array of paths (`[]` clears a lower layer's list).
    pub(super) fn env_files(
        &mut self,
        value: &Value<'_>,
        key: &str,
        field: &str,
    ) -> Option<Vec<PathAt>> {
        const EXPECTED: &str = "a path, or an array of paths like [\".env\", \"local.env\"]";
        match value.get_ref() {
            DeValue::String(_) => self.path_at(value, key, field).map(|p| vec![p]),
            DeValue::Array(items) => {
                let mut ok = true;
                let mut all = Vec::with_capacity(items.len());
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(_) => match self.path_at(item, key, field) {
                            Some(p) => all.push(p),
                            None => ok = false,
                        },
                        other => {
                            self.wrong_element(item, other, key, field, "a path");
                            ok = false;
                        }
                    }
                }
                ok.then_some(all)
            }
            _ => {
                self.sink.wrong_type(value, key, field, EXPECTED);
                None
            }
        }
    }

    /// An element of the array `field` that is not `expected`.
    fn wrong_element(
        &mut self,
        item: &Value<'_>,
        found: &DeValue<'_>,
        key: &str,
        field: &str,
        expected: &'static str,
    ) {
        self.sink.error(
            item.span(),
            Some(key),
            format!(
                "invalid type for a `{field}` element: found {}",
                type_name(found)
            ),
            Some(expected),
        );
    }

    pub(super) fn env(&mut self, value: &Value<'_>, key: &str) -> Option<BTreeMap<String, String>> {
        let DeValue::Table(table) = value.get_ref() else {
            self.sink.wrong_type(
                value,
                key,
                "env",
                "a table of strings, like { NODE_ENV = \"production\" }",
            );
            return None;
        };
        let mut env = BTreeMap::new();
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let var_key = format!("{key}.{name}");
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                self.sink.error(
                    k.span(),
                    Some(&var_key),
                    format!("invalid environment variable name {name:?}"),
                    Some("a non-empty name without `=`"),
                );
                continue;
            }
            match v.get_ref() {
                DeValue::String(s) if s.contains('\0') => self.sink.error(
                    v.span(),
                    Some(&var_key),
                    format!("`env.{name}` contains a NUL byte"),
                    None,
                ),
                DeValue::String(s) => {
                    env.insert(name.to_string(), s.to_string());
                }
                _ => self.sink.wrong_type(
                    v,
                    &var_key,
                    &format!("env.{name}"),
                    "a string (quote numbers and booleans)",
                ),
            }
        }
        Some(env)
    }

    pub(super) fn instances(&mut self, value: &Value<'_>, key: &str) -> Option<Instances> {
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => match raw::integer(value.get_ref()) {
                Some(Some(n)) => units::instances_from_int(n),
                _ => Err(format!("`instances` is too large, found {i}")),
            },
            DeValue::String(s) => units::instances_from_str(s),
            _ => {
                self.sink
                    .wrong_type(value, key, "instances", INSTANCES_EXPECTED);
                return None;
            }
        };
        parsed
            .map_err(|message| {
                self.sink
                    .error(value.span(), Some(key), message, Some(INSTANCES_EXPECTED))
            })
            .ok()
    }

    pub(super) fn restart(&mut self, value: &Value<'_>, key: &str) -> Option<RestartMode> {
        let expected = one_of(RESTART_VALUES);
        let s = self.string(value, key, "restart", &expected)?;
        match s {
            "always" => Some(RestartMode::Always),
            "on-failure" => Some(RestartMode::OnFailure),
            "never" => Some(RestartMode::Never),
            _ => {
                match suggest(s, RESTART_VALUES) {
                    Some(near) => self.sink.error(
                        value.span(),
                        Some(key),
                        format!("unknown restart mode `{s}`, did you mean `{near}`?"),
                        None,
                    ),
                    None => self.sink.error(
                        value.span(),
                        Some(key),
                        format!("unknown restart mode `{s}`"),
                        Some(&expected),
                    ),
                }
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        value: &Value<'_>,
        key: &str,
        field: &str,
    ) -> Option<Duration> {
        let message = match value.get_ref() {
            DeValue::String(s) => match units::parse_duration(s) {
                Ok(d) => return Some(d),
                Err(m) => format!("invalid `{field}`: {m}"),
            },
            DeValue::Integer(i) => {
                if raw::integer(value.get_ref()) == Some(Some(0)) {
                    return Some(Duration::ZERO);
                }
                format!(
                    "invalid `{field}`: the number {i} has no unit; \
                     write a string like \"{i}s\" or \"{i}ms\""
                )
            }
            _ => {
                self.sink.wrong_type(value, key, field, DURATION_EXPECTED);
                return None;
            }
        };
        self.sink
            .error(value.span(), Some(key), message, Some(DURATION_EXPECTED));
        None
    }

    /// A non-negative integer up to `max`.
    pub(super) fn count(
        &mut self,
        value: &Value<'_>,
        key: &str,
        field: &str,
        max: u32,
    ) -> Option<u32> {
        const EXPECTED: &str = "a non-negative integer";
        let Some(n) = raw::integer(value.get_ref()) else {
            self.sink.wrong_type(value, key, field, EXPECTED);
            return None;
        };
        let message = match n {
            Some(n) if n < 0 => format!("`{field}` cannot be negative, found {n}"),
            Some(n) => match u32::try_from(n) {
                Ok(n) if n <= max => return Some(n),
                _ => format!("`{field}` is too large, found {n} (at most {max})"),
            },
            None => format!("`{field}` is too large (at most {max})"),
        };
        self.sink
            .error(value.span(), Some(key), message, Some(EXPECTED));
        None
    }

    /// A duration of at least `min`.
    pub(super) fn duration_at_least(
        &mut self,
        value: &Value<'_>,
        key: &str,
        field: &str,
        min: Duration,
    ) -> Option<Duration> {
        let d = self.duration(value, key, field)?;
        if d >= min {
            return Some(d);
        }
        // Debug prints `100ms`, `1.5s`; zero is written as the file may write it.
        let shown = |d: Duration| {
            if d.is_zero() {
                "0".to_string()
            } else {
                format!("{d:?}")
            }
        };
        self.sink.error(
            value.span(),
            Some(key),
            format!(
                "`{field}` must be at least {}, found {}",
                shown(min),
                shown(d)
            ),
            Some(DURATION_EXPECTED),
        );
        None
    }

    /// A positive integer (1 ..= u32::MAX).
    pub(super) fn positive(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<u32> {
        const EXPECTED: &str = "a positive integer";
        let Some(n) = raw::integer(value.get_ref()) else {
            self.sink.wrong_type(value, key, field, EXPECTED);
            return None;
        };
        let message = match n {
            Some(n) if n < 1 => format!("`{field}` must be at least 1, found {n}"),
            Some(n) => match u32::try_from(n) {
                Ok(n) => return Some(n),
                Err(_) => format!("`{field}` is too large, found {n} (at most {})", u32::MAX),
            },
            None => format!("`{field}` is too large (at most {})", u32::MAX),
        };
        self.sink
            .error(value.span(), Some(key), message, Some(EXPECTED));
        None
    }

    /// A size (`"64K"`, or an integer number of bytes) within `min ..= max`.
    pub(super) fn size(
        &mut self,
        value: &Value<'_>,
        key: &str,
        field: &str,
        min: u64,
        max: Option<u64>,
    ) -> Option<u64> {
        let parsed = match value.get_ref() {
            DeValue::String(s) => units::parse_size(s),
            DeValue::Integer(i) => match raw::integer(value.get_ref()) {
                Some(Some(n)) => u64::try_from(n).map_err(|_| format!("invalid size `{i}`")),
                _ => Err(format!("size `{i}` is too large")),
            },
            _ => {
                self.sink.wrong_type(value, key, field, SIZE_EXPECTED);
                return None;
            }
        };
        let message = match (parsed, max) {
            (Ok(n), _) if n < min => format!(
                "`{field}` must be at least {}, found {}",
                format_size(min),
                format_size(n)
            ),
            (Ok(n), Some(max)) if n > max => format!(
                "`{field}` must be at most {}, found {}",
                format_size(max),
                format_size(n)
            ),
            (Ok(n), _) => return Some(n),
            (Err(m), _) => format!("invalid `{field}`: {m}"),
        };
        self.sink
            .error(value.span(), Some(key), message, Some(SIZE_EXPECTED));
        None
    }

    /// One of `values`, with a suggestion for a near miss.
    pub(super) fn choice(
        &mut self,
        value: &Value<'_>,
        key: &str,
        field: &str,
        values: &[&'static str],
    ) -> Option<&'static str> {
        let expected = one_of(values);
        let s = self.string(value, key, field, &expected)?;
        if let Some(&found) = values.iter().find(|v| **v == s) {
            return Some(found);
        }
        match suggest(s, values) {
            Some(near) => self.sink.error(
                value.span(),
                Some(key),
                format!("unknown `{field}` value `{s}`, did you mean `{near}`?"),
                None,
            ),
            None => self.sink.error(
                value.span(),
                Some(key),
                format!("unknown `{field}` value `{s}`"),
                Some(&expected),
            ),
        }
        None
    }

    pub(super) fn signal(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<Signal> {
        let s = self.string(value, key, field, SIGNAL_EXPECTED)?;
        units::parse_signal(s)
            .map_err(|message| {
                self.sink
                    .error(value.span(), Some(key), message, Some(SIGNAL_EXPECTED))
            })
            .ok()
    }

    pub(super) fn boolean(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.sink.wrong_type(value, key, field, "true or false");
                None
            }
        }
    }

    /// `user` or `group`: a non-empty string (whether it exists is checked at spawn time,
    /// on the machine that runs it).
    pub(super) fn account(
        &mut self,
        value: &Value<'_>,
        key: &str,
        field: &str,
        expected: &str,
    ) -> Option<String> {
        let s = self.string(value, key, field, expected)?;
        if s.trim().is_empty() {
            self.sink.error(
                value.span(),
                Some(key),
                format!("`{field}` is empty"),
                Some(expected),
            );
            return None;
        }
        Some(s.to_string())
    }

    pub(super) fn string<'v>(
        &mut self,
        value: &'v Value<'_>,
        key: &str,
        field: &str,
        expected: &str,
    ) -> Option<&'v str> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.sink.wrong_type(value, key, field, expected);
                None
            }
        }
    }
}
