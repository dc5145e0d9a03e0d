//! `status.conditions` as operator-rs and the Kubernetes API conventions keep them: one
//! entry per type, `lastTransitionTime` moved only when the status flips, and the
//! generation the condition was computed for.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// One condition to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub type_: &'static str,
    pub ok: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    pub message: String,
}

impl Check {
    pub fn ok(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Check {
            type_,
            ok: true,
            reason,
            message: message.into(),
        }
    }

    pub fn failed(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Check {
            type_,
            ok: false,
            reason,
            message: message.into(),
        }
    }
}

/// Sets `check` in `conditions`; returns whether anything changed.
pub fn set(
    conditions: &mut Vec<Condition>,
    check: &Check,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> bool {
    let status = if check.ok { "True" } else { "False" };
    let fresh = Condition {
        type_: check.type_.to_string(),
        status: status.to_string(),
        reason: check.reason.to_string(),
        message: check.message.clone(),
        observed_generation: generation,
        last_transition_time: crate::time::to_k8s(now),
    };
    match conditions.iter_mut().find(|c| c.type_ == check.type_) {
        Some(c) => {
            let mut next = fresh;
            if c.status == status {
                next.last_transition_time = c.last_transition_time.clone();
            }
            let changed = *c != next;
            *c = next;
            changed
        }
        None => {
            conditions.push(fresh);
            true
        }
    }
}

/// The condition of `type_`, if set.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let t1 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 0).unwrap();
        let mut cs = Vec::new();
        let missing = Check::failed("RepositoryFound", "NotFound", "Repository \"r\" not found");
        assert!(set(&mut cs, &missing, Some(1), t0));
        assert!(
            !set(&mut cs, &missing, Some(1), t1),
            "nothing new, nothing written"
        );
        assert_eq!(cs[0].last_transition_time, crate::time::to_k8s(t0));
        assert!(
            set(&mut cs, &missing, Some(2), t1),
            "a newer generation is news"
        );
        assert_eq!(cs[0].last_transition_time, crate::time::to_k8s(t0));
        let found = Check::ok("RepositoryFound", "Found", "Repository \"r\" found");
        assert!(set(&mut cs, &found, Some(2), t1));
        assert_eq!(cs.len(), 1);
        assert_eq!(
            (cs[0].status.as_str(), cs[0].last_transition_time.clone()),
            ("True", crate::time::to_k8s(t1))
        );
        assert_eq!(
            get(&cs, "RepositoryFound").unwrap().observed_generation,
            Some(2)
        );
    }
}
