//! Go `time.Time` as restic writes it into JSON: RFC 3339 with nanoseconds
//! (`time.RFC3339Nano`), in the writer's local offset.
//!
//! Tree ids hash the exact text of every node time, so the text form is part of the
//! format: the offset is kept as found (it is the writer's zone, not always UTC), the
//! fraction has trailing zeros trimmed, a zero offset is written `Z`. A time parsed from
//! Go output formats back to the identical string.

use std::{cmp::Ordering, fmt, hash, str::FromStr};

use chrono::{
    DateTime, Datelike, FixedOffset, Local, NaiveDate, TimeDelta, TimeZone, Timelike, Utc,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{FormatError, Result};

/// A point in time plus the UTC offset it is shown in.
///
/// Invariant: the year in its own offset is within 0..=9999, the only years Go's JSON
/// encoder accepts; constructors clamp the year the way restic's `FixTime` does (only the
/// year changes). Equality and hashing consider the instant *and* the offset, because
/// both are visible in the serialized form; ordering is by instant first.
#[derive(Clone, Copy, Debug)]
pub struct GoTime(DateTime<FixedOffset>);

impl GoTime {
    /// Wraps a chrono time, clamping its year into 0..=9999 like restic's `FixTime`.
    pub fn new(t: DateTime<FixedOffset>) -> Self {
        GoTime(fix_year(t))
    }

    /// Go's `time.Unix(secs, nanos)` shown in the machine's local zone, as restic does for
    /// node times. `nanos` >= 1e9 carries into the seconds.
    pub fn from_unix(secs: i64, nanos: u32) -> Self {
        let utc = utc_from_unix(secs, nanos);
        GoTime::new(utc.with_timezone(&Local).fixed_offset())
    }

    /// Like [`GoTime::from_unix`] but in an explicit offset (deterministic for tests and
    /// for reproducing another machine's output).
    pub fn from_unix_in(secs: i64, nanos: u32, offset: FixedOffset) -> Self {
        GoTime::new(utc_from_unix(secs, nanos).with_timezone(&offset))
    }

    /// The current time in the local zone.
    pub fn now() -> Self {
        GoTime::new(Local::now().fixed_offset())
    }

    /// Whole seconds since the Unix epoch (floor).
    pub fn unix_secs(&self) -> i64 {
        self.0.timestamp()
    }

    /// Nanoseconds within the second, 0..1e9.
    pub fn unix_nanos(&self) -> u32 {
        self.0.timestamp_subsec_nanos()
    }

    /// The wrapped chrono value.
    pub fn datetime(&self) -> DateTime<FixedOffset> {
        self.0
    }

    /// Offset from UTC in seconds (east positive).
    pub fn offset_seconds(&self) -> i32 {
        self.0.offset().local_minus_utc()
    }

    /// True for Go's zero `time.Time` (`0001-01-01T00:00:00Z`), the value of a missing time.
    pub fn is_go_zero(&self) -> bool {
        *self == GoTime::default()
    }

    /// Parses an RFC 3339 time as Go's `time.Time.UnmarshalJSON` does:
    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`. Fraction digits beyond nine are
    /// truncated (as Go does); leap seconds, lower-case `t`/`z` and space separators are
    /// rejected.
    ///
    /// # Errors
    /// [`FormatError::Invalid`] quoting the text.
    pub fn parse(s: &str) -> Result<Self> {
        parse_rfc3339(s).ok_or_else(|| {
            let shown: String = s.chars().take(64).collect();
            FormatError::invalid("time", format!("{shown:?} is not an RFC 3339 time"))
        })
    }

    /// Go's `t.Format(time.RFC3339Nano)`.
    pub fn to_go_string(&self) -> String {
        self.to_string()
    }

    /// Go's `t.String()` of a time decoded from JSON: `2006-01-02 15:04:05.999999999
    /// -0700 MST`, the zone named `UTC` at offset zero and otherwise by its offset (Go
    /// names it after the local zone when that has the same offset; a fixed offset
    /// carries no name here). restic prints snapshot times so in `ls`.
    pub fn to_go_display(&self) -> String {
        let t = self.0.naive_local();
        let mut clock = t.format("%Y-%m-%d %H:%M:%S").to_string();
        if t.nanosecond() != 0 {
            let frac = format!("{:09}", t.nanosecond());
            clock.push('.');
            clock.push_str(frac.trim_end_matches('0'));
        }
        let offset = self.offset_seconds();
        let sign = if offset < 0 { '-' } else { '+' };
        let (h, m) = (offset.abs() / 3600, offset.abs() / 60 % 60);
        let zone = if offset == 0 {
            "UTC".to_string()
        } else {
            format!("{sign}{h:02}{m:02}")
        };
        format!("{clock} {sign}{h:02}{m:02} {zone}")
    }
}

fn utc_from_unix(secs: i64, nanos: u32) -> DateTime<Utc> {
    let secs = secs.saturating_add(i64::from(nanos / 1_000_000_000));
    let nanos = nanos % 1_000_000_000;
    DateTime::from_timestamp(secs, nanos).unwrap_or(if secs < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// restic's `FixTime`: move years outside 0..=9999 to the nearest bound, keeping month,
/// day and clock (Go's `AddDate` turns an impossible Feb 29 into Mar 1).
///
/// The local clock is computed with a checked addition: at the ends of chrono's range
/// an offset pushes it out of range, where chrono's own accessors panic.
fn fix_year(t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    let offset = *t.offset();
    let Some(local) = t
        .naive_utc()
        .checked_add_signed(TimeDelta::seconds(offset.local_minus_utc().into()))
    else {
        // Far outside 0..=9999 either way: clamp the UTC clock instead.
        return fix_year(t.with_timezone(&Utc).fixed_offset());
    };
    let year = local.year().clamp(0, 9999);
    if year == local.year() {
        return t;
    }
    let date = NaiveDate::from_ymd_opt(year, local.month(), local.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, 3, 1))
        .unwrap_or(NaiveDate::MIN);
    offset
        .from_local_datetime(&date.and_time(local.time()))
        .single()
        .unwrap_or(t)
}

fn digits(s: &[u8]) -> Option<u32> {
    s.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn parse_rfc3339(s: &str) -> Option<GoTime> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, digits(&b[5..7])?, digits(&b[8..10])?)?;
    let (hour, min, sec) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let kept = n.min(9);
        nanos = digits(&rest[1..1 + kept])? * 10u32.pow(9 - kept as u32);
        rest = &rest[1 + n..];
    }
    let offset_secs = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h >= 24 || m >= 60 {
                return None;
            }
            let v = i32::try_from(h * 3600 + m * 60).ok()?;
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let time = chrono::NaiveTime::from_hms_nano_opt(hour, min, sec, nanos)?;
    let offset = FixedOffset::east_opt(offset_secs)?;
    let t = offset.from_local_datetime(&date.and_time(time)).single()?;
    Some(GoTime(t))
}

