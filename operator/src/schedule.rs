//! The language of `BackupConfiguration.spec.schedule` and when it next fires.
//!
//! Released Stash handed this string to a Kubernetes CronJob, which parses it with
//! robfig/cron's standard parser. The same language is accepted here (plus Vixie
//! cron's `7` for Sunday) so that existing configurations keep working unchanged;
//! every time is UTC because the operator, not the CronJob controller, fires sessions.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use std::{fmt, str::FromStr, time::Duration};

/// A parsed schedule. Equal schedules fire at the same instants and print the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// Five-field cron, firing at whole UTC minutes.
    Cron(Cron),
    /// `@every <interval>`: fires at `anchor + k * interval` for every k >= 1, so that
    /// the cadence survives operator restarts instead of restarting from "now".
    /// Parsing guarantees at least one second; a zero interval never fires.
    Every(Duration),
}

/// The minute, hour, day-of-month, month and day-of-week sets of a cron schedule,
/// as bit masks (bit n = value n; Sunday is 0 only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cron {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Whether the day field was written starting with `*` or `?`. As in Vixie cron
    /// and robfig/cron, a day must match both day fields when either is starred, and
    /// either one when neither is (so `0 0 1 * MON` fires on the 1st and on Mondays).
    dom_star: bool,
    dow_star: bool,
}

/// Why a schedule was rejected; each message quotes the schedule as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule {schedule:?} is empty")]
    Empty { schedule: String },
    #[error("schedule {schedule:?}: expected 5 fields (minute hour day-of-month month day-of-week), found {found}")]
    FieldCount { schedule: String, found: usize },
    /// A cron field is malformed or out of range; `detail` starts with its text.
    #[error("schedule {schedule:?}: {field} {detail}")]
    Field {
        schedule: String,
        field: &'static str,
        detail: String,
    },
    #[error("schedule {schedule:?}: {detail}")]
    Macro { schedule: String, detail: String },
    #[error("schedule {schedule:?}: time-zone prefixes (CRON_TZ=, TZ=) are not supported; schedules are evaluated in UTC")]
    TimeZone { schedule: String },
    #[error("schedule {schedule:?}: invalid @every duration: {detail}")]
    Duration { schedule: String, detail: String },
}

/// One cron field: its name in messages, its range, and the names of its values
/// (which start at `min`).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const fn field(name: &'static str, min: u32, max: u32, names: &'static [&'static str]) -> Field {
    Field {
        name,
        min,
        max,
        names,
    }
}

const MINUTE: Field = field("minute", 0, 59, &[]);
const HOUR: Field = field("hour", 0, 23, &[]);
const DOM: Field = field("day-of-month", 1, 31, &[]);
const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const MONTH: Field = field("month", 1, 12, MONTHS);
const DOW: Field = field(
    "day-of-week",
    0,
    7,
    &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
);

impl Field {
    /// The mask of `lo..=hi` stepped by `step`, with Sunday-as-7 folded onto 0.
    fn stepped(&self, lo: u32, hi: u32, step: u32) -> u64 {
        let mut bits = 0u64;
        let mut v = Some(lo);
        while let Some(x) = v.filter(|&x| x <= hi) {
            bits |= 1 << x;
            v = x.checked_add(step.max(1));
        }
        if self.max == 7 && bits & (1 << 7) != 0 {
            bits = (bits & !(1 << 7)) | 1;
        }
        bits
    }

    /// The mask and starred-ness of a comma list; the error is the detail only.
    fn parse(&self, text: &str) -> Result<(u64, bool), String> {
        let star = text.starts_with('*') || text.starts_with('?');
        text.split(',')
            .try_fold(0, |bits, item| Ok(bits | self.parse_item(item)?))
            .map(|bits| (bits, star))
    }

