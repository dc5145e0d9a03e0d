//! Applies metadata after all content is written: permissions, owner (as root),
//! extended attributes, then times; directories last and deepest first.

use std::path::Path;

use filetime::FileTime;
use stash_repo_format::{
    gotime::GoTime,
    node::{posix_perm_from_go_mode, Node, NodeType},
};

use super::plan::Plan;

fn ft(t: &GoTime) -> FileTime {
    FileTime::from_unix_time(t.unix_secs(), t.unix_nanos())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|v| v == "0"))
        })
        .unwrap_or(false)
}

fn apply_one(path: &Path, node: &Node, root: bool) -> u64 {
    let mut warnings = 0;
    let mut warn = |what: &str, e: std::io::Error| {
        eprintln!("warning: {}: {what}: {e}", path.display());
        warnings += 1;
    };
    let symlink = node.node_type == NodeType::Symlink;
    if root {
        if let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)) {
            warn("owner", e);
        }
    }
    if !symlink {
        use std::os::unix::fs::PermissionsExt;
        let perm = posix_perm_from_go_mode(node.mode) & 0o7777;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(perm)) {
            warn("mode", e);
        }
    }
    // The xattr crate and set_symlink_file_times act on the path itself (l*-calls,
    // utimensat without following), so neither follows symlinks nor opens fifos.
    for x in &node.extended_attributes {
        if let Err(e) = xattr::set(path, &x.name, &x.value) {
            warn("extended attribute", e);
        }
    }
    if let Err(e) = filetime::set_symlink_file_times(path, ft(&node.atime), ft(&node.mtime)) {
        warn("times", e);
    }
    warnings
}

/// Applies all metadata; returns the number of warnings printed. Files and other
/// entries in parallel; directories after them, one depth level at a time from the
/// deepest, so a directory's times are set after everything inside it.
pub fn apply(plan: &Plan) -> u64 {
    use rayon::prelude::*;
    let root = is_root();
    let files: u64 = plan
        .files
        .par_iter()
        .filter(|f| f.hardlink_to.is_none())
        .map(|f| apply_one(&f.path, &f.node, root))
        .sum();
    let others: u64 = plan
        .others
        .par_iter()
        .filter(|(p, _)| std::fs::symlink_metadata(p).is_ok())
        .map(|(p, n)| apply_one(p, n, root))
        .sum();
    let mut by_depth: std::collections::BTreeMap<usize, Vec<&(std::path::PathBuf, Node)>> =
        Default::default();
    for d in &plan.dirs {
        by_depth
            .entry(d.0.components().count())
            .or_default()
            .push(d);
    }
    let dirs: u64 = by_depth
        .values()
        .rev()
        .map(|level| {
            level
                .par_iter()
                .map(|(p, n)| apply_one(p, n, root))
                .sum::<u64>()
        })
        .sum();
    files + others + dirs
}
