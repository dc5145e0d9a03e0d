//! Reads each needed pack once and writes its blobs where they belong.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    os::unix::fs::FileExt,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use futures::{stream, StreamExt};
use stash_repo_format::{blob, file_type::FileType, index::IndexLookup};

use super::plan::Plan;
use crate::{
    error::{Error, Result},
    repository::{pack_buffers::PackBuffers, Repository},
};

/// Packs read at once.
const CONCURRENCY: usize = 3;

/// Restore progress counters.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes to write.
    pub bytes_total: AtomicU64,
    /// Bytes written.
    pub bytes_done: AtomicU64,
}

/// Fetches every pack in the plan; returns the files that could not be completed
/// because a blob failed verification.
///
/// # Errors
/// Backend errors and local write errors.
pub async fn fetch_all(
    repo: &Repository,
    _index: &IndexLookup,
    plan: Arc<Plan>,
    progress: Arc<Progress>,
) -> Result<Vec<PathBuf>> {
    let buffers = Arc::new(PackBuffers::new(0, CONCURRENCY + 1));
    let results: Vec<Result<Vec<u32>>> = stream::iter(0..plan.packs.len())
        .map(|i| {
            let plan = plan.clone();
            let progress = progress.clone();
            let buffers = buffers.clone();
            async move {
                let (pack, blobs) = &plan.packs[i];
                let start = blobs.iter().map(|b| u64::from(b.offset)).min().unwrap_or(0);
                let end = blobs
                    .iter()
                    .map(|b| u64::from(b.offset) + u64::from(b.length))
                    .max()
                    .unwrap_or(0);
                let bytes = repo
                    .backend()
                    .read_into(FileType::Pack, pack, Some(start..end), buffers.take())
                    .await?;
                let key = repo.key().clone();
                let (written, bytes) = crate::cpu::spawn(move || {
                    let mut bytes = bytes;
                    let r = write_pack(&key, &plan, i, &mut bytes, start, &progress);
                    (r, bytes)
                })
                .await;
                buffers.give(bytes);
                written
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut failed = Vec::new();
    for r in results {
        failed.extend(r?);
    }
    failed.sort_unstable();
    failed.dedup();
    Ok(failed
        .into_iter()
        .map(|f| plan.files[f as usize].path.clone())
        .collect())
}

thread_local! {
    /// Per writing thread: compressed blobs inflate here, then go to their files.
    static PLAIN: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Decrypts the blobs of pack `i` in `bytes` (the range read from `start`) in place
/// and writes each to its files.
fn write_pack(
    key: &stash_repo_format::crypto::Key,
    plan: &Plan,
    i: usize,
    bytes: &mut [u8],
    start: u64,
    progress: &Progress,
) -> Result<Vec<u32>> {
    PLAIN.with(|buf| {
        let buf = &mut *buf.borrow_mut();
        let (pack, blobs) = &plan.packs[i];
        let mut open: HashMap<u32, File> = HashMap::new();
        let mut failed = Vec::new();
        for b in blobs {
            let from = (u64::from(b.offset) - start) as usize;
            let Some(sealed) = bytes.get_mut(from..from + b.length as usize) else {
                eprintln!(
                    "error: data blob {} in pack {}: pack read too short",
                    b.id, pack
                );
                failed.extend(b.targets.iter().map(|t| t.0));
                continue;
            };
            let plain = match blob::decode_in_place(key, &b.id, sealed, b.uncompressed_length, buf)
            {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: data blob {} in pack {}: {e}", b.id, pack);
                    failed.extend(b.targets.iter().map(|t| t.0));
                    continue;
                }
            };
            for &(fileno, off) in &b.targets {
                let path = &plan.files[fileno as usize].path;
                let f = match open.entry(fileno) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => v.insert(
                        OpenOptions::new()
                            .write(true)
                            .open(path)
                            .map_err(|e| Error::io(path, e))?,
                    ),
                };
                f.write_all_at(plain, off).map_err(|e| Error::io(path, e))?;
                progress
                    .bytes_done
                    .fetch_add(plain.len() as u64, Ordering::Relaxed);
            }
        }
        Ok(failed)
    })
}
