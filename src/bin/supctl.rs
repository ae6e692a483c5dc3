//! supctl: the command line of DESIGN §6 for a running supd. Parses arguments, resolves
//! the socket, sends one request through [`sup::control::client`], prints the reply
//! ([`sup::control::render`] for people, the reply's `data` for `--json`) and maps the
//! outcome to an exit code. No supervision logic and no protocol details live here.
//!
//! Exit codes: 0 ok, 1 the daemon answered with an error (or a garbled/cut-off reply),
//! 2 usage (clap), 3 supd cannot be reached. A closed stdout (`supctl status | head -1`)
//! ends quietly with 0, as ripgrep does.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::{Map, Value};
use sup::control::client::{Client, ClientError};
use sup::control::proto::{
    ActionResult, Command, Flushed, Health, Plan, ProtoError, Records, Status, StreamName,
};
use sup::control::{render, socket_path};

/// The daemon answered with an error.
const EXIT_DAEMON_ERROR: u8 = 1;
/// supd could not be reached at the socket path.
const EXIT_UNREACHABLE: u8 = 3;

/// Control a running supd.
#[derive(Debug, Parser)]
#[command(name = "supctl", version)]
struct Cli {
    /// The control socket of supd
    ///
    /// Default: $SUP_SOCKET, else `[supervisor] socket` of ./ecosystem.toml (or
    /// /etc/sup/ecosystem.toml when there is none here), else $XDG_RUNTIME_DIR/sup/supd.sock,
    /// /tmp/sup-UID/supd.sock without XDG_RUNTIME_DIR, /run/sup/supd.sock for root.
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Print one JSON document on stdout instead of text
    ///
    /// The reply's data (for status, the shape in the README), or {"error":{"kind":…,"message":…}}
    /// on failure.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Show apps and instances: pid, state, uptime, restarts, last reason, cpu, memory
    #[command(visible_aliases = ["list", "ls"])]
    Status {
        /// `name`, `name:INDEX` or `all` [default: all]
        #[arg(value_name = "APP")]
        app: Option<String>,
    },
    /// Start the stopped instances of APP (`name`, `name:INDEX` or `all`)
    Start {
        #[arg(value_name = "APP")]
        app: String,
    },
    /// Stop APP (`name`, `name:INDEX` or `all`): stop signal, then SIGKILL after kill_timeout
    Stop {
        #[arg(value_name = "APP")]
        app: String,
    },
    /// Stop, then start APP (`name`, `name:INDEX` or `all`)
    Restart {
        #[arg(value_name = "APP")]
        app: String,
    },
    /// Replace the running instances of APP one at a time without downtime: a new one
    /// starts beside each old one (`max_surge`), which stops once the new one is ready
    /// (with `max_surge = 0`: stop first, `max_unavailable` at a time)
    Reload {
        #[arg(value_name = "APP")]
        app: String,
    },
    /// Run N instances of APP from now on (`+N` adds N, `-N` removes the N highest):
    /// new ones start, the highest indexes stop. Lasts until the next `apply` or supd
    /// restart, which bring back the config file's `instances`
    Scale {
        #[arg(value_name = "APP")]
        app: String,
        /// N, +N or -N
        #[arg(value_name = "N", allow_hyphen_values = true, value_parser = parse_count)]
        count: Count,
    },
    /// Send SIGNAL (`HUP`, `SIGUSR2`, a number) to the main process of each running
    /// instance of APP, e.g. to make it reopen its logs or reload its own config
    Signal {
        /// To every process of each instance's process group, not only its main process
        #[arg(long)]
        group: bool,
        #[arg(value_name = "SIGNAL")]
        signal: String,
        #[arg(value_name = "APP")]
        app: String,
    },
    /// Stop every app and make supd exit, as SIGTERM does
    Shutdown,
    /// Execute supd's binary again in place (an upgrade), every app kept running
    Reexec,
    /// Show the last log lines of APP (default: every app), then follow with -f
    Logs {
        /// `name`, `name:INDEX` or `all` [default: all]
        #[arg(value_name = "APP")]
        app: Option<String>,
        /// How many past lines
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = sup::control::proto::DEFAULT_LOG_LINES)]
        lines: u32,
        /// Keep printing new lines as they are written (Ctrl-C to stop)
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only standard error
        #[arg(long, conflicts_with = "out")]
        err: bool,
        /// Only standard output
        #[arg(long)]
        out: bool,
        /// Reopen every log file instead (after an external logrotate moved them)
        #[arg(long, conflicts_with_all = ["follow", "err", "out", "app"])]
        reopen: bool,
    },
    /// Exit 0 when every instance that should run is online and ready, else 1 with the
    /// reasons: a container's HEALTHCHECK
    Health,
    /// Show how the config file differs from what runs: apps added, removed, changed
    /// (with each changed key, old → new; secret-looking env values masked)
    Diff {
        /// Compare this file instead of supd's own (supd reads it)
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Exit 1 when there are differences, like `git diff --exit-code`
        #[arg(long)]
        exit_code: bool,
    },
    /// Re-read supd's config file and make it so, changing only what differs: start
    /// added apps, stop removed ones, roll changed ones (new instance ready before the old
    /// stops). A bad file changes nothing. SIGHUP to supd does the same
    Apply {
        /// Only print what it would do, in order
        #[arg(long)]
        dry_run: bool,
    },
    /// Empty the log files of APP (default: every app), as `pm2 flush` does
    Flush {
        /// `name` or `all` [default: all]
        #[arg(value_name = "APP")]
        app: Option<String>,
    },
}

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

/// `scale`'s N: how many instances, or how many more (`+2`) or fewer (`-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    To(u32),
    By(i64),
}

fn parse_count(text: &str) -> Result<Count, String> {
    let bad = || format!("`{text}` is not N, +N or -N (N a whole number of at least 1)");
    let count = match text.as_bytes().first() {
        Some(b'+') => Count::By(text[1..].parse::<u32>().map_err(|_| bad())?.into()),
        Some(b'-') => Count::By(-i64::from(text[1..].parse::<u32>().map_err(|_| bad())?)),
        _ => Count::To(text.parse::<u32>().map_err(|_| bad())?),
    };
    match count {
        Count::To(0) | Count::By(0) => Err(bad()),
        count => Ok(count),
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
