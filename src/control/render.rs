//! Human text for `supctl`: the status table and one-line action summaries, as pure
//! functions of the protocol types.
//!
//! No clock (durations come from the daemon's snapshot), no terminal queries, no I/O:
//! what the functions return is exactly what gets printed, so the tests pin it down to
//! the byte. Columns are aligned by hand; a table crate would cost more binary than the
//! twenty lines it saves.

use super::proto::{ActionResult, AppStatus, InstanceStatus, KeyChange, Plan, StateName, Status};

const HEADER: [&str; 9] = [
    "APP", "ID", "PID", "STATE", "UPTIME", "RESTARTS", "REASON", "CPU", "MEM",
];

/// The `supctl status` table: a header line, then one line per instance, columns aligned,
/// `-` for what does not apply. Instances that are down because their process ended
/// (backoff, errored, exited) get a note under the table saying how it ended, since that
/// text (a spawn error, say) is too long for a column. No apps at all is `no apps`.
pub fn status_table(status: &Status) -> String {
    if status.apps.is_empty() {
        return "no apps\n".to_owned();
    }
    let mut rows: Vec<[String; 9]> = vec![HEADER.map(str::to_owned)];
    let mut notes = Vec::new();
    for app in &status.apps {
        if app.instances.is_empty() {
            let dash = || "-".to_owned();
            rows.push([
                app.name.clone(),
                dash(),
                dash(),
                "no instances".to_owned(),
                dash(),
                dash(),
                dash(),
                dash(),
                dash(),
            ]);
        }
        if let Some(next) = &app.next_cron {
            notes.push(format!("{} next cron restart: {next}\n", app.name));
        }
        for instance in &app.instances {
            rows.push(instance_row(app, instance));
            if let Some(text) = &instance.status_text {
                notes.push(format!("{}:{} says: {text}\n", app.name, instance.index));
            }
            if let Some(old) = &instance.old {
                notes.push(format!(
                    "{}:{} replaces pid {} ({})\n",
                    app.name,
                    instance.index,
                    old.pid,
                    match old.state {
                        StateName::Online => "still serving until this one is ready",
                        _ => "stopping",
                    }
                ));
            }
            if instance.outdated {
                notes.push(format!(
                    "{}:{} runs older settings than its app's (`supctl apply` replaces it)\n",
                    app.name, instance.index
                ));
            }
            if let Some(exit) = ended_how(instance) {
                notes.push(format!(
                    "{}:{} last exit: {exit}\n",
                    app.name, instance.index
                ));
            }
        }
    }
    let mut out = align(&rows);
    if !notes.is_empty() {
        out.push('\n');
        out.extend(notes);
    }
    out
}

fn instance_row(app: &AppStatus, instance: &InstanceStatus) -> [String; 9] {
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    [
        app.name.clone(),
        instance.index.to_string(),
        or_dash(instance.pid.map(|pid| pid.to_string())),
        state_cell(instance),
        or_dash(instance.uptime_ms.map(human_duration)),
        instance.restarts.to_string(),
        or_dash(instance.last_reason.map(|reason| wire_name(&reason))),
        or_dash(instance.cpu_percent.map(|cpu| format!("{cpu:.1}%"))),
        or_dash(instance.memory_bytes.map(human_bytes)),
    ]
}

/// The state, with what a reader wants to know next to it: when a retry comes, the exit
/// code of a finished instance, whether an online one is not ready.
fn state_cell(instance: &InstanceStatus) -> String {
    let name = wire_name(&instance.state);
    let detail = match (instance.state, instance.next_start_ms, instance.exit_code) {
        (StateName::Backoff, Some(ms), _) => Some(human_wait(ms)),
        (StateName::Errored, Some(ms), _) => Some(format!("retry in {}", human_wait(ms))),
        (StateName::Exited, _, Some(code)) => Some(format!("code {code}")),
        (StateName::Online, _, _) if !instance.ready => Some("not ready".to_owned()),
        _ => None,
    };
    match detail {
        Some(detail) => format!("{name} ({detail})"),
        None => name,
    }
}

