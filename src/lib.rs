//! sup: a process supervisor. `supd` keeps the apps of an `ecosystem.toml` running;
//! `supctl` controls it over a Unix socket.
//!
//! Module map (DESIGN §1):
//! - [`config`]: `ecosystem.toml` → validated [`config::Config`], every error with file:line:col.
//! - [`core`]: the pure lifecycle, `handle(&mut State, Event, now) -> Vec<Effect>`.
//! - [`runtime`]: the one task that owns the state and performs the effects.
//! - [`process`]: fork/exec, the reaper, signalling process groups.
//! - [`logs`]: pipe readers, line framing, formatting, the writer thread.
//! - [`control`]: the control protocol, its server in supd and its client in supctl.
//! - [`schedule`]: `cron_restart` expressions and their next fire time; decides nothing.
//! - [`monitor`]: /proc sampling of each instance's process tree (memory, CPU); decides nothing.
//! - [`cluster`]: readiness plumbing: sd_notify sockets, HTTP and TCP probes.
//! - [`http`]: the optional `/metrics`, `/healthz` and `/readyz` endpoint.
#![warn(missing_docs)]

pub mod cluster;
pub mod config;
pub mod control;
pub mod core;
pub mod http;
pub mod logs;
pub mod monitor;
pub mod process;
pub mod runtime;
pub mod schedule;
