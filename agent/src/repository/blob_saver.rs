//! Writing blobs: dedup against the index and against blobs saved in this run,
//! compress and seal on the caller's thread, assemble packs per blob type, upload
//! packs concurrently, and write index files only for packs the store confirmed.
//!
//! Invariant: a blob appears in an index file only after its pack is stored, and the
//! caller writes its snapshot only after [`BlobSaver::finish`] returned, so a crash at
//! any point leaves at worst unreferenced packs, never a dangling reference.
//!
//! [`BlobSaver::save`] blocks (it waits for room in the upload queue): call it from
//! CPU or blocking threads, never from an async task. Long-lived worker threads use a
//! [`WorkerSaver`] instead: it fills a pack of its own, so compressing and sealing
//! run on every worker at once and blobs are sealed straight into the pack buffer.

use std::{
    cell::RefCell,
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use bytes::Bytes;
use stash_repo_format::{
    blob::BlobType,
    crypto::OVERHEAD,
    file_type::FileType,
    index::{IndexBlob, IndexFile, IndexLookup, IndexPack},
    pack::{self, FinishedPack, PackWriter},
    Id,
};
use tokio::{
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
    task::JoinHandle,
};

use super::{pack_buffers::PackBuffers, Repository};
use crate::error::{Error, Result};

/// restic's default pack size.
pub const DEFAULT_PACK_SIZE: usize = 16 << 20;
/// restic flushes an index file at this many blobs.
const INDEX_FLUSH_BLOBS: usize = 50_000;
/// Packs uploading at once.
const UPLOAD_CONCURRENCY: usize = 2;
const SHARDS: usize = 64;
/// How far a pack may grow past the pack size. A blob that would take a non-empty
/// pack beyond it starts the next pack instead, so a (recycled, hence resident)
/// pack buffer never holds more than the pack size plus this.
const PACK_SLACK: usize = 1 << 20;
/// Buffer room beyond that: zstd's bound for incompressible input, and the header.
const BUFFER_SLACK: usize = PACK_SLACK + (128 << 10);
/// Spare pack buffers kept: enough for the packs uploading, queued and filling.
const SPARE_BUFFERS: usize = 6;

thread_local! {
    /// Compressed frames of blobs saved through the shared packers.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

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

/// A finished pack on its way to the store, holding its in-flight permit.
type Upload = (FinishedPack, OwnedSemaphorePermit);

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
    buffers: Arc<PackBuffers>,
    tx: Mutex<Option<mpsc::Sender<Upload>>>,
    /// One per pack queued or uploading: a finished pack waits for one, so at most
    /// [`UPLOAD_CONCURRENCY`] packs are between the packers and the store.
    in_flight: Arc<Semaphore>,
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
        Self::gated(repo, index, pack_size, Arc::new(AtomicBool::new(true)))
    }

    /// As [`BlobSaver::new`], but index files are written only once `may_index` is
    /// true (a lock confirmed): until then packs upload and their entries wait. If
    /// it never becomes true, the packs stay unindexed, for prune to collect.
    pub fn gated(
        repo: &Repository,
        index: Arc<IndexLookup>,
        pack_size: usize,
        may_index: Arc<AtomicBool>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(UPLOAD_CONCURRENCY);
        let pack_size = pack_size.max(1 << 20);
        let buffers = Arc::new(PackBuffers::new(pack_size + BUFFER_SLACK, SPARE_BUFFERS));
        let shared = Arc::new(Shared {
            repo: repo.clone(),
            index,
            compression: repo.compression(),
            pack_size,
            seen: (0..SHARDS).map(|_| Mutex::default()).collect(),
            packers: [Mutex::default(), Mutex::default()],
            buffers: buffers.clone(),
            tx: Mutex::new(Some(tx)),
            in_flight: Arc::new(Semaphore::new(UPLOAD_CONCURRENCY)),
            failed: AtomicBool::new(false),
            data_blobs: AtomicU64::new(0),
            tree_blobs: AtomicU64::new(0),
            data_added: AtomicU64::new(0),
            data_added_packed: AtomicU64::new(0),
        });
        let handle = tokio::spawn(upload_loop(repo.clone(), rx, buffers, may_index));
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
        if let Some(known) = self.claim(ty, id)? {
            return Ok(known);
        }
        let s = &self.shared;
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            // Compress outside the lock; only sealing into the pack holds it.
            let (body, ulen) = pack::frame(plaintext, s.compression, &mut scratch);
            let (stored, full) = {
                let mut p = lock(&s.packers[ty as usize]);
                let key = s.repo.key();
                let stored = self.add_to(&mut p, id, body.len(), ty == BlobType::Data, |p| {
                    p.add_frame(key, ty, id, body, ulen)
                })?;
                (stored, self.is_full(&p).then(|| self.replace(&mut p)))
            };
            self.count(ty, plaintext.len(), stored);
            if let Some(w) = full {
                self.send(w)?;
            }
            Ok(Saved {
                id,
                new: true,
                stored,
            })
        })
    }

    /// A handle for one long-lived worker thread, with a data pack of its own.
    pub fn worker(&self) -> WorkerSaver {
        WorkerSaver {
            saver: self.clone(),
            pack: PackWriter::default(),
        }
    }

    /// `Some` when the blob needs no saving (already stored or claimed by another
    /// save in this run); otherwise this caller now owns saving it.
    fn claim(&self, ty: BlobType, id: Id) -> Result<Option<Saved>> {
        let s = &self.shared;
        if s.failed.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        if s.index.contains(ty, &id) || !lock(&s.seen[shard(&id)]).insert((ty, id)) {
            return Ok(Some(Saved {
                id,
                new: false,
                stored: 0,
            }));
        }
        Ok(None)
    }

    /// Runs `add` (which puts blob `id`, about `len` bytes, into a pack) on `p`.
    /// `p` is sent on first when the blob would take it past the pack size plus
    /// [`PACK_SLACK`] or its header is full. Returns the stored length. `pooled`
    /// packs fill recycled buffers; the others (trees: small, slow to fill) grow
    /// their own.
    fn add_to(
        &self,
        p: &mut PackWriter,
        id: Id,
        len: usize,
        pooled: bool,
        add: impl Fn(&mut PackWriter) -> stash_repo_format::Result<u32>,
    ) -> Result<u64> {
        let limit = self.shared.pack_size + PACK_SLACK;
        if p.count() > 0 && p.size() + len + OVERHEAD > limit {
            let old = self.replace(p);
            self.send(old)?;
        }
        if p.capacity() == 0 && pooled {
            *p = PackWriter::with_buffer(self.shared.buffers.take());
        }
        match add(p) {
            Ok(n) => Ok(u64::from(n)),
            Err(_) => {
                let old = self.replace(p);
                self.send(old)?;
                if pooled {
                    *p = PackWriter::with_buffer(self.shared.buffers.take());
                }
                add(p)
                    .map(u64::from)
                    .map_err(|e| Error::Usage(format!("blob {id}: {e}")))
            }
        }
    }

    fn is_full(&self, p: &PackWriter) -> bool {
        p.size() >= self.shared.pack_size || !p.header_has_room()
    }

    /// Takes the pack out of `p`, leaving an empty one that takes a buffer when its
    /// first blob comes: a worker waiting to hand over a full pack holds no second
    /// buffer (recycled buffers are resident memory even when empty).
    fn replace(&self, p: &mut PackWriter) -> PackWriter {
        std::mem::take(p)
    }

    fn count(&self, ty: BlobType, plaintext_len: usize, stored: u64) {
        let s = &self.shared;
        match ty {
            BlobType::Data => s.data_blobs.fetch_add(1, Ordering::Relaxed),
            BlobType::Tree => s.tree_blobs.fetch_add(1, Ordering::Relaxed),
        };
        s.data_added
            .fetch_add(plaintext_len as u64, Ordering::Relaxed);
        s.data_added_packed.fetch_add(stored, Ordering::Relaxed);
    }

    fn send(&self, w: PackWriter) -> Result<()> {
        if w.count() == 0 {
            return Ok(());
        }
        let pack = w.finish(self.shared.repo.key());
        let tx = lock(&self.shared.tx).clone();
        let Some(tx) = tx else {
            self.shared.failed.store(true, Ordering::Relaxed);
            return Err(Error::Usage("blob saved after finish".into()));
        };
        let permit = self
            .rt
            .block_on(self.shared.in_flight.clone().acquire_owned())
            .map_err(|_| Error::Interrupted)?;
        if tx.blocking_send((pack, permit)).is_err() {
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
        let flushed = tokio::task::spawn_blocking(move || -> Result<()> {
            let sent = [BlobType::Data, BlobType::Tree]
                .into_iter()
                .try_for_each(|ty| {
                    let w = std::mem::take(&mut *lock(&this.shared.packers[ty as usize]));
                    this.send(w)
                });
            // Closing the channel ends the uploader, also after a failed send.
            lock(&this.shared.tx).take();
            sent
        })
        .await
        .map_err(|e| Error::Usage(format!("flush task: {e}")))
        .and_then(|r| r);
        let handle = lock(&self.uploader).take();
        let uploaded = match handle {
            Some(h) => h
                .await
                .map_err(|e| Error::Usage(format!("upload task: {e}")))
                .and_then(|r| r),
            None => Ok(UploadResult::default()),
        };
        // A failed upload closes the uploader's channel, so the flush then fails as
        // `Interrupted`: the upload's error is the one that says what happened.
        let res = uploaded?;
        flushed?;
        let s = &self.shared;
        if s.failed.load(Ordering::Relaxed) {
            return Err(Error::Usage(
                "a pack was not written: blobs were saved after the saver finished".into(),
            ));
        }
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

/// A [`BlobSaver`] handle owning a data pack: the blobs one worker thread saves are
/// compressed and sealed straight into its own pack buffer, with no lock held. Tree blobs go to the shared tree pack. Dropping the handle sends its
/// partial pack on; that must happen before [`BlobSaver::finish`].
pub struct WorkerSaver {
    saver: BlobSaver,
    pack: PackWriter,
}

impl std::fmt::Debug for WorkerSaver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerSaver")
    }
}

