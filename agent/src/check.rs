//! Repository consistency check, as restic's `check`: index files load, every indexed
//! pack exists with the size its index entries imply, every snapshot's trees load and
//! every blob they reference is indexed; with `read_data`, every pack is read and
//! hashed, its header compared with the index, and every blob verified and decoded.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use serde::Serialize;
use stash_repo_format::{
    blob::BlobType,
    file_type::FileType,
    index::IndexLookup,
    key::KeyFile,
    node::NodeType,
    pack::{self, PackedBlob},
    Id,
};

mod order;
mod read_data;
mod verify;

use order::{largest_first, read_order};
use read_data::{read_packs, LANES};

use crate::{
    backend::Backend,
    error::{Error, Result},
    repository::{index_load::build_lookup, tree_packs::TreePacks, Repository},
};

/// Which packs to read with `--read-data`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    /// Structure only.
    None,
    /// Every pack.
    All,
    /// Subset `n` of `t` (1-based), by pack id.
    Subset(u32, u32),
    /// A percentage of packs, chosen at random.
    Percent(f64),
}

/// Findings.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// Errors: the repository is damaged.
    pub errors: Vec<String>,
    /// Hints: unusual but harmless (orphaned packs, unused blobs).
    pub hints: Vec<String>,
    /// Packs whose data failed verification.
    pub damaged_packs: Vec<Id>,
    /// Snapshots that reference missing or damaged data.
    pub damaged_snapshots: Vec<Id>,
    /// Packs read.
    pub packs_read: u64,
    /// Snapshots checked.
    pub snapshots: u64,
}

