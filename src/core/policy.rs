//! Restart policy: what follows the end of a run, and how long to wait. Pure functions of
//! the app's settings, the run's outcome and a deterministic jitter seed.

use std::time::Duration;

use super::state::ExitStatus;
use crate::config::{App as AppConfig, RestartMode};

/// The longest automatic backoff (unless `restart_delay` itself is longer).
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// The smallest step of a repeated backoff: with `restart_delay = 0` a crash loop would
/// otherwise spin as fast as fork allows until `max_restarts`.
pub const BACKOFF_FLOOR: Duration = Duration::from_millis(10);

/// How a run ended, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The process ran and was reaped.
    Exited(ExitStatus),
    /// It never ran: fork or exec failed.
    SpawnFailed,
    /// It did not pass its `ready` check within `ready.timeout` and was stopped.
    NotReady,
}

/// What the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Spawn again after `delay` (zero: at once).
    Restart {
        /// How long to wait.
        delay: Duration,
    },
    /// Too many failures in a row: `errored`, tried again after `retry` if any.
    GiveUp {
        /// `errored_retry`, or `None` when the app is never restarted.
        retry: Option<Duration>,
    },
    /// Done, by policy (`restart = never`, or `on-failure` after a clean exit).
    Finish,
}

/// Decide after a run. `failures` is the count of consecutive short runs before this one;
/// the returned count includes this run (or is 0 when the run lasted `min_uptime`).
pub fn after_run(
    app: &AppConfig,
    failures: u32,
    end: RunEnd,
    uptime: Duration,
    seed: u64,
) -> (u32, Decision) {
    let failed = match end {
        RunEnd::Exited(status) => !status.success(),
        RunEnd::SpawnFailed | RunEnd::NotReady => true,
    };
    // A start that never succeeded is a failure however long it took.
    let started = matches!(end, RunEnd::Exited(_));
    let failures = if uptime >= app.min_uptime && started {
        0
    } else {
        failures.saturating_add(1)
    };
    let restart = match app.restart {
        RestartMode::Always => true,
        RestartMode::OnFailure => failed,
        RestartMode::Never => false,
    };
    if !restart {
        let decision = if !started {
            Decision::GiveUp { retry: None }
        } else {
            Decision::Finish
        };
        return (failures, decision);
    }
    if failures > app.max_restarts {
        return (
            failures,
            Decision::GiveUp {
                retry: Some(app.errored_retry),
            },
        );
    }
    let delay = backoff(app.restart_delay, failures, seed);
    (failures, Decision::Restart { delay })
}

/// The wait before restart number `failures` of a row: `base` for the first (and after a
/// good run), then doubling from `max(base, 10ms)` with ±10% jitter, capped at 30s.
pub fn backoff(base: Duration, failures: u32, seed: u64) -> Duration {
    if failures <= 1 {
        return base;
    }
    let step = base.max(BACKOFF_FLOOR);
    let cap = BACKOFF_CAP.max(base);
    let exp = (failures - 1).min(20);
    let raw = step.saturating_mul(1u32 << exp).min(cap);
    // ±10%, so that instances that crashed together (a database went away) come back
    // spread out rather than in one herd.
    let permille = 900 + (mix(seed) % 201);
    (raw * permille as u32 / 1000).min(cap)
}

/// A seed for [`backoff`]'s jitter: differs per slot and per attempt, but is reproducible.
pub fn jitter_seed(app: usize, index: u32, failures: u32) -> u64 {
    mix(((app as u64) << 40) ^ ((index as u64) << 20) ^ failures as u64)
}

/// Consecutive samples over the memory limit, after one more sample of `rss` bytes: a
/// single sample under the limit resets the count, so one spike is forgiven only if the
/// next sample is back under.
pub fn over_limit(count: u32, rss: u64, limit: Option<u64>) -> u32 {
    match limit {
        Some(limit) if rss > limit => count.saturating_add(1),
        _ => 0,
    }
}

