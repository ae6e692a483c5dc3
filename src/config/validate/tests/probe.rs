//! `ready`, `health`, `listen` and `[supervisor] http`.

use super::*;

#[test]
fn probes_with_defaults_and_layers() {
    use crate::config::probe::{Check, HealthSettings, ReadySettings};
    let config = check(
        "[supervisor]\nhttp = \"127.0.0.1:9615\"\n\
         [defaults]\nhealth = { tcp = \"127.0.0.1:80\" }\n\
         [[app]]\nname = \"a\"\ncmd = \"x\"\nready = { notify = true }\n\
         [[app]]\nname = \"b\"\ncmd = \"x\"\n\
         ready = { exec = \"test -S /tmp/s\", timeout = \"5s\", interval = \"100ms\" }\n\
         health = { http = \"http://h:3000/up\", interval = \"5s\", timeout = \"2s\", failures = 2 }\n\
         [app.profile.p]\nready = { log = \"listening on \\\\d+\" }\n",
    )
    .unwrap();
    assert_eq!(
        config.supervisor.http,
        Some("127.0.0.1:9615".parse().unwrap())
    );
    let [a, b] = &config.apps[..] else { panic!() };
    assert_eq!(
        a.ready,
        Some(ReadySettings {
            check: Check::Notify,
            timeout: ReadySettings::DEFAULT_TIMEOUT,
            interval: ReadySettings::DEFAULT_INTERVAL,
        })
    );
    assert_eq!(
        a.health,
        Some(HealthSettings {
            check: Check::Tcp("127.0.0.1:80".into()),
            interval: HealthSettings::DEFAULT_INTERVAL,
            timeout: HealthSettings::DEFAULT_TIMEOUT,
            failures: HealthSettings::DEFAULT_FAILURES,
        })
    );
    let ready = b.ready.as_ref().unwrap();
    assert_eq!(
        ready.check,
        Check::Exec(vec!["test".into(), "-S".into(), "/tmp/s".into()])
    );
    assert_eq!(
        (ready.timeout, ready.interval),
        (Duration::from_secs(5), Duration::from_millis(100))
    );
    let health = b.health.as_ref().unwrap();
    assert_eq!(health.check.kind(), "http");
    assert_eq!(health.failures, 2);
    let profiled = check_with(
        "[[app]]\nname = \"b\"\ncmd = \"x\"\nready = { notify = true }\n\
         [app.profile.p]\nready = { log = \"listening on \\\\d+\" }\n",
        Some("p"),
    )
    .unwrap();
    assert_eq!(
        profiled.apps[0].ready.as_ref().map(|r| r.check.clone()),
        Some(Check::Log("listening on \\d+".into()))
    );
}

