//! Words for people, shared by supd's log lines, probes and supctl: short durations and
//! how a process ended. Pure; knows nothing of the lifecycle.

use std::time::Duration;

/// A short duration: "0ms", "250ms", "1.5s", "2m5s", "3h0m".
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let tenths = ms / 100;
        if tenths % 10 == 0 {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        }
    } else if ms < 3_600_000 {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h{}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// "1 app", "3 apps": a count and its word, plural with an s.
pub fn count(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// "exited with code 1".
pub fn exited(code: i32) -> String {
    format!("exited with code {code}")
}

/// "killed by SIGKILL" (or "killed by signal 70" for a number without a name).
pub fn killed(signal: i32) -> String {
    match crate::config::units::signal_name(signal) {
        Some(name) => format!("killed by {name}"),
        None => format!("killed by signal {signal}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_is_plural_except_for_one() {
        assert_eq!(count(0, "app"), "0 apps");
        assert_eq!(count(1, "app"), "1 app");
        assert_eq!(count(3, "error"), "3 errors");
    }
}
