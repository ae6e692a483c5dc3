//! Wall-clock timestamps for log lines: milliseconds since the Unix epoch, and their
//! RFC 3339 UTC text (`2026-11-23T03:40:00.123Z`).
//!
//! Owns the small calendar conversions the log pipeline needs (Howard Hinnant's
//! `civil_from_days` and `days_from_civil`), so no date crate is pulled in for them: writing
//! a timestamp, and reading back exactly the shape it writes (for `tail`). Never deals with
//! time zones, leap seconds (Unix time has none) or any other shape of date.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of a formatted timestamp: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub const TIMESTAMP_LEN: usize = 24;

/// `0000-01-01T00:00:00.000Z`; earlier instants are clamped to it so the text keeps its
/// fixed width (a four-digit year).
const MIN_MS: i64 = -62_167_219_200_000;
/// `9999-12-31T23:59:59.999Z`; later instants are clamped to it, for the same reason.
const MAX_MS: i64 = 253_402_300_799_999;

const MS_PER_DAY: i64 = 86_400_000;

/// Milliseconds since the Unix epoch, now (negative if the clock is set before 1970).
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Writes `ms` (milliseconds since the Unix epoch) as RFC 3339 UTC with milliseconds and
/// `Z`, e.g. `2026-11-23T03:40:00.123Z`. Instants outside years 0000..=9999 are clamped.
pub fn format_ms(ms: i64, out: &mut [u8; TIMESTAMP_LEN]) {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);

    // in_day < 86_400_000, so every part below fits its field.
    let millis = in_day % 1000;
    let secs = in_day / 1000;
    put_digits(&mut out[0..4], year);
    out[4] = b'-';
    put_digits(&mut out[5..7], i64::from(month));
    out[7] = b'-';
    put_digits(&mut out[8..10], i64::from(day));
    out[10] = b'T';
    put_digits(&mut out[11..13], secs / 3600);
    out[13] = b':';
    put_digits(&mut out[14..16], secs / 60 % 60);
    out[16] = b':';
    put_digits(&mut out[17..19], secs % 60);
    out[19] = b'.';
    put_digits(&mut out[20..23], millis);
    out[23] = b'Z';
}

/// Reads back a timestamp written by [`format_ms`]: exactly `YYYY-MM-DDTHH:MM:SS.mmmZ`,
/// a real calendar date. Anything else is `None`.
pub fn parse_ms(text: &[u8]) -> Option<i64> {
    if text.len() != TIMESTAMP_LEN {
        return None;
    }
    for (i, &c) in text.iter().enumerate() {
        let ok = match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        };
        if !ok {
            return None;
        }
    }
    let num = |range: std::ops::Range<usize>| {
        text[range]
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'))
    };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second, millis) = (num(11..13), num(14..16), num(17..19), num(20..23));
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // month is 1..=12 here, so the casts cannot truncate.
    let days = days_from_civil(year, month as u32, 1) + day - 1;
    if day < 1 || civil_from_days(days).1 != month as u32 {
        return None; // the 31st of a 30-day month, or the 29th of February of a common year
    }
    Some(days * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis)
}

/// (year, month 1..=12, day 1..=31) → days since 1970-01-01: the inverse of
/// [`civil_from_days`] (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // 0..=399
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // 0..=365
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // 0..=146_096
    era * 146_097 + doe - 719_468
}

/// Fills `field` with the low decimal digits of `n` (0 ≤ n), zero-padded on the left.
fn put_digits(field: &mut [u8], mut n: i64) {
    for b in field.iter_mut().rev() {
        // n is non-negative and each digit is < 10, so the cast cannot truncate.
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31) in the proleptic Gregorian
/// calendar. Hinnant, "chrono-Compatible Low-Level Date Algorithms", `civil_from_days`:
/// shifts the year to start in March so the leap day is the last day of the year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, from March 1st
    let mp = (5 * doy + 2) / 153; // 0..=11, March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (year, month as u32, day as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the assertion in tests (STYLE: allowed in tests)
mod tests {
    use super::*;

    fn fmt(ms: i64) -> String {
        let mut out = [0u8; TIMESTAMP_LEN];
        format_ms(ms, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn known_instants() {
        // Expected values cross-checked with `date -u -d @SECONDS`.
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1, "1970-01-01T00:00:00.001Z"),
            (999, "1970-01-01T00:00:00.999Z"),
            (1_795_405_200_123, "2026-11-23T03:40:00.123Z"),
            (951_868_799_000, "2000-02-29T23:59:59.000Z"), // 400-year leap day
            (951_868_800_000, "2000-03-01T00:00:00.000Z"),
            (1_709_208_000_000, "2024-02-29T12:00:00.000Z"),
            (-2_203_891_200_000, "1900-03-01T00:00:00.000Z"), // 1900 is not leap
            (-2_203_891_200_001, "1900-02-28T23:59:59.999Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"), // nor is 2100
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (1_704_067_199_999, "2023-12-31T23:59:59.999Z"),
            (1_704_067_200_000, "2024-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
        ];
        for (ms, want) in cases {
            assert_eq!(fmt(ms), want, "ms = {ms}");
        }
    }

    #[test]
    fn out_of_range_is_clamped() {
        assert_eq!(fmt(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(fmt(i64::MIN), "0000-01-01T00:00:00.000Z");
    }

    /// Walks day by day across four centuries and checks that dates advance exactly as the
    /// Gregorian rules say (month lengths, leap years), independently of the algorithm.
    #[test]
    fn consecutive_days_follow_the_calendar() {
        fn leap(y: i64) -> bool {
            (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        }
        fn month_len(y: i64, m: u32) -> u32 {
            match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            }
        }
        let start = -719_468 + 365; // 0001-03-01 is a stable starting point
        let mut prev = civil_from_days(start);
        for days in start + 1..start + 146_097 * 3 {
            let next = civil_from_days(days);
            let (y, m, d) = prev;
            let want = if d < month_len(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            assert_eq!(next, want, "days = {days}");
            prev = next;
        }
    }

    #[test]
    fn parse_reads_back_what_format_writes() {
        let mut ms = -62_167_219_200_000i64;
        // Steps that are prime in ms, so every field takes many values.
        while ms < 253_402_300_799_999 {
            assert_eq!(parse_ms(fmt(ms).as_bytes()), Some(ms), "{}", fmt(ms));
            ms += 7_919_993_477;
        }
        for ms in [
            0,
            -1,
            951_868_799_000,
            1_795_405_200_123,
            253_402_300_799_999,
        ] {
            assert_eq!(parse_ms(fmt(ms).as_bytes()), Some(ms));
        }
    }

    #[test]
    fn parse_refuses_other_shapes_and_impossible_dates() {
        for bad in [
            "",
            "2026-11-23T03:40:00.123",
            "2026-11-23T03:40:00.123Z ",
            "2026-11-23 03:40:00.123Z",
            "2026-11-23T03:40:00,123Z",
            "2026-11-23T03:40:00.12aZ",
            "2026-13-01T00:00:00.000Z",
            "2026-00-01T00:00:00.000Z",
            "2026-04-31T00:00:00.000Z",
            "2026-02-29T00:00:00.000Z",
            "2026-01-00T00:00:00.000Z",
            "2026-01-01T24:00:00.000Z",
            "2026-01-01T00:60:00.000Z",
            "2026-01-01T00:00:60.000Z",
        ] {
            assert_eq!(parse_ms(bad.as_bytes()), None, "{bad}");
        }
        assert!(parse_ms(b"2024-02-29T00:00:00.000Z").is_some());
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
    }
}
