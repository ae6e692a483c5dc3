//! Integration tests: the real `supd` and `supctl` binaries, real processes, real signals.
//! One file per capability; shared helpers in `support/`.

mod support;

mod config;
mod control;
mod lifecycle;
mod logs;
mod pid1;
mod repo;
mod watch;
