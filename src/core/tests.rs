//! The core harness: drive [`handle`] with events at chosen times, answer spawns the way
//! the runtime does, and check the invariants after every step.

use std::collections::HashMap;
use std::time::Duration;

use super::view::{InstanceView, StateName};
use super::*;
use crate::config::{App, Config, RestartMode, Supervisor};

struct H {
    state: State,
    now: Time,
    next_pid: i32,
    /// A spawn fails with this error instead of succeeding.
    fail_spawns: Option<String>,
    /// Processes (groups) the harness believes exist: pgid → (slot, gen).
    alive: HashMap<i32, (Slot, Gen)>,
    replies: HashMap<ReqId, usize>,
    next_req: ReqId,
    /// Every effect so far, for assertions on history.
    log: Vec<Effect>,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn slot(app: usize, index: u32) -> Slot {
    Slot { app, index }
}

impl H {
    fn new(apps: Vec<App>) -> H {
        let config = Config {
            path: "/etc/sup/ecosystem.toml".into(),
            supervisor: Supervisor {
                socket: None,
                log_dir: "/tmp".into(),
                shutdown_timeout: Duration::from_secs(30),
                http: None,
                readers: Vec::new(),
            },
            apps,
        };
        H {
            state: State::new(&config, 41, "0.1.0"),
            now: Duration::ZERO,
            next_pid: 100,
            fail_spawns: None,
            alive: HashMap::new(),
            replies: HashMap::new(),
            next_req: 1,
            log: Vec::new(),
        }
    }

    /// A harness for the apps of an `ecosystem.toml` text, booted.
    fn from_toml(text: &str) -> H {
        let config = crate::config::validate::validate(
            std::path::Path::new("/etc/sup/ecosystem.toml"),
            text,
            None,
            4,
            &|_| true,
        )
        .unwrap_or_else(|e| panic!("test config: {e}"));
        let mut h = H::new(Vec::new());
        h.state = State::new(&config, 41, "0.1.0");
        h.send(Event::Boot);
        h
    }

    fn one(app: App) -> H {
        let mut h = H::new(vec![app]);
        h.send(Event::Boot);
        h
    }

    fn at(&mut self, t: u64) -> &mut Self {
        assert!(ms(t) >= self.now, "time goes forward");
        self.now = ms(t);
        self
    }

    /// Send one event; answer every Spawn at once (as the runtime does); check invariants.
    fn send(&mut self, event: Event) -> Vec<Effect> {
        match &event {
            Event::Exited {
                slot,
                gen,
                group_alive,
                ..
            } => {
                let pid = self.pid_of(*slot, *gen).expect("exit of a live process");
                if !group_alive {
                    self.alive.remove(&pid);
                }
            }
            Event::GroupGone { slot, gen } => {
                let pid = self
                    .pid_of(*slot, *gen)
                    .expect("group gone of a live group");
                self.alive.remove(&pid);
            }
            _ => {}
        }
        let mut out = Vec::new();
        let mut queue = vec![event];
        while let Some(event) = queue.pop() {
            let fx = handle(&mut self.state, event, self.now);
            for effect in &fx {
                self.check(effect);
                if let Effect::Spawn { slot, gen } = *effect {
                    queue.push(match &self.fail_spawns {
                        Some(error) => Event::SpawnFailed {
                            slot,
                            gen,
                            error: error.clone(),
                        },
                        None => {
                            self.next_pid += 1;
                            self.alive.insert(self.next_pid, (slot, gen));
                            Event::Spawned {
                                slot,
                                gen,
                                pid: self.next_pid,
                            }
                        }
                    });
                }
            }
            out.extend(fx);
        }
        self.log.extend(out.clone());
        self.check_state();
        out
    }

    fn pid_of(&self, slot: Slot, gen: Gen) -> Option<i32> {
        self.alive
            .iter()
            .find(|(_, &(s, g))| s == slot && g == gen)
            .map(|(&pid, _)| pid)
    }

    fn check(&mut self, effect: &Effect) {
        match effect {
            Effect::Signal {
                slot, gen, pgid, ..
            } => {
                assert_eq!(
                    self.alive.get(pgid),
                    Some(&(*slot, *gen)),
                    "signal to a group that is not alive: {effect:?}"
                );
            }
            Effect::Spawn { slot, .. } => {
                // Surge first: the old process may run on beside its replacement.
                let inst = self.state.instance(*slot).expect("slot");
                assert!(
                    !self
                        .alive
                        .values()
                        .any(|(s, g)| s == slot && !inst.old.iter().any(|o| o.gen == *g)),
                    "spawn while the slot still has a process: {effect:?}"
                );
            }
            Effect::Reply { req, .. }
            | Effect::ShowLogs { req, .. }
            | Effect::FlushLogs { req, .. }
            | Effect::ReopenLogs { req } => {
                let n = self.replies.entry(*req).or_default();
                *n += 1;
                assert_eq!(*n, 1, "second terminal reply to request {req}");
            }
            _ => {}
        }
    }

    fn check_state(&self) {
        for slot in self.state.slots() {
            let live = self.alive.values().filter(|(s, _)| *s == slot).count();
            let old = self.state.instance(slot).map_or(0, |i| i.old.len());
            assert!(live <= 1 + old, "{slot:?} has {live} live generations");
            let phase = self.state.instance(slot).map(|i| i.phase);
            if let Some(pid) = phase.and_then(|p| p.pid()) {
                assert!(
                    self.alive.contains_key(&pid),
                    "{slot:?} shows dead pid {pid}"
                );
            }
        }
    }

    fn phase(&self, s: Slot) -> Phase {
        self.state.instance(s).expect("slot").phase
    }

    fn pid(&self, s: Slot) -> i32 {
        self.phase(s).pid().expect("a live process")
    }

    fn gen(&self, s: Slot) -> Gen {
        self.state.instance(s).expect("slot").gen
    }

    fn exit(&mut self, s: Slot, status: ExitStatus) -> Vec<Effect> {
        let gen = self.gen(s);
        self.exit_gen(s, gen, status)
    }

    /// The process of generation `gen` of `s` exited (an old one, during a surge).
    fn exit_gen(&mut self, s: Slot, gen: Gen, status: ExitStatus) -> Vec<Effect> {
        self.send(Event::Exited {
            slot: s,
            gen,
            status,
            group_alive: false,
        })
    }

    fn request(&mut self, order: Order) -> (ReqId, Vec<Effect>) {
        let req = self.next_req;
        self.next_req += 1;
        (req, self.send(Event::Request { req, order }))
    }

    fn status_of(&self, s: Slot) -> InstanceView {
        view::instance(&self.state, s, self.now).expect("slot")
    }
}

fn app(name: &str) -> App {
    crate::config::test_app(name)
}

fn timers(fx: &[Effect]) -> Vec<(Time, Timer)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SetTimer { at, timer } => Some((*at, *timer)),
            _ => None,
        })
        .collect()
}

