//! `[[app]]`, `[defaults]` and `[app.profile.NAME]`: each table read into a [`Layer`]
//! (the keys themselves are declared in `keys`), and the merged layers built into an
//! [`App`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::keys::{Layer, Written, APP_KEYS, LAYER_KEYS};
use super::{Files, Key, Value, Walker};
use crate::config::raw::suggest;
use crate::config::units::Instances;
use crate::config::{App, LogSettings, MemorySettings, RestartMode, Signal};

/// `restart_delay` when the file sets none.
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_millis(100);
/// `max_restarts` when the file sets none.
pub const DEFAULT_MAX_RESTARTS: u32 = 16;
/// `min_uptime` when the file sets none.
pub const DEFAULT_MIN_UPTIME: Duration = Duration::from_secs(1);
/// `errored_retry` when the file sets none.
pub const DEFAULT_ERRORED_RETRY: Duration = Duration::from_secs(5 * 60);
/// `kill_timeout` when the file sets none.
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// `max_surge` when the file sets none: one new instance starts before an old one stops.
pub const DEFAULT_MAX_SURGE: u32 = 1;

/// Which table a [`Layer`] comes from; they differ only in which keys they may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Defaults,
    App,
    Profile,
}

/// One `[app.profile.NAME]`.
#[derive(Debug)]
pub(super) struct Profile {
    pub(super) name: String,
    pub(super) span: Range<usize>,
    pub(super) layer: Layer,
}

/// One `[[app]]` as written, before defaults and profile are applied.
#[derive(Debug)]
pub(super) struct RawApp {
    /// The `[[app]]` header (or inline table), where missing keys are reported.
    pub(super) span: Range<usize>,
    /// The name, when present and valid.
    pub(super) name: Option<Spanned<String>>,
    /// `app.NAME`, or `app[INDEX]` when the name is unusable.
    pub(super) key: String,
    pub(super) layer: Layer,
    pub(super) profiles: Vec<Profile>,
}