    fn parse_item(&self, item: &str) -> Result<u64, String> {
        let invalid = |reason: &str| format!("{item:?} is invalid: {reason}");
        let (range, step) = match item.split_once('/') {
            None => (item, None),
            Some((range, step)) => match step.parse::<u32>() {
                Ok(0) => return Err(invalid("step must be at least 1")),
                Ok(n) if step.bytes().all(|b| b.is_ascii_digit()) => (range, Some(n)),
                _ => return Err(invalid(&format!("step {step:?} is not a positive number"))),
            },
        };
        let (lo, hi) = if item.is_empty() {
            return Err(invalid("empty list element"));
        } else if range == "*" || range == "?" {
            (self.min, self.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (lo, hi) = (self.value(a, item)?, self.value(b, item)?);
            if lo > hi {
                return Err(invalid(&format!("range start {lo} is after its end {hi}")));
            }
            (lo, hi)
        } else {
            let v = self.value(range, item)?;
            (v, if step.is_some() { self.max } else { v })
        };
        Ok(self.stepped(lo, hi, step.unwrap_or(1)))
    }

    fn value(&self, text: &str, item: &str) -> Result<u32, String> {
        if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(self.min + i as u32);
        }
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            let what = if self.names.is_empty() {
                "a number"
            } else {
                "a number or name"
            };
            return Err(format!("{item:?} is invalid: {text:?} is not {what}"));
        }
        match text.parse::<u32>() {
            Ok(v) if (self.min..=self.max).contains(&v) => Ok(v),
            _ => Err(format!("{text} is out of range {}-{}", self.min, self.max)),
        }
    }

    /// Writes the mask back: `*` or `*/n` where that denotes it, else values and ranges.
    /// `star` is `None` for fields where being starred means nothing; the day fields
    /// pass theirs, since it decides how they combine.
    fn render(&self, bits: u64, star: Option<bool>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let span = self.max - self.min + 1;
        let max_step = match star {
            Some(false) => 0,
            Some(true) => span,
            None => span / 2,
        };
        if star != Some(false) && bits == self.stepped(self.min, self.max, 1) {
            return f.write_str("*");
        }
        if let Some(n) = (2..=max_step).find(|&n| self.stepped(self.min, self.max, n) == bits) {
            return write!(f, "*/{n}");
        }
        let (mut sep, mut v) = ("", self.min);
        while v <= self.max {
            let run = (bits >> v).trailing_ones();
            if run > 0 {
                let end = v + run - 1;
                write!(f, "{sep}{v}")?;
                if end > v {
                    write!(f, "-{end}")?;
                }
                sep = ",";
            }
            v += run.max(1);
        }
        Ok(())
    }
}

const MACROS: &str =
    "expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>";

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(schedule: &str) -> Result<Self, ScheduleError> {
        let owned = || schedule.to_owned();
        let text = schedule.trim();
        let fields: Vec<&str> = text.split_whitespace().collect();
        let head = fields.first().copied().unwrap_or_default();
        let bad_macro = |detail: String| ScheduleError::Macro {
            schedule: owned(),
            detail,
        };
        let cron = if text.is_empty() {
            return Err(ScheduleError::Empty { schedule: owned() });
        } else if text.starts_with("CRON_TZ=") || text.starts_with("TZ=") {
            return Err(ScheduleError::TimeZone { schedule: owned() });
        } else if head.eq_ignore_ascii_case("@every") {
            let arg = text.get(head.len()..).unwrap_or_default().trim();
            return parse_duration(arg).map(Schedule::Every).map_err(|detail| {
                ScheduleError::Duration {
                    schedule: owned(),
                    detail,
                }
            });
        } else if head.starts_with('@') {
            let expansion = match head.to_ascii_lowercase().as_str() {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                _ => return Err(bad_macro(format!("unknown macro {head:?} ({MACROS})"))),
            };
            if fields.len() > 1 {
                return Err(bad_macro(format!("{head} takes no arguments")));
            }
            expansion.split(' ').collect()
        } else {
            fields
        };
        let [minute, hour, dom, month, dow] = cron[..] else {
            let found = cron.len();
            return Err(ScheduleError::FieldCount {
                schedule: owned(),
                found,
            });
        };
        let parse = |field: &Field, text| {
            let error = |detail| ScheduleError::Field {
                schedule: owned(),
                field: field.name,
                detail,
            };
            field.parse(text).map_err(error)
        };
        let ((dom, dom_star), (dow, dow_star)) = (parse(&DOM, dom)?, parse(&DOW, dow)?);
        Ok(Schedule::Cron(Cron {
            minute: parse(&MINUTE, minute)?.0,
            hour: parse(&HOUR, hour)?.0,
            dom,
            month: parse(&MONTH, month)?.0,
            dow,
            dom_star,
            dow_star,
        }))
    }
}