fn signals(fx: &[Effect]) -> Vec<i32> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Signal { signal, .. } => Some(signal.0),
            _ => None,
        })
        .collect()
}

fn reply(fx: &[Effect], req: ReqId) -> Option<Result<Answer, Refusal>> {
    fx.iter().find_map(|e| match e {
        Effect::Reply { req: r, outcome } if *r == req => Some(outcome.clone()),
        _ => None,
    })
}

/// The instances an answer to start/stop/restart/reload/scale/signal carries, by app.
fn instances(answer: &Answer) -> Vec<&[InstanceView]> {
    match answer {
        Answer::Instances(apps) | Answer::Scaled { apps, .. } => {
            apps.iter().map(|a| a.instances.as_slice()).collect()
        }
        other => panic!("not an instances answer: {other:?}"),
    }
}

fn spawned(fx: &[Effect]) -> usize {
    fx.iter()
        .filter(|e| matches!(e, Effect::Spawn { .. }))
        .count()
}

const S0: Slot = Slot { app: 0, index: 0 };

mod apply;
mod rollout;
use rollout::settle;

#[test]
fn boot_starts_autostart_apps_only() {
    let mut a = app("a");
    a.instances = 2;
    let mut b = app("b");
    b.autostart = false;
    let mut h = H::new(vec![a, b]);
    let fx = h.send(Event::Boot);
    assert_eq!(spawned(&fx), 2);
    assert!(matches!(h.phase(slot(0, 1)), Phase::Online { .. }));
    assert_eq!(h.phase(slot(1, 0)), Phase::Stopped);
    assert_eq!(h.status_of(slot(0, 0)).restarts, 0);
}

#[test]
fn crash_backs_off_doubling_then_restarts_with_reason_crash() {
    let mut h = H::one(app("a"));
    h.at(10);
    let fx = h.exit(S0, ExitStatus::Code(1));
    assert_eq!(
        timers(&fx),
        vec![(
            ms(110),
            Timer::Start {
                slot: S0,
                at: ms(110)
            }
        )]
    );
    assert_eq!(h.status_of(S0).state, StateName::Backoff);
    assert_eq!(h.status_of(S0).next_start, Some(ms(100)));
    // A stale timer (wrong time) does nothing.
    h.at(50);
    assert_eq!(
        spawned(&h.send(Event::Timer(Timer::Start {
            slot: S0,
            at: ms(50)
        }))),
        0
    );
    h.at(110);
    let fx = h.send(Event::Timer(Timer::Start {
        slot: S0,
        at: ms(110),
    }));
    assert_eq!(spawned(&fx), 1);
    let st = h.status_of(S0);
    assert_eq!(
        (st.state, st.restarts, st.last_reason),
        (StateName::Online, 1, Some(Reason::Crash))
    );
    assert_eq!(st.last_exit_text().as_deref(), Some("exited with code 1"));
    // A second short run waits about twice as long.
    h.at(120);
    let fx = h.exit(S0, ExitStatus::Code(1));
    let (at, _) = timers(&fx)[0];
    let delay = at - ms(120);
    assert!(delay >= ms(180) && delay <= ms(220), "{delay:?}");
}

#[test]
fn zero_delay_restarts_at_once() {
    let mut a = app("a");
    a.restart_delay = Duration::ZERO;
    let mut h = H::one(a);
    let old = h.pid(S0);
    h.at(5000);
    let fx = h.exit(S0, ExitStatus::Signal(9));
    assert_eq!(spawned(&fx), 1);
    assert!(timers(&fx).is_empty());
    assert_ne!(h.pid(S0), old);
    assert_eq!(
        h.status_of(S0).last_exit_text().as_deref(),
        Some("killed by SIGKILL")
    );
}

#[test]
fn a_crash_loop_ends_errored_and_is_retried_after_errored_retry() {
    let mut a = app("a");
    a.max_restarts = 3;
    let mut h = H::one(a);
    let mut t = 0;
    for _ in 0..3 {
        t += 10;
        h.at(t);
        let fx = h.exit(S0, ExitStatus::Code(2));
        let (at, timer) = timers(&fx)[0];
        t = at.as_millis() as u64;
        h.at(t);
        h.send(Event::Timer(timer));
        assert!(matches!(h.phase(S0), Phase::Online { .. }));
    }
    h.at(t + 10);
    let fx = h.exit(S0, ExitStatus::Code(2));
    let retry_at = ms(t + 10) + Duration::from_secs(300);
    assert_eq!(
        h.phase(S0),
        Phase::Errored {
            retry_at: Some(retry_at)
        }
    );
    assert_eq!(
        timers(&fx),
        vec![(
            retry_at,
            Timer::Start {
                slot: S0,
                at: retry_at
            }
        )]
    );
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Log {
            level: Level::Error,
            ..
        }
    )));
    assert_eq!(h.status_of(S0).state, StateName::Errored);
    assert_eq!(h.status_of(S0).restarts, 3);
    h.at(retry_at.as_millis() as u64);
    let fx = h.send(Event::Timer(Timer::Start {
        slot: S0,
        at: retry_at,
    }));
    assert_eq!(spawned(&fx), 1);
    assert_eq!(h.state.instance(S0).expect("slot").failures, 0);
}

#[test]
fn a_good_run_resets_the_failure_count() {
    let mut h = H::one(app("a"));
    h.at(10);
    let fx = h.exit(S0, ExitStatus::Code(1));
    h.at(110);
    h.send(Event::Timer(timers(&fx)[0].1));
    h.at(5000);
    let fx = h.exit(S0, ExitStatus::Code(1));
    assert_eq!(timers(&fx)[0].0, ms(5100), "back to the base delay");
    assert_eq!(h.state.instance(S0).expect("slot").failures, 0);
}

#[test]
fn restart_modes() {
    for (mode, status, want) in [
        (
            RestartMode::OnFailure,
            ExitStatus::Code(0),
            StateName::Exited,
        ),
        (
            RestartMode::OnFailure,
            ExitStatus::Code(3),
            StateName::Backoff,
        ),
        (
            RestartMode::OnFailure,
            ExitStatus::Signal(11),
            StateName::Backoff,
        ),
        (RestartMode::Never, ExitStatus::Code(3), StateName::Exited),
        (RestartMode::Never, ExitStatus::Code(0), StateName::Exited),
        (RestartMode::Always, ExitStatus::Code(0), StateName::Backoff),
    ] {
        let mut a = app("a");
        a.restart = mode;
        let mut h = H::one(a);
        h.at(5);
        h.exit(S0, status);
        assert_eq!(h.status_of(S0).state, want, "{mode:?} {status:?}");
    }
}

