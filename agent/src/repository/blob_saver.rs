//! Writing blobs: dedup against the index and against blobs saved in this run,
//! compress and seal on the caller's thread, assemble packs per blob type, upload
//! packs concurrently, and write index files only for packs the store confirmed.
//!
//! Invariant: a blob appears in an index file only after its pack is stored, and the
//! caller writes its snapshot only after [`BlobSaver::finish`] returned, so a crash at
//! any point leaves at worst unreferenced packs, never a dangling reference.
//!
//! [`BlobSaver::save`] blocks (it waits for room in the upload queue): call it from
//! CPU or blocking threads, never from an async task.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use bytes::Bytes;
use stash_repo_format::{
    blob::{self, BlobType},
    file_type::FileType,
    index::{IndexBlob, IndexFile, IndexLookup, IndexPack},
    pack::{FinishedPack, PackWriter},
    Id,
};
use tokio::{sync::mpsc, task::JoinHandle};

use super::Repository;
use crate::error::{Error, Result};

/// restic's default pack size.
pub const DEFAULT_PACK_SIZE: usize = 16 << 20;
/// restic flushes an index file at this many blobs.
const INDEX_FLUSH_BLOBS: usize = 50_000;
/// Packs uploading at once.
const UPLOAD_CONCURRENCY: usize = 2;
const SHARDS: usize = 64;

/// What saving a blob did.
#[derive(Debug, Clone, Copy)]
pub struct Saved {
    /// The blob id.
    pub id: Id,
    /// False when the blob already existed (deduplicated).
    pub new: bool,
    /// Bytes stored for it (sealed length), 0 when deduplicated.
    pub stored: u64,
}

/// Counters for the snapshot summary.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct SaverStats {
    /// New data blobs.
    pub data_blobs: u64,
    /// New tree blobs.
    pub tree_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub data_added: u64,
    /// Stored bytes of new blobs.
    pub data_added_packed: u64,
    /// Packs written.
    pub packs: u64,
}

struct Shared {
    repo: Repository,
    index: Arc<IndexLookup>,
    compression: Option<i32>,
    pack_size: usize,
    seen: Vec<Mutex<HashSet<(BlobType, Id)>>>,
    packers: [Mutex<PackWriter>; 2],
    tx: Mutex<Option<mpsc::Sender<FinishedPack>>>,
    failed: AtomicBool,
    data_blobs: AtomicU64,
    tree_blobs: AtomicU64,
    data_added: AtomicU64,
    data_added_packed: AtomicU64,
}

/// The write side of a repository. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct BlobSaver {
    shared: Arc<Shared>,
    uploader: Arc<Mutex<Option<JoinHandle<Result<UploadResult>>>>>,
    rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for BlobSaver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobSaver")
    }
}

#[derive(Debug, Default)]
struct UploadResult {
    packs: u64,
    index_files: Vec<Id>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BlobSaver {
    /// A saver writing into `repo`, deduplicating against `index`. Must be created
    /// inside a tokio runtime (the uploader runs there).
    pub fn new(repo: &Repository, index: Arc<IndexLookup>, pack_size: usize) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            repo: repo.clone(),
            index,
            compression: repo.compression(),
            pack_size: pack_size.max(1 << 20),
            seen: (0..SHARDS).map(|_| Mutex::default()).collect(),
            packers: [Mutex::default(), Mutex::default()],
            tx: Mutex::new(Some(tx)),
            failed: AtomicBool::new(false),
            data_blobs: AtomicU64::new(0),
            tree_blobs: AtomicU64::new(0),
            data_added: AtomicU64::new(0),
            data_added_packed: AtomicU64::new(0),
        });
        let handle = tokio::spawn(upload_loop(repo.clone(), rx));
        BlobSaver {
            shared,
            uploader: Arc::new(Mutex::new(Some(handle))),
            rt: tokio::runtime::Handle::current(),
        }
    }

    /// Whether the blob exists in the index or was saved in this run.
    pub fn known(&self, ty: BlobType, id: &Id) -> bool {
        self.shared.index.contains(ty, id)
            || lock(&self.shared.seen[shard(id)]).contains(&(ty, *id))
    }

    /// Saves a blob unless it already exists. Blocks while the upload queue is full.
    ///
    /// # Errors
    /// [`Error::Interrupted`] once an upload has failed (the error itself comes from
    /// [`BlobSaver::finish`]).
    pub fn save(&self, ty: BlobType, plaintext: &[u8]) -> Result<Saved> {
        let id = Id::hash(plaintext);
        self.save_with_id(ty, id, plaintext)
    }

    /// As [`BlobSaver::save`] with a precomputed id.
    ///
    /// # Errors
    /// As [`BlobSaver::save`].
    pub fn save_with_id(&self, ty: BlobType, id: Id, plaintext: &[u8]) -> Result<Saved> {
        let s = &self.shared;
        if s.failed.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        if s.index.contains(ty, &id) || !lock(&s.seen[shard(&id)]).insert((ty, id)) {
            return Ok(Saved {
                id,
                new: false,
                stored: 0,
            });
        }
        let enc = blob::encode(s.repo.key(), ty, id, plaintext, s.compression);
        let stored = enc.sealed.len() as u64;
        let full = {
            let mut p = lock(&s.packers[ty as usize]);
            if p.add(&enc).is_err() {
                // Header full: flush this pack and start a new one.
                let old = std::mem::take(&mut *p);
                drop(p);
                self.send(old)?;
                let mut p = lock(&s.packers[ty as usize]);
                p.add(&enc)
                    .map_err(|e| Error::Usage(format!("blob {id}: {e}")))?;
                None
            } else if p.size() >= s.pack_size || !p.header_has_room() {
                Some(std::mem::take(&mut *p))
            } else {
                None
            }
        };
        match ty {
            BlobType::Data => s.data_blobs.fetch_add(1, Ordering::Relaxed),
            BlobType::Tree => s.tree_blobs.fetch_add(1, Ordering::Relaxed),
        };
        s.data_added
            .fetch_add(plaintext.len() as u64, Ordering::Relaxed);
        s.data_added_packed.fetch_add(stored, Ordering::Relaxed);
        if let Some(w) = full {
            self.send(w)?;
        }
        Ok(Saved {
            id,
            new: true,
            stored,
        })
    }

    fn send(&self, w: PackWriter) -> Result<()> {
        if w.count() == 0 {
            return Ok(());
        }
        let pack = w.finish(self.shared.repo.key());
        let tx = lock(&self.shared.tx).clone();
        let Some(tx) = tx else {
            return Err(Error::Usage("blob saved after finish".into()));
        };
        if tx.blocking_send(pack).is_err() {
            self.shared.failed.store(true, Ordering::Relaxed);
            return Err(Error::Interrupted);
        }
        Ok(())
    }

    /// Flushes partial packs, waits for every upload and writes the remaining index.
    /// Returns the counters and the ids of the index files written.
    ///
    /// # Errors
    /// The first upload or index write error.
    pub async fn finish(&self) -> Result<(SaverStats, Vec<Id>)> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            for ty in [BlobType::Data, BlobType::Tree] {
                let w = std::mem::take(&mut *lock(&this.shared.packers[ty as usize]));
                this.send(w)?;
            }
            lock(&this.shared.tx).take();
            Ok(())
        })
        .await
        .map_err(|e| Error::Usage(format!("flush task: {e}")))??;
        let handle = lock(&self.uploader).take();
        let res = match handle {
            Some(h) => h
                .await
                .map_err(|e| Error::Usage(format!("upload task: {e}")))??,
            None => UploadResult::default(),
        };
        let s = &self.shared;
        let stats = SaverStats {
            data_blobs: s.data_blobs.load(Ordering::Relaxed),
            tree_blobs: s.tree_blobs.load(Ordering::Relaxed),
            data_added: s.data_added.load(Ordering::Relaxed),
            data_added_packed: s.data_added_packed.load(Ordering::Relaxed),
            packs: res.packs,
        };
        Ok((stats, res.index_files))
    }

    /// The runtime the uploader runs on, for blocking callers that need async I/O.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.rt
    }
}

