//! Lock documents: arbitrary bytes decode to an error or a lock, never a panic. A
//! decoded lock and one built from the input's bytes re-encode to JSON that decodes
//! to the same lock and encodes to the same bytes; the locking rules hold: a lock
//! older than 30 minutes is stale for everyone, one in the future has age zero,
//! exclusive requests conflict with every lock and shared ones only with exclusive
//! locks, what `is_stale` removes `is_stale_for_unlock` removes too, and a running
//! holder outside our own container slot is never taken for dead.
#![no_main]
use libfuzzer_sys::{
    arbitrary::{Result, Unstructured},
    fuzz_target,
};
use stash_repo_format::{
    gotime::GoTime,
    lock::{Here, Lock, STALE_TIMEOUT},
};

#[path = "structured.rs"]
mod structured;

fn check(l: &Lock, u: &mut Unstructured<'_>) {
    let json = l.encode().expect("a lock encodes");
    let back = Lock::decode(&json).expect("an encoded lock decodes");
    assert_eq!(&back, l);
    assert_eq!(
        back.encode().expect("re-encode"),
        json,
        "encoding is a fixed point"
    );

    for want in [false, true] {
        assert_eq!(l.conflicts(want), l.exclusive || want);
    }
    let host = if u.arbitrary().unwrap_or(false) {
        l.hostname.clone()
    } else {
        "here".into()
    };
    let ns = if u.arbitrary().unwrap_or(false) {
        l.pid_namespace.clone()
    } else {
        None
    };
    let slot = if u.arbitrary().unwrap_or(false) {
        l.container.clone()
    } else {
        None
    };
    let here = Here {
        hostname: &host,
        pid_namespace: ns.as_deref(),
        pid: u.arbitrary().unwrap_or(1),
        container: slot.as_deref(),
    };
    let alive: bool = u.arbitrary().unwrap_or(true);
    let now = structured::go_time(u).unwrap_or_default();
    let age = l.age(&now);
    if now <= l.time {
        assert_eq!(
            age,
            std::time::Duration::ZERO,
            "a lock from the future has no age"
        );
    }
    let stale = l.is_stale(&now, &here, |_| alive);
    if age > STALE_TIMEOUT {
        assert!(stale, "older than the timeout but not stale");
    }
    if stale {
        assert!(l.is_stale_for_unlock(&now, &here, |_| alive));
    }
    let other_slot = l.container.is_none() || l.container.as_deref() != here.container;
    if alive && age <= STALE_TIMEOUT && other_slot {
        assert!(!stale, "a live holder's fresh lock is stale");
    }
    if other_slot {
        assert!(
            !l.holder_is_dead(&here, |_| true),
            "a running holder in another slot is dead"
        );
    }
    // Half an hour and a minute later, any lock is stale (unless the clamp to year
    // 9999 keeps the clock from moving).
    let later = l.time.datetime() + chrono::Duration::minutes(31);
    if later.naive_local().date() < chrono::NaiveDate::from_ymd_opt(9999, 12, 31).unwrap() {
        assert!(l.is_stale(&GoTime::new(later), &here, |_| true));
    }
}

fn structured(u: &mut Unstructured<'_>) -> Result<Lock> {
    Ok(Lock {
        time: structured::go_time(u)?,
        exclusive: u.arbitrary()?,
        hostname: structured::text(u)?,
        username: structured::text(u)?,
        pid: u.arbitrary()?,
        uid: u.arbitrary()?,
        gid: u.arbitrary()?,
        pid_namespace: if u.arbitrary()? {
            Some(structured::text(u)?)
        } else {
            None
        },
        container: if u.arbitrary()? {
            Some(structured::text(u)?)
        } else {
            None
        },
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(l) = Lock::decode(data) {
        check(&l, &mut u);
    }
    if let Ok(l) = structured(&mut u) {
        check(&l, &mut u);
    }
});