#[test]
fn spawn_failures_back_off_instead_of_looping() {
    let mut h = H::new(vec![app("a")]);
    h.fail_spawns = Some("No such file or directory (os error 2)".into());
    let fx = h.send(Event::Boot);
    assert_eq!(spawned(&fx), 1, "one attempt, then a timer, not a loop");
    assert_eq!(timers(&fx).len(), 1);
    let st = h.status_of(S0);
    assert_eq!(st.state, StateName::Backoff);
    assert_eq!(
        st.last_exit_text().as_deref(),
        Some("spawn failed: No such file or directory (os error 2)")
    );
    // Each later failure waits longer.
    let (at, timer) = timers(&fx)[0];
    h.at(at.as_millis() as u64);
    let fx = h.send(Event::Timer(timer));
    let (next, _) = timers(&fx)[0];
    assert!(next - at > ms(100));

    let mut job = app("job");
    job.restart = RestartMode::Never;
    let mut h = H::new(vec![job]);
    h.fail_spawns = Some("Permission denied (os error 13)".into());
    h.send(Event::Boot);
    assert_eq!(h.phase(S0), Phase::Errored { retry_at: None });
}

#[test]
fn stop_escalates_to_sigkill_and_replies_once_stopped() {
    let mut a = app("a");
    a.stop_signal = crate::config::Signal(2);
    a.kill_timeout = ms(500);
    let mut h = H::one(a);
    h.at(100);
    let (req, fx) = h.request(Order::act(Action::Stop, "a"));
    assert_eq!(signals(&fx), vec![2]);
    assert_eq!(reply(&fx, req), None, "no reply while stopping");
    assert_eq!(h.status_of(S0).state, StateName::Stopping);
    let gen = h.gen(S0);
    h.at(600);
    let fx = h.send(Event::Timer(Timer::Kill { slot: S0, gen }));
    assert_eq!(signals(&fx), vec![9]);
    h.at(601);
    let fx = h.exit(S0, ExitStatus::Signal(9));
    let out = reply(&fx, req).expect("reply").expect("ok");
    assert_eq!(instances(&out)[0][0].state, StateName::Stopped);
    assert_eq!(h.phase(S0), Phase::Stopped);
    // The kill timer of a finished stop is ignored.
    assert!(signals(&h.send(Event::Timer(Timer::Kill { slot: S0, gen }))).is_empty());
    // And a stopped app is not restarted by anything but a request.
    assert_eq!(h.status_of(S0).restarts, 0);
}

#[test]
fn restart_replaces_the_process_and_replies_after_the_new_one_runs() {
    let mut a = app("a");
    a.instances = 2;
    let mut h = H::one(a);
    let old = h.pid(S0);
    let (req, fx) = h.request(Order::act(Action::Restart, "a:0"));
    assert_eq!(signals(&fx), vec![15]);
    assert!(
        matches!(h.phase(slot(0, 1)), Phase::Online { .. }),
        "a:1 untouched"
    );
    h.at(20);
    let fx = h.exit(S0, ExitStatus::Signal(15));
    let out = reply(&fx, req).expect("reply").expect("ok");
    assert_ne!(h.pid(S0), old);
    assert_eq!(instances(&out)[0].len(), 1);
    let st = h.status_of(S0);
    assert_eq!((st.restarts, st.last_reason), (1, Some(Reason::Manual)));
}

#[test]
fn restart_or_start_of_a_waiting_slot_spawns_at_once() {
    let mut h = H::one(app("a"));
    h.at(10);
    h.exit(S0, ExitStatus::Code(1));
    let (req, fx) = h.request(Order::act(Action::Restart, "all"));
    assert_eq!(spawned(&fx), 1);
    assert!(reply(&fx, req).expect("reply").is_ok());
    let (req, fx) = h.request(Order::act(Action::Start, "a"));
    assert_eq!(spawned(&fx), 0, "already online");
    assert!(reply(&fx, req).expect("reply").is_ok());
}

#[test]
fn start_while_stopping_starts_again_afterwards() {
    let mut h = H::one(app("a"));
    let (stop, _) = h.request(Order::act(Action::Stop, "a"));
    let (start, _) = h.request(Order::act(Action::Start, "a"));
    h.at(30);
    let fx = h.exit(S0, ExitStatus::Signal(15));
    assert_eq!(spawned(&fx), 1);
    assert!(reply(&fx, stop).expect("stop answered").is_ok());
    assert!(reply(&fx, start).expect("reply").is_ok());
    assert_eq!(h.status_of(S0).restarts, 0, "a start is not a restart");
}

#[test]
fn a_leader_that_dies_leaves_no_group_behind_before_the_replacement() {
    let mut a = app("a");
    a.restart_delay = Duration::ZERO;
    let mut h = H::one(a);
    let pid = h.pid(S0);
    let gen = h.gen(S0);
    h.at(2000);
    let fx = h.send(Event::Exited {
        slot: S0,
        gen,
        status: ExitStatus::Signal(9),
        group_alive: true,
    });
    assert_eq!(
        signals(&fx),
        vec![15],
        "stop_signal to the rest of the group"
    );
    assert_eq!(spawned(&fx), 0, "no replacement while workers remain");
    assert_eq!(h.phase(S0).pid(), None, "the leader is gone");
    h.at(2100);
    let fx = h.send(Event::GroupGone { slot: S0, gen });
    assert_eq!(spawned(&fx), 1);
    assert_ne!(h.pid(S0), pid);
    assert_eq!(h.status_of(S0).last_reason, Some(Reason::Crash));
}

#[test]
fn a_lingering_group_is_killed_after_kill_timeout() {
    let mut h = H::one(app("a"));
    let gen = h.gen(S0);
    h.at(10);
    h.send(Event::Exited {
        slot: S0,
        gen,
        status: ExitStatus::Code(0),
        group_alive: true,
    });
    h.at(5010);
    let fx = h.send(Event::Timer(Timer::Kill { slot: S0, gen }));
    assert_eq!(signals(&fx), vec![9]);
}

#[test]
fn shutdown_stops_everything_then_replies_and_exits_zero() {
    let mut a = app("a");
    a.instances = 3;
    let mut b = app("b");
    b.autostart = false;
    let mut h = H::new(vec![a, b]);
    h.send(Event::Boot);
    h.at(10);
    h.exit(slot(0, 2), ExitStatus::Code(1)); // in backoff during the shutdown
    let (req, fx) = h.request(Order::Shutdown);
    assert_eq!(signals(&fx), vec![15, 15]);
    assert_eq!(h.phase(slot(0, 2)), Phase::Stopped);
    let (late, fx) = h.request(Order::act(Action::Restart, "a"));
    assert_eq!(
        reply(&fx, late).expect("reply").map_err(|e| e.kind),
        Err(RefusalKind::ShuttingDown)
    );
    h.exit(slot(0, 0), ExitStatus::Signal(15));
    let fx = h.exit(slot(0, 1), ExitStatus::Code(0));
    assert!(reply(&fx, req).expect("reply").is_ok());
    assert_eq!(fx.last(), Some(&Effect::Exit { code: 0 }));
    assert_eq!(spawned(&h.log), 3, "nothing restarted during the shutdown");
}