/// How the last process of an instance that is now down ended, when the daemon says.
fn ended_how(instance: &InstanceStatus) -> Option<&str> {
    match instance.state {
        StateName::Backoff | StateName::Errored | StateName::Exited => {
            instance.last_exit.as_deref()
        }
        StateName::Starting | StateName::Online | StateName::Stopping | StateName::Stopped => None,
    }
}

/// The snake_case wire name of a unit enum (`online`, `crash`), so the table uses the
/// same words as `--json` and DESIGN §5 without a second list to keep in step.
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "?".to_owned(),
    }
}

/// Left-aligned columns two spaces apart, no trailing blanks.
fn align(rows: &[[String; 9]]) -> String {
    let mut widths = [0usize; 9];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(cell);
            line.push_str(&" ".repeat(width - cell.chars().count() + 2));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A duration as its largest whole unit, rounded down: `3s`, `5m`, `2h`, `3d`.
pub fn human_duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// A short wait, more precise than [`human_duration`] while it is short, because a
/// backoff of 20 ms or 1.5 s is what a reader is watching: `20ms`, `1.2s`, `45s`, `5m`.
pub fn human_wait(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..10_000 => format!("{}.{}s", ms / 1000, ms % 1000 / 100),
        _ => human_duration(ms),
    }
}

/// A size in binary units with one decimal: `512B`, `1.5K`, `49.7M`, `2.0G`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    // f64 is exact to 2^53 bytes and one decimal needs far less; precision is no issue.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// One line saying what an order did, e.g.
/// `restarted backend:0 (pid 5123), backend:1 (pid 5124)`. `verb` is the command
/// (`start`, `stop`, `restart`, …). An instance without a process shows its state instead
/// of a pid unless it is simply `stopped`.
pub fn action_summary(verb: &str, result: &ActionResult) -> String {
    let done = past_tense(verb);
    let targets: Vec<String> = result
        .apps
        .iter()
        .flat_map(|app| {
            app.instances.iter().map(move |instance| {
                let what = match (instance.pid, instance.state) {
                    (Some(pid), _) => format!(" (pid {pid})"),
                    (None, StateName::Stopped) => String::new(),
                    (None, state) => format!(" ({})", wire_name(&state)),
                };
                format!("{}:{}{what}", app.name, instance.index)
            })
        })
        .collect();
    let note = result
        .note
        .as_ref()
        .map(|n| format!("{n}\n"))
        .unwrap_or_default();
    if targets.is_empty() {
        format!("{done} no instances\n{note}")
    } else {
        format!("{done} {}\n{note}", targets.join(", "))
    }
}

fn past_tense(verb: &str) -> String {
    match verb {
        "stop" => "stopped".to_owned(),
        "start" | "restart" | "reload" => format!("{verb}ed"),
        "scale" => "scaled".to_owned(),
        "signal" => "signalled".to_owned(),
        "signal --group" => "signalled the process groups of".to_owned(),
        other => other.to_owned(),
    }
}

/// Which reply a [`Plan`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanReply {
    /// `diff`: the differences only.
    Diff,
    /// `apply --dry-run`: and what an apply would do.
    DryRun,
    /// `apply`: what was done.
    Applied,
}

