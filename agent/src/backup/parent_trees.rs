//! The parent snapshot's trees, read ahead of the scan. When the scan takes a
//! directory's parent tree, the reads of that tree's subdirectories start in the
//! background, so by the time the scan descends they are usually done: an unchanged
//! backup waits for one round trip per level rather than one per directory, which
//! matters most on a remote backend.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use stash_repo_format::{index::IndexLookup, tree::Tree, Id};
use tokio::{sync::Semaphore, task::JoinHandle};

use crate::{
    error::{Error, Result},
    repository::{tree_packs::TreePacks, Repository},
};

/// Tree reads running at once.
const CONCURRENCY: usize = 8;
/// Trees read ahead and not yet taken, at most: bounds memory on wide trees.
const MAX_PENDING: usize = 4096;

/// Parent trees by id, with read-ahead of subdirectories.
pub struct ParentTrees {
    trees: Arc<TreePacks>,
    index: Arc<IndexLookup>,
    rt: tokio::runtime::Handle,
    pending: Mutex<HashMap<Id, JoinHandle<Result<Tree>>>>,
    permits: Arc<Semaphore>,
}

impl ParentTrees {
    /// Reads trees of `repo` through `index`, spawning read-ahead on `rt`.
    pub fn new(repo: &Repository, index: &Arc<IndexLookup>, rt: &tokio::runtime::Handle) -> Self {
        ParentTrees {
            trees: Arc::new(TreePacks::new(repo)),
            index: index.clone(),
            rt: rt.clone(),
            pending: Mutex::default(),
            permits: Arc::new(Semaphore::new(CONCURRENCY)),
        }
    }

    /// The tree `id` (from read-ahead when it was started), or `None` with a warning
    /// when it cannot be read: the files below are then read anew. Blocks; call from
    /// a thread outside the runtime.
    pub fn get(&self, id: Option<Id>) -> Option<Tree> {
        let id = id?;
        let ahead = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        let res = match ahead {
            Some(h) => self
                .rt
                .block_on(h)
                .unwrap_or_else(|e| Err(Error::Usage(format!("tree read task: {e}")))),
            None => self.rt.block_on(self.trees.read_tree(&self.index, &id)),
        };
        match res {
            Ok(t) => {
                self.read_ahead(&t);
                Some(t)
            }
            Err(e) => {
                eprintln!(
                    "warning: parent tree {}: {e}; reading files anew",
                    id.short()
                );
                None
            }
        }
    }

    fn read_ahead(&self, tree: &Tree) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for sub in tree.nodes.iter().filter_map(|n| n.subtree) {
            if pending.len() >= MAX_PENDING {
                break;
            }
            pending.entry(sub).or_insert_with(|| {
                let (trees, index, permits) =
                    (self.trees.clone(), self.index.clone(), self.permits.clone());
                self.rt.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    trees.read_tree(&index, &sub).await
                })
            });
        }
    }
}

impl Drop for ParentTrees {
    fn drop(&mut self) {
        let pending = self
            .pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, h) in pending.drain() {
            h.abort();
        }
    }
}
