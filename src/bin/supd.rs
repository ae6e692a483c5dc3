//! supd: the supervisor daemon. Runs in the foreground (systemd, containers and `&`
//! daemonize it). Argument parsing, logging setup and exit codes only; everything else
//! lives in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use sup::config;
use sup::control::{server, socket_path};

/// Exit codes (DESIGN §6).
const EXIT_FATAL: u8 = 1;
const EXIT_CONFIG: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "supd",
    version,
    about = "Keeps the apps of an ecosystem.toml running"
)]
struct Args {
    /// Config file (default: ./ecosystem.toml, then /etc/sup/ecosystem.toml).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Overlay `[app.profile.NAME]` tables on their apps.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Control socket path (overrides $SUP_SOCKET and the config).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Validate the config, print a summary or every error, start nothing.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_CONFIG } else { 0 });
        }
    };
    // Held until main returns: dropping it flushes what is queued.
    let _log_guard = init_tracing();

    let path = match args
        .config
        .clone()
        .or_else(|| config::default_path().map(Path::to_path_buf))
    {
        Some(path) => path,
        None => {
            eprintln!("supd: no config file: pass -c FILE, or create ./ecosystem.toml or /etc/sup/ecosystem.toml");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let config = match config::load(&path, args.profile.as_deref(), cpus) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "supd: {} in {}; nothing started",
                plural(errors.0.len(), "error"),
                path.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check {
        println!("{}", config::validate::summary(&config));
        return ExitCode::SUCCESS;
    }

    let socket = socket_path::resolve(args.socket.as_deref(), config.supervisor.socket.as_deref());
    if nix::unistd::getpid().as_raw() != 1 {
        if let Err(e) = sup::process::reaper::become_subreaper() {
            tracing::warn!(
                "cannot become a child subreaper ({e}); orphans of apps will escape to init"
            );
        }
    }
    // Bound before any thread that creates files exists: binding sets the process-wide
    // umask for an instant (the diagnostics thread only writes to stderr).
    let listener = match server::bind(&socket) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("supd: {e}");
            return ExitCode::from(EXIT_FATAL);
        }
    };
    let code = sup::runtime::run(config, args.profile.clone(), listener, socket);
    ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FATAL))
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// supd's own diagnostics go to stderr, filtered by `RUST_LOG` (default `info`), through
/// a writer thread: a slow reader of stderr (a stalled journal, a full pipe) must never
/// stall the event loop that supervises. Under such pressure diagnostics are dropped,
/// never the apps' own logs.
fn init_tracing() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        // The queue is allocated up front; the default (128,000 lines) costs 4 MiB of RSS.
        .buffered_lines_limit(1024)
        .thread_name("supd-diag")
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    guard
}