#[test]
fn a_second_sigint_kills_at_once() {
    let mut h = H::one(app("a"));
    h.send(Event::ShutdownSignal { force: false });
    let fx = h.send(Event::ShutdownSignal { force: true });
    assert_eq!(signals(&fx), vec![9]);
    let fx = h.exit(S0, ExitStatus::Signal(9));
    assert_eq!(fx.last(), Some(&Effect::Exit { code: 0 }));
}

#[test]
fn shutdown_timeout_kills_then_abandons() {
    let mut a = app("a");
    a.kill_timeout = Duration::from_secs(100);
    let mut h = H::one(a);
    let fx = h.send(Event::ShutdownSignal { force: false });
    assert!(timers(&fx).contains(&(Duration::from_secs(30), Timer::ShutdownDeadline)));
    h.at(30_000);
    let fx = h.send(Event::Timer(Timer::ShutdownDeadline));
    assert_eq!(signals(&fx), vec![9]);
    h.at(35_000);
    let fx = h.send(Event::Timer(Timer::ShutdownAbandon));
    assert_eq!(fx.last(), Some(&Effect::Exit { code: 1 }));
}

#[test]
fn shutdown_with_nothing_running_exits_at_once() {
    let mut a = app("a");
    a.autostart = false;
    let mut h = H::new(vec![a]);
    h.send(Event::Boot);
    let (req, fx) = h.request(Order::Shutdown);
    assert!(reply(&fx, req).is_some());
    assert_eq!(fx.last(), Some(&Effect::Exit { code: 0 }));
}

#[test]
fn unknown_targets_get_error_replies() {
    let mut h = H::one(app("web"));
    for (target, kind) in [
        ("api", RefusalKind::UnknownApp),
        ("web:1", RefusalKind::UnknownInstance),
        ("web:x", RefusalKind::UnknownInstance),
    ] {
        let (req, fx) = h.request(Order::act(Action::Restart, target));
        let err = reply(&fx, req).expect("reply").expect_err("error");
        assert_eq!(err.kind, kind, "{target}");
    }
    let (req, fx) = h.request(Order::Status {
        target: Some("nope".into()),
    });
    let err = reply(&fx, req).expect("reply").expect_err("error");
    assert_eq!(err.message, "no app named `nope` (apps: web)");
}

#[test]
fn events_of_an_old_generation_are_ignored() {
    let mut a = app("a");
    a.restart_delay = Duration::ZERO;
    let mut h = H::one(a);
    let old = h.gen(S0);
    h.at(2000);
    h.exit(S0, ExitStatus::Code(1));
    let fx = handle(
        &mut h.state,
        Event::Exited {
            slot: S0,
            gen: old,
            status: ExitStatus::Code(1),
            group_alive: false,
        },
        ms(2001),
    );
    assert!(fx.is_empty(), "{fx:?}");
    let fx = handle(
        &mut h.state,
        Event::GroupGone { slot: S0, gen: old },
        ms(2001),
    );
    assert!(fx.is_empty(), "{fx:?}");
}

#[test]
fn a_toml_ecosystem_boots_with_its_settings() {
    let mut h = H::from_toml(
        r#"
[defaults]
kill_timeout = "250ms"

[[app]]
name = "web"
cmd = "node server.js"
instances = "max"
stop_signal = "SIGINT"

[[app]]
name = "job"
cmd = ["python3", "job.py"]
restart = "never"
autostart = false
"#,
    );
    assert_eq!(h.state.apps[0].instances.len(), 4);
    assert!(h
        .state
        .slots()
        .filter(|s| s.app == 0)
        .all(|s| h.phase(s).pid().is_some()));
    assert_eq!(h.phase(slot(1, 0)), Phase::Stopped);
    let (_, fx) = h.request(Order::act(Action::Stop, "web:2"));
    assert_eq!(signals(&fx), vec![2]);
    assert_eq!(
        timers(&fx),
        vec![(
            ms(250),
            Timer::Kill {
                slot: slot(0, 2),
                gen: h.gen(slot(0, 2))
            }
        )]
    );
    let (req, fx) = h.request(Order::act(Action::Start, "job"));
    assert!(reply(&fx, req).expect("reply").is_ok());
    h.at(10);
    h.exit(slot(1, 0), ExitStatus::Code(0));
    assert_eq!(h.status_of(slot(1, 0)).state, StateName::Exited);
}

#[test]
fn logs_requests_name_what_to_show_and_unknown_targets_are_refused() {
    let mut a = app("web");
    a.instances = 2;
    let mut h = H::new(vec![a, app("db")]);
    h.send(Event::Boot);
    let logs = |app: Option<&str>| Order::Logs {
        target: app.map(str::to_string),
        lines: 5,
        follow: true,
        stream: None,
    };
    for (target, want) in [
        (None, (None, None)),
        (Some("all"), (None, None)),
        (Some("web"), (Some("web".to_string()), None)),
        (Some("web:1"), (Some("web".to_string()), Some(1))),
    ] {
        let (req, fx) = h.request(logs(target));
        let query = fx
            .iter()
            .find_map(|e| match e {
                Effect::ShowLogs { req: r, query } if *r == req => Some(query.clone()),
                _ => None,
            })
            .expect("show logs");
        assert_eq!((query.app, query.index), want, "{target:?}");
        assert!(query.follow);
    }
    let (req, fx) = h.request(logs(Some("web:7")));
    assert_eq!(
        reply(&fx, req).expect("reply").map_err(|e| e.kind),
        Err(RefusalKind::UnknownInstance)
    );
    let (req, fx) = h.request(Order::Flush { target: None });
    assert!(fx.contains(&Effect::FlushLogs {
        req,
        apps: vec!["web".into(), "db".into()]
    }));
}

fn limited(name: &str, instances: u32) -> App {
    let mut a = app(name);
    a.instances = instances;
    a.memory.max_memory = Some(100 << 20);
    a
}

fn sample(h: &H, s: Slot, mib: u64) -> Sample {
    Sample {
        slot: s,
        gen: h.gen(s),
        rss_bytes: mib << 20,
        cpu_percent: Some(1.0),
    }
}

#[test]
fn only_apps_with_a_memory_limit_are_sampled_on_a_timer() {
    let mut h = H::new(vec![app("free"), limited("capped", 2)]);
    let fx = h.send(Event::Boot);
    let sampling: Vec<_> = timers(&fx)
        .into_iter()
        .filter(|(_, t)| matches!(t, Timer::Sample { .. }))
        .collect();
    assert_eq!(sampling, vec![(ms(1000), Timer::Sample { app: 1 })]);
    h.at(1000);
    let fx = h.send(Event::Timer(Timer::Sample { app: 1 }));
    let targets = fx
        .iter()
        .find_map(|e| match e {
            Effect::Sample { app: 1, targets } => Some(targets.clone()),
            _ => None,
        })
        .expect("a sample order");
    assert_eq!(targets.len(), 2);
    assert_eq!(timers(&fx), vec![(ms(2000), Timer::Sample { app: 1 })]);
}

