//! The difference between two configs, key by key, for `supctl diff` and `supctl apply`:
//! which apps were added, removed or changed, what each changed key was and is, and what
//! it takes for the change to take effect ([`Needs`]).
//!
//! Pure: it compares two [`Config`]s and decides nothing (applying a diff is the core's).
//! How each app key is shown and what it needs are declared with the key, in the
//! `app_keys!` table of `validate/keys.rs`, so a key cannot be added without them; this
//! module holds the comparison and the ways of writing values that the table uses.

use std::collections::BTreeMap;
use std::fmt::{Debug, Display};
use std::path::Path;
use std::time::Duration;

use super::probe::{Check, HealthSettings, ReadySettings};
use super::units::{format_size, signal_name};
use super::{App, Config, Signal, Supervisor};

/// What must happen for a changed key to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Needs {
    /// A new process: the instances are replaced (a rolling restart).
    Restart,
    /// Instances started or stopped (`instances`).
    Scale,
    /// Nothing but the new setting: supd uses it from now on.
    Live,
}

/// One changed key. `old` and `new` are the values as an operator would write them;
/// `None` = not set on that side.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// The key as in the file (`kill_timeout`, `env.NODE_ENV`, `socket`).
    pub key: String,
    /// The running value.
    pub old: Option<String>,
    /// The file's value.
    pub new: Option<String>,
    /// What it takes to apply.
    pub needs: Needs,
}

/// How an app differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DiffKind {
    /// Only in the new config.
    Added,
    /// Only in the running config.
    Removed,
    /// In both, with some keys changed.
    Changed,
}

/// One app that is not the same in both configs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppDiff {
    /// Its name.
    pub name: String,
    /// Added, removed or changed.
    pub kind: DiffKind,
    /// The changed keys, in the order of the config reference; empty for an added or a
    /// removed app.
    pub changes: Vec<Change>,
}

/// The difference between the running config and the file's.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Diff {
    /// Added and changed apps in the new file's order, then removed ones in the old
    /// order. Unchanged apps are not listed.
    pub apps: Vec<AppDiff>,
    /// Changed `[supervisor]` keys.
    pub supervisor: Vec<Change>,
    /// Why the new config cannot be applied to the running supd, one sentence per
    /// `[supervisor]` key that only a new supd can change.
    pub refused: Vec<String>,
}

impl Diff {
    /// True when the two configs run the same.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty() && self.supervisor.is_empty() && self.refused.is_empty()
    }
}

impl AppDiff {
    /// True when a changed key takes effect only in a new process. An added or removed
    /// app is started or stopped, not restarted.
    pub fn needs_restart(&self) -> bool {
        self.changes.iter().any(|c| c.needs == Needs::Restart)
    }
}

/// Compare one app's old and new settings key by key (`old.name == new.name`).
pub fn app_changes(old: &App, new: &App) -> Vec<Change> {
    super::validate::app_changes(old, new)
}

/// Compare the running config with the file's.
pub fn diff(old: &Config, new: &Config) -> Diff {
    let mut apps = Vec::new();
    for app in &new.apps {
        match old.apps.iter().find(|a| a.name == app.name) {
            None => apps.push(AppDiff {
                name: app.name.clone(),
                kind: DiffKind::Added,
                changes: Vec::new(),
            }),
            Some(running) => {
                let changes = app_changes(running, app);
                if !changes.is_empty() {
                    apps.push(AppDiff {
                        name: app.name.clone(),
                        kind: DiffKind::Changed,
                        changes,
                    });
                }
            }
        }
    }
    for app in &old.apps {
        if !new.apps.iter().any(|a| a.name == app.name) {
            apps.push(AppDiff {
                name: app.name.clone(),
                kind: DiffKind::Removed,
                changes: Vec::new(),
            });
        }
    }
    let (supervisor, refused) = supervisor_changes(&old.supervisor, &new.supervisor);
    Diff {
        apps,
        supervisor,
        refused,
    }
}

/// The changed `[supervisor]` keys, and a refusal for each that supd cannot change while
/// it runs: the control socket (clients would lose it) and the HTTP address.
fn supervisor_changes(old: &Supervisor, new: &Supervisor) -> (Vec<Change>, Vec<String>) {
    let mut changes = Vec::new();
    let socket = |s: &Supervisor| s.socket.as_deref().map(path);
    let http = |s: &Supervisor| s.http.map(|a| a.to_string());
    compare(
        &mut changes,
        "socket",
        Needs::Restart,
        socket(old),
        socket(new),
    );
    compare(&mut changes, "http", Needs::Restart, http(old), http(new));
    let refused = changes
        .iter()
        .map(|c| {
            let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "not set".into());
            format!(
                "`[supervisor] {}` cannot change while supd runs ({} → {}); restart supd for that",
                c.key,
                shown(&c.old),
                shown(&c.new)
            )
        })
        .collect();
    let log_dir = |s: &Supervisor| Some(path(&s.log_dir));
    let shutdown = |s: &Supervisor| Some(duration(s.shutdown_timeout));
    compare(
        &mut changes,
        "log_dir",
        Needs::Live,
        log_dir(old),
        log_dir(new),
    );
    compare(
        &mut changes,
        "shutdown_timeout",
        Needs::Live,
        shutdown(old),
        shutdown(new),
    );
    let readers = |s: &Supervisor| Some(format!("{:?}", s.readers));
    compare(
        &mut changes,
        "readers",
        Needs::Live,
        readers(old),
        readers(new),
    );
    (changes, refused)
}

