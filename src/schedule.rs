//! Cron schedules: the next time a validated `cron_restart` expression fires in its time
//! zone. Parsing and checking the expression and the zone is [`crate::config::cron`]'s.
//!
//! Days of month and of week are OR-ed, as in Vixie cron. Fire times are wall clock times
//! in the app's `cron_tz` (default: the system's local zone). Across a DST change croner
//! follows OCPS: a fixed-time job whose time falls in the gap of a spring change runs at
//! the first valid time after it, the same day, and runs once (at the earlier instant) when
//! an autumn change repeats its time; an interval job skips times in the gap and runs in
//! both halves of a repeated hour.
//!
//! Pure apart from reading the local zone (`TZ`, `/etc/localtime`) at each
//! [`Schedule::next_after`] when there is no `cron_tz`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{
    DateTime, Datelike, FixedOffset, Local, LocalResult, NaiveDate, NaiveDateTime, TimeZone,
    Timelike, Utc,
};
use croner::Cron;

use crate::config::CronSettings;

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    /// `None`: the system's local zone, read at each [`Schedule::next_after`].
    zone: Option<Zone>,
}

impl Schedule {
    /// The schedule of `settings`, whose expression and zone the config already checked.
    pub fn new(settings: &CronSettings) -> Schedule {
        Schedule {
            cron: settings.expr.cron().clone(),
            zone: settings.tz.as_ref().map(|z| Zone(z.time_zone().clone())),
        }
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

/// A named zone of the tz database (as [`crate::config::CronZone`] found it), as a
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
            expr: expr.parse().unwrap(),
            tz: tz.map(|t| t.parse().unwrap()),
            overlap: CronOverlap::Skip,
        })
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
    fn the_29th_of_february_fires_in_leap_years() {
        let s = schedule("0 0 29 2 *", Some("UTC"));
        assert_eq!(next(&s, "2025-03-01T00:00:00Z"), at("2028-02-29T00:00:00Z"));
    }

    #[test]
    fn schedules_of_a_validated_config_fire() {
        let text = "[defaults]\ncron_tz = \"Europe/Berlin\"\n\
                    [[app]]\nname = \"a\"\ncmd = \"x\"\ncwd = \"/\"\ncron_restart = \"0 3 * * *\"\n\
                    [[app]]\nname = \"b\"\ncmd = \"x\"\ncwd = \"/\"\ncron_restart = \"@midnight\"\n";
        let path = std::path::Path::new("/etc/sup/ecosystem.toml");
        let config = crate::config::validate::validate(path, text, None, 1, &|_| true).unwrap();
        for app in &config.apps {
            let s = Schedule::new(app.cron.as_ref().unwrap());
            assert!(
                s.next_after(at("2025-06-01T00:00:00Z")).is_some(),
                "{}",
                app.name
            );
        }
    }
}
