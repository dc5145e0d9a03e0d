//! `recover`: a snapshot of the trees nothing refers to. When a snapshot file is lost
//! (deleted by hand, a `forget` without the data ever being pruned), its data is still
//! in the repository; restic's `recover` finds each tree that is neither a
//! snapshot's root nor a subtree of another tree and makes one new snapshot
//! (`/recover`, tagged `recovered`) with a directory per such tree, named by its
//! short id. Trees that cannot be read are reported and passed over.

use std::{collections::HashMap, sync::Arc};

use stash_repo_format::{
    blob::BlobType,
    file_type::FileType,
    gotime::GoTime,
    node::{Node, NodeType},
    tree::Tree,
    Id,
};

use crate::{
    backup::run::owned_snapshot,
    error::{Error, Result},
    repository::{blob_saver::BlobSaver, open::hostname, tree_packs::TreePacks, Repository},
};

/// What `recover` found and wrote.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Trees in the index.
    pub trees: usize,
    /// Unreferenced root trees, sorted.
    pub roots: Vec<Id>,
    /// The new snapshot, when there were roots.
    pub snapshot: Option<Id>,
}

/// The trees in `trees` that no other tree and no snapshot refers to.
pub fn unreferenced_roots(trees: &HashMap<Id, Vec<Id>>, snapshot_roots: &[Id]) -> Vec<Id> {
    let mut referenced: std::collections::HashSet<&Id> = trees.values().flatten().collect();
    referenced.extend(snapshot_roots);
    let mut roots: Vec<Id> = trees
        .keys()
        .filter(|id| !referenced.contains(id))
        .copied()
        .collect();
    roots.sort();
    roots
}

/// Finds the unreferenced roots and, if there are any, writes the snapshot (see the
/// module docs). Takes a shared lock.
///
/// # Errors
/// Lock conflicts and backend errors; unreadable trees are only warned about.
pub async fn recover(repo: &Repository) -> Result<Recovered> {
    let mut lock = repo.lock_unconfirmed(false).await?;
    let res = run(repo, &mut lock).await;
    let released = lock.release().await;
    let r = res?;
    released?;
    Ok(r)
}

async fn run(
    repo: &Repository,
    lock: &mut crate::repository::lock::LockGuard,
) -> Result<Recovered> {
    let index = Arc::new(repo.load_index().await?);
    let reader = TreePacks::new(repo);
    let mut trees: HashMap<Id, Vec<Id>> = HashMap::new();
    let ids: Vec<Id> = index
        .iter()
        .filter(|(ty, _, _)| *ty == BlobType::Tree)
        .map(|(_, id, _)| id)
        .collect();
    for id in ids {
        match reader.read_tree(&index, &id).await {
            Ok(t) => {
                let subtrees = t
                    .nodes
                    .iter()
                    .filter(|n| n.node_type == NodeType::Dir)
                    .filter_map(|n| n.subtree)
                    .collect();
                trees.insert(id, subtrees);
            }
            Err(e) => {
                eprintln!("unable to load tree {}: {e}", id.short());
                trees.entry(id).or_default();
            }
        }
    }
    let snapshot_roots: Vec<Id> = repo
        .snapshots()
        .await?
        .iter()
        .filter_map(|(_, s)| s.tree)
        .collect();
    let roots = unreferenced_roots(&trees, &snapshot_roots);
    let mut out = Recovered {
        trees: trees.len(),
        roots,
        snapshot: None,
    };
    if out.roots.is_empty() {
        return Ok(out);
    }
    let now = GoTime::now();
    let mut tree = Tree::new();
    for id in &out.roots {
        let mut n = Node::new(id.short(), NodeType::Dir);
        // restic's recover writes the permission bits alone, without the dir bit.
        n.mode = 0o755;
        n.mtime = now;
        n.atime = now;
        n.ctime = now;
        n.subtree = Some(*id);
        tree.insert(n)
            .map_err(|e| Error::Usage(format!("recover tree: {e}")))?;
    }
    let bytes = tree
        .encode()
        .map_err(|e| Error::Usage(format!("recover tree: {e}")))?;
    lock.confirm().await?;
    let saver = BlobSaver::new(repo, index, repo.pack_size());
    let s2 = saver.clone();
    let saved = tokio::task::spawn_blocking(move || s2.save(BlobType::Tree, &bytes))
        .await
        .map_err(|e| Error::Usage(format!("recover task: {e}")))?;
    let finished = saver.finish().await;
    let root = saved?.id;
    finished?;
    let mut snap = owned_snapshot(now, root, vec!["/recover".into()], hostname());
    snap.tags = vec!["recovered".into()];
    out.snapshot = Some(repo.save_json(FileType::Snapshot, &snap).await?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_trees_nothing_refers_to() {
        let id = |b: u8| Id([b; 32]);
        let trees = HashMap::from([
            (id(1), vec![id(2)]),
            (id(2), vec![]),
            (id(3), vec![id(4)]),
            (id(4), vec![]),
            (id(5), vec![id(2)]),
        ]);
        assert_eq!(unreferenced_roots(&trees, &[id(1)]), [id(3), id(5)]);
        assert_eq!(unreferenced_roots(&trees, &[id(1), id(3), id(5)]), []);
    }
}
