//! `repair index` (restic's `rebuild-index`): a new index built from the packs that
//! are really in the repository. Packs the old index describes consistently (its
//! entries add up to the pack's size) keep their entries unless every pack is to be
//! read; every other pack's header is read and decrypted. Index entries of packs
//! that are gone are dropped; an index file that cannot be read or decoded is
//! ignored. The new index is written first and the old index files removed after,
//! so a failure half way leaves a repository at least as well indexed as before.

use std::collections::HashMap;

use futures::{stream, StreamExt, TryStreamExt};
use stash_repo_format::{
    file_type::FileType,
    index::{IndexBlob, IndexFile, IndexPack},
    pack::{self, PackedBlob},
    Id,
};

use crate::{
    error::{Error, Result},
    repository::{blob_saver::write_index, Repository},
};

/// Blobs per new index file (restic's limit for a full index).
const BLOBS_PER_FILE: usize = 50_000;
/// Pack headers read at once.
const CONCURRENCY: usize = 8;

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairStats {
    /// Packs whose entries came from the old index.
    pub packs_kept: usize,
    /// Packs whose header was read.
    pub packs_read: usize,
    /// Packs left out because their header could not be read (named on stderr).
    pub packs_unreadable: usize,
    /// Packs the old index named that are not in the repository.
    pub packs_missing: usize,
    /// Old index files that could not be read or decoded.
    pub index_files_damaged: usize,
    /// Index files written and removed.
    pub index_files_written: usize,
    pub index_files_removed: usize,
}

/// Rebuilds the index (see the module docs). Takes an exclusive lock.
///
/// # Errors
/// Lock conflicts and backend errors listing, writing or removing files.
pub async fn repair_index(repo: &Repository, read_all_packs: bool) -> Result<RepairStats> {
    let lock = repo.lock(true).await?;
    let res = rebuild(repo, read_all_packs).await;
    let released = lock.release().await;
    let stats = res?;
    released?;
    Ok(stats)
}

async fn rebuild(repo: &Repository, read_all_packs: bool) -> Result<RepairStats> {
    let mut stats = RepairStats::default();
    let old_ids = repo.index_ids().await?;
    let mut known: HashMap<Id, Vec<PackedBlob>> = HashMap::new();
    for id in &old_ids {
        let decoded = repo
            .load_json_bytes(FileType::Index, id)
            .await
            .and_then(|b| {
                IndexFile::from_json(&b).map_err(|e| Error::damaged(FileType::Index, id, e))
            });
        match decoded {
            Ok(f) => {
                for p in f.packs {
                    known.insert(p.id, p.blobs.iter().map(packed).collect());
                }
            }
            Err(e) => {
                eprintln!("warning: ignoring index {}: {e}", id.short());
                stats.index_files_damaged += 1;
            }
        }
    }
    let present = repo.backend().list(FileType::Pack).await?;
    let mut packs: Vec<IndexPack> = Vec::with_capacity(present.len());
    let mut to_read = Vec::new();
    for (id, size) in &present {
        match known.remove(id) {
            Some(blobs) if !read_all_packs && pack::expected_size(&blobs) == *size => {
                stats.packs_kept += 1;
                packs.push(index_pack(*id, &blobs));
            }
            _ => to_read.push((*id, *size)),
        }
    }
    stats.packs_missing = known.len();
    let read: Vec<(Id, Result<Vec<PackedBlob>>)> = stream::iter(to_read)
        .map(|(id, size)| async move { (id, read_header(repo, id, size).await) })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (id, header) in read {
        match header {
            Ok(blobs) => {
                stats.packs_read += 1;
                packs.push(index_pack(id, &blobs));
            }
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                eprintln!("warning: leaving pack {id} out of the index: {e}");
                stats.packs_unreadable += 1;
            }
        }
    }
    packs.sort_by_key(|p| p.id);
    let mut batch = Vec::new();
    let mut blobs = 0;
    for p in packs {
        blobs += p.blobs.len();
        batch.push(p);
        if blobs >= BLOBS_PER_FILE {
            write_index(repo, std::mem::take(&mut batch)).await?;
            stats.index_files_written += 1;
            blobs = 0;
        }
    }
    if !batch.is_empty() {
        write_index(repo, batch).await?;
        stats.index_files_written += 1;
    }
    stream::iter(&old_ids)
        .map(|id| repo.backend().remove(FileType::Index, id))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    stats.index_files_removed = old_ids.len();
    Ok(stats)
}

/// The blobs a pack's header lists: its last four bytes give the header's length,
/// then the header itself is read and decrypted.
async fn read_header(repo: &Repository, id: Id, size: u64) -> Result<Vec<PackedBlob>> {
    let damaged = |e| Error::damaged(FileType::Pack, id, e);
    let tail = repo
        .backend()
        .read(FileType::Pack, &id, Some(size.saturating_sub(4)..size))
        .await?;
    let hlen = pack::header_len_from_trailer(&tail, size).map_err(damaged)? as u64;
    let start = size - 4 - hlen;
    let sealed = repo
        .backend()
        .read(FileType::Pack, &id, Some(start..size - 4))
        .await?;
    let key = repo.key().clone();
    crate::cpu::spawn(move || pack::parse_header(&key, &sealed, start))
        .await
        .map_err(damaged)
}

fn packed(b: &IndexBlob) -> PackedBlob {
    PackedBlob {
        ty: b.ty,
        id: b.id,
        offset: b.offset,
        length: b.length,
        uncompressed_length: b.uncompressed_length,
    }
}

fn index_pack(id: Id, blobs: &[PackedBlob]) -> IndexPack {
    IndexPack {
        id,
        blobs: blobs
            .iter()
            .map(|b| IndexBlob {
                id: b.id,
                ty: b.ty,
                offset: b.offset,
                length: b.length,
                uncompressed_length: b.uncompressed_length,
            })
            .collect(),
    }
}
