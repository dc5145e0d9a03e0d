//! The `forget` retention policy, as restic (0.16 and later) applies it: snapshots in,
//! a keep/remove decision with reasons out. Pure: no I/O, and "now" is a parameter.
//!
//! Per group, snapshots are ordered newest first (stable on equal times). A snapshot is
//! kept when any rule fires: a `--keep-tag` list it carries completely; `--keep-within`;
//! a count bucket (last, hourly, daily, weekly, monthly, yearly) whose value differs
//! from the last one kept for that bucket while the bucket still has count left; or a
//! within-bucket (`--keep-within-daily` ...) for snapshots inside its window. A bucket
//! with count left also keeps the group's oldest snapshot (restic's "oldest" rule).
//! Bucket values use the calendar of the offset recorded in each snapshot's time.

pub mod duration;
pub mod group;

use chrono::{DateTime, Datelike, FixedOffset, Timelike};

pub use duration::Duration;
pub use group::{group_snapshots, GroupBy, GroupKey};

use crate::{gotime::GoTime, id::Id, snapshot::Snapshot};

/// A bucket count: 0 = rule off, -1 = unlimited, n > 0 = keep n.
pub type Count = i64;

/// The `--keep-*` options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// `--keep-last`
    pub last: Count,
    /// `--keep-hourly`
    pub hourly: Count,
    /// `--keep-daily`
    pub daily: Count,
    /// `--keep-weekly`
    pub weekly: Count,
    /// `--keep-monthly`
    pub monthly: Count,
    /// `--keep-yearly`
    pub yearly: Count,
    /// `--keep-within`
    pub within: Duration,
    /// `--keep-within-hourly`
    pub within_hourly: Duration,
    /// `--keep-within-daily`
    pub within_daily: Duration,
    /// `--keep-within-weekly`
    pub within_weekly: Duration,
    /// `--keep-within-monthly`
    pub within_monthly: Duration,
    /// `--keep-within-yearly`
    pub within_yearly: Duration,
    /// `--keep-tag` lists: a snapshot with all tags of any one list is kept.
    pub tags: Vec<Vec<String>>,
}