/// Go's `time.ParseDuration` syntax ([`stash_repo_format::godur::parse`]), required
/// to be at least one second (a finer cadence would only hammer the repository).
/// The error is the detail only; the caller adds the schedule.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = stash_repo_format::godur::parse(text)?;
    if d < Duration::from_secs(1) {
        return Err(format!("interval {text:?} is shorter than the 1s minimum"));
    }
    Ok(d)
}

/// A duration as Go prints it, without zero parts: `1h30m`, `1m30s`, `1.5s`, `0s`.
pub fn go_duration(d: Duration) -> String {
    stash_repo_format::godur::format(d)
}

impl fmt::Display for Schedule {
    /// Macros print as their five-field expansion; day-of-week uses 0-6; intervals
    /// print as Go durations without zero parts (`1h30m`, `1m30s`, `1.5s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self {
            Schedule::Cron(c) => c,
            Schedule::Every(d) => return write!(f, "@every {}", go_duration(*d)),
        };
        let fields = [
            (MINUTE, c.minute, None),
            (HOUR, c.hour, None),
            (DOM, c.dom, Some(c.dom_star)),
            (MONTH, c.month, None),
            (DOW, c.dow, Some(c.dow_star)),
        ];
        for (i, (field, bits, star)) in fields.iter().enumerate() {
            f.write_str(if i == 0 { "" } else { " " })?;
            field.render(*bits, *star, f)?;
        }
        Ok(())
    }
}

impl Cron {
    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let dom = self.dom & (1 << day) != 0;
        let dow = self.dow & (1 << weekday) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first (hour, minute) of a matching day at or after `hour:minute`.
    fn time_from(&self, hour: u32, minute: u32) -> Option<(u32, u32)> {
        (hour..24)
            .filter(|h| self.hour & (1 << h) != 0)
            .find_map(|h| {
                let from = if h == hour { minute } else { 0 };
                let later = (self.minute >> from) << from;
                (later != 0).then(|| (h, later.trailing_zeros()))
            })
    }