#[test]
fn one_spike_is_forgiven_two_samples_over_restart_with_reason_memory() {
    let mut h = H::new(vec![limited("a", 1)]);
    h.send(Event::Boot);
    let old = h.pid(S0);
    let over = |h: &mut H, mib| {
        let s = sample(h, S0, mib);
        h.send(Event::Sampled {
            app: 0,
            samples: vec![s],
        })
    };
    assert!(
        signals(&over(&mut h, 150)).is_empty(),
        "one sample over: wait"
    );
    assert!(signals(&over(&mut h, 50)).is_empty(), "back under: reset");
    assert!(signals(&over(&mut h, 150)).is_empty());
    assert_eq!(h.status_of(S0).usage.map(|u| u.rss_bytes), Some(150 << 20));
    let fx = over(&mut h, 160);
    assert_eq!(signals(&fx), vec![15], "graceful: the stop signal first");
    assert!(fx.iter().any(
        |e| matches!(e, Effect::Log { message, .. } if message.contains("over max_memory 100 MiB"))
    ));
    h.at(50);
    h.exit(S0, ExitStatus::Signal(15));
    let st = h.status_of(S0);
    assert_ne!(h.pid(S0), old);
    assert_eq!((st.restarts, st.last_reason), (1, Some(Reason::Memory)));
    assert_eq!(
        st.usage.map(|u| u.rss_bytes),
        None,
        "the new process is not measured yet"
    );
}

#[test]
fn memory_restarts_roll_one_instance_at_a_time() {
    let mut h = H::new(vec![limited("web", 3)]);
    h.send(Event::Boot);
    let all = |h: &H, mib: [u64; 3]| {
        (0..3)
            .map(|i| sample(h, slot(0, i), mib[i as usize]))
            .collect::<Vec<_>>()
    };
    let s = all(&h, [150, 300, 200]);
    h.send(Event::Sampled { app: 0, samples: s });
    let s = all(&h, [150, 300, 200]);
    let fx = h.send(Event::Sampled { app: 0, samples: s });
    assert_eq!(signals(&fx).len(), 1, "max_unavailable = 1");
    assert_eq!(
        h.status_of(slot(0, 1)).state,
        StateName::Stopping,
        "the largest first"
    );
    // While web:1 is down, the others wait even though they are over.
    let s = all(&h, [150, 300, 200]);
    assert!(signals(&h.send(Event::Sampled { app: 0, samples: s })).is_empty());
    h.at(20);
    h.exit(slot(0, 1), ExitStatus::Signal(15));
    assert_eq!(h.status_of(slot(0, 1)).state, StateName::Online);
    let s = all(&h, [150, 10, 200]);
    let fx = h.send(Event::Sampled { app: 0, samples: s });
    assert_eq!(signals(&fx).len(), 1);
    assert_eq!(h.status_of(slot(0, 2)).state, StateName::Stopping);
}

#[test]
fn memory_action_stop_stops_and_says_why() {
    let mut a = limited("batch", 1);
    a.memory.samples = 1;
    a.memory.action = crate::config::MemoryAction::Stop;
    let mut h = H::new(vec![a]);
    h.send(Event::Boot);
    let s = sample(&h, S0, 500);
    h.send(Event::Sampled {
        app: 0,
        samples: vec![s],
    });
    h.at(10);
    h.exit(S0, ExitStatus::Signal(15));
    let st = h.status_of(S0);
    assert_eq!(
        (st.state, st.last_reason, st.restarts),
        (StateName::Stopped, Some(Reason::Memory), 0)
    );
}

fn cron_app(name: &str, instances: u32) -> App {
    let mut a = app(name);
    a.instances = instances;
    a.max_surge = 0;
    a.cron = Some(crate::config::CronSettings {
        expr: "0 3 * * *".parse().unwrap(),
        tz: None,
        overlap: crate::config::CronOverlap::Skip,
    });
    a
}

#[test]
fn a_cron_tick_restarts_a_service_one_instance_at_a_time() {
    let mut h = H::new(vec![cron_app("web", 3)]);
    let fx = h.send(Event::Boot);
    assert!(fx.contains(&Effect::ArmCron { app: 0, epoch: 0 }));
    h.at(1000);
    let fx = h.send(Event::Timer(Timer::Cron { app: 0, epoch: 0 }));
    assert!(
        fx.contains(&Effect::ArmCron { app: 0, epoch: 0 }),
        "re-armed"
    );
    assert_eq!(signals(&fx), vec![15], "one at a time");
    for index in 0..3u32 {
        let s = slot(0, index);
        assert_eq!(h.status_of(s).state, StateName::Stopping);
        let online = (0..3u32)
            .filter(|&i| h.status_of(slot(0, i)).state == StateName::Online)
            .count();
        assert_eq!(online, 2, "two of three serve throughout");
        h.at(1000 + 10 * (index as u64 + 1));
        let fx = h.exit(s, ExitStatus::Signal(15));
        let st = h.status_of(s);
        assert_eq!(
            (st.state, st.last_reason),
            (StateName::Online, Some(Reason::Cron))
        );
        assert_eq!(
            signals(&fx).len(),
            usize::from(index < 2),
            "then the next one"
        );
    }
}

#[test]
fn a_cron_tick_starts_a_job_and_respects_cron_overlap() {
    let mut job = cron_app("job", 1);
    job.restart = RestartMode::Never;
    job.autostart = false;
    let mut h = H::new(vec![job]);
    h.send(Event::Boot);
    let fx = h.send(Event::Timer(Timer::Cron { app: 0, epoch: 0 }));
    assert_eq!(spawned(&fx), 1, "started by the tick");
    assert_eq!(h.status_of(S0).last_reason, Some(Reason::Cron));
    let fx = h.send(Event::Timer(Timer::Cron { app: 0, epoch: 0 }));
    assert_eq!(
        (spawned(&fx), signals(&fx).len()),
        (0, 0),
        "still running: skipped"
    );
    if let Some(cron) = h.state.apps[0].config.cron.as_mut() {
        cron.overlap = crate::config::CronOverlap::Restart;
    }
    let fx = h.send(Event::Timer(Timer::Cron { app: 0, epoch: 0 }));
    assert_eq!(signals(&fx), vec![15], "cron_overlap = restart");
    h.at(10);
    let fx = h.exit(S0, ExitStatus::Signal(15));
    assert_eq!(spawned(&fx), 1);
}

#[test]
fn health_counts_only_what_should_run() {
    let mut manual = app("manual");
    manual.autostart = false;
    let mut h = H::new(vec![app("web"), manual]);
    h.send(Event::Boot);
    let (req, fx) = h.request(Order::Health);
    let Answer::Health(v) = reply(&fx, req).expect("reply").expect("ok") else {
        panic!("not a health answer")
    };
    assert!(v.healthy, "{v:?}");
    h.at(10);
    h.exit(S0, ExitStatus::Code(2));
    let (req, fx) = h.request(Order::Health);
    let Answer::Health(v) = reply(&fx, req).expect("reply").expect("ok") else {
        panic!("not a health answer")
    };
    assert!(!v.healthy);
    assert_eq!(v.problems[0], "web:0 is backoff (exited with code 2)");
}

