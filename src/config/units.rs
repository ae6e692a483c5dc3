//! The units of config values: durations (`"500ms"`, `"1m30s"`), sizes (`"512M"`),
//! signal names (`"SIGTERM"`), instance counts (`4`, `"max"`) and command lines split like
//! a shell would.
//!
//! Pure string-to-value functions. Their errors are bare messages; [`super::validate`]
//! pins them to a file position and adds what was expected.

use std::time::Duration;

use super::raw::suggest;
use super::Signal;

/// What a duration looks like, for error messages.
pub const DURATION_EXPECTED: &str = "a duration like \"500ms\", \"5s\", \"2m\"";
/// What a size looks like, for error messages.
pub const SIZE_EXPECTED: &str = "a size like \"512M\", \"1G\", \"64K\"";
/// What a signal looks like, for error messages.
pub const SIGNAL_EXPECTED: &str =
    "a signal name like \"SIGTERM\", \"SIGINT\", \"SIGHUP\", \"SIGQUIT\", \"SIGUSR1\", \"SIGUSR2\"";
/// What an instance count looks like, for error messages.
pub const INSTANCES_EXPECTED: &str = "a positive integer or \"max\"";

/// Parse a duration: one or more `<integer><unit>` parts with the units `ms`, `s`, `m`
/// (minutes), `h`, `d`, e.g. `"500ms"`, `"5s"`, `"1m30s"`. `"0"` alone is zero; any other
/// bare number is refused, because `kill_timeout = "5"` could mean seconds or
/// milliseconds and PM2 users would guess differently.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "duration `{text}` has no unit; add one, e.g. \"{text}s\" or \"{text}ms\""
        ));
    }
    let too_large = || format!("duration `{text}` is too large");
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        if digits.is_empty() {
            return Err(format!("invalid duration `{text}`"));
        }
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let n: u64 = digits.parse().map_err(|_| too_large())?;
        let part = match unit {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            "d" => n.checked_mul(86_400).map(Duration::from_secs),
            "" => {
                return Err(match after.chars().next() {
                    None => format!("invalid duration `{text}`: `{digits}` has no unit"),
                    Some('.') => format!(
                        "invalid duration `{text}`: fractions are not supported; \
                         use a smaller unit like ms"
                    ),
                    Some(c) => format!("invalid duration `{text}`: unexpected {c:?}"),
                })
            }
            other => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{other}` (units: ms, s, m, h, d)"
                ))
            }
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(too_large)?;
        rest = after;
    }
    Ok(total)
}

/// Parse a size in bytes: an integer with an optional unit `B`, `K`, `M`, `G`, `T`
/// (case-insensitive; `KB`/`KiB` and so on are accepted too). The units are binary:
/// `"1K"` = 1024 bytes and `"512M"` = 512 MiB, as memory limits are usually meant.
/// A bare number is bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty size".into());
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("invalid size `{text}`"));
    }
    let shift = match unit.trim_start().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(format!(
                "invalid size `{text}`: unknown unit `{}` (units: B, K, M, G, T)",
                unit.trim_start()
            ))
        }
    };
    let too_large = || format!("size `{text}` is too large");
    let n: u64 = digits.parse().map_err(|_| too_large())?;
    n.checked_mul(1u64 << shift).ok_or_else(too_large)
}

/// A size as [`parse_size`] reads it, in the largest binary unit that divides it exactly:
/// `1024` is `"1K"`, `16 MiB` is `"16M"`, `1500` is `"1500B"`.
pub fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
        if n != 0 && n % (1u64 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}

/// The signals a config or `supctl signal` may name, with their Linux numbers.
const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGIO", libc::SIGIO),
    ("SIGSYS", libc::SIGSYS),
];

/// Parse a signal name: `"SIGINT"`, `"INT"` or `"sigint"` (case-insensitive, the `SIG`
/// prefix optional). Numbers are refused: they differ between architectures, names do not.
pub fn parse_signal(s: &str) -> Result<Signal, String> {
    let upper = s.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if let Some(&(_, n)) = SIGNALS.iter().find(|(name, _)| *name == full) {
        return Ok(Signal(n));
    }
    // Compare without the common prefix, or every short typo would be "close" to a name.
    let bare = |name: &'static str| name.strip_prefix("SIG").unwrap_or(name);
    let names: Vec<&str> = SIGNALS.iter().map(|&(name, _)| bare(name)).collect();
    match suggest(full.strip_prefix("SIG").unwrap_or(&full), &names) {
        Some(near) => Err(format!("unknown signal `{s}`, did you mean `SIG{near}`?")),
        None => Err(format!("unknown signal `{s}`")),
    }
}

/// The name of signal number `n`, like `"SIGTERM"`, for display; `None` for a number that
/// [`parse_signal`] would not produce (real-time signals, for instance).
pub fn signal_name(n: i32) -> Option<&'static str> {
    SIGNALS
        .iter()
        .find(|&&(_, number)| number == n)
        .map(|&(name, _)| name)
}

/// `instances`: a fixed count, or `"max"` = one per CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    /// Exactly this many (at least 1).
    Count(u32),
    /// As many as there are CPUs.
    Max,
}

impl Instances {
    /// The count, with `"max"` resolved to `cpus` (at least 1, in case the caller could
    /// not count them and passed 0).
    pub fn resolve(self, cpus: u32) -> u32 {
        match self {
            Instances::Count(n) => n,
            Instances::Max => cpus.max(1),
        }
    }
}

/// `instances` given as a TOML integer: at least 1.
pub fn instances_from_int(n: i128) -> Result<Instances, String> {
    if n < 1 {
        return Err(format!("`instances` must be at least 1, found {n}"));
    }
    u32::try_from(n)
        .map(Instances::Count)
        .map_err(|_| format!("`instances` is too large, found {n}"))
}

/// `instances` given as a TOML string: only `"max"`.
pub fn instances_from_str(s: &str) -> Result<Instances, String> {
    if s == "max" {
        return Ok(Instances::Max);
    }
    if s.trim().parse::<i128>().is_ok() {
        return Err(format!(
            "`instances` = \"{s}\" is a string; write the number without quotes"
        ));
    }
    Err(format!("invalid `instances` \"{s}\""))
}

/// Split a command line the way a POSIX shell splits words (quotes and backslashes), but
/// without running a shell: no variables, globs, pipes or redirections. An unclosed quote
/// or a trailing backslash is an error. An empty result is returned as is; the caller
/// decides whether that is allowed.
pub fn split_cmd(s: &str) -> Result<Vec<String>, String> {
    shlex::split(s).ok_or_else(|| {
        "`cmd` cannot be split into words (an unclosed quote or a trailing backslash?)".into()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("500ms", Duration::from_millis(500)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1d", Duration::from_secs(86_400)),
            ("1m30s", Duration::from_secs(90)),
            ("1h2m3s4ms", Duration::from_millis(3_723_004)),
            (" 5s ", Duration::from_secs(5)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(*want), "{text}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "empty duration"),
            (
                "5",
                "duration `5` has no unit; add one, e.g. \"5s\" or \"5ms\"",
            ),
            (
                "5x",
                "invalid duration `5x`: unknown unit `x` (units: ms, s, m, h, d)",
            ),
            (
                "5S",
                "invalid duration `5S`: unknown unit `S` (units: ms, s, m, h, d)",
            ),
            ("1m30", "invalid duration `1m30`: `30` has no unit"),
            ("s", "invalid duration `s`"),
            ("-5s", "invalid duration `-5s`"),
            (
                "1.5s",
                "invalid duration `1.5s`: fractions are not supported; use a smaller unit like ms",
            ),
            ("5 s", "invalid duration `5 s`: unexpected ' '"),
            (
                "99999999999999999999s",
                "duration `99999999999999999999s` is too large",
            ),
            (
                "18446744073709551615d",
                "duration `18446744073709551615d` is too large",
            ),
        ];
        for (text, want) in bad {
            assert_eq!(parse_duration(text), Err(want.to_string()), "{text}");
        }
    }

    #[test]
    fn sizes() {
        let ok: &[(&str, u64)] = &[
            ("100", 100),
            ("100B", 100),
            ("64K", 64 << 10),
            ("64k", 64 << 10),
            ("512M", 512 << 20),
            ("512MB", 512 << 20),
            ("512MiB", 512 << 20),
            ("1G", 1 << 30),
            ("2 G", 2 << 30),
            ("1T", 1 << 40),
            ("0", 0),
        ];
        for (text, want) in ok {
            assert_eq!(parse_size(text), Ok(*want), "{text}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "empty size"),
            ("M", "invalid size `M`"),
            (
                "12X",
                "invalid size `12X`: unknown unit `X` (units: B, K, M, G, T)",
            ),
            ("99999999999T", "size `99999999999T` is too large"),
        ];
        for (text, want) in bad {
            assert_eq!(parse_size(text), Err(want.to_string()), "{text}");
        }
    }

    #[test]
    fn sizes_are_shown_in_the_largest_exact_unit() {
        let cases: &[(u64, &str)] = &[
            (0, "0B"),
            (1500, "1500B"),
            (1024, "1K"),
            (64 << 10, "64K"),
            (16 << 20, "16M"),
            (3 << 30, "3G"),
            (1 << 40, "1T"),
            ((1 << 20) + 1024, "1025K"),
        ];
        for &(n, want) in cases {
            assert_eq!(format_size(n), want);
            assert_eq!(parse_size(want), Ok(n));
        }
    }

    #[test]
    fn signals() {
        let ok: &[(&str, i32)] = &[
            ("SIGINT", libc::SIGINT),
            ("INT", libc::SIGINT),
            ("sigint", libc::SIGINT),
            ("int", libc::SIGINT),
            ("SIGTERM", 15),
            ("KILL", 9),
            ("HUP", libc::SIGHUP),
            ("USR1", libc::SIGUSR1),
            ("usr2", libc::SIGUSR2),
            ("WINCH", libc::SIGWINCH),
            ("QUIT", libc::SIGQUIT),
        ];
        for (text, want) in ok {
            assert_eq!(parse_signal(text), Ok(Signal(*want)), "{text}");
        }
        let bad: &[(&str, &str)] = &[
            (
                "SIGTREM",
                "unknown signal `SIGTREM`, did you mean `SIGTERM`?",
            ),
            ("USR3", "unknown signal `USR3`, did you mean `SIGUSR1`?"),
            ("BANANA", "unknown signal `BANANA`"),
            ("15", "unknown signal `15`"),
            ("", "unknown signal ``"),
        ];
        for (text, want) in bad {
            assert_eq!(parse_signal(text), Err(want.to_string()), "{text}");
        }
    }

    #[test]
    fn signal_names_round_trip() {
        assert_eq!(signal_name(libc::SIGTERM), Some("SIGTERM"));
        assert_eq!(signal_name(Signal::KILL.0), Some("SIGKILL"));
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(libc::SIGRTMIN()), None);
        for &(name, n) in SIGNALS {
            assert_eq!(signal_name(n), Some(name));
            assert_eq!(parse_signal(name), Ok(Signal(n)));
        }
    }

    #[test]
    fn instances() {
        let cases: &[(i128, Result<Instances, &str>)] = &[
            (1, Ok(Instances::Count(1))),
            (16, Ok(Instances::Count(16))),
            (0, Err("`instances` must be at least 1, found 0")),
            (-2, Err("`instances` must be at least 1, found -2")),
            (
                1 << 40,
                Err("`instances` is too large, found 1099511627776"),
            ),
        ];
        for (n, want) in cases {
            assert_eq!(instances_from_int(*n), want.map_err(String::from), "{n}");
        }
        let cases: &[(&str, Result<Instances, &str>)] = &[
            ("max", Ok(Instances::Max)),
            ("MAX", Err("invalid `instances` \"MAX\"")),
            (
                "4",
                Err("`instances` = \"4\" is a string; write the number without quotes"),
            ),
            ("lots", Err("invalid `instances` \"lots\"")),
        ];
        for (s, want) in cases {
            assert_eq!(instances_from_str(s), want.map_err(String::from), "{s}");
        }
        assert_eq!(Instances::Max.resolve(8), 8);
        assert_eq!(Instances::Max.resolve(0), 1);
        assert_eq!(Instances::Count(3).resolve(8), 3);
    }

    #[test]
    fn cmd_split() {
        assert_eq!(
            split_cmd("python3 -m http.server 8000").unwrap(),
            ["python3", "-m", "http.server", "8000"]
        );
        assert_eq!(
            split_cmd(r#"sh -c 'echo "a b"; exit 1'"#).unwrap(),
            ["sh", "-c", r#"echo "a b"; exit 1"#]
        );
        assert_eq!(split_cmd(r"a\ b c").unwrap(), ["a b", "c"]);
        assert_eq!(split_cmd("   ").unwrap(), Vec::<String>::new());
        assert!(split_cmd("echo 'unclosed").is_err());
        assert!(split_cmd("echo \"unclosed").is_err());
        assert!(split_cmd("trailing\\").is_err());
    }
}
