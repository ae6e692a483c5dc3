//! Cron schedules: a validated `cron_restart` expression in its time zone, and the next
//! time it fires.
//!
//! Expressions are parsed by `croner`: 5 fields (minute precision, like PM2), 6 with
//! seconds first, or a nickname (`@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`,
//! `@yearly`). Days of month and of week are OR-ed, as in Vixie cron. Fire times are wall
//! clock times in the app's `cron_tz` (default: the system's local zone). Across a DST
//! change croner follows OCPS: a fixed-time job whose time falls in the gap of a spring
//! change runs at the first valid time after it, the same day, and runs once (at the
//! earlier instant) when an autumn change repeats its time; an interval job skips times
//! in the gap and runs in both halves of a repeated hour.
//!
//! Pure apart from reading the tz database: the named `cron_tz` zone once (the system's
//! `/usr/share/zoneinfo`, else the copy built into supd), and the local zone (`TZ`,
//! `/etc/localtime`) at each [`Schedule::next_after`] when there is no `cron_tz`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{
    DateTime, Datelike, FixedOffset, Local, LocalResult, NaiveDate, NaiveDateTime, TimeZone,
    Timelike, Utc,
};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use crate::config::raw::suggest;
use crate::config::CronSettings;

/// What a `cron_restart` value must look like, for error messages.
pub const CRON_EXPECTED: &str = "a cron expression: 5 fields like `0 3 * * *` (03:00 daily), \
     6 with seconds first like `*/30 * * * * *`, or `@hourly`, `@daily`, `@midnight`, \
     `@weekly`, `@monthly`, `@yearly`";

/// What a `cron_tz` value must look like, for error messages.
pub const TZ_EXPECTED: &str = "an IANA time zone name like `Europe/Berlin` or `UTC`";

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    /// `None`: the system's local zone, read at each [`Schedule::next_after`].
    zone: Option<Zone>,
}

impl Schedule {
    /// The schedule of `settings`: its expression parsed, its zone looked up. The error is
    /// a message without position (config validation adds the position): see
    /// [`check_expr`] and [`check_tz`].
    pub fn new(settings: &CronSettings) -> Result<Schedule, String> {
        let cron = parse_expr(&settings.expr)?;
        let zone = settings.tz.as_deref().map(parse_tz).transpose()?;
        Ok(Schedule { cron, zone })
    }

    /// The first fire time strictly after `after` (wall clock). `None` when there is none
    /// within croner's search limit (a date that never comes, such as 30 February) or it
    /// is out of range.
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        // Fire times are whole seconds, so the first one after the second `after` falls in
        // (exclusive) is the first one strictly after `after`.
        let start = DateTime::<Utc>::from_timestamp(whole_seconds(after)?, 0)?;
        let next = match &self.zone {
            Some(tz) => self.next_in(start, tz)?,
            None => self.next_in(start, &Local)?,
        };
        from_whole_seconds(next)
    }

    /// [`Schedule::next_after`] in zone `tz`, as Unix seconds.
    fn next_in<Z: TimeZone>(&self, start: DateTime<Utc>, tz: &Z) -> Option<i64> {
        let local = start.with_timezone(tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.timestamp())
    }
}

/// Whether `expr` is a valid `cron_restart` expression; the error quotes croner.
pub fn check_expr(expr: &str) -> Result<(), String> {
    parse_expr(expr).map(|_| ())
}

/// Whether `name` is a known IANA time zone; the error suggests a close name when there
/// is one (`Europe/Berln`, `europe/berlin`).
pub fn check_tz(name: &str) -> Result<(), String> {
    parse_tz(name).map(|_| ())
}

