//! restic's retention durations: `1y5m7d2h` (years, months, days, hours), applied
//! with Go's calendar arithmetic (`AddDate` normalizes Feb 31 to Mar 3).

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeDelta};

use crate::error::{FormatError, Result};

/// A calendar duration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Duration {
    /// Years.
    pub years: i64,
    /// Months.
    pub months: i64,
    /// Days.
    pub days: i64,
    /// Hours.
    pub hours: i64,
}

impl Duration {
    /// Parses `<n><unit>...` with units `y`, `m`, `d`, `h`.
    ///
    /// # Errors
    /// [`FormatError::Invalid`] for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| FormatError::invalid("duration", format!("{s:?}: {why}"));
        let mut d = Duration::default();
        let mut num = String::new();
        if s.is_empty() {
            return Err(bad("empty"));
        }
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            if num.is_empty() {
                return Err(bad("expected a number before each unit"));
            }
            let n: i64 = num.parse().map_err(|_| bad("number too large"))?;
            num.clear();
            match c {
                'y' => d.years = n,
                'm' => d.months = n,
                'd' => d.days = n,
                'h' => d.hours = n,
                _ => return Err(bad("units are y, m, d and h")),
            }
        }
        if !num.is_empty() {
            return Err(bad("missing unit after the last number"));
        }
        Ok(d)
    }

    /// Whether all parts are zero.
    pub fn is_zero(&self) -> bool {
        *self == Duration::default()
    }

    /// `t` minus this duration, by calendar (years, months, days), then hours.
    pub fn before(&self, t: &DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        add_date(t, -self.years, -self.months, -self.days)
            .and_then(|x| x.checked_sub_signed(TimeDelta::try_hours(self.hours)?))
            .unwrap_or(DateTime::<FixedOffset>::MIN_UTC.fixed_offset())
    }
}

/// Go's `t.AddDate(years, months, days)`: month overflow carries into years, day
/// overflow into months, in `t`'s own offset.
fn add_date(
    t: &DateTime<FixedOffset>,
    years: i64,
    months: i64,
    days: i64,
) -> Option<DateTime<FixedOffset>> {
    let m = i64::from(t.month0()) + months;
    let y = i64::from(t.year()) + years + m.div_euclid(12);
    let first = NaiveDate::from_ymd_opt(
        i32::try_from(y).ok()?,
        u32::try_from(m.rem_euclid(12)).ok()? + 1,
        1,
    )?;
    let date = first.checked_add_signed(TimeDelta::try_days(i64::from(t.day()) - 1 + days)?)?;
    date.and_time(t.time())
        .and_local_timezone(*t.offset())
        .single()
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{u}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let d = Duration::parse("1y5m7d2h").unwrap();
        assert_eq!((d.years, d.months, d.days, d.hours), (1, 5, 7, 2));
        assert_eq!(d.to_string(), "1y5m7d2h");
        assert_eq!(Duration::parse("3d").unwrap().to_string(), "3d");
        for bad in ["", "5", "d", "1w", "-1d", "1d2"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_calendar_normalization() {
        let t = DateTime::parse_from_rfc3339("2021-03-31T10:00:00+02:00").unwrap();
        // Go: 2021-03-31 minus 1 month = 2021-02-31 = 2021-03-03.
        let d = Duration {
            months: 1,
            ..Default::default()
        };
        assert_eq!(d.before(&t).to_rfc3339(), "2021-03-03T10:00:00+02:00");
        let d = Duration {
            years: 1,
            days: 1,
            hours: 11,
            ..Default::default()
        };
        assert_eq!(d.before(&t).to_rfc3339(), "2020-03-29T23:00:00+02:00");
    }
}
