//! Validation: the spanned TOML tree plus an optional profile becomes a typed [`Config`],
//! with every problem of the file collected as a [`super::ConfigError`].
//!
//! Layering, lowest first: built-in defaults, `[defaults]`, the app's own `[[app]]` keys,
//! then the selected `[app.profile.NAME]`. A higher layer replaces a key; `env` tables are
//! merged key by key instead, the higher layer winning per variable.
//!
//! Reads no file itself. [`validate`] asks the effective user id (for the default
//! `log_dir`) and, for a relative config path, the current directory; whether a `cwd`
//! exists and what an `env_file` holds are asked through the caller's [`Files`], so tests
//! need no file system.
//!
//! This file walks the top level; the sections have their own files: `keys` (every app
//! key, declared once), `app` (an app's tables into layers, the merged layers into an
//! [`super::App`]), `supervisor`, `logs`, `env_file` (the env files read and merged),
//! `cron`, `probe` (`ready`, `health`, `http`) and `listen`, with `values` holding one
//! reader per kind of value (durations, sizes, paths, choices, ...).

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::DeValue;
use toml::Spanned;

use super::raw::{self, Sink, Value, TOP_KEYS};
use super::{Config, ConfigErrors};

mod app;
mod cron;
mod env_file;
mod keys;
mod listen;
mod logs;
mod probe;
mod supervisor;
mod values;

pub use app::{
    DEFAULT_ERRORED_RETRY, DEFAULT_KILL_TIMEOUT, DEFAULT_MAX_RESTARTS, DEFAULT_MAX_SURGE,
    DEFAULT_MIN_UPTIME, DEFAULT_RESTART_DELAY,
};
pub(crate) use keys::app_changes;
pub use keys::APP_KEYS;
pub use logs::{MAX_LOG_MAX_LINE, MAX_LOG_RETAIN, MIN_LOG_MAX_LINE, MIN_LOG_MAX_SIZE};
pub use probe::{HEALTH_KEYS, READY_KEYS};
pub use supervisor::{DEFAULT_SHUTDOWN_TIMEOUT, ROOT_LOG_DIR};

use app::Section;
use keys::Layer;

/// What validation asks of the file system, so that it can run on none.
#[derive(Clone, Copy)]
pub struct Files<'a> {
    /// Whether a `cwd` exists and is a directory.
    pub is_dir: &'a dyn Fn(&Path) -> bool,
    /// The bytes of an `env_file`.
    pub read: &'a dyn Fn(&Path) -> std::io::Result<Vec<u8>>,
}

impl std::fmt::Debug for Files<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Files")
    }
}

/// Validate the text of the config file `path` with `profile` applied, resolving
/// `instances = "max"` to `cpus`. `is_dir` answers whether a `cwd` exists; no env file
/// can be read (an `env_file` is reported unreadable): [`validate_with`] reads them.
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
    let read = |_: &Path| {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "env files are not read here",
        ))
    };
    validate_with(
        path,
        text,
        profile,
        cpus,
        &Files {
            is_dir,
            read: &read,
        },
    )
}

/// [`validate`] with env files read through `files.read`: their variables go under each
/// app's `env`, and their errors are reported at their own `ENVFILE:LINE:COL`.
pub fn validate_with(
    path: &Path,
    text: &str,
    profile: Option<&str>,
    cpus: u32,
    files: &Files<'_>,
) -> Result<Config, ConfigErrors> {
    let root = nix::unistd::geteuid().is_root();
    validate_as(path, text, profile, cpus, files, root)
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
    files: &Files<'_>,
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
        if let Some(built) = w.build(app, merged, cpus, files) {
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

/// Walks the tree, recording errors in its sink.
struct Walker<'t> {
    sink: Sink<'t>,
    /// The config file's directory, against which relative paths resolve.
    dir: PathBuf,
}

type Key<'i> = Spanned<Cow<'i, str>>;

#[cfg(test)]
mod tests;
