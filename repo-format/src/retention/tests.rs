use super::*;

fn snap(time: &str, tags: &[&str]) -> (Id, Snapshot) {
    let t = GoTime::parse(time).unwrap();
    let mut s = Snapshot::new(t, Id::hash(b"tree"), vec!["/data".into()]);
    s.tags = tags.iter().map(|t| t.to_string()).collect();
    (Id::hash(time.as_bytes()), s)
}

fn kept(snaps: &[(Id, Snapshot)], p: &Policy, now: &str) -> Vec<String> {
    let by_id: std::collections::HashMap<Id, String> = snaps
        .iter()
        .map(|(id, s)| (*id, s.time.to_go_string()))
        .collect();
    apply_policy(snaps, p, &GoTime::parse(now).unwrap())
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| by_id[&d.id].clone())
        .collect()
}

fn daily(n: u32) -> Vec<(Id, Snapshot)> {
    (1..=n)
        .map(|d| snap(&format!("2021-01-{d:02}T12:00:00Z"), &[]))
        .collect()
}

const NOW: &str = "2022-01-01T00:00:00Z";

#[test]
fn keep_last_and_oldest_rule() {
    let s = daily(10);
    let p = Policy {
        last: 3,
        ..Default::default()
    };
    assert_eq!(
        kept(&s, &p, NOW),
        [
            "2021-01-10T12:00:00Z",
            "2021-01-09T12:00:00Z",
            "2021-01-08T12:00:00Z"
        ]
    );
    // More count than snapshots: everything kept, and the oldest by the oldest rule.
    let p = Policy {
        last: 20,
        ..Default::default()
    };
    assert_eq!(kept(&s, &p, NOW).len(), 10);
}

#[test]
fn weekly_keeps_newest_per_iso_week_and_oldest() {
    let s = daily(10); // Jan 1-3 2021 are ISO week 2020-53, Jan 4-10 week 2021-01.
    let p = Policy {
        weekly: 5,
        ..Default::default()
    };
    // Newest of week 1 (Jan 10), newest of week 53 (Jan 3), then the oldest (Jan 1)
    // because the bucket still has count left.
    assert_eq!(
        kept(&s, &p, NOW),
        [
            "2021-01-10T12:00:00Z",
            "2021-01-03T12:00:00Z",
            "2021-01-01T12:00:00Z"
        ]
    );
    let p = Policy {
        weekly: 1,
        ..Default::default()
    };
    assert_eq!(kept(&s, &p, NOW), ["2021-01-10T12:00:00Z"]);
}

#[test]
fn buckets_use_the_recorded_offset() {
    // 23:30 at -05:00 is the next day in UTC; daily buckets follow the offset.
    let s = vec![
        snap("2021-05-01T23:30:00-05:00", &[]),
        snap("2021-05-01T08:00:00-05:00", &[]),
    ];
    let p = Policy {
        daily: 1,
        ..Default::default()
    };
    assert_eq!(kept(&s, &p, NOW), ["2021-05-01T23:30:00-05:00"]);
}

#[test]
fn tags_and_within() {
    let mut s = daily(10);
    s.push(snap("2020-06-01T00:00:00Z", &["keep", "x"]));
    let p = Policy {
        tags: vec![vec!["keep".into(), "x".into()]],
        ..Default::default()
    };
    assert_eq!(kept(&s, &p, NOW), ["2020-06-01T00:00:00Z"]);
    let p = Policy {
        tags: vec![vec!["keep".into(), "y".into()]],
        ..Default::default()
    };
    assert!(kept(&s, &p, NOW).is_empty());
    // Within is measured from the newest snapshot, not from now.
    let p = Policy {
        within: Duration::parse("2d").unwrap(),
        ..Default::default()
    };
    assert_eq!(
        kept(&s, &p, NOW),
        ["2021-01-10T12:00:00Z", "2021-01-09T12:00:00Z"]
    );
    // A future snapshot is not the reference.
    s.push(snap("2030-01-01T00:00:00Z", &[]));
    assert_eq!(
        kept(&s, &p, NOW),
        [
            "2030-01-01T00:00:00Z",
            "2021-01-10T12:00:00Z",
            "2021-01-09T12:00:00Z"
        ]
    );
}

#[test]
fn within_buckets_and_unlimited() {
    let s = daily(10);
    let p = Policy {
        within_daily: Duration::parse("3d").unwrap(),
        ..Default::default()
    };
    assert_eq!(kept(&s, &p, NOW).len(), 3);
    let p = Policy {
        monthly: -1,
        ..Default::default()
    };
    // One month: newest, plus the oldest by the oldest rule.
    assert_eq!(
        kept(&s, &p, NOW),
        ["2021-01-10T12:00:00Z", "2021-01-01T12:00:00Z"]
    );
}

#[test]
fn empty_policy_keeps_everything() {
    let s = daily(3);
    assert!(Policy::default().is_empty());
    assert_eq!(kept(&s, &Policy::default(), NOW).len(), 3);
}

#[test]
fn grouping() {
    let mut a = snap("2021-01-01T00:00:00Z", &["b", "a"]);
    a.1.hostname = "h1".into();
    let mut b = snap("2021-01-02T00:00:00Z", &["a", "b"]);
    b.1.hostname = "h2".into();
    let g = group_snapshots(vec![a.clone(), b.clone()], GroupBy::default());
    assert_eq!(g.len(), 2);
    let g = group_snapshots(vec![a, b], GroupBy::parse("tags").unwrap());
    assert_eq!(g.len(), 1);
    assert!(GroupBy::parse("bogus").is_err());
    assert_eq!(
        GroupBy::parse("").unwrap(),
        GroupBy {
            host: false,
            paths: false,
            tags: false
        }
    );
}
