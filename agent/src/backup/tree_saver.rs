//! Writes the scanned tree bottom-up: each directory's tree blob after its children,
//! counting directories new, changed or unchanged against the parent snapshot.

use stash_repo_format::{blob::BlobType, node::Node, tree::Tree, Id};

use super::{
    scan::{Dir, Item},
    Counters,
};
use crate::{error::Result, repository::BlobSaver};

/// Saves `dir` and everything below it; returns the id of its tree.
///
/// # Errors
/// Saver errors.
pub fn save_tree(dir: Dir, saver: &BlobSaver, counters: &Counters) -> Result<Id> {
    let mut nodes = Vec::with_capacity(dir.items.len());
    for item in dir.items {
        match item {
            Item::Node(n) | Item::File { node: n, .. } => nodes.push(n),
            Item::Dir(sub) => {
                if let Some(node) = save_dir(*sub, saver, counters)? {
                    nodes.push(node);
                }
            }
        }
    }
    let tree = Tree { nodes };
    let bytes = tree.encode().map_err(|e| crate::error::Error::Damaged {
        ty: "tree",
        id: "new".into(),
        source: e,
    })?;
    Ok(saver.save(BlobType::Tree, &bytes)?.id)
}

/// Saves a subdirectory's tree and returns its node pointing there, counted as a
/// new, changed or unmodified directory; `None` for a directory without a node.
///
/// # Errors
/// Saver errors.
pub fn save_dir(sub: Dir, saver: &BlobSaver, counters: &Counters) -> Result<Option<Node>> {
    let parent = sub.parent_subtree;
    let Some(mut node) = sub.node.clone() else {
        return Ok(None);
    };
    let id = save_tree(Dir { node: None, ..sub }, saver, counters)?;
    let c = match parent {
        None => &counters.dirs_new,
        Some(p) if p == id => &counters.dirs_unmodified,
        Some(_) => &counters.dirs_changed,
    };
    Counters::add(c, 1);
    node.subtree = Some(id);
    Ok(Some(node))
}
