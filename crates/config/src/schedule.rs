//! The one reader of a schedule's cron expression and time zone: config validation and
//! the scheduler (`cordon serve`, `cordon schedules list`) use the same functions, so an
//! expression that loads is one that runs.

use std::str::FromStr;

use chrono::{DateTime, Utc};

/// A cron expression read in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

/// Parse five cron fields (minute hour day-of-month month day-of-week).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "`{expr}` has {fields} fields; give five: minute hour day-of-month month \
             day-of-week, e.g. `0 8 * * 1-5`"
        ));
    }
    croner::Cron::from_str(expr).map_err(|e| format!("`{expr}` is not a cron expression: {e}"))
}

/// Parse an IANA time-zone name.
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, String> {
    chrono_tz::Tz::from_str(name).map_err(|_| {
        format!("`{name}` is not an IANA time zone; e.g. `UTC`, `Europe/Paris`, `America/New_York`")
    })
}

impl CronSchedule {
    pub fn new(expr: &str, timezone: &str) -> Result<CronSchedule, String> {
        Ok(CronSchedule {
            cron: parse_cron(expr)?,
            tz: parse_timezone(timezone)?,
        })
    }

    /// The first time strictly after `after` that the expression matches, in UTC.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_next_time_is_read_in_the_schedules_time_zone() {
        let s = CronSchedule::new("0 8 * * *", "Europe/Paris").unwrap();
        // 2026-07-01 05:00 UTC is 07:00 in Paris (UTC+2): next is 08:00 Paris = 06:00 UTC.
        let at = Utc.with_ymd_and_hms(2026, 7, 1, 5, 0, 0).unwrap();
        assert_eq!(
            s.next_after(at).unwrap(),
            Utc.with_ymd_and_hms(2026, 7, 1, 6, 0, 0).unwrap()
        );
        // In winter Paris is UTC+1.
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 5, 0, 0).unwrap();
        assert_eq!(
            s.next_after(at).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).unwrap()
        );
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_wrong() {
        assert!(parse_cron("0 8 * *").unwrap_err().contains("4 fields"));
        assert!(
            parse_cron("0 25 * * *")
                .unwrap_err()
                .contains("not a cron expression")
        );
        assert!(parse_timezone("Mars/Olympus").unwrap_err().contains("IANA"));
    }
}
