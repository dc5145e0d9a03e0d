//! restic's snapshot filter flags (`--host`, `--tag`, `--path`), shared by every verb
//! that picks snapshots.

use stash_repo_format::{snapshot::Snapshot, Id};

use crate::repository::{files::SnapshotFilter, Repository};

/// The snapshots a verb works on, oldest first: those `names` (ids, prefixes,
/// `latest`; one that matches nothing is skipped with a warning, as restic does) or,
/// without names, every snapshot `filter` lets through.
///
/// # Errors
/// Backend errors listing or reading snapshots.
pub async fn select(
    repo: &Repository,
    names: &[String],
    filter: &FilterArgs,
) -> crate::error::Result<Vec<(Id, Snapshot)>> {
    let filter = filter.filter();
    let mut found = Vec::new();
    if names.is_empty() {
        found = repo.snapshots().await?;
        found.retain(|(_, s)| filter.matches(s));
    } else {
        for name in names {
            match repo.find_snapshot(name, &filter).await {
                Ok(s) => found.push(s),
                Err(e) => eprintln!("Ignoring {name:?}: {e}"),
            }
        }
    }
    found.sort_by(|(ia, a), (ib, b)| a.time.cmp(&b.time).then(ia.cmp(ib)));
    found.dedup_by_key(|(id, _)| *id);
    Ok(found)
}

/// `--host`, `--tag` and `--path`, as restic takes them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable: any of them).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags (`a,b` needs both; repeat for either).
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tags: Vec<String>,
    /// Only snapshots with this path (repeatable: all of them).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

impl FilterArgs {
    /// Whether any filter is given.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty()
    }

    /// The filter the flags describe.
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            paths: self.paths.clone(),
            tags: self
                .tags
                .iter()
                .map(|t| t.split(',').map(String::from).collect())
                .collect(),
        }
    }
}
