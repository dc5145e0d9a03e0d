//! Reads, chunks and saves file content on worker threads while the scan is still
//! walking. Each chunk is hashed, deduplicated, compressed and sealed by the thread
//! that read it, into that thread's own pack ([`WorkerSaver`]); full packs upload in
//! the background. The bounded job queue keeps the scan from running far ahead.
//! A worker keeps its read buffer from file to file.

use std::{
    collections::HashMap,
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
    repository::{BlobSaver, WorkerSaver},
};

/// Files queued ahead of the workers.
pub const QUEUE: usize = 256;

/// The content and size of a saved file, `None` if it could not be read.
pub type Saved = Option<(Vec<Id>, u64)>;

/// What the workers have finished, by slot. The scan takes entries out as it folds
/// finished directories into saved trees; what is left goes back to the caller.
pub type Results = Mutex<HashMap<usize, Saved>>;

/// Runs `scan` on this thread while `workers` threads save the files it sends.
/// Returns the scan's value and the results it did not take, by slot.
///
/// # Errors
/// The first error that is not about a single file (a failed upload).
pub fn with_savers<T>(
    workers: usize,
    saver: &BlobSaver,
    kind: &ChunkerKind,
    counters: &Counters,
    scan: impl FnOnce(&mpsc::SyncSender<(usize, PathBuf)>, &Results) -> T,
) -> Result<(T, HashMap<usize, Saved>)> {
    let (tx, rx) = mpsc::sync_channel::<(usize, PathBuf)>(QUEUE);
    let rx = Mutex::new(rx);
    let results: Results = Mutex::default();
    let fatal: Mutex<Option<Error>> = Mutex::default();
    let out = std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                let mut worker = saver.worker();
                let mut buf = Vec::new();
                loop {
                    let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((slot, path)) = job else { break };
                    if fatal
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_some()
                    {
                        continue;
                    }
                    let r = match save_file(&path, &mut worker, kind, counters, &mut buf) {
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
                        .insert(slot, r);
                }
            });
        }
        let v = scan(&tx, &results);
        drop(tx);
        v
    });
    if let Some(e) = fatal.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    Ok((
        out,
        results.into_inner().unwrap_or_else(PoisonError::into_inner),
    ))
}

fn save_file(
    path: &std::path::Path,
    saver: &mut WorkerSaver,
    kind: &ChunkerKind,
    counters: &Counters,
    buf: &mut Vec<u8>,
) -> Result<(Vec<Id>, u64)> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut chunks = ChunkReader::with_buffer(kind, f, std::mem::take(buf));
    let r = save_chunks(&mut chunks, saver, counters);
    *buf = chunks.into_buffer();
    r.map_err(|e| match e {
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
    save_chunks(
        &mut ChunkReader::new(kind, reader),
        &mut saver.worker(),
        counters,
    )
}

fn save_chunks(
    chunks: &mut ChunkReader<impl Read>,
    saver: &mut WorkerSaver,
    counters: &Counters,
) -> Result<(Vec<Id>, u64)> {
    let mut content = Vec::new();
    let mut size = 0u64;
    while let Some(chunk) = chunks.next_chunk().map_err(|e| Error::io("", e))? {
        size += chunk.len() as u64;
        Counters::add(&counters.bytes_done, chunk.len() as u64);
        content.push(saver.save(BlobType::Data, chunk)?.id);
    }
    Ok((content, size))
}
