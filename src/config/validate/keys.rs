//! The app keys, each declared once, in the table at the end of this file: the value a
//! table holds for it, how that value is read, how a higher layer combines with a lower
//! one, and where the value goes in the [`App`]. The list of known keys (and so the "did
//! you mean" suggestions), the [`Layer`] of one table, reading a table into it, overlaying
//! layers and applying the merged layer to an app all come from that table.
//!
//! Adding a key: a row in the table, a reader in `values` if no existing one fits, the
//! field in [`App`] with its built-in default (see `Walker::build`), and a test.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use super::listen::ListenSetting;
use super::logs::{MAX_LOG_MAX_LINE, MAX_LOG_RETAIN, MIN_LOG_MAX_LINE, MIN_LOG_MAX_SIZE};
use super::{Value, Walker};
use crate::config::raw::{
    CRON_OVERLAP_VALUES, LOG_FORMAT_VALUES, LOG_JSON_VALUES, LOG_ROTATE_VALUES, LOG_TARGET_VALUES,
    MEMORY_ACTION_VALUES,
};
use crate::config::units::Instances;
use crate::config::{App, CronExpr, CronOverlap, CronZone, HealthSettings, ReadySettings};
use crate::config::{LogFormat, LogJson, LogRotate, LogTarget, MemoryAction, MemorySettings};
use crate::config::{RestartMode, Signal};

/// A key that was written: `None` inside when its value was invalid (already reported),
/// so that an invalid value in one layer still overrides a valid one below it, and a
/// required key written wrong is not reported missing as well.
#[derive(Debug, Clone)]
pub(super) struct Written<T>(pub(super) Option<T>);

/// A path and where it was written, so that what is found wrong with it later (a `cwd`
/// that does not exist, a `log_file` of two apps) is reported at the layer that named it.
#[derive(Debug, Clone)]
pub(super) struct PathAt {
    pub(super) path: PathBuf,
    pub(super) span: Range<usize>,
    pub(super) key: String,
}

/// The variables of an `env` table.
pub(super) type Env = BTreeMap<String, String>;

/// How a layer combines with the one below for every key but `env`: a key set in `top`
/// replaces the one below.
fn replace<T: Clone>(low: &mut Option<T>, top: &Option<T>) {
    if top.is_some() {
        low.clone_from(top);
    }
}

