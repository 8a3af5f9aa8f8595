//! The one reader of a schedule's cron expression and time zone: config validation and
//! the scheduler (`cordon serve`, `cordon schedules list`) use the same functions, so an
//! expression that loads is one that runs.

mod zone;

use std::str::FromStr;

use chrono::{DateTime, Timelike, Utc};

pub use zone::{Zone, ZoneOffset};

/// A cron expression read in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: croner::Cron,
    tz: Zone,
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

/// Parse an IANA time-zone name, e.g. `Europe/Paris`.
pub fn parse_timezone(name: &str) -> Result<Zone, String> {
    Zone::named(name, &Zone::host_tzdb()).ok_or_else(|| {
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

    /// The time zone the expression is read in.
    pub fn zone(&self) -> &Zone {
        &self.tz
    }

    /// The first time strictly after `after` that the expression matches, in UTC, on a
    /// whole minute (the search would otherwise carry `after`'s fraction of a second).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Within the same second nothing can match later than its start: expressions name
        // minutes, and the search is strictly after.
        let after = after.with_nanosecond(0).unwrap_or(after);
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
    fn the_next_time_is_on_a_whole_minute_whatever_fraction_now_has() {
        let s = CronSchedule::new("0 8 * * *", "Europe/Paris").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 7, 1, 5, 0, 0).unwrap();
        for nanos in [1, 180_000_000, 999_999_999] {
            let after = at + chrono::Duration::nanoseconds(nanos);
            assert_eq!(
                s.next_after(after).unwrap(),
                Utc.with_ymd_and_hms(2026, 7, 1, 6, 0, 0).unwrap()
            );
        }
        // A fraction past the matching minute: that time is over, the next is tomorrow's.
        let after =
            Utc.with_ymd_and_hms(2026, 7, 1, 6, 0, 0).unwrap() + chrono::Duration::nanoseconds(1);
        assert_eq!(
            s.next_after(after).unwrap(),
            Utc.with_ymd_and_hms(2026, 7, 2, 6, 0, 0).unwrap()
        );
    }

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

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    /// The instants `expr` fires at after `from`, one after another.
    fn fires(expr: &str, zone: &str, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let s = CronSchedule::new(expr, zone).unwrap();
        let mut at = from;
        (0..n)
            .map(|_| {
                at = s.next_after(at).unwrap();
                at
            })
            .collect()
    }

    // The instants below are what the schedules fired at with `chrono-tz` (recorded on
    // main before the move to jiff): the time-zone library must not change them.

    #[test]
    fn a_daily_time_in_the_spring_forward_gap_runs_when_the_gap_ends() {
        // 2027-03-28 in Paris: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist.
        assert_eq!(
            fires("30 2 * * *", "Europe/Paris", utc(2027, 3, 27, 12, 0), 2),
            [utc(2027, 3, 28, 1, 0), utc(2027, 3, 29, 0, 30)]
        );
        // 2027-03-14 in New York: 02:00 EST jumps to 03:00 EDT.
        assert_eq!(
            fires("30 2 * * *", "America/New_York", utc(2027, 3, 13, 12, 0), 2),
            [utc(2027, 3, 14, 7, 0), utc(2027, 3, 15, 6, 30)]
        );
    }

    #[test]
    fn a_daily_time_in_the_fall_back_fold_runs_once_at_its_first_occurrence() {
        // 2026-10-25 in Paris: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice
        // (00:30 and 01:30 UTC); a daily job runs at the first only.
        assert_eq!(
            fires("30 2 * * *", "Europe/Paris", utc(2026, 10, 24, 12, 0), 3),
            [
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 26, 1, 30),
                utc(2026, 10, 27, 1, 30)
            ]
        );
        assert_eq!(
            fires(
                "30 1 * * *",
                "America/New_York",
                utc(2026, 10, 31, 12, 0),
                2
            ),
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
        );
    }

    #[test]
    fn a_half_hourly_schedule_across_both_transitions() {
        // Spring forward: 01:30 CET is followed by 03:00 CEST.
        assert_eq!(
            fires("0,30 * * * *", "Europe/Paris", utc(2027, 3, 27, 23, 0), 6),
            [
                utc(2027, 3, 27, 23, 30),
                utc(2027, 3, 28, 0, 0),
                utc(2027, 3, 28, 0, 30),
                utc(2027, 3, 28, 1, 0),
                utc(2027, 3, 28, 1, 30),
                utc(2027, 3, 28, 2, 0)
            ]
        );
        // Fall back: croner searches from the local wall time, so after 02:30 CEST it
        // goes on at 03:00 CET and the repeated hour (01:00, 01:30 UTC) is not run.
        assert_eq!(
            fires("0,30 * * * *", "Europe/Paris", utc(2026, 10, 24, 23, 0), 6),
            [
                utc(2026, 10, 24, 23, 30),
                utc(2026, 10, 25, 0, 0),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 25, 2, 0),
                utc(2026, 10, 25, 2, 30),
                utc(2026, 10, 25, 3, 0)
            ]
        );
    }

    #[test]
    fn utc_zones_and_half_hour_daylight_saving() {
        for zone in ["UTC", "Etc/UTC"] {
            assert_eq!(
                fires("0 8 * * *", zone, utc(2026, 10, 24, 12, 0), 1),
                [utc(2026, 10, 25, 8, 0)]
            );
        }
        // Lord Howe Island moves its clocks by 30 minutes (+10:30 to +11:00).
        assert_eq!(
            fires(
                "0 8 * * *",
                "Australia/Lord_Howe",
                utc(2026, 10, 2, 12, 0),
                3
            ),
            [
                utc(2026, 10, 2, 21, 30),
                utc(2026, 10, 3, 21, 0),
                utc(2026, 10, 4, 21, 0)
            ]
        );
    }

    #[test]
    fn local_times_show_the_zones_abbreviation() {
        let shown = |zone: &str, at: DateTime<Utc>| {
            let zone = parse_timezone(zone).unwrap();
            at.with_timezone(&zone)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string()
        };
        assert_eq!(
            shown("Europe/Paris", utc(2026, 7, 1, 0, 0)),
            "2026-07-01 02:00 CEST"
        );
        assert_eq!(
            shown("Europe/Paris", utc(2026, 12, 1, 0, 0)),
            "2026-12-01 01:00 CET"
        );
        assert_eq!(
            shown("Asia/Dubai", utc(2026, 7, 1, 0, 0)),
            "2026-07-01 04:00 +04"
        );
        assert_eq!(
            shown("America/Sao_Paulo", utc(2026, 7, 1, 0, 0)),
            "2026-06-30 21:00 -03"
        );
        assert_eq!(
            shown("Asia/Kolkata", utc(2026, 7, 1, 0, 0)),
            "2026-07-01 05:30 IST"
        );
    }

    #[test]
    fn zone_names_are_iana_names_spelled_exactly() {
        for name in [
            "UTC",
            "Etc/UTC",
            "Europe/Paris",
            "US/Eastern",
            "EST5EDT",
            "Etc/GMT+3",
        ] {
            assert!(parse_timezone(name).is_ok(), "{name}");
        }
        for name in [
            "Mars/Olympus",
            "europe/paris",
            "Paris",
            "GMT+3",
            "Etc/Unknown",
            "localtime",
            "posixrules",
            "zone.tab",
            "",
        ] {
            assert_eq!(
                parse_timezone(name).unwrap_err(),
                format!(
                    "`{name}` is not an IANA time zone; e.g. `UTC`, `Europe/Paris`, \
                     `America/New_York`"
                )
            );
        }
    }
}
