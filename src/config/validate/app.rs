//! `[[app]]`, `[defaults]` and `[app.profile.NAME]`: each table read into a [`Layer`],
//! and the merged layers built into an [`App`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::listen;
use super::logs::{LogFile, MAX_LOG_MAX_LINE, MAX_LOG_RETAIN, MIN_LOG_MAX_LINE, MIN_LOG_MAX_SIZE};
use super::{Key, Value, Walker};
use crate::config::raw::{suggest, APP_KEYS};
use crate::config::raw::{
    CRON_OVERLAP_VALUES, LOG_FORMAT_VALUES, LOG_JSON_VALUES, LOG_ROTATE_VALUES, LOG_TARGET_VALUES,
    MEMORY_ACTION_VALUES,
};
use crate::config::units::Instances;
use crate::config::{App, CronExpr, CronOverlap, CronZone, RestartMode, Signal};
use crate::config::{
    LogFormat, LogJson, LogRotate, LogSettings, LogTarget, MemoryAction, MemorySettings,
};

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

/// Which table a [`Layer`] comes from; they differ only in which keys they may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Defaults,
    App,
    Profile,
}

/// A `cwd` and where it was written, so a missing directory is reported at the layer that
/// named it.
#[derive(Debug, Clone)]
pub(super) struct Cwd {
    pub(super) path: PathBuf,
    pub(super) span: Range<usize>,
    pub(super) key: String,
}

/// The app fields one table sets; `None` = not set there.
#[derive(Debug, Clone, Default)]
pub(super) struct Layer {
    /// `Some(None)`: written but invalid (already reported), so not "missing" either.
    pub(super) cmd: Option<Option<Vec<String>>>,
    pub(super) cwd: Option<Cwd>,
    pub(super) env: BTreeMap<String, String>,
    pub(super) instances: Option<Instances>,
    pub(super) restart: Option<RestartMode>,
    pub(super) restart_delay: Option<Duration>,
    pub(super) max_restarts: Option<u32>,
    pub(super) min_uptime: Option<Duration>,
    pub(super) errored_retry: Option<Duration>,
    pub(super) stop_signal: Option<Signal>,
    pub(super) kill_timeout: Option<Duration>,
    pub(super) autostart: Option<bool>,
    pub(super) user: Option<String>,
    pub(super) group: Option<String>,
    pub(super) log_format: Option<LogFormat>,
    pub(super) log_json: Option<LogJson>,
    pub(super) log_max_line: Option<usize>,
    pub(super) log_split: Option<bool>,
    pub(super) log_file: Option<LogFile>,
    pub(super) log_max_size: Option<u64>,
    pub(super) log_rotate: Option<LogRotate>,
    pub(super) log_retain: Option<u32>,
    pub(super) log_compress: Option<bool>,
    pub(super) log_target: Option<LogTarget>,
    pub(super) max_memory: Option<u64>,
    pub(super) memory_interval: Option<Duration>,
    pub(super) memory_samples: Option<u32>,
    pub(super) memory_action: Option<MemoryAction>,
    pub(super) max_unavailable: Option<u32>,
    pub(super) cron_restart: Option<Written<CronExpr>>,
    pub(super) cron_tz: Option<Written<CronZone>>,
    pub(super) cron_overlap: Option<Written<CronOverlap>>,
    pub(super) ready: Option<Written<crate::config::ReadySettings>>,
    pub(super) health: Option<Written<crate::config::HealthSettings>>,
    pub(super) listen: Option<listen::ListenSetting>,
}

/// A key that was written: `value` is `None` when it was invalid (already reported), so
/// an invalid value in one layer still overrides a valid one below it.
#[derive(Debug, Clone)]
pub(super) struct Written<T> {
    pub(super) value: Option<T>,
}

