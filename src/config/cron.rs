//! The cron keys of an app: `cron_restart` parsed into an expression that is known to
//! fire, `cron_tz` looked up in the tz database, and `cron_overlap`.
//!
//! Expressions are parsed by `croner`: 5 fields (minute precision, like PM2), 6 with
//! seconds first, or a nickname (`@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`,
//! `@yearly`). Zones are looked up in the system's `/usr/share/zoneinfo`, else in the copy
//! built into supd, so a container image without tzdata still has every zone.
//!
//! Configuration only: computing fire times from these values is the `schedule` module's.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use super::raw::suggest;

/// What a `cron_restart` value must look like, for error messages.
pub const CRON_EXPECTED: &str = "a cron expression: 5 fields like `0 3 * * *` (03:00 daily), \
     6 with seconds first like `*/30 * * * * *`, or `@hourly`, `@daily`, `@midnight`, \
     `@weekly`, `@monthly`, `@yearly`";

/// What a `cron_tz` value must look like, for error messages.
pub const TZ_EXPECTED: &str = "an IANA time zone name like `Europe/Berlin` or `UTC`";

/// The cron keys of an app: when it is restarted on a schedule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CronSettings {
    /// `cron_restart`: the expression, already parsed.
    pub expr: CronExpr,
    /// `cron_tz`: the IANA time zone the expression is read in. `None`: local time.
    pub tz: Option<CronZone>,
    /// `cron_overlap`: what a tick does while the previous run of a job still runs
    /// (default skip).
    pub overlap: CronOverlap,
}

/// `cron_overlap = "skip" | "restart"`: what a cron tick does to a `restart = "never"` app
/// whose previous run is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CronOverlap {
    /// Leave the running one alone; this tick is dropped (default).
    Skip,
    /// Restart it, as for any other app.
    Restart,
}

/// A `cron_restart` expression that parses and fires on some date. Made only by parsing
/// (`"0 3 * * *".parse()`); the error is a message without position (config validation
/// adds the position) that quotes croner.
#[derive(Clone, PartialEq, Eq)]
pub struct CronExpr {
    /// As written.
    text: String,
    cron: Cron,
}

impl CronExpr {
    /// The expression as written in the file.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed pattern.
    pub fn cron(&self) -> &Cron {
        &self.cron
    }
}

impl FromStr for CronExpr {
    type Err = String;

    fn from_str(expr: &str) -> Result<CronExpr, String> {
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
        Ok(CronExpr {
            text: expr.to_string(),
            cron,
        })
    }
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronExpr").field(&self.text).finish()
    }
}

/// 2024-01-01T00:00:00Z, the start of a leap year.
const LEAP_YEAR_START: i64 = 1_704_067_200;

/// A `cron_tz` zone found in the tz database. Made only by parsing (`"UTC".parse()`); the
/// error suggests a close name when there is one (`Europe/Berln`). Names compare without
/// case, as the database looks them up (`europe/berlin` is accepted).
#[derive(Clone, PartialEq, Eq)]
pub struct CronZone {
    /// As written.
    name: String,
    tz: jiff::tz::TimeZone,
}

impl CronZone {
    /// The zone's name as written in the file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone's rules.
    pub fn time_zone(&self) -> &jiff::tz::TimeZone {
        &self.tz
    }
}

impl FromStr for CronZone {
    type Err = String;

    fn from_str(name: &str) -> Result<CronZone, String> {
        if let Ok(tz) = jiff::tz::TimeZone::get(name) {
            return Ok(CronZone {
                name: name.to_string(),
                tz,
            });
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
}

impl fmt::Debug for CronZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronZone").field(&self.name).finish()
    }
}

/// Both cron types cross a re-exec as the text they were parsed from, and are parsed again.
macro_rules! as_text {
    ($($name:ty => $text:ident),*) => {$(
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.$text())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

as_text!(CronExpr => as_str, CronZone => name);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
            let e = expr.parse::<CronExpr>().unwrap_err();
            assert!(e.contains(part), "{expr}: {e}");
        }
    }

    #[test]
    fn time_zones() {
        assert!("Europe/Berlin".parse::<CronZone>().is_ok());
        assert!("UTC".parse::<CronZone>().is_ok());
        assert_eq!(
            "Europe/Berln".parse::<CronZone>().unwrap_err(),
            "unknown time zone `Europe/Berln`, did you mean `Europe/Berlin`?"
        );
        // The tz database's names compare without case (as jiff looks them up).
        assert!("europe/berlin".parse::<CronZone>().is_ok());
        assert_eq!(
            "Mars/Olympus".parse::<CronZone>().unwrap_err(),
            "unknown time zone `Mars/Olympus`"
        );
        assert_eq!(
            "Nowhere".parse::<CronZone>().unwrap_err(),
            "unknown time zone `Nowhere`"
        );
    }

    #[test]
    fn values_keep_their_text() {
        let expr: CronExpr = "@midnight".parse().unwrap();
        assert_eq!(expr.as_str(), "@midnight");
        assert_eq!(format!("{expr:?}"), "CronExpr(\"@midnight\")");
        let zone: CronZone = "europe/berlin".parse().unwrap();
        assert_eq!(zone.name(), "europe/berlin");
    }
}