fn parse_expr(expr: &str) -> Result<Cron, String> {
    let trimmed = expr.trim();
    // croner knows every nickname of the README but `@midnight`, which is `@daily`.
    let pattern = if trimmed.eq_ignore_ascii_case("@midnight") {
        "@daily"
    } else {
        trimmed
    };
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(pattern)
        .map_err(|e| format!("invalid cron expression `{expr}`: {e}"))?;
    // A date that never comes (`0 0 30 2 *`) parses but would never fire. From the start
    // of a leap year, every other pattern fires within croner's search limit.
    let leap_year = DateTime::<Utc>::from_timestamp(LEAP_YEAR_START, 0);
    if leap_year.is_some_and(|t| cron.find_next_occurrence(&t, true).is_err()) {
        return Err(format!(
            "cron expression `{expr}` never fires (no such date)"
        ));
    }
    Ok(cron)
}

/// 2024-01-01T00:00:00Z, the start of a leap year.
const LEAP_YEAR_START: i64 = 1_704_067_200;

fn parse_tz(name: &str) -> Result<Zone, String> {
    if let Ok(tz) = jiff::tz::TimeZone::get(name) {
        return Ok(Zone(tz));
    }
    let known: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_string())
        .collect();
    let names: Vec<&str> = known.iter().map(String::as_str).collect();
    Err(match suggest(name, &names) {
        Some(near) => format!("unknown time zone `{name}`, did you mean `{near}`?"),
        None => format!("unknown time zone `{name}`"),
    })
}

/// A named zone of the tz database (the system's `/usr/share/zoneinfo`, else the copy
/// built into supd, so a container image without tzdata still has every zone), as a
/// `chrono` time zone for croner. Lookups are jiff's; this only translates.
///
/// Why not `chrono-tz`: it embeds the database as Rust tables full of pointers, which a
/// position-independent supd must relocate (so touch, about 2 MiB) at every start.
#[derive(Debug, Clone)]
pub struct Zone(jiff::tz::TimeZone);

/// A [`Zone`]'s offset at some instant (chrono needs the zone back from an offset).
#[derive(Debug, Clone)]
pub struct ZoneOffset {
    zone: Zone,
    fixed: FixedOffset,
}

impl chrono::Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        self.fixed
    }
}

impl std::fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.fixed.fmt(f)
    }
}

impl Zone {
    fn offset(&self, seconds: i32) -> ZoneOffset {
        ZoneOffset {
            zone: self.clone(),
            // jiff offsets are within ±25:59:59, inside chrono's ±1 day.
            fixed: FixedOffset::east_opt(seconds).unwrap_or(chrono::Offset::fix(&Utc)),
        }
    }
}

impl TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Zone {
        offset.zone.clone()
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> LocalResult<ZoneOffset> {
        match local.and_hms_opt(0, 0, 0) {
            Some(midnight) => self.offset_from_local_datetime(&midnight),
            None => LocalResult::None,
        }
    }

    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<ZoneOffset> {
        use jiff::tz::AmbiguousOffset;
        let Some(civil) = to_civil(local) else {
            return LocalResult::None;
        };
        match self.0.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                LocalResult::Single(self.offset(offset.seconds()))
            }
            AmbiguousOffset::Gap { .. } => LocalResult::None,
            AmbiguousOffset::Fold { before, after } => {
                LocalResult::Ambiguous(self.offset(before.seconds()), self.offset(after.seconds()))
            }
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        match utc.and_hms_opt(0, 0, 0) {
            Some(midnight) => self.offset_from_utc_datetime(&midnight),
            None => self.offset(0),
        }
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        let seconds = utc.and_utc().timestamp();
        match jiff::Timestamp::from_second(seconds) {
            Ok(t) => self.offset(self.0.to_offset(t).seconds()),
            Err(_) => self.offset(0),
        }
    }
}

/// A chrono local time as a jiff civil time (`None` outside jiff's years -9999..=9999).
fn to_civil(t: &NaiveDateTime) -> Option<jiff::civil::DateTime> {
    let year = i16::try_from(t.year()).ok()?;
    jiff::civil::DateTime::new(
        year,
        t.month() as i8,
        t.day() as i8,
        t.hour() as i8,
        t.minute() as i8,
        t.second() as i8,
        // A leap second (nanosecond ≥ 1e9) has no civil counterpart: the second's start.
        (t.nanosecond() % 1_000_000_000) as i32,
    )
    .ok()
}