fn probes(fx: &[Effect]) -> Vec<(Slot, crate::core::ProbeKind)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Probe { slot, kind, .. } => Some((*slot, *kind)),
            _ => None,
        })
        .collect()
}

fn probe_done(h: &mut H, s: Slot, kind: crate::core::ProbeKind, ok: bool) -> Vec<Effect> {
    let gen = h.gen(s);
    h.send(Event::ProbeDone {
        slot: s,
        gen,
        kind,
        ok,
        detail: if ok { "HTTP 200" } else { "HTTP 503" }.into(),
    })
}

const READY_HTTP: &str = "[[app]]\nname = \"web\"\ncmd = \"x\"\ninstances = 2\n\
    ready = { http = \"http://127.0.0.1:3000/\", timeout = \"5s\", interval = \"100ms\" }\n\
    health = { tcp = \"127.0.0.1:3000\", interval = \"1s\", failures = 2 }\n";

#[test]
fn a_ready_check_gates_online_and_then_health_probes_begin() {
    use crate::core::ProbeKind::{Health, Ready};
    let mut h = H::from_toml(READY_HTTP);
    let s0 = S0;
    let mut first = probes(&h.log);
    first.sort();
    assert_eq!(
        first,
        vec![(s0, Ready), (slot(0, 1), Ready)],
        "probed at once"
    );
    let st = h.status_of(s0);
    assert_eq!((st.state, st.ready), (StateName::Starting, false));
    h.at(50);
    let fx = probe_done(&mut h, s0, Ready, false);
    assert!(timers(&fx).contains(&(
        ms(150),
        Timer::Probe {
            slot: s0,
            gen: 1,
            kind: Ready
        }
    )));
    h.at(150);
    assert_eq!(
        probes(&h.send(Event::Timer(Timer::Probe {
            slot: s0,
            gen: 1,
            kind: Ready
        }))),
        vec![(s0, Ready)],
        "tried again after the interval, never while one runs"
    );
    h.at(160);
    let fx = probe_done(&mut h, s0, Ready, true);
    let st = h.status_of(s0);
    assert_eq!((st.state, st.ready), (StateName::Online, true));
    assert!(timers(&fx).contains(&(
        ms(1160),
        Timer::Probe {
            slot: s0,
            gen: 1,
            kind: Health
        }
    )));
    // A late ready timer of the ready instance does nothing.
    h.at(200);
    let fx = h.send(Event::Timer(Timer::Probe {
        slot: s0,
        gen: 1,
        kind: Ready,
    }));
    assert!(probes(&fx).is_empty());
    // The ready deadline passes harmlessly for the ready one.
    h.at(5000);
    let fx = h.send(Event::Timer(Timer::ReadyDeadline { slot: s0, gen: 1 }));
    assert!(signals(&fx).is_empty());
}

#[test]
fn not_ready_in_time_is_a_failed_start() {
    let mut h = H::from_toml(READY_HTTP);
    h.at(5000);
    let fx = h.send(Event::Timer(Timer::ReadyDeadline { slot: S0, gen: 1 }));
    assert_eq!(signals(&fx), vec![15], "stopped");
    assert!(h.log.iter().any(|e| matches!(e, Effect::Log { message, .. }
        if message.contains("web:0 not ready within 5s (http check)"))));
    h.at(5010);
    h.exit(S0, ExitStatus::Signal(15));
    let st = h.status_of(S0);
    assert_eq!(st.state, StateName::Backoff, "then restarted like a crash");
    assert_eq!(
        h.state.apps[0].instances[0].failures, 1,
        "counted although it ran 5s"
    );
}

#[test]
fn health_failures_in_a_row_restart_with_reason_probe() {
    use crate::core::ProbeKind::{Health, Ready};
    let mut h = H::from_toml(READY_HTTP);
    probe_done(&mut h, S0, Ready, true);
    h.at(1000);
    let fx = h.send(Event::Timer(Timer::Probe {
        slot: S0,
        gen: 1,
        kind: Health,
    }));
    assert_eq!(probes(&fx), vec![(S0, Health)]);
    let fx = probe_done(&mut h, S0, Health, false);
    assert!(signals(&fx).is_empty(), "1 of 2");
    // A pass in between resets the count.
    probe_done(&mut h, S0, Health, true);
    probe_done(&mut h, S0, Health, false);
    assert!(signals(&h.log).is_empty());
    let fx = probe_done(&mut h, S0, Health, false);
    assert_eq!(signals(&fx), vec![15], "2 in a row");
    h.at(1010);
    h.exit(S0, ExitStatus::Signal(15));
    let st = h.status_of(S0);
    assert_eq!(
        (st.state, st.last_reason, st.restarts),
        (StateName::Starting, Some(Reason::Probe), 1)
    );
    assert_eq!(st.restarts_by_reason.get(&Reason::Probe), Some(&1));
    // Results about the old process are ignored.
    let fx = h.send(Event::ProbeDone {
        slot: S0,
        gen: 1,
        kind: Health,
        ok: false,
        detail: "late".into(),
    });
    assert!(signals(&fx).is_empty() && timers(&fx).is_empty());
}

#[test]
fn a_rolling_restart_waits_for_readiness() {
    use crate::core::ProbeKind::Ready;
    let text = format!("{READY_HTTP}cron_restart = \"0 3 * * *\"\nmax_surge = 0\n");
    let mut h = H::from_toml(&text);
    probe_done(&mut h, S0, Ready, true);
    probe_done(&mut h, slot(0, 1), Ready, true);
    h.at(100);
    let fx = h.send(Event::Timer(Timer::Cron { app: 0, epoch: 0 }));
    assert_eq!(signals(&fx).len(), 1);
    h.at(110);
    let fx = h.exit(S0, ExitStatus::Signal(15));
    assert!(
        signals(&fx).is_empty(),
        "web:0 is back but not ready: web:1 waits"
    );
    let fx = probe_done(&mut h, S0, Ready, true);
    assert_eq!(signals(&fx).len(), 1, "web:0 ready: now web:1");
    assert_eq!(h.status_of(slot(0, 1)).state, StateName::Stopping);
}

