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
//! Any failure (a read error, a blob that does not decode) falls back to
//! [`Repository::read_tree`], which tries every stored copy and reports the error
//! with the blob and pack it is about. Only a tree whose one copy lies past the end
//! of its pack (a truncated pack, a lying index entry) is reported here, with its
//! offset and length.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
};

use bytes::Bytes;
use stash_repo_format::{
    blob::{self, BlobType},
    file_type::FileType,
    index::IndexLookup,
    pack,
    tree::Tree,
    Id,
};
use tokio::sync::OnceCell;

use super::{Repository, INLINE_DECODE};
use crate::error::{Error, Result};

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
    /// As [`Repository::read_tree`], or [`Error::BadBlob`] naming the pack, offset
    /// and length when the tree's only copy lies past the end of its pack.
    pub async fn read_tree(&self, index: &IndexLookup, id: &Id) -> Result<Tree> {
        match self.through_pack(index, id).await? {
            Some(tree) => Ok(tree),
            None => self.repo.read_tree(index, id).await,
        }
    }

    /// The tree decoded from its (first) pack read whole; `None` on a failure
    /// another way of reading may not have. A tree whose only copy lies outside
    /// the bytes of its pack is an error here: reading its range again would only
    /// fail once more, without saying which blob and range.
    async fn through_pack(&self, index: &IndexLookup, id: &Id) -> Result<Option<Tree>> {
        let Some(loc) = index.get(BlobType::Tree, id) else {
            return Ok(None);
        };
        let cell = self.cell(loc.pack);
        let pack = cell
            .get_or_init(|| async {
                self.repo
                    .backend()
                    .read_cacheable(FileType::Pack, &loc.pack, None)
                    .await
                    .ok()
            })
            .await
            .clone();
        let Some(pack) = pack else {
            return Ok(None);
        };
        if pack.len() > MAX_PACK {
            self.forget(&loc.pack);
        }
        let sealed = match pack::blob_range(u64::from(loc.offset), loc.length, pack.len()) {
            Ok(range) => pack.slice(range),
            Err(source) if index.get_all(BlobType::Tree, id).len() == 1 => {
                return Err(Error::BadBlob {
                    ty: BlobType::Tree.as_str(),
                    id: *id,
                    pack: loc.pack,
                    source,
                })
            }
            Err(_) => return Ok(None),
        };
        let (key, id) = (self.repo.key().clone(), *id);
        let decode = move || {
            blob::decode(&key, &id, &sealed, loc.uncompressed_length)
                .ok()
                .and_then(|plain| Tree::decode(&plain).ok())
        };
        Ok(if loc.length as usize <= INLINE_DECODE {
            decode()
        } else {
            crate::cpu::spawn(decode).await
        })
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
    use stash_repo_format::{
        index::{IndexBlob, IndexLookupBuilder},
        node::{Node, NodeType},
    };

    use super::*;
    use crate::repository::{memory_repo, BlobSaver};

    /// Saves `count` trees, tree `i` holding files named and sized by `files(i)`,
    /// in packs of `pack_size` bytes; returns their ids in order.
    async fn save_trees<F, I>(repo: &Repository, pack_size: usize, count: u32, files: F) -> Vec<Id>
    where
        F: Fn(u32) -> I + Send + 'static,
        I: Iterator<Item = (String, u64)>,
    {
        let saver = BlobSaver::new(repo, Arc::new(IndexLookup::default()), pack_size);
        let s2 = saver.clone();
        let ids = tokio::task::spawn_blocking(move || {
            (0..count)
                .map(|i| {
                    let mut tree = Tree::new();
                    for (name, size) in files(i) {
                        tree.insert(Node {
                            name: name.into_bytes(),
                            node_type: NodeType::File,
                            size,
                            ..Node::default()
                        })
                        .unwrap();
                    }
                    let (id, json) = tree.encode_with_id().unwrap();
                    s2.save_with_id(BlobType::Tree, id, &json).unwrap();
                    id
                })
                .collect()
        })
        .await
        .unwrap();
        saver.finish().await.unwrap();
        ids
    }

    /// Trees in two packs (one larger than an inline decode) read the same through
    /// the packs as one by one, in any order; an unknown id is the usual error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trees_read_through_their_packs_match_single_reads() {
        let repo = memory_repo("tree-packs").await;
        let ids = save_trees(&repo, 64 << 10, 60, |i| {
            (0..1 + i * i).map(move |k| {
                // Hex of a hash: names that compress poorly, so the trees fill
                // several 1 MiB packs.
                (
                    Id::hash(format!("{i}/{k}").as_bytes()).to_string(),
                    u64::from(k),
                )
            })
        })
        .await;
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

    /// Index entries past the end of their pack (one pointing there, then the pack
    /// cut short) are errors naming the pack, never a slice out of range.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_past_the_end_of_their_pack_are_errors() {
        let repo = memory_repo("tree-packs-short").await;
        let ids = save_trees(&repo, 1 << 20, 4, |i| {
            std::iter::once((char::from(b'a' + i as u8).to_string(), 0))
        })
        .await;
        let index = repo.load_index().await.unwrap();
        let last = ids[3];
        let loc = index.get(BlobType::Tree, &last).unwrap();
        assert!(loc.offset > 0, "the trees share one pack");

        let mut b = IndexLookupBuilder::default();
        let past_the_end = IndexBlob {
            id: last,
            ty: BlobType::Tree,
            offset: loc.offset + (1 << 20),
            length: loc.length,
            uncompressed_length: loc.uncompressed_length,
        };
        b.add_pack(loc.pack, &[past_the_end]);
        let lying = b.build();
        let err = TreePacks::new(&repo)
            .read_tree(&lying, &last)
            .await
            .unwrap_err()
            .to_string();
        let at = format!("offset {} of length {}", past_the_end.offset, loc.length);
        assert!(
            err.contains(&loc.pack.to_string()) && err.contains(&last.to_string()),
            "{err}"
        );
        assert!(err.contains(&at), "{err}");

        let backend = repo.backend();
        let bytes = backend.read(FileType::Pack, &loc.pack, None).await.unwrap();
        backend.remove(FileType::Pack, &loc.pack).await.unwrap();
        backend
            .write(FileType::Pack, &loc.pack, bytes.slice(..1))
            .await
            .unwrap();
        let trees = TreePacks::new(&repo);
        for id in ids.iter().rev() {
            let err = trees.read_tree(&index, id).await.unwrap_err().to_string();
            assert!(
                err.contains(&loc.pack.to_string()) && err.contains("ends past the 1 bytes"),
                "{err}"
            );
        }
    }
}
