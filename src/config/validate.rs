//! Validation: the spanned TOML tree plus an optional profile becomes a typed [`Config`],
//! with every problem of the file collected as a [`super::ConfigError`].
//!
//! Layering, lowest first: built-in defaults, `[defaults]`, the app's own `[[app]]` keys,
//! then the selected `[app.profile.NAME]`. A higher layer replaces a key; `env` tables are
//! merged key by key instead, the higher layer winning per variable.
//!
//! Reads no file. [`validate`] asks the effective user id (for the default `log_dir`) and,
//! for a relative config path, the current directory; whether a `cwd` exists is asked
//! through the caller's `is_dir`, so tests need no file system.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::cron::{CRON_EXPECTED, TZ_EXPECTED};
use super::raw::{self, one_of, suggest, type_name, Sink, Value, APP_KEYS, RESTART_VALUES};
use super::raw::{
    CRON_OVERLAP_VALUES, LOG_FORMAT_VALUES, LOG_JSON_VALUES, LOG_ROTATE_VALUES, LOG_TARGET_VALUES,
    MEMORY_ACTION_VALUES, SUPERVISOR_KEYS, TOP_KEYS,
};
use super::units::{self, Instances, DURATION_EXPECTED, INSTANCES_EXPECTED, SIGNAL_EXPECTED};
use super::units::{format_size, SIZE_EXPECTED};
use super::{App, Config, ConfigErrors, RestartMode, Signal, Supervisor};
use super::{CronExpr, CronOverlap, CronSettings, CronZone};
use super::{LogFormat, LogJson, LogRotate, LogSettings, LogTarget, MemoryAction, MemorySettings};

mod listen;
mod probe;
pub use probe::{HEALTH_KEYS, READY_KEYS};

/// `shutdown_timeout` when the file sets none.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
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
/// `log_dir` when the file sets none and supd runs as root.
pub const ROOT_LOG_DIR: &str = "/var/log/sup";
/// The smallest `log_max_line`: shorter limits would split ordinary lines.
pub const MIN_LOG_MAX_LINE: u64 = 1024;
/// The largest `log_max_line`: a line is held whole in memory until it ends.
pub const MAX_LOG_MAX_LINE: u64 = 16 * 1024 * 1024;
/// The smallest `log_max_size`: smaller files would rotate at nearly every line.
pub const MIN_LOG_MAX_SIZE: u64 = 1024;
/// The largest `log_retain`: every rotation renames each kept file once.
pub const MAX_LOG_RETAIN: u32 = 1000;

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Validate the text of the config file `path` with `profile` applied, resolving
/// `instances = "max"` to `cpus`. `is_dir` answers whether a `cwd` exists.
///
/// Returns every error of the file, sorted by position. A TOML syntax error stops before
/// validation, since the tree it leaves is partial; all syntax errors are still reported.
pub fn validate(
    path: &Path,
    text: &str,
    profile: Option<&str>,
    cpus: u32,
    is_dir: &dyn Fn(&Path) -> bool,
) -> Result<Config, ConfigErrors> {
    let root = nix::unistd::geteuid().is_root();
    validate_as(path, text, profile, cpus, is_dir, root)
}

/// `ok: 3 apps, 6 instances`: the one-line summary `supd --check` prints.
pub fn summary(config: &Config) -> String {
    let apps = config.apps.len();
    let instances: u64 = config.apps.iter().map(|a| u64::from(a.instances)).sum();
    format!(
        "ok: {apps} {}, {instances} {}",
        if apps == 1 { "app" } else { "apps" },
        if instances == 1 {
            "instance"
        } else {
            "instances"
        }
    )
}

/// [`validate`] with the effective user's rootness given, so tests do not depend on who
/// runs them.
fn validate_as(
    path: &Path,
    text: &str,
    profile: Option<&str>,
    cpus: u32,
    is_dir: &dyn Fn(&Path) -> bool,
    root: bool,
) -> Result<Config, ConfigErrors> {
    let mut sink = Sink::new(path, text);
    let doc = match raw::parse(text) {
        Ok(doc) => doc,
        Err(errors) => {
            for (span, message) in errors {
                sink.error(span, None, format!("TOML syntax error: {message}"), None);
            }
            return Err(sink.finish());
        }
    };
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut w = Walker { sink, dir };
    let top = doc.get_ref();

    for (k, _) in top.iter() {
        if !TOP_KEYS.contains(&k.get_ref().as_ref()) {
            let path = k.get_ref().to_string();
            w.sink.unknown_key(k, &path, TOP_KEYS);
        }
    }
    let supervisor = w.supervisor(top.get("supervisor"), root);
    let defaults = match top.get("defaults") {
        None => Layer::default(),
        Some(v) => match v.get_ref() {
            DeValue::Table(t) => w.layer(t, "defaults", Section::Defaults),
            _ => {
                w.sink
                    .wrong_type(v, "defaults", "defaults", "a table: [defaults]");
                Layer::default()
            }
        },
    };
    let raw_apps = w.apps(top.get("app"));

    w.check_duplicates(&raw_apps);
    if let Some(wanted) = profile {
        w.check_profile_exists(wanted, &raw_apps);
    }

    let mut apps = Vec::with_capacity(raw_apps.len());
    // Where each log file was chosen, so a second app on the same file is reported there.
    let mut log_files: Vec<(PathBuf, String, Range<usize>, String)> = Vec::new();
    // Where each listening address was chosen, likewise.
    let mut listens: Vec<(super::listen::Listen, String, Range<usize>, String)> = Vec::new();
    for app in &raw_apps {
        let mut merged = defaults.clone();
        merged.overlay(&app.layer);
        if let Some(p) = profile.and_then(|wanted| app.profiles.iter().find(|p| p.name == wanted)) {
            merged.overlay(&p.layer);
        }
        let log_file = merged.log_file.clone();
        let listen_at = merged
            .listen
            .as_ref()
            .map(|l| (l.span.clone(), l.key.clone()));
        if let Some(built) = w.build(app, merged, cpus, is_dir) {
            let (span, key) = match (log_file, &app.name) {
                (Some(f), _) => (f.span, f.key),
                (None, Some(name)) => (name.span(), format!("{}.name", app.key)),
                (None, None) => (app.span.clone(), app.key.clone()),
            };
            for path in built.log.paths(&built.name, &supervisor.log_dir) {
                log_files.push((path, built.name.clone(), span.clone(), key.clone()));
            }
            if let Some((span, key)) = listen_at {
                for addr in &built.listen {
                    listens.push((addr.clone(), built.name.clone(), span.clone(), key.clone()));
                }
            }
            apps.push(built);
        }
    }
    w.check_log_files(&log_files);
    w.check_listen(&listens);

    if w.sink.has_errors() {
        return Err(w.sink.finish());
    }
    Ok(Config {
        path: abs,
        supervisor,
        apps,
    })
}

/// Which table a [`Layer`] comes from; they differ only in which keys they may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Defaults,
    App,
    Profile,
}

/// A `cwd` and where it was written, so a missing directory is reported at the layer that
/// named it.
#[derive(Debug, Clone)]
struct Cwd {
    path: PathBuf,
    span: Range<usize>,
    key: String,
}

/// The app fields one table sets; `None` = not set there.
#[derive(Debug, Clone, Default)]
struct Layer {
    /// `Some(None)`: written but invalid (already reported), so not "missing" either.
    cmd: Option<Option<Vec<String>>>,
    cwd: Option<Cwd>,
    env: BTreeMap<String, String>,
    instances: Option<Instances>,
    restart: Option<RestartMode>,
    restart_delay: Option<Duration>,
    max_restarts: Option<u32>,
    min_uptime: Option<Duration>,
    errored_retry: Option<Duration>,
    stop_signal: Option<Signal>,
    kill_timeout: Option<Duration>,
    autostart: Option<bool>,
    user: Option<String>,
    group: Option<String>,
    log_format: Option<LogFormat>,
    log_json: Option<LogJson>,
    log_max_line: Option<usize>,
    log_split: Option<bool>,
    log_file: Option<LogFile>,
    log_max_size: Option<u64>,
    log_rotate: Option<LogRotate>,
    log_retain: Option<u32>,
    log_compress: Option<bool>,
    log_target: Option<LogTarget>,
    max_memory: Option<u64>,
    memory_interval: Option<Duration>,
    memory_samples: Option<u32>,
    memory_action: Option<MemoryAction>,
    max_unavailable: Option<u32>,
    cron_restart: Option<Written<CronExpr>>,
    cron_tz: Option<Written<CronZone>>,
    cron_overlap: Option<Written<CronOverlap>>,
    ready: Option<Written<super::ReadySettings>>,
    health: Option<Written<super::HealthSettings>>,
    listen: Option<listen::ListenSetting>,
}

/// A key that was written: `value` is `None` when it was invalid (already reported), so
/// an invalid value in one layer still overrides a valid one below it.
#[derive(Debug, Clone)]
struct Written<T> {
    value: Option<T>,
}

/// A `log_file` and where it was written, so two apps writing one file are reported at
/// the layer that named it.
#[derive(Debug, Clone)]
struct LogFile {
    path: PathBuf,
    span: Range<usize>,
    key: String,
}