#[test]
fn listen_addresses_and_their_errors() {
    use crate::config::listen::Listen;
    let config = check(
        "[[app]]\nname = \"a\"\ncmd = \"x\"\n\
         listen = [\"tcp://127.0.0.1:3000\", \"unix:///run/a.sock\"]\n",
    )
    .unwrap();
    assert_eq!(
        config.apps[0].listen,
        [
            Listen::Tcp("127.0.0.1:3000".parse().unwrap()),
            Listen::Unix("/run/a.sock".into())
        ]
    );
    assert_eq!(
        errors(
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nlisten = [\"tcp://127.0.0.1:1\"]\n\
             [[app]]\nname = \"b\"\ncmd = \"x\"\nlisten = [\"tcp://127.0.0.1:1\"]\n\
             [[app]]\nname = \"c\"\ncmd = \"x\"\nlisten = [\"tcp://localhost:1\", 2, \"tcp://127.0.0.2:1\", \"tcp://127.0.0.2:1\"]\n\
             [[app]]\nname = \"d\"\ncmd = \"x\"\nlisten = \"tcp://127.0.0.1:2\"\n"
        ),
        [
            "8:10: `tcp://127.0.0.1:1` of app `b` is already a `listen` address of app `a` (expected one app per listening address; its instances share it)",
            "12:11: invalid `listen` address: `tcp://localhost:1`: `localhost:1` is not an IP address and port (host names are not resolved) (expected an address like \"tcp://127.0.0.1:3000\", \"tcp://[::]:3000\" or \"unix:///run/app.sock\")",
            "12:32: invalid type for `listen`: found an integer (expected an address like \"tcp://127.0.0.1:3000\", \"tcp://[::]:3000\" or \"unix:///run/app.sock\")",
            "12:56: `tcp://127.0.0.2:1` is listed twice",
            "16:10: invalid type for `listen`: found a string (expected an array of addresses, each an address like \"tcp://127.0.0.1:3000\", \"tcp://[::]:3000\" or \"unix:///run/app.sock\")",
        ]
    );
}

#[test]
fn probe_errors() {
    let cases = [
        ("ready = { }", "4:9: `ready` names no check"),
        (
            "ready = \"http://x\"",
            "4:9: invalid type for `ready`: found a string",
        ),
        (
            "ready = { notify = true, tcp = \"x:1\" }",
            "4:26: `ready` has both `notify` and `tcp`",
        ),
        (
            "ready = { notify = false }",
            "4:20: `notify = false` selects no check",
        ),
        (
            "ready = { tcp = \"x:1\", timout = \"1s\" }",
            "4:24: unknown field `timout`, did you mean `timeout`?",
        ),
        (
            "ready = { http = \"https://x/\" }",
            "4:18: invalid `http`: `https://x/`: https is not supported",
        ),
        (
            "ready = { log = \"(\" }",
            "4:17: invalid `log`: invalid regular expression: found open group without closing ')'",
        ),
        ("ready = { exec = [] }", "4:18: `exec` is empty"),
        (
            "ready = { tcp = \"x:1\", interval = \"1ms\" }",
            "4:35: `interval` must be at least 10ms",
        ),
        (
            "health = { log = \"x\" }",
            "4:12: `log` cannot be a `health` check",
        ),
        (
            "health = { notify = true }",
            "4:12: `notify` cannot be a `health` check",
        ),
        (
            "health = { tcp = \"6379\" }",
            "4:18: invalid `tcp`: `6379` has no port",
        ),
        (
            "health = { tcp = \"x:1\", failures = 0 }",
            "4:36: `failures` must be at least 1",
        ),
        (
            "ready = { tcp = \"x:1\", failures = 2 }",
            "4:24: unknown field `failures`",
        ),
    ];
    for (line, want) in cases {
        let text = format!("[[app]]\nname = \"a\"\ncmd = \"x\"\n{line}\n");
        let got = errors(&text);
        assert_eq!(got.len(), 1, "{line}: {got:?}");
        assert!(got[0].starts_with(want), "{line}: {got:?}");
    }
    let got = errors("[supervisor]\nhttp = \"localhost\"\n");
    assert!(
        got[0].starts_with("2:8: invalid `http` address `localhost`"),
        "{got:?}"
    );
}

#[test]
fn a_ready_check_on_the_app_s_own_listen_address_is_refused() {
    for (listen, ready) in [
        ("tcp://127.0.0.1:3000", "{ tcp = \"127.0.0.1:3000\" }"),
        (
            "tcp://0.0.0.0:3000",
            "{ http = \"http://localhost:3000/health\" }",
        ),
        ("tcp://[::]:3000", "{ tcp = \"[::1]:3000\" }"),
    ] {
        let text = format!(
            "[[app]]\nname = \"web\"\ncmd = \"x\"\nlisten = [\"{listen}\"]\nready = {ready}\n"
        );
        let errors = errors(&text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("1:1: the `ready` check of `web` probes tcp://"),
            "{errors:?}"
        );
        assert!(errors[0].contains("{ notify = true }"), "{errors:?}");
    }
    // Another port, or a check each instance passes alone, is fine.
    for ready in ["{ tcp = \"127.0.0.1:3001\" }", "{ log = \"listening\" }"] {
        let text = format!(
            "[[app]]\nname = \"web\"\ncmd = \"x\"\nlisten = [\"tcp://127.0.0.1:3000\"]\nready = {ready}\n"
        );
        let app = app(&text);
        assert_eq!(app.ready_on_own_listen(), None);
    }
}

#[test]
fn rollouts_stop_first_with_an_http_or_tcp_ready_check() {
    let with = |ready: &str| {
        app(&format!(
            "[[app]]\nname = \"web\"\ncmd = \"x\"\nmax_surge = 2\nready = {ready}\n"
        ))
        .rollout_surge()
    };
    assert_eq!(with("{ tcp = \"127.0.0.1:3000\" }"), 0);
    assert_eq!(with("{ http = \"http://127.0.0.1:3000/\" }"), 0);
    assert_eq!(with("{ notify = true }"), 2);
    assert_eq!(with("{ exec = [\"true\"] }"), 2);
}
