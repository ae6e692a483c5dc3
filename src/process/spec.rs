//! [`SpawnSpec`]: everything needed to start one instance, derived from the config. Pure.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::App;

/// What to run for one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct SpawnSpec {
    /// `app:index`, for errors.
    pub label: String,
    /// The argv; `argv[0]` is looked up in the child's `PATH` unless it contains a `/`.
    pub argv: Vec<String>,
    /// The complete environment of the child.
    pub env: BTreeMap<String, String>,
    /// Its working directory.
    pub cwd: PathBuf,
    /// Run as this user (name or numeric uid).
    pub user: Option<String>,
    /// With this primary group (name or numeric gid).
    pub group: Option<String>,
    /// Listening sockets to pass as fds 3, 4, ... with `LISTEN_FDS`, `LISTEN_PID` and
    /// `LISTEN_FDNAMES` (systemd's socket activation). supd's own fds; set by the runtime.
    pub listen_fds: Vec<std::os::fd::RawFd>,
}

impl SpawnSpec {
    /// The spec for instance `index` of `app`, on top of supd's own environment `base`.
    ///
    /// Every instance gets `SUP_APP` and `SUP_INSTANCE`, and `NODE_APP_INSTANCE` as PM2
    /// sets it, so cluster-aware Node code keeps working. An app with exactly one
    /// `tcp://` listen address also gets `PORT` (which many apps read), unless its own
    /// `env` sets one.
    pub fn new(
        app: &App,
        index: u32,
        base: impl IntoIterator<Item = (String, String)>,
    ) -> SpawnSpec {
        let mut env: BTreeMap<String, String> = base.into_iter().collect();
        // supd's own socket override must not leak into children that run supctl.
        env.remove("NOTIFY_SOCKET");
        env.remove("LISTEN_FDS");
        env.remove("LISTEN_PID");
        env.remove("LISTEN_FDNAMES");
        env.extend(app.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.insert("SUP_APP".into(), app.name.clone());
        env.insert("SUP_INSTANCE".into(), index.to_string());
        env.insert("NODE_APP_INSTANCE".into(), index.to_string());
        let mut tcp = app.listen.iter().filter_map(|l| match l {
            crate::config::listen::Listen::Tcp(addr) => Some(addr.port()),
            crate::config::listen::Listen::Unix(_) => None,
        });
        if let (Some(port), None, false) = (tcp.next(), tcp.next(), app.env.contains_key("PORT")) {
            env.insert("PORT".into(), port.to_string());
        }
        SpawnSpec {
            label: format!("{}:{}", app.name, index),
            argv: app.cmd.clone(),
            env,
            cwd: app.cwd.clone(),
            user: app.user.clone(),
            group: app.group.clone(),
            listen_fds: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_layers_base_app_and_sup_variables() {
        let mut app = crate::config::test_app("web");
        app.env.insert("PORT".into(), "3000".into());
        app.env.insert("HOME".into(), "/srv".into());
        let base = [
            ("HOME".to_string(), "/root".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
            ("LISTEN_FDS".to_string(), "2".to_string()),
        ];
        let spec = SpawnSpec::new(&app, 2, base);
        assert_eq!(spec.env["HOME"], "/srv");
        assert_eq!(spec.env["PATH"], "/bin");
        assert_eq!(spec.env["PORT"], "3000");
        assert_eq!(spec.env["SUP_APP"], "web");
        assert_eq!(spec.env["SUP_INSTANCE"], "2");
        assert_eq!(spec.env["NODE_APP_INSTANCE"], "2");
        assert!(!spec.env.contains_key("LISTEN_FDS"));
        assert_eq!(spec.label, "web:2");
    }

    #[test]
    fn one_tcp_listen_address_sets_port_unless_the_app_does() {
        let listen = |s: &str| crate::config::listen::parse(s).expect("listen");
        let mut app = crate::config::test_app("web");
        app.listen = vec![listen("tcp://127.0.0.1:3100"), listen("unix:///run/a.sock")];
        let base = [("PORT".to_string(), "80".to_string())];
        assert_eq!(SpawnSpec::new(&app, 0, base.clone()).env["PORT"], "3100");
        app.listen.push(listen("tcp://127.0.0.1:3101"));
        assert_eq!(
            SpawnSpec::new(&app, 0, base).env["PORT"],
            "80",
            "two: none set"
        );
        app.listen.truncate(1);
        app.env.insert("PORT".into(), "9000".into());
        assert_eq!(SpawnSpec::new(&app, 0, []).env["PORT"], "9000");
    }
}
