//! A depth-first walk of a snapshot's trees in restic's order: each node, then (for a
//! directory the visitor enters) everything below it, siblings in their stored (name)
//! order. `ls` and `find` print in this order, as restic's walker does.

use std::ops::ControlFlow;

use stash_repo_format::{index::IndexLookup, node::Node, Id};

use crate::{error::Result, repository::tree_packs::TreePacks};

/// Whether the walk reads a directory's subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    Enter,
    Skip,
}

/// Walks the tree `root`, calling `visit` with each node's path (`/`-joined raw names
/// from the root, starting with `/`) and the node. `ControlFlow::Break` ends the walk.
///
/// # Errors
/// A tree that cannot be read, named by id.
pub async fn walk(
    trees: &TreePacks,
    index: &IndexLookup,
    root: Id,
    mut visit: impl FnMut(&[u8], &Node) -> ControlFlow<(), Visit>,
) -> Result<()> {
    walk_with_parent(trees, index, root, |_, path, node| visit(path, node)).await
}

/// As [`walk`], telling `visit` also the id of the tree holding the node.
///
/// # Errors
/// A tree that cannot be read, named by id.
pub async fn walk_with_parent(
    trees: &TreePacks,
    index: &IndexLookup,
    root: Id,
    mut visit: impl FnMut(&Id, &[u8], &Node) -> ControlFlow<(), Visit>,
) -> Result<()> {
    let first = trees.read_tree(index, &root).await?;
    let mut stack = vec![(Vec::new(), root, first.nodes.into_iter())];
    loop {
        let Some((prefix, parent, nodes)) = stack.last_mut() else {
            return Ok(());
        };
        let Some(node) = nodes.next() else {
            stack.pop();
            continue;
        };
        let mut path = Vec::with_capacity(prefix.len() + 1 + node.name.len());
        path.extend_from_slice(prefix);
        path.push(b'/');
        path.extend_from_slice(&node.name);
        match visit(parent, &path, &node) {
            ControlFlow::Break(()) => return Ok(()),
            ControlFlow::Continue(Visit::Enter) => {
                if let Some(sub) = node.subtree {
                    let t = trees.read_tree(index, &sub).await?;
                    stack.push((path, sub, t.nodes.into_iter()));
                }
            }
            ControlFlow::Continue(Visit::Skip) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        backup::{backup, BackupOptions},
        repository::memory_repo,
    };

    #[tokio::test]
    async fn visits_depth_first_in_name_order_and_skips() {
        let src = tempfile::tempdir().unwrap();
        for f in ["a/b/x", "a-c", "a/y", "b/z"] {
            let p = src.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        let repo = memory_repo("walk-order").await;
        let opts = BackupOptions {
            targets: vec![src.path().to_path_buf()],
            ..BackupOptions::default()
        };
        let done = backup(&repo, &opts, Default::default()).await.unwrap();
        let index = repo.load_index().await.unwrap();
        let snap = done.snapshot;
        let trees = TreePacks::new(&repo);
        let root = src.path().to_string_lossy().into_owned();
        let mut seen = Vec::new();
        walk(&trees, &index, snap.tree.unwrap(), |p, n| {
            let p = String::from_utf8_lossy(p).into_owned();
            if let Some(rel) = p.strip_prefix(&root) {
                seen.push(rel.to_string());
            }
            ControlFlow::Continue(if n.name == b"b" {
                Visit::Skip
            } else {
                Visit::Enter
            })
        })
        .await
        .unwrap();
        // Both directories named `b` are skipped: neither `/a/b/x` nor `/b/z` is read.
        assert_eq!(seen, ["", "/a", "/a/b", "/a/y", "/a-c", "/b"]);
    }
}