impl Layer {
    /// Put `top` over `self`: its keys win, its `env` is merged in per variable.
    fn overlay(&mut self, top: &Layer) {
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
struct Profile {
    name: String,
    span: Range<usize>,
    layer: Layer,
}

/// One `[[app]]` as written, before defaults and profile are applied.
#[derive(Debug)]
struct RawApp {
    /// The `[[app]]` header (or inline table), where missing keys are reported.
    span: Range<usize>,
    /// The name, when present and valid.
    name: Option<Spanned<String>>,
    /// `app.NAME`, or `app[INDEX]` when the name is unusable.
    key: String,
    layer: Layer,
    profiles: Vec<Profile>,
}

/// Walks the tree, recording errors in its sink.
struct Walker<'t> {
    sink: Sink<'t>,
    /// The config file's directory, against which relative paths resolve.
    dir: PathBuf,
}

type Key<'i> = Spanned<Cow<'i, str>>;

impl Walker<'_> {
    fn supervisor(&mut self, value: Option<&Value<'_>>, root: bool) -> Supervisor {
        let mut s = Supervisor {
            socket: None,
            log_dir: if root {
                PathBuf::from(ROOT_LOG_DIR)
            } else {
                self.dir.join("logs")
            },
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            http: None,
        };
        let Some(value) = value else { return s };
        let DeValue::Table(table) = value.get_ref() else {
            self.sink
                .wrong_type(value, "supervisor", "supervisor", "a table: [supervisor]");
            return s;
        };
        for (k, v) in table.iter() {
            let field = k.get_ref().as_ref();
            let key = format!("supervisor.{field}");
            match field {
                "socket" => {
                    if let Some(p) = self.path(v, &key, field) {
                        let len = p.as_os_str().len();
                        if len > MAX_SOCKET_PATH {
                            self.sink.error(
                                v.span(),
                                Some(&key),
                                format!(
                                    "`socket` path `{}` is too long for a Unix socket \
                                     ({len} bytes, at most {MAX_SOCKET_PATH})",
                                    p.display()
                                ),
                                None,
                            );
                        } else {
                            s.socket = Some(p);
                        }
                    }
                }
                "log_dir" => {
                    if let Some(p) = self.path(v, &key, field) {
                        s.log_dir = p;
                    }
                }
                "shutdown_timeout" => {
                    if let Some(d) = self.duration(v, &key, field) {
                        s.shutdown_timeout = d;
                    }
                }
                "http" => s.http = self.http_listen(v, &key),
                _ => self.sink.unknown_key(k, &key, SUPERVISOR_KEYS),
            }
        }
        s
    }

