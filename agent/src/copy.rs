//! `copy`: snapshots from one repository into another, with every tree and data blob
//! the destination lacks, as restic copies them: blobs keep their ids (read and
//! verified from the source, stored again under the destination's key and
//! compression), the copy names its source as `original` and has no parent, and a
//! snapshot the destination already has a copy of (same original, same fields) is
//! skipped, so running a copy again copies only what is new. Into a repository
//! that cuts files differently, files are cut again ([`rechunk`]).

mod rechunk;

use std::{collections::HashSet, sync::Arc};

use futures::{stream, StreamExt};
use stash_repo_format::{
    blob::BlobType, file_type::FileType, index::IndexLookup, node::NodeType, snapshot::Snapshot, Id,
};

use crate::{
    error::{Error, Result},
    repository::{blob_saver::BlobSaver, tree_packs::TreePacks, Repository},
};

/// Blobs read from the source at once.
const CONCURRENCY: usize = 8;

/// What happened to one source snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    /// Saved in the destination as this snapshot.
    To(Id),
    /// The destination has a copy already.
    Already(Id),
}

/// Totals of a copy.
#[derive(Debug, Clone, Default)]
pub struct CopyStats {
    pub blobs: u64,
    pub bytes: u64,
}

/// Whether two snapshots are copies of each other: everything but parent and
/// original equal (restic's rule); the tree only with `same_tree` (a copy cut
/// again has a tree of its own).
pub fn similar(a: &Snapshot, b: &Snapshot, same_tree: bool) -> bool {
    fn set(v: &[String]) -> HashSet<&String> {
        v.iter().collect()
    }
    a.time.datetime() == b.time.datetime()
        && (!same_tree || a.tree == b.tree)
        && a.hostname == b.hostname
        && a.username == b.username
        && a.uid == b.uid
        && a.gid == b.gid
        && a.paths.len() == b.paths.len()
        && set(&a.paths) == set(&b.paths)
        && a.tags.len() == b.tags.len()
        && set(&a.tags) == set(&b.tags)
        && a.excludes == b.excludes
}

/// Copies `snapshots` of `src` into `dst` (see the module docs), calling `report`
/// as each is done. Takes shared locks on both.
///
/// # Errors
/// Lock conflicts, backend errors, and blobs missing or damaged in the source.
pub async fn copy_snapshots(
    src: &Repository,
    dst: &Repository,
    snapshots: Vec<(Id, Snapshot)>,
    mut report: impl FnMut(&Id, &Copied),
) -> Result<CopyStats> {
    let src_lock = src.lock(false).await?;
    let dst_lock = match dst.lock(false).await {
        Ok(l) => l,
        Err(e) => {
            let _ = src_lock.release().await;
            return Err(e);
        }
    };
    let res = run(src, dst, snapshots, &mut report).await;
    let (a, b) = (src_lock.release().await, dst_lock.release().await);
    let stats = res?;
    a?;
    b?;
    Ok(stats)
}

