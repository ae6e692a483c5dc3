//! The rotation policy, pure: when a log file is rotated, how its rotated files are named,
//! and how the names shift. Time is an argument, so every rule is a table test.
//!
//! Owns the decisions only. Never touches a file: [`super::archive`] performs the renames
//! and the compression, the writer thread calls [`before_write`] before each record.
//!
//! Rules:
//! - A file is rotated *before* the record that would make it larger than `log_max_size`,
//!   so a record is never split between two files. A record larger than the limit goes
//!   alone into a fresh file. An empty file is never rotated.
//! - With `log_rotate`, a file is rotated before the first record stamped in another UTC
//!   hour or day than the file's content started in (for a file supd found non-empty at
//!   open: its last modification). An idle app's file rotates at its next record.
//! - Rotated files are `<file>.1` (newest), `<file>.2`, … with `.gz` once compressed;
//!   each rotation shifts them up by one and the one past `log_retain` is deleted. A
//!   compressed file and a plain one count alike.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::config::{LogRotate, LogSettings};

/// When an app's files rotate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `log_max_size`.
    pub max_size: Option<u64>,
    /// `log_rotate`.
    pub every: Option<LogRotate>,
}

impl Policy {
    /// The policy of an app's settings.
    pub fn of(settings: &LogSettings) -> Policy {
        Policy {
            max_size: settings.max_size,
            every: settings.rotate,
        }
    }
}

/// Why a file is rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The next record would make it larger than `log_max_size`.
    Size,
    /// The UTC hour or day changed since its content started.
    Time,
}

/// Whether a file of `size` bytes whose content started at `since_ms` must be rotated
/// before a record of `incoming` bytes stamped `now_ms` is appended.
#[inline]
pub fn before_write(
    policy: &Policy,
    size: u64,
    since_ms: Option<i64>,
    incoming: u64,
    now_ms: i64,
) -> Option<Why> {
    if size == 0 {
        return None;
    }
    if let (Some(every), Some(since)) = (policy.every, since_ms) {
        if period(every, since) != period(every, now_ms) {
            return Some(Why::Time);
        }
    }
    crosses_size(policy, size, incoming).then_some(Why::Size)
}

/// Whether a record of `incoming` bytes would make a file of `size` bytes larger than
/// `log_max_size` (an empty file takes any record).
#[inline]
pub fn crosses_size(policy: &Policy, size: u64, incoming: u64) -> bool {
    size != 0
        && policy
            .max_size
            .is_some_and(|max| size.saturating_add(incoming) > max)
}

/// The number of the UTC hour or day that `ms` falls in (Unix time has no leap seconds,
/// so every day is 86 400 000 ms).
pub fn period(every: LogRotate, ms: i64) -> i64 {
    let len = match every {
        LogRotate::Hourly => 3_600_000,
        LogRotate::Daily => 86_400_000,
    };
    ms.div_euclid(len)
}

/// `<base>.<k>`, or `<base>.<k>.gz`.
pub fn rotated_name(base: &Path, k: u32, gz: bool) -> PathBuf {
    let mut name = base.as_os_str().to_os_string();
    name.push(format!(".{k}"));
    if gz {
        name.push(".gz");
    }
    PathBuf::from(name)
}

/// `<base>.<k>.gz.tmp`: where `<base>.<k>` is compressed before the result is renamed.
pub fn tmp_name(base: &Path, k: u32) -> PathBuf {
    let mut name = rotated_name(base, k, true).into_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// The kinds of file that rotation leaves beside a log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `<base>.<k>`.
    Plain,
    /// `<base>.<k>.gz`.
    Gz,
    /// `<base>.<k>.gz.tmp`, a compression in progress (or interrupted).
    Tmp,
}

/// Which rotated file of the log file named `base` the file named `name` is, if any.
pub fn parse_rotated(base: &OsStr, name: &OsStr) -> Option<(u32, Kind)> {
    let rest = name
        .as_encoded_bytes()
        .strip_prefix(base.as_encoded_bytes())?
        .strip_prefix(b".")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, suffix) = rest.split_at(digits);
    // No leading zero: `.01` is not a name supd writes.
    if number.is_empty() || (number[0] == b'0') {
        return None;
    }
    let k: u32 = std::str::from_utf8(number).ok()?.parse().ok()?;
    let kind = match suffix {
        b"" => Kind::Plain,
        b".gz" => Kind::Gz,
        b".gz.tmp" => Kind::Tmp,
        _ => return None,
    };
    Some((k, kind))
}

/// The renames of one rotation, to perform in order before `<base>` becomes `<base>.1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shift {
    /// The index whose files (plain and `.gz`) are deleted first: the one that would pass
    /// `retain`.
    pub delete: Option<u32>,
    /// `(from, to)` indexes, highest first, each for both kinds.
    pub renames: Vec<(u32, u32)>,
}