fn shard(id: &Id) -> usize {
    id.0[0] as usize % SHARDS
}

/// Writes packs as they come, several at once, and index files for stored packs.
async fn upload_loop(
    repo: Repository,
    mut rx: mpsc::Receiver<FinishedPack>,
) -> Result<UploadResult> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending: Vec<IndexPack> = Vec::new();
    let mut pending_blobs = 0usize;
    let mut out = UploadResult::default();
    let mut first_err: Option<Error> = None;
    loop {
        tokio::select! {
            pack = rx.recv(), if tasks.len() < UPLOAD_CONCURRENCY && first_err.is_none() => {
                let Some(pack) = pack else { break };
                let repo = repo.clone();
                tasks.spawn(async move {
                    let blobs: Vec<IndexBlob> = pack.blobs.iter().map(IndexBlob::from).collect();
                    write_with_retry(&repo, FileType::Pack, pack.id, Bytes::from(pack.bytes)).await?;
                    Ok::<_, Error>(IndexPack { id: pack.id, blobs })
                });
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done.map_err(|e| Error::Usage(format!("upload task: {e}")))? {
                    Ok(p) => {
                        out.packs += 1;
                        pending_blobs += p.blobs.len();
                        pending.push(p);
                        if pending_blobs >= INDEX_FLUSH_BLOBS {
                            out.index_files.push(write_index(&repo, std::mem::take(&mut pending)).await?);
                            pending_blobs = 0;
                        }
                    }
                    Err(e) => { first_err.get_or_insert(e); rx.close(); }
                }
            }
            else => break,
        }
        if first_err.is_some() && tasks.is_empty() {
            break;
        }
    }
    while let Some(done) = tasks.join_next().await {
        match done.map_err(|e| Error::Usage(format!("upload task: {e}")))? {
            Ok(p) => {
                out.packs += 1;
                pending.push(p);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    // Index what was stored even when failing, so a rerun finds those blobs.
    if !pending.is_empty() {
        out.index_files.push(write_index(&repo, pending).await?);
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Writes one index file naming `packs`; returns its id.
///
/// # Errors
/// Backend errors.
pub async fn write_index(repo: &Repository, packs: Vec<IndexPack>) -> Result<Id> {
    let f = IndexFile {
        supersedes: Vec::new(),
        packs,
    };
    let json = crate::cpu::spawn(move || f.to_json()).await;
    repo.save_json_bytes(FileType::Index, json).await
}

/// Writes with up to five attempts for transient errors, backing off exponentially.
pub async fn write_with_retry(repo: &Repository, ty: FileType, id: Id, data: Bytes) -> Result<()> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match repo.backend().write(ty, &id, data.clone()).await {
            Err(e) if e.is_transient() && attempt < 5 => {
                tracing::warn!("{} {}: {e}; retrying", ty.name(), id.short());
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            r => return r,
        }
    }
}
