//! A BackupSession's status as plain data: phases, the per-host and per-directory
//! results in both shapes (released Stash's `targets[].stats[].snapshots[]` and the
//! seed's flat `stats[]`), which host claims the work, and when the session is over.
//!
//! Several writers share one status (the sidecar of each host, and the operator), so
//! every change here is a pure edit of a freshly read status that the caller writes
//! back under optimistic concurrency.

use std::time::Duration;

use crate::{
    crd::{
        backup_session::{
            BackupSessionStatus, BackupTargetStatus, DirectoryStats, FileStats, HostBackupStats,
            SeedFileStats, SnapshotStats,
        },
        common::TargetRef,
    },
    schedule::go_duration,
};

pub const PENDING: &str = "Pending";
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";
pub const SKIPPED: &str = "Skipped";

/// A session's time limit when its configuration sets no `timeOut`: long enough for
/// a large first backup or restore, short enough that a lost pod does not block the
/// schedule for days.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// A session's time limit from a `timeOut` field (Go duration syntax).
///
/// # Errors
/// The text is not a duration; the message names the field and the value.
pub fn timeout(text: Option<&str>) -> Result<Duration, String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(DEFAULT_TIMEOUT),
        Some(t) => {
            crate::schedule::parse_duration(t).map_err(|e| format!("spec.timeOut {t:?}: {e}"))
        }
    }
}

/// Whether a phase is final.
pub fn is_final(phase: Option<&str>) -> bool {
    matches!(phase, Some(SUCCEEDED | FAILED | SKIPPED))
}

/// One directory's backup, as the sidecar measured it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirectoryResult {
    pub path: String,
    /// The snapshot's short id (8 hex digits), as restic prints it.
    pub snapshot: String,
    pub total_bytes: u64,
    pub uploaded_bytes: u64,
    pub processing: Duration,
    pub total_files: u64,
    pub new_files: u64,
    pub changed_files: u64,
    pub unmodified_files: u64,
}

/// Bytes in binary units with three decimals, as Stash writes sizes (`1.720 GiB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.3} {}", UNITS[unit])
}

/// Durations as Go prints them, to the millisecond (`1m2.345s`).
pub fn duration_text(d: Duration) -> String {
    go_duration(Duration::from_millis(d.as_millis() as u64))
}

fn i(n: u64) -> Option<i64> {
    i64::try_from(n).ok()
}

/// The released shape of one host's results; `repository` names snapshots as Stash
/// does (`<repository>-<short id>`).
pub fn host_stats(
    host: &str,
    repository: &str,
    results: &[DirectoryResult],
    error: Option<String>,
    took: Duration,
) -> HostBackupStats {
    HostBackupStats {
        hostname: host.to_string(),
        phase: Some(if error.is_some() { FAILED } else { SUCCEEDED }.to_string()),
        snapshots: results
            .iter()
            .map(|r| SnapshotStats {
                name: format!("{repository}-{}", r.snapshot),
                path: r.path.clone(),
                total_size: Some(human_size(r.total_bytes)),
                uploaded: Some(human_size(r.uploaded_bytes)),
                processing_time: Some(duration_text(r.processing)),
                file_stats: Some(FileStats {
                    total_files: i(r.total_files),
                    new_files: i(r.new_files),
                    modified_files: i(r.changed_files),
                    unmodified_files: i(r.unmodified_files),
                }),
            })
            .collect(),
        duration: Some(duration_text(took)),
        error,
    }
}

/// The seed's shape: one entry per directory.
pub fn seed_stats(host: &str, results: &[DirectoryResult]) -> Vec<DirectoryStats> {
    results
        .iter()
        .map(|r| DirectoryStats {
            hostname: Some(host.to_string()),
            directory: Some(r.path.clone()),
            direcotry: None,
            snapshot: Some(r.snapshot.clone()),
            size: Some(human_size(r.total_bytes)),
            uploaded: Some(human_size(r.uploaded_bytes)),
            file_stats: Some(SeedFileStats {
                new: i(r.new_files),
                changed: i(r.changed_files),
                unmodified: i(r.unmodified_files),
            }),
        })
        .collect()
}