    /// Walks months, then days, never minutes. The Gregorian calendar repeats every
    /// 400 years (a whole number of weeks), so a schedule silent for 401 years never
    /// fires; that bounds the walk at ~150k cheap day checks.
    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after
            .timestamp()
            .div_euclid(60)
            .checked_add(1)?
            .checked_mul(60)?;
        let start = DateTime::from_timestamp(start, 0)?.naive_utc();
        let (y0, m0, d0) = (start.year(), start.month(), start.day());
        for year in y0..=y0.checked_add(401)? {
            for month in if year == y0 { m0 } else { 1 }..=12 {
                if self.month & (1 << month) == 0 {
                    continue;
                }
                let first = NaiveDate::from_ymd_opt(year, month, 1)?;
                let weekday0 = first.weekday().num_days_from_sunday();
                let first_day = if (year, month) == (y0, m0) { d0 } else { 1 };
                for day in first_day..=days_in_month(year, month) {
                    if !self.day_matches(day, (weekday0 + day - 1) % 7) {
                        continue;
                    }
                    let today = (year, month, day) == (y0, m0, d0);
                    let (h, m) = if today {
                        (start.hour(), start.minute())
                    } else {
                        (0, 0)
                    };
                    if let Some((h, m)) = self.time_from(h, m) {
                        let date = NaiveDate::from_ymd_opt(year, month, day)?;
                        return Some(date.and_hms_opt(h, m, 0)?.and_utc());
                    }
                }
            }
        }
        None
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Schedule {
    /// The first tick strictly after `after`; `anchor` (the configuration's creation
    /// time) only matters for `@every`. `None` when no tick exists or it would fall
    /// outside chrono's range.
    pub fn next_after(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        const NS: i128 = 1_000_000_000;
        let nanos = |t: DateTime<Utc>| {
            i128::from(t.timestamp()) * NS + i128::from(t.timestamp_subsec_nanos())
        };
        match self {
            Schedule::Cron(c) => c.next_after(after),
            Schedule::Every(d) => {
                let d = i128::try_from(d.as_nanos()).ok().filter(|&d| d > 0)?;
                let (a, t) = (nanos(anchor), nanos(after));
                let k = if t < a { 1 } else { (t - a) / d + 1 };
                let tick = a.checked_add(k.checked_mul(d)?)?;
                let secs = i64::try_from(tick.div_euclid(NS)).ok()?;
                DateTime::from_timestamp(secs, u32::try_from(tick.rem_euclid(NS)).ok()?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// `input => canonical` per line.
    const CANONICAL: &str = "
        * * * * *              => * * * * *
        5   4 * * *            => 5 4 * * *
        0,30 9-17 * * 1-5      => */30 9-17 * * 1-5
        0-59/15 */6 * * *      => */15 */6 * * *
        10-40/10 1,2,3,7 * * * => 10,20,30,40 1-3,7 * * *
        5/20 * * * *           => 5,25,45 * * * *
        0 0 1 jan,Mar-may *    => 0 0 1 1,3-5 *
        0 0 * * mon-FRI        => 0 0 * * 1-5
        0 0 * * 7              => 0 0 * * 0
        0 0 * * 5-7            => 0 0 * * 0,5-6
        0 0 * * 0-7            => 0 0 * * 0-6
        0 0 ? * SUN            => 0 0 * * 0
        0 0 */2 * *            => 0 0 */2 * *
        0 0 * * */7            => 0 0 * * */7
        0 0 1-31 * 0-6         => 0 0 1-31 * 0-6
        @yearly                => 0 0 1 1 *
        @annually              => 0 0 1 1 *
        @monthly               => 0 0 1 * *
        @weekly                => 0 0 * * 0
        @daily                 => 0 0 * * *
        @MIDNIGHT              => 0 0 * * *
        @hourly                => 0 * * * *
        @every 1h              => @every 1h
        @every 30m             => @every 30m
        @every 1h30m           => @every 1h30m
        @every 90s             => @every 1m30s
        @EVERY  2h45m10s       => @every 2h45m10s
        @every 1500ms          => @every 1.5s
        @every 1.5h            => @every 1h30m
        @every +3600000ms      => @every 1h
        @every 1h.000000001s   => @every 1h0.000000001s
        @every 1000000us       => @every 1s";

    #[test]
    fn every_syntax_form_parses_to_a_canonical_text_that_reparses_equal() {
        for (input, want) in CANONICAL.trim().lines().filter_map(|l| l.split_once("=>")) {
            let (input, want) = (input.trim(), want.trim());
            let parsed: Schedule = input.parse().unwrap();
            assert_eq!(parsed.to_string(), want, "{input}");
            assert_eq!(want.parse::<Schedule>().unwrap(), parsed, "{input}");
        }
    }

    /// `input => part of the message` per line; every message starts with the input.
    const ERRORS: &str = r#"
        61 * * * *          => schedule "61 * * * *": minute 61 is out of range 0-59
        * 24 * * *          => hour 24 is out of range 0-23
        * * 0 * *           => day-of-month 0 is out of range 1-31
        * * * 13 *          => month 13 is out of range 1-12
        * * * * 8           => day-of-week 8 is out of range 0-7
        99999999999 * * * * => minute 99999999999 is out of range
        * * * *             => expected 5 fields (minute hour day-of-month month day-of-week), found 4
        * * * * * *         => found 6
        x * * * *           => minute "x" is invalid: "x" is not a number
        * * * FOO *         => month "FOO" is invalid: "FOO" is not a number or name
        * * * * MONDAY      => is not a number or name
        1,,2 * * * *        => minute "" is invalid: empty list element
        */0 * * * *         => step must be at least 1
        */x * * * *         => step "x" is not a positive number
        */-1 * * * *        => is not a positive number
        5-1 * * * *         => range start 5 is after its end 1
        -5 * * * *          => "" is not a number
        *-5 * * * *         => "*" is not a number
        @reboot             => unknown macro "@reboot" (expected @yearly
        @daily 5            => @daily takes no arguments
        CRON_TZ=Etc/UTC 0 0 * * * => time-zone prefixes (CRON_TZ=, TZ=) are not supported
        TZ=UTC 0 0 * * *    => evaluated in UTC
        @every 0s           => shorter than the 1s minimum
        @every 0            => shorter than the 1s minimum
        @every 999ms        => shorter than the 1s minimum
        @every 10           => invalid @every duration: "10" is missing a unit
        @every -1h          => "-1h" is negative
        @every              => missing duration
        @every 1d           => unknown unit "d"
        @every 1h 30m       => unknown unit "h "
        @every .            => is not a Go duration
        @every 1h0          => is missing a unit
        @every 3000000h     => is too large
        @every 99999999999999999999999999999999999999999h => is too large"#;

    #[test]
    fn bad_schedules_are_rejected_with_the_text_and_the_reason() {
        for (input, want) in ERRORS.trim().lines().filter_map(|l| l.split_once(" => ")) {
            let input = input.trim();
            let got = input.parse::<Schedule>().unwrap_err().to_string();
            assert!(got.contains(want), "{input}: {got}");
            assert!(got.starts_with(&format!("schedule {input:?}")), "{got}");
        }
        for blank in ["", "  "] {
            let got = blank.parse::<Schedule>().unwrap_err().to_string();
            assert_eq!(got, format!("schedule {blank:?} is empty"));
        }
    }

    /// `schedule | after | next` per line, `-` for none.
    const NEXT: &str = "
        * * * * *       | 2024-05-01T10:00:00Z      | 2024-05-01T10:01:00Z
        * * * * *       | 2024-05-01T10:00:59.999Z  | 2024-05-01T10:01:00Z
        */15 * * * *    | 2024-05-01T10:14:00Z      | 2024-05-01T10:15:00Z
        */15 * * * *    | 2024-05-01T10:15:00Z      | 2024-05-01T10:30:00Z
        */15 * * * *    | 2024-05-01T23:50:00Z      | 2024-05-02T00:00:00Z
        @hourly         | 2024-05-01T10:00:00Z      | 2024-05-01T11:00:00Z
        @hourly         | 2024-12-31T23:00:00Z      | 2025-01-01T00:00:00Z
        30 2 * * *      | 2024-05-01T02:31:00Z      | 2024-05-02T02:30:00Z
        0 0 1 * *       | 2024-01-31T12:00:00Z      | 2024-02-01T00:00:00Z
        0 0 31 * *      | 2024-04-01T00:00:00Z      | 2024-05-31T00:00:00Z
        @yearly         | 2024-06-01T00:00:00Z      | 2025-01-01T00:00:00Z
        0 12 * DEC *    | 2024-12-31T12:00:00Z      | 2025-12-01T12:00:00Z
        0 9 * * MON-FRI | 2024-05-03T09:00:00Z      | 2024-05-06T09:00:00Z
        0 0 * * 7       | 2024-05-01T00:00:00Z      | 2024-05-05T00:00:00Z
        0 0 29 2 *      | 2024-03-01T00:00:00Z      | 2028-02-29T00:00:00Z
        0 0 29 2 *      | 2096-03-01T00:00:00Z      | 2104-02-29T00:00:00Z
        0 0 29 2 */7    | 2088-03-01T00:00:00Z      | 2128-02-29T00:00:00Z
        0 0 30 2 *      | 2024-01-01T00:00:00Z      | -
        0 0 31 2,4,6,9,11 * | 2024-01-01T00:00:00Z  | -
        0 0 30,31 FEB */2   | 2024-01-01T00:00:00Z  | -
        0 0 1 * MON     | 2024-07-01T00:00:00Z      | 2024-07-08T00:00:00Z
        0 0 1 * MON     | 2024-07-29T00:00:00Z      | 2024-08-01T00:00:00Z
        0 0 1 * MON     | 2024-08-01T00:00:00Z      | 2024-08-05T00:00:00Z
        0 0 */2 * MON   | 2024-07-01T00:00:00Z      | 2024-07-15T00:00:00Z
        0 0 1-31/2 * MON| 2024-07-01T00:00:00Z      | 2024-07-03T00:00:00Z";

    /// Covers month/year ends, leap days (2100 is not one; Feb 29 on a Sunday comes
    /// 40 years after 2088), Feb 30 (quickly `None`), and Vixie's day rule: both day
    /// fields restricted means the 1st OR a Monday; a starred one, even stepped, AND.
    #[test]
    fn cron_next_after() {
        let started = std::time::Instant::now();
        for line in NEXT.trim().lines() {
            let [schedule, after, want] = line.split('|').map(str::trim).collect::<Vec<_>>()[..]
            else {
                panic!("{line}");
            };
            let s: Schedule = schedule.parse().unwrap();
            let want = (want != "-").then(|| at(want));
            assert_eq!(s.next_after(at(after), at(after)), want, "{line}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let (every_minute, far) = (Schedule::from_str("* * * * *"), DateTime::<Utc>::MAX_UTC);
        assert_eq!(every_minute.unwrap().next_after(far, far), None);
    }

    #[test]
    fn every_ticks_from_the_anchor() {
        let s: Schedule = "@every 1h".parse().unwrap();
        let anchor = at("2024-05-01T10:17:23.5Z");
        let (h, m) = (TimeDelta::hours(1), TimeDelta::minutes(1));
        assert_eq!(s.next_after(anchor + m * 59, anchor), Some(anchor + h));
        assert_eq!(s.next_after(anchor + h, anchor), Some(anchor + h * 2));
        assert_eq!(s.next_after(anchor, anchor), Some(anchor + h));
        assert_eq!(s.next_after(anchor - h * 5, anchor), Some(anchor + h));
        assert_eq!(
            s.next_after(anchor + h * 1000 + m, anchor),
            Some(anchor + h * 1001)
        );
        let odd: Schedule = "@every 2h45m10s".parse().unwrap();
        let step = TimeDelta::seconds(2 * 3600 + 45 * 60 + 10);
        assert_eq!(
            odd.next_after(anchor + step * 3, anchor),
            Some(anchor + step * 4)
        );
        assert_eq!(
            Schedule::Every(Duration::ZERO).next_after(anchor, anchor),
            None
        );
        assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC, anchor), None);
    }

    /// Random cron texts from a fixed xorshift seed, checked against a minute-by-minute
    /// scan over three years and for a Display round trip.
    #[test]
    fn random_cron_schedules_agree_with_a_brute_force_scan() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut below = |n: u32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % u64::from(n)) as u32
        };
        let window = 3 * 366 * 24 * 60;
        for _ in 0..300 {
            let text = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)].map(|(lo, hi)| {
                let (a, b, step) = (
                    lo + below(hi - lo + 1),
                    lo + below(hi - lo + 1),
                    1 + below(4),
                );
                match below(6) {
                    0 => "*".to_string(),
                    1 => format!("*/{}", 1 + below(hi - lo + 1)),
                    2 => format!("{a}"),
                    3 => format!("{}-{}/{step}", a.min(b), a.max(b)),
                    _ => format!("{a},{b}"),
                }
            });
            let s: Schedule = text.join(" ").parse().unwrap();
            assert_eq!(
                s.to_string().parse::<Schedule>().unwrap(),
                s,
                "{text:?} -> {s}"
            );
            let Schedule::Cron(c) = &s else {
                unreachable!()
            };
            let after = at("2023-02-27T22:58:30Z") + TimeDelta::minutes(i64::from(below(800_000)));
            let mut t = DateTime::from_timestamp((after.timestamp() / 60 + 1) * 60, 0).unwrap();
            let slow = (0..window).find_map(|_| {
                let hit = c.minute & (1 << t.minute()) != 0
                    && c.hour & (1 << t.hour()) != 0
                    && c.month & (1 << t.month()) != 0
                    && c.day_matches(t.day(), t.weekday().num_days_from_sunday());
                t += TimeDelta::minutes(1);
                hit.then_some(t - TimeDelta::minutes(1))
            });
            let fast = s.next_after(after, after);
            if slow.is_some() || fast.is_some_and(|f| f - after < TimeDelta::minutes(window)) {
                assert_eq!(fast, slow, "{text:?} after {after}");
            }
        }
    }
}