/// splitmix64's finaliser: a cheap, well-spread hash.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_app;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn first_restart_waits_exactly_the_base_delay() {
        assert_eq!(backoff(MS(0), 1, 7), MS(0));
        assert_eq!(backoff(MS(100), 1, 7), MS(100));
        assert_eq!(backoff(MS(100), 0, 7), MS(100));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for seed in 0..50 {
            let d2 = backoff(MS(100), 2, seed);
            assert!(d2 >= MS(180) && d2 <= MS(220), "{d2:?}");
            let d3 = backoff(MS(100), 3, seed);
            assert!(d3 >= MS(360) && d3 <= MS(440), "{d3:?}");
            assert!(backoff(MS(100), 40, seed) <= BACKOFF_CAP);
        }
        // A zero base still backs off from the floor on a repeated failure.
        let d = backoff(MS(0), 2, 1);
        assert!(d >= MS(18) && d <= MS(22), "{d:?}");
        // A base above the cap is honoured.
        let d = backoff(Duration::from_secs(60), 5, 3);
        assert!(
            d >= Duration::from_secs(54) && d <= Duration::from_secs(60),
            "{d:?}"
        );
    }

    #[test]
    fn jitter_differs_between_slots() {
        let a = backoff(MS(1000), 3, jitter_seed(0, 0, 3));
        let b = backoff(MS(1000), 3, jitter_seed(0, 1, 3));
        let c = backoff(MS(1000), 3, jitter_seed(1, 0, 3));
        assert!(a != b || b != c);
    }

    #[test]
    fn decisions_by_mode_and_outcome() {
        use Decision::*;
        use RunEnd::*;
        let long = Duration::from_secs(10);
        let short = MS(10);
        let crash = Exited(ExitStatus::Code(1));
        let clean = Exited(ExitStatus::Code(0));
        let killed = Exited(ExitStatus::Signal(9));
        type Row = (RestartMode, RunEnd, Duration, u32, (u32, Decision));
        let table: &[Row] = &[
            (
                RestartMode::Always,
                clean,
                long,
                3,
                (0, Restart { delay: MS(100) }),
            ),
            (
                RestartMode::Always,
                crash,
                long,
                3,
                (0, Restart { delay: MS(100) }),
            ),
            (
                RestartMode::Always,
                crash,
                short,
                0,
                (1, Restart { delay: MS(100) }),
            ),
            (RestartMode::OnFailure, clean, long, 0, (0, Finish)),
            (
                RestartMode::OnFailure,
                killed,
                long,
                0,
                (0, Restart { delay: MS(100) }),
            ),
            (RestartMode::Never, crash, long, 0, (0, Finish)),
            (
                RestartMode::Never,
                SpawnFailed,
                long,
                0,
                (1, GiveUp { retry: None }),
            ),
            // Spawn failures never count as a good run, however long ago the last one was.
            (
                RestartMode::Always,
                SpawnFailed,
                long,
                0,
                (1, Restart { delay: MS(100) }),
            ),
        ];
        for (mode, end, uptime, before, want) in table {
            let mut app = test_app("a");
            app.restart = *mode;
            assert_eq!(
                after_run(&app, *before, *end, *uptime, 0),
                *want,
                "{mode:?} {end:?} {uptime:?}"
            );
        }
    }

    #[test]
    fn gives_up_after_max_restarts_short_runs() {
        let mut app = test_app("a");
        app.max_restarts = 3;
        let crash = RunEnd::Exited(ExitStatus::Code(1));
        let mut failures = 0;
        let mut restarts = 0;
        loop {
            let (f, d) = after_run(&app, failures, crash, MS(1), 9);
            failures = f;
            match d {
                Decision::Restart { .. } => restarts += 1,
                Decision::GiveUp { retry } => {
                    assert_eq!(retry, Some(app.errored_retry));
                    break;
                }
                Decision::Finish => panic!("finish under always"),
            }
        }
        assert_eq!(restarts, 3);
    }
}