fn target(status: &mut BackupSessionStatus) -> &mut BackupTargetStatus {
    if status.targets.is_empty() {
        status.targets.push(BackupTargetStatus::default());
    }
    &mut status.targets[0]
}

/// Starts a session: Running, with its target, the number of hosts expected and the
/// deadline (RFC 3339) after which it fails.
pub fn start(
    status: &mut BackupSessionStatus,
    reference: TargetRef,
    total_hosts: i32,
    deadline: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) {
    status.phase = Some(RUNNING.to_string());
    status.session_deadline = Some(deadline);
    let t = target(status);
    t.reference = Some(reference);
    t.total_hosts = Some(total_hosts);
    t.phase = Some(RUNNING.to_string());
}

/// The host's entry, if any writer made one.
pub fn host<'a>(status: &'a BackupSessionStatus, host: &str) -> Option<&'a HostBackupStats> {
    status
        .targets
        .first()
        .and_then(|t| t.stats.iter().find(|s| s.hostname == host))
}

/// Claims `host_name` with a Running entry. Returns false when the session is not
/// running or another writer has the host already, so that of several replicas sharing
/// one host (a Deployment's) exactly one backs it up.
pub fn claim(status: &mut BackupSessionStatus, host_name: &str) -> bool {
    if status.phase.as_deref() != Some(RUNNING) || host(status, host_name).is_some() {
        return false;
    }
    target(status).stats.push(HostBackupStats {
        hostname: host_name.to_string(),
        phase: Some(RUNNING.to_string()),
        ..HostBackupStats::default()
    });
    true
}

/// Records a host's results in both shapes, replacing its earlier entries.
pub fn record(status: &mut BackupSessionStatus, stats: HostBackupStats, seed: Vec<DirectoryStats>) {
    let host_name = stats.hostname.clone();
    let t = target(status);
    t.stats.retain(|s| s.hostname != host_name);
    t.stats.push(stats);
    status
        .stats
        .retain(|s| s.hostname.as_deref() != Some(host_name.as_str()));
    status.stats.extend(seed);
}

/// The final phase once every expected host has a final entry: Failed if any host
/// failed, Succeeded otherwise; `None` while hosts are missing or still running.
pub fn outcome(status: &BackupSessionStatus) -> Option<&'static str> {
    let t = status.targets.first()?;
    outcome_of(t.total_hosts?, t.stats.iter().map(|s| s.phase.as_deref()))
}

/// [`outcome`] over the phases the hosts reported, of a session expecting `total`.
pub fn outcome_of<'a>(
    total: i32,
    phases: impl Iterator<Item = Option<&'a str>>,
) -> Option<&'static str> {
    let total = usize::try_from(total).ok()?;
    let done: Vec<Option<&str>> = phases.filter(|p| is_final(*p)).collect();
    if done.len() < total {
        return None;
    }
    Some(if done.contains(&Some(FAILED)) {
        FAILED
    } else {
        SUCCEEDED
    })
}