impl Policy {
    /// Whether no rule is set (such a policy keeps everything).
    pub fn is_empty(&self) -> bool {
        [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
        .iter()
        .all(|c| *c == 0)
            && self.tags.is_empty()
            && [
                &self.within,
                &self.within_hourly,
                &self.within_daily,
                &self.within_weekly,
                &self.within_monthly,
                &self.within_yearly,
            ]
            .iter()
            .all(|d| d.is_zero())
    }
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The snapshot.
    pub id: Id,
    /// Keep it?
    pub keep: bool,
    /// Why it is kept (empty when removed).
    pub reasons: Vec<String>,
    /// What the counted rules had left once this snapshot was decided on (restic's
    /// `counters` in `forget --json`; `-1` for an unlimited rule).
    pub counters: Counters,
}

/// The counts left of the counted rules; zero ones are left out of JSON, as restic
/// leaves them out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    #[serde(skip_serializing_if = "is_zero")]
    pub last: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub hourly: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub daily: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub weekly: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub monthly: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub yearly: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

type Bucker = fn(&DateTime<FixedOffset>, usize) -> i64;

fn always(_: &DateTime<FixedOffset>, nr: usize) -> i64 {
    nr as i64
}
fn ymdh(d: &DateTime<FixedOffset>, _: usize) -> i64 {
    i64::from(d.year()) * 1_000_000
        + i64::from(d.month()) * 10_000
        + i64::from(d.day()) * 100
        + i64::from(d.hour())
}
fn ymd(d: &DateTime<FixedOffset>, _: usize) -> i64 {
    i64::from(d.year()) * 10_000 + i64::from(d.month()) * 100 + i64::from(d.day())
}
fn yw(d: &DateTime<FixedOffset>, _: usize) -> i64 {
    let w = d.iso_week();
    i64::from(w.year()) * 100 + i64::from(w.week())
}
fn ym(d: &DateTime<FixedOffset>, _: usize) -> i64 {
    i64::from(d.year()) * 100 + i64::from(d.month())
}
fn y(d: &DateTime<FixedOffset>, _: usize) -> i64 {
    i64::from(d.year())
}

/// The newest snapshot time that is not in the future: the reference for windows.
fn latest_time(
    times: &[DateTime<FixedOffset>],
    now: &DateTime<FixedOffset>,
) -> Option<DateTime<FixedOffset>> {
    times.iter().filter(|t| *t < now).max().copied()
}

/// Applies `policy` to one group of snapshots. Returns decisions newest first.
pub fn apply_policy(snaps: &[(Id, Snapshot)], policy: &Policy, now: &GoTime) -> Vec<Decision> {
    let mut list: Vec<(Id, DateTime<FixedOffset>, &Snapshot)> = snaps
        .iter()
        .map(|(id, s)| (*id, s.time.datetime(), s))
        .collect();
    // Newest first; stable for equal instants, as Go's sort.Stable.
    list.sort_by_key(|e| std::cmp::Reverse(e.1));
    if policy.is_empty() {
        return list
            .iter()
            .map(|(id, _, _)| Decision {
                id: *id,
                keep: true,
                reasons: vec!["policy is empty".into()],
                counters: Counters::default(),
            })
            .collect();
    }
    let times: Vec<_> = list.iter().map(|e| e.1).collect();
    // With every snapshot in the future Go's zero time is the reference.
    let latest =
        latest_time(&times, &now.datetime()).unwrap_or_else(|| GoTime::default().datetime());
    let mut buckets: [(Count, Bucker, Option<i64>, &str); 6] = [
        (policy.last, always, None, "last snapshot"),
        (policy.hourly, ymdh, None, "hourly snapshot"),
        (policy.daily, ymd, None, "daily snapshot"),
        (policy.weekly, yw, None, "weekly snapshot"),
        (policy.monthly, ym, None, "monthly snapshot"),
        (policy.yearly, y, None, "yearly snapshot"),
    ];
    let mut within: [(&Duration, Bucker, Option<i64>, &str); 5] = [
        (&policy.within_hourly, ymdh, None, "hourly within"),
        (&policy.within_daily, ymd, None, "daily within"),
        (&policy.within_weekly, yw, None, "weekly within"),
        (&policy.within_monthly, ym, None, "monthly within"),
        (&policy.within_yearly, y, None, "yearly within"),
    ];
    let n = list.len();
    let mut out = Vec::with_capacity(n);
    for (nr, (id, t, snap)) in list.iter().enumerate() {
        let mut reasons = Vec::new();
        for l in &policy.tags {
            if l.iter().all(|tag| {
                if tag.is_empty() {
                    snap.tags.is_empty()
                } else {
                    snap.tags.contains(tag)
                }
            }) {
                reasons.push(format!("has tags [{}]", l.join(" ")));
            }
        }
        if !policy.within.is_zero() && *t > policy.within.before(&latest) {
            reasons.push(format!("within {}", policy.within));
        }
        let oldest = nr == n - 1;
        for b in &mut buckets {
            if b.0 > 0 || b.0 == -1 {
                let val = (b.1)(t, nr);
                let fresh = Some(val) != b.2;
                if fresh || oldest {
                    b.2 = Some(val);
                    if b.0 > 0 {
                        b.0 -= 1;
                    }
                    reasons.push(if fresh {
                        b.3.to_string()
                    } else {
                        format!("oldest {}", b.3)
                    });
                }
            }
        }
        for b in &mut within {
            if !b.0.is_zero() && *t > b.0.before(&latest) {
                let val = (b.1)(t, nr);
                if Some(val) != b.2 || oldest {
                    b.2 = Some(val);
                    reasons.push(format!("{} {}", b.3, b.0));
                }
            }
        }
        let left = |i: usize| buckets[i].0;
        out.push(Decision {
            id: *id,
            keep: !reasons.is_empty(),
            reasons,
            counters: Counters {
                last: left(0),
                hourly: left(1),
                daily: left(2),
                weekly: left(3),
                monthly: left(4),
                yearly: left(5),
            },
        });
    }
    out
}

#[cfg(test)]
mod tests;
