//! Forget by retention policy: which snapshots of each group a policy keeps
//! ([`plan`], pure), and removing the others under an exclusive lock ([`forget`]).

use stash_repo_format::{
    file_type::FileType,
    gotime::GoTime,
    retention::{apply_policy, group_snapshots, Counters, GroupBy, GroupKey, Policy},
    snapshot::Snapshot,
    Id,
};

use crate::{
    error::{Error, Result},
    repository::{files::SnapshotFilter, Repository},
};

/// What a policy decides for one group of snapshots.
#[derive(Debug, Clone)]
pub struct GroupPlan {
    /// The group.
    pub key: GroupKey,
    /// Kept snapshots, each with the policy rules that keep it and the counts
    /// left after it.
    pub keep: Vec<(Id, Snapshot, Vec<String>, Counters)>,
    /// Snapshots to remove.
    pub remove: Vec<(Id, Snapshot)>,
}

/// Applies `policy` to each group of `snaps`. An empty policy removes everything
/// (the caller decides whether that is allowed).
///
/// # Errors
/// [`Error::Usage`] when a non-empty policy would remove every snapshot of a group
/// (restic refuses that too).
pub fn plan(
    snaps: Vec<(Id, Snapshot)>,
    policy: &Policy,
    by: GroupBy,
    now: &GoTime,
) -> Result<Vec<GroupPlan>> {
    let mut out = Vec::new();
    for (key, group) in group_snapshots(snaps, by) {
        let decisions: Vec<(Id, bool, Vec<String>, Counters)> = if policy.is_empty() {
            group
                .iter()
                .map(|(id, _)| (*id, false, Vec::new(), Counters::default()))
                .collect()
        } else {
            apply_policy(&group, policy, now)
                .into_iter()
                .map(|d| (d.id, d.keep, d.reasons, d.counters))
                .collect()
        };
        if !policy.is_empty() && decisions.iter().all(|d| !d.1) {
            return Err(Error::Usage(format!(
                "refusing to delete last snapshot of snapshot group {}",
                serde_json::to_string(&key).unwrap_or_default()
            )));
        }
        let snap_of = |id: &Id| group.iter().find(|(i, _)| i == id).map(|(_, s)| s.clone());
        let mut p = GroupPlan {
            key,
            keep: Vec::new(),
            remove: Vec::new(),
        };
        for (id, keep, why, left) in decisions {
            let Some(s) = snap_of(&id) else { continue };
            if keep {
                p.keep.push((id, s, why, left));
            } else {
                p.remove.push((id, s));
            }
        }
        out.push(p);
    }
    Ok(out)
}

/// Removes the snapshots `policy` does not keep among those matching `filter`, under an
/// exclusive lock; returns the plan that was carried out.
///
/// # Errors
/// Lock conflicts, a refusal from [`plan`], backend errors.
pub async fn forget(
    repo: &Repository,
    filter: &SnapshotFilter,
    policy: &Policy,
    by: GroupBy,
) -> Result<Vec<GroupPlan>> {
    let mut lock = repo.lock_unconfirmed(true).await?;
    let res = async {
        let snaps: Vec<_> = repo
            .snapshots()
            .await?
            .into_iter()
            .filter(|(_, s)| filter.matches(s))
            .collect();
        let plans = plan(snaps, policy, by, &GoTime::now())?;
        lock.confirm().await?;
        let remove: Vec<Id> = plans
            .iter()
            .flat_map(|p| p.remove.iter().map(|(id, _)| *id))
            .collect();
        repo.remove_all(FileType::Snapshot, &remove).await?;
        Ok(plans)
    }
    .await;
    lock.release().await?;
    res
}