/// Progress reporting hook.
pub type OnPack = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Runs the check.
///
/// # Errors
/// Only failures to run it at all (locking, listing); damage goes into the report.
pub async fn check(
    repo: &Repository,
    read_data: ReadData,
    on_pack: Option<OnPack>,
) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    r.errors.extend(damaged_keys(repo).await?);
    // Index.
    let mut files = Vec::new();
    for id in repo.index_ids().await? {
        match repo
            .load_json_bytes(FileType::Index, &id)
            .await
            .and_then(|b| {
                stash_repo_format::index::IndexFile::from_json(&b)
                    .map_err(|e| Error::damaged(FileType::Index, id, e))
            }) {
            Ok(f) => files.push((id, f)),
            Err(e) => r.errors.push(format!("index {id}: {e}")),
        }
    }
    let mut indexed: HashMap<Id, Vec<PackedBlob>> = HashMap::new();
    for (_, f) in &files {
        for p in &f.packs {
            if indexed.contains_key(&p.id) {
                r.hints.push(format!(
                    "pack {} is listed in several index files",
                    p.id.short()
                ));
                continue;
            }
            indexed.insert(p.id, p.blobs.iter().map(PackedBlob::from).collect());
        }
    }
    let files = Arc::new(files);
    let f2 = files.clone();
    let index: Arc<IndexLookup> = Arc::new(crate::cpu::spawn(move || build_lookup(&f2)).await);

    // Packs.
    let on_disk: HashMap<Id, u64> = repo
        .backend()
        .list(FileType::Pack)
        .await?
        .into_iter()
        .collect();
    let mut bad_packs: HashSet<Id> = HashSet::new();
    for (id, blobs) in &indexed {
        match on_disk.get(id) {
            None => {
                r.errors.push(format!("pack {id}: does not exist"));
                bad_packs.insert(*id);
            }
            Some(&size) => {
                let want = pack::expected_size(blobs);
                if size != want {
                    r.errors.push(format!("pack {id}: size {size} does not match the {want} bytes its index entries imply"));
                    bad_packs.insert(*id);
                }
                if let Some(e) = entries_past_the_data(*id, size, blobs) {
                    r.errors.push(e);
                    bad_packs.insert(*id);
                }
                let mixed = blobs.iter().any(|b| b.ty == BlobType::Data)
                    && blobs.iter().any(|b| b.ty == BlobType::Tree);
                if mixed {
                    r.hints
                        .push(format!("pack {} mixes data and tree blobs", id.short()));
                }
            }
        }
    }
    for id in on_disk.keys() {
        if !indexed.contains_key(id) {
            r.hints.push(format!(
                "pack {} is not referenced by any index (orphaned)",
                id.short()
            ));
        }
    }

    // Data, read while the trees are walked: the walk is latency bound, reading
    // and verifying packs keeps the cores busy meanwhile.
    let mut to_read: Vec<Id> = indexed
        .keys()
        .filter(|id| !bad_packs.contains(id))
        .copied()
        .collect();
    to_read.sort();
    let to_read = read_order(select(to_read, read_data), LANES, &on_disk, &indexed);
    let total = to_read.len() as u64;
    let to_read = to_read
        .into_iter()
        .map(|id| (id, on_disk.get(&id).copied().unwrap_or(0)))
        .collect();
    let indexed = Arc::new(indexed);
    let reading = read_packs(repo, to_read, indexed, on_pack);

    // Snapshots and trees, on a task of their own: decoding trees is CPU work
    // between awaits, and on this task it would hold back the pack reads'
    // completions (the reads finished 40 ms later than they could).
    let walking = {
        let repo = repo.clone();
        let index = index.clone();
        tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut damaged = Vec::new();
            let (snaps, bad) = repo.snapshots_with_errors().await?;
            for e in bad {
                errors.push(e.to_string());
            }
            let mut used: HashSet<(BlobType, Id)> = HashSet::new();
            let mut tree_ok: HashMap<Id, bool> = HashMap::new();
            for (sid, snap) in &snaps {
                let ok = match snap.tree {
                    Some(t) => {
                        let root = (*sid, t);
                        walk(&repo, &index, root, &mut used, &mut tree_ok, &mut errors).await
                    }
                    None => {
                        errors.push(format!("snapshot {sid}: has no tree"));
                        false
                    }
                };
                if !ok {
                    damaged.push(*sid);
                }
            }
            Ok::<_, Error>((snaps, used, errors, damaged))
        })
    };
    let walking = async {
        match walking.await {
            Ok(walked) => walked,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    };
    let (walked, results) = tokio::join!(walking, reading);
    let (snaps, used, errors, damaged) = walked?;
    r.errors.extend(errors);
    r.damaged_snapshots = damaged;
    r.snapshots = snaps.len() as u64;
    let unused = index
        .iter()
        .filter(|(t, id, _)| !used.contains(&(*t, *id)))
        .count();
    if unused > 0 {
        r.hints.push(format!(
            "{unused} blobs are not referenced by any snapshot (prune removes them)"
        ));
    }
    r.packs_read = total;
    for (id, errs) in results {
        if !errs.is_empty() {
            bad_packs.insert(id);
            r.errors.extend(errs);
        }
    }
    // Missing, wrong-sized and unreadable packs alike: name them and the snapshots
    // whose data lives only in them.
    r.damaged_packs = bad_packs.iter().copied().collect();
    if !r.damaged_packs.is_empty() {
        let damaged: HashSet<Id> = bad_packs;
        for (sid, snap) in &snaps {
            if r.damaged_snapshots.contains(sid) {
                continue;
            }
            let mut seen = HashSet::new();
            let Some(t) = snap.tree else { continue };
            if uses_packs(repo, &index, t, &damaged, &mut seen).await {
                r.damaged_snapshots.push(*sid);
            }
        }
        r.damaged_packs.sort();
    }
    Ok(r)
}

/// The index entries of a pack of `size` bytes that end past its blobs' bytes (the
/// pack less its header), as one error naming the first: an entry pointing there
/// (a damaged or hostile index) keeps the pack's size right and is otherwise found
/// only by reading the pack.
fn entries_past_the_data(id: Id, size: u64, blobs: &[PackedBlob]) -> Option<String> {
    let data = size.saturating_sub(pack::header_size(blobs));
    let mut past = blobs
        .iter()
        .filter(|b| u64::from(b.offset) + u64::from(b.length) > data);
    let first = past.next()?;
    let more = match past.count() {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    };
    Some(format!(
        "pack {id}: index entry for {} blob {} at offset {} of length {} ends past the \
         {data} bytes of blobs in the {size}-byte pack{more}",
        first.ty, first.id, first.offset, first.length
    ))
}

