//! Reads, chunks and saves file content on worker threads while the scan is still
//! walking. Each chunk is hashed, deduplicated, compressed and sealed by the thread
//! that read it; packs fill up in the shared [`BlobSaver`] and upload in the
//! background. The bounded job queue keeps the scan from running far ahead.

use std::{
    fs::File,
    io::Read,
    path::PathBuf,
    sync::{mpsc, Mutex, PoisonError},
};

use stash_chunker::{ChunkReader, ChunkerKind};
use stash_repo_format::{blob::BlobType, Id};

use super::Counters;
use crate::{
    error::{Error, Result},
    repository::BlobSaver,
};

/// Files queued ahead of the workers.
pub const QUEUE: usize = 256;

/// The content and size of a saved file, `None` if it could not be read.
pub type Saved = Option<(Vec<Id>, u64)>;

/// Per slot, what saving the file gave.
pub type Results = Vec<Saved>;

/// Runs `scan` on this thread while `workers` threads save the files it sends.
/// Returns the scan's value and the results by slot.
///
/// # Errors
/// The first error that is not about a single file (a failed upload).
pub fn with_savers<T>(
    workers: usize,
    saver: &BlobSaver,
    kind: &ChunkerKind,
    counters: &Counters,
    scan: impl FnOnce(&mpsc::SyncSender<(usize, PathBuf)>) -> T,
) -> Result<(T, Results)> {
    let (tx, rx) = mpsc::sync_channel::<(usize, PathBuf)>(QUEUE);
    let rx = Mutex::new(rx);
    let results: Mutex<Vec<(usize, Saved)>> = Mutex::default();
    let fatal: Mutex<Option<Error>> = Mutex::default();
    let out = std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| loop {
                let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                let Ok((slot, path)) = job else { break };
                if fatal
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some()
                {
                    continue;
                }
                let r = match save_file(&path, saver, kind, counters) {
                    Ok(v) => {
                        Counters::add(&counters.files_done, 1);
                        Some(v)
                    }
                    Err(Error::Io { path, source }) => {
                        eprintln!("warning: {}: {source}; file skipped", path.display());
                        Counters::add(&counters.errors, 1);
                        None
                    }
                    Err(e) => {
                        fatal
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_or_insert(e);
                        None
                    }
                };
                results
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((slot, r));
            });
        }
        let v = scan(&tx);
        drop(tx);
        v
    });
    if let Some(e) = fatal.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    let pairs = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut by_slot: Results = vec![None; pairs.len()];
    for (slot, r) in pairs {
        if let Some(x) = by_slot.get_mut(slot) {
            *x = r;
        }
    }
    Ok((out, by_slot))
}

fn save_file(
    path: &std::path::Path,
    saver: &BlobSaver,
    kind: &ChunkerKind,
    counters: &Counters,
) -> Result<(Vec<Id>, u64)> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    save_stream(f, saver, kind, counters).map_err(|e| match e {
        Error::Io { source, .. } => Error::io(path, source),
        e => e,
    })
}

/// Chunks and saves everything `reader` yields; returns the blob ids and byte count.
///
/// # Errors
/// Read errors (as [`Error::Io`] with an empty path) or saver errors.
pub fn save_stream(
    reader: impl Read,
    saver: &BlobSaver,
    kind: &ChunkerKind,
    counters: &Counters,
) -> Result<(Vec<Id>, u64)> {
    let mut content = Vec::new();
    let mut size = 0u64;
    let mut chunks = ChunkReader::new(kind, reader);
    while let Some(chunk) = chunks.next_chunk().map_err(|e| Error::io("", e))? {
        size += chunk.len() as u64;
        Counters::add(&counters.bytes_done, chunk.len() as u64);
        content.push(saver.save(BlobType::Data, chunk)?.id);
    }
    Ok((content, size))
}
