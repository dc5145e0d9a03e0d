//! What a restoring host does, as plain data: which rule of a RestoreSession applies to
//! it, which snapshots that rule picks from the repository, and the per-host results on
//! the session's status (claims, records, the outcome).
//!
//! Rules come in both spellings: the seed's (`target.directories`, `rules[].hosts`) and
//! released Stash's (`target.rules[]` with `targetHosts`, `sourceHost`, `snapshots`,
//! `paths`). A rule without target hosts serves every host that has no rule naming it.

use std::time::Duration;

use stash_repo_format::{id::Id, snapshot::Snapshot};

use crate::{
    crd::{
        common::Rule,
        restore_session::{HostRestoreStats, RestoreSessionSpec, RestoreSessionStatus},
    },
    session::{duration_text, is_final, FAILED, RUNNING, SUCCEEDED},
};

/// What one host restores.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostPlan {
    /// The host whose snapshots are restored.
    pub source_host: String,
    /// Snapshots named by the rule (ids, short ids, `<repository>-<short id>`, `latest`).
    pub snapshots: Vec<String>,
    /// Directories whose latest snapshot of the source host is restored; with no
    /// snapshots and no paths, the latest snapshot of each of its directories.
    pub paths: Vec<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// Why a host's snapshots cannot be chosen; each names what is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("the repository has no snapshot of host {host:?} for path {path:?}")]
    NoSnapshotOfPath { host: String, path: String },
    #[error("the repository has no snapshot of host {host:?}")]
    NoSnapshotOfHost { host: String },
    #[error("snapshot {name:?} is not in the repository")]
    UnknownSnapshot { name: String },
    #[error("snapshot {name:?} is ambiguous: several snapshot ids start with it")]
    AmbiguousSnapshot { name: String },
}

/// The rules of `spec`, in released Stash's shape: the top-level `spec.rules`, else
/// (the seed) one rule for every host restoring `target.directories`, else
/// `target.rules`. The older spellings come first because they are the newest word when
/// present: the operator removes them when it writes `target.rules` back.
pub fn rules(spec: &RestoreSessionSpec) -> Vec<Rule> {
    let target = spec.target.clone().unwrap_or_default();
    if !spec.rules.is_empty() {
        return spec.rules.clone();
    }
    if !target.directories.is_empty() {
        return vec![Rule {
            paths: target.directories,
            ..Rule::default()
        }];
    }
    target.rules
}

fn target_hosts(rule: &Rule) -> &[String] {
    if rule.target_hosts.is_empty() {
        &rule.hosts
    } else {
        &rule.target_hosts
    }
}

