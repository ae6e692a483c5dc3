//! supd: the supervisor daemon. Runs in the foreground (systemd, containers and `&`
//! daemonize it). Argument parsing, logging setup and exit codes only; everything else
//! lives in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sup::config;
use sup::control::{server, socket_path};

/// Exit codes (DESIGN §6).
const EXIT_FATAL: u8 = 1;
const EXIT_CONFIG: u8 = 2;

const USAGE: &str = "\
Keeps the apps of an ecosystem.toml running

Usage: supd [OPTIONS]

Options:
  -c, --config <FILE>   Config file (default: ./ecosystem.toml, then /etc/sup/ecosystem.toml)
      --profile <NAME>  Overlay `[app.profile.NAME]` tables on their apps
      --socket <PATH>   Control socket path (overrides $SUP_SOCKET and the config)
      --check           Validate the config, print a summary or every error, start nothing
  -h, --help            Print help
  -V, --version         Print version
";

/// supd's few options, parsed by hand: a parser crate would be a fifth of supd's code,
/// resident in every supervisor's memory for the one parse at start.
#[derive(Debug, Default)]
struct Args {
    config: Option<PathBuf>,
    profile: Option<String>,
    socket: Option<PathBuf>,
    check: bool,
}

/// What the command line asks for.
#[derive(Debug)]
enum Parsed {
    Run(Args),
    Help,
    Version,
}

/// Parse the arguments after the program name; `Err` is a usage error, one line.
fn parse_args(argv: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Parsed, String> {
    let mut args = Args::default();
    let mut argv = argv.into_iter();
    while let Some(arg) = argv.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("unexpected argument '{}'", a.to_string_lossy()))?;
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value)),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<std::ffi::OsString, String> {
            match inline {
                Some(v) => Ok(v.into()),
                None => argv
                    .next()
                    .ok_or_else(|| format!("a value is required for '{name}'")),
            }
        };
        match flag.as_str() {
            "-c" | "--config" => args.config = Some(value("--config <FILE>")?.into()),
            "--profile" => {
                let v = value("--profile <NAME>")?;
                args.profile = Some(v.into_string().map_err(|_| "--profile is not UTF-8")?);
            }
            "--socket" => args.socket = Some(value("--socket <PATH>")?.into()),
            "--check" if inline.is_none() => args.check = true,
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    Ok(Parsed::Run(args))
}

fn main() -> ExitCode {
    // First, while supd has one thread: it takes a variable out of the environment.
    let handover = sup::runtime::take_handover();
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("supd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\nUsage: supd [OPTIONS]\n\nFor more information, try '--help'.");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Held until main returns: dropping it flushes what is queued.
    let _log_guard = init_tracing();
    let mut rescue = match handover {
        Some(Ok(handover)) => {
            let code = sup::runtime::resume(handover);
            return ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FATAL));
        }
        Some(Err(rescue)) => {
            tracing::error!(
                "re-exec: {}; taking over the running processes and reading the config file",
                rescue.error
            );
            Some(rescue)
        }
        None => None,
    };

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
                sup::human::count(errors.0.len(), "error"),
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
    let kept = rescue.as_mut().and_then(|r| r.take_control(&socket));
    let listener = match kept.map_or_else(|| server::bind(&socket), Ok) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("supd: {e}");
            return ExitCode::from(EXIT_FATAL);
        }
    };
    // Only now is it sure no other supd serves this socket: what the state file beside it
    // names is left by one that is gone (after a re-exec, by this process itself).
    if rescue.is_none() {
        sup::process::leftovers::clear(&sup::process::leftovers::state_file(&socket));
    }
    let code = sup::runtime::run(config, args.profile.clone(), listener, socket, rescue);
    ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FATAL))
}

/// supd's own diagnostics go to stderr, filtered by `RUST_LOG` (default `info`), through
/// a writer thread: a slow reader of stderr (a stalled journal, a full pipe) must never
/// stall the event loop that supervises. Under such pressure diagnostics are dropped,
/// never the apps' own logs.
fn init_tracing() -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `RUST_LOG` takes `LEVEL` or `TARGET=LEVEL,...` (no span filters: supd has no spans).
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing_subscriber::filter::LevelFilter::INFO)
        });
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        // The queue is allocated up front; the default (128,000 lines) costs 4 MiB of RSS.
        .buffered_lines_limit(1024)
        .thread_name("supd-diag")
        .finish(std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    tracing_subscriber::registry().with(fmt).with(filter).init();
    guard
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        parse_args(args.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn every_option_in_both_spellings() {
        let Parsed::Run(a) = parse(&[
            "-c",
            "a.toml",
            "--profile",
            "prod",
            "--socket=/s",
            "--check",
        ])
        .unwrap() else {
            panic!("not a run")
        };
        assert_eq!(a.config.as_deref(), Some(Path::new("a.toml")));
        assert_eq!(a.profile.as_deref(), Some("prod"));
        assert_eq!(a.socket.as_deref(), Some(Path::new("/s")));
        assert!(a.check);
        let Parsed::Run(a) = parse(&["--config=b.toml"]).unwrap() else {
            panic!("not a run")
        };
        assert_eq!(a.config.as_deref(), Some(Path::new("b.toml")));
        assert!(!a.check);
        assert!(matches!(parse(&["-h"]), Ok(Parsed::Help)));
        assert!(matches!(parse(&["--version"]), Ok(Parsed::Version)));
    }

    #[test]
    fn a_usage_error_names_the_argument() {
        assert_eq!(
            parse(&["--bogus"]).unwrap_err(),
            "unexpected argument '--bogus'"
        );
        assert_eq!(
            parse(&["--check=yes"]).unwrap_err(),
            "unexpected argument '--check=yes'"
        );
        assert_eq!(
            parse(&["-c"]).unwrap_err(),
            "a value is required for '--config <FILE>'"
        );
        assert_eq!(parse(&["x"]).unwrap_err(), "unexpected argument 'x'");
    }
}