/// `t` as Unix seconds, rounded down.
fn whole_seconds(t: SystemTime) -> Option<i64> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).ok()?;
            Some(if d.subsec_nanos() > 0 {
                -secs - 1
            } else {
                -secs
            })
        }
    }
}

/// Unix seconds as a [`SystemTime`].
fn from_whole_seconds(secs: i64) -> Option<SystemTime> {
    let d = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::CronOverlap;

    fn schedule(expr: &str, tz: Option<&str>) -> Schedule {
        Schedule::new(&CronSettings {
            expr: expr.to_string(),
            tz: tz.map(String::from),
            overlap: CronOverlap::Skip,
        })
        .unwrap()
    }

    /// `2025-03-30T01:00:00Z` as a [`SystemTime`].
    fn at(rfc3339: &str) -> SystemTime {
        let t = DateTime::parse_from_rfc3339(rfc3339).unwrap();
        from_whole_seconds(t.timestamp()).unwrap()
            + Duration::from_nanos(u64::from(t.timestamp_subsec_nanos()))
    }

    fn next(s: &Schedule, after: &str) -> SystemTime {
        s.next_after(at(after)).unwrap()
    }

    #[test]
    fn daily_at_three_in_utc() {
        let s = schedule("0 3 * * *", Some("UTC"));
        assert_eq!(next(&s, "2025-06-01T00:00:00Z"), at("2025-06-01T03:00:00Z"));
        assert_eq!(next(&s, "2025-06-01T03:00:01Z"), at("2025-06-02T03:00:00Z"));
    }

    #[test]
    fn daily_at_three_in_berlin_across_dst() {
        let s = schedule("0 3 * * *", Some("Europe/Berlin"));
        // Winter: 03:00 CET is 02:00 UTC.
        assert_eq!(next(&s, "2025-03-28T12:00:00Z"), at("2025-03-29T02:00:00Z"));
        // 2025-03-30 02:00 CET jumps to 03:00 CEST: 03:00 is 01:00 UTC, 23 hours later.
        assert_eq!(next(&s, "2025-03-29T02:00:00Z"), at("2025-03-30T01:00:00Z"));
        // 2025-10-26 03:00 CEST falls back to 02:00 CET: 03:00 is 02:00 UTC, 25 hours later.
        assert_eq!(next(&s, "2025-10-25T01:00:00Z"), at("2025-10-26T02:00:00Z"));
    }

    #[test]
    fn a_time_in_the_gap_or_the_fold_runs_once() {
        let s = schedule("30 2 * * *", Some("Europe/Berlin"));
        // 02:30 does not exist on 2025-03-30: the job runs at 03:00 CEST instead.
        assert_eq!(next(&s, "2025-03-29T12:00:00Z"), at("2025-03-30T01:00:00Z"));
        // 02:30 happens twice on 2025-10-26: the job runs at the first (CEST) only.
        assert_eq!(next(&s, "2025-10-25T12:00:00Z"), at("2025-10-26T00:30:00Z"));
        assert_eq!(next(&s, "2025-10-26T00:30:00Z"), at("2025-10-27T01:30:00Z"));
    }

    #[test]
    fn six_fields_every_second() {
        let s = schedule("* * * * * *", Some("UTC"));
        assert_eq!(next(&s, "2025-06-01T00:00:00Z"), at("2025-06-01T00:00:01Z"));
        assert_eq!(
            next(&s, "2025-06-01T00:00:00.999Z"),
            at("2025-06-01T00:00:01Z")
        );
        let s = schedule("*/30 * * * * *", Some("UTC"));
        assert_eq!(next(&s, "2025-06-01T00:00:10Z"), at("2025-06-01T00:00:30Z"));
    }

    #[test]
    fn nicknames() {
        let s = schedule("@hourly", Some("UTC"));
        assert_eq!(
            next(&s, "2025-06-01T10:59:59.5Z"),
            at("2025-06-01T11:00:00Z")
        );
        for daily in ["@daily", "@midnight", "@MIDNIGHT"] {
            let s = schedule(daily, Some("UTC"));
            assert_eq!(
                next(&s, "2025-06-01T10:00:00Z"),
                at("2025-06-02T00:00:00Z"),
                "{daily}"
            );
        }
        // 2025-06-01 is a Sunday.
        let s = schedule("@weekly", Some("UTC"));
        assert_eq!(next(&s, "2025-06-01T00:00:00Z"), at("2025-06-08T00:00:00Z"));
        let s = schedule("@monthly", Some("UTC"));
        assert_eq!(next(&s, "2025-06-01T00:00:00Z"), at("2025-07-01T00:00:00Z"));
        let s = schedule("@yearly", Some("UTC"));
        assert_eq!(next(&s, "2025-06-01T00:00:00Z"), at("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn next_is_strictly_after_an_exact_fire_time() {
        let s = schedule("0 3 * * *", Some("UTC"));
        let fire = at("2025-06-01T03:00:00Z");
        assert_eq!(s.next_after(fire), Some(at("2025-06-02T03:00:00Z")));
        let just_before = fire - Duration::from_nanos(1);
        assert_eq!(s.next_after(just_before), Some(fire));
        let s = schedule("@hourly", Some("UTC"));
        assert_eq!(next(&s, "2025-06-01T11:00:00Z"), at("2025-06-01T12:00:00Z"));
    }

    #[test]
    fn local_time_without_a_zone() {
        let s = schedule("0 3 * * *", None);
        let now = SystemTime::now();
        let n = s.next_after(now).unwrap();
        assert!(n > now);
        assert!(n <= now + Duration::from_secs(25 * 3600));
    }

    #[test]
    fn before_the_epoch() {
        let s = schedule("0 0 * * *", Some("UTC"));
        assert_eq!(
            next(&s, "1969-12-31T12:00:00.5Z"),
            at("1970-01-01T00:00:00Z")
        );
        assert_eq!(whole_seconds(at("1969-12-31T23:59:59.5Z")), Some(-1));
    }

    #[test]
    fn invalid_expressions_quote_croner() {
        for (expr, part) in [
            ("0 3 * *", "Pattern must have 5 or 6 fields"),
            ("0 3 * * * * *", "Pattern must have 5 or 6 fields"),
            ("0 25 * * *", "invalid cron expression `0 25 * * *`"),
            ("", "invalid cron expression ``"),
            ("@every 5m", "invalid cron expression `@every 5m`"),
            (
                "0 0 30 2 *",
                "cron expression `0 0 30 2 *` never fires (no such date)",
            ),
            ("0 0 31 4 *", "never fires"),
        ] {
            let e = check_expr(expr).unwrap_err();
            assert!(e.contains(part), "{expr}: {e}");
        }
    }

    #[test]
    fn the_29th_of_february_fires_in_leap_years() {
        let s = schedule("0 0 29 2 *", Some("UTC"));
        assert_eq!(next(&s, "2025-03-01T00:00:00Z"), at("2028-02-29T00:00:00Z"));
    }

    #[test]
    fn time_zones() {
        assert!(check_tz("Europe/Berlin").is_ok());
        assert!(check_tz("UTC").is_ok());
        assert_eq!(
            check_tz("Europe/Berln").unwrap_err(),
            "unknown time zone `Europe/Berln`, did you mean `Europe/Berlin`?"
        );
        // The tz database's names compare without case (as jiff looks them up).
        assert!(check_tz("europe/berlin").is_ok());
        assert_eq!(
            check_tz("Mars/Olympus").unwrap_err(),
            "unknown time zone `Mars/Olympus`"
        );
        let e = Schedule::new(&CronSettings {
            expr: "@daily".into(),
            tz: Some("Nowhere".into()),
            overlap: CronOverlap::Skip,
        })
        .unwrap_err();
        assert_eq!(e, "unknown time zone `Nowhere`");
    }
}
