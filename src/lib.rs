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
//! - [`probe`]: readiness plumbing: sd_notify sockets, HTTP and TCP probes.
//! - [`monitor`]: /proc sampling of each instance's process tree (memory, CPU); decides nothing.
//! - [`http`]: the optional `/metrics`, `/healthz` and `/readyz` endpoint.
//! - [`human`]: words for people (durations, how a process ended), used on both sides.
#![warn(missing_docs)]

pub mod config;
pub mod control;
pub mod core;
pub mod http;
pub mod human;
pub mod logs;
pub mod monitor;
pub mod probe;
pub mod process;
pub mod runtime;
pub mod schedule;