impl WorkerSaver {
    /// As [`BlobSaver::save`].
    ///
    /// # Errors
    /// As [`BlobSaver::save`].
    pub fn save(&mut self, ty: BlobType, plaintext: &[u8]) -> Result<Saved> {
        if ty == BlobType::Tree {
            return self.saver.save(ty, plaintext);
        }
        let id = self.pack.hash_blob(plaintext);
        let saver = &self.saver;
        if let Some(known) = saver.claim(ty, id)? {
            return Ok(known);
        }
        let (key, level) = (saver.shared.repo.key(), saver.shared.compression);
        let stored = saver.add_to(&mut self.pack, id, plaintext.len(), true, |p| {
            p.add_plaintext(key, ty, id, plaintext, level)
        })?;
        saver.count(ty, plaintext.len(), stored);
        if saver.is_full(&self.pack) {
            let full = saver.replace(&mut self.pack);
            saver.send(full)?;
        }
        Ok(Saved {
            id,
            new: true,
            stored,
        })
    }
}

impl Drop for WorkerSaver {
    fn drop(&mut self) {
        let last = std::mem::take(&mut self.pack);
        // A failure marks the saver failed; `finish` reports it.
        let _ = self.saver.send(last);
    }
}

fn shard(id: &Id) -> usize {
    id.0[0] as usize % SHARDS
}