impl Walker<'_> {
    pub(super) fn apps(&mut self, value: Option<&Value<'_>>) -> Vec<RawApp> {
        let Some(value) = value else {
            return Vec::new();
        };
        match value.get_ref() {
            DeValue::Array(items) => {
                let mut apps = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    match item.get_ref() {
                        DeValue::Table(t) => apps.push(self.app(index, item.span(), t)),
                        _ => self.sink.wrong_type(
                            item,
                            &format!("app[{index}]"),
                            "app",
                            "a table like [[app]]",
                        ),
                    }
                }
                apps
            }
            DeValue::Table(_) => {
                self.sink.error(
                    value.span(),
                    Some("app"),
                    "`app` must be an array of tables: write [[app]], not [app]",
                    None,
                );
                Vec::new()
            }
            _ => {
                self.sink
                    .wrong_type(value, "app", "app", "an array of tables: [[app]]");
                Vec::new()
            }
        }
    }

    pub(super) fn app(&mut self, index: usize, span: Range<usize>, table: &DeTable<'_>) -> RawApp {
        let fallback_key = format!("app[{index}]");
        let name = match table.get("name") {
            None => {
                self.sink.error(
                    span.clone(),
                    Some(&fallback_key),
                    "missing field `name`",
                    None,
                );
                None
            }
            Some(v) => match v.get_ref() {
                DeValue::String(s) => {
                    let key = format!("{fallback_key}.name");
                    self.check_name(s, v.span(), &key)
                        .then(|| Spanned::new(v.span(), s.to_string()))
                }
                _ => {
                    self.sink
                        .wrong_type(v, &format!("{fallback_key}.name"), "name", "a string");
                    None
                }
            },
        };
        let key = match &name {
            Some(n) => format!("app.{}", n.get_ref()),
            None => fallback_key,
        };
        let layer = self.layer(table, &key, Section::App);
        let profiles = match table.get("profile") {
            None => Vec::new(),
            Some(v) => self.profiles(v, &key),
        };
        RawApp {
            span,
            name,
            key,
            layer,
            profiles,
        }
    }

    pub(super) fn profiles(&mut self, value: &Value<'_>, app_key: &str) -> Vec<Profile> {
        let key = format!("{app_key}.profile");
        let DeValue::Table(table) = value.get_ref() else {
            self.sink
                .wrong_type(value, &key, "profile", "tables like [app.profile.NAME]");
            return Vec::new();
        };
        let mut profiles = Vec::with_capacity(table.len());
        for (k, v) in table.iter() {
            let name = k.get_ref().as_ref();
            let key = format!("{key}.{name}");
            match v.get_ref() {
                DeValue::Table(t) => {
                    let layer = self.layer(t, &key, Section::Profile);
                    profiles.push(Profile {
                        name: name.to_string(),
                        span: k.span(),
                        layer,
                    });
                }
                _ => self
                    .sink
                    .wrong_type(v, &key, name, "a table like [app.profile.NAME]"),
            }
        }
        profiles
    }

    /// Read the app keys of one table. For an `[[app]]`, `name` and `profile` are
    /// handled by the caller; elsewhere they are errors.
    pub(super) fn layer(&mut self, table: &DeTable<'_>, prefix: &str, section: Section) -> Layer {
        let mut l = Layer::default();
        for (k, v) in table.iter() {
            let field = k.get_ref().as_ref();
            let key = format!("{prefix}.{field}");
            if field == "name" || field == "profile" {
                self.misplaced(k, &key, section);
            } else if !l.read(self, field, v, &key) {
                let known = match section {
                    Section::App => APP_KEYS,
                    Section::Defaults | Section::Profile => LAYER_KEYS,
                };
                self.sink.unknown_key(k, &key, known);
            }
        }
        l
    }

    pub(super) fn misplaced(&mut self, k: &Key<'_>, key: &str, section: Section) {
        let field = k.get_ref().as_ref();
        let message = match (section, field) {
            (Section::App, _) => return,
            (Section::Defaults, "name") => {
                "`name` cannot be set in [defaults]: every app names itself"
            }
            (Section::Defaults, _) => {
                "`profile` cannot be set in [defaults]: profiles belong to an app, \
                 as [app.profile.NAME]"
            }
            (Section::Profile, "name") => "`name` cannot be changed by a profile",
            (Section::Profile, _) => "profiles cannot be nested",
        };
        self.sink.error(k.span(), Some(key), message, None);
    }

    /// An app name: non-empty, `[A-Za-z0-9_.-]`, not `all` (supctl's word for every app).
    pub(super) fn check_name(&mut self, name: &str, span: Range<usize>, key: &str) -> bool {
        let (message, expected) = if name.is_empty() {
            ("app name is empty".to_string(), None)
        } else if name == "all" {
            (
                "app name `all` is reserved: supctl uses it for every app".to_string(),
                None,
            )
        } else if name.contains(':') {
            (
                format!("app name `{name}` contains `:`, which supctl uses for `name:INDEX`"),
                None,
            )
        } else if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            (
                format!("app name `{name}` contains the character {c:?}"),
                Some("only letters, digits, `_`, `.` and `-`"),
            )
        } else {
            return true;
        };
        self.sink.error(span, Some(key), message, expected);
        false
    }

    /// A second app with a name already taken is reported at its `name`, naming the line
    /// of the first.
    pub(super) fn check_duplicates(&mut self, apps: &[RawApp]) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for app in apps {
            let Some(name) = &app.name else { continue };
            match seen.get(name.get_ref().as_str()) {
                Some(&first) => {
                    let line = self.sink.line(first);
                    self.sink.error(
                        name.span(),
                        Some(&format!("{}.name", app.key)),
                        format!(
                            "duplicate app name `{}` (first defined on line {line})",
                            name.get_ref()
                        ),
                        None,
                    );
                }
                None => {
                    seen.insert(name.get_ref(), name.span().start);
                }
            }
        }
    }

    /// A `--profile` that no app defines is almost always a typo, so it is an error
    /// rather than a silent no-op.
    pub(super) fn check_profile_exists(&mut self, wanted: &str, apps: &[RawApp]) {
        let defined: BTreeSet<&str> = apps
            .iter()
            .flat_map(|a| a.profiles.iter().map(|p| p.name.as_str()))
            .collect();
        if defined.contains(wanted) {
            return;
        }
        let first = apps
            .iter()
            .flat_map(|a| a.profiles.iter())
            .min_by_key(|p| p.span.start);
        let (span, message) = match first {
            Some(p) => {
                let names: Vec<&str> = defined.iter().copied().collect();
                let hint = match suggest(wanted, &names) {
                    Some(near) => format!(", did you mean `{near}`?"),
                    None => String::new(),
                };
                (
                    p.span.clone(),
                    format!(
                        "profile `{wanted}` is not defined by any app{hint} \
                         (profiles are [app.profile.NAME] tables; this file defines {})",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            }
            None => (
                0..0,
                format!(
                    "profile `{wanted}` is not defined: this file has no profiles \
                     (add an [app.profile.{wanted}] table to an app)"
                ),
            ),
        };
        self.sink.error(span, Some("profile"), message, None);
    }

    /// The typed app from its merged layers, or `None` (with errors recorded) when a
    /// required field is missing.
    pub(super) fn build(
        &mut self,
        app: &RawApp,
        mut merged: Layer,
        cpus: u32,
        files: &Files<'_>,
    ) -> Option<App> {
        let cwd = match merged.cwd.take() {
            Some(c) => {
                if !(files.is_dir)(&c.path) {
                    self.sink.error(
                        c.span,
                        Some(&c.key),
                        format!(
                            "`cwd` `{}` does not exist or is not a directory",
                            c.path.display()
                        ),
                        None,
                    );
                }
                c.path
            }
            None => self.dir.clone(),
        };
        let cmd = match merged.cmd.take() {
            Some(Written(Some(cmd))) => Some(cmd),
            // Already reported where it was written.
            Some(Written(None)) => None,
            None => {
                let message = match &app.name {
                    Some(name) => format!("missing field `cmd` in app `{}`", name.get_ref()),
                    None => "missing field `cmd`".to_string(),
                };
                self.sink.error(
                    app.span.clone(),
                    Some(&format!("{}.cmd", app.key)),
                    message,
                    None,
                );
                None
            }
        };
        let cron = Self::cron(
            merged.cron_restart.take(),
            merged.cron_tz.take(),
            merged.cron_overlap.take(),
        );
        let instances = merged.instances.take().unwrap_or(Instances::Count(1));
        let (env_file, file_env) =
            self.read_env_files(merged.env_file.take().unwrap_or_default(), files);
        let (name, cmd) = (app.name.as_ref()?, cmd?);
        // The built-in defaults, the lowest layer: what the merged layers set replaces them.
        let mut built = App {
            name: name.get_ref().clone(),
            cmd,
            cwd,
            env: BTreeMap::new(),
            env_file,
            instances: instances.resolve(cpus),
            restart: RestartMode::Always,
            restart_delay: DEFAULT_RESTART_DELAY,
            max_restarts: DEFAULT_MAX_RESTARTS,
            min_uptime: DEFAULT_MIN_UPTIME,
            errored_retry: DEFAULT_ERRORED_RETRY,
            stop_signal: Signal::TERM,
            kill_timeout: DEFAULT_KILL_TIMEOUT,
            autostart: true,
            user: None,
            group: None,
            log: LogSettings::default(),
            memory: MemorySettings::default(),
            max_surge: DEFAULT_MAX_SURGE,
            cron,
            ready: None,
            health: None,
            listen: Vec::new(),
        };
        merged.apply(&mut built);
        // Under `env`, whichever layer that came from.
        for (name, value) in file_env {
            built.env.entry(name).or_insert(value);
        }
        if let Some(shared) = built.ready_on_own_listen() {
            self.sink.error(
                app.span.clone(),
                Some(&format!("{}.ready", app.key)),
                format!(
                    "the `ready` check of `{name}` probes {shared}, the app's own `listen` \
                     address: every instance answers there, so it cannot tell when a new \
                     one is ready",
                    name = built.name
                ),
                Some(
                    "a check each instance passes alone: { notify = true }, { log = \"regex\" } \
                     or { exec = [...] }",
                ),
            );
        }
        Some(built)
    }
}
