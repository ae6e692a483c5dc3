//! The cron keys: `cron_restart` and `cron_tz` read into checked values
//! ([`crate::config::cron`] parses them), and the three keys combined once merged.

use super::keys::Written;
use super::{Value, Walker};
use crate::config::cron::{CRON_EXPECTED, TZ_EXPECTED};
use crate::config::{CronExpr, CronOverlap, CronSettings, CronZone};

impl Walker<'_> {
    /// `cron_restart`: an expression croner parses and that fires.
    pub(super) fn cron_expr(
        &mut self,
        value: &Value<'_>,
        key: &str,
        field: &str,
    ) -> Option<CronExpr> {
        let s = self.string(value, key, field, CRON_EXPECTED)?;
        match s.parse() {
            Ok(expr) => Some(expr),
            Err(e) => {
                self.sink.error(
                    value.span(),
                    Some(key),
                    format!("invalid `{field}`: {e}"),
                    Some(CRON_EXPECTED),
                );
                None
            }
        }
    }

    /// `cron_tz`: a known IANA zone, with a suggestion for a near miss.
    pub(super) fn time_zone(
        &mut self,
        value: &Value<'_>,
        key: &str,
        field: &str,
    ) -> Option<CronZone> {
        let s = self.string(value, key, field, TZ_EXPECTED)?;
        match s.parse::<CronZone>() {
            Ok(zone) => Some(zone),
            Err(e) => {
                let expected = (!e.contains("did you mean")).then_some(TZ_EXPECTED);
                self.sink.error(
                    value.span(),
                    Some(key),
                    format!("invalid `{field}`: {e}"),
                    expected,
                );
                None
            }
        }
    }

    /// The cron keys of the merged layers. `cron_tz` and `cron_overlap` without a
    /// `cron_restart` are accepted and mean nothing, so that `[defaults]` can set them for
    /// the apps that do have a schedule.
    pub(super) fn cron(
        restart: Option<Written<CronExpr>>,
        tz: Option<Written<CronZone>>,
        overlap: Option<Written<CronOverlap>>,
    ) -> Option<CronSettings> {
        let expr = restart?.0?;
        Some(CronSettings {
            expr,
            tz: tz.and_then(|t| t.0),
            overlap: overlap.and_then(|o| o.0).unwrap_or(CronOverlap::Skip),
        })
    }
}
