//! `apply`: plans from config diffs, and carrying them out.

use std::sync::Arc;

use super::*;
use crate::core::apply::{plan, Plan, Planned, Step};

fn config(text: &str) -> Config {
    crate::config::validate::validate(
        std::path::Path::new("/etc/sup/ecosystem.toml"),
        text,
        None,
        4,
        &|_| true,
    )
    .unwrap_or_else(|e| panic!("test config: {e}"))
}

fn planned(h: &H, text: &str) -> Plan {
    plan(&h.state, Arc::new(config(text)))
}

fn apply(h: &mut H, text: &str) -> (ReqId, Vec<Effect>) {
    let plan = planned(h, text);
    h.request(Order::Apply {
        plan: Planned(Arc::new(plan)),
    })
}

fn app_toml(name: &str, extra: &str) -> String {
    format!("[[app]]\nname = \"{name}\"\ncmd = \"x\"\n{extra}\n")
}

fn steps(plan: &Plan) -> Vec<(String, Step)> {
    plan.apps.iter().map(|a| (a.name.clone(), a.step)).collect()
}

fn pids(h: &H, app: usize) -> Vec<Option<i32>> {
    (0..h.state.apps[app].count)
        .map(|i| h.phase(slot(app, i)).pid())
        .collect()
}

const TWO: &str = "[[app]]\nname = \"web\"\ncmd = \"x\"\ninstances = 2\nenv = { A = \"1\" }\n\
    [[app]]\nname = \"jobs\"\ncmd = \"y\"\n";

#[test]
fn the_same_file_plans_nothing_and_applies_at_once() {
    let mut h = H::from_toml(TWO);
    let plan = planned(&h, TWO);
    assert!(plan.is_empty(), "{plan:?}");
    assert!(plan.steps().is_empty());
    let before = (pids(&h, 0), pids(&h, 1));
    let (req, fx) = apply(&mut h, TWO);
    assert!(matches!(reply(&fx, req), Some(Ok(Answer::Applied(_)))));
    assert_eq!((spawned(&fx), signals(&fx).len()), (0, 0));
    assert_eq!((pids(&h, 0), pids(&h, 1)), before);
}

#[test]
fn added_removed_changed_and_unchanged_apps() {
    let mut h = H::from_toml(&format!("{TWO}{}", app_toml("old", "")));
    let jobs = pids(&h, 1);
    let next = format!(
        "{}{}{}",
        app_toml("web", "instances = 2\nenv = { A = \"2\" }"),
        app_toml("jobs", "").replace("\"x\"", "\"y\""),
        app_toml("new", "instances = 2"),
    );
    let plan = planned(&h, &next);
    assert_eq!(
        steps(&plan),
        vec![
            (
                "web".into(),
                Step::Update {
                    scale: None,
                    roll: 2,
                    outdated: 0
                }
            ),
            ("new".into(), Step::Add { instances: 2 }),
            ("old".into(), Step::Remove { instances: 1 }),
        ],
        "jobs is unchanged and not in the plan"
    );
    let steps = plan.steps();
    assert_eq!(steps[0], "start new (2 instances)", "{steps:?}");
    assert!(
        steps.last().is_some_and(|s| s.starts_with("stop old")),
        "{steps:?}"
    );
    let (req, fx) = apply(&mut h, &next);
    assert_eq!(pids(&h, 1), jobs, "an unchanged app keeps its processes");
    assert_eq!(h.state.apps[0].config.env["A"], "2");
    assert!(h.state.apps[2].removed);
    assert_eq!(h.state.apps[3].config.name, "new");
    assert!(spawned(&fx) >= 2, "new starts at once");
    assert!(
        reply(&fx, req).is_none(),
        "web still rolls, old still stops"
    );
    // `old` is no longer a name, and status does not show it.
    let (r, fx) = h.request(Order::act(Action::Stop, "old"));
    assert!(reply(&fx, r).expect("answered").is_err());
    let status = view::status(&h.state, None, h.now).expect("status");
    let names: Vec<&str> = status.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["web", "jobs", "new"]);
    settle(&mut h);
    let Some(Ok(Answer::Applied(done))) = reply(&h.log, req) else {
        panic!("apply answered once everything settled")
    };
    assert_eq!(done.apps.len(), 3);
    for i in 0..2 {
        let st = h.status_of(slot(0, i));
        assert_eq!((st.last_reason, st.outdated), (Some(Reason::Apply), false));
    }
    assert!(!h.state.live_slots().any(|s| s.app == 2), "old is gone");
}

#[test]
fn an_instance_count_change_alone_scales_without_restarting() {
    let mut h = H::from_toml(TWO);
    let web = pids(&h, 0);
    let next = TWO.replace("instances = 2", "instances = 4");
    let plan = planned(&h, &next);
    assert_eq!(
        steps(&plan),
        vec![(
            "web".into(),
            Step::Update {
                scale: Some((2, 4)),
                roll: 0,
                outdated: 0
            }
        )]
    );
    let (req, fx) = apply(&mut h, &next);
    assert_eq!((spawned(&fx), signals(&fx).len()), (2, 0));
    assert_eq!(pids(&h, 0)[..2], web[..]);
    assert!(reply(&fx, req).expect("answered").is_ok());
}

