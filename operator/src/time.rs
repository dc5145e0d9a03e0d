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
}
