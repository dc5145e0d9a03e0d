//! Trees read through whole tree packs, kept for the next trees.
//!
//! A walk over a snapshot (restore's plan, a backup's parent) reads one tree per
//! directory, thousands of small blobs that lie together in a few packs: writers
//! put trees in packs of their own. Read one by one, every tree costs a backend
//! request (on a local store an open, a seek and a read; remotely a round trip).
//! Here the first tree of a pack reads the whole pack, and the next trees of that
//! pack decode from memory. Only the last [`KEEP`] packs are kept, and none larger
//! than [`MAX_PACK`], so memory stays bounded by a few packs whatever the repository.
//!
//! Any failure (a read error, a range outside the bytes read, a blob that does not
//! decode) falls back to [`Repository::read_tree`], which tries every stored copy
//! and reports the error with the blob and pack it is about.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
};

use bytes::Bytes;
use stash_repo_format::{
    blob::{self, BlobType},
    file_type::FileType,
    index::IndexLookup,
    tree::Tree,
    Id,
};
use tokio::sync::OnceCell;

use super::{Repository, INLINE_DECODE};
use crate::error::Result;

/// Packs kept at once.
const KEEP: usize = 2;
/// Packs larger than this are used for the tree that read them, then dropped.
const MAX_PACK: usize = 32 << 20;

/// A pack read once for every task that asks for it meanwhile.
type Shared = Arc<OnceCell<Option<Bytes>>>;

/// Tree reads through recently read tree packs.
#[derive(Debug)]
pub struct TreePacks {
    repo: Repository,
    packs: Mutex<VecDeque<(Id, Shared)>>,
}

impl TreePacks {
    /// Reads trees of `repo`.
    pub fn new(repo: &Repository) -> Self {
        TreePacks {
            repo: repo.clone(),
            packs: Mutex::default(),
        }
    }

    /// Reads and decodes the tree `id`.
    ///
    /// # Errors
    /// As [`Repository::read_tree`].
    pub async fn read_tree(&self, index: &IndexLookup, id: &Id) -> Result<Tree> {
        if let Some(tree) = self.through_pack(index, id).await {
            return Ok(tree);
        }
        self.repo.read_tree(index, id).await
    }

    /// The tree decoded from its (first) pack read whole, or `None` on any failure.
    async fn through_pack(&self, index: &IndexLookup, id: &Id) -> Option<Tree> {
        let loc = index.get(BlobType::Tree, id)?;
        let cell = self.cell(loc.pack);
        let pack = cell
            .get_or_init(|| async {
                self.repo
                    .backend()
                    .read(FileType::Pack, &loc.pack, None)
                    .await
                    .ok()
            })
            .await
            .clone()?;
        if pack.len() > MAX_PACK {
            self.forget(&loc.pack);
        }
        let start = loc.offset as usize;
        let sealed = pack.slice(start..start.checked_add(loc.length as usize)?.min(pack.len()));
        if sealed.len() != loc.length as usize {
            return None;
        }
        let (key, id) = (self.repo.key().clone(), *id);
        let decode = move || {
            blob::decode(&key, &id, &sealed, loc.uncompressed_length)
                .ok()
                .and_then(|plain| Tree::decode(&plain).ok())
        };
        if loc.length as usize <= INLINE_DECODE {
            decode()
        } else {
            crate::cpu::spawn(decode).await
        }
    }

    /// The cell of `pack`, made the most recent; a new one evicts the oldest.
    fn cell(&self, pack: Id) -> Shared {
        let mut packs = self.packs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = packs
            .iter()
            .position(|(id, _)| *id == pack)
            .and_then(|k| packs.remove(k))
        {
            let cell = entry.1.clone();
            packs.push_back(entry);
            return cell;
        }
        let cell = Shared::default();
        packs.push_back((pack, cell.clone()));
        if packs.len() > KEEP {
            packs.pop_front();
        }
        cell
    }

    fn forget(&self, pack: &Id) {
        let mut packs = self.packs.lock().unwrap_or_else(PoisonError::into_inner);
        packs.retain(|(id, _)| id != pack);
    }
}

#[cfg(test)]
mod tests {
    use stash_repo_format::node::{Node, NodeType};

    use super::*;
    use crate::repository::{memory_repo, BlobSaver};

    /// Trees in two packs (one larger than an inline decode) read the same through
    /// the packs as one by one, in any order; an unknown id is the usual error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trees_read_through_their_packs_match_single_reads() {
        let repo = memory_repo("tree-packs").await;
        let saver = BlobSaver::new(&repo, Arc::new(IndexLookup::default()), 64 << 10);
        let s2 = saver.clone();
        let ids = tokio::task::spawn_blocking(move || {
            (0..60u32)
                .map(|i| {
                    let mut tree = Tree::new();
                    for k in 0..(1 + i * i) {
                        // Hex of a hash: names that compress poorly, so the trees
                        // fill several 1 MiB packs.
                        let name = Id::hash(format!("{i}/{k}").as_bytes())
                            .to_string()
                            .into_bytes();
                        tree.insert(Node {
                            name,
                            node_type: NodeType::File,
                            size: u64::from(k),
                            ..Node::default()
                        })
                        .unwrap();
                    }
                    let (id, json) = tree.encode_with_id().unwrap();
                    s2.save_with_id(BlobType::Tree, id, &json).unwrap();
                    id
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        saver.finish().await.unwrap();
        let index = repo.load_index().await.unwrap();
        let packs: std::collections::HashSet<Id> = ids
            .iter()
            .map(|id| index.get(BlobType::Tree, id).unwrap().pack)
            .collect();
        assert!(
            packs.len() > KEEP,
            "the trees span more packs than are kept"
        );
        let trees = TreePacks::new(&repo);
        for id in ids.iter().rev().chain(ids.iter()) {
            assert_eq!(
                trees.read_tree(&index, id).await.unwrap(),
                repo.read_tree(&index, id).await.unwrap()
            );
        }
        let missing = Id::hash(b"no such tree");
        let err = trees.read_tree(&index, &missing).await.unwrap_err();
        assert!(err.to_string().contains(&missing.short()), "{err}");
    }
}
