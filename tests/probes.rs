//! Readiness and health: each kind of `ready` check gates `online`, a readiness timeout is
//! a failed start, a failing health probe restarts, and the HTTP endpoint tells it all.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// GET `path` on `port`: the status code and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to supd's http");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read reply");
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (code, body.to_string())
}

fn gate(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

fn open_gate(gate: &str) {
    std::fs::write(gate, "").expect("open the gate");
}

#[test]
fn every_kind_of_ready_check_gates_online() {
    let sb = Sandbox::new();
    let dir = sb.dir.clone();
    let (http_port, tcp_port, log_port) = (free_port(), free_port(), free_port());
    let (g_http, g_tcp, g_exec, g_notify, g_log) = (
        gate(&dir, "http"),
        gate(&dir, "tcp"),
        gate(&dir, "exec"),
        gate(&dir, "notify"),
        gate(&dir, "log"),
    );
    let apps = [
        kit_app(
            "web",
            &["serve", &http_port.to_string(), &g_http],
            &format!(
                "ready = {{ http = \"http://127.0.0.1:{http_port}/health\", interval = \"50ms\" }}"
            ),
        ),
        kit_app(
            "cache",
            &["serve", &tcp_port.to_string(), &g_tcp],
            &format!("ready = {{ tcp = \"127.0.0.1:{tcp_port}\", interval = \"50ms\" }}"),
        ),
        kit_app(
            "worker",
            &["sleep"],
            &format!(
                "ready = {{ exec = [\"test\", \"-e\", {}], interval = \"50ms\" }}",
                toml_str(&g_exec)
            ),
        ),
        kit_app(
            "daemon",
            &["notify", &g_notify],
            "ready = { notify = true }",
        ),
        kit_app(
            "logged",
            &["serve", &log_port.to_string(), &g_log],
            "ready = { log = \"listening pid=\\\\d+\" }",
        ),
    ]
    .concat();
    let d = sb.start(&sb.config(&apps));
    sb.wait_log("daemon", "notify-waiting");
    let names = ["web", "cache", "worker", "daemon", "logged"];
    for app in names {
        let row = d.wait_instance(app, 0, "spawned", |r| r["pid"].is_number());
        assert_eq!(
            (row["state"].as_str(), row["ready"].as_bool()),
            (Some("starting"), Some(false)),
            "{app}: {row}"
        );
    }
    let daemon = d.wait_instance("daemon", 0, "STATUS= shown", |r| {
        r["status_text"] == "waiting"
    });
    assert_eq!(daemon["state"], "starting");
    let health = d.supctl(&["health"]);
    assert_eq!(health.status.code(), Some(1), "not ready yet");
    assert!(String::from_utf8_lossy(&health.stderr).contains("web:0 is starting"));
    for (app, gate) in [
        ("web", &g_http),
        ("cache", &g_tcp),
        ("worker", &g_exec),
        ("daemon", &g_notify),
        ("logged", &g_log),
    ] {
        open_gate(gate);
        let row = d.wait_instance(app, 0, "ready", |r| r["ready"] == true);
        assert_eq!(row["state"], "online", "{app}: {row}");
        assert_eq!(row["restarts"], 0, "{app}: {row}");
    }
    assert_eq!(d.instance("daemon", 0)["status_text"], "serving");
    assert_eq!(d.supctl(&["health"]).status.code(), Some(0));
    d.wait_stderr("daemon:0 is ready after");
    d.wait_stderr("(notify check: READY=1)");
    d.wait_stderr("(log check: line \"testkit: listening pid=");
}

#[test]
fn not_ready_within_the_timeout_is_a_failed_start() {
    let sb = Sandbox::new();
    let never = gate(&sb.dir, "never");
    let extra = format!(
        "ready = {{ exec = [\"test\", \"-e\", {}], timeout = \"300ms\", interval = \"50ms\" }}\nrestart_delay = \"0ms\"",
        toml_str(&never)
    );
    let d = sb.start(&sb.config(&kit_app("slow", &["sleep"], &extra)));
    let row = d.wait_instance("slow", 0, "restarted after its ready timeout", |r| {
        r["restarts"].as_u64() >= Some(1)
    });
    assert_eq!(row["last_reason"], "crash", "{row}");
    d.wait_stderr("slow:0 not ready within 300ms (exec check); stopping it as a failed start");
    d.wait_stderr("slow:0 was not ready after");
}

#[test]
fn a_failing_health_probe_restarts_with_reason_probe() {
    let sb = Sandbox::new();
    let port = free_port();
    let g = gate(&sb.dir, "up");
    open_gate(&g);
    let extra = format!(
        "ready = {{ http = \"http://127.0.0.1:{port}/\", interval = \"50ms\" }}\n\
         health = {{ http = \"http://127.0.0.1:{port}/\", interval = \"100ms\", timeout = \"500ms\", failures = 2 }}"
    );
    let d = sb.start(&sb.config(&kit_app("api", &["serve", &port.to_string(), &g], &extra)));
    let first = d.wait_instance("api", 0, "ready", |r| r["ready"] == true);
    open_gate(&format!("{g}.sick"));
    let row = d.wait_instance("api", 0, "restarted by its health probe", |r| {
        r["restarts"].as_u64() >= Some(1)
    });
    std::fs::remove_file(format!("{g}.sick")).expect("healthy again");
    assert_eq!(row["last_reason"], "probe", "{row}");
    assert_eq!(row["restarts_by_reason"]["probe"], row["restarts"], "{row}");
    assert_ne!(row["pid"], first["pid"]);
    d.wait_stderr("api:0 health probe failed (HTTP 503); 1 of 2 in a row");
    d.wait_stderr("api:0 health probe failed 2 times in a row (HTTP 503); restarting it");
    d.wait_instance("api", 0, "ready again", |r| r["ready"] == true);
}

#[test]
fn the_http_endpoint_serves_metrics_healthz_and_readyz() {
    let sb = Sandbox::new();
    let port = free_port();
    let g = gate(&sb.dir, "ready");
    let app = kit_app(
        "worker",
        &["sleep"],
        &format!(
            "instances = 2\nready = {{ exec = [\"test\", \"-e\", {}], interval = \"50ms\" }}",
            toml_str(&g)
        ),
    );
    let text = std::fs::read_to_string(sb.config(&app)).expect("config");
    let text = text.replacen(
        "[supervisor]\n",
        &format!("[supervisor]\nhttp = \"127.0.0.1:{port}\"\n"),
        1,
    );
    let d = sb.start(&sb.write("ecosystem.toml", &text));
    d.wait_instance("worker", 1, "spawned", |r| r["pid"].is_number());
    assert_eq!(get(port, "/healthz"), (200, "ok\n".to_string()));
    let (code, body) = get(port, "/readyz");
    assert_eq!(code, 503);
    assert!(body.contains("worker:0 is starting"), "{body}");
    let (code, metrics) = get(port, "/metrics");
    assert_eq!(code, 200);
    for line in [
        "# TYPE sup_instance_ready gauge",
        "# TYPE sup_instance_restarts_total counter",
        "sup_instance_ready{app=\"worker\",instance=\"0\"} 0",
        "sup_instance_up{app=\"worker\",instance=\"1\"} 1",
        "sup_instance_restarts_total{app=\"worker\",instance=\"0\",reason=\"probe\"} 0",
        "sup_app_log_lines_dropped_total{app=\"worker\"} 0",
        "sup_build_info{version=\"",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    for family in [
        "sup_instance_memory_bytes",
        "sup_instance_cpu_seconds_total",
        "sup_instance_uptime_seconds",
        "sup_app_log_lines_total",
        "sup_supd_memory_bytes",
        "sup_supd_cpu_seconds_total",
    ] {
        assert!(
            metrics.contains(&format!("\n{family}")),
            "{family} missing from\n{metrics}"
        );
    }
    open_gate(&g);
    wait_until(Duration::from_secs(10), "/readyz to pass", || {
        (get(port, "/readyz") == (200, "ready\n".to_string())).then_some(())
    });
    let (_, metrics) = get(port, "/metrics");
    assert!(
        metrics.contains("sup_instance_ready{app=\"worker\",instance=\"1\"} 1"),
        "{metrics}"
    );
    let (code, _) = get(port, "/nope");
    assert_eq!(code, 404);
    d.assert_running();
    if let Some(promtool) = which("promtool") {
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run promtool");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(metrics.as_bytes())
            .expect("feed promtool");
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("promtool not installed: the metrics text was checked by the parser test only");
    }
}

#[test]
fn a_notify_message_from_outside_the_instance_is_ignored() {
    use std::os::linux::net::SocketAddrExt;
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app("svc", &["print-env"], "ready = { notify = true }")));
    sb.wait_log("svc", "env-done");
    let socket = sb
        .read_log("svc")
        .lines()
        .find_map(|l| {
            l.split_once("env NOTIFY_SOCKET=")
                .map(|(_, v)| v.trim().to_string())
        })
        .expect("NOTIFY_SOCKET in the child's environment");
    let name = socket.strip_prefix('@').expect("an abstract socket");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
    let sender = std::os::unix::net::UnixDatagram::unbound().expect("socket");
    sender.send_to_addr(b"READY=1", &addr).expect("send");
    d.wait_stderr(&format!(
        "svc:0: ignored an sd_notify message from pid {} (not a process of this instance)",
        std::process::id()
    ));
    let row = d.instance("svc", 0);
    assert_eq!(
        (row["state"].as_str(), row["ready"].as_bool()),
        (Some("starting"), Some(false)),
        "{row}"
    );
}

