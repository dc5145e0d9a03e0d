//! Copies into a repository that cuts files differently (another chunker polynomial,
//! or FastCDC): kept as they are, the copied blobs would share nothing with what the
//! destination's own backups store. Each file's content is read from the source in
//! order and cut again with the destination's chunker, so the copy deduplicates
//! against the destination; trees are saved anew with the new content ids, and so
//! the snapshot gets a new root tree.
//!
//! The cutting runs on a blocking thread fed blob by blob through a bounded channel
//! (memory stays at a few blobs whatever the file's size); trees and files already
//! re-chunked, in this snapshot or an earlier one of the same copy, are not done
//! again.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    io::Read,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
};

use stash_chunker::{ChunkReader, ChunkerKind};
use stash_repo_format::{blob::BlobType, index::IndexLookup, node::NodeType, tree::Tree, Id};

use super::CopyStats;
use crate::{
    error::{Error, Result},
    repository::{blob_saver::BlobSaver, tree_packs::TreePacks, Repository},
};

/// Plaintext blobs in flight between the reader and the chunker.
const QUEUE: usize = 4;

/// The destination's chunker when it differs from the source's: copies must be cut
/// again.
///
/// # Errors
/// A config whose polynomial does not parse.
pub fn target(src: &Repository, dst: &Repository) -> Result<Option<ChunkerKind>> {
    let kind = |r: &Repository| {
        r.config().chunker_kind().map_err(|e| {
            Error::damaged(stash_repo_format::file_type::FileType::Config, "config", e)
        })
    };
    let (s, d) = (kind(src)?, kind(dst)?);
    Ok((s != d).then_some(d))
}

/// Re-chunks snapshots' trees of one source into one destination.
pub struct Rechunker<'a> {
    src: &'a Repository,
    index: &'a IndexLookup,
    trees: TreePacks,
    kind: ChunkerKind,
    /// Source tree -> destination tree.
    done_trees: HashMap<Id, Id>,
    /// Source content -> destination content.
    done_files: HashMap<Vec<Id>, Vec<Id>>,
    /// Data blobs stored by this copy (an earlier snapshot's saver indexed them,
    /// the next saver's index does not know them).
    stored: Arc<Mutex<HashSet<Id>>>,
    pub stats: CopyStats,
}

impl<'a> Rechunker<'a> {
    pub fn new(src: &'a Repository, index: &'a IndexLookup, kind: ChunkerKind) -> Self {
        Rechunker {
            src,
            index,
            trees: TreePacks::new(src),
            kind,
            done_trees: HashMap::new(),
            done_files: HashMap::new(),
            stored: Arc::default(),
            stats: CopyStats::default(),
        }
    }

    /// The destination tree for the source tree `id`, saved through `saver`.
    pub fn tree<'s>(
        &'s mut self,
        id: Id,
        saver: &'s BlobSaver,
    ) -> Pin<Box<dyn Future<Output = Result<Id>> + Send + 's>>
    where
        'a: 's,
    {
        Box::pin(async move {
            if let Some(done) = self.done_trees.get(&id) {
                return Ok(*done);
            }
            let mut tree = self.trees.read_tree(self.index, &id).await?;
            for node in &mut tree.nodes {
                match node.node_type {
                    NodeType::Dir => {
                        if let Some(sub) = node.subtree {
                            node.subtree = Some(self.tree(sub, saver).await?);
                        }
                    }
                    NodeType::File => {
                        if let Some(content) = node.content.take() {
                            node.content = Some(self.file(content, saver).await?);
                        }
                    }
                    _ => {}
                }
            }
            let new = save_tree(tree, saver).await?;
            self.done_trees.insert(id, new);
            Ok(new)
        })
    }

    /// The destination content of a file whose source content is `content`.
    async fn file(&mut self, content: Vec<Id>, saver: &BlobSaver) -> Result<Vec<Id>> {
        if content.is_empty() {
            return Ok(content);
        }
        if let Some(done) = self.done_files.get(&content) {
            return Ok(done.clone());
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>>>(QUEUE);
        let (kind, saver2, stored) = (self.kind, saver.clone(), self.stored.clone());
        let cutter = tokio::task::spawn_blocking(move || cut(kind, rx, &saver2, &stored));
        for id in &content {
            let blob = self.src.read_blob(self.index, BlobType::Data, id).await;
            let failed = blob.is_err();
            if tx.send(blob).await.is_err() || failed {
                break;
            }
        }
        drop(tx);
        let (ids, stats) = cutter
            .await
            .map_err(|e| Error::Usage(format!("re-chunking task: {e}")))??;
        self.stats.blobs += stats.blobs;
        self.stats.bytes += stats.bytes;
        self.done_files.insert(content, ids.clone());
        Ok(ids)
    }
}

async fn save_tree(tree: Tree, saver: &BlobSaver) -> Result<Id> {
    let saver = saver.clone();
    tokio::task::spawn_blocking(move || {
        let (id, json) = tree.encode_with_id().map_err(|e| Error::Damaged {
            ty: "tree",
            id: "re-chunked".into(),
            source: e,
        })?;
        saver.save_with_id(BlobType::Tree, id, &json).map(|s| s.id)
    })
    .await
    .map_err(|e| Error::Usage(format!("re-chunking task: {e}")))?
}

/// Cuts the plaintext arriving on `rx` into the destination's chunks and saves them.
fn cut(
    kind: ChunkerKind,
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>>>,
    saver: &BlobSaver,
    stored: &Mutex<HashSet<Id>>,
) -> Result<(Vec<Id>, CopyStats)> {
    let mut reader = ChunkReader::new(
        &kind,
        Blobs {
            rx,
            cur: Vec::new(),
            pos: 0,
            failed: None,
        },
    );
    let mut ids = Vec::new();
    let mut stats = CopyStats::default();
    let mut cut_failed = None;
    loop {
        let chunk = match reader.next_chunk() {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                cut_failed = Some(e);
                break;
            }
        };
        let id = Id::hash(chunk);
        let seen = stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id);
        if !seen {
            let saved = saver.save_with_id(BlobType::Data, id, chunk)?;
            if saved.new {
                stats.blobs += 1;
                stats.bytes += chunk.len() as u64;
                stored
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id);
            }
        }
        ids.push(id);
    }
    // The source's own error (a blob missing or damaged) rather than the I/O error
    // the chunker saw.
    match (reader.into_inner().failed, cut_failed) {
        (Some(e), _) => Err(e),
        (None, Some(e)) => Err(Error::Usage(format!("re-chunking: {e}"))),
        (None, None) => Ok((ids, stats)),
    }
}

/// A file's plaintext as a reader, blob after blob from the channel.
struct Blobs {
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    failed: Option<Error>,
}

impl Read for Blobs {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(Ok(next)) => {
                    self.cur = next;
                    self.pos = 0;
                }
                Some(Err(e)) => {
                    let msg = e.to_string();
                    self.failed = Some(e);
                    return Err(std::io::Error::other(msg));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