impl Layer {
    /// Put `top` over `self`: its keys win, its `env` is merged in per variable.
    pub(super) fn overlay(&mut self, top: &Layer) {
        macro_rules! replace {
            ($($field:ident),*) => {$(
                if top.$field.is_some() {
                    self.$field = top.$field.clone();
                }
            )*};
        }
        replace!(
            cmd,
            cwd,
            instances,
            restart,
            restart_delay,
            max_restarts,
            min_uptime,
            errored_retry,
            stop_signal,
            kill_timeout,
            autostart,
            user,
            group,
            log_format,
            log_json,
            log_max_line,
            log_split,
            log_file,
            log_max_size,
            log_rotate,
            log_retain,
            log_compress,
            log_target,
            max_memory,
            memory_interval,
            memory_samples,
            memory_action,
            max_unavailable,
            cron_restart,
            cron_tz,
            cron_overlap,
            ready,
            health,
            listen
        );
        self.env
            .extend(top.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
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

    /// Parse the app fields of one table. For an `[[app]]`, `name` and `profile` are
    /// handled by the caller; elsewhere they are errors.
    pub(super) fn layer(&mut self, table: &DeTable<'_>, prefix: &str, section: Section) -> Layer {
        let mut l = Layer::default();
        for (k, v) in table.iter() {
            let field = k.get_ref().as_ref();
            let key = format!("{prefix}.{field}");
            match field {
                "name" | "profile" => self.misplaced(k, &key, section),
                "cmd" => l.cmd = Some(self.cmd(v, &key, field)),
                "cwd" => {
                    l.cwd = self.path(v, &key, field).map(|path| Cwd {
                        path,
                        span: v.span(),
                        key: key.clone(),
                    })
                }
                "env" => {
                    if let Some(env) = self.env(v, &key) {
                        l.env = env;
                    }
                }
                "instances" => l.instances = self.instances(v, &key),
                "restart" => l.restart = self.restart(v, &key),
                "restart_delay" => l.restart_delay = self.duration(v, &key, field),
                "max_restarts" => l.max_restarts = self.count(v, &key, field, u32::MAX),
                "min_uptime" => l.min_uptime = self.duration(v, &key, field),
                "errored_retry" => l.errored_retry = self.duration(v, &key, field),
                "stop_signal" => l.stop_signal = self.signal(v, &key, field),
                "kill_timeout" => l.kill_timeout = self.duration(v, &key, field),
                "autostart" => l.autostart = self.boolean(v, &key, field),
                "user" => l.user = self.account(v, &key, field, "a user name or numeric uid"),
                "group" => l.group = self.account(v, &key, field, "a group name or numeric gid"),
                "log_format" => {
                    l.log_format = self
                        .choice(v, &key, field, LOG_FORMAT_VALUES)
                        .map(|c| match c {
                            "json" => LogFormat::Json,
                            _ => LogFormat::Text,
                        })
                }
                "log_json" => {
                    l.log_json = self
                        .choice(v, &key, field, LOG_JSON_VALUES)
                        .map(|c| match c {
                            "embed" => LogJson::Embed,
                            _ => LogJson::String,
                        })
                }
                "log_max_line" => {
                    l.log_max_line = self
                        .size(v, &key, field, MIN_LOG_MAX_LINE, Some(MAX_LOG_MAX_LINE))
                        .and_then(|n| usize::try_from(n).ok())
                }
                "log_split" => l.log_split = self.boolean(v, &key, field),
                "log_file" => {
                    l.log_file = self.path(v, &key, field).map(|path| LogFile {
                        path,
                        span: v.span(),
                        key: key.clone(),
                    })
                }
                "log_max_size" => {
                    l.log_max_size = self.size(v, &key, field, MIN_LOG_MAX_SIZE, None)
                }
                "log_rotate" => {
                    l.log_rotate = self
                        .choice(v, &key, field, LOG_ROTATE_VALUES)
                        .map(|c| match c {
                            "hourly" => LogRotate::Hourly,
                            _ => LogRotate::Daily,
                        })
                }
                "log_retain" => l.log_retain = self.count(v, &key, field, MAX_LOG_RETAIN),
                "log_compress" => l.log_compress = self.boolean(v, &key, field),
                "log_target" => {
                    l.log_target = self
                        .choice(v, &key, field, LOG_TARGET_VALUES)
                        .map(|c| match c {
                            "stdout" => LogTarget::Stdout,
                            "both" => LogTarget::Both,
                            _ => LogTarget::File,
                        })
                }
                "max_memory" => {
                    l.max_memory = self.size(v, &key, field, MemorySettings::MIN_MAX_MEMORY, None)
                }
                "memory_interval" => {
                    l.memory_interval =
                        self.duration_at_least(v, &key, field, MemorySettings::MIN_INTERVAL)
                }
                "memory_samples" => l.memory_samples = self.positive(v, &key, field),
                "memory_action" => {
                    l.memory_action =
                        self.choice(v, &key, field, MEMORY_ACTION_VALUES)
                            .map(|c| match c {
                                "stop" => MemoryAction::Stop,
                                _ => MemoryAction::Restart,
                            })
                }
                "max_unavailable" => l.max_unavailable = self.positive(v, &key, field),
                "cron_restart" => {
                    l.cron_restart = Some(Written {
                        value: self.cron_expr(v, &key, field),
                    })
                }
                "cron_tz" => {
                    l.cron_tz = Some(Written {
                        value: self.time_zone(v, &key, field),
                    })
                }
                "cron_overlap" => {
                    l.cron_overlap = Some(Written {
                        value: self
                            .choice(v, &key, field, CRON_OVERLAP_VALUES)
                            .map(|c| match c {
                                "restart" => CronOverlap::Restart,
                                _ => CronOverlap::Skip,
                            }),
                    })
                }
                "listen" => l.listen = Some(self.listen(v, &key)),
                "ready" => {
                    l.ready = Some(Written {
                        value: self.ready(v, &key),
                    })
                }
                "health" => {
                    l.health = Some(Written {
                        value: self.health(v, &key),
                    })
                }
                _ => {
                    if section == Section::App {
                        self.sink.unknown_key(k, &key, APP_KEYS);
                    } else {
                        let overlay_keys: Vec<&str> = APP_KEYS
                            .iter()
                            .copied()
                            .filter(|k| *k != "name" && *k != "profile")
                            .collect();
                        self.sink.unknown_key(k, &key, &overlay_keys);
                    }
                }
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
        merged: Layer,
        cpus: u32,
        is_dir: &dyn Fn(&Path) -> bool,
    ) -> Option<App> {
        let cwd = match merged.cwd {
            Some(c) => {
                if !is_dir(&c.path) {
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
        let cmd = match merged.cmd {
            Some(Some(cmd)) => Some(cmd),
            // Already reported where it was written.
            Some(None) => None,
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
        let cron = Self::cron(merged.cron_restart, merged.cron_tz, merged.cron_overlap);
        let (name, cmd) = (app.name.as_ref()?, cmd?);
        Some(App {
            name: name.get_ref().clone(),
            cmd,
            cwd,
            env: merged.env,
            instances: merged
                .instances
                .unwrap_or(Instances::Count(1))
                .resolve(cpus),
            restart: merged.restart.unwrap_or(RestartMode::Always),
            restart_delay: merged.restart_delay.unwrap_or(DEFAULT_RESTART_DELAY),
            max_restarts: merged.max_restarts.unwrap_or(DEFAULT_MAX_RESTARTS),
            min_uptime: merged.min_uptime.unwrap_or(DEFAULT_MIN_UPTIME),
            errored_retry: merged.errored_retry.unwrap_or(DEFAULT_ERRORED_RETRY),
            stop_signal: merged.stop_signal.unwrap_or(Signal::TERM),
            kill_timeout: merged.kill_timeout.unwrap_or(DEFAULT_KILL_TIMEOUT),
            autostart: merged.autostart.unwrap_or(true),
            user: merged.user,
            group: merged.group,
            log: LogSettings {
                format: merged.log_format.unwrap_or(LogFormat::Text),
                json: merged.log_json.unwrap_or(LogJson::String),
                max_line: merged.log_max_line.unwrap_or(LogSettings::DEFAULT_MAX_LINE),
                split: merged.log_split.unwrap_or(false),
                file: merged.log_file.map(|f| f.path),
                max_size: merged.log_max_size,
                rotate: merged.log_rotate,
                retain: merged.log_retain.unwrap_or(LogSettings::DEFAULT_RETAIN),
                compress: merged.log_compress.unwrap_or(false),
                target: merged.log_target,
            },
            memory: MemorySettings {
                max_memory: merged.max_memory,
                interval: merged
                    .memory_interval
                    .unwrap_or(MemorySettings::DEFAULT_INTERVAL),
                samples: merged
                    .memory_samples
                    .unwrap_or(MemorySettings::DEFAULT_SAMPLES),
                action: merged.memory_action.unwrap_or(MemoryAction::Restart),
                max_unavailable: merged
                    .max_unavailable
                    .unwrap_or(MemorySettings::DEFAULT_MAX_UNAVAILABLE),
            },
            cron,
            listen: merged.listen.and_then(|l| l.value).unwrap_or_default(),
            ready: merged.ready.and_then(|w| w.value),
            health: merged.health.and_then(|w| w.value),
        })
    }
}
