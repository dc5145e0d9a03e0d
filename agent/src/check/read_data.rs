//! `check --read-data`'s reading: several packs at once, each read in windows of a
//! few MiB and verified window by window while its next window is read.
//!
//! Read whole, every pack in flight held all its bytes: 3 x 17 MiB for restic's
//! default pack size, and 3 x 128 MiB for a repository written with
//! `--pack-size 128`. In windows, the bytes held are two windows per pack whatever
//! the pack size, and verifying a pack starts after its first few MiB. On 600 MB of
//! 17 MiB packs, 6 MiB windows took peak RSS from 95 to 86 MiB at the same wall
//! time within noise.

use std::{
    collections::HashMap,
    ops::Range,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use futures::{stream, StreamExt};
use stash_repo_format::{
    crypto::Key, file_type::FileType, pack, pack::PackedBlob, sha256::Hasher, Id,
};

use super::{
    verify::{compare_with_index, pack_hash_error, verify_pack, verify_window},
    OnPack,
};
use crate::{
    backend::ReadBuf,
    error::Result,
    repository::{pack_buffers::PackBuffers, Repository},
};

/// Packs verified at once: with two windows each in memory, enough to keep both
/// cores and the device busy.
pub const LANES: usize = 3;

/// The bytes a window spans, unless a single blob is larger.
const WINDOW: u64 = 6 << 20;

/// The capacity of a window's buffer: a window, the header of a pack's last one
/// and `O_DIRECT`'s alignment. Every buffer is allocated at this size, so that a
/// window a little longer than the last one does not grow (copy) its buffer.
const BUFFER: usize = WINDOW as usize + (1 << 20);

/// A stretch of a pack read and verified at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Its bytes in the pack.
    pub bytes: Range<u64>,
    /// The blobs lying in it: indices into the pack's blobs sorted by offset.
    pub blobs: Range<usize>,
}

/// Splits a pack of `size` bytes into windows of at most `target` bytes (or one
/// blob), each starting where a blob starts; the last one runs to the end of the
/// pack and holds its header. `blobs` are sorted by offset. `None` unless they lie
/// back to back from the pack's start, as in every pack a writer made: any other
/// pack is read and checked whole, against its own header.
pub fn plan_windows(blobs: &[PackedBlob], size: u64, target: u64) -> Option<Vec<Window>> {
    let mut at = 0u64;
    for b in blobs {
        if u64::from(b.offset) != at {
            return None;
        }
        at += u64::from(b.length);
    }
    if at > size {
        return None;
    }
    let mut out = Vec::new();
    let (mut start, mut first) = (0u64, 0usize);
    for (i, b) in blobs.iter().enumerate() {
        let (offset, end) = (
            u64::from(b.offset),
            u64::from(b.offset) + u64::from(b.length),
        );
        if i > first && end - start > target {
            out.push(Window {
                bytes: start..offset,
                blobs: first..i,
            });
            (start, first) = (offset, i);
        }
    }
    out.push(Window {
        bytes: start..size,
        blobs: first..blobs.len(),
    });
    Some(out)
}

/// Reads and verifies `packs` (with their sizes), [`LANES`] at once; the errors
/// found per pack.
pub async fn read_packs(
    repo: &Repository,
    packs: Vec<(Id, u64)>,
    indexed: Arc<HashMap<Id, Vec<PackedBlob>>>,
    on_pack: Option<OnPack>,
) -> Vec<(Id, Vec<String>)> {
    let total = packs.len() as u64;
    let done = Arc::new(AtomicU64::new(0));
    let buffers = Arc::new(PackBuffers::new(BUFFER, 2 * LANES));
    stream::iter(packs)
        .map(|(id, size)| {
            let indexed = indexed.clone();
            let done = done.clone();
            let on_pack = on_pack.clone();
            let buffers = buffers.clone();
            async move {
                let blobs = indexed.get(&id).map_or(&[][..], |v| v);
                let errs = verify_one(repo, id, size, blobs, &buffers).await;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(f) = &on_pack {
                    f(n, total);
                }
                (id, errs)
            }
        })
        .buffer_unordered(LANES)
        .collect()
        .await
}

/// A pack's hash so far and what is wrong with it, handed from window to window.
struct Progress {
    pack_hash: Hasher,
    errs: Vec<String>,
}

