//! Integration tests: the real `supd` and `supctl` binaries, real processes, real signals.
//! One file per capability; shared helpers in `support/`.

mod support;

mod config;
mod control;
mod lifecycle;
mod live;
mod logs;
mod packaging;
mod pid1;
mod probes;
mod reexec;
mod repo;
mod watch;
