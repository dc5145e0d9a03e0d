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

/// Applies all metadata; returns the number of warnings printed.
pub fn apply(plan: &Plan) -> u64 {
    let root = is_root();
    let mut warnings = 0;
    for f in &plan.files {
        if f.hardlink_to.is_none() {
            warnings += apply_one(&f.path, &f.node, root);
        }
    }
    for (p, n) in &plan.others {
        if std::fs::symlink_metadata(p).is_ok() {
            warnings += apply_one(p, n, root);
        }
    }
    let mut dirs: Vec<&(std::path::PathBuf, Node)> = plan.dirs.iter().collect();
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (p, n) in dirs {
        warnings += apply_one(p, n, root);
    }
    warnings
}
