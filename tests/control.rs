//! The control socket: bad input gets error replies, the daemon and the connection stay
//! up; socket ownership (stale replaced, live refused); supctl's exit codes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn send(conn: &mut BufReader<UnixStream>, line: &[u8]) -> Value {
    conn.get_mut().write_all(line).expect("write");
    let mut reply = String::new();
    conn.read_line(&mut reply).expect("read reply");
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("bad reply {reply:?}: {e}"))
}

#[test]
fn bad_requests_get_error_replies_on_a_connection_that_stays_up() {
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app("a", &["sleep"], "")));
    let stream = UnixStream::connect(sb.socket()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut conn = BufReader::new(stream);

    let cases: &[(&[u8], &str)] = &[
        (b"this is not json\n", "bad_request"),
        (b"[1,2,3]\n", "bad_request"),
        (
            b"{\"v\":1,\"id\":5,\"cmd\":\"explode\"}\n",
            "unknown_command",
        ),
        (b"{\"v\":2,\"id\":6,\"cmd\":\"status\"}\n", "version"),
        (
            b"{\"v\":1,\"id\":7,\"cmd\":\"restart\",\"app\":\"nope\"}\n",
            "unknown_app",
        ),
        (b"{\"v\":1,\"id\":8,\"cmd\":\"stop\"}\n", "bad_request"),
        (b"\xff\xfe\n", "bad_request"),
    ];
    for (line, kind) in cases {
        let reply = send(&mut conn, line);
        assert_eq!(reply["ok"], false, "{reply}");
        assert_eq!(
            reply["error"]["kind"],
            *kind,
            "{}: {reply}",
            String::from_utf8_lossy(line)
        );
    }
    let big = [vec![b'x'; 200 * 1024], b"\n".to_vec()].concat();
    let reply = send(&mut conn, &big);
    assert_eq!(reply["error"]["kind"], "too_large");
    // The id comes back even when the rest of the request is wrong.
    let reply = send(
        &mut conn,
        b"{\"v\":1,\"id\":7,\"cmd\":\"restart\",\"app\":\"nope\"}\n",
    );
    assert_eq!(reply["id"], 7);
    // The same connection still works, and so does the daemon.
    let reply = send(&mut conn, b"{\"v\":1,\"id\":9,\"cmd\":\"status\"}\n");
    assert_eq!(
        (reply["id"].clone(), reply["ok"].clone()),
        (9.into(), true.into())
    );
    assert_eq!(reply["data"]["apps"][0]["name"], "a");
    d.assert_running();
}

#[test]
fn a_client_that_hangs_up_mid_request_does_not_hurt() {
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app("a", &["sleep"], "")));
    for _ in 0..20 {
        let mut s = UnixStream::connect(sb.socket()).expect("connect");
        let _ = s.write_all(b"{\"v\":1,\"id\":1,\"cmd\":\"sta");
    }
    for _ in 0..5 {
        let mut s = UnixStream::connect(sb.socket()).expect("connect");
        let _ = s.write_all(b"{\"v\":1,\"id\":1,\"cmd\":\"status\"}\n");
        // Gone before the reply.
    }
    d.json(&["status"]);
}

#[test]
fn the_socket_is_0660_in_a_0750_or_root_0755_directory() {
    let sb = Sandbox::new();
    let sock = sb.dir.join("run/sub/s.sock");
    let cfg = sb.write(
        "eco.toml",
        &format!(
            "[supervisor]\nsocket = \"{}\"\nlog_dir = \"{}\"\n",
            sock.display(),
            sb.dir.join("logs").display()
        ),
    );
    let d = sb.spawn_supd(&["-c", cfg.to_str().expect("utf-8")]);
    wait_until(Duration::from_secs(10), "the socket", || {
        supctl(&sock, &["status"]).status.success().then_some(())
    });
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o660);
    // Root's is open to group `sup` members, who reach the socket, which is checked.
    let dir = if nix::unistd::geteuid().is_root() {
        0o755
    } else {
        0o750
    };
    assert_eq!(mode(sock.parent().expect("dir")), dir);
    drop(d);
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let sb = Sandbox::new();
    // A socket file nobody listens on, as a crashed supd leaves behind.
    drop(UnixListener::bind(sb.socket()).expect("bind"));
    assert!(sb.socket().exists());
    let cfg = sb.config(&kit_app("a", &["sleep"], ""));
    let first = sb.start(&cfg);

    let mut second = sb.spawn_supd(&["-c", cfg.to_str().expect("utf-8")]);
    assert_eq!(second.wait_exit(Duration::from_secs(10)), Some(1));
    let err = second.stderr_text();
    assert!(
        err.contains(&format!("another supd is running (pid {})", first.pid())),
        "{err}"
    );
    first.json(&["status"]);
}