/// Errors for the key files that do not parse. Only their JSON is read: a key is
/// opened only with its password, and one key scrypt takes a fraction of a second.
async fn damaged_keys(repo: &Repository) -> Result<Vec<String>> {
    let mut errors = Vec::new();
    for (id, _) in repo.backend().list(FileType::Key).await? {
        let parsed = match repo.backend().read(FileType::Key, &id, None).await {
            Ok(bytes) => KeyFile::from_bytes(&bytes)
                .map(drop)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = parsed {
            errors.push(format!("key {id}: {e}"));
        }
    }
    Ok(errors)
}

/// Bytes of packs hinted to the device while the key is derived: about what a
/// disk reads in the 0.2-0.6 s scrypt takes at restic's cost. They wait in the
/// page cache (reclaimable, not this process's memory) instead of the cores
/// waiting for them: a check of 600 MB of 17 MiB packs went from 1.085 s with 3
/// packs hinted to 1.02 s with 9 (this budget hints 8).
const WARM_BYTES: u64 = 128 << 20;

/// Hints to the backend that the largest packs will be read, so that a local
/// repository's first packs come off the disk while the caller is still deriving
/// the key (nothing here needs it). [`check`] reads the largest first and the
/// rest in an order that mixes them ([`order::read_order`]); either way, a hinted
/// pack is read from the page cache when its turn comes. `ReadData::Percent`
/// picks at random, so nothing is hinted for it.
pub async fn warm_first_packs(backend: &dyn Backend, how: ReadData) {
    if matches!(how, ReadData::None | ReadData::Percent(_)) || !backend.takes_read_hints() {
        return;
    }
    let Ok(listed) = backend.list(FileType::Pack).await else {
        return;
    };
    let sizes: HashMap<Id, u64> = listed.into_iter().collect();
    let mut packs: Vec<Id> = sizes.keys().copied().collect();
    packs.sort();
    let mut packs = select(packs, how);
    largest_first(&mut packs, &sizes);
    let mut hinted = 0;
    for id in &packs {
        if hinted >= WARM_BYTES {
            break;
        }
        backend.will_read(FileType::Pack, id).await;
        hinted += sizes.get(id).copied().unwrap_or(0);
    }
}

fn select(mut packs: Vec<Id>, how: ReadData) -> Vec<Id> {
    match how {
        ReadData::None => Vec::new(),
        ReadData::All => packs,
        ReadData::Subset(n, t) => packs
            .into_iter()
            .filter(|id| u32::from(id.0[0]) % t == (n - 1) % t)
            .collect(),
        ReadData::Percent(p) => {
            use rand::seq::SliceRandom;
            packs.shuffle(&mut rand::thread_rng());
            let k = ((packs.len() as f64) * p / 100.0).ceil() as usize;
            packs.truncate(k.min(packs.len()));
            packs
        }
    }
}

/// Walks a snapshot's tree; returns false if anything below it is missing or
/// damaged. A root tree that does not load is reported with the snapshot naming it.
async fn walk(
    repo: &Repository,
    index: &IndexLookup,
    (snapshot, root): (Id, Id),
    used: &mut HashSet<(BlobType, Id)>,
    tree_ok: &mut HashMap<Id, bool>,
    errors: &mut Vec<String>,
) -> bool {
    // Iterative post-order is not needed: a tree's verdict is only cached once
    // computed; a DAG revisit of an unfinished tree cannot happen (no cycles).
    let mut ok = true;
    let mut stack = vec![root];
    let trees = TreePacks::new(repo);
    while let Some(id) = stack.pop() {
        if let Some(&v) = tree_ok.get(&id) {
            ok &= v;
            continue;
        }
        used.insert((BlobType::Tree, id));
        let tree = match trees.read_tree(index, &id).await {
            Ok(t) => t,
            Err(e) => {
                errors.push(if id == root {
                    format!("snapshot {snapshot}: root tree {id}: {e}")
                } else {
                    format!("tree {id}: {e}")
                });
                tree_ok.insert(id, false);
                ok = false;
                continue;
            }
        };
        let mut this_ok = true;
        for n in &tree.nodes {
            let name = String::from_utf8_lossy(&n.name);
            if n.name.is_empty() {
                errors.push(format!("tree {id}: node with an empty name"));
                this_ok = false;
            }
            match n.node_type {
                NodeType::File => match &n.content {
                    None => {
                        errors.push(format!("tree {id}: file {name:?} has no content list"));
                        this_ok = false;
                    }
                    Some(c) => {
                        for b in c {
                            used.insert((BlobType::Data, *b));
                            if !index.contains(BlobType::Data, b) {
                                errors.push(format!("tree {id}: file {name:?}: data blob {b} not found in the index"));
                                this_ok = false;
                            }
                        }
                    }
                },
                NodeType::Dir => match n.subtree {
                    Some(s) if !s.is_null() => stack.push(s),
                    _ => {
                        errors.push(format!("tree {id}: directory {name:?} has no subtree"));
                        this_ok = false;
                    }
                },
                NodeType::Symlink
                | NodeType::Dev
                | NodeType::CharDev
                | NodeType::Fifo
                | NodeType::Socket => {}
                ref other => {
                    errors.push(format!(
                        "tree {id}: node {name:?} has invalid type {other:?}"
                    ));
                    this_ok = false;
                }
            }
        }
        tree_ok.insert(id, this_ok);
        ok &= this_ok;
    }
    ok
}

async fn uses_packs(
    repo: &Repository,
    index: &IndexLookup,
    root: Id,
    damaged: &HashSet<Id>,
    seen: &mut HashSet<Id>,
) -> bool {
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if index
            .get_all(BlobType::Tree, &id)
            .iter()
            .all(|l| damaged.contains(&l.pack))
        {
            return true;
        }
        let Ok(tree) = repo.read_tree(index, &id).await else {
            return true;
        };
        for n in &tree.nodes {
            for b in n.content.iter().flatten() {
                let locs = index.get_all(BlobType::Data, b);
                if !locs.is_empty() && locs.iter().all(|l| damaged.contains(&l.pack)) {
                    return true;
                }
            }
            if let Some(s) = n.subtree {
                stack.push(s);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index entries lying past a pack's blob bytes are reported once per pack,
    /// naming the first, the pack and the bytes there are; offsets near 4 GiB do not
    /// overflow.
    #[test]
    fn index_entries_past_the_blob_bytes_are_named() {
        let blob = |n: u8, offset: u32, length: u32| PackedBlob {
            ty: BlobType::Tree,
            id: Id([n; 32]),
            offset,
            length,
            uncompressed_length: None,
        };
        let pack = Id([9; 32]);
        let mut blobs = vec![blob(1, 0, 100), blob(2, 100, 50)];
        let size = pack::expected_size(&blobs);
        assert_eq!(entries_past_the_data(pack, size, &blobs), None);
        blobs[1].offset = u32::MAX;
        blobs.push(blob(3, 150, u32::MAX));
        let e = entries_past_the_data(pack, size, &blobs).unwrap();
        assert!(e.starts_with(&format!("pack {pack}: ")), "{e}");
        let data = size - pack::header_size(&blobs);
        assert!(
            e.contains(&format!(
                "tree blob {} at offset {} of length 50 ends past the {data} bytes",
                Id([2; 32]),
                u32::MAX
            )),
            "{e}"
        );
        assert!(e.ends_with("(and 1 more)"), "{e}");
        assert!(entries_past_the_data(pack, 10, &blobs[..1]).is_some());
    }
}