/// How `env` tables combine: merged variable by variable, `top` winning.
fn merge(low: &mut Option<Env>, top: &Option<Env>) {
    if let Some(top) = top {
        low.get_or_insert_with(Env::new)
            .extend(top.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// Declares the app keys. Each row is
///
/// ```text
/// key: Type {
///     read: |walker, value, key, field| -> Option<Type>,
///     overlay: merge,                 // optional; default `replace`
///     into: |app, value: Type| ...,   // optional, see below
/// }
/// ```
///
/// `key` is the key in the file and the [`Layer`] field, which holds `Some` once a table
/// sets the key (and its value was valid, unless `Type` keeps invalid ones as
/// [`Written`]). `read` gets the path of the key for messages (`app.web.kill_timeout`)
/// and its name (`kill_timeout`). `into` writes the merged value into the app, whose
/// fields start at their built-in defaults. A key without `into` is taken by
/// `Walker::build` itself: it is required (`cmd`), checked against the app (`cwd`),
/// needs the number of CPUs (`instances`) or combines with other keys (`cron_*`).
macro_rules! app_keys {
    ($(
        $key:ident: $ty:ty {
            read: $read:expr,
            $(overlay: $overlay:ident,)?
            $(into: $into:expr,)?
        }
    )*) => {
        /// The keys of an `[[app]]` table: `name`, the rows of the table in order, `profile`.
        pub const APP_KEYS: &[&str] = &["name", $(stringify!($key),)* "profile"];

        /// The keys of `[defaults]` and `[app.profile.NAME]`: those of an app but `name`
        /// and `profile`.
        pub(super) const LAYER_KEYS: &[&str] = &[$(stringify!($key)),*];

        /// The app keys one table sets; `None` = not set there.
        #[derive(Debug, Clone, Default)]
        pub(super) struct Layer {
            $(pub(super) $key: Option<$ty>,)*
        }

        impl Layer {
            /// Read `value` as the key `field` of this table (`key` is its path, for
            /// messages). False when `field` is no key of a layer.
            // The closures of the rows are called where they are written, by design.
            #[allow(clippy::redundant_closure_call)]
            pub(super) fn read(
                &mut self,
                w: &mut Walker<'_>,
                field: &str,
                value: &Value<'_>,
                key: &str,
            ) -> bool {
                match field {
                    $(stringify!($key) => {
                        let read: fn(&mut Walker<'_>, &Value<'_>, &str, &str) -> Option<$ty> =
                            $read;
                        self.$key = read(w, value, key, field);
                    })*
                    _ => return false,
                }
                true
            }

            /// Put `top` over `self`, key by key.
            pub(super) fn overlay(&mut self, top: &Layer) {
                $(
                    let how = app_keys!(@overlay $($overlay)?);
                    how(&mut self.$key, &top.$key);
                )*
            }

            /// Write the keys set here that have an `into` into `app`.
            pub(super) fn apply(self, app: &mut App) {
                $($(
                    if let Some(value) = self.$key {
                        let into: fn(&mut App, $ty) = $into;
                        into(app, value);
                    }
                )?)*
            }
        }
    };
    (@overlay) => { replace };
    (@overlay $how:ident) => { $how };
}

app_keys! {
    cmd: Written<Vec<String>> {
        read: |w, v, key, field| Some(Written(w.cmd(v, key, field))),
    }
    cwd: PathAt {
        read: |w, v, key, field| w.path_at(v, key, field),
    }
    env: Env {
        read: |w, v, key, _| w.env(v, key),
        overlay: merge,
        into: |app, env| app.env = env,
    }
    env_file: Vec<PathAt> {
        read: |w, v, key, field| w.env_files(v, key, field),
    }
    instances: Instances {
        read: |w, v, key, _| w.instances(v, key),
    }
    restart: RestartMode {
        read: |w, v, key, _| w.restart(v, key),
        into: |app, mode| app.restart = mode,
    }
    restart_delay: Duration {
        read: |w, v, key, field| w.duration(v, key, field),
        into: |app, d| app.restart_delay = d,
    }
    max_restarts: u32 {
        read: |w, v, key, field| w.count(v, key, field, u32::MAX),
        into: |app, n| app.max_restarts = n,
    }
    min_uptime: Duration {
        read: |w, v, key, field| w.duration(v, key, field),
        into: |app, d| app.min_uptime = d,
    }
    errored_retry: Duration {
        read: |w, v, key, field| w.duration(v, key, field),
        into: |app, d| app.errored_retry = d,
    }
    stop_signal: Signal {
        read: |w, v, key, field| w.signal(v, key, field),
        into: |app, signal| app.stop_signal = signal,
    }
    kill_timeout: Duration {
        read: |w, v, key, field| w.duration(v, key, field),
        into: |app, d| app.kill_timeout = d,
    }
    autostart: bool {
        read: |w, v, key, field| w.boolean(v, key, field),
        into: |app, b| app.autostart = b,
    }
    user: String {
        read: |w, v, key, field| w.account(v, key, field, "a user name or numeric uid"),
        into: |app, user| app.user = Some(user),
    }
    group: String {
        read: |w, v, key, field| w.account(v, key, field, "a group name or numeric gid"),
        into: |app, group| app.group = Some(group),
    }
    log_format: LogFormat {
        read: |w, v, key, field| match w.choice(v, key, field, LOG_FORMAT_VALUES)? {
            "json" => Some(LogFormat::Json),
            _ => Some(LogFormat::Text),
        },
        into: |app, format| app.log.format = format,
    }
    log_json: LogJson {
        read: |w, v, key, field| match w.choice(v, key, field, LOG_JSON_VALUES)? {
            "embed" => Some(LogJson::Embed),
            _ => Some(LogJson::String),
        },
        into: |app, json| app.log.json = json,
    }
    log_max_line: usize {
        read: |w, v, key, field| {
            let n = w.size(v, key, field, MIN_LOG_MAX_LINE, Some(MAX_LOG_MAX_LINE))?;
            usize::try_from(n).ok()
        },
        into: |app, n| app.log.max_line = n,
    }
    log_split: bool {
        read: |w, v, key, field| w.boolean(v, key, field),
        into: |app, b| app.log.split = b,
    }
    log_file: PathAt {
        read: |w, v, key, field| w.path_at(v, key, field),
        into: |app, file| app.log.file = Some(file.path),
    }
    log_max_size: u64 {
        read: |w, v, key, field| w.size(v, key, field, MIN_LOG_MAX_SIZE, None),
        into: |app, n| app.log.max_size = Some(n),
    }
    log_rotate: LogRotate {
        read: |w, v, key, field| match w.choice(v, key, field, LOG_ROTATE_VALUES)? {
            "hourly" => Some(LogRotate::Hourly),
            _ => Some(LogRotate::Daily),
        },
        into: |app, rotate| app.log.rotate = Some(rotate),
    }
    log_retain: u32 {
        read: |w, v, key, field| w.count(v, key, field, MAX_LOG_RETAIN),
        into: |app, n| app.log.retain = n,
    }
    log_compress: bool {
        read: |w, v, key, field| w.boolean(v, key, field),
        into: |app, b| app.log.compress = b,
    }
    log_target: LogTarget {
        read: |w, v, key, field| match w.choice(v, key, field, LOG_TARGET_VALUES)? {
            "stdout" => Some(LogTarget::Stdout),
            "both" => Some(LogTarget::Both),
            _ => Some(LogTarget::File),
        },
        into: |app, target| app.log.target = Some(target),
    }
    max_memory: u64 {
        read: |w, v, key, field| w.size(v, key, field, MemorySettings::MIN_MAX_MEMORY, None),
        into: |app, n| app.memory.max_memory = Some(n),
    }
    memory_interval: Duration {
        read: |w, v, key, field| {
            w.duration_at_least(v, key, field, MemorySettings::MIN_INTERVAL)
        },
        into: |app, d| app.memory.interval = d,
    }
    memory_samples: u32 {
        read: |w, v, key, field| w.positive(v, key, field),
        into: |app, n| app.memory.samples = n,
    }
    memory_action: MemoryAction {
        read: |w, v, key, field| match w.choice(v, key, field, MEMORY_ACTION_VALUES)? {
            "stop" => Some(MemoryAction::Stop),
            _ => Some(MemoryAction::Restart),
        },
        into: |app, action| app.memory.action = action,
    }
    max_unavailable: u32 {
        read: |w, v, key, field| w.positive(v, key, field),
        into: |app, n| app.memory.max_unavailable = n,
    }
    max_surge: u32 {
        read: |w, v, key, field| w.count(v, key, field, u32::MAX),
        into: |app, n| app.max_surge = n,
    }
    cron_restart: Written<CronExpr> {
        read: |w, v, key, field| Some(Written(w.cron_expr(v, key, field))),
    }
    cron_tz: Written<CronZone> {
        read: |w, v, key, field| Some(Written(w.time_zone(v, key, field))),
    }
    cron_overlap: Written<CronOverlap> {
        read: |w, v, key, field| {
            let overlap = w.choice(v, key, field, CRON_OVERLAP_VALUES).map(|c| match c {
                "restart" => CronOverlap::Restart,
                _ => CronOverlap::Skip,
            });
            Some(Written(overlap))
        },
    }
    ready: Written<ReadySettings> {
        read: |w, v, key, _| Some(Written(w.ready(v, key))),
        into: |app, ready| app.ready = ready.0,
    }
    health: Written<HealthSettings> {
        read: |w, v, key, _| Some(Written(w.health(v, key))),
        into: |app, health| app.health = health.0,
    }
    listen: ListenSetting {
        read: |w, v, key, _| Some(w.listen(v, key)),
        into: |app, listen| app.listen = listen.value.unwrap_or_default(),
    }
}