/// Verifies one pack window by window, reading the next window while the current
/// one is verified.
async fn verify_one(
    repo: &Repository,
    id: Id,
    size: u64,
    indexed: &[PackedBlob],
    buffers: &PackBuffers,
) -> Vec<String> {
    let mut blobs = indexed.to_vec();
    blobs.sort_by_key(|b| b.offset);
    let Some(windows) = plan_windows(&blobs, size, WINDOW) else {
        return verify_whole(repo, id, indexed, buffers).await;
    };
    let blobs = Arc::new(blobs);
    let mut progress = Progress {
        pack_hash: Hasher::default(),
        errs: Vec::new(),
    };
    let mut read = Some(read_window(repo, id, windows[0].bytes.clone(), buffers.take()).await);
    for (k, w) in windows.iter().enumerate() {
        let mut bytes = match read.take() {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                // The pack's id cannot be checked without all its bytes.
                progress.errs.push(format!("pack {id}: {e}"));
                return progress.errs;
            }
            None => break,
        };
        let key = repo.key().clone();
        let (blobs, w, last) = (blobs.clone(), w.clone(), k + 1 == windows.len());
        let verify = crate::cpu::spawn(move || {
            let p = &mut progress;
            if last {
                check_header(&key, id, &bytes, &w, size, &blobs, &mut p.errs);
            }
            let base = w.bytes.start;
            let inside = &blobs[w.blobs];
            verify_window(
                &key,
                id,
                &mut bytes,
                base,
                inside,
                &mut p.pack_hash,
                &mut p.errs,
            );
            (progress, bytes)
        });
        let next = windows
            .get(k + 1)
            .map(|n| read_window(repo, id, n.bytes.clone(), buffers.take()));
        let (p, bytes) = match next {
            Some(next) => {
                let (verified, got) = futures::join!(verify, next);
                read = Some(got);
                verified
            }
            None => verify.await,
        };
        progress = p;
        buffers.give_as_is(bytes.into_buffer());
    }
    let mut errs = progress.errs;
    pack_hash_error(id, progress.pack_hash.finish(), &mut errs);
    errs
}

/// A pack whose index entries are not back to back: read whole and checked against
/// its own header.
async fn verify_whole(
    repo: &Repository,
    id: Id,
    indexed: &[PackedBlob],
    buffers: &PackBuffers,
) -> Vec<String> {
    let read = repo
        .backend()
        .read_into(FileType::Pack, &id, None, buffers.take())
        .await;
    match read {
        Ok(bytes) => {
            let key = repo.key().clone();
            let indexed = indexed.to_vec();
            let (errs, bytes) = crate::cpu::spawn(move || {
                let mut bytes = bytes;
                (verify_pack(&key, id, &mut bytes, &indexed), bytes)
            })
            .await;
            buffers.give_as_is(bytes.into_buffer());
            errs
        }
        Err(e) => vec![format!("pack {id}: {e}")],
    }
}

async fn read_window(
    repo: &Repository,
    id: Id,
    range: Range<u64>,
    buf: Vec<u8>,
) -> Result<ReadBuf> {
    repo.backend()
        .read_into(FileType::Pack, &id, Some(range), buf)
        .await
}