    fn apps(&mut self, value: Option<&Value<'_>>) -> Vec<RawApp> {
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

    fn app(&mut self, index: usize, span: Range<usize>, table: &DeTable<'_>) -> RawApp {
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

    fn profiles(&mut self, value: &Value<'_>, app_key: &str) -> Vec<Profile> {
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
    fn layer(&mut self, table: &DeTable<'_>, prefix: &str, section: Section) -> Layer {
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

    fn misplaced(&mut self, k: &Key<'_>, key: &str, section: Section) {
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
    fn check_name(&mut self, name: &str, span: Range<usize>, key: &str) -> bool {
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

    fn cmd(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<Vec<String>> {
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
                            self.sink.error(
                                item.span(),
                                Some(key),
                                format!(
                                    "invalid type for a `{field}` element: found {}",
                                    type_name(other)
                                ),
                                Some("a string"),
                            );
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
    fn path(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<PathBuf> {
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

    fn env(&mut self, value: &Value<'_>, key: &str) -> Option<BTreeMap<String, String>> {
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

    fn instances(&mut self, value: &Value<'_>, key: &str) -> Option<Instances> {
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

    fn restart(&mut self, value: &Value<'_>, key: &str) -> Option<RestartMode> {
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

    fn duration(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<Duration> {
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
    fn count(&mut self, value: &Value<'_>, key: &str, field: &str, max: u32) -> Option<u32> {
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
    fn duration_at_least(
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
    fn positive(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<u32> {
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
    fn size(
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

    /// `cron_restart`: an expression croner parses and that fires.
    fn cron_expr(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<CronExpr> {
        let s = self.string(value, key, field, CRON_EXPECTED)?;
        match s.parse() {
            Ok(expr) => Some(expr),
            Err(e) => {
                self.sink.error(
                    value.span(),
                    Some(key),
                    format!("invalid `{field}`: {e}"),
                    Some(CRON_EXPECTED),
                );
                None
            }
        }
    }

    /// `cron_tz`: a known IANA zone, with a suggestion for a near miss.
    fn time_zone(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<CronZone> {
        let s = self.string(value, key, field, TZ_EXPECTED)?;
        match s.parse::<CronZone>() {
            Ok(zone) => Some(zone),
            Err(e) => {
                let expected = (!e.contains("did you mean")).then_some(TZ_EXPECTED);
                self.sink.error(
                    value.span(),
                    Some(key),
                    format!("invalid `{field}`: {e}"),
                    expected,
                );
                None
            }
        }
    }

    /// The cron keys of the merged layers. `cron_tz` and `cron_overlap` without a
    /// `cron_restart` are accepted and mean nothing, so that `[defaults]` can set them for
    /// the apps that do have a schedule.
    fn cron(
        restart: Option<Written<CronExpr>>,
        tz: Option<Written<CronZone>>,
        overlap: Option<Written<CronOverlap>>,
    ) -> Option<CronSettings> {
        let expr = restart?.value?;
        Some(CronSettings {
            expr,
            tz: tz.and_then(|t| t.value),
            overlap: overlap.and_then(|o| o.value).unwrap_or(CronOverlap::Skip),
        })
    }

    /// One of `values`, with a suggestion for a near miss.
    fn choice(
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

    /// Two apps appending to one file would rotate it under each other: each file belongs
    /// to one app. Reported at the `log_file` (or app name) of every later claimant.
    fn check_log_files(&mut self, files: &[(PathBuf, String, Range<usize>, String)]) {
        let mut seen: BTreeMap<&Path, &str> = BTreeMap::new();
        for (path, app, span, key) in files {
            match seen.get(path.as_path()) {
                Some(&first) if first != app => self.sink.error(
                    span.clone(),
                    Some(key),
                    format!(
                        "log file `{}` of app `{app}` is already the log file of app `{first}`",
                        path.display()
                    ),
                    Some("a `log_file` of its own for each app"),
                ),
                Some(_) => {}
                None => {
                    seen.insert(path, app);
                }
            }
        }
    }

    fn signal(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<Signal> {
        let s = self.string(value, key, field, SIGNAL_EXPECTED)?;
        units::parse_signal(s)
            .map_err(|message| {
                self.sink
                    .error(value.span(), Some(key), message, Some(SIGNAL_EXPECTED))
            })
            .ok()
    }

    fn boolean(&mut self, value: &Value<'_>, key: &str, field: &str) -> Option<bool> {
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
    fn account(
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

    fn string<'v>(
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

    /// A second app with a name already taken is reported at its `name`, naming the line
    /// of the first.
    fn check_duplicates(&mut self, apps: &[RawApp]) {
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
    fn check_profile_exists(&mut self, wanted: &str, apps: &[RawApp]) {
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
    fn build(
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FILE: &str = "/cfg/ecosystem.toml";

    fn is_dir(p: &Path) -> bool {
        ["/", "/cfg", "/cfg/web", "/srv/app", "/tmp"]
            .iter()
            .any(|d| p == Path::new(d))
    }

    fn check_with(text: &str, profile: Option<&str>) -> Result<Config, ConfigErrors> {
        validate_as(Path::new(FILE), text, profile, 4, &is_dir, false)
    }

    fn check(text: &str) -> Result<Config, ConfigErrors> {
        check_with(text, None)
    }

    /// The errors as displayed, without the file name.
    fn errors_with(text: &str, profile: Option<&str>) -> Vec<String> {
        let errors = check_with(text, profile).err().unwrap();
        errors
            .iter()
            .map(|e| {
                let shown = e.to_string();
                shown.strip_prefix(&format!("{FILE}:")).unwrap().to_string()
            })
            .collect()
    }

    fn errors(text: &str) -> Vec<String> {
        errors_with(text, None)
    }

    fn app(text: &str) -> App {
        let mut config = check(text).unwrap();
        assert_eq!(config.apps.len(), 1);
        config.apps.remove(0)
    }

    #[test]
    fn minimal_app_gets_every_default() {
        let config = check("[[app]]\nname = \"web\"\ncmd = \"node server.js\"\n").unwrap();
        assert_eq!(config.path, PathBuf::from(FILE));
        assert_eq!(
            config.supervisor,
            Supervisor {
                socket: None,
                log_dir: PathBuf::from("/cfg/logs"),
                shutdown_timeout: Duration::from_secs(30),
                http: None,
            }
        );
        assert_eq!(
            config.apps,
            vec![App {
                name: "web".into(),
                cmd: vec!["node".into(), "server.js".into()],
                cwd: PathBuf::from("/cfg"),
                env: BTreeMap::new(),
                instances: 1,
                restart: RestartMode::Always,
                restart_delay: Duration::from_millis(100),
                max_restarts: 16,
                min_uptime: Duration::from_secs(1),
                errored_retry: Duration::from_secs(300),
                stop_signal: Signal::TERM,
                kill_timeout: Duration::from_secs(5),
                autostart: true,
                user: None,
                group: None,
                log: LogSettings::default(),
                memory: MemorySettings::default(),
                cron: None,
                ready: None,
                health: None,
                listen: Vec::new(),
            }]
        );
    }

    #[test]
    fn root_logs_to_var_log() {
        let config = validate_as(Path::new(FILE), "", None, 1, &is_dir, true).unwrap();
        assert_eq!(config.supervisor.log_dir, PathBuf::from("/var/log/sup"));
    }

    #[test]
    fn no_apps_is_fine() {
        let config = check("[supervisor]\nshutdown_timeout = \"1m\"\n").unwrap();
        assert!(config.apps.is_empty());
        assert_eq!(config.supervisor.shutdown_timeout, Duration::from_secs(60));
        assert_eq!(summary(&config), "ok: 0 apps, 0 instances");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_dir() {
        let config = check(
            "[supervisor]\nsocket = \"run/supd.sock\"\nlog_dir = \"./logs\"\n\
             [[app]]\nname = \"a\"\ncmd = \"x\"\ncwd = \"web\"\n\
             [[app]]\nname = \"b\"\ncmd = \"x\"\ncwd = \".\"\n\
             [[app]]\nname = \"c\"\ncmd = \"x\"\ncwd = \"/srv/app\"\n",
        )
        .unwrap();
        assert_eq!(
            config.supervisor.socket,
            Some(PathBuf::from("/cfg/run/supd.sock"))
        );
        assert_eq!(config.supervisor.log_dir, PathBuf::from("/cfg/logs"));
        let cwds: Vec<&Path> = config.apps.iter().map(|a| a.cwd.as_path()).collect();
        assert_eq!(
            cwds,
            [
                Path::new("/cfg/web"),
                Path::new("/cfg"),
                Path::new("/srv/app")
            ]
        );
    }

    #[test]
    fn every_field_is_read() {
        let a = app(r#"
[[app]]
name = "w.e_b-1"
cmd = ["node", "a b.js"]
cwd = "/tmp"
env = { A = "1", B = "" }
instances = "max"
restart = "on-failure"
restart_delay = "250ms"
max_restarts = 0
min_uptime = "1m30s"
errored_retry = "1h"
stop_signal = "int"
kill_timeout = "0"
autostart = false
user = "nobody"
group = "nogroup"
"#);
        assert_eq!(a.name, "w.e_b-1");
        assert_eq!(a.cmd, ["node", "a b.js"]);
        assert_eq!(a.cwd, PathBuf::from("/tmp"));
        assert_eq!(a.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(a.env.get("B").map(String::as_str), Some(""));
        assert_eq!(a.instances, 4);
        assert_eq!(a.restart, RestartMode::OnFailure);
        assert_eq!(a.restart_delay, Duration::from_millis(250));
        assert_eq!(a.max_restarts, 0);
        assert_eq!(a.min_uptime, Duration::from_secs(90));
        assert_eq!(a.errored_retry, Duration::from_secs(3600));
        assert_eq!(a.stop_signal, Signal(libc::SIGINT));
        assert_eq!(a.kill_timeout, Duration::ZERO);
        assert!(!a.autostart);
        assert_eq!(a.user.as_deref(), Some("nobody"));
        assert_eq!(a.group.as_deref(), Some("nogroup"));
    }

    #[test]
    fn group_without_user_and_never_restart() {
        let a =
            app("[[app]]\nname = \"j\"\ncmd = [\"j\"]\ngroup = \"staff\"\nrestart = \"never\"\n");
        assert_eq!(a.user, None);
        assert_eq!(a.group.as_deref(), Some("staff"));
        assert_eq!(a.restart, RestartMode::Never);
    }

    /// One error per case: the snippet, and the error as displayed after `FILE:`.
    #[test]
    fn each_error_kind() {
        let cases: &[(&str, &str)] = &[
            // unknown keys, with and without a suggestion
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nkill_timout = \"5s\"\n",
                "4:1: unknown field `kill_timout`, did you mean `kill_timeout`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory = \"5M\"\n",
                "4:1: unknown field `memory` (expected one of `name`, `cmd`, `cwd`, `env`, \
                 `instances`, `restart`, `restart_delay`, `max_restarts`, `min_uptime`, \
                 `errored_retry`, `stop_signal`, `kill_timeout`, `autostart`, `user`, \
                 `group`, `log_format`, `log_json`, `log_max_line`, `log_split`, `log_file`, \
                 `log_max_size`, `log_rotate`, `log_retain`, `log_compress`, `log_target`, \
                 `max_memory`, `memory_interval`, `memory_samples`, `memory_action`, \
                 `max_unavailable`, `cron_restart`, `cron_tz`, `cron_overlap`, `ready`, `health`, `listen`, `profile`)",
            ),
            (
                "[supervisor]\nsocked = \"/tmp/s\"\n",
                "2:1: unknown field `socked`, did you mean `socket`?",
            ),
            (
                "[supervisor]\nhtp = \"127.0.0.1:9615\"\n",
                "2:1: unknown field `htp`, did you mean `http`?",
            ),
            ("[default]\n", "1:2: unknown field `default`, did you mean `defaults`?"),
            (
                "[defaults]\nkill_timeot = \"1s\"\n",
                "2:1: unknown field `kill_timeot`, did you mean `kill_timeout`?",
            ),
            (
                "[defaults]\nname = \"x\"\n",
                "2:1: `name` cannot be set in [defaults]: every app names itself",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.prod]\ninstanses = 2\n",
                "5:1: unknown field `instanses`, did you mean `instances`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.prod]\nname = \"b\"\n",
                "5:1: `name` cannot be changed by a profile",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.prod.profile.x]\n",
                "4:19: profiles cannot be nested",
            ),
            // wrong types
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\ncwd = 5\n",
                "4:7: invalid type for `cwd`: found an integer (expected a path)",
            ),
            (
                "[[app]]\nname = 5\ncmd = \"x\"\n",
                "2:8: invalid type for `name`: found an integer (expected a string)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nkill_timeout = true\n",
                "4:16: invalid type for `kill_timeout`: found a boolean \
                 (expected a duration like \"500ms\", \"5s\", \"2m\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nkill_timeout = 5\n",
                "4:16: invalid `kill_timeout`: the number 5 has no unit; write a string like \
                 \"5s\" or \"5ms\" (expected a duration like \"500ms\", \"5s\", \"2m\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmin_uptime = \"5\"\n",
                "4:14: invalid `min_uptime`: duration `5` has no unit; add one, e.g. \"5s\" or \
                 \"5ms\" (expected a duration like \"500ms\", \"5s\", \"2m\")",
            ),
            (
                "[supervisor]\nshutdown_timeout = \"30 sec\"\n",
                "2:20: invalid `shutdown_timeout`: invalid duration `30 sec`: unexpected ' ' \
                 (expected a duration like \"500ms\", \"5s\", \"2m\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nautostart = \"yes\"\n",
                "4:13: invalid type for `autostart`: found a string (expected true or false)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nenv = [\"A=1\"]\n",
                "4:7: invalid type for `env`: found an array \
                 (expected a table of strings, like { NODE_ENV = \"production\" })",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nenv = { PORT = 3000 }\n",
                "4:16: invalid type for `env.PORT`: found an integer \
                 (expected a string (quote numbers and booleans))",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nenv = { \"A=B\" = \"1\" }\n",
                "4:9: invalid environment variable name \"A=B\" (expected a non-empty name without `=`)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_restarts = \"3\"\n",
                "4:16: invalid type for `max_restarts`: found a string (expected a non-negative integer)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = [\"x\", 1]\n",
                "3:13: invalid type for a `cmd` element: found an integer (expected a string)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = { x = 1 }\n",
                "3:7: invalid type for `cmd`: found a table (expected an array of strings, or a string)",
            ),
            ("[supervisor]\nlog_dir = \"\"\n", "2:11: `log_dir` is empty (expected a path)"),
            ("supervisor = 1\n", "1:14: invalid type for `supervisor`: found an integer (expected a table: [supervisor])"),
            // `app` of the wrong shape
            (
                "[app]\nname = \"a\"\n",
                "1:1: `app` must be an array of tables: write [[app]], not [app]",
            ),
            (
                "app = \"web\"\n",
                "1:7: invalid type for `app`: found a string (expected an array of tables: [[app]])",
            ),
            (
                "app = [1]\n",
                "1:8: invalid type for `app`: found an integer (expected a table like [[app]])",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nprofile = \"prod\"\n",
                "4:11: invalid type for `profile`: found a string (expected tables like [app.profile.NAME])",
            ),
            // required fields
            ("[[app]]\ncmd = \"x\"\n", "1:1: missing field `name`"),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\n[[app]]\n",
                "4:1: missing field `cmd`\n4:1: missing field `name`",
            ),
            ("[[app]]\nname = \"a\"\n", "1:1: missing field `cmd` in app `a`"),
            // names
            ("[[app]]\nname = \"\"\ncmd = \"x\"\n", "2:8: app name is empty"),
            (
                "[[app]]\nname = \"all\"\ncmd = \"x\"\n",
                "2:8: app name `all` is reserved: supctl uses it for every app",
            ),
            (
                "[[app]]\nname = \"web:1\"\ncmd = \"x\"\n",
                "2:8: app name `web:1` contains `:`, which supctl uses for `name:INDEX`",
            ),
            (
                "[[app]]\nname = \"wéb\"\ncmd = \"x\"\n",
                "2:8: app name `wéb` contains the character 'é' (expected only letters, digits, `_`, `.` and `-`)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\n\n[[app]]\nname = \"a\"\ncmd = \"y\"\n",
                "6:8: duplicate app name `a` (first defined on line 2)",
            ),
            // cmd
            ("[[app]]\nname = \"a\"\ncmd = []\n", "3:7: `cmd` is empty (expected an array of strings, or a string)"),
            ("[[app]]\nname = \"a\"\ncmd = \"  \"\n", "3:7: `cmd` is empty (expected an array of strings, or a string)"),
            (
                "[[app]]\nname = \"a\"\ncmd = [\"\", \"x\"]\n",
                "3:8: the program (first word of `cmd`) is empty",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"echo 'hi\"\n",
                "3:7: `cmd` cannot be split into words (an unclosed quote or a trailing backslash?)",
            ),
            // instances
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\ninstances = 0\n",
                "4:13: `instances` must be at least 1, found 0 (expected a positive integer or \"max\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\ninstances = -3\n",
                "4:13: `instances` must be at least 1, found -3 (expected a positive integer or \"max\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\ninstances = \"all\"\n",
                "4:13: invalid `instances` \"all\" (expected a positive integer or \"max\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\ninstances = 2.5\n",
                "4:13: invalid type for `instances`: found a float (expected a positive integer or \"max\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\ninstances = 99999999999999999999999999999999999999999\n",
                "4:13: `instances` is too large, found 99999999999999999999999999999999999999999 \
                 (expected a positive integer or \"max\")",
            ),
            // integers out of range
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_restarts = -1\n",
                "4:16: `max_restarts` cannot be negative, found -1 (expected a non-negative integer)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_restarts = 4294967296\n",
                "4:16: `max_restarts` is too large, found 4294967296 (at most 4294967295) \
                 (expected a non-negative integer)",
            ),
            // signals
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nstop_signal = \"SIGFOO\"\n",
                "4:15: unknown signal `SIGFOO` (expected a signal name like \"SIGTERM\", \
                 \"SIGINT\", \"SIGHUP\", \"SIGQUIT\", \"SIGUSR1\", \"SIGUSR2\")",
            ),
            // restart
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nrestart = \"on_failure\"\n",
                "4:11: unknown restart mode `on_failure`, did you mean `on-failure`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nrestart = \"sometimes\"\n",
                "4:11: unknown restart mode `sometimes` (expected one of `always`, `on-failure`, `never`)",
            ),
            // user / group
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nuser = \"\"\n",
                "4:8: `user` is empty (expected a user name or numeric uid)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\ngroup = \" \"\n",
                "4:9: `group` is empty (expected a group name or numeric gid)",
            ),
            // cwd that does not exist (as answered by `is_dir`)
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\ncwd = \"nope\"\n",
                "4:7: `cwd` `/cfg/nope` does not exist or is not a directory",
            ),
            // the socket path must fit in sun_path
            (
                &*Box::leak(format!("[supervisor]\nsocket = \"/{}\"\n", "s".repeat(107)).into_boxed_str()),
                &*Box::leak(format!(
                    "2:10: `socket` path `/{}` is too long for a Unix socket (108 bytes, at most 107)",
                    "s".repeat(107)
                ).into_boxed_str()),
            ),
            // log keys
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_format = \"jsno\"\n",
                "4:14: unknown `log_format` value `jsno`, did you mean `json`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_format = \"yaml\"\n",
                "4:14: unknown `log_format` value `yaml` (expected one of `text`, `json`)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_json = \"embd\"\n",
                "4:12: unknown `log_json` value `embd`, did you mean `embed`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_rotate = \"weekly\"\n",
                "4:14: unknown `log_rotate` value `weekly` (expected one of `daily`, `hourly`)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_rotate = \"dayly\"\n",
                "4:14: unknown `log_rotate` value `dayly`, did you mean `daily`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_target = \"stdot\"\n",
                "4:14: unknown `log_target` value `stdot`, did you mean `stdout`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_target = 1\n",
                "4:14: invalid type for `log_target`: found an integer \
                 (expected one of `file`, `stdout`, `both`)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_max_line = \"512\"\n",
                "4:16: `log_max_line` must be at least 1K, found 512B \
                 (expected a size like \"512M\", \"1G\", \"64K\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_max_line = \"17M\"\n",
                "4:16: `log_max_line` must be at most 16M, found 17M \
                 (expected a size like \"512M\", \"1G\", \"64K\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_max_size = \"50Q\"\n",
                "4:16: invalid `log_max_size`: invalid size `50Q`: unknown unit `Q` \
                 (units: B, K, M, G, T) (expected a size like \"512M\", \"1G\", \"64K\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_max_size = 0\n",
                "4:16: `log_max_size` must be at least 1K, found 0B \
                 (expected a size like \"512M\", \"1G\", \"64K\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_max_size = true\n",
                "4:16: invalid type for `log_max_size`: found a boolean \
                 (expected a size like \"512M\", \"1G\", \"64K\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_retain = -1\n",
                "4:14: `log_retain` cannot be negative, found -1 (expected a non-negative integer)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_retain = 1001\n",
                "4:14: `log_retain` is too large, found 1001 (at most 1000) \
                 (expected a non-negative integer)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_split = \"yes\"\n",
                "4:13: invalid type for `log_split`: found a string (expected true or false)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlog_file = \"\"\n",
                "4:12: `log_file` is empty (expected a path)",
            ),
            (
                "[defaults]\nlog_formt = \"json\"\n",
                "2:1: unknown field `log_formt`, did you mean `log_format`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.p]\nlog_taget = \"both\"\n",
                "5:1: unknown field `log_taget`, did you mean `log_target`?",
            ),
            // memory keys
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_memory = \"512K\"\n",
                "4:14: `max_memory` must be at least 1M, found 512K \
                 (expected a size like \"512M\", \"1G\", \"64K\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_memory = \"300X\"\n",
                "4:14: invalid `max_memory`: invalid size `300X`: unknown unit `X` \
                 (units: B, K, M, G, T) (expected a size like \"512M\", \"1G\", \"64K\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_memory = true\n",
                "4:14: invalid type for `max_memory`: found a boolean \
                 (expected a size like \"512M\", \"1G\", \"64K\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_memory = -5\n",
                "4:14: invalid `max_memory`: invalid size `-5` \
                 (expected a size like \"512M\", \"1G\", \"64K\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_interval = \"50ms\"\n",
                "4:19: `memory_interval` must be at least 100ms, found 50ms \
                 (expected a duration like \"500ms\", \"5s\", \"2m\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_interval = 0\n",
                "4:19: `memory_interval` must be at least 100ms, found 0 \
                 (expected a duration like \"500ms\", \"5s\", \"2m\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_interval = 5\n",
                "4:19: invalid `memory_interval`: the number 5 has no unit; write a string like \
                 \"5s\" or \"5ms\" (expected a duration like \"500ms\", \"5s\", \"2m\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_interval = \"1x\"\n",
                "4:19: invalid `memory_interval`: invalid duration `1x`: unknown unit `x` \
                 (units: ms, s, m, h, d) (expected a duration like \"500ms\", \"5s\", \"2m\")",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_samples = 0\n",
                "4:18: `memory_samples` must be at least 1, found 0 (expected a positive integer)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_samples = \"2\"\n",
                "4:18: invalid type for `memory_samples`: found a string (expected a positive integer)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_samples = 4294967296\n",
                "4:18: `memory_samples` is too large, found 4294967296 (at most 4294967295) \
                 (expected a positive integer)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_action = \"restrat\"\n",
                "4:17: unknown `memory_action` value `restrat`, did you mean `restart`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_action = \"Stop\"\n",
                "4:17: unknown `memory_action` value `Stop`, did you mean `stop`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_action = \"kill\"\n",
                "4:17: unknown `memory_action` value `kill` (expected one of `restart`, `stop`)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_action = 1\n",
                "4:17: invalid type for `memory_action`: found an integer \
                 (expected one of `restart`, `stop`)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_unavailable = -1\n",
                "4:19: `max_unavailable` must be at least 1, found -1 (expected a positive integer)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_unavailable = 1.5\n",
                "4:19: invalid type for `max_unavailable`: found a float (expected a positive integer)",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nmax_memmory = \"1G\"\n",
                "4:1: unknown field `max_memmory`, did you mean `max_memory`?",
            ),
            (
                "[defaults]\nmax_memroy = \"1G\"\n",
                "2:1: unknown field `max_memroy`, did you mean `max_memory`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.p]\nmemory_acton = \"stop\"\n",
                "5:1: unknown field `memory_acton`, did you mean `memory_action`?",
            ),
            (
                "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.p]\nmemory_samples = 0\n",
                "5:18: `memory_samples` must be at least 1, found 0 (expected a positive integer)",
            ),
            // TOML syntax
            (
                "[[app]]\nname = \"a\ncmd = \"x\"\n",
                "2:10: TOML syntax error: invalid basic string, expected `\"`",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(errors(text).join("\n"), *want, "\n--- input:\n{text}");
        }
    }

    #[test]
    fn every_error_of_a_file_is_reported_in_order() {
        let text = r#"
[supervisor]
shutdown_timeout = "30"
bogus = 1

[defaults]
kill_timeout = "5x"

[[app]]
name = "web"
cmd = []
instances = 0
restart = "on_failure"

[[app]]
name = "web"
cmd = "ok"
stop_signal = "SIGTREM"
cwd = "missing"

[[app]]
cmd = "x"
user = ""
"#;
        assert_eq!(
            errors(text),
            [
                "3:20: invalid `shutdown_timeout`: duration `30` has no unit; add one, e.g. \
                 \"30s\" or \"30ms\" (expected a duration like \"500ms\", \"5s\", \"2m\")",
                "4:1: unknown field `bogus` (expected one of `socket`, `log_dir`, `shutdown_timeout`, `http`)",
                "7:16: invalid `kill_timeout`: invalid duration `5x`: unknown unit `x` \
                 (units: ms, s, m, h, d) (expected a duration like \"500ms\", \"5s\", \"2m\")",
                "11:7: `cmd` is empty (expected an array of strings, or a string)",
                "12:13: `instances` must be at least 1, found 0 (expected a positive integer or \"max\")",
                "13:11: unknown restart mode `on_failure`, did you mean `on-failure`?",
                "16:8: duplicate app name `web` (first defined on line 10)",
                "18:15: unknown signal `SIGTREM`, did you mean `SIGTERM`? (expected a signal name \
                 like \"SIGTERM\", \"SIGINT\", \"SIGHUP\", \"SIGQUIT\", \"SIGUSR1\", \"SIGUSR2\")",
                "19:7: `cwd` `/cfg/missing` does not exist or is not a directory",
                "21:1: missing field `name`",
                "23:8: `user` is empty (expected a user name or numeric uid)",
            ]
        );
    }

    #[test]
    fn error_fields_carry_file_key_and_expected() {
        let errors = check("[[app]]\nname = \"web\"\ncmd = \"x\"\nkill_timeout = 5\n")
            .err()
            .unwrap();
        let e = &errors.0[0];
        assert_eq!(e.file, PathBuf::from(FILE));
        assert_eq!((e.line, e.col), (4, 16));
        assert_eq!(e.key.as_deref(), Some("app.web.kill_timeout"));
        assert_eq!(e.expected.as_deref(), Some(DURATION_EXPECTED));
    }

    #[test]
    fn invalid_values_in_unused_profiles_are_still_errors() {
        let text = "[[app]]\nname = \"a\"\ncmd = \"x\"\n[app.profile.prod]\ninstances = 0\n";
        assert_eq!(errors(text).len(), 1);
        assert_eq!(errors_with(text, Some("prod")).len(), 1);
    }

    const LAYERED: &str = r#"
[defaults]
kill_timeout = "9s"
max_restarts = 3
env = { TZ = "UTC", LEVEL = "info" }

[[app]]
name = "web"
cmd = ["node", "web.js"]
max_restarts = 5
env = { LEVEL = "debug", PORT = "3000" }

[app.profile.production]
instances = 4
cmd = "node --max-old-space-size=512 web.js"
env = { LEVEL = "warn", NODE_ENV = "production" }

[app.profile.staging]
instances = 2

[[app]]
name = "worker"
cmd = "worker"
"#;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_then_app_then_profile() {
        let plain = check_with(LAYERED, None).unwrap();
        let web = &plain.apps[0];
        assert_eq!(web.kill_timeout, Duration::from_secs(9), "from [defaults]");
        assert_eq!(web.max_restarts, 5, "the app's own value beats [defaults]");
        assert_eq!(web.instances, 1);
        assert_eq!(web.cmd, ["node", "web.js"]);
        assert_eq!(
            web.env,
            env(&[("LEVEL", "debug"), ("PORT", "3000"), ("TZ", "UTC")])
        );
        let worker = &plain.apps[1];
        assert_eq!(worker.max_restarts, 3);
        assert_eq!(worker.env, env(&[("LEVEL", "info"), ("TZ", "UTC")]));
        assert_eq!(summary(&plain), "ok: 2 apps, 2 instances");

        let prod = check_with(LAYERED, Some("production")).unwrap();
        let web = &prod.apps[0];
        assert_eq!(web.instances, 4);
        assert_eq!(web.cmd, ["node", "--max-old-space-size=512", "web.js"]);
        assert_eq!(web.max_restarts, 5);
        assert_eq!(
            web.env,
            env(&[
                ("LEVEL", "warn"),
                ("NODE_ENV", "production"),
                ("PORT", "3000"),
                ("TZ", "UTC"),
            ])
        );
        assert_eq!(
            prod.apps[1], plain.apps[1],
            "an app without the profile is unchanged"
        );
        assert_eq!(summary(&prod), "ok: 2 apps, 5 instances");

        let staging = check_with(LAYERED, Some("staging")).unwrap();
        assert_eq!(staging.apps[0].instances, 2);
        assert_eq!(staging.apps[0].env, plain.apps[0].env);
    }

    #[test]
    fn a_profile_can_fix_a_missing_cwd_only_when_selected() {
        let text = "[[app]]\nname = \"a\"\ncmd = \"x\"\ncwd = \"/srv/app\"\n\
                    [app.profile.dev]\ncwd = \"/home/dev/app\"\n";
        assert!(check_with(text, None).is_ok());
        assert_eq!(
            errors_with(text, Some("dev")),
            ["6:7: `cwd` `/home/dev/app` does not exist or is not a directory"]
        );
    }

    #[test]
    fn unknown_profile() {
        assert_eq!(
            errors_with(LAYERED, Some("prod")),
            ["13:14: profile `prod` is not defined by any app \
              (profiles are [app.profile.NAME] tables; this file defines `production`, `staging`)"]
        );
        assert_eq!(
            errors_with(LAYERED, Some("stagin")),
            [
                "13:14: profile `stagin` is not defined by any app, did you mean `staging`? \
              (profiles are [app.profile.NAME] tables; this file defines `production`, `staging`)"
            ]
        );
        assert_eq!(
            errors_with("[[app]]\nname = \"a\"\ncmd = \"x\"\n", Some("prod")),
            [
                "1:1: profile `prod` is not defined: this file has no profiles \
              (add an [app.profile.prod] table to an app)"
            ]
        );
    }

    #[test]
    fn summary_counts() {
        let config = check("[[app]]\nname = \"a\"\ncmd = \"x\"\n").unwrap();
        assert_eq!(summary(&config), "ok: 1 app, 1 instance");
    }

    /// A copy of the contract sample `foundation.toml`, which uses every foundation key.
    const FOUNDATION: &str = r#"# Every key of the foundation (DESIGN §3, §6).
[supervisor]
socket = "/tmp/sup-contract/supd.sock"
log_dir = "/tmp/sup-contract/logs"
shutdown_timeout = "30s"

[defaults]
kill_timeout = "5s"
restart_delay = "100ms"

[[app]]
name = "backend"
cmd = ["node", "examples/backend/server.js"]
cwd = "/"
env = { NODE_ENV = "development", PORT = "3000" }
instances = "max"
restart = "always"
restart_delay = "250ms"
max_restarts = 10
min_uptime = "1s"
stop_signal = "SIGINT"
kill_timeout = "3s"
autostart = true

[app.profile.production]
instances = 4
env = { NODE_ENV = "production" }

[[app]]
name = "studio"
cmd = "python3 -m http.server 8000"   # a string is split like a shell would, never run by one
restart = "on-failure"
errored_retry = "5m"

[[app]]
name = "jobs"
cmd = ["python3", "examples/jobs/worker.py"]
instances = 2
restart = "never"
autostart = false
user = "nobody"
group = "nogroup"
"#;

    #[test]
    fn the_contract_file_validates() {
        let config = validate_as(Path::new(FILE), FOUNDATION, None, 8, &is_dir, false).unwrap();
        assert_eq!(summary(&config), "ok: 3 apps, 11 instances");
        assert_eq!(
            config.supervisor,
            Supervisor {
                socket: Some(PathBuf::from("/tmp/sup-contract/supd.sock")),
                log_dir: PathBuf::from("/tmp/sup-contract/logs"),
                shutdown_timeout: Duration::from_secs(30),
                http: None,
            }
        );
        let [backend, studio, jobs] = &config.apps[..] else {
            panic!("three apps expected");
        };
        assert_eq!(backend.cwd, PathBuf::from("/"));
        assert_eq!(backend.instances, 8);
        assert_eq!(backend.restart_delay, Duration::from_millis(250));
        assert_eq!(backend.kill_timeout, Duration::from_secs(3));
        assert_eq!(backend.stop_signal, Signal(libc::SIGINT));
        assert_eq!(backend.max_restarts, 10);
        assert_eq!(studio.cmd, ["python3", "-m", "http.server", "8000"]);
        assert_eq!(studio.restart, RestartMode::OnFailure);
        assert_eq!(studio.restart_delay, Duration::from_millis(100));
        assert_eq!(studio.kill_timeout, Duration::from_secs(5));
        assert_eq!(studio.errored_retry, Duration::from_secs(300));
        assert_eq!(studio.cwd, PathBuf::from("/cfg"));
        assert_eq!(jobs.restart, RestartMode::Never);
        assert!(!jobs.autostart);
        assert_eq!(jobs.user.as_deref(), Some("nobody"));
        assert_eq!(jobs.group.as_deref(), Some("nogroup"));

        let prod = check_with(FOUNDATION, Some("production")).unwrap();
        assert_eq!(summary(&prod), "ok: 3 apps, 7 instances");
        assert_eq!(
            prod.apps[0].env,
            env(&[("NODE_ENV", "production"), ("PORT", "3000")])
        );
    }

    #[test]
    fn every_log_field_is_read_and_layered() {
        let text = r#"
[defaults]
log_format = "json"
log_max_size = "50M"
log_retain = 3
log_compress = true

[[app]]
name = "api"
cmd = "x"
log_json = "embed"
log_max_line = "1K"
log_split = true
log_file = "out/api.txt"
log_rotate = "hourly"
log_retain = 0
log_target = "both"

[app.profile.prod]
log_format = "text"
log_target = "stdout"
log_rotate = "daily"

[[app]]
name = "plain"
cmd = "x"
log_max_size = 2048
"#;
        let config = check(text).unwrap();
        let [api, plain] = &config.apps[..] else {
            panic!("two apps expected")
        };
        assert_eq!(
            api.log,
            LogSettings {
                format: LogFormat::Json,
                json: LogJson::Embed,
                max_line: 1024,
                split: true,
                file: Some(PathBuf::from("/cfg/out/api.txt")),
                max_size: Some(50 << 20),
                rotate: Some(LogRotate::Hourly),
                retain: 0,
                compress: true,
                target: Some(LogTarget::Both),
            }
        );
        assert_eq!(
            api.log.paths("api", &config.supervisor.log_dir),
            [
                PathBuf::from("/cfg/out/api.out.txt"),
                PathBuf::from("/cfg/out/api.err.txt")
            ]
        );
        assert_eq!(
            plain.log,
            LogSettings {
                format: LogFormat::Json,
                max_size: Some(2048),
                retain: 3,
                compress: true,
                ..LogSettings::default()
            }
        );
        assert_eq!(
            plain.log.paths("plain", &config.supervisor.log_dir),
            [PathBuf::from("/cfg/logs/plain.log")]
        );

        let prod = check_with(text, Some("prod")).unwrap();
        let api = &prod.apps[0].log;
        assert_eq!(api.format, LogFormat::Text);
        assert_eq!(api.target, Some(LogTarget::Stdout));
        assert_eq!(api.rotate, Some(LogRotate::Daily));
        assert_eq!(api.json, LogJson::Embed, "kept from the app");
    }

    #[test]
    fn log_defaults_and_targets() {
        let d = LogSettings::default();
        assert_eq!(d.format, LogFormat::Text);
        assert_eq!(d.json, LogJson::String);
        assert_eq!(d.max_line, 64 * 1024);
        assert!(!d.split && !d.compress);
        assert_eq!((d.file.as_ref(), d.max_size, d.rotate), (None, None, None));
        assert_eq!(d.retain, 10);
        assert_eq!(d.target_for(false), LogTarget::File);
        assert_eq!(d.target_for(true), LogTarget::Stdout);
        let both = LogSettings {
            target: Some(LogTarget::Both),
            ..LogSettings::default()
        };
        assert_eq!(both.target_for(true), LogTarget::Both);
        let file = LogSettings {
            target: Some(LogTarget::File),
            ..LogSettings::default()
        };
        assert_eq!(file.target_for(true), LogTarget::File);
    }

    #[test]
    fn split_names_without_an_extension() {
        let s = LogSettings {
            split: true,
            file: Some(PathBuf::from("/var/log/web")),
            ..LogSettings::default()
        };
        assert_eq!(
            s.paths("ignored", Path::new("/l")),
            [
                PathBuf::from("/var/log/web.out"),
                PathBuf::from("/var/log/web.err")
            ]
        );
        let s = LogSettings {
            split: true,
            ..LogSettings::default()
        };
        assert_eq!(
            s.paths("a.b", Path::new("/l")),
            [
                PathBuf::from("/l/a.b.out.log"),
                PathBuf::from("/l/a.b.err.log")
            ]
        );
    }

    #[test]
    fn two_apps_cannot_share_a_log_file() {
        let text = "[supervisor]\nlog_dir = \"/l\"\n\
                    [[app]]\nname = \"a\"\ncmd = \"x\"\n\
                    [[app]]\nname = \"b\"\ncmd = \"x\"\nlog_file = \"/l/a.log\"\n\
                    [[app]]\nname = \"a.out\"\ncmd = \"x\"\n\
                    [[app]]\nname = \"c\"\ncmd = \"x\"\nlog_file = \"/l/a.log\"\nlog_split = true\n";
        assert_eq!(
            errors(text),
            [
                "9:12: log file `/l/a.log` of app `b` is already the log file of app `a` \
                 (expected a `log_file` of its own for each app)",
                "16:12: log file `/l/a.out.log` of app `c` is already the log file of app `a.out` \
                 (expected a `log_file` of its own for each app)",
            ]
        );
        // A log_file in [defaults] would send every app to one file.
        assert_eq!(
            errors(
                "[defaults]\nlog_file = \"all.log\"\n\
                 [[app]]\nname = \"a\"\ncmd = \"x\"\n[[app]]\nname = \"b\"\ncmd = \"x\"\n"
            ),
            [
                "2:12: log file `/cfg/all.log` of app `b` is already the log file of app `a` \
              (expected a `log_file` of its own for each app)"
            ]
        );
    }

    /// A copy of the contract sample `logs.toml`, which uses every log key.
    const LOGS_CONTRACT: &str = r#"# Every key of the logs capability (issue "Structured, rotated, lossless logs").
[supervisor]
socket = "/tmp/sup-contract/supd.sock"
log_dir = "/tmp/sup-contract/logs"

[defaults]
log_format = "json"
log_max_size = "50M"
log_retain = 10
log_compress = true

[[app]]
name = "backend"
cmd = ["node", "server.js"]
log_json = "embed"
log_max_line = "64K"
log_rotate = "daily"
log_target = "both"

[[app]]
name = "studio"
cmd = ["python3", "app.py"]
log_format = "text"
log_split = true
log_rotate = "hourly"
log_target = "file"

[[app]]
name = "jobs"
cmd = ["python3", "worker.py"]
log_file = "/tmp/sup-contract/logs/jobs-custom.log"
log_target = "stdout"
"#;

    #[test]
    fn the_logs_contract_file_validates() {
        let config = check(LOGS_CONTRACT).unwrap();
        assert_eq!(summary(&config), "ok: 3 apps, 3 instances");
        let [backend, studio, jobs] = &config.apps[..] else {
            panic!("three apps expected");
        };
        let dir = &config.supervisor.log_dir;
        assert_eq!(backend.log.format, LogFormat::Json);
        assert_eq!(backend.log.json, LogJson::Embed);
        assert_eq!(backend.log.max_line, 64 * 1024);
        assert_eq!(backend.log.max_size, Some(50 << 20));
        assert_eq!(backend.log.rotate, Some(LogRotate::Daily));
        assert_eq!(backend.log.retain, 10);
        assert!(backend.log.compress);
        assert_eq!(backend.log.target, Some(LogTarget::Both));
        assert_eq!(
            backend.log.paths("backend", dir),
            [PathBuf::from("/tmp/sup-contract/logs/backend.log")]
        );
        assert_eq!(studio.log.format, LogFormat::Text);
        assert_eq!(studio.log.rotate, Some(LogRotate::Hourly));
        assert_eq!(studio.log.target, Some(LogTarget::File));
        assert_eq!(
            studio.log.paths("studio", dir),
            [
                PathBuf::from("/tmp/sup-contract/logs/studio.out.log"),
                PathBuf::from("/tmp/sup-contract/logs/studio.err.log")
            ]
        );
        assert_eq!(jobs.log.target, Some(LogTarget::Stdout));
        assert_eq!(jobs.log.json, LogJson::String);
        assert_eq!(
            jobs.log.paths("jobs", dir),
            [PathBuf::from("/tmp/sup-contract/logs/jobs-custom.log")]
        );
    }

    #[test]
    fn keys_tables_match_the_fields_read() {
        // Every APP_KEYS entry is accepted somewhere, and no other key is.
        for key in APP_KEYS {
            let text = format!("[[app]]\nname = \"a\"\ncmd = \"x\"\n{key} = true\n");
            let shown = check(&text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!shown.contains("unknown field"), "{key}: {shown}");
        }
        for key in SUPERVISOR_KEYS {
            let text = format!("[supervisor]\n{key} = true\n");
            let shown = check(&text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!shown.contains("unknown field"), "{key}: {shown}");
        }
    }

    #[test]
    fn probes_with_defaults_and_layers() {
        use crate::config::probe::{Check, HealthSettings, ReadySettings};
        let config = check(
            "[supervisor]\nhttp = \"127.0.0.1:9615\"\n\
             [defaults]\nhealth = { tcp = \"127.0.0.1:80\" }\n\
             [[app]]\nname = \"a\"\ncmd = \"x\"\nready = { notify = true }\n\
             [[app]]\nname = \"b\"\ncmd = \"x\"\n\
             ready = { exec = \"test -S /tmp/s\", timeout = \"5s\", interval = \"100ms\" }\n\
             health = { http = \"http://h:3000/up\", interval = \"5s\", timeout = \"2s\", failures = 2 }\n\
             [app.profile.p]\nready = { log = \"listening on \\\\d+\" }\n",
        )
        .unwrap();
        assert_eq!(
            config.supervisor.http,
            Some("127.0.0.1:9615".parse().unwrap())
        );
        let [a, b] = &config.apps[..] else { panic!() };
        assert_eq!(
            a.ready,
            Some(ReadySettings {
                check: Check::Notify,
                timeout: ReadySettings::DEFAULT_TIMEOUT,
                interval: ReadySettings::DEFAULT_INTERVAL,
            })
        );
        assert_eq!(
            a.health,
            Some(HealthSettings {
                check: Check::Tcp("127.0.0.1:80".into()),
                interval: HealthSettings::DEFAULT_INTERVAL,
                timeout: HealthSettings::DEFAULT_TIMEOUT,
                failures: HealthSettings::DEFAULT_FAILURES,
            })
        );
        let ready = b.ready.as_ref().unwrap();
        assert_eq!(
            ready.check,
            Check::Exec(vec!["test".into(), "-S".into(), "/tmp/s".into()])
        );
        assert_eq!(
            (ready.timeout, ready.interval),
            (Duration::from_secs(5), Duration::from_millis(100))
        );
        let health = b.health.as_ref().unwrap();
        assert_eq!(health.check.kind(), "http");
        assert_eq!(health.failures, 2);
        let profiled = check_with(
            "[[app]]\nname = \"b\"\ncmd = \"x\"\nready = { notify = true }\n\
             [app.profile.p]\nready = { log = \"listening on \\\\d+\" }\n",
            Some("p"),
        )
        .unwrap();
        assert_eq!(
            profiled.apps[0].ready.as_ref().map(|r| r.check.clone()),
            Some(Check::Log("listening on \\d+".into()))
        );
    }

    #[test]
    fn listen_addresses_and_their_errors() {
        use crate::config::listen::Listen;
        let config = check(
            "[[app]]\nname = \"a\"\ncmd = \"x\"\n\
             listen = [\"tcp://127.0.0.1:3000\", \"unix:///run/a.sock\"]\n",
        )
        .unwrap();
        assert_eq!(
            config.apps[0].listen,
            [
                Listen::Tcp("127.0.0.1:3000".parse().unwrap()),
                Listen::Unix("/run/a.sock".into())
            ]
        );
        assert_eq!(
            errors(
                "[[app]]\nname = \"a\"\ncmd = \"x\"\nlisten = [\"tcp://127.0.0.1:1\"]\n\
                 [[app]]\nname = \"b\"\ncmd = \"x\"\nlisten = [\"tcp://127.0.0.1:1\"]\n\
                 [[app]]\nname = \"c\"\ncmd = \"x\"\nlisten = [\"tcp://localhost:1\", 2, \"tcp://127.0.0.2:1\", \"tcp://127.0.0.2:1\"]\n\
                 [[app]]\nname = \"d\"\ncmd = \"x\"\nlisten = \"tcp://127.0.0.1:2\"\n"
            ),
            [
                "8:10: `tcp://127.0.0.1:1` of app `b` is already a `listen` address of app `a` (expected one app per listening address; its instances share it)",
                "12:11: invalid `listen` address: `tcp://localhost:1`: `localhost:1` is not an IP address and port (host names are not resolved) (expected an address like \"tcp://127.0.0.1:3000\", \"tcp://[::]:3000\" or \"unix:///run/app.sock\")",
                "12:32: invalid type for `listen`: found an integer (expected an address like \"tcp://127.0.0.1:3000\", \"tcp://[::]:3000\" or \"unix:///run/app.sock\")",
                "12:56: `tcp://127.0.0.2:1` is listed twice",
                "16:10: invalid type for `listen`: found a string (expected an array of addresses, each an address like \"tcp://127.0.0.1:3000\", \"tcp://[::]:3000\" or \"unix:///run/app.sock\")",
            ]
        );
    }

    #[test]
    fn probe_errors() {
        let cases = [
            ("ready = { }", "4:9: `ready` names no check"),
            (
                "ready = \"http://x\"",
                "4:9: invalid type for `ready`: found a string",
            ),
            (
                "ready = { notify = true, tcp = \"x:1\" }",
                "4:26: `ready` has both `notify` and `tcp`",
            ),
            (
                "ready = { notify = false }",
                "4:20: `notify = false` selects no check",
            ),
            (
                "ready = { tcp = \"x:1\", timout = \"1s\" }",
                "4:24: unknown field `timout`, did you mean `timeout`?",
            ),
            (
                "ready = { http = \"https://x/\" }",
                "4:18: invalid `http`: `https://x/`: https is not supported",
            ),
            (
                "ready = { log = \"(\" }",
                "4:17: invalid `log`: invalid regular expression: unclosed group",
            ),
            ("ready = { exec = [] }", "4:18: `exec` is empty"),
            (
                "ready = { tcp = \"x:1\", interval = \"1ms\" }",
                "4:35: `interval` must be at least 10ms",
            ),
            (
                "health = { log = \"x\" }",
                "4:12: `log` cannot be a `health` check",
            ),
            (
                "health = { notify = true }",
                "4:12: `notify` cannot be a `health` check",
            ),
            (
                "health = { tcp = \"6379\" }",
                "4:18: invalid `tcp`: `6379` has no port",
            ),
            (
                "health = { tcp = \"x:1\", failures = 0 }",
                "4:36: `failures` must be at least 1",
            ),
            (
                "ready = { tcp = \"x:1\", failures = 2 }",
                "4:24: unknown field `failures`",
            ),
        ];
        for (line, want) in cases {
            let text = format!("[[app]]\nname = \"a\"\ncmd = \"x\"\n{line}\n");
            let got = errors(&text);
            assert_eq!(got.len(), 1, "{line}: {got:?}");
            assert!(got[0].starts_with(want), "{line}: {got:?}");
        }
        let got = errors("[supervisor]\nhttp = \"localhost\"\n");
        assert!(
            got[0].starts_with("2:8: invalid `http` address `localhost`"),
            "{got:?}"
        );
    }

    #[test]
    fn memory_defaults() {
        let d = MemorySettings::default();
        assert_eq!(
            d,
            MemorySettings {
                max_memory: None,
                interval: Duration::from_secs(1),
                samples: 2,
                action: MemoryAction::Restart,
                max_unavailable: 1,
            }
        );
        let a = app("[[app]]\nname = \"a\"\ncmd = \"x\"\n");
        assert_eq!(a.memory, d);
    }

    #[test]
    fn every_memory_field_is_read_and_layered() {
        let text = r#"
[defaults]
max_memory = "1G"
memory_interval = "500ms"
memory_samples = 3

[[app]]
name = "api"
cmd = "x"
instances = 4
max_memory = "300M"
memory_action = "stop"
max_unavailable = 2

[app.profile.prod]
memory_interval = "2s"
memory_action = "restart"
max_unavailable = 3

[[app]]
name = "plain"
cmd = "x"
max_memory = 1048576
memory_interval = "100ms"
memory_samples = 1
"#;
        let config = check(text).unwrap();
        let [api, plain] = &config.apps[..] else {
            panic!("two apps expected")
        };
        assert_eq!(
            api.memory,
            MemorySettings {
                max_memory: Some(300 << 20),
                interval: Duration::from_millis(500),
                samples: 3,
                action: MemoryAction::Stop,
                max_unavailable: 2,
            }
        );
        assert_eq!(
            plain.memory,
            MemorySettings {
                max_memory: Some(1 << 20),
                interval: Duration::from_millis(100),
                samples: 1,
                ..MemorySettings::default()
            }
        );

        let prod = check_with(text, Some("prod")).unwrap();
        assert_eq!(
            prod.apps[0].memory,
            MemorySettings {
                max_memory: Some(300 << 20),
                interval: Duration::from_secs(2),
                samples: 3,
                action: MemoryAction::Restart,
                max_unavailable: 3,
            }
        );
        assert_eq!(prod.apps[1], config.apps[1], "no profile, unchanged");
    }

    #[test]
    fn every_memory_error_of_a_file_is_reported() {
        let text = "[defaults]\nmax_memory = \"1K\"\n\
                    [[app]]\nname = \"a\"\ncmd = \"x\"\nmemory_samples = 0\nmax_unavailable = 0\n\
                    [app.profile.p]\nmemory_action = \"restarts\"\n";
        assert_eq!(
            errors(text),
            [
                "2:14: `max_memory` must be at least 1M, found 1K \
                 (expected a size like \"512M\", \"1G\", \"64K\")",
                "6:18: `memory_samples` must be at least 1, found 0 (expected a positive integer)",
                "7:19: `max_unavailable` must be at least 1, found 0 (expected a positive integer)",
                "9:17: unknown `memory_action` value `restarts`, did you mean `restart`?",
            ]
        );
    }

    /// A copy of the contract sample `watch.toml`, which uses every watch key.
    const WATCH: &str = r#"# Every key of the watch capability (issue "Watch what runs").
[supervisor]
socket = "/tmp/sup-contract/supd.sock"
log_dir = "/tmp/sup-contract/logs"
http = "127.0.0.1:9615"

[[app]]
name = "backend"
cmd = ["node", "server.js"]
instances = 4
max_memory = "300M"
memory_interval = "1s"
memory_samples = 2
memory_action = "restart"
max_unavailable = 1
cron_restart = "0 3 * * *"
cron_tz = "Europe/Berlin"
ready = { http = "http://127.0.0.1:3000/health", timeout = "10s", interval = "200ms" }
health = { http = "http://127.0.0.1:3000/health", interval = "5s", timeout = "2s", failures = 3 }

[[app]]
name = "studio"
cmd = ["python3", "app.py"]
max_memory = "1G"
memory_action = "stop"
cron_restart = "*/30 * * * * *"
ready = { notify = true, timeout = "30s" }
health = { tcp = "127.0.0.1:8000", interval = "10s", timeout = "1s", failures = 2 }

[[app]]
name = "jobs"
cmd = ["python3", "worker.py"]
restart = "never"
cron_restart = "@hourly"
cron_overlap = "skip"
ready = { exec = ["test", "-S", "/tmp/jobs.sock"], timeout = "5s", interval = "100ms" }
health = { exec = ["python3", "-c", "pass"], interval = "30s", timeout = "5s", failures = 3 }

[[app]]
name = "tcpapp"
cmd = ["redis-server"]
cron_overlap = "restart"
ready = { tcp = "127.0.0.1:6379", timeout = "5s" }

[[app]]
name = "logready"
cmd = ["python3", "app.py"]
ready = { log = "listening on", timeout = "5s" }
"#;

    #[test]
    fn the_watch_contract_file_validates() {
        use crate::config::probe::Check;
        let config = check(WATCH).unwrap();
        assert_eq!(summary(&config), "ok: 5 apps, 8 instances");
        assert_eq!(
            config.supervisor.http,
            Some("127.0.0.1:9615".parse().unwrap())
        );
        let [backend, studio, jobs, tcpapp, logready] = &config.apps[..] else {
            panic!("five apps expected")
        };
        assert_eq!(
            backend.memory,
            MemorySettings {
                max_memory: Some(300 << 20),
                ..MemorySettings::default()
            }
        );
        assert_eq!(studio.memory.max_memory, Some(1 << 30));
        assert_eq!(studio.memory.action, MemoryAction::Stop);
        let ready = backend.ready.as_ref().unwrap();
        assert_eq!(ready.check.kind(), "http");
        assert_eq!(
            (ready.timeout, ready.interval),
            (Duration::from_secs(10), Duration::from_millis(200))
        );
        let health = backend.health.as_ref().unwrap();
        assert_eq!(
            (health.interval, health.timeout, health.failures),
            (Duration::from_secs(5), Duration::from_secs(2), 3)
        );
        assert_eq!(
            studio.ready.as_ref().map(|r| &r.check),
            Some(&Check::Notify)
        );
        assert_eq!(
            studio.health.as_ref().unwrap().check,
            Check::Tcp("127.0.0.1:8000".into())
        );
        assert_eq!(jobs.ready.as_ref().unwrap().check.kind(), "exec");
        assert_eq!(jobs.cron.as_ref().unwrap().overlap, CronOverlap::Skip);
        assert_eq!(tcpapp.cron, None, "cron_overlap alone schedules nothing");
        assert_eq!(
            logready.ready.as_ref().unwrap().check,
            Check::Log("listening on".into())
        );
    }

    #[test]
    fn cron_keys_are_read_and_layered() {
        let text = r#"
[defaults]
cron_tz = "Europe/Berlin"

[[app]]
name = "nightly"
cmd = "x"
cron_restart = "0 3 * * *"

[[app]]
name = "job"
cmd = "x"
restart = "never"
cron_restart = "*/30 * * * * *"
cron_tz = "UTC"
cron_overlap = "restart"
[app.profile.prod]
cron_restart = "@midnight"
cron_overlap = "skip"
"#;
        let config = check(text).unwrap();
        assert_eq!(
            config.apps[0].cron,
            Some(CronSettings {
                expr: "0 3 * * *".parse().unwrap(),
                tz: Some("Europe/Berlin".parse().unwrap()),
                overlap: CronOverlap::Skip,
            })
        );
        assert_eq!(
            config.apps[1].cron,
            Some(CronSettings {
                expr: "*/30 * * * * *".parse().unwrap(),
                tz: Some("UTC".parse().unwrap()),
                overlap: CronOverlap::Restart,
            })
        );
        let prod = check_with(text, Some("prod")).unwrap();
        assert_eq!(
            prod.apps[1].cron,
            Some(CronSettings {
                expr: "@midnight".parse().unwrap(),
                tz: Some("UTC".parse().unwrap()),
                overlap: CronOverlap::Skip,
            })
        );
        assert_eq!(app("[[app]]\nname = \"a\"\ncmd = \"x\"\n").cron, None);
    }

    #[test]
    fn every_cron_error_of_a_file_is_reported() {
        let text = "[defaults]\ncron_overlap = \"skp\"\n\
                    [[app]]\nname = \"a\"\ncmd = \"x\"\ncron_restart = \"0 3 * *\"\n\
                    cron_tz = \"Europe/Berln\"\n\
                    [[app]]\nname = \"b\"\ncmd = \"x\"\ncron_restart = \"0 25 * * *\"\n\
                    cron_tz = \"Mars/Base\"\n\
                    [[app]]\nname = \"c\"\ncmd = \"x\"\ncron_restart = 5\ncron_overlap = \"never\"\n";
        assert_eq!(
            errors(text),
            [
                "2:16: unknown `cron_overlap` value `skp`, did you mean `skip`?",
                "6:16: invalid `cron_restart`: invalid cron expression `0 3 * *`: Invalid pattern: \
                 Pattern must have 5 or 6 fields when years are disallowed. \
                 (expected a cron expression: 5 fields like `0 3 * * *` (03:00 daily), \
                 6 with seconds first like `*/30 * * * * *`, or `@hourly`, `@daily`, \
                 `@midnight`, `@weekly`, `@monthly`, `@yearly`)",
                "7:11: invalid `cron_tz`: unknown time zone `Europe/Berln`, did you mean \
                 `Europe/Berlin`?",
                "11:16: invalid `cron_restart`: invalid cron expression `0 25 * * *`: \
                 Component error: Number out of bounds. \
                 (expected a cron expression: 5 fields like `0 3 * * *` (03:00 daily), \
                 6 with seconds first like `*/30 * * * * *`, or `@hourly`, `@daily`, \
                 `@midnight`, `@weekly`, `@monthly`, `@yearly`)",
                "12:11: invalid `cron_tz`: unknown time zone `Mars/Base` \
                 (expected an IANA time zone name like `Europe/Berlin` or `UTC`)",
                "16:16: invalid type for `cron_restart`: found an integer \
                 (expected a cron expression: 5 fields like `0 3 * * *` (03:00 daily), \
                 6 with seconds first like `*/30 * * * * *`, or `@hourly`, `@daily`, \
                 `@midnight`, `@weekly`, `@monthly`, `@yearly`)",
                "17:16: unknown `cron_overlap` value `never` (expected one of `skip`, `restart`)",
            ]
        );
    }

    #[test]
    fn cron_tz_and_overlap_without_cron_restart_mean_nothing() {
        let text = "[defaults]\ncron_tz = \"UTC\"\ncron_overlap = \"restart\"\n\
                    [[app]]\nname = \"a\"\ncmd = \"x\"\ncron_restart = \"@daily\"\n\
                    [[app]]\nname = \"b\"\ncmd = \"x\"\n";
        let config = check(text).unwrap();
        assert_eq!(
            config.apps[0]
                .cron
                .as_ref()
                .unwrap()
                .tz
                .as_ref()
                .map(CronZone::name),
            Some("UTC")
        );
        assert_eq!(config.apps[1].cron, None);
        // An invalid `cron_restart` is reported once.
        assert_eq!(
            errors("[[app]]\nname = \"a\"\ncmd = \"x\"\ncron_restart = \"x\"\ncron_tz = \"UTC\"\n")
                .len(),
            1
        );
    }

    /// The cron keys of the watch contract sample (`ready` and `health`, not built, left
    /// out).
    const WATCH_CRON: &str = r#"
[[app]]
name = "backend"
cmd = ["node", "server.js"]
cron_restart = "0 3 * * *"
cron_tz = "Europe/Berlin"

[[app]]
name = "studio"
cmd = ["python3", "app.py"]
cron_restart = "*/30 * * * * *"

[[app]]
name = "jobs"
cmd = ["python3", "worker.py"]
restart = "never"
cron_restart = "@hourly"
cron_overlap = "skip"
"#;

    #[test]
    fn the_watch_contract_cron_keys_validate() {
        let config = check(WATCH_CRON).unwrap();
        let crons: Vec<_> = config
            .apps
            .iter()
            .map(|a| a.cron.clone().unwrap())
            .collect();
        assert_eq!(
            crons[0].tz.as_ref().map(CronZone::name),
            Some("Europe/Berlin")
        );
        assert_eq!(crons[1].expr.as_str(), "*/30 * * * * *");
        assert_eq!(crons[1].tz, None);
        assert_eq!(crons[2].overlap, CronOverlap::Skip);
    }
}
