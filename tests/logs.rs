//! Logs through the real binaries: formats, odd bytes, rotation with gzip under a flood,
//! a full disk, `supctl logs` (tail and follow), `flush` and reopen.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// The `| msg` part of every line of `text` from `app:index stream`.
fn messages<'a>(text: &'a str, who: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.split_once(&format!(" {who} | ")).map(|(_, m)| m))
        .collect()
}

#[test]
fn odd_bytes_are_kept_and_long_lines_split_not_truncated() {
    let sb = Sandbox::new();
    let apps = [
        kit_app(
            "emit",
            &[
                "emit",
                "bad \\xff\\xfe end\\ncrlf\\r\\nno newline at the end",
            ],
            "restart = \"never\"",
        ),
        kit_app("long", &["long-line", "1048576"], ""),
    ]
    .concat();
    let d = sb.start(&sb.config(&apps));
    d.wait_instance("emit", 0, "exited", |r| r["state"] == "exited");
    let raw = wait_until(Duration::from_secs(10), "the unterminated line", || {
        let raw = std::fs::read(sb.log("emit")).ok()?;
        raw.ends_with(b"emit:0 out | no newline at the end\n")
            .then_some(raw)
    });
    let text = String::from_utf8_lossy(&raw);
    assert!(
        raw.windows(b"emit:0 out | bad \xff\xfe end\n".len())
            .any(|w| w == b"emit:0 out | bad \xff\xfe end\n"),
        "invalid UTF-8 kept raw in text logs: {text}"
    );
    assert!(
        text.contains("emit:0 out | crlf\n"),
        "CRLF ends a line: {text}"
    );

    sb.wait_log("long", "long-done");
    let log = std::fs::read(sb.log("long")).expect("log");
    let log = String::from_utf8_lossy(&log);
    let pieces: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" long:0 out ") && !l.contains("testkit:"))
        .collect();
    let total: usize = pieces
        .iter()
        .map(|l| l.split_once(" out ").expect("stream").1[2..].len())
        .sum();
    assert_eq!(total, 1_048_576, "every byte of the 1 MiB line is there");
    assert_eq!(pieces.len(), 16, "split into 64 KiB pieces");
    assert!(pieces[0].contains(" out | "));
    assert!(
        pieces[1..].iter().all(|p| p.contains(" out + ")),
        "continuations are marked"
    );
}

#[test]
fn stdout_and_stderr_interleave_in_one_file() {
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app("both", &["both", "200"], "")));
    // Two pipes, two readers: stdout's last line may land before stderr's.
    sb.wait_log("both", "both-done");
    sb.wait_log("both", "err | err 200");
    let text = sb.read_log("both");
    let out: Vec<&str> = messages(&text, "both:0 out");
    let err: Vec<&str> = messages(&text, "both:0 err");
    let want_out: Vec<String> = (1..=200).map(|i| format!("out {i}")).collect();
    let want_err: Vec<String> = (1..=200).map(|i| format!("err {i}")).collect();
    assert_eq!(out[..200], want_out[..]);
    assert_eq!(err, want_err);
    d.assert_running();
}

#[test]
fn json_records_embed_json_lines_and_escape_bad_bytes() {
    let sb = Sandbox::new();
    let app = kit_app(
        "api",
        &["emit", "{\"level\":\"info\",\"n\":1}\\nplain \\xff text\\n"],
        "restart = \"never\"\nlog_format = \"json\"\nlog_json = \"embed\"",
    );
    let d = sb.start(&sb.config(&app));
    d.wait_instance("api", 0, "exited", |r| r["state"] == "exited");
    let records: Vec<Value> = wait_until(Duration::from_secs(10), "two records", || {
        let text = sb.read_log("api");
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect();
        (records.len() >= 2).then_some(records)
    });
    let first = &records[0];
    assert_eq!(first["app"], "api");
    assert_eq!(first["instance"], 0);
    assert_eq!(first["stream"], "out");
    assert!(first["pid"].is_i64());
    assert!(first["ts"].as_str().expect("ts").ends_with('Z'));
    assert_eq!(first["msg"], serde_json::json!({"level": "info", "n": 1}));
    // Not valid UTF-8: still one JSON record, and nothing is lost.
    let second = serde_json::to_string(&records[1]).expect("json");
    assert!(
        second.contains("plain") && second.contains("text"),
        "{second}"
    );
}

