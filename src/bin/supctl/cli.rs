//! supctl's command line, in a file of its own so the build of the man pages and shell
//! completions (`examples/docs.rs`) reads the same definition.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Control a running supd.
#[derive(Debug, Parser)]
#[command(name = "supctl", version)]
pub struct Cli {
    /// The control socket of supd
    ///
    /// Default: $SUP_SOCKET, else `[supervisor] socket` of ./ecosystem.toml (or
    /// /etc/sup/ecosystem.toml when there is none here), else $XDG_RUNTIME_DIR/sup/supd.sock,
    /// /tmp/sup-UID/supd.sock without XDG_RUNTIME_DIR, /run/sup/supd.sock for root (and
    /// for a user with no supd of their own when a system supd serves it).
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print one JSON document on stdout instead of text
    ///
    /// The reply's data (for status, the shape in the README), or {"error":{"kind":…,"message":…}}
    /// on failure.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
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

/// `scale`'s N: how many instances, or how many more (`+2`) or fewer (`-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    To(u32),
    By(i64),
}

pub fn parse_count(text: &str) -> Result<Count, String> {
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