#[test]
fn settings_supd_uses_change_without_restarting_anything() {
    let mut h = H::from_toml(TWO);
    let web = pids(&h, 0);
    let next = TWO.replace(
        "env = { A = \"1\" }",
        "env = { A = \"1\" }\nkill_timeout = \"9s\"\nmax_memory = \"300M\"\nlog_format = \"json\"",
    );
    let plan = planned(&h, &next);
    assert_eq!(
        steps(&plan),
        vec![(
            "web".into(),
            Step::Update {
                scale: None,
                roll: 0,
                outdated: 0
            }
        )]
    );
    let (req, fx) = apply(&mut h, &next);
    assert_eq!((spawned(&fx), signals(&fx).len()), (0, 0));
    assert_eq!(pids(&h, 0), web);
    assert_eq!(h.state.apps[0].config.kill_timeout, Duration::from_secs(9));
    assert!(
        timers(&fx)
            .iter()
            .any(|(_, t)| matches!(t, Timer::Sample { app: 0 })),
        "a new memory limit starts sampling"
    );
    assert!(reply(&fx, req).expect("answered").is_ok());
}

#[test]
fn a_changed_cron_schedule_replaces_the_old_one() {
    let mut h = H::from_toml(&app_toml("c", "cron_restart = \"0 3 * * *\""));
    let (_, fx) = apply(&mut h, &app_toml("c", "cron_restart = \"0 4 * * *\""));
    assert!(fx.contains(&Effect::ArmCron { app: 0, epoch: 1 }));
    let fx = h.send(Event::Timer(Timer::Cron { app: 0, epoch: 0 }));
    assert!(
        fx.is_empty(),
        "the old schedule's timer does nothing: {fx:?}"
    );
    let (_, fx) = apply(&mut h, &app_toml("c", ""));
    assert!(!fx.iter().any(|e| matches!(e, Effect::ArmCron { .. })));
    let fx = h.send(Event::Timer(Timer::Cron { app: 0, epoch: 1 }));
    assert!(fx.is_empty(), "a removed schedule fires no more");
}

#[test]
fn a_scaled_app_goes_back_to_the_file_s_count() {
    let mut h = H::from_toml(TWO);
    h.request(Order::Scale {
        app: "web".into(),
        count: Count::To(3),
    });
    let plan = planned(&h, TWO);
    assert_eq!(
        steps(&plan),
        vec![(
            "web".into(),
            Step::Update {
                scale: Some((3, 2)),
                roll: 0,
                outdated: 0
            }
        )]
    );
    apply(&mut h, TWO);
    assert_eq!(h.state.apps[0].count, 2);
}

fn surge_web() -> (H, String) {
    let base =
        super::rollout::ready_exec().replace("instances = 2", "instances = 2\nmax_surge = 1");
    let mut h = H::from_toml(&base);
    for i in 0..2 {
        probe_done(&mut h, slot(0, i), crate::core::ProbeKind::Ready, true);
    }
    (h, base)
}

#[test]
fn an_apply_whose_first_replacement_fails_puts_the_process_settings_back() {
    let (mut h, base) = surge_web();
    let next = base.replace("cmd = \"x\"", "cmd = \"x2\"");
    let (req, _) = apply(&mut h, &next);
    h.at(10);
    h.exit(S0, ExitStatus::Code(1));
    let error = reply(&h.log, req).expect("answered").expect_err("failed");
    assert!(error
        .message
        .starts_with("web:0 exited with code 1 before it was ready"));
    assert_eq!(h.state.apps[0].config.cmd, ["x"], "what runs");
    assert!(!h.status_of(S0).outdated && !h.status_of(slot(0, 1)).outdated);
    // The change is still to apply, and the next apply tries it again.
    let plan = planned(&h, &next);
    let keys: Vec<&str> = plan.diff.apps[0]
        .changes
        .iter()
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(keys, ["cmd"]);
    assert_eq!(
        steps(&plan),
        vec![(
            "web".into(),
            Step::Update {
                scale: None,
                roll: 2,
                outdated: 0
            }
        )]
    );
    let (req, fx) = apply(&mut h, &next);
    assert_eq!(spawned(&fx), 1, "surge again");
    settle(&mut h);
    assert!(reply(&h.log, req).expect("answered").is_ok());
    assert_eq!(h.state.apps[0].config.cmd, ["x2"]);
}

#[test]
fn a_rollout_failing_midway_leaves_the_rest_outdated_for_the_next_apply() {
    let (mut h, base) = surge_web();
    let next = base.replace("cmd = \"x\"", "cmd = \"x2\"");
    let (req, _) = apply(&mut h, &next);
    probe_done(&mut h, S0, crate::core::ProbeKind::Ready, true);
    let old = h.state.instance(S0).expect("slot").old[0].gen;
    h.exit_gen(S0, old, ExitStatus::Signal(15));
    h.at(10);
    h.exit(slot(0, 1), ExitStatus::Code(1));
    assert!(reply(&h.log, req).expect("answered").is_err());
    assert_eq!(h.state.apps[0].config.cmd, ["x2"], "web:0 runs it");
    assert!(!h.status_of(S0).outdated);
    assert!(h.status_of(slot(0, 1)).outdated);
    // The file did not change, but web:1 still runs the old command.
    let plan = planned(&h, &next);
    assert_eq!(
        steps(&plan),
        vec![(
            "web".into(),
            Step::Update {
                scale: None,
                roll: 1,
                outdated: 1
            }
        )]
    );
    let (req, _) = apply(&mut h, &next);
    settle(&mut h);
    assert!(reply(&h.log, req).expect("answered").is_ok());
    assert!(!h.status_of(slot(0, 1)).outdated);
}

#[test]
fn apply_is_refused_during_a_shutdown() {
    let mut h = H::from_toml(TWO);
    h.send(Event::ShutdownSignal { force: false });
    let (req, fx) = apply(&mut h, &app_toml("other", ""));
    let error = reply(&fx, req).expect("answered").expect_err("refused");
    assert_eq!(error.kind, RefusalKind::ShuttingDown);
    assert_eq!(h.state.apps.len(), 2);
}
