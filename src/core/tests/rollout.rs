//! Rollouts: surge first and stop first, a replacement that never gets ready, and the
//! requests waiting on them.

use super::*;
use crate::core::ProbeKind::Ready;

/// `web` with `instances` instances behind an HTTP ready check (timeout 5 s), all ready.
/// [`READY_HTTP`] with an exec ready check: one the new instance passes alone.
pub(super) fn ready_exec() -> String {
    READY_HTTP.replace("http = \"http://127.0.0.1:3000/\"", "exec = [\"true\"]")
}

fn ready_web(instances: u32, surge: u32) -> H {
    let text = ready_exec().replace(
        "instances = 2",
        &format!("instances = {instances}\nmax_surge = {surge}"),
    );
    let mut h = H::from_toml(&text);
    for i in 0..instances {
        probe_done(&mut h, slot(0, i), Ready, true);
    }
    h
}

/// Instances able to serve: ready current processes and old ones still serving.
fn serving(h: &H) -> usize {
    h.state
        .slots()
        .map(|s| {
            let st = h.status_of(s);
            let current = usize::from(st.state == StateName::Online && st.ready);
            let old = usize::from(st.old.is_some_and(|o| o.state == StateName::Online));
            current + old
        })
        .sum()
}

fn old_gen(h: &H, s: Slot) -> Gen {
    h.state.instance(s).expect("slot").old[0].gen
}

#[test]
fn surge_first_starts_each_replacement_beside_its_old_process() {
    let mut h = ready_web(3, 1);
    let before: Vec<i32> = (0..3).map(|i| h.pid(slot(0, i))).collect();
    h.at(100);
    let (req, fx) = h.request(Order::act(Action::Reload, "web"));
    assert_eq!(
        (spawned(&fx), signals(&fx).len()),
        (1, 0),
        "one surge, no stop"
    );
    for index in 0..3u32 {
        let s = slot(0, index);
        let st = h.status_of(s);
        assert_eq!(
            st.state,
            StateName::Starting,
            "web:{index} replaced in order"
        );
        assert_eq!(
            st.old.map(|o| (o.pid, o.state)),
            Some((before[index as usize], StateName::Online))
        );
        assert_eq!(serving(&h), 3, "capacity never below 3");
        let health = view::health(&h.state, h.now);
        assert!(health.healthy, "{:?}", health.problems);
        h.at(110 + 10 * u64::from(index));
        let fx = probe_done(&mut h, s, Ready, true);
        assert_eq!(
            signals(&fx),
            vec![15],
            "the old one is told to stop once ready"
        );
        assert_eq!(
            spawned(&fx),
            usize::from(index < 2),
            "the next surge does not wait for the old one to drain"
        );
        assert_eq!(serving(&h), 3);
        let gen = old_gen(&h, s);
        h.exit_gen(s, gen, ExitStatus::Signal(15));
        assert!(h.status_of(s).old.is_none());
        if index < 2 {
            assert!(reply(&h.log, req).is_none());
        }
    }
    let data = reply(&h.log, req).expect("answered").expect("ok");
    let rows = instances(&data)[0];
    assert_eq!(rows.len(), 3);
    for (row, old) in rows.iter().zip(&before) {
        assert_ne!(row.pid, Some(*old));
        assert_eq!((row.last_reason, row.restarts), (Some(Reason::Reload), 1));
    }
}

#[test]
fn the_answer_comes_when_the_last_replacement_is_ready() {
    let mut h = ready_web(1, 1);
    let (req, _) = h.request(Order::act(Action::Reload, "web"));
    let fx = probe_done(&mut h, S0, Ready, true);
    assert!(
        reply(&fx, req).expect("answered").is_ok(),
        "old still stopping"
    );
    assert_eq!(
        h.status_of(S0).old.map(|o| o.state),
        Some(StateName::Stopping)
    );
}

#[test]
fn a_surge_of_two_replaces_two_at_a_time() {
    let mut h = ready_web(4, 2);
    let (_, fx) = h.request(Order::act(Action::Reload, "web"));
    assert_eq!(spawned(&fx), 2);
    assert_eq!(serving(&h), 4);
}

