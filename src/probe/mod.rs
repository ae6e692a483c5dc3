//! Readiness plumbing: the sd_notify sockets ([`notify`]) and the HTTP and TCP probes
//! ([`ready`]). Reports through its own small types; decides nothing (the core does).
//! Exec probes are processes, so the runtime spawns and reaps them like instances.

pub mod notify;
pub mod ready;
