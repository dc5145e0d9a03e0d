use chrono::TimeZone;

use super::*;

fn configuration(name: &str, schedule: &str) -> BackupConfiguration {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "stash.appscode.com/v1beta1",
        "kind": "BackupConfiguration",
        "metadata": {"name": name, "namespace": "demo", "creationTimestamp": "2026-12-01T00:00:00Z"},
        "spec": {"repository": {"name": "repo"}, "schedule": schedule}
    }))
    .unwrap()
}

fn session(name: &str, of: &str, phase: &str, finished: &str) -> BackupSession {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "stash.appscode.com/v1beta1",
        "kind": "BackupSession",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {"invoker": {"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration", "name": of}},
        "status": {
            "phase": phase,
            "sessionDuration": "1m2.5s",
            "conditions": [{
                "type": "SessionFinished", "status": if phase == "Succeeded" { "True" } else { "False" },
                "reason": phase, "message": "", "lastTransitionTime": finished
            }],
            "targets": [{
                "ref": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "stash-demo"},
                "totalHosts": 1,
                "phase": phase,
                "stats": [{
                    "hostname": "host-0",
                    "phase": phase,
                    "duration": "350ms",
                    "snapshots": [{
                        "name": "repo-1234abcd", "path": "/source/data",
                        "totalSize": "1.500 MiB", "uploaded": "512 B", "processingTime": "2s",
                        "fileStats": {"totalFiles": 5, "newFiles": 2, "modifiedFiles": 1, "unmodifiedFiles": 2}
                    }]
                }]
            }]
        }
    }))
    .unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
}

fn text(configurations: &[BackupConfiguration], sessions: &[BackupSession]) -> String {
    let mut out = String::new();
    render(&mut out, configurations, sessions, now());
    out
}

const BASE: &str =
    r#"namespace="demo",invoker_kind="BackupConfiguration",invoker_name="bc",repository="repo""#;

#[test]
fn a_successful_session_gives_released_stash_metrics() {
    let t = text(
        &[configuration("bc", "*/5 * * * *")],
        &[session("s1", "bc", "Succeeded", "2026-12-07T11:55:00Z")],
    );
    let finished = Utc
        .with_ymd_and_hms(2026, 12, 7, 11, 55, 0)
        .unwrap()
        .timestamp();
    let target = r#",target_kind="Deployment",target_name="stash-demo""#;
    let host = format!("{target},host=\"host-0\"");
    for line in [
        format!("stash_backup_session_success{{{BASE}}} 1"),
        format!("stash_backup_last_success_time_seconds{{{BASE}}} {finished}"),
        format!("stash_backup_session_duration_seconds{{{BASE}}} 62.5"),
        format!("stash_backup_schedule_interval_seconds{{{BASE}}} 300"),
        format!("stash_backup_target_success{{{BASE}{target}}} 1"),
        format!("stash_backup_target_last_success_time_seconds{{{BASE}{target}}} {finished}"),
        format!("stash_backup_host_backup_success{{{BASE}{host}}} 1"),
        format!("stash_backup_host_backup_duration_seconds{{{BASE}{host}}} 0.35"),
        format!("stash_backup_host_data_size_bytes{{{BASE}{host}}} 1572864"),
        format!("stash_backup_host_data_uploaded_bytes{{{BASE}{host}}} 512"),
        format!("stash_backup_host_files_total{{{BASE}{host}}} 5"),
        format!("stash_backup_host_files_new{{{BASE}{host}}} 2"),
        format!("stash_backup_host_files_modified{{{BASE}{host}}} 1"),
        format!("stash_backup_host_files_unmodified{{{BASE}{host}}} 2"),
    ] {
        assert!(t.contains(&format!("{line}\n")), "{line} in\n{t}");
    }
    assert_eq!(
        t.matches("# TYPE stash_backup_session_success gauge")
            .count(),
        1
    );
}

#[test]
fn a_failure_after_a_success_keeps_the_success_time() {
    let t = text(
        &[configuration("bc", "@every 1h")],
        &[
            session("s2", "bc", "Failed", "2026-12-07T11:00:00Z"),
            session("s1", "bc", "Succeeded", "2026-12-07T10:00:00Z"),
            session("other", "another", "Succeeded", "2026-12-07T11:30:00Z"),
        ],
    );
    let ok = Utc
        .with_ymd_and_hms(2026, 12, 7, 10, 0, 0)
        .unwrap()
        .timestamp();
    assert!(
        t.contains(&format!("stash_backup_session_success{{{BASE}}} 0\n")),
        "{t}"
    );
    assert!(t.contains(&format!(
        "stash_backup_last_success_time_seconds{{{BASE}}} {ok}\n"
    )));
    assert!(t.contains(&format!(
        "stash_backup_schedule_interval_seconds{{{BASE}}} 3600\n"
    )));
    assert!(
        !t.contains("invoker_name=\"another\""),
        "sessions of unknown configurations are left out"
    );
}

#[test]
fn a_configuration_without_sessions_has_only_its_creation_and_interval() {
    let t = text(&[configuration("bc", "0 2 * * *")], &[]);
    let created = Utc
        .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    assert!(t.contains(&format!(
        "stash_backupconfiguration_created{{{BASE}}} {created}\n"
    )));
    assert!(t.contains(&format!(
        "stash_backup_schedule_interval_seconds{{{BASE}}} 86400\n"
    )));
    assert!(!t.contains("stash_backup_session_success"));
    let running = session("s1", "bc", "Running", "2026-12-07T11:00:00Z");
    assert!(!text(&[configuration("bc", "0 2 * * *")], &[running]).contains("success"));
}

#[test]
fn weekday_schedules_expect_their_longest_gap() {
    let s: Schedule = "0 2 * * 1-5".parse().unwrap();
    assert_eq!(expected_interval(&s, now(), now()), Some(3.0 * 86400.0));
}

#[test]
fn status_texts_parse_back() {
    assert_eq!(seconds("1m2.5s"), Some(62.5));
    assert_eq!(seconds("350ms"), Some(0.35));
    assert_eq!(seconds("0s"), Some(0.0));
    assert_eq!(seconds("soon"), None);
    assert_eq!(bytes("12 B"), Some(12.0));
    assert_eq!(bytes("1.000 GiB"), Some(1073741824.0));
    assert_eq!(bytes("lots"), None);
    assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}