/// Checks the header in the pack's last window against the index: its length, as
/// the pack's last 4 bytes give it, must start where the index's blobs end, and its
/// entries must be the index's. Runs before the window's blobs are decrypted in
/// place (the header lies after them, but the check reads the window as read).
fn check_header(
    key: &Key,
    id: Id,
    bytes: &[u8],
    w: &Window,
    size: u64,
    blobs: &[PackedBlob],
    errs: &mut Vec<String>,
) {
    let data_len = blobs
        .last()
        .map_or(0, |b| u64::from(b.offset) + u64::from(b.length));
    let hlen = match pack::header_len_from_trailer(bytes, size) {
        Ok(n) => n as u64,
        Err(e) => return errs.push(format!("pack {id}: header: {e}")),
    };
    let header_at = size.checked_sub(4 + hlen);
    if header_at != Some(data_len) {
        let at = header_at.map_or_else(|| "before the pack".into(), |at| format!("at byte {at}"));
        return errs.push(format!(
            "pack {id}: header: starts {at} by the pack's last 4 bytes, \
             but the index's blobs end at {data_len}"
        ));
    }
    let sealed = data_len
        .checked_sub(w.bytes.start)
        .and_then(|at| usize::try_from(at).ok())
        .zip(bytes.len().checked_sub(4))
        .and_then(|(at, end)| bytes.get(at..end));
    let Some(sealed) = sealed else {
        return errs.push(format!("pack {id}: header: outside the last window"));
    };
    match pack::parse_header(key, sealed, data_len) {
        Ok(header) => compare_with_index(id, &header, blobs, errs),
        Err(e) => errs.push(format!("pack {id}: header: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use stash_repo_format::blob::BlobType;

    use super::*;

    fn blobs(lengths: &[u32]) -> Vec<PackedBlob> {
        let mut at = 0;
        lengths
            .iter()
            .map(|&length| {
                let b = PackedBlob {
                    ty: BlobType::Data,
                    id: Id([at as u8; 32]),
                    offset: at,
                    length,
                    uncompressed_length: None,
                };
                at += length;
                b
            })
            .collect()
    }

    fn w(bytes: Range<u64>, blobs: Range<usize>) -> Window {
        Window { bytes, blobs }
    }

    #[test]
    fn windows_hold_whole_blobs_and_the_last_one_the_header() {
        let b = blobs(&[40, 50, 30, 100, 10]);
        assert_eq!(
            plan_windows(&b, 300, 100).unwrap(),
            vec![
                w(0..90, 0..2),
                w(90..120, 2..3),
                w(120..220, 3..4),
                w(220..300, 4..5)
            ]
        );
        assert_eq!(plan_windows(&b, 300, 1000).unwrap(), vec![w(0..300, 0..5)]);
        assert_eq!(plan_windows(&[], 60, 10).unwrap(), vec![w(0..60, 0..0)]);
    }

    #[test]
    fn blobs_not_back_to_back_are_read_whole() {
        let mut b = blobs(&[40, 50]);
        b[1].offset += 1;
        assert_eq!(plan_windows(&b, 300, 10), None);
        assert_eq!(plan_windows(&blobs(&[40, 50]), 80, 10), None);
    }

    /// What a window-by-window check of `bytes` finds, with windows of `target`.
    fn check_in_windows(
        key: &Key,
        id: Id,
        bytes: &[u8],
        blobs: &[PackedBlob],
        target: u64,
    ) -> Vec<String> {
        let size = bytes.len() as u64;
        let windows = plan_windows(blobs, size, target).unwrap();
        let (mut pack_hash, mut errs) = (Hasher::default(), Vec::new());
        for (k, w) in windows.iter().enumerate() {
            let mut window = bytes[w.bytes.start as usize..w.bytes.end as usize].to_vec();
            if k + 1 == windows.len() {
                check_header(key, id, &window, w, size, blobs, &mut errs);
            }
            let inside = &blobs[w.blobs.clone()];
            verify_window(
                key,
                id,
                &mut window,
                w.bytes.start,
                inside,
                &mut pack_hash,
                &mut errs,
            );
        }
        pack_hash_error(id, pack_hash.finish(), &mut errs);
        errs
    }

    /// A pack of compressed and raw blobs, checked in windows of every size from
    /// one blob to all of them: sound, it has no findings; a flipped byte in any
    /// blob names that blob and the pack; a damaged trailer names the header.
    #[test]
    fn packs_checked_in_windows_find_what_whole_ones_do() {
        use stash_repo_format::pack::PackWriter;
        let key = Key::random();
        let text = |n: usize| b"level=info msg=ok\n".repeat(n);
        let raw = |n: usize, seed: u32| -> Vec<u8> {
            (0..n as u32)
                .map(|i| (i ^ seed).wrapping_mul(2_654_435_761).to_le_bytes()[3])
                .collect()
        };
        let plains: Vec<(Vec<u8>, Option<i32>)> = vec![
            (text(40_000), Some(3)),
            (raw(3_000, 1), None),
            (text(30_000), Some(3)),
            (raw(200_000, 3), None),
            (text(100), Some(3)),
            (raw(70_000, 4), None),
        ];
        let mut w = PackWriter::with_capacity(1 << 20);
        for (p, c) in &plains {
            let id = w.hash_blob(p);
            w.add_plaintext(&key, BlobType::Data, id, p, *c).unwrap();
        }
        let p = w.finish(&key);
        for target in [1, 50_000, 250_000, 1 << 30] {
            let errs = check_in_windows(&key, p.id, &p.bytes, &p.blobs, target);
            assert_eq!(errs, Vec::<String>::new(), "windows of {target}");
            for b in &p.blobs {
                let mut bytes = p.bytes.clone();
                bytes[b.offset as usize + b.length as usize - 17] ^= 0x40;
                let errs = check_in_windows(&key, p.id, &bytes, &p.blobs, target);
                assert_eq!(errs.len(), 2, "windows of {target}: {errs:?}");
                assert!(errs[0].contains(&b.id.to_string()), "{errs:?}");
                assert!(errs[1].contains("content hashes to"), "{errs:?}");
            }
            let mut bytes = p.bytes.clone();
            let n = bytes.len();
            bytes[n - 4] ^= 1;
            let errs = check_in_windows(&key, p.id, &bytes, &p.blobs, target);
            assert!(errs.iter().any(|e| e.contains("header")), "{errs:?}");
        }
    }
}