#[test]
fn split_files_per_stream() {
    let sb = Sandbox::new();
    let app = kit_app("talker", &["stderr", "to stderr"], "log_split = true");
    let _d = sb.start(&sb.config(&app));
    let dir = sb.dir.join("logs");
    let out = wait_until(Duration::from_secs(10), "talker.out.log", || {
        let t = std::fs::read_to_string(dir.join("talker.out.log")).ok()?;
        t.contains("testkit: started").then_some(t)
    });
    let err = wait_until(Duration::from_secs(10), "talker.err.log", || {
        let t = std::fs::read_to_string(dir.join("talker.err.log")).ok()?;
        t.contains("to stderr").then_some(t)
    });
    assert!(!out.contains("to stderr") && !err.contains("testkit:"));
}

#[test]
fn a_million_lines_through_rotation_with_gzip_arrive_once_and_in_order() {
    const N: usize = 1_000_000;
    let sb = Sandbox::new();
    let app = kit_app(
        "flood",
        &["spam", &N.to_string()],
        "restart = \"never\"\nlog_max_size = \"8M\"\nlog_retain = 100\nlog_compress = true",
    );
    let d = sb.start(&sb.config(&app));
    sb.wait_log("flood", "spam-done");
    d.wait_instance("flood", 0, "exited", |r| r["state"] == "exited");
    let dir = sb.dir.join("logs");
    // Compression runs in the background; wait until no uncompressed rotation is left.
    let mut files = wait_until(Duration::from_secs(120), "compression to finish", || {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        let done = names
            .iter()
            .all(|n| n == "flood.log" || (n.starts_with("flood.log.") && n.ends_with(".gz")));
        (done && names.len() > 5).then_some(names)
    });
    // Oldest first: flood.log.N.gz ... flood.log.1.gz, then flood.log.
    files.sort_by_key(|n| {
        std::cmp::Reverse(
            n.trim_start_matches("flood.log")
                .trim_start_matches('.')
                .trim_end_matches(".gz")
                .parse::<u32>()
                .unwrap_or(0),
        )
    });
    let mut next = 1usize;
    for name in &files {
        let file = std::fs::File::open(dir.join(name)).expect("open");
        let reader: Box<dyn Read> = if name.ends_with(".gz") {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        for line in BufReader::new(reader).split(b'\n') {
            let line = line.expect("read");
            let Some(at) = line.windows(4).position(|w| w == b"| L0") else {
                continue;
            };
            let n: usize = std::str::from_utf8(&line[at + 3..at + 12])
                .expect("digits")
                .parse()
                .expect("number");
            assert_eq!(n, next, "line {next} missing or out of order (in {name})");
            next += 1;
        }
    }
    assert_eq!(next - 1, N, "every line exactly once");
}

#[test]
fn supctl_logs_shows_the_tail_then_follows() {
    let sb = Sandbox::new();
    let apps = [
        kit_app("both", &["both", "50"], ""),
        kit_app("late", &["sleep"], "autostart = false"),
    ]
    .concat();
    let d = sb.start(&sb.config(&apps));
    sb.wait_log("both", "both-done");
    sb.wait_log("both", "err | err 50");
    let out = d.supctl(&["logs", "both", "-n", "5", "--err"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = messages(&text, "both:0 err");
    assert_eq!(
        got,
        ["err 46", "err 47", "err 48", "err 49", "err 50"],
        "{text}"
    );

    let out = d.supctl(&["--json", "logs", "both:0", "-n", "1", "--out"]);
    let record: Value = serde_json::from_slice(&out.stdout).expect("one JSON record per line");
    assert_eq!(record["stream"], "out");
    assert!(record["msg"].as_str().expect("msg").contains("both-done"));

    // Follow everything; the first (past) line proves the subscription is in place.
    let mut follow = Command::new(SUPCTL)
        .arg("--socket")
        .arg(sb.socket())
        .args(["logs", "-f", "-n", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("supctl logs -f");
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    wait_until(Duration::from_secs(10), "the past line", || {
        rx.try_recv().ok()
    });
    d.json(&["start", "late"]);
    let line = wait_until(
        Duration::from_secs(1),
        "the new line within a second",
        || {
            rx.try_recv()
                .ok()
                .filter(|l| l.contains("late:0 out | testkit: started"))
        },
    );
    assert!(
        line.ends_with(&format!("pid={}", d.instance("late", 0)["pid"])),
        "{line}"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    d.assert_running();
}

#[test]
fn supctl_logs_head_exits_zero() {
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app("both", &["both", "500"], "")));
    sb.wait_log("both", "both-done");
    sb.wait_log("both", "err | err 500");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{SUPCTL} --socket {} logs -n 400 | head -1; exit ${{PIPESTATUS:-0}}",
            sb.socket().display()
        ))
        .output()
        .expect("sh");
    assert!(out.status.success(), "{out:?}");
    d.assert_running();
}

#[test]
fn flush_empties_and_sigusr1_reopens() {
    let sb = Sandbox::new();
    let d = sb.start(&sb.config(&kit_app("w", &["both", "3"], "")));
    sb.wait_log("w", "both-done");
    sb.wait_log("w", "err | err 3");
    let out = d.supctl(&["flush", "w"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::metadata(sb.log("w")).expect("log").len(),
        0,
        "flushed"
    );

    // An external logrotate moves the file away, then asks for a reopen.
    let moved = sb.dir.join("logs/w.log.moved");
    std::fs::rename(sb.log("w"), &moved).expect("rename");
    d.signal(nix::sys::signal::Signal::SIGUSR1);
    wait_until(Duration::from_secs(10), "a new w.log", || {
        sb.log("w").exists().then_some(())
    });
    d.json(&["restart", "w"]);
    sb.wait_log("w", "both-done");
    assert!(!std::fs::read_to_string(&moved)
        .expect("moved")
        .contains("both-done"));
}

#[test]
fn a_full_disk_counts_drops_and_marks_the_gap() {
    let sb = Sandbox::new();
    let mnt = sb.dir.join("small");
    std::fs::create_dir_all(&mnt).expect("mnt");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status();
    if !matches!(mounted, Ok(s) if s.success()) {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root and mount rights)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let log = mnt.join("spam.log");
    let app = kit_app(
        "spam",
        &["spam-lines", "5000"],
        &format!("restart = \"never\"\nlog_file = \"{}\"", log.display()),
    );
    let d = sb.start(&sb.config(&app));
    // Every line is accounted for once it is either in the file or counted as dropped
    // (5000 lines and `spam-done`); the child exiting is not enough, its pipe may still hold
    // lines.
    let dropped = wait_until(
        Duration::from_secs(20),
        "every line written or dropped",
        || {
            let status = d.json(&["status", "spam"]);
            let dropped = status["apps"][0]["log_dropped"].as_u64()?;
            let written = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(" spam:0 out | "))
                .count() as u64;
            (dropped > 0 && written + dropped >= 5001).then_some(dropped)
        },
    );
    d.wait_instance("spam", 0, "exited", |r| r["state"] == "exited");
    // Free the space: the next write succeeds and starts with the marker.
    std::fs::write(&log, b"").expect("truncate");
    d.json(&["start", "spam"]);
    let text = wait_until(Duration::from_secs(20), "the marker", || {
        let t = std::fs::read_to_string(&log).ok()?;
        t.contains("lines dropped").then_some(t)
    });
    // Nothing was left to write when the count was read, so the first marker carries it.
    let marker = text
        .lines()
        .find(|l| l.contains("lines dropped"))
        .expect("marker");
    assert!(
        marker.contains(&format!("[supd] {dropped} lines dropped")),
        "{marker}"
    );
    assert!(marker.contains(" spam:- err | "), "{marker}");
    d.assert_running();
}

#[test]
fn container_mode_writes_the_same_records_to_supds_stdout() {
    let sb = Sandbox::new();
    let apps = [
        kit_app(
            "both-ways",
            &["stderr", "hello container"],
            "log_target = \"both\"",
        ),
        kit_app(
            "only-out",
            &["stderr", "not in a file"],
            "log_target = \"stdout\"",
        ),
    ]
    .concat();
    let _d = sb.start(&sb.config(&apps));
    let file_line = sb.wait_log("both-ways", "hello container");
    let stdout = wait_until(Duration::from_secs(10), "records on supd's stdout", || {
        let t = std::fs::read_to_string(sb.dir.join("supd.out")).ok()?;
        (t.contains("hello container") && t.contains("not in a file")).then_some(t)
    });
    assert!(stdout.lines().any(|l| l == file_line), "{stdout}");
    assert!(
        stdout.contains("only-out:0 err | not in a file"),
        "{stdout}"
    );
    assert!(
        !sb.log("only-out").exists(),
        "stdout-only apps have no file"
    );
}
