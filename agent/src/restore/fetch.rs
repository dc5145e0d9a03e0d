//! Reads each needed pack once and writes its blobs where they belong.

use std::{
    collections::HashMap,
    ops::Range,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
};

use futures::{stream, StreamExt};
use stash_repo_format::{blob, file_type::FileType, index::IndexLookup, pack};

use super::{
    plan::{PackBlob, Plan},
    write::Target,
};
use crate::{
    error::{Error, Result},
    repository::{pack_buffers::PackBuffers, Repository},
};

/// Windows read and written at once.
const CONCURRENCY: usize = 3;
/// Bytes of a pack read at once: its needed blobs go in windows of at most this span
/// (a larger blob alone), so memory is bounded by the windows in flight rather than
/// by the pack size.
const WINDOW: u64 = 4 << 20;

/// Where a window's blobs go, and what the writes share.
#[derive(Clone, Copy)]
struct Writes<'a> {
    plan: &'a Plan,
    progress: &'a Progress,
    direct_refused: &'a AtomicBool,
}

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
    let buffers = Arc::new(PackBuffers::new(0, CONCURRENCY));
    let inflated = Arc::new(PackBuffers::new(0, CONCURRENCY));
    // Whether the target's file system refused `O_DIRECT`: per restore, since one
    // process (the operator) restores to several file systems.
    let direct_refused = Arc::new(AtomicBool::new(false));
    let windows = windows(&plan);
    let results: Vec<Result<Vec<u32>>> = stream::iter(windows)
        .map(|(i, blobs)| {
            let plan = plan.clone();
            let progress = progress.clone();
            let buffers = buffers.clone();
            let inflated = inflated.clone();
            let direct_refused = direct_refused.clone();
            async move {
                let (pack, all) = &plan.packs[i];
                let (start, end) = span(&all[blobs.clone()]);
                let bytes = repo
                    .backend()
                    .read_into(FileType::Pack, pack, Some(start..end), buffers.take())
                    .await?;
                let key = repo.key().clone();
                let mut plain = inflated.take();
                // A blocking thread, not the CPU pool: the direct writes wait for the
                // device, and a waiting CPU-pool thread would idle a core.
                let (written, bytes, plain) = tokio::task::spawn_blocking(move || {
                    let mut bytes = bytes;
                    let to = Writes {
                        plan: &plan,
                        progress: &progress,
                        direct_refused: &direct_refused,
                    };
                    let r = write_blobs(&key, &to, (i, blobs), &mut bytes, start, &mut plain);
                    (r, bytes, plain)
                })
                .await
                .map_err(|e| Error::Usage(format!("restore write task: {e}")))?;
                buffers.give_as_is(bytes.into_buffer());
                inflated.give(plain);
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

/// The windows to read: (pack number, range of its blobs), each spanning at most
/// [`WINDOW`] bytes of the pack unless a single blob is larger.
fn windows(plan: &Plan) -> Vec<(usize, Range<usize>)> {
    let mut out = Vec::new();
    for (i, (_, blobs)) in plan.packs.iter().enumerate() {
        let mut first = 0;
        for (k, b) in blobs.iter().enumerate() {
            let end = u64::from(b.offset) + u64::from(b.length);
            if k > first && end - u64::from(blobs[first].offset) > WINDOW {
                out.push((i, first..k));
                first = k;
            }
        }
        if first < blobs.len() {
            out.push((i, first..blobs.len()));
        }
    }
    out
}

/// The byte range of a pack that holds `blobs`.
fn span(blobs: &[PackBlob]) -> (u64, u64) {
    let start = blobs.iter().map(|b| u64::from(b.offset)).min().unwrap_or(0);
    let end = blobs
        .iter()
        .map(|b| u64::from(b.offset) + u64::from(b.length))
        .max()
        .unwrap_or(0);
    (start, end)
}

/// Decrypts the blobs of a window (pack number, range of its blobs) in `bytes` (the
/// range read from `start`) in place, inflating compressed ones into `buf`, and
/// writes each to its files.
fn write_blobs(
    key: &stash_repo_format::crypto::Key,
    to: &Writes,
    (i, window): (usize, Range<usize>),
    bytes: &mut [u8],
    start: u64,
    buf: &mut Vec<u8>,
) -> Result<Vec<u32>> {
    let Writes {
        plan,
        progress,
        direct_refused,
    } = *to;
    {
        let (pack, blobs) = &plan.packs[i];
        let blobs = &blobs[window];
        let mut open: HashMap<u32, Target> = HashMap::new();
        let mut failed = Vec::new();
        for b in blobs {
            let within = u64::from(b.offset)
                .checked_sub(start)
                .ok_or_else(|| format!("offset {} is before the window read", b.offset))
                .and_then(|at| {
                    pack::blob_range(at, b.length, bytes.len()).map_err(|e| e.to_string())
                });
            let sealed = match within {
                Ok(range) => &mut bytes[range],
                Err(e) => {
                    eprintln!(
                        "error: data blob {} in pack {pack} (read from byte {start}): {e}",
                        b.id
                    );
                    failed.extend(b.targets.iter().map(|t| t.0));
                    continue;
                }
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
            // A sparse restore leaves zeros to the preallocated file's holes.
            if plan.sparse && plain.iter().all(|&b| b == 0) {
                let n = (plain.len() * b.targets.len()) as u64;
                progress.bytes_done.fetch_add(n, Ordering::Relaxed);
                continue;
            }
            for &(fileno, off) in &b.targets {
                let path = &plan.files[fileno as usize].path;
                open.entry(fileno)
                    .or_insert_with(|| Target::new(direct_refused))
                    .write_at(path, plain, off)?;
                progress
                    .bytes_done
                    .fetch_add(plain.len() as u64, Ordering::Relaxed);
            }
        }
        Ok(failed)
    }
}

#[cfg(test)]
mod tests {
    use stash_repo_format::Id;

    use super::*;

    fn blob(offset: u32, length: u32) -> PackBlob {
        PackBlob {
            id: Id::hash(&offset.to_le_bytes()),
            offset,
            length,
            uncompressed_length: None,
            targets: Vec::new(),
        }
    }

    /// Blobs the bytes read do not hold (a lying index, a short read) fail the
    /// files they belong to instead of slicing out of range.
    #[test]
    fn blobs_outside_the_bytes_read_fail_their_files() {
        use super::super::plan::FileEntry;
        let plan = Plan {
            packs: vec![(
                Id::hash(b"p"),
                vec![PackBlob {
                    targets: vec![(0, 0)],
                    ..blob(100, 50)
                }],
            )],
            files: vec![FileEntry {
                path: PathBuf::from("/nonexistent/never-written"),
                node: stash_repo_format::node::Node::default(),
                hardlink_to: None,
                length: 18,
            }],
            ..Plan::default()
        };
        let (progress, refused) = (Progress::default(), AtomicBool::new(false));
        let to = Writes {
            plan: &plan,
            progress: &progress,
            direct_refused: &refused,
        };
        let key = stash_repo_format::crypto::Key::random();
        for (len, start) in [(20, 100), (50, 120), (0, 0)] {
            let mut bytes = vec![0u8; len];
            let failed =
                write_blobs(&key, &to, (0, 0..1), &mut bytes, start, &mut Vec::new()).unwrap();
            assert_eq!(failed, vec![0], "{len} bytes read from {start}");
        }
    }

    #[test]
    fn windows_cover_every_blob_once_within_their_span() {
        const M: u32 = 1 << 20;
        let plan = Plan {
            packs: vec![
                (
                    Id::hash(b"a"),
                    vec![blob(0, M), blob(M, 2 * M), blob(3 * M, M), blob(5 * M, M)],
                ),
                (Id::hash(b"b"), vec![blob(0, 9 * M), blob(9 * M, 10)]),
                (Id::hash(b"c"), vec![blob(100, 10)]),
            ],
            ..Plan::default()
        };
        let w = windows(&plan);
        assert_eq!(
            w,
            vec![(0, 0..3), (0, 3..4), (1, 0..1), (1, 1..2), (2, 0..1)]
        );
        for (i, r) in &w {
            let (start, end) = span(&plan.packs[*i].1[r.clone()]);
            assert!(end - start <= WINDOW || r.len() == 1);
        }
    }
}