/// The directories the session restores into, known before any snapshot is read: the
/// ones the init container must be able to write.
pub fn directories(spec: &RestoreSessionSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in rules(spec).iter().flat_map(|r| r.paths.iter()) {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// What `host` restores, or `None` when no rule is for it. The first rule naming the
/// host wins; else the first rule naming no host; a session without rules restores
/// every host's own latest snapshots.
pub fn plan(spec: &RestoreSessionSpec, host: &str) -> Option<HostPlan> {
    let rules = rules(spec);
    if rules.is_empty() {
        return Some(HostPlan {
            source_host: host.to_string(),
            ..HostPlan::default()
        });
    }
    let rule = rules
        .iter()
        .find(|r| target_hosts(r).iter().any(|h| h == host))
        .or_else(|| rules.iter().find(|r| target_hosts(r).is_empty()))?;
    Some(HostPlan {
        source_host: rule
            .source_host
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| host.to_string()),
        snapshots: rule.snapshots.clone(),
        paths: rule.paths.clone(),
        include: rule.include.clone(),
        exclude: rule.exclude.clone(),
    })
}

fn latest(
    snapshots: &[(Id, Snapshot)],
    keep: impl Fn(&Snapshot) -> bool,
) -> Option<&(Id, Snapshot)> {
    snapshots
        .iter()
        .filter(|(_, s)| keep(s))
        .max_by(|(a_id, a), (b_id, b)| a.time.cmp(&b.time).then(a_id.cmp(b_id)))
}

/// The snapshots `plan` restores from the repository's `snapshots`, oldest first;
/// `repository` is the Repository's name, the prefix of released Stash's snapshot names.
///
/// # Errors
/// A named snapshot that is missing or ambiguous, or a host or path without snapshots.
pub fn select(
    plan: &HostPlan,
    snapshots: &[(Id, Snapshot)],
    repository: &str,
) -> Result<Vec<(Id, Snapshot)>, SelectError> {
    let of_host = |s: &Snapshot| s.hostname == plan.source_host;
    let mut out: Vec<&(Id, Snapshot)> = Vec::new();
    if !plan.snapshots.is_empty() {
        for name in &plan.snapshots {
            let bare = name
                .strip_prefix(repository)
                .and_then(|r| r.strip_prefix('-'))
                .unwrap_or(name);
            let found = if bare == "latest" {
                latest(snapshots, of_host).ok_or_else(|| SelectError::NoSnapshotOfHost {
                    host: plan.source_host.clone(),
                })?
            } else {
                let mut hits = snapshots.iter().filter(|(id, _)| {
                    !bare.is_empty() && id.to_hex().starts_with(&bare.to_ascii_lowercase())
                });
                let first = hits
                    .next()
                    .ok_or_else(|| SelectError::UnknownSnapshot { name: name.clone() })?;
                if hits.next().is_some() {
                    return Err(SelectError::AmbiguousSnapshot { name: name.clone() });
                }
                first
            };
            out.push(found);
        }
    } else if !plan.paths.is_empty() {
        for path in &plan.paths {
            let found =
                latest(snapshots, |s| of_host(s) && s.paths.contains(path)).ok_or_else(|| {
                    SelectError::NoSnapshotOfPath {
                        host: plan.source_host.clone(),
                        path: path.clone(),
                    }
                })?;
            out.push(found);
        }
    } else {
        let mut sets: Vec<&Vec<String>> = snapshots
            .iter()
            .filter(|(_, s)| of_host(s))
            .map(|(_, s)| &s.paths)
            .collect();
        sets.sort();
        sets.dedup();
        if sets.is_empty() {
            return Err(SelectError::NoSnapshotOfHost {
                host: plan.source_host.clone(),
            });
        }
        for paths in sets {
            out.extend(latest(snapshots, |s| of_host(s) && &s.paths == paths));
        }
    }
    out.sort_by(|(a_id, a), (b_id, b)| a.time.cmp(&b.time).then(a_id.cmp(b_id)));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out.into_iter().cloned().collect())
}

/// What a restoring process may do with its host on the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The host is this pod's to restore now (a fresh claim, or this pod's own claim
    /// from an attempt that did not finish).
    Mine,
    /// The host has its result already: nothing to do, ever again.
    Done,
    /// Another pod of the same host is restoring it; wait for its result.
    Busy { pod: String },
    /// The session is not running (not started yet, or over).
    NotRunning,
}

/// The host's entry, if any writer made one.
pub fn host<'a>(status: &'a RestoreSessionStatus, host: &str) -> Option<&'a HostRestoreStats> {
    status.stats.iter().find(|s| s.hostname == host)
}

/// Claims `host_name` for `pod` with a Running entry, unless the host is done or
/// another pod has it; several pods of one host (a Deployment's replicas) restore it once.
pub fn claim(status: &mut RestoreSessionStatus, host_name: &str, pod: &str) -> Claim {
    match host(status, host_name) {
        Some(h) if is_final(h.phase.as_deref()) => return Claim::Done,
        Some(h) if h.pod.as_deref().is_some_and(|p| p != pod) => {
            return Claim::Busy {
                pod: h.pod.clone().unwrap_or_default(),
            }
        }
        _ => {}
    }
    if status.phase.as_deref() != Some(RUNNING) {
        return Claim::NotRunning;
    }
    status.stats.retain(|s| s.hostname != host_name);
    status.stats.push(HostRestoreStats {
        hostname: host_name.to_string(),
        phase: Some(RUNNING.to_string()),
        pod: Some(pod.to_string()),
        ..HostRestoreStats::default()
    });
    Claim::Mine
}