/// Hosts that have no final result yet, for the timeout's message.
pub fn unfinished_hosts(status: &BackupSessionStatus) -> Vec<String> {
    status
        .targets
        .first()
        .map(|t| {
            t.stats
                .iter()
                .filter(|s| !is_final(s.phase.as_deref()))
                .map(|s| s.hostname.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Ends the session; each host still running is marked failed with `reason`.
pub fn finish(status: &mut BackupSessionStatus, phase: &str, reason: Option<&str>, took: Duration) {
    status.phase = Some(phase.to_string());
    status.session_duration = Some(duration_text(took));
    if let Some(t) = status.targets.first_mut() {
        t.phase = Some(phase.to_string());
        for s in &mut t.stats {
            if !is_final(s.phase.as_deref()) {
                s.phase = Some(FAILED.to_string());
                s.error = reason.map(str::to_string);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn started(total: i32) -> BackupSessionStatus {
        let mut s = BackupSessionStatus::default();
        let deadline = crate::time::to_k8s(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        start(&mut s, TargetRef::default(), total, deadline);
        s
    }

    fn result(path: &str) -> DirectoryResult {
        DirectoryResult {
            path: path.into(),
            snapshot: "e58a7ca7".into(),
            total_bytes: 1_846_943_784,
            uploaded_bytes: 1024,
            processing: Duration::from_millis(1_234),
            total_files: 7,
            new_files: 3,
            changed_files: 1,
            unmodified_files: 3,
        }
    }

    #[test]
    fn sizes_and_durations_read_as_stash_writes_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.000 KiB");
        assert_eq!(human_size(1_846_943_784), "1.720 GiB");
        assert_eq!(duration_text(Duration::from_micros(62_345_678)), "1m2.345s");
        assert_eq!(duration_text(Duration::ZERO), "0s");
    }

    #[test]
    fn results_fill_both_shapes() {
        let mut s = started(1);
        assert!(claim(&mut s, "host-0"));
        let results = [result("/source/data"), result("/etc")];
        let h = host_stats(
            "host-0",
            "demo-repo",
            &results,
            None,
            Duration::from_secs(3),
        );
        record(&mut s, h, seed_stats("host-0", &results));
        let t = &s.targets[0];
        assert_eq!(t.stats.len(), 1);
        assert_eq!(t.stats[0].phase.as_deref(), Some(SUCCEEDED));
        assert_eq!(t.stats[0].snapshots[0].name, "demo-repo-e58a7ca7");
        assert_eq!(t.stats[0].snapshots[1].path, "/etc");
        let f = t.stats[0].snapshots[0].file_stats.as_ref().unwrap();
        assert_eq!((f.new_files, f.modified_files), (Some(3), Some(1)));
        assert_eq!(s.stats.len(), 2);
        assert_eq!(s.stats[0].directory.as_deref(), Some("/source/data"));
        assert_eq!(s.stats[0].snapshot.as_deref(), Some("e58a7ca7"));
        assert_eq!(s.stats[0].size.as_deref(), Some("1.720 GiB"));
        let seed = s.stats[0].file_stats.as_ref().unwrap();
        assert_eq!(
            (seed.new, seed.changed, seed.unmodified),
            (Some(3), Some(1), Some(3))
        );
        assert_eq!(outcome(&s), Some(SUCCEEDED));
    }

    #[test]
    fn a_host_is_claimed_once_and_only_while_running() {
        let mut s = started(1);
        assert!(claim(&mut s, "host-0"));
        assert!(
            !claim(&mut s, "host-0"),
            "a second replica of host-0 must not back up"
        );
        let mut done = s.clone();
        done.phase = Some(SUCCEEDED.into());
        assert!(!claim(&mut done, "host-1"));
        assert!(!claim(&mut BackupSessionStatus::default(), "host-0"));
    }

    #[test]
    fn the_session_ends_when_every_host_has_a_result() {
        let mut s = started(3);
        for h in ["host-0", "host-1", "host-2"] {
            assert!(claim(&mut s, h));
        }
        assert_eq!(outcome(&s), None);
        let ok = |h: &str| host_stats(h, "r", &[result("/d")], None, Duration::ZERO);
        record(&mut s, ok("host-0"), vec![]);
        record(&mut s, ok("host-2"), vec![]);
        assert_eq!(outcome(&s), None);
        assert_eq!(unfinished_hosts(&s), ["host-1"]);
        let failed = host_stats("host-1", "r", &[], Some("disk gone".into()), Duration::ZERO);
        record(&mut s, failed, vec![]);
        assert_eq!(outcome(&s), Some(FAILED));
    }

    #[test]
    fn finishing_marks_running_hosts_failed_with_the_reason() {
        let mut s = started(2);
        claim(&mut s, "host-0");
        finish(&mut s, FAILED, Some("timed out"), Duration::from_secs(90));
        assert_eq!(s.phase.as_deref(), Some(FAILED));
        assert_eq!(s.session_duration.as_deref(), Some("1m30s"));
        let h = &s.targets[0].stats[0];
        assert_eq!(
            (h.phase.as_deref(), h.error.as_deref()),
            (Some(FAILED), Some("timed out"))
        );
        assert!(is_final(s.phase.as_deref()));
    }
}
