//! Processes: what to run ([`spec`]), forking and exec'ing it ([`mod@spawn`]), the single
//! reaper ([`reaper`]) and signalling process groups ([`kill`]). Nothing here knows the
//! lifecycle; the runtime calls these and turns the results into events.

pub mod inherited;
pub mod kill;
pub mod leftovers;
pub mod reaper;
pub mod spawn;
pub mod spec;
mod staging;

pub use spawn::{spawn, SpawnError, Spawned};
pub use spec::SpawnSpec;
