//! The two clocks' types meet here: schedules compute with `chrono`, Kubernetes
//! objects carry `jiff` timestamps (k8s-openapi's `Time`).

use chrono::{DateTime, Utc};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

/// `t` as a Kubernetes time (to the second, as the API server stores it).
pub fn to_k8s(t: DateTime<Utc>) -> Time {
    Time(Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A Kubernetes time as `chrono`.
pub fn from_k8s(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
}

/// `t` plus `d`, saturating at the latest time a Kubernetes timestamp holds, so a huge
/// timeout means "never" instead of an overflow or a deadline in the past.
pub fn after(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    let latest = DateTime::from_timestamp(Timestamp::MAX.as_second(), 0).unwrap_or(t);
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .map_or(latest, |x| x.min(latest))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn times_round_trip_to_the_second() {
        let t = Utc.with_ymd_and_hms(2026, 12, 5, 15, 30, 7).unwrap();
        assert_eq!(from_k8s(&to_k8s(t)), t);
        assert_eq!(to_k8s(t).0.to_string(), "2026-12-05T15:30:07Z");
    }

    #[test]
    fn a_huge_timeout_is_a_far_deadline_not_an_overflow() {
        let t = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        assert_eq!(
            after(t, std::time::Duration::from_secs(60)),
            Utc.with_ymd_and_hms(2026, 12, 5, 0, 1, 0).unwrap()
        );
        let far = after(t, std::time::Duration::MAX);
        assert!(far > t);
        assert_eq!(from_k8s(&to_k8s(far)), far);
    }
}
