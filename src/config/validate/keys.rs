//! The app keys, each declared once, in the table at the end of this file: the value a
//! table holds for it, how that value is read, how a higher layer combines with a lower
//! one, where the value goes in the [`App`], how it is shown and what a change of it
//! needs. The list of known keys (and so the "did you mean" suggestions), the [`Layer`] of
//! one table, reading a table into it, overlaying layers, applying the merged layer to an
//! app and comparing two apps ([`crate::config::diff`]) all come from that table.
//!
//! Adding a key: a row in the table, a reader in `values` if no existing one fits, the
//! field in [`App`] with its built-in default (see `Walker::build`), a case in the diff's
//! `EVERY_KEY` test, and a test.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use super::listen::ListenSetting;
use super::logs::{MAX_LOG_MAX_LINE, MAX_LOG_RETAIN, MIN_LOG_MAX_LINE, MIN_LOG_MAX_SIZE};
use super::{Value, Walker};
use crate::config::diff::{self, Change, Needs};
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
///     show: |app| -> Option<String>,  // or `vars: |app| -> &BTreeMap<String, String>`
///     needs: Live,                    // what a change takes: Restart, Scale or Live
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
///
/// `show` gives the key's value in the built [`App`] as an operator writes it (`None`:
/// not set), for [`crate::config::diff`], which compares apps by these; `vars` instead
/// compares a table variable by variable (`env.NAME`). `needs` says what a change of the
/// key takes to apply ([`Needs`]).
macro_rules! app_keys {
    ($(
        $key:ident: $ty:ty {
            read: $read:expr,
            $(overlay: $overlay:ident,)?
            $(into: $into:expr,)?
            $(show: $show:expr,)?
            $(vars: $vars:expr,)?
            needs: $needs:ident,
        }
    )*) => {
        /// Every app key whose value differs between `old` and `new`, in the order of the
        /// table.
        pub(crate) fn app_changes(old: &App, new: &App) -> Vec<Change> {
            let mut changes = Vec::new();
            $(
                app_keys!(
                    @compare changes, old, new, stringify!($key), Needs::$needs,
                    $(show $show)? $(vars $vars)?
                );
            )*
            changes
        }

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
    (@compare $out:ident, $old:ident, $new:ident, $key:expr, $needs:expr, show $show:expr) => {{
        let show: fn(&App) -> Option<String> = $show;
        diff::compare(&mut $out, $key, $needs, show($old), show($new));
    }};
    (@compare $out:ident, $old:ident, $new:ident, $key:expr, $needs:expr, vars $vars:expr) => {{
        let vars: fn(&App) -> &BTreeMap<String, String> = $vars;
        diff::compare_vars(&mut $out, $key, $needs, vars($old), vars($new));
    }};
}

app_keys! {
    cmd: Written<Vec<String>> {
        read: |w, v, key, field| Some(Written(w.cmd(v, key, field))),
        show: |app| Some(diff::list(&app.cmd)),
        needs: Restart,
    }
    cwd: PathAt {
        read: |w, v, key, field| w.path_at(v, key, field),
        show: |app| Some(diff::path(&app.cwd)),
        needs: Restart,
    }
    env: Env {
        read: |w, v, key, _| w.env(v, key),
        overlay: merge,
        into: |app, env| app.env = env,
        vars: |app| &app.env,
        needs: Restart,
    }
    env_file: Vec<PathAt> {
        read: |w, v, key, field| w.env_files(v, key, field),
        show: |app| diff::nonempty_list(&app.env_file.iter().map(|p| p.display()).collect::<Vec<_>>()),
        needs: Live,
    }
    instances: Instances {
        read: |w, v, key, _| w.instances(v, key),
        show: |app| Some(app.instances.to_string()),
        needs: Scale,
    }
    restart: RestartMode {
        read: |w, v, key, _| w.restart(v, key),
        into: |app, mode| app.restart = mode,
        show: |app| Some(diff::choice(&app.restart)),
        needs: Live,
    }
    restart_delay: Duration {
        read: |w, v, key, field| w.duration(v, key, field),
        into: |app, d| app.restart_delay = d,
        show: |app| Some(diff::duration(app.restart_delay)),
        needs: Live,
    }
    max_restarts: u32 {
        read: |w, v, key, field| w.count(v, key, field, u32::MAX),
        into: |app, n| app.max_restarts = n,
        show: |app| Some(app.max_restarts.to_string()),
        needs: Live,
    }
    min_uptime: Duration {
        read: |w, v, key, field| w.duration(v, key, field),
        into: |app, d| app.min_uptime = d,
        show: |app| Some(diff::duration(app.min_uptime)),
        needs: Live,
    }
    errored_retry: Duration {
        read: |w, v, key, field| w.duration(v, key, field),
        into: |app, d| app.errored_retry = d,
        show: |app| Some(diff::duration(app.errored_retry)),
        needs: Live,
    }
    stop_signal: Signal {
        read: |w, v, key, field| w.signal(v, key, field),
        into: |app, signal| app.stop_signal = signal,
        show: |app| Some(diff::signal(app.stop_signal)),
        needs: Live,
    }
    kill_timeout: Duration {
        read: |w, v, key, field| w.duration(v, key, field),
        into: |app, d| app.kill_timeout = d,
        show: |app| Some(diff::duration(app.kill_timeout)),
        needs: Live,
    }
    autostart: bool {
        read: |w, v, key, field| w.boolean(v, key, field),
        into: |app, b| app.autostart = b,
        show: |app| Some(app.autostart.to_string()),
        needs: Live,
    }
    user: String {
        read: |w, v, key, field| w.account(v, key, field, "a user name or numeric uid"),
        into: |app, user| app.user = Some(user),
        show: |app| app.user.clone(),
        needs: Restart,
    }
    group: String {
        read: |w, v, key, field| w.account(v, key, field, "a group name or numeric gid"),
        into: |app, group| app.group = Some(group),
        show: |app| app.group.clone(),
        needs: Restart,
    }
    log_format: LogFormat {
        read: |w, v, key, field| match w.choice(v, key, field, LOG_FORMAT_VALUES)? {
            "json" => Some(LogFormat::Json),
            _ => Some(LogFormat::Text),
        },
        into: |app, format| app.log.format = format,
        show: |app| Some(diff::choice(&app.log.format)),
        needs: Live,
    }
    log_json: LogJson {
        read: |w, v, key, field| match w.choice(v, key, field, LOG_JSON_VALUES)? {
            "embed" => Some(LogJson::Embed),
            _ => Some(LogJson::String),
        },
        into: |app, json| app.log.json = json,
        show: |app| Some(diff::choice(&app.log.json)),
        needs: Live,
    }
    log_max_line: usize {
        read: |w, v, key, field| {
            let n = w.size(v, key, field, MIN_LOG_MAX_LINE, Some(MAX_LOG_MAX_LINE))?;
            usize::try_from(n).ok()
        },
        into: |app, n| app.log.max_line = n,
        show: |app| Some(diff::size(app.log.max_line as u64)),
        needs: Live,
    }
    log_split: bool {
        read: |w, v, key, field| w.boolean(v, key, field),
        into: |app, b| app.log.split = b,
        show: |app| Some(app.log.split.to_string()),
        needs: Live,
    }
    log_file: PathAt {
        read: |w, v, key, field| w.path_at(v, key, field),
        into: |app, file| app.log.file = Some(file.path),
        show: |app| app.log.file.as_deref().map(diff::path),
        needs: Live,
    }
    log_max_size: u64 {
        read: |w, v, key, field| w.size(v, key, field, MIN_LOG_MAX_SIZE, None),
        into: |app, n| app.log.max_size = Some(n),
        show: |app| app.log.max_size.map(diff::size),
        needs: Live,
    }
    log_rotate: LogRotate {
        read: |w, v, key, field| match w.choice(v, key, field, LOG_ROTATE_VALUES)? {
            "hourly" => Some(LogRotate::Hourly),
            _ => Some(LogRotate::Daily),
        },
        into: |app, rotate| app.log.rotate = Some(rotate),
        show: |app| app.log.rotate.as_ref().map(diff::choice),
        needs: Live,
    }
    log_retain: u32 {
        read: |w, v, key, field| w.count(v, key, field, MAX_LOG_RETAIN),
        into: |app, n| app.log.retain = n,
        show: |app| Some(app.log.retain.to_string()),
        needs: Live,
    }
    log_compress: bool {
        read: |w, v, key, field| w.boolean(v, key, field),
        into: |app, b| app.log.compress = b,
        show: |app| Some(app.log.compress.to_string()),
        needs: Live,
    }
    log_target: LogTarget {
        read: |w, v, key, field| match w.choice(v, key, field, LOG_TARGET_VALUES)? {
            "stdout" => Some(LogTarget::Stdout),
            "both" => Some(LogTarget::Both),
            _ => Some(LogTarget::File),
        },
        into: |app, target| app.log.target = Some(target),
        show: |app| app.log.target.as_ref().map(diff::choice),
        needs: Live,
    }
    max_memory: u64 {
        read: |w, v, key, field| w.size(v, key, field, MemorySettings::MIN_MAX_MEMORY, None),
        into: |app, n| app.memory.max_memory = Some(n),
        show: |app| app.memory.max_memory.map(diff::size),
        needs: Live,
    }
    memory_interval: Duration {
        read: |w, v, key, field| {
            w.duration_at_least(v, key, field, MemorySettings::MIN_INTERVAL)
        },
        into: |app, d| app.memory.interval = d,
        show: |app| Some(diff::duration(app.memory.interval)),
        needs: Live,
    }
    memory_samples: u32 {
        read: |w, v, key, field| w.positive(v, key, field),
        into: |app, n| app.memory.samples = n,
        show: |app| Some(app.memory.samples.to_string()),
        needs: Live,
    }
    memory_action: MemoryAction {
        read: |w, v, key, field| match w.choice(v, key, field, MEMORY_ACTION_VALUES)? {
            "stop" => Some(MemoryAction::Stop),
            _ => Some(MemoryAction::Restart),
        },
        into: |app, action| app.memory.action = action,
        show: |app| Some(diff::choice(&app.memory.action)),
        needs: Live,
    }
    max_unavailable: u32 {
        read: |w, v, key, field| w.positive(v, key, field),
        into: |app, n| app.memory.max_unavailable = n,
        show: |app| Some(app.memory.max_unavailable.to_string()),
        needs: Live,
    }
    max_surge: u32 {
        read: |w, v, key, field| w.count(v, key, field, u32::MAX),
        into: |app, n| app.max_surge = n,
        show: |app| Some(app.max_surge.to_string()),
        needs: Live,
    }
    cron_restart: Written<CronExpr> {
        read: |w, v, key, field| Some(Written(w.cron_expr(v, key, field))),
        show: |app| app.cron.as_ref().map(|c| c.expr.as_str().to_string()),
        needs: Live,
    }
    cron_tz: Written<CronZone> {
        read: |w, v, key, field| Some(Written(w.time_zone(v, key, field))),
        show: |app| app.cron.as_ref().and_then(|c| c.tz.as_ref()).map(|z| z.name().to_string()),
        needs: Live,
    }
    cron_overlap: Written<CronOverlap> {
        read: |w, v, key, field| {
            let overlap = w.choice(v, key, field, CRON_OVERLAP_VALUES).map(|c| match c {
                "restart" => CronOverlap::Restart,
                _ => CronOverlap::Skip,
            });
            Some(Written(overlap))
        },
        show: |app| Some(diff::choice(&app.cron.as_ref().map_or(CronOverlap::Skip, |c| c.overlap))),
        needs: Live,
    }
    ready: Written<ReadySettings> {
        read: |w, v, key, _| Some(Written(w.ready(v, key))),
        into: |app, ready| app.ready = ready.0,
        show: |app| app.ready.as_ref().map(diff::ready),
        needs: Live,
    }
    health: Written<HealthSettings> {
        read: |w, v, key, _| Some(Written(w.health(v, key))),
        into: |app, health| app.health = health.0,
        show: |app| app.health.as_ref().map(diff::health),
        needs: Live,
    }
    listen: ListenSetting {
        read: |w, v, key, _| Some(w.listen(v, key)),
        into: |app, listen| app.listen = listen.value.unwrap_or_default(),
        show: |app| diff::nonempty_list(&app.listen),
        needs: Restart,
    }
}
