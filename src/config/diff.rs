//! A pure diff of two configs (placeholder until the per-key diff lands).

use super::{App, Config};

/// What must happen for a changed key to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A new process.
    Restart,
    /// A different number of instances.
    Scale,
    /// Nothing: supd uses the new value from now on.
    Live,
}

/// One changed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: String,
    /// Its old value.
    pub old: Option<String>,
    /// Its new value.
    pub new: Option<String>,
    /// What it needs.
    pub needs: Needs,
}

/// How an app differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    /// New in the file.
    Added,
    /// Gone from the file.
    Removed,
    /// In both, with changes.
    Changed,
}

/// One app that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDiff {
    /// Its name.
    pub name: String,
    /// How.
    pub kind: DiffKind,
    /// Its changed keys.
    pub changes: Vec<Change>,
}

/// Everything that differs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diff {
    /// Apps.
    pub apps: Vec<AppDiff>,
    /// `[supervisor]` keys.
    pub supervisor: Vec<Change>,
    /// Changes that cannot be made while supd runs.
    pub refused: Vec<String>,
}

impl Diff {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty() && self.supervisor.is_empty()
    }
}

impl AppDiff {
    /// A change needs new processes.
    pub fn needs_restart(&self) -> bool {
        self.changes.iter().any(|c| c.needs == Needs::Restart)
    }
}

/// Compare one app's old and new settings.
pub fn app_changes(old: &App, new: &App) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut push = |key: &str, o: String, n: String, needs| {
        if o != n {
            changes.push(Change {
                key: key.into(),
                old: Some(o),
                new: Some(n),
                needs,
            });
        }
    };
    push(
        "cmd",
        format!("{:?}", old.cmd),
        format!("{:?}", new.cmd),
        Needs::Restart,
    );
    push(
        "env",
        format!("{:?}", old.env),
        format!("{:?}", new.env),
        Needs::Restart,
    );
    push(
        "cwd",
        format!("{:?}", old.cwd),
        format!("{:?}", new.cwd),
        Needs::Restart,
    );
    push(
        "listen",
        format!("{:?}", old.listen),
        format!("{:?}", new.listen),
        Needs::Restart,
    );
    push(
        "instances",
        old.instances.to_string(),
        new.instances.to_string(),
        Needs::Scale,
    );
    let (mut a, mut b) = (old.clone(), new.clone());
    for app in [&mut a, &mut b] {
        app.cmd.clear();
        app.env.clear();
        app.cwd.clear();
        app.listen.clear();
        app.instances = 0;
    }
    push("settings", format!("{a:?}"), format!("{b:?}"), Needs::Live);
    changes
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
            Some(before) => {
                let changes = app_changes(before, app);
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
    let mut refused = Vec::new();
    if old.supervisor.socket != new.supervisor.socket {
        refused.push("`[supervisor] socket` cannot change while supd runs".into());
    }
    Diff {
        apps,
        supervisor: Vec::new(),
        refused,
    }
}