async fn run(
    src: &Repository,
    dst: &Repository,
    snapshots: Vec<(Id, Snapshot)>,
    report: &mut impl FnMut(&Id, &Copied),
) -> Result<CopyStats> {
    let src_index = src.load_index().await?;
    let dst_index = Arc::new(dst.load_index().await?);
    let existing = dst.snapshots().await?;
    let trees = TreePacks::new(src);
    let mut rechunker =
        rechunk::target(src, dst)?.map(|kind| rechunk::Rechunker::new(src, &src_index, kind));
    // Trees walked and data blobs taken, over all snapshots.
    let mut visited = (HashSet::new(), HashSet::new());
    let mut stats = CopyStats::default();
    for (id, snap) in snapshots {
        let original = snap.original.unwrap_or(id);
        let copy_of = existing.iter().find(|(did, d)| {
            (d.original == Some(original) || *did == original)
                && similar(d, &snap, rechunker.is_none())
        });
        if let Some((did, _)) = copy_of {
            report(&id, &Copied::Already(*did));
            continue;
        }
        let root = snap
            .tree
            .ok_or_else(|| Error::Snapshot(format!("{id} has no tree")))?;
        if let Some(rechunker) = rechunker.as_mut() {
            let saver = BlobSaver::new(dst, dst_index.clone(), dst.pack_size());
            let new_root = rechunker.tree(root, &saver).await;
            let finished = saver.finish().await;
            let new_root = new_root?;
            finished?;
            let mut s = snap;
            s.tree = Some(new_root);
            s.parent = None;
            s.original = Some(original);
            let new_id = dst.save_json(FileType::Snapshot, &s).await?;
            report(&id, &Copied::To(new_id));
            continue;
        }
        // Trees walked for an earlier snapshot had their blobs copied then.
        let wanted = missing_blobs(&trees, &src_index, &dst_index, root, &mut visited).await?;
        // A saver ends with its index written: the snapshot may name its blobs only
        // once they are indexed, so each snapshot gets its own.
        let saver = BlobSaver::new(dst, dst_index.clone(), dst.pack_size());
        let got = transfer(src, &src_index, &saver, wanted).await;
        let finished = saver.finish().await;
        let got = got?;
        finished?;
        stats.blobs += got.blobs;
        stats.bytes += got.bytes;
        let mut s = snap;
        s.parent = None;
        s.original = Some(original);
        let new_id = dst.save_json(FileType::Snapshot, &s).await?;
        report(&id, &Copied::To(new_id));
    }
    if let Some(r) = rechunker {
        stats.blobs += r.stats.blobs;
        stats.bytes += r.stats.bytes;
    }
    Ok(stats)
}

/// The blobs below `root` the destination lacks, trees first; trees in `visited`
/// (walked for an earlier snapshot, their blobs copied since) are not walked again.
async fn missing_blobs(
    trees: &TreePacks,
    src_index: &IndexLookup,
    dst_index: &IndexLookup,
    root: Id,
    visited: &mut (HashSet<Id>, HashSet<Id>),
) -> Result<Vec<(BlobType, Id)>> {
    let (visited, seen_data) = visited;
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !visited.insert(id) {
            continue;
        }
        if !dst_index.contains(BlobType::Tree, &id) {
            out.push((BlobType::Tree, id));
        }
        let tree = trees.read_tree(src_index, &id).await?;
        for n in &tree.nodes {
            for d in n.content.iter().flatten() {
                if !dst_index.contains(BlobType::Data, d) && seen_data.insert(*d) {
                    out.push((BlobType::Data, *d));
                }
            }
            if let (NodeType::Dir, Some(sub)) = (&n.node_type, n.subtree) {
                stack.push(sub);
            }
        }
    }
    Ok(out)
}

/// Reads each blob from the source and stores it in the destination.
async fn transfer(
    src: &Repository,
    src_index: &IndexLookup,
    saver: &BlobSaver,
    blobs: Vec<(BlobType, Id)>,
) -> Result<CopyStats> {
    let mut stats = CopyStats::default();
    let mut reads = stream::iter(blobs)
        .map(|(ty, id)| async move { (ty, id, src.read_blob(src_index, ty, &id).await) })
        .buffered(CONCURRENCY);
    while let Some((ty, id, plain)) = reads.next().await {
        let plain = plain?;
        let s = saver.clone();
        let len = plain.len() as u64;
        let saved = tokio::task::spawn_blocking(move || s.save_with_id(ty, id, &plain))
            .await
            .map_err(|e| Error::Usage(format!("copy task: {e}")))??;
        if saved.new {
            stats.blobs += 1;
            stats.bytes += len;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stash_repo_format::gotime::GoTime;

    #[test]
    fn copies_are_recognised_by_their_fields() {
        let t = GoTime::parse("2026-01-02T03:04:05Z").unwrap();
        let mut a = Snapshot::new(t, Id([1; 32]), vec!["/a".into(), "/b".into()]);
        a.hostname = "h".into();
        a.tags = vec!["x".into(), "y".into()];
        let mut b = a.clone();
        b.paths.reverse();
        b.tags.reverse();
        b.parent = Some(Id([9; 32]));
        b.original = Some(Id([8; 32]));
        assert!(similar(&a, &b, true));
        b.tree = Some(Id([7; 32]));
        assert!(!similar(&a, &b, true));
        assert!(similar(&a, &b, false), "a copy cut again has its own tree");
        b.hostname = "other".into();
        assert!(!similar(&a, &b, false));
    }
}
