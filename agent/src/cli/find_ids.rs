//! `find --tree`, `--blob` and `--pack`: the patterns are object ids (whole, or the
//! 8-digit short form), and what is found is where they are used: the directories
//! whose subtree is a tree, the files whose content holds a blob (blobs of a pack
//! for `--pack`), in restic's words and `--json` shape.

use std::{collections::HashSet, io::Write, ops::ControlFlow};

use chrono::Local;
use stash_repo_format::{node::NodeType, snapshot::Snapshot, Id};

use super::ls::root_of;
use crate::{
    repository::{tree_packs::TreePacks, Repository},
    walk::{walk_with_parent, Visit},
};

/// Which kind of id the patterns are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tree,
    Blob,
    Pack,
}

/// Whether a set of patterns names `id`: restic takes the whole id or its short form.
fn names(set: &HashSet<String>, id: &Id) -> bool {
    let hex = id.to_hex();
    set.contains(&hex) || set.contains(&hex[..8])
}

/// The blobs of the packs `patterns` name, by the index; every pack must be found.
async fn blobs_of_packs(
    repo: &Repository,
    patterns: &HashSet<String>,
) -> anyhow::Result<HashSet<String>> {
    let mut found = HashSet::new();
    let mut blobs = HashSet::new();
    for (_, file) in repo.load_index_files().await? {
        for p in file.packs.iter().filter(|p| names(patterns, &p.id)) {
            found.insert(p.id.to_hex());
            blobs.extend(p.blobs.iter().map(|b| b.id.to_hex()));
        }
    }
    let missing: Vec<&str> = patterns
        .iter()
        .filter(|p| {
            !found
                .iter()
                .any(|f| f == *p || (p.len() == 8 && f.starts_with(p.as_str())))
        })
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "unable to find all specified pack(s) in the index: {}",
            missing.join(", ")
        );
    }
    Ok(blobs)
}

/// One object found, as restic prints it.
struct Found {
    kind: &'static str,
    id: Id,
    path: Vec<u8>,
    /// The tree holding the file (blobs only).
    parent: Option<Id>,
}

fn print_text(out: &mut impl Write, f: &Found, sid: &Id, snap: &Snapshot) -> std::io::Result<()> {
    writeln!(out, "Found {} {}", f.kind, f.id)?;
    let path = String::from_utf8_lossy(&f.path);
    match f.parent {
        Some(parent) => {
            writeln!(out, " ... in file {path}")?;
            writeln!(out, "     (tree {parent})")?;
        }
        None => writeln!(out, " ... path {path}")?,
    }
    let when = snap.time.datetime().with_timezone(&Local);
    writeln!(
        out,
        " ... in snapshot {} ({})",
        sid.short(),
        when.format("%Y-%m-%d %H:%M:%S")
    )
}

fn json_value(f: &Found, sid: &Id, snap: &Snapshot) -> serde_json::Value {
    let mut v = serde_json::json!({
        "object_type": f.kind,
        "id": f.id.to_hex(),
        "path": String::from_utf8_lossy(&f.path),
    });
    if let Some(parent) = f.parent {
        v["parent_tree"] = parent.to_hex().into();
    }
    v["snapshot"] = sid.to_hex().into();
    v["time"] = serde_json::to_value(snap.time).unwrap_or_default();
    v
}

/// Searches `snaps` for the ids in `patterns` and prints what is found.
///
/// # Errors
/// Unreadable trees or index, or a `--pack` id that names no indexed pack.
pub async fn run(
    repo: &Repository,
    snaps: &[(Id, Snapshot)],
    kind: Kind,
    patterns: &[String],
    json: bool,
) -> anyhow::Result<i32> {
    let wanted: HashSet<String> = patterns.iter().map(|p| p.to_ascii_lowercase()).collect();
    let (trees_wanted, blobs_wanted) = match kind {
        Kind::Tree => (Some(wanted), None),
        Kind::Blob => (None, Some(wanted)),
        Kind::Pack => (None, Some(blobs_of_packs(repo, &wanted).await?)),
    };
    let index = repo.load_index().await?;
    let trees = TreePacks::new(repo);
    let mut stdout = std::io::stdout().lock();
    let mut values = Vec::new();
    // restic counts found trees across snapshots and stops each walk once it has
    // found as many as were asked for.
    let mut trees_found = 0usize;
    for (sid, snap) in snaps {
        let mut found = Vec::new();
        walk_with_parent(&trees, &index, root_of(sid, snap)?, |parent, path, node| {
            match (&node.node_type, node.subtree, &trees_wanted, &blobs_wanted) {
                (NodeType::Dir, Some(sub), Some(want), _) if names(want, &sub) => {
                    found.push(Found {
                        kind: "tree",
                        id: sub,
                        path: path.to_vec(),
                        parent: None,
                    });
                    trees_found += 1;
                    if trees_found >= want.len() {
                        return ControlFlow::Break(());
                    }
                }
                (NodeType::File, _, _, Some(want)) => {
                    // restic reports every wanted blob in the file's content, in order.
                    for id in node.content.iter().flatten().filter(|id| names(want, id)) {
                        found.push(Found {
                            kind: "blob",
                            id: *id,
                            path: path.to_vec(),
                            parent: Some(*parent),
                        });
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(Visit::Enter)
        })
        .await?;
        for f in &found {
            if json {
                values.push(json_value(f, sid, snap));
            } else {
                print_text(&mut stdout, f, sid, snap)?;
            }
        }
    }
    if json {
        writeln!(stdout, "{}", serde_json::Value::Array(values))?;
    }
    Ok(0)
}