#[test]
fn notify_ready_status_and_stopping() {
    let mut h = H::from_toml(
        "[[app]]\nname = \"d\"\ncmd = \"x\"\nready = { notify = true, timeout = \"1s\" }\n",
    );
    assert!(probes(&h.log).is_empty(), "notify is not polled");
    let notice = |ready, stopping, status: Option<&str>| crate::core::Notice {
        ready,
        stopping,
        status: status.map(String::from),
        main_pid: None,
    };
    h.send(Event::Notified {
        slot: S0,
        gen: 1,
        notice: notice(false, false, Some("loading")),
    });
    let st = h.status_of(S0);
    assert_eq!(
        (st.state, st.notice.status.as_deref()),
        (StateName::Starting, Some("loading"))
    );
    // A message about another generation changes nothing.
    h.send(Event::Notified {
        slot: S0,
        gen: 7,
        notice: notice(true, false, None),
    });
    assert!(!h.status_of(S0).ready);
    h.send(Event::Notified {
        slot: S0,
        gen: 1,
        notice: notice(true, false, Some("serving")),
    });
    let st = h.status_of(S0);
    assert_eq!((st.state, st.ready), (StateName::Online, true));
    assert_eq!(st.notice.status.as_deref(), Some("serving"));
    h.send(Event::Notified {
        slot: S0,
        gen: 1,
        notice: crate::core::Notice {
            main_pid: Some(4242),
            ..Default::default()
        },
    });
    let st = h.status_of(S0);
    assert_eq!(
        (st.notice.main_pid, st.notice.status.as_deref()),
        (Some(4242), Some("serving")),
        "kept"
    );
    h.send(Event::Notified {
        slot: S0,
        gen: 1,
        notice: notice(false, true, None),
    });
    assert!(!h.status_of(S0).ready, "STOPPING=1: no longer ready");
    let (req, fx) = h.request(Order::Health);
    let Answer::Health(v) = reply(&fx, req).expect("reply").expect("ok") else {
        panic!("not a health answer")
    };
    assert_eq!(
        v.problems[0],
        "d:0 is online but not ready (it said STOPPING=1)"
    );
}

#[test]
fn reload_rolls_one_ready_replacement_at_a_time_and_answers_at_the_end() {
    use crate::core::ProbeKind::Ready;
    let text = READY_HTTP.replace("instances = 2", "instances = 3\nmax_surge = 0");
    let mut h = H::from_toml(&text);
    for i in 0..3 {
        probe_done(&mut h, slot(0, i), Ready, true);
    }
    h.at(100);
    let (req, fx) = h.request(Order::act(Action::Reload, "web"));
    assert_eq!(signals(&fx).len(), 1, "max_unavailable = 1");
    for index in 0..3u32 {
        let s = slot(0, index);
        assert_eq!(
            h.status_of(s).state,
            StateName::Stopping,
            "web:{index} in order"
        );
        h.at(110 + 10 * index as u64);
        let fx = h.exit(s, ExitStatus::Signal(15));
        assert!(signals(&fx).is_empty(), "the next waits for readiness");
        assert!(reply(&fx, req).is_none());
        let fx = probe_done(&mut h, s, Ready, true);
        let st = h.status_of(s);
        assert_eq!((st.last_reason, st.restarts), (Some(Reason::Reload), 1));
        if index < 2 {
            assert_eq!(signals(&fx).len(), 1, "then the next one");
            assert!(reply(&fx, req).is_none());
        } else {
            let data = reply(&fx, req).expect("answered").expect("ok");
            assert_eq!(Some(instances(&data)[0].len()), Some(3));
        }
    }
}

#[test]
fn reload_leaves_stopped_instances_and_answers_at_once_when_nothing_runs() {
    let mut a = app("web");
    a.autostart = false;
    let mut h = H::one(a);
    let (req, fx) = h.request(Order::act(Action::Reload, "web"));
    assert!(spawned(&fx) == 0 && signals(&fx).is_empty());
    assert!(reply(&fx, req).expect("answered").is_ok());
    let (req, fx) = h.request(Order::act(Action::Reload, "nope"));
    assert!(reply(&fx, req).expect("answered").is_err());
}

#[test]
fn signal_reaches_the_leader_of_each_running_instance() {
    let mut a = app("web");
    a.instances = 2;
    let mut h = H::one(a);
    h.at(10);
    h.exit(slot(0, 1), ExitStatus::Code(1));
    let (req, fx) = h.request(Order::Signal {
        signal: crate::config::Signal(libc::SIGHUP),
        target: "web".into(),
        group: false,
    });
    let sent: Vec<(Slot, i32, i32)> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::SignalLeader {
                slot, pid, signal, ..
            } => Some((*slot, *pid, signal.0)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        vec![(S0, h.pid(S0), libc::SIGHUP)],
        "web:1 is backing off"
    );
    assert!(reply(&fx, req).expect("answered").is_ok());
}

#[test]
fn scale_starts_new_slots_and_stops_the_highest_ones() {
    let mut a = app("web");
    a.instances = 2;
    let mut h = H::one(a);
    let (req, fx) = h.request(Order::Scale {
        app: "web".into(),
        count: Count::To(4),
    });
    assert_eq!(spawned(&fx), 2);
    let data = reply(&fx, req)
        .expect("answered once they run")
        .expect("ok");
    assert_eq!(Some(instances(&data)[0].len()), Some(4));
    let st = h.status_of(slot(0, 3));
    assert_eq!((st.state, st.restarts), (StateName::Online, 0));
    h.at(10);
    let (req, fx) = h.request(Order::Scale {
        app: "web".into(),
        count: Count::To(1),
    });
    assert_eq!(signals(&fx).len(), 3, "web:1..3 stop");
    assert!(reply(&fx, req).is_none(), "not before they are gone");
    for index in 1..3u32 {
        let fx = h.exit(slot(0, index), ExitStatus::Signal(15));
        assert!(reply(&fx, req).is_none());
    }
    let fx = h.exit(slot(0, 3), ExitStatus::Signal(15));
    let data = reply(&fx, req).expect("answered").expect("ok");
    assert_eq!(Some(instances(&data)[0].len()), Some(1));
    let status = crate::core::view::status(&h.state, None, h.now).expect("status");
    assert_eq!(
        status.apps[0].instances.len(),
        1,
        "scaled-away slots are not shown"
    );
    // Back up: the old slot comes back with a newer generation than any of its events.
    let old_gen = h.gen(slot(0, 3));
    let (_, fx) = h.request(Order::Scale {
        app: "web".into(),
        count: Count::To(4),
    });
    assert_eq!(spawned(&fx), 3);
    assert!(h.gen(slot(0, 3)) > old_gen);
    // Errors: not an app, too many, and during a shutdown.
    for (app, n) in [
        ("nope", 1),
        ("web:0", 1),
        ("web", crate::core::MAX_SCALE + 1),
    ] {
        let (req, fx) = h.request(Order::Scale {
            app: app.into(),
            count: Count::To(n),
        });
        assert!(reply(&fx, req).expect("answered").is_err(), "{app} {n}");
    }
}

#[test]
fn a_shutdown_waits_for_slots_scaled_away_but_still_stopping() {
    let mut a = app("web");
    a.instances = 2;
    let mut h = H::one(a);
    h.request(Order::Scale {
        app: "web".into(),
        count: Count::To(1),
    });
    h.at(5);
    let fx = h.send(Event::ShutdownSignal { force: false });
    assert!(!fx.iter().any(|e| matches!(e, Effect::Exit { .. })));
    h.at(10);
    let fx = h.exit(S0, ExitStatus::Signal(15));
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Exit { .. })),
        "web:1 is still stopping"
    );
    let fx = h.exit(slot(0, 1), ExitStatus::Signal(15));
    assert!(fx.contains(&Effect::Exit { code: 0 }));
}