#[test]
fn a_replacement_never_ready_stops_the_rollout_and_keeps_the_old() {
    let mut h = ready_web(3, 1);
    let before: Vec<i32> = (0..3).map(|i| h.pid(slot(0, i))).collect();
    h.at(100);
    let (req, _) = h.request(Order::act(Action::Reload, "web"));
    let new_gen = h.gen(S0);
    // The ready deadline (5 s) passes.
    h.at(5100);
    let fx = h.send(Event::Timer(Timer::ReadyDeadline {
        slot: S0,
        gen: new_gen,
    }));
    assert_eq!(
        signals(&fx),
        vec![15],
        "the new one is stopped, nothing else"
    );
    assert!(reply(&fx, req).is_none(), "answered once it is gone");
    let fx = h.exit(S0, ExitStatus::Signal(15));
    let error = reply(&fx, req).expect("answered").expect_err("failed");
    assert_eq!(error.kind, RefusalKind::Failed);
    assert!(
        error.message.starts_with("web:0 not ready within 5s"),
        "{}",
        error.message
    );
    for i in 0..3 {
        let st = h.status_of(slot(0, i));
        assert_eq!(
            (st.pid, st.state, st.ready),
            (Some(before[i as usize]), StateName::Online, true),
            "web:{i} keeps its old process"
        );
        assert!(st.old.is_none());
        assert_eq!(
            (st.restarts, st.last_reason),
            (0, None),
            "nothing was replaced"
        );
    }
    assert!(h.state.apps[0].rollout.is_empty());
    // The old one is the slot's process again: its events count.
    h.at(6000);
    let gen = h.phase(S0).gen().expect("a process");
    let fx = h.exit_gen(S0, gen, ExitStatus::Code(1));
    assert!(
        !timers(&fx).is_empty(),
        "a crash of the restored process backs off"
    );
}

#[test]
fn a_later_reload_after_a_failed_one_works() {
    let mut h = ready_web(2, 1);
    let (req, _) = h.request(Order::act(Action::Reload, "web"));
    h.at(10);
    h.exit(S0, ExitStatus::Code(3));
    let error = reply(&h.log, req).expect("answered").expect_err("failed");
    assert!(
        error
            .message
            .starts_with("web:0 exited with code 3 before it was ready"),
        "{}",
        error.message
    );
    let (req, fx) = h.request(Order::act(Action::Reload, "web"));
    assert_eq!(spawned(&fx), 1);
    for i in 0..2 {
        let s = slot(0, i);
        probe_done(&mut h, s, Ready, true);
        let gen = old_gen(&h, s);
        h.exit_gen(s, gen, ExitStatus::Signal(15));
    }
    assert!(reply(&h.log, req).expect("answered").is_ok());
}

#[test]
fn stop_first_failure_stops_the_new_and_leaves_the_others() {
    let mut h = ready_web(3, 0);
    let others: Vec<i32> = (1..3).map(|i| h.pid(slot(0, i))).collect();
    let (req, fx) = h.request(Order::act(Action::Reload, "web"));
    assert_eq!((spawned(&fx), signals(&fx).len()), (0, 1), "stop first");
    h.at(10);
    h.exit(S0, ExitStatus::Signal(15));
    let gen = h.gen(S0);
    h.at(5100);
    h.send(Event::Timer(Timer::ReadyDeadline { slot: S0, gen }));
    let fx = h.exit(S0, ExitStatus::Signal(15));
    assert!(reply(&fx, req).expect("answered").is_err());
    assert_eq!(h.status_of(S0).state, StateName::Stopped);
    assert_eq!(spawned(&fx), 0, "no restart loop");
    let now: Vec<i32> = (1..3).map(|i| h.pid(slot(0, i))).collect();
    assert_eq!(now, others);
}

#[test]
fn stopping_a_slot_mid_surge_stops_both_processes() {
    let mut h = ready_web(1, 1);
    h.request(Order::act(Action::Reload, "web"));
    let (req, fx) = h.request(Order::act(Action::Stop, "web"));
    assert_eq!(signals(&fx).len(), 2, "the new and the old");
    let old = old_gen(&h, S0);
    h.exit(S0, ExitStatus::Signal(15));
    assert!(reply(&h.log, req).is_none(), "the old one still runs");
    let fx = h.exit_gen(S0, old, ExitStatus::Signal(15));
    assert!(reply(&fx, req).expect("answered").is_ok());
}

#[test]
fn shutdown_mid_surge_waits_for_the_old_process_too() {
    let mut h = ready_web(1, 1);
    h.request(Order::act(Action::Reload, "web"));
    let old = old_gen(&h, S0);
    let fx = h.send(Event::ShutdownSignal { force: false });
    assert_eq!(signals(&fx).len(), 2);
    let fx = h.exit(S0, ExitStatus::Signal(15));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Exit { .. })));
    let fx = h.exit_gen(S0, old, ExitStatus::Signal(15));
    assert!(fx.iter().any(|e| matches!(e, Effect::Exit { code: 0 })));
}