#[test]
fn a_taken_http_port_stops_supd_before_anything_starts() {
    let sb = Sandbox::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let app = kit_app("a", &["sleep"], "");
    let text = std::fs::read_to_string(sb.config(&app)).expect("config");
    let text = text.replacen(
        "[supervisor]\n",
        &format!("[supervisor]\nhttp = \"127.0.0.1:{port}\"\n"),
        1,
    );
    let config = sb.write("ecosystem.toml", &text);
    let mut d = sb.spawn_supd(&["-c", config.to_str().expect("utf-8 path")]);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(1));
    let err = d.stderr_text();
    assert!(
        err.contains(&format!("cannot listen on http 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("started (pid"), "nothing may start: {err}");
}

/// A stand-in for systemd's notify socket: a datagram socket in the sandbox (reads time
/// out after 10 s) and its path, for supd's `NOTIFY_SOCKET`.
fn service_manager(sb: &Sandbox) -> (std::os::unix::net::UnixDatagram, std::path::PathBuf) {
    let path = sb.dir.join("manager.sock");
    let manager = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
    manager
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    (manager, path)
}

#[test]
fn supd_tells_its_own_service_manager_ready_and_stopping() {
    let sb = Sandbox::new();
    let (manager, path) = service_manager(&sb);
    let config = sb.config(&kit_app("a", &["sleep"], ""));
    let mut d = sb.spawn_supd_env(
        &["-c", config.to_str().expect("utf-8 path")],
        &[("NOTIFY_SOCKET", path.to_str().expect("utf-8 path"))],
    );
    let mut buf = [0u8; 512];
    let n = manager.recv(&mut buf).expect("READY=1 from supd");
    let ready = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(ready.contains(&format!("MAINPID={}", d.pid())), "{ready}");
    // Ready means served: the control socket answers at once.
    assert!(d.supctl(&["status"]).status.success());
    sb.wait_log("a", "started");
    assert!(d.supctl(&["shutdown"]).status.success());
    let n = manager.recv(&mut buf).expect("STOPPING=1 from supd");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("STOPPING=1"));
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn supd_is_ready_for_its_manager_once_its_apps_are_and_pings_its_watchdog() {
    let sb = Sandbox::new();
    let (manager, path) = service_manager(&sb);
    let next = || {
        let mut buf = [0u8; 512];
        let n = manager.recv(&mut buf).expect("a message from supd");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let gate = sb.dir.join("gate").display().to_string();
    let port = free_port().to_string();
    let config = sb.config(&format!(
        "{}{}",
        kit_app(
            "web",
            &["serve", &port, &gate],
            "ready = { log = \"listening\", timeout = \"30s\" }"
        ),
        kit_app("env", &["print-env"], ""),
    ));
    let d = sb.spawn_supd_env(
        &["-c", config.to_str().expect("utf-8 path")],
        &[
            ("NOTIFY_SOCKET", path.to_str().expect("utf-8 path")),
            ("WATCHDOG_USEC", "100000"),
        ],
    );
    // While web is not ready: progress, a start timeout that covers its ready timeout,
    // and watchdog pings; no READY=1.
    let mut pings = 0;
    let mut progress = Vec::new();
    while pings < 4 {
        let m = next();
        assert!(!m.contains("READY=1"), "ready before web is: {m}");
        match m.as_str() {
            "WATCHDOG=1" => pings += 1,
            _ => progress.push(m),
        }
    }
    let first = progress.first().expect("a progress report");
    assert!(
        first.starts_with("STATUS=starting: 1 of 2 apps ready\nEXTEND_TIMEOUT_USEC="),
        "{progress:?}"
    );
    let extend: u64 = first
        .rsplit('=')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("microseconds");
    assert!(extend >= 30_000_000, "{first}");
    open_gate(&gate);
    let ready = loop {
        let m = next();
        if m != "WATCHDOG=1" {
            break m;
        }
    };
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert_eq!(d.instance("web", 0)["ready"], true);
    // supd's own manager variables are not its apps'.
    let env = sb.wait_log("env", "env-done");
    assert!(
        !env.contains("NOTIFY_SOCKET") && !env.contains("WATCHDOG_USEC"),
        "{env}"
    );
}

#[test]
fn reload_replaces_every_instance_and_returns_when_all_are_ready() {
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app(
        "web",
        &["sleep"],
        "instances = 2\nready = { log = \"started\" }",
    )));
    let before: Vec<Value> = (0..2)
        .map(|i| d.wait_instance("web", i, "ready", |r| r["ready"] == true))
        .collect();
    let out = d.supctl(&["reload", "web"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("reloaded web:0 (pid "));
    for (i, old) in before.iter().enumerate() {
        let row = d.instance("web", i);
        assert_eq!(
            (row["state"].as_str(), row["ready"].as_bool()),
            (Some("online"), Some(true)),
            "{row}"
        );
        assert_eq!(row["last_reason"], "reload", "{row}");
        assert_ne!(row["pid"], old["pid"], "replaced");
    }
    // One at a time: web:1's replacement started only once web:0's was ready.
    d.wait_stderr("web:1 is ready after");
    let log = d.stderr_text();
    let second = |needle: &str| {
        log.match_indices(needle)
            .nth(1)
            .map(|(at, _)| at)
            .unwrap_or_else(|| panic!("`{needle}` twice in\n{log}"))
    };
    assert!(
        second("web:0 is ready after") < second("web:1 started (pid"),
        "{log}"
    );
}

#[test]
fn instances_share_one_listening_socket_bound_by_supd() {
    let sb = Sandbox::new();
    let port = free_port();
    let d = sb.start(&sb.config(&kit_app(
        "api",
        &["accept"],
        &format!("instances = 3\nlisten = [\"tcp://127.0.0.1:{port}\"]\nrestart_delay = \"0ms\""),
    )));
    for i in 0..3 {
        d.wait_instance("api", i, "running", |r| r["pid"].is_number());
    }
    wait_until(
        Duration::from_secs(10),
        "3 instances ready to accept",
        || (sb.read_log("api").matches("listen-ready").count() == 3).then_some(()),
    );
    let log = sb.read_log("api");
    assert_eq!(
        log.matches("fds=1 pid_match=true names=api").count(),
        3,
        "LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES as sd_listen_fds expects:\n{log}"
    );
    let pids: Vec<i64> = (0..3)
        .map(|i| d.instance("api", i)["pid"].as_i64().expect("pid"))
        .collect();
    let ask = || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the shared port accepts");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("reply");
        reply.trim().parse::<i64>().expect("a pid")
    };
    // The kernel spreads the connections; every answer comes from one of the instances.
    let mut seen = std::collections::BTreeSet::new();
    wait_until(
        Duration::from_secs(10),
        "answers from more than one instance",
        || {
            let pid = ask();
            assert!(pids.contains(&pid), "{pid} is not an instance");
            seen.insert(pid);
            (seen.len() > 1).then_some(())
        },
    );
    // The port stays open while an instance restarts: supd holds the socket.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill api:0");
    // Once it is gone no connection can be handed to it.
    wait_until(Duration::from_secs(10), "api:0 to be reaped", || {
        gone(pids[0] as i32).then_some(())
    });
    for _ in 0..20 {
        // Connects and is answered (by api:1, api:2 or api:0's replacement): no refusal.
        let pid = ask();
        assert_ne!(pid, pids[0], "the killed instance cannot answer");
    }
    d.wait_instance("api", 0, "replaced", |r| {
        r["restarts"] == 1 && r["pid"].is_number()
    });
}

#[test]
fn a_hanging_exec_probe_is_killed_at_its_timeout_and_counts_as_failed() {
    let sb = Sandbox::new();
    let extra = "health = { exec = [\"sleep\", \"30\"], interval = \"50ms\", timeout = \"200ms\", failures = 2 }";
    let d = sb.start(&sb.config(&kit_app("svc", &["sleep"], extra)));
    d.wait_stderr("svc:0 health probe failed (timed out after 200ms); 1 of 2 in a row");
    let row = d.wait_instance("svc", 0, "restarted by the probe", |r| {
        r["restarts"].as_u64() >= Some(1)
    });
    assert_eq!(row["last_reason"], "probe");
    // Both failed probes were killed and reaped before the restart (their results come
    // from the reaper); only the new instance's probe may be running now.
    let probes = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| c == b"sleep\x0030\x00")
        .count();
    assert!(probes <= 1, "{probes} probes still sleeping");
}
