//! Grouping snapshots for `forget` (`--group-by host,paths,tags`): each group gets
//! the policy applied on its own. Paths and tags are compared sorted.

use crate::{
    error::{FormatError, Result},
    id::Id,
    snapshot::Snapshot,
};

/// Which fields form the group key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    /// Group by host name.
    pub host: bool,
    /// Group by the (sorted) path list.
    pub paths: bool,
    /// Group by the (sorted) tag list.
    pub tags: bool,
}

impl Default for GroupBy {
    /// restic's default: `host,paths`.
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// Parses `host,paths,tags` (any subset; empty = one group).
    ///
    /// # Errors
    /// [`FormatError::Invalid`] for an unknown field.
    pub fn parse(s: &str) -> Result<Self> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" | "hosts" => g.host = true,
                "path" | "paths" => g.paths = true,
                "tag" | "tags" => g.tags = true,
                o => {
                    return Err(FormatError::invalid(
                        "group-by",
                        format!("unknown field {o:?}"),
                    ))
                }
            }
        }
        Ok(g)
    }
}

/// A group's identity.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupKey {
    /// Host, when grouping by host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Sorted paths, when grouping by paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Sorted tags, when grouping by tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// Splits snapshots into groups, in order of first appearance.
pub fn group_snapshots(
    snaps: Vec<(Id, Snapshot)>,
    by: GroupBy,
) -> Vec<(GroupKey, Vec<(Id, Snapshot)>)> {
    let mut out: Vec<(GroupKey, Vec<(Id, Snapshot)>)> = Vec::new();
    for (id, s) in snaps {
        let sorted = |v: &Vec<String>| {
            let mut v = v.clone();
            v.sort();
            v
        };
        let key = GroupKey {
            hostname: by.host.then(|| s.hostname.clone()),
            paths: by.paths.then(|| sorted(&s.paths)),
            tags: by.tags.then(|| sorted(&s.tags)),
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push((id, s)),
            None => out.push((key, vec![(id, s)])),
        }
    }
    out
}