#[test]
fn supctl_exit_codes_and_messages() {
    let sb = Sandbox::new();
    let missing = sb.dir.join("nobody.sock");
    let out = supctl(&missing, &["status"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&missing.display().to_string()), "{err}");

    let d = sb.start(&sb.config(&kit_app("a", &["sleep"], "")));
    let out = d.supctl(&["restart", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no app named `nope`"));
    let out = d.supctl(&["--json", "restart", "a:3"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json error document");
    assert_eq!(v["error"]["kind"], "unknown_instance");
    let out = d.supctl(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn supctl_status_json_has_the_contract_shape() {
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app("backend", &["sleep"], "instances = 2")));
    d.wait_instance("backend", 1, "online", |r| r["state"] == "online");
    let v = d.json(&["status"]);
    assert_eq!(v["supervisor"]["pid"], d.pid());
    assert_eq!(v["supervisor"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["supervisor"]["uptime_ms"].is_u64());
    assert!(v["supervisor"]["config"]
        .as_str()
        .expect("config")
        .ends_with("ecosystem.toml"));
    let i = &v["apps"][0]["instances"][1];
    for key in [
        "index",
        "pid",
        "state",
        "ready",
        "restarts",
        "last_reason",
        "uptime_ms",
        "memory_bytes",
        "cpu_percent",
    ] {
        assert!(i.get(key).is_some(), "missing {key} in {i}");
    }
    assert_eq!(i["ready"], true);
    let one = d.json(&["status", "backend:1"]);
    assert_eq!(
        one["apps"][0]["instances"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn signal_sends_to_the_main_process_and_rejects_unknown_names() {
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app("svc", &["term-exit", "0"], "restart = \"never\"")));
    sb.wait_log("svc", "started");
    let out = d.supctl(&["signal", "TERM", "svc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("signalled svc:0 (pid "));
    sb.wait_log("svc", "got-term");
    d.wait_instance("svc", 0, "exited by its own choice", |r| {
        r["state"] == "exited"
    });
    let out = d.supctl(&["signal", "SIGNOPE", "svc"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIGNOPE"));
    d.assert_running();
}

#[test]
fn scale_up_and_down_with_real_processes() {
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app("w", &["sleep"], "")));
    d.wait_instance("w", 0, "running", |r| r["pid"].is_number());
    let out = d.supctl(&["scale", "w", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("scaled w:0 (pid "));
    let status = d.json(&["status", "w"]);
    let rows = status["apps"][0]["instances"]
        .as_array()
        .expect("rows")
        .clone();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["state"] == "online"), "{status}");
    let removed: Vec<i32> = rows[1..]
        .iter()
        .map(|r| r["pid"].as_i64().expect("pid") as i32)
        .collect();
    let out = d.supctl(&["scale", "w", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for pid in removed {
        assert!(gone(pid), "scale returns once w:1 and w:2 are gone ({pid})");
    }
    assert_eq!(
        d.json(&["status"])["apps"][0]["instances"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let out = d.supctl(&["scale", "w:0", "2"]);
    assert_eq!(out.status.code(), Some(1));
}

/// `supctl ARGS` run as uid 4242 with `groups` (numeric gids; no account needed).
fn supctl_as(sb: &Sandbox, groups: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args([
            "--reuid=4242",
            "--regid=4242",
            &format!("--groups={groups}"),
        ])
        .arg(SUPCTL)
        .arg("--socket")
        .arg(sb.socket())
        .args(args)
        .output()
        .expect("setpriv")
}

fn gid_of(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

#[test]
fn the_kernel_says_who_a_client_is_and_supd_lets_in_only_whom_it_should() {
    if !nix::unistd::geteuid().is_root() || which("setpriv").is_none() {
        eprintln!("skipped: needs root and setpriv (util-linux) to run supctl as another uid");
        return;
    }
    // Group `sup` may do everything; the Debian package makes it, CI too.
    let (Some(admin), Some(readers)) = (gid_of("sup"), gid_of("nogroup")) else {
        eprintln!("skipped: no group `sup` or `nogroup` on this machine");
        return;
    };
    let sb = Sandbox::new();
    let config = sb.config(&kit_app("app", &["sleep"], ""));
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace("[supervisor]\n", "[supervisor]\nreaders = [\"nogroup\"]\n");
    std::fs::write(&config, text).expect("config");
    let d = sb.start(&config);
    d.wait_instance("app", 0, "online", |r| r["state"] == "online");

    // The socket belongs to group sup, open to all since `readers` must reach it: supd
    // itself tells who may do what.
    let meta = std::fs::metadata(sb.socket()).expect("socket");
    assert_eq!(
        (
            meta.permissions().mode() & 0o777,
            std::os::unix::fs::MetadataExt::gid(&meta)
        ),
        (0o666, admin)
    );
    let out = supctl_as(&sb, &admin.to_string(), &["restart", "app"]);
    assert!(out.status.success(), "{out:?}");
    // Anyone else is refused, by name.
    let out = supctl_as(&sb, "4242", &["status"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied: uid 4242 is not root, nor supd's user, nor in group sup"),
        "{err}"
    );
    // A member of a `readers` group may read, and only read.
    let reader = readers.to_string();
    let out = supctl_as(&sb, &reader, &["--json", "status"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(supctl_as(&sb, &reader, &["health"]).status.code(), Some(0));
    let out = supctl_as(&sb, &reader, &["stop", "app"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may only read"),
        "{out:?}"
    );
    let row = d.instance("app", 0);
    assert_eq!(
        (row["state"].as_str(), row["restarts"].as_u64()),
        (Some("online"), Some(1))
    );
    d.assert_running();
}
