//! Builds the man pages and shell completions the Debian package installs, from the
//! sources they describe, so they cannot drift from them:
//!
//! - `supctl.1` and the bash, zsh and fish completions of supctl from its clap
//!   definition (`src/bin/supctl/cli.rs`);
//! - `supd.8` and supd's completions from `supd --help` (supd parses its few options by
//!   hand, so its help text is the definition);
//! - `ecosystem.toml.5` from the README's configuration reference.
//!
//! `cargo run --example docs -- SUPD_BINARY README OUT_DIR`; the pages are gzipped (with no
//! timestamp, so a rebuild gives the same bytes).

use std::io::Write as _;
use std::path::Path;

use clap::CommandFactory;

#[path = "../src/bin/supctl/cli.rs"]
#[allow(dead_code)] // the parser of `scale`'s N is used by supctl, not here
mod cli;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [supd, readme, out] = args.as_slice() else {
        eprintln!("usage: docs SUPD_BINARY README OUT_DIR");
        std::process::exit(2);
    };
    let out = Path::new(out);
    std::fs::create_dir_all(out.join("completions")).expect("docs: cannot create OUT_DIR");

    // supctl.1 and a supctl-VERB.1 for each verb, which supctl.1 refers to.
    let mut supctl = cli::Cli::command();
    let pages = out.join("pages");
    std::fs::create_dir_all(&pages).expect("docs: cannot create OUT_DIR");
    clap_mangen::generate_to(supctl.clone(), &pages).expect("docs: supctl pages");
    for entry in std::fs::read_dir(&pages).expect("docs: pages") {
        let path = entry.expect("docs: pages").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let page = std::fs::read(&path).expect("docs: a supctl page");
        gzip(&out.join(format!("{name}.gz")), &page);
    }
    std::fs::remove_dir_all(&pages).expect("docs: pages");

    let help = std::process::Command::new(supd)
        .arg("--help")
        .output()
        .expect("docs: cannot run supd --help");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let mut supd_cmd = supd_command(&help);
    let mut page = Vec::new();
    clap_mangen::Man::new(supd_cmd.clone())
        .section("8")
        .render(&mut page)
        .expect("docs: supd.8");
    gzip(&out.join("supd.8.gz"), &page);

    let text = std::fs::read_to_string(readme).expect("docs: cannot read the README");
    gzip(
        &out.join("ecosystem.toml.5.gz"),
        config_page(&text).as_bytes(),
    );

    let dir = out.join("completions");
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut supctl, "supctl", &dir).expect("docs: supctl");
        clap_complete::generate_to(shell, &mut supd_cmd, "supd", &dir).expect("docs: supd");
    }
}

fn gzip(path: &Path, bytes: &[u8]) {
    let file = std::fs::File::create(path).expect("docs: cannot write a page");
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(file, flate2::Compression::best());
    gz.write_all(bytes).expect("docs: cannot write a page");
    gz.finish().expect("docs: cannot write a page");
}

/// supd's command line, read from its `--help`: the first line is what it does; each
/// option line is `  -c, --config <FILE>  What it is`.
fn supd_command(help: &str) -> clap::Command {
    let about = help.lines().next().unwrap_or("").to_string();
    let mut cmd = clap::Command::new("supd")
        .about(about)
        .long_about(
            "supd keeps the apps of an ecosystem.toml running: it restarts them on crash \
             (with backoff), over a memory limit or on a cron schedule, captures their \
             output into rotated logs, and stops them gracefully. supctl(1) controls it; \
             ecosystem.toml(5) is its configuration.",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_flag(true)
        .disable_version_flag(true);
    let options = help
        .lines()
        .skip_while(|l| !l.starts_with("Options:"))
        .skip(1);
    for line in options.map(str::trim).filter(|l| l.starts_with('-')) {
        // The spec and its text are two or more spaces apart; inside the spec, one.
        let (spec, text) = match line.find("  ") {
            Some(i) => (line[..i].trim(), line[i..].trim()),
            None => (line, ""),
        };
        let mut short = None;
        let mut long = None;
        let mut value = None;
        for part in spec.split([',', ' ']).filter(|p| !p.is_empty()) {
            if let Some(l) = part.strip_prefix("--") {
                long = Some(l.to_string());
            } else if let Some(s) = part.strip_prefix('-') {
                short = s.chars().next();
            } else if part.starts_with('<') {
                value = Some(part.trim_matches(['<', '>']).to_string());
            }
        }
        let Some(name) = long else { continue };
        // clap's builder takes static strings; this program runs once and exits.
        let name: &'static str = name.leak();
        let mut arg = clap::Arg::new(name).long(name).help(text.to_string());
        if let Some(s) = short {
            arg = arg.short(s);
        }
        arg = match value {
            Some(v) => arg.value_name(&*v.leak()).action(clap::ArgAction::Set),
            None => arg.action(clap::ArgAction::SetTrue),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// `ecosystem.toml(5)`: the README's tables between `<!-- config-keys -->` and
/// `<!-- /config-keys -->`, as roff.
fn config_page(readme: &str) -> String {
    let mut roff = format!(
        ".TH ECOSYSTEM.TOML 5 \"\" \"sup {}\" \"File Formats\"\n\
         .SH NAME\necosystem.toml \\- the apps supd(8) keeps running\n\
         .SH DESCRIPTION\nA TOML file: a \\fB[supervisor]\\fR table for supd itself, a \
         \\fB[defaults]\\fR table for every app, and one \\fB[[app]]\\fR table per app. \
         \\fBsupd --check\\fR validates a file and names the line and column of every \
         error. Durations are written \"500ms\", \"5s\", \"2m\"; sizes \"64K\", \"300M\".\n",
        env!("CARGO_PKG_VERSION")
    );
    let section = readme
        .split("<!-- config-keys -->")
        .nth(1)
        .and_then(|s| s.split("<!-- /config-keys -->").next())
        .unwrap_or("");
    for line in section.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("|---") || line.starts_with("| key ") {
            continue;
        }
        if let Some(row) = line.strip_prefix('|') {
            let cells: Vec<&str> = split_row(row);
            if let [key, default, meaning, ..] = cells.as_slice() {
                roff.push_str(&format!(
                    ".TP\n.B {}\n{} (default: {})\n",
                    escape(&plain(key)),
                    escape(&plain(meaning)),
                    escape(&plain(default))
                ));
            }
        } else {
            // `[supervisor]`: and the like: the table that follows.
            if !roff.contains(".SH KEYS") {
                roff.push_str(".SH KEYS\n");
            }
            let heading = plain(line);
            roff.push_str(&format!(".SS {}\n", escape(heading.trim_end_matches(':'))));
        }
    }
    roff.push_str(".SH SEE ALSO\nsupd(8), supctl(1)\n");
    roff
}

/// The cells of a Markdown table row (after its leading `|`); `\|` is a `|` in a cell.
fn split_row(row: &str) -> Vec<&str> {
    let mut cells = Vec::new();
    let mut start = 0;
    let bytes = row.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'|' && (i == 0 || bytes[i - 1] != b'\\') {
            cells.push(row[start..i].trim());
            start = i + 1;
        }
    }
    cells
}

/// Markdown code spans and escapes as plain text.
fn plain(text: &str) -> String {
    text.replace('`', "").replace("\\|", "|")
}

/// Text safe in a roff line: backslashes doubled, a leading `.` or `'` guarded.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\\\").replace('-', "\\-");
    if text.starts_with(['.', '\'']) {
        format!("\\&{text}")
    } else {
        text
    }
}
