//! The `ready = { ... }` and `health = { ... }` tables and `[supervisor] http`.

use std::net::SocketAddr;
use std::time::Duration;

use toml::de::DeValue;

use super::{Value, Walker};
use crate::config::probe::{self, Check, HealthSettings, ReadySettings};
use crate::config::raw::one_of;

/// The keys of a `ready` table.
pub const READY_KEYS: &[&str] = &[
    "notify", "http", "tcp", "exec", "log", "timeout", "interval",
];

/// The keys of a `health` table.
pub const HEALTH_KEYS: &[&str] = &["http", "tcp", "exec", "interval", "timeout", "failures"];

const READY_CHECKS: &[&str] = &["notify", "http", "tcp", "exec", "log"];
const HEALTH_CHECKS: &[&str] = &["http", "tcp", "exec"];

/// What `[supervisor] http` takes.
pub const HTTP_EXPECTED: &str = "an address to listen on, like \"127.0.0.1:9615\"";

/// The parts of a probe table common to both kinds.
struct Parts {
    check: Option<Check>,
    timeout: Option<Duration>,
    interval: Option<Duration>,
    failures: Option<u32>,
}

impl Walker<'_> {
    /// `ready = { notify|http|tcp|exec|log = ..., timeout, interval }`.
    pub(super) fn ready(&mut self, value: &Value<'_>, key: &str) -> Option<ReadySettings> {
        let parts = self.probe_table(value, key, "ready", READY_KEYS, READY_CHECKS)?;
        Some(ReadySettings {
            check: parts.check?,
            timeout: parts.timeout.unwrap_or(ReadySettings::DEFAULT_TIMEOUT),
            interval: parts.interval.unwrap_or(ReadySettings::DEFAULT_INTERVAL),
        })
    }

    /// `health = { http|tcp|exec = ..., interval, timeout, failures }`.
    pub(super) fn health(&mut self, value: &Value<'_>, key: &str) -> Option<HealthSettings> {
        let parts = self.probe_table(value, key, "health", HEALTH_KEYS, HEALTH_CHECKS)?;
        Some(HealthSettings {
            check: parts.check?,
            interval: parts.interval.unwrap_or(HealthSettings::DEFAULT_INTERVAL),
            timeout: parts.timeout.unwrap_or(HealthSettings::DEFAULT_TIMEOUT),
            failures: parts.failures.unwrap_or(HealthSettings::DEFAULT_FAILURES),
        })
    }

    /// `[supervisor] http`: a socket address to serve `/metrics`, `/healthz`, `/readyz`.
    pub(super) fn http_listen(&mut self, value: &Value<'_>, key: &str) -> Option<SocketAddr> {
        let s = self.string(value, key, "http", HTTP_EXPECTED)?;
        match s.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.sink.error(
                    value.span(),
                    Some(key),
                    format!("invalid `http` address `{s}`"),
                    Some(HTTP_EXPECTED),
                );
                None
            }
        }
    }

    /// Walk one probe table, reporting every problem; `None` when it is not a table.
    fn probe_table(
        &mut self,
        value: &Value<'_>,
        key: &str,
        field: &str,
        keys: &[&str],
        checks: &[&str],
    ) -> Option<Parts> {
        let expected = format!(
            "a table with {}, like {{ {} = ... }}",
            one_of(checks),
            checks[if field == "ready" { 1 } else { 0 }]
        );
        let DeValue::Table(table) = value.get_ref() else {
            self.sink.wrong_type(value, key, field, &expected);
            return None;
        };
        let mut parts = Parts {
            check: None,
            timeout: None,
            interval: None,
            failures: None,
        };
        let mut chosen: Vec<&str> = Vec::new();
        // A check key was written, even if unusable (then "names no check" would be noise).
        let mut named = false;
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let sub = format!("{key}.{name}");
            if READY_CHECKS.contains(&name) && !checks.contains(&name) {
                self.sink.error(
                    k.span(),
                    Some(&sub),
                    format!("`{name}` cannot be a `{field}` check"),
                    Some(&one_of(checks)),
                );
                named = true;
                continue;
            }
            let check = match name {
                "notify" => match v.get_ref() {
                    DeValue::Boolean(true) => Some(Check::Notify),
                    DeValue::Boolean(false) => {
                        self.sink.error(
                            v.span(),
                            Some(&sub),
                            "`notify = false` selects no check; remove `ready` instead",
                            None,
                        );
                        None
                    }
                    _ => {
                        self.sink.wrong_type(v, &sub, name, "true");
                        None
                    }
                },
                "http" => self.probe_value(
                    v,
                    &sub,
                    name,
                    "a URL like \"http://127.0.0.1:3000/health\"",
                    |s| probe::parse_http(s).map(Check::Http),
                ),
                "tcp" => {
                    self.probe_value(v, &sub, name, "an address like \"127.0.0.1:6379\"", |s| {
                        probe::check_tcp(s).map(|()| Check::Tcp(s.to_string()))
                    })
                }
                "log" => self.probe_value(v, &sub, name, "a regular expression", |s| {
                    regex_lite::Regex::new(s)
                        .map(|_| Check::Log(s.to_string()))
                        .map_err(|e| format!("invalid regular expression: {e}"))
                }),
                "exec" => self.cmd(v, &sub, name).map(Check::Exec),
                "timeout" => {
                    parts.timeout = self.duration_at_least(v, &sub, name, probe::MIN_INTERVAL);
                    continue;
                }
                "interval" => {
                    parts.interval = self.duration_at_least(v, &sub, name, probe::MIN_INTERVAL);
                    continue;
                }
                "failures" if keys.contains(&"failures") => {
                    parts.failures = self.positive(v, &sub, name);
                    continue;
                }
                _ => {
                    self.sink.unknown_key(k, &sub, keys);
                    continue;
                }
            };
            if !chosen.is_empty() {
                self.sink.error(
                    k.span(),
                    Some(&sub),
                    format!(
                        "`{field}` has both `{}` and `{name}`; one check per table",
                        chosen[0]
                    ),
                    None,
                );
            }
            chosen.push(name);
            if chosen.len() == 1 {
                parts.check = check;
            }
        }
        if chosen.is_empty() && !named {
            self.sink.error(
                value.span(),
                Some(key),
                format!("`{field}` names no check"),
                Some(&expected),
            );
        }
        Some(parts)
    }

    /// A string probe value, checked by `parse`.
    fn probe_value(
        &mut self,
        value: &Value<'_>,
        key: &str,
        field: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<Check, String>,
    ) -> Option<Check> {
        let s = self.string(value, key, field, expected)?;
        match parse(s) {
            Ok(check) => Some(check),
            Err(message) => {
                self.sink.error(
                    value.span(),
                    Some(key),
                    format!("invalid `{field}`: {message}"),
                    Some(expected),
                );
                None
            }
        }
    }
}