/// Records a host's result, replacing its claim.
pub fn record(status: &mut RestoreSessionStatus, host_name: &str, pod: &str, result: HostResult) {
    status.stats.retain(|s| s.hostname != host_name);
    status.stats.push(HostRestoreStats {
        hostname: host_name.to_string(),
        phase: Some(
            if result.error.is_some() {
                FAILED
            } else {
                SUCCEEDED
            }
            .to_string(),
        ),
        duration: Some(duration_text(result.took)),
        error: result.error,
        pod: Some(pod.to_string()),
    });
}

/// How one host's restore went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostResult {
    pub took: Duration,
    pub error: Option<String>,
}

/// The final phase once every expected host has a final entry.
pub fn outcome(status: &RestoreSessionStatus) -> Option<&'static str> {
    crate::session::outcome_of(
        status.total_hosts?,
        status.stats.iter().map(|s| s.phase.as_deref()),
    )
}

/// Ends the session; each host still running is marked failed with `reason`.
pub fn finish(
    status: &mut RestoreSessionStatus,
    phase: &str,
    reason: Option<&str>,
    took: Duration,
) {
    status.phase = Some(phase.to_string());
    status.session_duration = Some(duration_text(took));
    for s in &mut status.stats {
        if !is_final(s.phase.as_deref()) {
            s.phase = Some(FAILED.to_string());
            s.error = reason.map(str::to_string);
        }
    }
}

