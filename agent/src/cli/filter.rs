//! restic's snapshot filter flags (`--host`, `--tag`, `--path`), shared by every verb
//! that picks snapshots.

use crate::repository::files::SnapshotFilter;

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