/// A [`Plan`] for people: each app that differs and how (`+` added, `-` removed, `~`
/// changed, with its keys old → new), then (but for `diff`) the steps of an apply in
/// order.
pub fn plan(plan: &Plan, reply: PlanReply) -> String {
    let applied = reply == PlanReply::Applied;
    let mut out = String::new();
    if !plan.changed {
        let what = if applied {
            "nothing to change"
        } else {
            "no differences"
        };
        return format!("{what}: what runs matches {}\n", plan.config);
    }
    if applied {
        out.push_str(&format!("applied {}:\n", plan.config));
    }
    let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".to_owned());
    let key = |out: &mut String, k: &KeyChange| {
        out.push_str(&format!(
            "    {}: {} → {}  ({})\n",
            k.key,
            value(&k.old),
            value(&k.new),
            k.needs
        ));
    };
    for app in &plan.apps {
        let sign = match app.change.as_str() {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        out.push_str(&format!("{sign} {} ({})\n", app.name, app.change));
        for k in &app.keys {
            key(&mut out, k);
        }
        if app.outdated > 0 {
            out.push_str(&format!(
                "    {} still run older settings (not replaced yet)\n",
                crate::human::count(app.outdated as usize, "instance")
            ));
        }
    }
    if !plan.supervisor.is_empty() {
        out.push_str("~ [supervisor]\n");
        for k in &plan.supervisor {
            key(&mut out, k);
        }
    }
    for refused in &plan.refused {
        out.push_str(&format!("refused: {refused}\n"));
    }
    if !plan.steps.is_empty() && reply != PlanReply::Diff {
        out.push_str(if applied {
            "done:\n"
        } else {
            "an apply would:\n"
        });
        for (n, step) in plan.steps.iter().enumerate() {
            out.push_str(&format!("  {}. {step}\n", n + 1));
        }
    }
    out
}

/// One log record from the wire (`{"ts","app","instance","pid","stream","msg"}`) as the
/// text line of a log file: `2026-11-23T03:40:00.123Z backend:0 out | message`, `+` for a
/// continuation piece, `-` as the index of supd's own records. A `msg` that is a JSON object
/// (`log_json = "embed"`) is printed compactly.
pub fn log_line(record: &serde_json::Value) -> String {
    let text = |key: &str| record[key].as_str().unwrap_or("?").to_string();
    let index = record["instance"]
        .as_u64()
        .map_or_else(|| "-".to_string(), |i| i.to_string());
    let mark = if record["cont"] == true { '+' } else { '|' };
    let msg = match &record["msg"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    format!(
        "{} {}:{} {} {} {}\n",
        text("ts"),
        text("app"),
        index,
        text("stream"),
        mark,
        msg
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::proto::{Reason, SupervisorInfo};

    fn instance(index: u32, state: StateName) -> InstanceStatus {
        InstanceStatus::blank(index, state)
    }

    fn online(index: u32, pid: i32) -> InstanceStatus {
        InstanceStatus {
            pid: Some(pid),
            ready: true,
            uptime_ms: Some(3_000),
            ..instance(index, StateName::Online)
        }
    }

    fn status(apps: Vec<AppStatus>) -> Status {
        Status {
            supervisor: SupervisorInfo {
                pid: 41,
                version: "0.1.0".to_owned(),
                uptime_ms: 5012,
                config: "/etc/sup/ecosystem.toml".to_owned(),
            },
            apps,
        }
    }

    fn app(name: &str, instances: Vec<InstanceStatus>) -> AppStatus {
        AppStatus {
            name: name.to_owned(),
            instances,
            log_dropped: 0,
            log_lines: 0,
            next_cron: None,
        }
    }

    #[test]
    fn table_of_the_design_example() {
        let row = InstanceStatus {
            restarts: 2,
            last_reason: Some(Reason::Memory),
            memory_bytes: Some(52_142_080),
            cpu_percent: Some(1.5),
            ..online(0, 57)
        };
        assert_eq!(
            status_table(&status(vec![app("backend", vec![row])])),
            "\
APP      ID  PID  STATE   UPTIME  RESTARTS  REASON  CPU   MEM
backend  0   57   online  3s      2         memory  1.5%  49.7M
"
        );
    }

    #[test]
    fn table_with_every_kind_of_row() {
        let apps = vec![
            app(
                "backend",
                vec![
                    InstanceStatus {
                        restarts: 12,
                        last_reason: Some(Reason::Cron),
                        uptime_ms: Some(7_200_000),
                        memory_bytes: Some(1_610_612_736),
                        cpu_percent: Some(104.31),
                        ..online(0, 123_456)
                    },
                    InstanceStatus {
                        restarts: 3,
                        last_reason: Some(Reason::Crash),
                        last_exit: Some("signal SIGKILL".to_owned()),
                        next_start_ms: Some(1_250),
                        status_text: None,
                        main_pid: None,
                        cpu_seconds: None,
                        restarts_by_reason: Default::default(),
                        ..instance(1, StateName::Backoff)
                    },
                    InstanceStatus {
                        pid: Some(77),
                        uptime_ms: Some(0),
                        cpu_percent: Some(0.0),
                        memory_bytes: Some(900),
                        ..instance(2, StateName::Starting)
                    },
                ],
            ),
            app(
                "worker",
                vec![
                    InstanceStatus {
                        ready: false,
                        ..online(0, 80)
                    },
                    InstanceStatus {
                        restarts: 5,
                        last_reason: Some(Reason::Crash),
                        exit_code: Some(1),
                        last_exit: Some(
                            "spawn failed: No such file or directory: ./worker".to_owned(),
                        ),
                        next_start_ms: Some(300_000),
                        status_text: None,
                        main_pid: None,
                        cpu_seconds: None,
                        restarts_by_reason: Default::default(),
                        ..instance(1, StateName::Errored)
                    },
                ],
            ),
            app(
                "migrate",
                vec![InstanceStatus {
                    exit_code: Some(0),
                    last_exit: Some("exit 0".to_owned()),
                    ..instance(0, StateName::Exited)
                }],
            ),
            app("idle", vec![instance(0, StateName::Stopped)]),
            app("scaled-down", vec![]),
        ];
        assert_eq!(
            status_table(&status(apps)),
            "\
APP          ID  PID     STATE                  UPTIME  RESTARTS  REASON  CPU     MEM
backend      0   123456  online                 2h      12        cron    104.3%  1.5G
backend      1   -       backoff (1.2s)         -       3         crash   -       -
backend      2   77      starting               0s      0         -       0.0%    900B
worker       0   80      online (not ready)     3s      0         -       -       -
worker       1   -       errored (retry in 5m)  -       5         crash   -       -
migrate      0   -       exited (code 0)        -       0         -       -       -
idle         0   -       stopped                -       0         -       -       -
scaled-down  -   -       no instances           -       -         -       -       -

backend:1 last exit: signal SIGKILL
worker:1 last exit: spawn failed: No such file or directory: ./worker
migrate:0 last exit: exit 0
"
        );
    }

    #[test]
    fn a_replacement_names_the_process_it_replaces() {
        let starting = InstanceStatus {
            pid: Some(7001),
            old: Some(crate::control::proto::OldStatus {
                pid: 5123,
                state: StateName::Online,
            }),
            outdated: false,
            ..instance(0, StateName::Starting)
        };
        let outdated = InstanceStatus {
            outdated: true,
            ..online(1, 5124)
        };
        let text = status_table(&status(vec![app("web", vec![starting, outdated])]));
        assert!(
            text.contains("web:0 replaces pid 5123 (still serving until this one is ready)\n"),
            "{text}"
        );
        assert!(text.contains("web:1 runs older settings"), "{text}");
    }

    #[test]
    fn plans_read_as_changes_then_steps() {
        let key = |k: &str, old: Option<&str>, new: Option<&str>, needs: &str| KeyChange {
            key: k.into(),
            old: old.map(Into::into),
            new: new.map(Into::into),
            needs: needs.into(),
        };
        let app = |name: &str, change: &str, keys| crate::control::proto::AppPlan {
            name: name.into(),
            change: change.into(),
            keys,
            outdated: 0,
            roll: 0,
            scale: None,
        };
        let p = Plan {
            config: "/etc/sup/ecosystem.toml".into(),
            changed: true,
            apps: vec![
                app(
                    "web",
                    "changed",
                    vec![key("env.DB_PASSWORD", Some("***"), Some("***"), "restart")],
                ),
                app("api", "added", vec![]),
                app("old", "removed", vec![]),
            ],
            supervisor: vec![],
            refused: vec![],
            steps: vec!["start api (1 instance)".into()],
        };
        assert_eq!(
            plan(&p, PlanReply::DryRun),
            "~ web (changed)\n    env.DB_PASSWORD: *** → ***  (restart)\n+ api (added)\n\
             - old (removed)\nan apply would:\n  1. start api (1 instance)\n"
        );
        assert!(!plan(&p, PlanReply::Diff).contains("would"));
        assert!(plan(&p, PlanReply::Applied).starts_with("applied /etc/sup/ecosystem.toml:\n"));
        let same = Plan {
            changed: false,
            ..Plan::default()
        };
        assert!(plan(&same, PlanReply::Diff).starts_with("no differences"));
    }

    #[test]
    fn no_apps() {
        assert_eq!(status_table(&status(vec![])), "no apps\n");
    }

    #[test]
    fn durations() {
        let cases = [
            (0, "0s"),
            (999, "0s"),
            (3_000, "3s"),
            (59_999, "59s"),
            (60_000, "1m"),
            (300_000, "5m"),
            (3_599_999, "59m"),
            (3_600_000, "1h"),
            (7_200_000, "2h"),
            (86_399_999, "23h"),
            (86_400_000, "1d"),
            (259_200_000, "3d"),
        ];
        for (ms, want) in cases {
            assert_eq!(human_duration(ms), want, "{ms}");
        }
        let waits = [
            (0, "0ms"),
            (20, "20ms"),
            (999, "999ms"),
            (1_000, "1.0s"),
            (1_250, "1.2s"),
            (9_999, "9.9s"),
            (10_000, "10s"),
            (300_000, "5m"),
        ];
        for (ms, want) in waits {
            assert_eq!(human_wait(ms), want, "{ms}");
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            (0, "0B"),
            (1023, "1023B"),
            (1024, "1.0K"),
            (1536, "1.5K"),
            (52_142_080, "49.7M"),
            (300 * 1024 * 1024, "300.0M"),
            (1_610_612_736, "1.5G"),
            (5 << 40, "5.0T"),
            (u64::MAX, "16384.0P"),
        ];
        for (bytes, want) in cases {
            assert_eq!(human_bytes(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn action_summaries() {
        let two = ActionResult {
            apps: vec![app("backend", vec![online(0, 5123), online(1, 5124)])],
            note: None,
        };
        assert_eq!(
            action_summary("restart", &two),
            "restarted backend:0 (pid 5123), backend:1 (pid 5124)\n"
        );
        assert_eq!(
            action_summary("start", &two),
            "started backend:0 (pid 5123), backend:1 (pid 5124)\n"
        );

        let stopped = ActionResult {
            apps: vec![
                app("backend", vec![instance(1, StateName::Stopped)]),
                app("worker", vec![instance(0, StateName::Exited)]),
            ],
            note: None,
        };
        assert_eq!(
            action_summary("stop", &stopped),
            "stopped backend:1, worker:0 (exited)\n"
        );

        let failed = ActionResult {
            apps: vec![app("web", vec![instance(0, StateName::Backoff)])],
            note: None,
        };
        assert_eq!(
            action_summary("start", &failed),
            "started web:0 (backoff)\n"
        );

        assert_eq!(
            action_summary(
                "restart",
                &ActionResult {
                    apps: vec![],
                    note: None
                }
            ),
            "restarted no instances\n"
        );
    }

    #[test]
    fn log_lines_read_like_the_file_format() {
        let r = serde_json::json!({"ts":"2026-11-23T03:40:00.123Z","app":"backend","instance":0,"pid":57,"stream":"out","msg":"hello"});
        assert_eq!(
            log_line(&r),
            "2026-11-23T03:40:00.123Z backend:0 out | hello\n"
        );
        let r = serde_json::json!({"ts":"2026-11-23T03:40:00.123Z","app":"api","instance":null,"stream":"err","msg":{"level":30},"cont":true});
        assert_eq!(
            log_line(&r),
            "2026-11-23T03:40:00.123Z api:- err + {\"level\":30}\n"
        );
    }
}
