//! The monitoring kit under `operator/deploy/monitoring/`: the alert rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`), and every metric
//! the rules and the Grafana dashboard query is one the operator serves.

use std::{collections::BTreeSet, path::PathBuf, process::Command};

use stash_operator::crd::{
    backup_configuration::BackupConfiguration, backup_session::BackupSession,
};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../operator/deploy/monitoring")
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
        .expect("promtool (Debian's prometheus package; tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yaml"]);
    promtool(&["test", "rules", "alerts.test.yaml"]);
}

/// `stash_*` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("stash_") {
        let word: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let before = rest[..i].chars().last();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(word.clone());
        }
        rest = &rest[i + word.len()..];
    }
    out
}

/// Every family the operator can serve: its own counters and the backup metrics of a
/// finished session with every field set.
fn served() -> BTreeSet<String> {
    let bc: BackupConfiguration = serde_json::from_value(serde_json::json!({
        "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupConfiguration",
        "metadata": {"name": "bc", "namespace": "demo", "creationTimestamp": "2026-12-01T00:00:00Z"},
        "spec": {"repository": {"name": "repo"}, "schedule": "@every 1h"}
    }))
    .expect("configuration");
    let bs: BackupSession = serde_json::from_value(serde_json::json!({
        "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupSession",
        "metadata": {"name": "s", "namespace": "demo"},
        "spec": {"invoker": {"kind": "BackupConfiguration", "name": "bc"}},
        "status": {
            "phase": "Succeeded", "sessionDuration": "3s",
            "conditions": [{"type": "SessionFinished", "status": "True", "reason": "Succeeded",
                            "message": "", "lastTransitionTime": "2026-12-01T01:00:00Z"}],
            "targets": [{"ref": {"kind": "Deployment", "name": "app"}, "phase": "Succeeded", "totalHosts": 1,
                "stats": [{"hostname": "host-0", "phase": "Succeeded", "duration": "2s",
                    "snapshots": [{"name": "repo-1", "path": "/data", "totalSize": "1 B", "uploaded": "1 B",
                        "processingTime": "1s", "fileStats": {"totalFiles": 1, "newFiles": 1,
                        "modifiedFiles": 0, "unmodifiedFiles": 0}}]}]}]
        }
    }))
    .expect("session");
    let mut text = stash_operator::controller::Metrics::default().render();
    stash_operator::backup_metrics::render(&mut text, &[bc], &[bs], chrono::Utc::now());
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_rules_and_the_dashboard_query_only_served_metrics() {
    let served = served();
    for name in [
        "stash_backup_session_success",
        "stash_backup_last_success_time_seconds",
        "stash_backup_target_last_success_time_seconds",
        "stash_backup_host_data_size_bytes",
        "stash_backup_host_files_total",
    ] {
        assert!(served.contains(name), "{name} is served: {served:?}");
    }
    let rules = std::fs::read_to_string(dir().join("alerts.yaml")).expect("alerts.yaml");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir().join("grafana-dashboard.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut queries = String::new();
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(panel["id"].as_i64().expect("panel id")),
            "unique ids"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} queries something", panel["title"]);
        for t in targets {
            queries.push_str(t["expr"].as_str().expect("expr"));
            queries.push('\n');
        }
    }
    let used: BTreeSet<String> = metric_names(&rules)
        .into_iter()
        .chain(metric_names(&queries))
        .collect();
    assert!(used.len() > 5, "{used:?}");
    let unknown: Vec<_> = used.difference(&served).collect();
    assert!(unknown.is_empty(), "queried but not served: {unknown:?}");
}