/// Hosts with no final result yet, and how many never reported, for a timeout's message.
pub fn unfinished(status: &RestoreSessionStatus) -> Vec<String> {
    let mut out: Vec<String> = status
        .stats
        .iter()
        .filter(|s| !is_final(s.phase.as_deref()))
        .map(|s| s.hostname.clone())
        .collect();
    let total = usize::try_from(status.total_hosts.unwrap_or(0)).unwrap_or(0);
    let silent = total.saturating_sub(status.stats.len());
    if silent > 0 {
        out.push(format!("{silent} host(s) that never started"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use stash_repo_format::gotime::GoTime;

    fn spec(yaml: &str) -> RestoreSessionSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn snap(n: u8, host: &str, path: &str, secs: i64) -> (Id, Snapshot) {
        let id = Id::from_hex(&format!("{n:02x}{}", "0".repeat(62))).unwrap();
        let s = Snapshot {
            time: GoTime::from_unix_in(secs, 0, chrono::FixedOffset::east_opt(0).unwrap()),
            hostname: host.into(),
            paths: vec![path.into()],
            ..Snapshot::default()
        };
        (id, s)
    }

    #[test]
    fn the_seeds_directories_are_one_rule_for_every_host() {
        let s = spec(
            "repository: {name: r}\ntarget:\n  ref: {apiVersion: apps/v1, kind: Deployment, name: d}\n  directories: [/source/data]\n",
        );
        let p = plan(&s, "host-0").unwrap();
        assert_eq!(p.source_host, "host-0");
        assert_eq!(p.paths, ["/source/data"]);
        assert_eq!(directories(&s), ["/source/data"]);
    }

    #[test]
    fn a_rule_for_a_host_wins_over_the_catch_all() {
        let s = spec(
            "repository: {name: r}
target:
  ref: {apiVersion: apps/v1, kind: StatefulSet, name: s}
  rules:
  - targetHosts: [host-2]
    sourceHost: host-1
    paths: [/source/data]
  - paths: [/source/data, /etc/conf]
",
        );
        let p2 = plan(&s, "host-2").unwrap();
        assert_eq!((p2.source_host.as_str(), p2.paths.len()), ("host-1", 1));
        let p0 = plan(&s, "host-0").unwrap();
        assert_eq!((p0.source_host.as_str(), p0.paths.len()), ("host-0", 2));
        assert_eq!(directories(&s), ["/source/data", "/etc/conf"]);
        // The seed's `hosts` spelling, in the deprecated top-level `rules`.
        let seed = spec("repository: {name: r}\nrules:\n- hosts: [host-3]\n  snapshots: [abc]\n");
        assert_eq!(plan(&seed, "host-3").unwrap().snapshots, ["abc"]);
        assert_eq!(plan(&seed, "host-0"), None);
    }

    #[test]
    fn paths_pick_the_latest_snapshot_of_the_source_host() {
        let all = vec![
            snap(1, "host-1", "/data", 100),
            snap(2, "host-1", "/data", 200),
            snap(3, "host-2", "/data", 300),
            snap(4, "host-1", "/conf", 50),
        ];
        let p = HostPlan {
            source_host: "host-1".into(),
            paths: vec!["/data".into()],
            ..HostPlan::default()
        };
        let got = select(&p, &all, "repo").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, all[1].0);
        let every = HostPlan {
            paths: vec![],
            ..p.clone()
        };
        let got: Vec<Id> = select(&every, &all, "repo")
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, [all[3].0, all[1].0], "oldest first, one per directory");
        let missing = HostPlan {
            paths: vec!["/nope".into()],
            ..p.clone()
        };
        assert_eq!(
            select(&missing, &all, "repo"),
            Err(SelectError::NoSnapshotOfPath {
                host: "host-1".into(),
                path: "/nope".into()
            })
        );
        let nobody = HostPlan {
            source_host: "host-9".into(),
            ..every
        };
        assert!(matches!(
            select(&nobody, &all, "repo"),
            Err(SelectError::NoSnapshotOfHost { .. })
        ));
    }

    #[test]
    fn snapshots_are_named_by_id_prefix_or_stash_name() {
        let all = vec![snap(0xab, "host-0", "/d", 1), snap(0xac, "host-0", "/d", 2)];
        let named = |names: &[&str]| HostPlan {
            source_host: "host-0".into(),
            snapshots: names.iter().map(|s| s.to_string()).collect(),
            ..HostPlan::default()
        };
        let short = all[0].0.short();
        let got = select(&named(&[&format!("repo-{short}")]), &all, "repo").unwrap();
        assert_eq!(got[0].0, all[0].0);
        assert_eq!(
            select(&named(&["latest"]), &all, "repo").unwrap()[0].0,
            all[1].0
        );
        assert_eq!(
            select(&named(&["a"]), &all, "repo"),
            Err(SelectError::AmbiguousSnapshot { name: "a".into() })
        );
        assert_eq!(
            select(&named(&["ff"]), &all, "repo"),
            Err(SelectError::UnknownSnapshot { name: "ff".into() })
        );
    }

    #[test]
    fn a_host_is_restored_once_by_one_pod() {
        let mut st = RestoreSessionStatus {
            phase: Some(RUNNING.into()),
            total_hosts: Some(2),
            ..RestoreSessionStatus::default()
        };
        assert_eq!(claim(&mut st, "host-0", "pod-a"), Claim::Mine);
        assert_eq!(
            claim(&mut st, "host-0", "pod-b"),
            Claim::Busy {
                pod: "pod-a".into()
            }
        );
        // pod-a's init container restarted mid-restore: it takes its claim again.
        assert_eq!(claim(&mut st, "host-0", "pod-a"), Claim::Mine);
        record(&mut st, "host-0", "pod-a", HostResult::default());
        assert_eq!(claim(&mut st, "host-0", "pod-a"), Claim::Done);
        assert_eq!(outcome(&st), None, "host-1 has not reported");
        assert_eq!(unfinished(&st), ["1 host(s) that never started"]);
        assert_eq!(claim(&mut st, "host-1", "pod-c"), Claim::Mine);
        record(
            &mut st,
            "host-1",
            "pod-c",
            HostResult {
                took: Duration::from_secs(1),
                error: Some("boom".into()),
            },
        );
        assert_eq!(outcome(&st), Some(FAILED));
        st.phase = Some(FAILED.into());
        assert_eq!(claim(&mut st, "host-9", "pod-d"), Claim::NotRunning);
    }
}