/// Add a change of `key` when `old` and `new` differ. The values are compared as shown,
/// so every way of showing a value must tell different values apart.
pub(crate) fn compare(
    out: &mut Vec<Change>,
    key: &str,
    needs: Needs,
    old: Option<String>,
    new: Option<String>,
) {
    if old != new {
        out.push(Change {
            key: key.to_string(),
            old,
            new,
            needs,
        });
    }
}

/// Add a change `KEY.NAME` per variable that was added, removed or changed, in name
/// order. The value of a variable whose name looks secret is shown as `***`.
pub(crate) fn compare_vars(
    out: &mut Vec<Change>,
    key: &str,
    needs: Needs,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) {
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for name in names {
        let (before, after) = (old.get(name), new.get(name));
        if before == after {
            continue;
        }
        let shown = |v: Option<&String>| {
            v.map(|v| {
                if is_secret(name) {
                    "***".to_string()
                } else {
                    v.clone()
                }
            })
        };
        out.push(Change {
            key: format!("{key}.{name}"),
            old: shown(before),
            new: shown(after),
            needs,
        });
    }
}

/// Whether a variable's value is kept out of diffs: its name contains `PASSWORD`,
/// `SECRET`, `TOKEN` or `KEY`, in any case.
pub fn is_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "SECRET", "TOKEN", "KEY"]
        .iter()
        .any(|word| upper.contains(word))
}

/// A duration as the config would write it, exactly: `100ms`, `5s`, `1.5s`, `1m30s`,
/// `2h`, `1d`, `1s250ms`: exact, and what `parse_duration` reads back.
pub(crate) fn duration(d: Duration) -> String {
    if d.subsec_nanos() % 1_000_000 != 0 {
        return format!("{d:?}");
    }
    // Always in the file's own syntax, so a value can be copied back into it.
    let ms = d.as_millis();
    if ms == 0 {
        return "0ms".to_string();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// A size in bytes: `300M`, `64K`, `1500B`.
pub(crate) fn size(n: u64) -> String {
    format_size(n)
}

/// A signal by name: `SIGQUIT`.
pub(crate) fn signal(s: Signal) -> String {
    signal_name(s.0).map_or_else(|| format!("signal {}", s.0), String::from)
}

/// A path as written.
pub(crate) fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A TOML string: `"text"`.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// A TOML array of strings: `["node", "server.js"]`.
pub(crate) fn list<T: Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| quoted(&i.to_string())).collect();
    format!("[{}]", items.join(", "))
}

/// [`list`] of a list that may be empty: `None` when it is (not set).
pub(crate) fn nonempty_list<T: Display>(items: &[T]) -> Option<String> {
    (!items.is_empty()).then(|| list(items))
}

/// A choice as the file writes it: the variant's name in kebab case (`OnFailure` is
/// `on-failure`). A unit test holds every choice to the values validation accepts.
pub(crate) fn choice(value: &impl Debug) -> String {
    let mut out = String::new();
    for (i, c) in format!("{value:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The check of a probe as its key: `http = "http://127.0.0.1:3000/health"`.
fn check(c: &Check) -> String {
    match c {
        Check::Notify => "notify = true".into(),
        Check::Http(target) => format!("http = {}", quoted(&target.url)),
        Check::Tcp(address) => format!("tcp = {}", quoted(address)),
        Check::Exec(argv) => format!("exec = {}", list(argv)),
        Check::Log(pattern) => format!("log = {}", quoted(pattern)),
    }
}

/// An inline table from the check and the settings that differ from their defaults.
fn inline(check_part: String, rest: Vec<Option<String>>) -> String {
    let mut parts = vec![check_part];
    parts.extend(rest.into_iter().flatten());
    format!("{{ {} }}", parts.join(", "))
}

/// `ready` inline: `{ notify = true, timeout = "10s" }` (defaults left out).
pub(crate) fn ready(r: &ReadySettings) -> String {
    let set = |name: &str, d: Duration, default: Duration| {
        (d != default).then(|| format!("{name} = {}", quoted(&duration(d))))
    };
    inline(
        check(&r.check),
        vec![
            set("timeout", r.timeout, ReadySettings::DEFAULT_TIMEOUT),
            set("interval", r.interval, ReadySettings::DEFAULT_INTERVAL),
        ],
    )
}

/// `health` inline: `{ http = "...", interval = "5s", failures = 2 }` (defaults left out).
pub(crate) fn health(h: &HealthSettings) -> String {
    let set = |name: &str, d: Duration, default: Duration| {
        (d != default).then(|| format!("{name} = {}", quoted(&duration(d))))
    };
    let failures = (h.failures != HealthSettings::DEFAULT_FAILURES)
        .then(|| format!("failures = {}", h.failures));
    inline(
        check(&h.check),
        vec![
            set("interval", h.interval, HealthSettings::DEFAULT_INTERVAL),
            set("timeout", h.timeout, HealthSettings::DEFAULT_TIMEOUT),
            failures,
        ],
    )
}

#[cfg(test)]
mod tests;
