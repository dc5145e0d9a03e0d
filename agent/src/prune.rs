//! Executes a prune plan: find used blobs, plan (pure, in `repo-format`), copy the
//! used blobs of repacked packs into new packs, write a new index covering every pack
//! that stays, delete the old index files, and only then delete packs.
//!
//! Invariant: at every moment the index on the backend names a copy of every blob a
//! snapshot uses, so an interruption (even SIGKILL) leaves a repository that passes
//! `check`; at worst unreferenced packs remain for the next prune.
//! The caller holds an exclusive lock.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use futures::{stream, StreamExt, TryStreamExt};
use stash_repo_format::{
    blob::{self, BlobType},
    file_type::FileType,
    index::{IndexBlob, IndexLookup, IndexLookupBuilder, IndexPack},
    pack::{self, PackedBlob},
    prune::{plan, PruneOptions, PrunePlan},
    Id,
};

use crate::{
    error::{Error, Result},
    repository::{blob_saver::write_index, tree_packs::TreePacks, BlobSaver, Repository},
};

/// Blobs per index file written by prune (restic's flush size).
const INDEX_BLOBS_PER_FILE: usize = 50_000;

/// What prune did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    /// The plan's totals.
    pub stats: stash_repo_format::prune::PruneStats,
    /// Packs deleted (unused, repacked, unreferenced).
    pub packs_deleted: u64,
    /// Packs repacked.
    pub packs_repacked: u64,
    /// New packs written by repacking.
    pub packs_written: u64,
    /// Index files replaced.
    pub index_files_replaced: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Every blob reachable from any snapshot.
///
/// # Errors
/// Any tree that cannot be loaded: pruning without knowing every used blob could
/// delete data.
pub async fn used_blobs(repo: &Repository, index: &IndexLookup) -> Result<HashSet<(BlobType, Id)>> {
    let snaps = repo.snapshots().await?;
    let mut used = HashSet::new();
    let mut stack: Vec<Id> = Vec::new();
    for (sid, s) in &snaps {
        stack.push(
            s.tree
                .ok_or_else(|| Error::Snapshot(format!("{sid} has no tree")))?,
        );
    }
    let trees = TreePacks::new(repo);
    while let Some(id) = stack.pop() {
        if !used.insert((BlobType::Tree, id)) {
            continue;
        }
        let tree = trees.read_tree(index, &id).await?;
        for n in tree.nodes {
            for b in n.content.into_iter().flatten() {
                used.insert((BlobType::Data, b));
            }
            if let Some(s) = n.subtree {
                stack.push(s);
            }
        }
    }
    Ok(used)
}

/// Plans and (unless `dry_run`) executes a prune.
///
/// # Errors
/// Planning refusals ([`Error::Check`]), backend errors, or a blob to repack that
/// fails verification (nothing is deleted then).
pub async fn prune(
    repo: &Repository,
    opts: &PruneOptions,
    dry_run: bool,
) -> Result<(PrunePlan, PruneReport)> {
    prune_when(repo, opts, dry_run, async { Ok(()) }).await
}

