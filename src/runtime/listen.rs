//! The `listen` sockets: bound once when supd starts, before any app, and kept for supd's
//! whole life, so a restarting instance never closes its port and connections queue in
//! the kernel while no instance accepts.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use crate::config::listen::Listen;
use crate::config::Config;
use crate::core::State;

/// Bind every app's `listen` addresses; the first failure names the address and app.
pub(super) fn bind_all(config: &Config) -> Result<HashMap<usize, Vec<OwnedFd>>, String> {
    let mut all = HashMap::new();
    for (position, app) in config.apps.iter().enumerate() {
        if app.listen.is_empty() {
            continue;
        }
        let mut fds = Vec::with_capacity(app.listen.len());
        for addr in &app.listen {
            let fd =
                bind(addr).map_err(|e| format!("cannot listen on {addr} for {}: {e}", app.name))?;
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