/// Writes packs as they come, several at once, and index files for stored packs.
async fn upload_loop(
    repo: Repository,
    mut rx: mpsc::Receiver<Upload>,
    buffers: Arc<PackBuffers>,
    may_index: Arc<AtomicBool>,
) -> Result<UploadResult> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending: Vec<IndexPack> = Vec::new();
    let mut pending_blobs = 0usize;
    let mut out = UploadResult::default();
    let mut first_err: Option<Error> = None;
    loop {
        tokio::select! {
            pack = rx.recv(), if tasks.len() < UPLOAD_CONCURRENCY && first_err.is_none() => {
                let Some((pack, permit)) = pack else { break };
                let repo = repo.clone();
                let buffers = buffers.clone();
                tasks.spawn(async move {
                    let blobs: Vec<IndexBlob> = pack.blobs.iter().map(IndexBlob::from).collect();
                    let trees = blobs.iter().any(|b| b.ty == BlobType::Tree);
                    let bytes = Bytes::from(pack.bytes);
                    write_retrying(&repo, FileType::Pack, pack.id, bytes.clone(), trees).await?;
                    buffers.give_bytes(bytes);
                    drop(permit);
                    Ok::<_, Error>(IndexPack { id: pack.id, blobs })
                });
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done.map_err(|e| Error::Usage(format!("upload task: {e}")))? {
                    Ok(p) => {
                        out.packs += 1;
                        pending_blobs += p.blobs.len();
                        pending.push(p);
                        if pending_blobs >= INDEX_FLUSH_BLOBS && may_index.load(Ordering::Acquire) {
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
    if !pending.is_empty() && may_index.load(Ordering::Acquire) {
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
    write_retrying(repo, ty, id, data, false).await
}

/// As [`write_with_retry`]; a `cacheable` file (a pack of trees) is also kept in
/// the local cache, if there is one.
async fn write_retrying(
    repo: &Repository,
    ty: FileType,
    id: Id,
    data: Bytes,
    cacheable: bool,
) -> Result<()> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        let backend = repo.backend();
        let res = if cacheable {
            backend.write_cacheable(ty, &id, data.clone()).await
        } else {
            backend.write(ty, &id, data.clone()).await
        };
        match res {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::memory_repo;

    /// Every pack upload fails: `finish` reports the upload's error, not the
    /// `Interrupted` its closed channel causes when the last packs are flushed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_upload_is_the_error_finish_reports() {
        use crate::backend::{location::open_location, FaultBackend, FaultConfig};
        memory_repo("saver-upload-fails").await;
        let store = open_location("memory:saver-upload-fails", false).unwrap();
        let cuts = FaultConfig {
            cut_write_rate: 1.0,
            ..FaultConfig::default()
        };
        let repo = crate::repository::open(Arc::new(FaultBackend::new(store, cuts)), b"pw")
            .await
            .unwrap();
        let saver = BlobSaver::new(&repo, Arc::new(IndexLookup::default()), 1 << 20);
        let s2 = saver.clone();
        tokio::task::spawn_blocking(move || {
            // A tree blob waits in the shared pack until `finish` flushes it.
            s2.save(BlobType::Tree, b"{\"nodes\":[]}").unwrap();
            // Data until the uploader has given up and closed its channel.
            let mut worker = s2.worker();
            for i in 0..100_000u32 {
                let mut blob = vec![7u8; 300_000];
                blob[..4].copy_from_slice(&i.to_le_bytes());
                if let Err(e) = worker.save(BlobType::Data, &blob) {
                    assert!(matches!(e, Error::Interrupted), "{e}");
                    return;
                }
            }
            panic!("the uploader never gave up");
        })
        .await
        .unwrap();
        let err = saver.finish().await.unwrap_err().to_string();
        assert!(err.contains("injected fault"), "{err}");
    }

    /// Two workers with packs of their own, a blob both of them save stored once,
    /// and every pack flushed (by dropping the workers) before the index is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn worker_packs_dedup_and_flush_on_drop() {
        let repo = memory_repo("worker-savers").await;
        let saver = BlobSaver::new(&repo, Arc::new(IndexLookup::default()), 1 << 20);
        let s2 = saver.clone();
        let news = tokio::task::spawn_blocking(move || {
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..2u8)
                    .map(|w| {
                        let saver = &s2;
                        s.spawn(move || {
                            let mut worker = saver.worker();
                            let mut new = 0;
                            for i in 0..40u8 {
                                let own = vec![w * 100 + i; 100_000];
                                new += usize::from(worker.save(BlobType::Data, &own).unwrap().new);
                            }
                            new += usize::from(worker.save(BlobType::Data, b"shared").unwrap().new);
                            new
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
            })
        })
        .await
        .unwrap();
        assert_eq!(news, 81, "the shared blob is new for one worker only");
        let (stats, index_files) = saver.finish().await.unwrap();
        assert_eq!(stats.data_blobs, 81);
        let index = repo.load_index().await.unwrap();
        assert_eq!(index.len(), 81);
        assert_eq!(index_files.len(), 1);
        for i in 0..40u8 {
            let data = vec![100 + i; 100_000];
            let got = repo
                .read_blob(&index, BlobType::Data, &Id::hash(&data))
                .await
                .unwrap();
            assert_eq!(got, data);
        }
        let packs = repo.backend().list(FileType::Pack).await.unwrap();
        assert!(packs.len() >= 2, "each worker filled packs of its own");
    }
}