#[test]
fn an_old_process_that_ignores_its_stop_is_killed_after_kill_timeout() {
    let mut h = ready_web(1, 1);
    h.request(Order::act(Action::Reload, "web"));
    let fx = probe_done(&mut h, S0, Ready, true);
    let old = old_gen(&h, S0);
    let (at, timer) = timers(&fx)
        .into_iter()
        .find(|(_, t)| matches!(t, Timer::Kill { gen, .. } if *gen == old))
        .expect("kill timer for the old process");
    h.at(at.as_millis() as u64);
    let fx = h.send(Event::Timer(timer));
    assert_eq!(signals(&fx), vec![9]);
    assert_eq!(
        h.status_of(S0).state,
        StateName::Online,
        "the new one is untouched"
    );
}

#[test]
fn the_old_process_dying_mid_surge_is_dropped() {
    let mut h = ready_web(1, 1);
    h.request(Order::act(Action::Reload, "web"));
    let old = old_gen(&h, S0);
    h.at(10);
    h.exit_gen(S0, old, ExitStatus::Code(1));
    assert!(h.status_of(S0).old.is_none());
    assert_eq!(h.status_of(S0).state, StateName::Starting);
}

#[test]
fn a_cron_restart_rolls_surge_first_too() {
    let text = format!(
        "{}cron_restart = \"0 3 * * *\"\nmax_surge = 1\n",
        ready_exec()
    );
    let mut h = H::from_toml(&text);
    probe_done(&mut h, S0, Ready, true);
    probe_done(&mut h, slot(0, 1), Ready, true);
    let fx = h.send(Event::Timer(Timer::Cron { app: 0, epoch: 0 }));
    assert_eq!((spawned(&fx), signals(&fx).len()), (1, 0));
    assert_eq!(
        h.status_of(S0).last_reason,
        None,
        "counted once it is ready"
    );
    probe_done(&mut h, S0, Ready, true);
    assert_eq!(h.status_of(S0).last_reason, Some(Reason::Cron));
}

#[test]
fn an_http_or_tcp_ready_check_rolls_stop_first() {
    // The old instance would answer the probe as well as the new one.
    let text = READY_HTTP.replace("instances = 2", "instances = 2\nmax_surge = 1");
    let mut h = H::from_toml(&text);
    for i in 0..2 {
        probe_done(&mut h, slot(0, i), Ready, true);
    }
    let (_, fx) = h.request(Order::act(Action::Reload, "web"));
    assert_eq!((spawned(&fx), signals(&fx).len()), (0, 1));
}

#[test]
fn an_app_without_a_ready_check_swaps_at_once() {
    let mut a = app("w");
    a.instances = 2;
    a.max_surge = 1;
    let mut h = H::one(a);
    let (req, fx) = h.request(Order::act(Action::Reload, "w"));
    assert_eq!((spawned(&fx), signals(&fx)), (1, vec![15]));
    assert!(reply(&fx, req).is_none());
    let old = old_gen(&h, S0);
    h.exit_gen(S0, old, ExitStatus::Signal(15));
    let old = old_gen(&h, slot(0, 1));
    let fx = h.exit_gen(slot(0, 1), old, ExitStatus::Signal(15));
    assert!(reply(&h.log, req).expect("answered").is_ok(), "{fx:?}");
}

/// Play every process along: starting ones get ready, stopping and old stopping ones
/// exit, until nothing is in transition.
pub(super) fn settle(h: &mut H) {
    for _ in 0..100 {
        let mut acted = false;
        for s in h.state.all_slots().collect::<Vec<_>>() {
            let inst = h.state.instance(s).expect("slot").clone();
            if let Some(old) = inst.old.iter().find(|o| o.stopping.is_some()) {
                h.exit_gen(s, old.gen, ExitStatus::Signal(15));
                acted = true;
            } else if let Phase::Online { ready: false, .. } = inst.phase {
                probe_done(h, s, Ready, true);
                acted = true;
            } else if let Phase::Stopping { gen, .. } = inst.phase {
                h.exit_gen(s, gen, ExitStatus::Signal(15));
                acted = true;
            }
        }
        if !acted {
            return;
        }
    }
    panic!("never settles");
}

#[test]
fn reload_during_a_scale_up_replaces_the_running_and_both_answer() {
    let mut h = ready_web(2, 1);
    let (scale, _) = h.request(Order::Scale {
        app: "web".into(),
        count: Count::To(3),
    });
    let (reload, fx) = h.request(Order::act(Action::Reload, "web"));
    assert_eq!(spawned(&fx), 1, "web:0 surges; web:2 is still starting");
    settle(&mut h);
    assert!(reply(&h.log, scale).expect("scale answered").is_ok());
    assert!(reply(&h.log, reload).expect("reload answered").is_ok());
    for i in 0..3 {
        assert_eq!(h.status_of(slot(0, i)).last_reason, Some(Reason::Reload));
    }
}