#[test]
fn scale_by_adds_or_removes_from_the_current_count_and_never_to_zero() {
    let mut a = app("web");
    a.instances = 2;
    let mut h = H::one(a);
    let (req, fx) = h.request(Order::Scale {
        app: "web".into(),
        count: Count::By(2),
    });
    assert_eq!(spawned(&fx), 2);
    let Some(Ok(Answer::Scaled { file_instances, .. })) = reply(&fx, req) else {
        panic!("a scale answer")
    };
    assert_eq!(file_instances, 2, "the file's count, for the reply's note");
    let (_, fx) = h.request(Order::Scale {
        app: "web".into(),
        count: Count::By(-1),
    });
    assert_eq!(signals(&fx).len(), 1);
    assert_eq!(h.state.apps[0].count, 3);
    assert_eq!(
        h.status_of(slot(0, 3)).state,
        StateName::Stopping,
        "the highest"
    );
    for count in [Count::By(-3), Count::To(0)] {
        let (req, fx) = h.request(Order::Scale {
            app: "web".into(),
            count,
        });
        let error = reply(&fx, req).expect("answered").expect_err("refused");
        assert_eq!(error.kind, RefusalKind::BadRequest, "{count:?}");
        assert!(error.message.contains("at least 1"), "{}", error.message);
    }
    assert_eq!(h.state.apps[0].count, 3, "a refused scale changes nothing");
}

#[test]
fn signal_with_group_reaches_each_running_instance_s_process_group() {
    let mut a = app("web");
    a.instances = 2;
    let mut h = H::one(a);
    let (req, fx) = h.request(Order::Signal {
        signal: crate::config::Signal(libc::SIGHUP),
        target: "web".into(),
        group: true,
    });
    let groups: Vec<(i32, i32)> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Signal { pgid, signal, .. } => Some((*pgid, signal.0)),
            _ => None,
        })
        .collect();
    let pids = [h.pid(S0), h.pid(slot(0, 1))];
    assert_eq!(groups, pids.map(|p| (p, libc::SIGHUP)).to_vec());
    assert!(!fx.iter().any(|e| matches!(e, Effect::SignalLeader { .. })));
    assert!(reply(&fx, req).expect("answered").is_ok());
}

#[test]
fn signal_to_an_app_with_nothing_running_is_refused() {
    let mut a = app("web");
    a.autostart = false;
    let mut h = H::one(a);
    let (req, fx) = h.request(Order::Signal {
        signal: crate::config::Signal(libc::SIGHUP),
        target: "web".into(),
        group: false,
    });
    let error = reply(&fx, req).expect("answered").expect_err("refused");
    assert!(
        error.message.contains("nothing to signal"),
        "{}",
        error.message
    );
}

#[test]
fn an_adopted_process_is_online_and_boot_starts_only_the_rest() {
    let mut a = app("a");
    a.instances = 2;
    let mut h = H::new(vec![a]);
    h.at(500);
    h.alive.insert(7, (slot(0, 0), 1));
    h.send(Event::Adopted {
        slot: slot(0, 0),
        pid: 7,
        since: ms(100),
    });
    assert_eq!(
        h.phase(slot(0, 0)),
        Phase::Online {
            pid: 7,
            gen: 1,
            since: ms(100),
            ready: true
        }
    );
    assert!(h.log.iter().any(|e| matches!(e, Effect::Log { message, .. }
        if message == "a:0 adopted (pid 7)")));
    assert_eq!(spawned(&h.send(Event::Boot)), 1, "only a:1 is started");
    let st = h.status_of(slot(0, 0));
    assert_eq!(
        (st.pid, st.uptime, st.restarts),
        (Some(7), Some(ms(400)), 0)
    );
    // A second process for a slot already taken changes nothing.
    h.send(Event::Adopted {
        slot: slot(0, 0),
        pid: 9,
        since: ms(100),
    });
    assert_eq!(h.pid(slot(0, 0)), 7);
    // A crash of an adopted process is handled like any other.
    h.at(20_000);
    let fx = h.exit(slot(0, 0), ExitStatus::Code(1));
    assert_eq!(timers(&fx).len(), 1, "{fx:?}");
    assert_eq!(h.status_of(slot(0, 0)).state, StateName::Backoff);
}

#[test]
fn startup_is_done_once_every_autostart_app_is_ready_or_failed() {
    use crate::core::startup::startup;
    let mut h = H::from_toml(
        r#"
[[app]]
name = "web"
cmd = ["w"]
instances = 2
ready = { log = "up", timeout = "5s" }

[[app]]
name = "job"
cmd = ["j"]

[[app]]
name = "manual"
cmd = ["m"]
autostart = false
"#,
    );
    let s = startup(&h.state);
    assert_eq!((s.settled, s.apps, s.deadline), (1, 2, Some(ms(5000))));
    assert!(!s.done());
    let gen = h.gen(slot(0, 0));
    h.at(50).send(Event::ProbeDone {
        slot: slot(0, 0),
        gen,
        kind: ProbeKind::Ready,
        ok: true,
        detail: "line".into(),
    });
    assert_eq!(
        startup(&h.state).settled,
        1,
        "one web instance is not ready yet"
    );
    // The other fails its first start: it exits before it is ready.
    h.at(100);
    h.exit(slot(0, 1), ExitStatus::Code(1));
    let s = startup(&h.state);
    assert!(s.done(), "{s:?}");
    assert_eq!(s.deadline, None);
    // Its restart starting again does not take that back.
    let at = timers(&h.log)
        .into_iter()
        .find_map(|(at, t)| matches!(t, Timer::Start { .. }).then_some(at))
        .expect("a backoff");
    h.at(at.as_millis() as u64).send(Event::Timer(Timer::Start {
        slot: slot(0, 1),
        at,
    }));
    assert!(matches!(
        h.phase(slot(0, 1)),
        Phase::Online { ready: false, .. }
    ));
    assert!(startup(&h.state).done());
}

#[test]
fn a_shutdown_takes_at_most_the_shorter_of_the_two_timeouts() {
    use crate::core::shutdown::longest_stop;
    let config = |shutdown: &str, kills: &[&str]| {
        let apps: String = kills
            .iter()
            .enumerate()
            .map(|(i, k)| {
                format!("[[app]]\nname = \"a{i}\"\ncmd = [\"x\"]\nkill_timeout = \"{k}\"\n")
            })
            .collect();
        let text = format!("[supervisor]\nshutdown_timeout = \"{shutdown}\"\n{apps}");
        crate::config::validate::validate(std::path::Path::new("/e.toml"), &text, None, 4, &|_| {
            true
        })
        .unwrap()
    };
    assert_eq!(longest_stop(&config("30s", &["5s", "2s"])), ms(5000));
    assert_eq!(longest_stop(&config("8s", &["20s"])), ms(8000));
    assert_eq!(longest_stop(&config("30s", &[])), ms(0));
}
