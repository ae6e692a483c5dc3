//! supctl: the command line of DESIGN §6 for a running supd. Parses arguments, resolves
//! the socket, sends one request through [`sup::control::client`], prints the reply
//! ([`sup::control::render`] for people, the reply's `data` for `--json`) and maps the
//! outcome to an exit code. No supervision logic and no protocol details live here.
//!
//! Exit codes: 0 ok, 1 the daemon answered with an error (or a garbled/cut-off reply),
//! 2 usage (clap), 3 supd cannot be reached. A closed stdout (`supctl status | head -1`)
//! ends quietly with 0, as ripgrep does.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use serde_json::{Map, Value};
use sup::control::client::{Client, ClientError};
use sup::control::proto::{
    ActionResult, Command, Flushed, Health, Plan, ProtoError, Records, Status, StreamName,
};
use sup::control::{render, socket_path};

/// The daemon answered with an error.
#[path = "supctl/cli.rs"]
mod cli;

use cli::{Cli, Count, Verb};

const EXIT_DAEMON_ERROR: u8 = 1;
/// supd could not be reached at the socket path.
const EXIT_UNREACHABLE: u8 = 3;

impl Verb {
    fn command(&self) -> Command {
        match self {
            Verb::Status { app } => Command::Status { app: app.clone() },
            Verb::Start { app } => Command::Start { app: app.clone() },
            Verb::Stop { app } => Command::Stop { app: app.clone() },
            Verb::Restart { app } => Command::Restart { app: app.clone() },
            Verb::Reload { app } => Command::Reload { app: app.clone() },
            Verb::Scale { app, count } => Command::Scale {
                app: app.clone(),
                instances: match count {
                    Count::To(n) => Some(*n),
                    Count::By(_) => None,
                },
                by: match count {
                    Count::By(n) => Some(*n),
                    Count::To(_) => None,
                },
            },
            Verb::Signal { signal, app, group } => Command::Signal {
                signal: signal.clone(),
                app: app.clone(),
                group: *group,
            },
            Verb::Shutdown => Command::Shutdown,
            Verb::Reexec => Command::Reexec,
            Verb::Logs { reopen: true, .. } => Command::Reopen,
            Verb::Logs {
                app,
                lines,
                follow,
                err,
                out,
                reopen: false,
            } => Command::Logs {
                app: app.clone(),
                lines: *lines,
                follow: *follow,
                stream: match (err, out) {
                    (true, _) => Some(StreamName::Err),
                    (_, true) => Some(StreamName::Out),
                    _ => None,
                },
            },
            Verb::Flush { app } => Command::Flush { app: app.clone() },
            Verb::Health => Command::Health,
            Verb::Diff { config, .. } => Command::Diff {
                // supd has its own working directory.
                config: config.as_ref().map(|p| {
                    std::path::absolute(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                        .to_string()
                }),
            },
            Verb::Apply { dry_run } => Command::Apply { dry_run: *dry_run },
        }
    }
}

fn main() -> ExitCode {
    // Usage errors exit 2, --help and --version 0: clap's own codes are the contract.
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            complain(&format!("{err:#}"));
            ExitCode::from(EXIT_DAEMON_ERROR)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    // The config a supd started here would use (`supd` without `-c`) names the socket.
    let config_socket = sup::config::default_path().and_then(socket_path::socket_from_config_file);
    let path = socket_path::resolve_for_client(cli.socket.as_deref(), config_socket.as_deref());
    let command = cli.verb.command();
    let verb = command.name();

    if let Command::Logs { .. } = command {
        return stream_logs(cli, &path, command);
    }
    let reply = match Client::call_once(&path, command) {
        Ok(reply) => reply,
        Err(err @ (ClientError::Closed { .. } | ClientError::Io { .. }))
            if matches!(cli.verb, Verb::Reexec) =>
        {
            return Ok(reexec_cut_off(cli, &path, &err));
        }
        Err(err) => return Ok(client_failure(cli, &err)),
    };
    if let Some(error) = reply.error.as_ref().filter(|_| !reply.ok) {
        if cli.json {
            let kind = serde_json::to_value(error.kind).unwrap_or(Value::Null);
            print_failure_json(kind, &error.message);
        }
        complain(&error.message);
        return Ok(ExitCode::from(EXIT_DAEMON_ERROR));
    }

    // An unhealthy answer is still an answer; its exit code is what a HEALTHCHECK reads.
    let health = match &cli.verb {
        Verb::Health => match reply.data_as::<Health>() {
            Ok(health) => Some(health),
            Err(err) => return Ok(bad_data(cli, &path, err)),
        },
        _ => None,
    };
    let plan = match &cli.verb {
        Verb::Diff { .. } | Verb::Apply { .. } => match reply.data_as::<Plan>() {
            Ok(plan) => Some(plan),
            Err(err) => return Ok(bad_data(cli, &path, err)),
        },
        _ => None,
    };
    // `diff --exit-code`: 1 when something differs, as `git diff --exit-code` does.
    let differs = matches!(
        cli.verb,
        Verb::Diff {
            exit_code: true,
            ..
        }
    ) && plan.as_ref().is_some_and(|p| p.changed);
    let unhealthy = health.as_ref().is_some_and(|h| !h.healthy) || differs;
    if cli.json {
        // The data as the daemon sent it, not re-read through our types: fields a newer
        // supd adds must reach scripts. No data at all is an empty object, still JSON.
        let data = reply.data.as_deref().map_or("{}", |d| d.get());
        print(&format!("{data}\n"))?;
        return Ok(if unhealthy {
            ExitCode::from(EXIT_DAEMON_ERROR)
        } else {
            ExitCode::SUCCESS
        });
    }
    let text = match &cli.verb {
        Verb::Status { .. } => match reply.data_as::<Status>() {
            Ok(status) => render::status_table(&status),
            Err(err) => return Ok(bad_data(cli, &path, err)),
        },
        Verb::Start { .. }
        | Verb::Stop { .. }
        | Verb::Restart { .. }
        | Verb::Reload { .. }
        | Verb::Scale { .. }
        | Verb::Signal { .. } => match reply.data_as::<ActionResult>() {
            Ok(result) => {
                let verb = match cli.verb {
                    Verb::Signal { group: true, .. } => "signal --group",
                    _ => verb,
                };
                render::action_summary(verb, &result)
            }
            Err(err) => return Ok(bad_data(cli, &path, err)),
        },
        Verb::Shutdown => "every app stopped; supd is exiting\n".to_owned(),
        Verb::Reexec => match reply.data_as::<sup::control::proto::Reexeced>() {
            Ok(r) => format!(
                "supd {} re-executed as {} from {} in {} ms (pid {}, {} processes kept)\n",
                r.from, r.to, r.exe, r.took_ms, r.pid, r.processes
            ),
            Err(err) => return Ok(bad_data(cli, &path, err)),
        },
        Verb::Logs { .. } => "log files reopened\n".to_owned(),
        Verb::Health if unhealthy => {
            for problem in health.iter().flat_map(|h| &h.problems) {
                complain(problem);
            }
            return Ok(ExitCode::from(EXIT_DAEMON_ERROR));
        }
        Verb::Health => "healthy\n".to_owned(),
        Verb::Diff { .. } => render::plan(
            plan.as_ref().unwrap_or(&Plan::default()),
            render::PlanReply::Diff,
        ),
        Verb::Apply { dry_run } => render::plan(
            plan.as_ref().unwrap_or(&Plan::default()),
            if *dry_run {
                render::PlanReply::DryRun
            } else {
                render::PlanReply::Applied
            },
        ),
        Verb::Flush { .. } => match reply.data_as::<Flushed>() {
            Ok(flushed) => format!("flushed the logs of {}\n", flushed.flushed.join(", ")),
            Err(err) => return Ok(bad_data(cli, &path, err)),
        },
    };
    print(&text)?;
    Ok(if differs {
        ExitCode::from(EXIT_DAEMON_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// `logs`: print each streamed record as it arrives (one JSON object per line with
/// `--json`), until the terminal reply, the daemon going away, or a closed stdout.
fn stream_logs(cli: &Cli, path: &Path, command: Command) -> anyhow::Result<ExitCode> {
    let follow = matches!(command, Command::Logs { follow: true, .. });
    let mut client = match Client::connect(path) {
        Ok(client) => client,
        Err(err) => return Ok(client_failure(cli, &err)),
    };
    let mut failure: Option<anyhow::Error> = None;
    let mut refused = None;
    let streamed = client.stream(command, |reply| {
        if !reply.ok {
            refused = reply.error;
            return false;
        }
        let records = reply.data_as::<Records>().unwrap_or_default().records;
        let mut text = String::new();
        for record in &records {
            if cli.json {
                text.push_str(&record.to_string());
                text.push('\n');
            } else {
                text.push_str(&render::log_line(record));
            }
        }
        match print(&text) {
            Ok(()) => true,
            Err(err) => {
                failure = Some(err);
                false
            }
        }
    });
    if let Some(err) = failure {
        return Err(err);
    }
    if let Some(error) = refused {
        if cli.json {
            let kind = serde_json::to_value(error.kind).unwrap_or(Value::Null);
            print_failure_json(kind, &error.message);
        }
        complain(&error.message);
        return Ok(ExitCode::from(EXIT_DAEMON_ERROR));
    }
    match streamed {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A follower's stream ends when supd exits: the end of the logs, not a failure.
        Err(ClientError::Closed { .. }) if follow => {
            complain("supd closed the stream (it stopped)");
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => Ok(client_failure(cli, &err)),
    }
}

/// Report a failure to talk to supd: 3 when it is not there at all, else 1.
/// `reexec`'s connection ended without an answer: the new supd could not read what the
/// old one handed over, took over the processes it found, and closed the connections it
/// could not answer. Say which supd serves now (exit 1: the state was not kept whole).
fn reexec_cut_off(cli: &Cli, path: &Path, err: &ClientError) -> ExitCode {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        match Client::call_once(path, Command::Status { app: None }) {
            Ok(reply) if reply.ok => break reply.data_as::<Status>().ok(),
            _ if std::time::Instant::now() >= deadline => break None,
            _ => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    };
    let Some(status) = status else {
        return client_failure(cli, err);
    };
    let message = format!(
        "supd {} (pid {}) serves again, but the answer to reexec was lost: the new binary \
         could not read the state handed over, so it took over the processes it found and \
         read the config file again (its log says what was lost)",
        status.supervisor.version, status.supervisor.pid
    );
    if cli.json {
        print_failure_json(Value::from(err.kind()), &message);
    }
    complain(&message);
    ExitCode::from(EXIT_DAEMON_ERROR)
}

fn client_failure(cli: &Cli, err: &ClientError) -> ExitCode {
    let message = err.to_string();
    if cli.json {
        print_failure_json(Value::from(err.kind()), &message);
    }
    complain(&message);
    let code = if err.is_unreachable() {
        EXIT_UNREACHABLE
    } else {
        EXIT_DAEMON_ERROR
    };
    ExitCode::from(code)
}

/// A reply whose data does not have the shape this supctl renders.
fn bad_data(cli: &Cli, path: &Path, source: ProtoError) -> ExitCode {
    let err = ClientError::Protocol {
        path: path.to_path_buf(),
        source,
    };
    client_failure(cli, &err)
}

/// Print the `--json` failure document. Its errors are ignored: the message also goes to
/// stderr, and the exit code, not a closed stdout, is what must reach the caller.
fn print_failure_json(kind: Value, message: &str) {
    let _ = print_json(&error_document(kind, message));
}

/// `{"error":{"kind":…,"message":…}}`, the one document `--json` prints on failure.
fn error_document(kind: Value, message: &str) -> Value {
    let mut error = Map::new();
    error.insert("kind".to_owned(), kind);
    error.insert("message".to_owned(), Value::from(message));
    let mut document = Map::new();
    document.insert("error".to_owned(), Value::Object(error));
    Value::Object(document)
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string(value).context("encoding JSON output")?;
    text.push('\n');
    print(&text)
}

/// Write to stdout without `print!`, which panics on a closed pipe.
fn print(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

fn complain(message: &str) {
    // Nothing sensible is left to do when stderr itself is gone.
    let _ = writeln!(io::stderr().lock(), "supctl: {message}");
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