/// Plans a rotation with `retain` ≥ 1 kept files, given which indexes hold a file. Only
/// the files below the first free index move, so a gap (left by an earlier `retain` or
/// by hand) is filled rather than everything above it shifted and deleted.
pub fn plan_shift(retain: u32, exists: impl Fn(u32) -> bool) -> Shift {
    let gap = (1..retain).find(|&k| !exists(k)).unwrap_or(retain);
    Shift {
        delete: (gap == retain && exists(retain)).then_some(retain),
        renames: (1..gap).rev().map(|k| (k, k + 1)).collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const D: i64 = 24 * H;
    /// 2026-11-23T00:00:00Z.
    const DAY: i64 = 1_795_392_000_000;

    /// (policy, size, since, incoming, now, decision)
    type Row = (Policy, u64, Option<i64>, u64, i64, Option<Why>);

    /// (retain, indexes present, deleted, renames)
    type ShiftRow = (u32, &'static [u32], Option<u32>, &'static [(u32, u32)]);

    #[test]
    fn the_policy_table() {
        let none = Policy::default();
        let size = Policy {
            max_size: Some(100),
            every: None,
        };
        let daily = Policy {
            max_size: None,
            every: Some(LogRotate::Daily),
        };
        let hourly = Policy {
            max_size: None,
            every: Some(LogRotate::Hourly),
        };
        let both = Policy {
            max_size: Some(100),
            every: Some(LogRotate::Hourly),
        };
        use Why::*;
        let table: &[Row] = &[
            (none, 1 << 40, Some(0), 1 << 20, 10 * D, None),
            // size: rotate before the record that would cross, never at equality
            (size, 60, Some(DAY), 40, DAY, None),
            (size, 60, Some(DAY), 41, DAY, Some(Size)),
            (size, 100, Some(DAY), 1, DAY, Some(Size)),
            (size, 1, None, 1_000, DAY, Some(Size)),
            // an empty file takes even a record larger than the limit, alone
            (size, 0, None, 1_000, DAY, None),
            (size, 0, Some(DAY), 1_000, DAY, None),
            // daily: UTC days, whatever the hour
            (daily, 10, Some(DAY), 10, DAY + D - 1, None),
            (daily, 10, Some(DAY), 10, DAY + D, Some(Time)),
            (daily, 10, Some(DAY + D - 1), 10, DAY + D, Some(Time)),
            (daily, 10, Some(DAY + 5 * H), 10, DAY + 3 * D, Some(Time)),
            // a clock set back is another day too
            (daily, 10, Some(DAY), 10, DAY - 1, Some(Time)),
            (daily, 0, Some(DAY), 10, DAY + D, None),
            (daily, 10, None, 10, DAY + D, None),
            (daily, 1 << 40, Some(DAY), 10, DAY + 1, None),
            // hourly
            (hourly, 10, Some(DAY + H - 1), 10, DAY + H - 1, None),
            (hourly, 10, Some(DAY + H - 1), 10, DAY + H, Some(Time)),
            (hourly, 10, Some(DAY + 2 * H), 10, DAY + 3 * H - 1, None),
            // before 1970, periods still start on the hour
            (hourly, 10, Some(-1), 10, 0, Some(Time)),
            (hourly, 10, Some(-H), 10, -1, None),
            // both: time is reported first, size still applies within the hour
            (both, 99, Some(DAY), 50, DAY + H, Some(Time)),
            (both, 99, Some(DAY), 50, DAY + 1, Some(Size)),
            (both, 50, Some(DAY), 50, DAY + 1, None),
        ];
        for (i, &(policy, size, since, incoming, now, want)) in table.iter().enumerate() {
            assert_eq!(
                before_write(&policy, size, since, incoming, now),
                want,
                "row {i}: {policy:?} size={size} since={since:?} incoming={incoming} now={now}"
            );
        }
    }

    #[test]
    fn names() {
        let base = Path::new("/l/web.log");
        assert_eq!(rotated_name(base, 1, false), Path::new("/l/web.log.1"));
        assert_eq!(rotated_name(base, 12, true), Path::new("/l/web.log.12.gz"));
        assert_eq!(tmp_name(base, 3), Path::new("/l/web.log.3.gz.tmp"));
        let parse = |n: &str| parse_rotated(OsStr::new("web.log"), OsStr::new(n));
        assert_eq!(parse("web.log.1"), Some((1, Kind::Plain)));
        assert_eq!(parse("web.log.10.gz"), Some((10, Kind::Gz)));
        assert_eq!(parse("web.log.2.gz.tmp"), Some((2, Kind::Tmp)));
        for other in [
            "web.log",
            "web.log.",
            "web.log.0",
            "web.log.01",
            "web.log.1.bak",
            "web.log.x",
            "web.log.1gz",
            "web.logs.1",
            "web.log.99999999999",
            "api.log.1",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    #[test]
    fn shifting() {
        let has = |present: &'static [u32]| move |k: u32| present.contains(&k);
        let table: &[ShiftRow] = &[
            // nothing rotated yet
            (3, &[], None, &[]),
            // a full set: the oldest goes, the others move up
            (3, &[1, 2, 3], Some(3), &[(2, 3), (1, 2)]),
            (3, &[1, 2], None, &[(2, 3), (1, 2)]),
            // a gap is filled; what is above it stays
            (5, &[1, 3, 4, 5], None, &[(1, 2)]),
            // retain 1: the single rotated file is replaced
            (1, &[1], Some(1), &[]),
            (1, &[], None, &[]),
            // left over from a larger retain: above retain is not touched here
            (2, &[1, 2, 3, 4], Some(2), &[(1, 2)]),
        ];
        for &(retain, present, delete, renames) in table {
            assert_eq!(
                plan_shift(retain, has(present)),
                Shift {
                    delete,
                    renames: renames.to_vec()
                },
                "retain {retain}, present {present:?}"
            );
        }
    }

    #[test]
    fn periods() {
        assert_eq!(
            period(LogRotate::Daily, DAY),
            period(LogRotate::Daily, DAY + D - 1)
        );
        assert_eq!(
            period(LogRotate::Daily, DAY) + 1,
            period(LogRotate::Daily, DAY + D)
        );
        assert_eq!(period(LogRotate::Hourly, -1), -1);
        assert_eq!(period(LogRotate::Hourly, 0), 0);
    }
}