impl Default for GoTime {
    /// Go's zero time, `0001-01-01T00:00:00Z`.
    fn default() -> Self {
        let date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN);
        GoTime(
            date.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .fixed_offset(),
        )
    }
}

impl fmt::Display for GoTime {
    /// `2006-01-02T15:04:05.999999999Z07:00`. Like Go, an offset with a seconds part
    /// (historic local mean time) is shown truncated to minutes while the clock uses the
    /// full offset.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0.naive_local();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let nanos = t.nanosecond();
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        let offset = self.offset_seconds();
        if offset == 0 {
            return f.write_str("Z");
        }
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = (offset / 60).unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }
}

impl FromStr for GoTime {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self> {
        GoTime::parse(s)
    }
}

impl From<DateTime<FixedOffset>> for GoTime {
    fn from(t: DateTime<FixedOffset>) -> Self {
        GoTime::new(t)
    }
}

impl PartialEq for GoTime {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 && self.offset_seconds() == other.offset_seconds()
    }
}

impl Eq for GoTime {}

impl hash::Hash for GoTime {
    fn hash<H: hash::Hasher>(&self, state: &mut H) {
        self.unix_secs().hash(state);
        self.unix_nanos().hash(state);
        self.offset_seconds().hash(state);
    }
}

impl PartialOrd for GoTime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GoTime {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .cmp(&other.0)
            .then(self.offset_seconds().cmp(&other.offset_seconds()))
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        GoTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_display_is_gos_time_string() {
        let show = |s: &str| super::GoTime::parse(s).unwrap().to_go_display();
        assert_eq!(
            show("2026-12-07T19:04:44.107391685Z"),
            "2026-12-07 19:04:44.107391685 +0000 UTC"
        );
        assert_eq!(
            show("2026-12-07T19:04:44.1+01:00"),
            "2026-12-07 19:04:44.1 +0100 +0100"
        );
        assert_eq!(
            show("2026-12-07T19:04:44-05:30"),
            "2026-12-07 19:04:44 -0530 -0530"
        );
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_go_strings() {
        for s in [
            "2026-11-24T23:27:59.312909476+01:00",
            "2020-03-01T00:59:59.1+01:00",
            "2023-01-01T01:00:00+01:00",
            "2026-11-24T19:00:21.204990897-03:30",
            "2026-11-24T22:30:08.789785442Z",
            "2023-06-15T14:34:56.123456789+02:00",
            "2000-01-01T00:00:00.000000001Z",
            "2000-01-01T00:00:00.12Z",
            "0001-01-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999-23:59",
            "2024-02-29T12:00:00+14:00",
        ] {
            let t = GoTime::parse(s).unwrap();
            assert_eq!(t.to_string(), s);
            let j = serde_json::to_string(&t).unwrap();
            assert_eq!(j, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<GoTime>(&j).unwrap(), t);
        }
    }

    #[test]
    fn parse_normalizes_like_go() {
        let t = GoTime::parse("2000-01-01T00:00:00.1000Z").unwrap();
        assert_eq!(t.to_string(), "2000-01-01T00:00:00.1Z");
        assert_eq!(t.unix_nanos(), 100_000_000);
        let t = GoTime::parse("2000-01-01T00:00:00.0000000019Z").unwrap();
        assert_eq!(t.to_string(), "2000-01-01T00:00:00.000000001Z");
        let t = GoTime::parse("2000-01-01T00:00:00.000+00:00").unwrap();
        assert_eq!(t.to_string(), "2000-01-01T00:00:00Z");
        assert_eq!(t.unix_secs(), 946_684_800);
    }

    #[test]
    fn rejects_non_rfc3339() {
        for s in [
            "",
            "2000-01-01",
            "2000-01-01 00:00:00Z",
            "2000-01-01t00:00:00Z",
            "2000-01-01T00:00:00z",
            "2000-01-01T00:00:00",
            "2000-01-01T00:00:60Z",
            "2000-01-01T24:00:00Z",
            "2000-02-30T00:00:00Z",
            "2000-01-01T00:00:00.Z",
            "2000-01-01T00:00:00+0100",
            "2000-01-01T00:00:00+24:00",
            "2000-01-01T00:00:00+01:60",
            "+2000-01-01T00:00:00Z",
            "20000-01-01T00:00:00Z",
            "2000-01-01T00:00:00Zjunk",
            "2000-01-01T00:00:00.1é",
            "２０００-01-01T00:00:00Z",
        ] {
            assert!(GoTime::parse(s).is_err(), "{s:?}");
        }
        assert!(serde_json::from_str::<GoTime>("12").is_err());
    }

    #[test]
    fn unix_constructors() {
        let plus1 = FixedOffset::east_opt(3600).unwrap();
        let t = GoTime::from_unix_in(1_700_000_000, 5_000, plus1);
        assert_eq!(t.to_string(), "2023-11-14T23:13:20.000005+01:00");
        assert_eq!((t.unix_secs(), t.unix_nanos()), (1_700_000_000, 5_000));
        let t = GoTime::from_unix_in(-1, 1_500_000_000, FixedOffset::east_opt(0).unwrap());
        assert_eq!(t.to_string(), "1970-01-01T00:00:00.5Z");
        let local = GoTime::from_unix(1_700_000_000, 0);
        assert_eq!(local.unix_secs(), 1_700_000_000);
        assert!(GoTime::now().unix_secs() > 1_700_000_000);
        assert!(GoTime::default().is_go_zero());
        assert_eq!(GoTime::default().to_string(), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn years_clamped_like_fixtime() {
        let utc = FixedOffset::east_opt(0).unwrap();
        // 10000-02-29 is a leap day; 9999 has none, so Go's AddDate yields Mar 1.
        let t = GoTime::from_unix_in(253_407_441_600, 0, utc); // 10000-02-29T12:00:00Z
        assert_eq!(t.to_string(), "9999-03-01T12:00:00Z");
        let t = GoTime::from_unix_in(-62_198_755_200, 7, utc); // -0001-01-01T00:00:00Z
        assert_eq!(t.to_string(), "0000-01-01T00:00:00.000000007Z");
        let t = GoTime::from_unix_in(i64::MAX, 0, utc);
        assert!(t.to_string().starts_with("9999-"));
    }

    /// A node time at the edge of chrono's range in a zone with an offset (a mangled
    /// mtime read from disk or a repository) clamps instead of panicking.
    #[test]
    fn extreme_times_with_an_offset_clamp_without_panicking() {
        for offset in [
            FixedOffset::east_opt(3600).unwrap(),
            FixedOffset::west_opt(5 * 3600 + 30 * 60).unwrap(),
        ] {
            let high = GoTime::from_unix_in(i64::MAX, 0, offset);
            assert!(high.to_string().starts_with("9999-"), "{high}");
            let low = GoTime::from_unix_in(i64::MIN, 0, offset);
            assert!(low.to_string().starts_with("0000-"), "{low}");
            for secs in [9_000_000_000_000, -9_000_000_000_000] {
                let t = GoTime::from_unix_in(secs, 999_999_999, offset);
                assert!((0..=9999).contains(&t.datetime().year()), "{t}");
            }
        }
    }

    #[test]
    fn odd_offsets_format_like_go() {
        // Local mean time with a seconds part: the clock uses all of it, the text only
        // whole minutes (truncated toward zero).
        let lmt = FixedOffset::east_opt(53 * 60 + 28).unwrap();
        let t = GoTime::from_unix_in(0, 0, lmt);
        assert_eq!(t.to_string(), "1970-01-01T00:53:28+00:53");
        let t = GoTime::from_unix_in(0, 0, FixedOffset::west_opt(90).unwrap());
        assert_eq!(t.to_string(), "1969-12-31T23:58:30-00:01");
        let t = GoTime::from_unix_in(0, 0, FixedOffset::east_opt(30).unwrap());
        assert_eq!(t.to_string(), "1970-01-01T00:00:30+00:00");
    }

    #[test]
    fn equality_sees_offset() {
        let a = GoTime::parse("2000-01-01T01:00:00+01:00").unwrap();
        let b = GoTime::parse("2000-01-01T00:00:00Z").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.unix_secs(), b.unix_secs());
        assert!(b < a);
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(
            secs in -62_135_596_800i64..253_402_300_799,
            nanos in prop_oneof![Just(0u32), Just(1), Just(100_000_000), 0u32..1_000_000_000],
            offset_min in -1439i32..=1439,
        ) {
            let off = FixedOffset::east_opt(offset_min * 60).unwrap();
            let t = GoTime::from_unix_in(secs, nanos, off);
            let s = t.to_string();
            let back = GoTime::parse(&s).unwrap();
            prop_assert_eq!(back, t);
            prop_assert_eq!(back.to_string(), s);
            prop_assert_eq!((back.unix_secs(), back.unix_nanos()), (secs, nanos));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}|[0-9T:.Z+-]{18,40}") {
            let _ = GoTime::parse(&s);
        }
    }
}
