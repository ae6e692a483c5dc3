//! The `listen` sockets: bound when supd starts, before any app, and kept for supd's whole
//! life, so a restarting instance never closes its port and connections queue in the
//! kernel while no instance accepts. `apply` binds new addresses before anything changes
//! and closes supd's copy of the ones no app lists any more (the instances that inherited
//! them keep theirs until they exit).

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use crate::config::listen::Listen;
use crate::config::Config;
use crate::core::apply::Plan;
use crate::core::State;
use crate::process::inherited::Inherited;

/// Bind every app's `listen` addresses, or take the socket of one `inherited` from the
/// supd before a re-exec; the first failure names the address and app.
pub(super) fn bind_all(
    config: &Config,
    mut inherited: Option<&mut Inherited>,
) -> Result<HashMap<usize, Vec<OwnedFd>>, String> {
    let mut all = HashMap::new();
    for (position, app) in config.apps.iter().enumerate() {
        if app.listen.is_empty() {
            continue;
        }
        let mut fds = Vec::with_capacity(app.listen.len());
        for addr in &app.listen {
            let kept = inherited.as_deref_mut().and_then(|i| match addr {
                Listen::Tcp(a) => i.take_tcp(*a),
                Listen::Unix(path) => i.take_unix(path),
            });
            let fd = match kept {
                Some(fd) => fd,
                None => bind(addr)
                    .map_err(|e| format!("cannot listen on {addr} for {}: {e}", app.name))?,
            };
            tracing::info!("{}: listening on {addr}, shared by its instances", app.name);
            fds.push(fd);
        }
        all.insert(position, fds);
    }
    Ok(all)
}

fn bind(addr: &Listen) -> std::io::Result<OwnedFd> {
    match addr {
        // std sets SO_REUSEADDR, so a restarted supd rebinds despite TIME_WAIT.
        Listen::Tcp(a) => Ok(std::net::TcpListener::bind(a)?.into()),
        Listen::Unix(path) => {
            if std::fs::symlink_metadata(path).is_ok() {
                // A socket file left by a supd that died is stale; a live one is in use.
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "something is listening there already",
                    ));
                }
                std::fs::remove_file(path)?;
            }
            Ok(std::os::unix::net::UnixListener::bind(path)?.into())
        }
    }
}

/// At exit: remove the socket files of `unix://` addresses.
pub(super) fn remove_unix_sockets(state: &State) {
    for app in &state.apps {
        for addr in &app.config.listen {
            if let Listen::Unix(path) = addr {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The sockets of each app by position, and the `unix://` paths no app uses any more.
pub(super) type Rebound = (HashMap<usize, Vec<OwnedFd>>, Vec<std::path::PathBuf>);

/// The `listen` sockets once `plan` is applied, by app position: an address some app
/// has bound already is shared (a duplicate of supd's fd), a new one is bound now.
/// Fails on the first address that cannot be bound; then nothing changed (what was bound
/// here is closed again). Also returns the `unix://` paths no app listens on any more.
pub(super) fn rebind(
    current: &HashMap<usize, Vec<OwnedFd>>,
    state: &State,
    plan: &Plan,
) -> Result<Rebound, String> {
    let bound: Vec<(&Listen, &OwnedFd)> = current
        .iter()
        .flat_map(|(&position, fds)| state.apps[position].config.listen.iter().zip(fds))
        .collect();
    let planned: HashMap<usize, &crate::config::App> = plan
        .apps
        .iter()
        .filter_map(|a| Some((a.position, &plan.config.apps[a.file_index?])))
        .collect();
    let removed: Vec<usize> = plan
        .apps
        .iter()
        .filter(|a| a.file_index.is_none())
        .map(|a| a.position)
        .collect();
    let mut next = HashMap::new();
    let mut wanted: Vec<&Listen> = Vec::new();
    let positions = (0..state.apps.len()).chain(state.apps.len()..state.apps.len() + planned.len());
    for position in positions {
        let app = match planned.get(&position) {
            Some(app) => *app,
            None if removed.contains(&position) => continue,
            None => match state.apps.get(position) {
                Some(a) if !a.removed => &a.config,
                _ => continue,
            },
        };
        if app.listen.is_empty() {
            continue;
        }
        let mut fds = Vec::with_capacity(app.listen.len());
        for addr in &app.listen {
            let fd = match bound.iter().find(|(a, _)| *a == addr) {
                Some((_, fd)) => fd.try_clone(),
                None => {
                    let fd = bind(addr);
                    if fd.is_ok() {
                        tracing::info!(
                            "{}: listening on {addr}, shared by its instances",
                            app.name
                        );
                    }
                    fd
                }
            }
            .map_err(|e| format!("cannot listen on {addr} for {}: {e}", app.name))?;
            fds.push(fd);
            wanted.push(addr);
        }
        next.insert(position, fds);
    }
    let gone = bound
        .iter()
        .filter(|(addr, _)| !wanted.contains(addr))
        .filter_map(|(addr, _)| match addr {
            Listen::Unix(path) => Some(path.clone()),
            Listen::Tcp(_) => None,
        })
        .collect();
    Ok((next, gone))
}