/// As [`prune`], changing nothing before `ready` resolves: the caller's lock
/// re-check overlaps loading the index and walking the snapshots.
///
/// # Errors
/// As [`prune`], or `ready`'s error.
pub async fn prune_when(
    repo: &Repository,
    opts: &PruneOptions,
    dry_run: bool,
    ready: impl std::future::Future<Output = Result<()>>,
) -> Result<(PrunePlan, PruneReport)> {
    let files = repo.load_index_files().await?;
    let mut seen = HashSet::new();
    let mut indexed: Vec<(Id, Vec<PackedBlob>)> = Vec::new();
    for (_, f) in &files {
        for p in &f.packs {
            if seen.insert(p.id) {
                indexed.push((p.id, p.blobs.iter().map(PackedBlob::from).collect()));
            }
        }
    }
    // Keep only the ids of the parsed index files: the blobs live on in `indexed`.
    let old_index_files: Vec<Id> = files.iter().map(|(id, _)| *id).collect();
    drop(files);
    let index = {
        let mut b = IndexLookupBuilder::default();
        for (pack, blobs) in &indexed {
            let entries: Vec<IndexBlob> = blobs.iter().map(IndexBlob::from).collect();
            b.add_pack(*pack, &entries);
        }
        b.build()
    };
    let on_disk: HashMap<Id, u64> = repo
        .backend()
        .list(FileType::Pack)
        .await?
        .into_iter()
        .collect();
    let used = used_blobs(repo, &index).await?;
    let mut opts = *opts;
    opts.compression = repo.compression().is_some();
    let plan = plan(&indexed, &on_disk, &used, &opts).map_err(|e| Error::Check(e.to_string()))?;
    ready.await?;
    let mut report = PruneReport {
        stats: plan.stats,
        dry_run,
        ..Default::default()
    };
    if dry_run || plan.is_noop() {
        return Ok((plan, report));
    }

    // 1. Repack: copy used blobs into new packs (indexed by the saver as they land).
    let saver = BlobSaver::new(repo, Arc::new(IndexLookup::default()), repo.pack_size());
    let copied = repack(repo, &plan, &saver).await;
    let (saver_stats, new_index_files) = saver.finish().await?;
    copied?;
    report.packs_repacked = plan.repack.len() as u64;
    report.packs_written = saver_stats.packs;

    // 2. New index for every pack that stays; then drop the old index files.
    let gone: HashSet<Id> = plan
        .delete
        .iter()
        .chain(plan.repack.iter().map(|(id, _)| id))
        .chain(plan.missing_unneeded.iter())
        .copied()
        .collect();
    let keep: Vec<IndexPack> = indexed
        .iter()
        .filter(|(id, _)| !gone.contains(id))
        .map(|(id, blobs)| IndexPack {
            id: *id,
            blobs: blobs.iter().map(IndexBlob::from).collect(),
        })
        .collect();
    let mut batch = Vec::new();
    let mut count = 0;
    for p in keep {
        count += p.blobs.len();
        batch.push(p);
        if count >= INDEX_BLOBS_PER_FILE {
            write_index(repo, std::mem::take(&mut batch)).await?;
            count = 0;
        }
    }
    if !batch.is_empty() {
        write_index(repo, batch).await?;
    }
    let old: Vec<Id> = old_index_files
        .into_iter()
        .filter(|id| !new_index_files.contains(id))
        .collect();
    repo.remove_all(FileType::Index, &old).await?;
    report.index_files_replaced = old.len() as u64;

    // 3. Only now delete packs.
    let mut doomed: Vec<Id> = plan.delete.clone();
    doomed.extend(plan.repack.iter().map(|(id, _)| *id));
    doomed.extend(plan.unreferenced.iter().copied());
    repo.remove_all(FileType::Pack, &doomed).await?;
    report.packs_deleted = doomed.len() as u64;
    Ok((plan, report))
}

async fn repack(repo: &Repository, plan: &PrunePlan, saver: &BlobSaver) -> Result<()> {
    stream::iter(plan.repack.iter())
        .map(|(pack, blobs)| async move {
            let bytes = repo.backend().read(FileType::Pack, pack, None).await?;
            let key = repo.key().clone();
            let blobs = blobs.clone();
            let pack = *pack;
            let saver = saver.clone();
            // Decoding and re-encoding is CPU work; saving may block on the upload queue.
            tokio::task::spawn_blocking(move || -> Result<()> {
                for b in &blobs {
                    let range = pack::blob_range(u64::from(b.offset), b.length, bytes.len())
                        .map_err(|source| Error::BadBlob {
                            ty: b.ty.as_str(),
                            id: b.id,
                            pack,
                            source,
                        })?;
                    let sealed = &bytes[range];
                    let plain = blob::decode(&key, &b.id, sealed, b.uncompressed_length).map_err(
                        |source| Error::BadBlob {
                            ty: b.ty.as_str(),
                            id: b.id,
                            pack,
                            source,
                        },
                    )?;
                    saver.save_with_id(b.ty, b.id, &plain)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::Usage(format!("repack task: {e}")))?
        })
        .buffer_unordered(2)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}
