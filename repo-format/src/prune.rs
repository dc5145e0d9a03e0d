//! The prune planner: from the index, the packs on the backend and the set of blobs
//! snapshots use, decide which packs to delete, which to repack and which to keep.
//! Pure; the agent executes the plan (repack, write the new index, then delete).
//!
//! Rules (restic's): a pack with no used blob is deleted; a pack no index names is
//! deleted; a partly used pack is a repack candidate, and so is (in v2) a pack with
//! uncompressed blobs when asked, and any pack mixing data and tree blobs. Tree packs
//! and forced candidates are always repacked; data packs are repacked in order of
//! their unused/used ratio until the unused space left is within `max_unused`.
//! Small packs (below 4% of the target pack size, or 80% with `repack_small`) are
//! repacked whatever the unused space, a fully used one only when there are at least
//! ten of them (fewer are not worth the trouble, and a single small pack would be
//! repacked on every run).
//! When a blob is stored in several packs exactly one copy counts as used. A pack whose
//! size disagrees with its index, or a missing pack that holds needed blobs, stops
//! the plan: deleting anything then could lose data.

use std::collections::{HashMap, HashSet};

use crate::{
    blob::BlobType,
    id::Id,
    pack::{expected_size, PackedBlob},
};

/// How much unused space may remain after pruning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxUnused {
    /// A percentage of the used size (restic's `5%` default).
    Percent(f64),
    /// An absolute number of bytes.
    Bytes(u64),
    /// Do not repack for unused space.
    Unlimited,
}

impl MaxUnused {
    /// Parses `5%`, `100M`, `2G`, `unlimited`.
    ///
    /// # Errors
    /// A message naming the bad value.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "unlimited" {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p
                .parse()
                .map_err(|_| format!("invalid --max-unused {s:?}"))?;
            if !(0.0..100.0).contains(&v) {
                return Err(format!(
                    "--max-unused {s:?}: percentage must be in [0, 100)"
                ));
            }
            return Ok(MaxUnused::Percent(v));
        }
        parse_size(s)
            .map(MaxUnused::Bytes)
            .ok_or_else(|| format!("invalid --max-unused {s:?}"))
    }

    fn limit(self, used: u64) -> u64 {
        match self {
            // restic: p / (100 - p) of the used size, so that unused/(used+unused) <= p%.
            MaxUnused::Percent(p) => (p / (100.0 - p) * used as f64) as u64,
            MaxUnused::Bytes(b) => b,
            MaxUnused::Unlimited => u64::MAX,
        }
    }
}

/// Parses sizes like `500`, `10K`, `100M`, `2G`, `1T` (binary units).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        't' | 'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Planner options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneOptions {
    /// Unused space allowed to remain.
    pub max_unused: MaxUnused,
    /// Stop choosing repacks beyond this many bytes (None: no limit).
    pub max_repack_bytes: Option<u64>,
    /// Repack packs holding uncompressed blobs (v2 only).
    pub repack_uncompressed: bool,
    /// The repository compresses (version 2).
    pub compression: bool,
    /// Target pack size in bytes: what counts as a small pack is a share of it.
    pub pack_size: u64,
    /// Count packs below 80% of `pack_size` as small, not only those below 4%
    /// (restic's `--repack-small`).
    pub repack_small: bool,
    /// Repack only packs holding trees (restic's `--repack-cacheable-only`).
    pub repack_cacheable_only: bool,
}

impl PruneOptions {
    /// Packs smaller than this are small (restic's integer arithmetic).
    pub fn small_pack_limit(&self) -> u64 {
        if self.repack_small {
            self.pack_size / 5 * 4
        } else {
            self.pack_size / 25
        }
    }
}

/// Fully used small packs repacked only when at least this many.
const MIN_SMALL_PACKS: usize = 10;

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: MaxUnused::Percent(5.0),
            max_repack_bytes: None,
            repack_uncompressed: false,
            compression: true,
            pack_size: 16 << 20,
            repack_small: false,
            repack_cacheable_only: false,
        }
    }
}

/// Why the planner refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An indexed pack's real size differs from its index entries.
    #[error("pack {pack}: size {actual} differs from the {expected} bytes the index implies; run `check` and repair the index first")]
    SizeMismatch {
        /// The pack.
        pack: Id,
        /// Real size.
        actual: u64,
        /// Size from the index.
        expected: u64,
    },
    /// A pack holding needed blobs is missing.
    #[error(
        "pack {pack} is missing but holds {blobs} blobs that snapshots use; refusing to prune"
    )]
    MissingNeeded {
        /// The pack.
        pack: Id,
        /// Needed blobs in it.
        blobs: usize,
    },
    /// A used blob is not in any pack.
    #[error("{ty} blob {id} is used by a snapshot but not in the index; refusing to prune")]
    MissingBlob {
        /// Blob type.
        ty: BlobType,
        /// Blob id.
        id: Id,
    },
}

/// Totals for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneStats {
    /// Used blobs.
    pub used_blobs: u64,
    /// Bytes of used blobs (stored size).
    pub used_bytes: u64,
    /// Unused blobs (duplicates included).
    pub unused_blobs: u64,
    /// Bytes of unused blobs.
    pub unused_bytes: u64,
    /// Bytes of used blobs copied by repacking.
    pub repack_bytes: u64,
    /// Unused bytes freed by deleting and repacking.
    pub freed_bytes: u64,
    /// Unused bytes that remain.
    pub unused_after: u64,
}

/// The decisions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrunePlan {
    /// Indexed packs with no used blob.
    pub delete: Vec<Id>,
    /// Packs on the backend no index names.
    pub unreferenced: Vec<Id>,
    /// Packs to rewrite, with the used blobs to copy out of each.
    pub repack: Vec<(Id, Vec<PackedBlob>)>,
    /// Indexed packs that stay as they are.
    pub keep: Vec<Id>,
    /// Indexed packs that are missing but hold nothing needed (dropped from the index).
    pub missing_unneeded: Vec<Id>,
    /// Totals.
    pub stats: PruneStats,
}

impl PrunePlan {
    /// Whether nothing would change.
    pub fn is_noop(&self) -> bool {
        self.delete.is_empty()
            && self.unreferenced.is_empty()
            && self.repack.is_empty()
            && self.missing_unneeded.is_empty()
    }
}

/// Plans a prune.
///
/// `indexed` lists each indexed pack once with its blobs; `on_disk` maps every pack
/// file on the backend to its size; `used` is every blob a snapshot references.
///
/// # Errors
/// [`PlanError`] when pruning could lose data.
pub fn plan(
    indexed: &[(Id, Vec<PackedBlob>)],
    on_disk: &HashMap<Id, u64>,
    used: &HashSet<(BlobType, Id)>,
    opts: &PruneOptions,
) -> Result<PrunePlan, PlanError> {
    let mut p = PrunePlan::default();
    // Claim one copy of each used blob, preferring packs that exist.
    let mut claimed: HashSet<(BlobType, Id)> = HashSet::with_capacity(used.len());
    let mut order: Vec<&(Id, Vec<PackedBlob>)> = indexed.iter().collect();
    order.sort_by_key(|(id, _)| (!on_disk.contains_key(id), *id));
    struct Class<'a> {
        id: Id,
        size: u64,
        used: Vec<PackedBlob>,
        used_bytes: u64,
        unused_bytes: u64,
        tree: bool,
        mixed: bool,
        uncompressed: bool,
        _blobs: &'a [PackedBlob],
    }
    let mut classes = Vec::with_capacity(order.len());
    for (id, blobs) in order {
        let mut c = Class {
            id: *id,
            size: on_disk.get(id).copied().unwrap_or(0),
            used: Vec::new(),
            used_bytes: 0,
            unused_bytes: 0,
            tree: blobs.iter().any(|b| b.ty == BlobType::Tree),
            mixed: blobs.iter().any(|b| b.ty == BlobType::Tree)
                && blobs.iter().any(|b| b.ty == BlobType::Data),
            uncompressed: blobs
                .iter()
                .any(|b| b.uncompressed_length.is_none() && b.length > 32),
            _blobs: blobs,
        };
        let exists = on_disk.get(id);
        for b in blobs {
            let key = (b.ty, b.id);
            if exists.is_some() && used.contains(&key) && claimed.insert(key) {
                c.used.push(*b);
                c.used_bytes += u64::from(b.length);
            } else {
                c.unused_bytes += u64::from(b.length);
            }
        }
        match exists {
            None => {
                p.missing_unneeded.push(*id);
                continue;
            }
            Some(&size) => {
                let want = expected_size(blobs);
                if size != want {
                    return Err(PlanError::SizeMismatch {
                        pack: *id,
                        actual: size,
                        expected: want,
                    });
                }
            }
        }
        classes.push(c);
    }
    for (ty, id) in used {
        if !claimed.contains(&(*ty, *id)) {
            // Needed but only in missing packs (or nowhere).
            let holder = indexed
                .iter()
                .find(|(_, bl)| bl.iter().any(|b| b.ty == *ty && b.id == *id))
                .map(|(pid, bl)| {
                    (
                        *pid,
                        bl.iter().filter(|b| used.contains(&(b.ty, b.id))).count(),
                    )
                });
            return Err(match holder {
                Some((pack, blobs)) => PlanError::MissingNeeded { pack, blobs },
                None => PlanError::MissingBlob { ty: *ty, id: *id },
            });
        }
    }
    let indexed_ids: HashSet<Id> = indexed.iter().map(|(id, _)| *id).collect();
    p.unreferenced = on_disk
        .keys()
        .filter(|id| !indexed_ids.contains(id))
        .copied()
        .collect();
    p.unreferenced.sort();

    let small_limit = opts.small_pack_limit();
    let mut candidates = Vec::new();
    let mut small = Vec::new();
    for c in classes {
        p.stats.used_blobs += c.used.len() as u64;
        p.stats.used_bytes += c.used_bytes;
        p.stats.unused_bytes += c.unused_bytes;
        if c.used.is_empty() {
            p.stats.freed_bytes += c.unused_bytes;
            p.delete.push(c.id);
            continue;
        }
        if opts.repack_cacheable_only && !c.tree {
            p.keep.push(c.id);
            continue;
        }
        let forced = c.mixed || (opts.compression && opts.repack_uncompressed && c.uncompressed);
        if c.unused_bytes == 0 && !forced {
            if c.size < small_limit {
                small.push(c);
            } else {
                p.keep.push(c.id);
            }
            continue;
        }
        candidates.push((c, forced));
    }
    if small.len() < MIN_SMALL_PACKS {
        p.keep.extend(small.iter().map(|c| c.id));
    } else {
        candidates.extend(small.into_iter().map(|c| (c, false)));
    }
    let is_small = |c: &Class| c.used_bytes + c.unused_bytes < small_limit;
    p.stats.unused_blobs =
        indexed.iter().map(|(_, b)| b.len() as u64).sum::<u64>() - p.stats.used_blobs;
    let limit = opts.max_unused.limit(p.stats.used_bytes);
    let mut unused_left: u64 = candidates.iter().map(|(c, _)| c.unused_bytes).sum();
    // Forced and tree packs first, then small packs, then data packs by decreasing
    // unused/used ratio.
    candidates.sort_by(|(a, fa), (b, fb)| {
        let ka = (*fa || a.tree, is_small(a));
        let kb = (*fb || b.tree, is_small(b));
        kb.cmp(&ka).then_with(|| {
            let ra = a.unused_bytes as f64 / a.used_bytes.max(1) as f64;
            let rb = b.unused_bytes as f64 / b.used_bytes.max(1) as f64;
            rb.total_cmp(&ra)
        })
    });
    for (c, forced) in candidates {
        let must = forced || c.tree;
        let within_budget = opts
            .max_repack_bytes
            .is_none_or(|m| p.stats.repack_bytes + c.used_bytes <= m);
        if (must || is_small(&c) || unused_left > limit) && within_budget {
            unused_left -= c.unused_bytes;
            p.stats.repack_bytes += c.used_bytes;
            p.stats.freed_bytes += c.unused_bytes;
            p.repack.push((c.id, c.used));
        } else {
            p.keep.push(c.id);
        }
    }
    p.stats.unused_after = unused_left;
    p.keep.sort();
    p.delete.sort();
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(ty: BlobType, n: u8, len: u32, compressed: bool) -> PackedBlob {
        PackedBlob {
            ty,
            id: Id([n; 32]),
            offset: 0,
            length: len,
            uncompressed_length: compressed.then_some(len),
        }
    }

    fn pack(n: u8, blobs: Vec<PackedBlob>) -> (Id, Vec<PackedBlob>) {
        let mut off = 0;
        let blobs = blobs
            .into_iter()
            .map(|mut b| {
                b.offset = off;
                off += b.length;
                b
            })
            .collect();
        (Id([200 + n; 32]), blobs)
    }

    fn disk(packs: &[(Id, Vec<PackedBlob>)]) -> HashMap<Id, u64> {
        packs
            .iter()
            .map(|(id, b)| (*id, expected_size(b)))
            .collect()
    }

    #[test]
    fn classifies_packs() {
        let d = BlobType::Data;
        let packs = vec![
            pack(1, vec![blob(d, 1, 1000, true), blob(d, 2, 1000, true)]), // all used
            pack(2, vec![blob(d, 3, 1000, true)]),                         // unused
            pack(3, vec![blob(d, 4, 100, true), blob(d, 5, 5000, true)]),  // mostly unused
            pack(
                4,
                vec![
                    blob(BlobType::Tree, 6, 100, true),
                    blob(BlobType::Tree, 7, 100, true),
                ],
            ), // partly
        ];
        let used: HashSet<_> = [
            (d, Id([1; 32])),
            (d, Id([2; 32])),
            (d, Id([4; 32])),
            (BlobType::Tree, Id([6; 32])),
        ]
        .into_iter()
        .collect();
        let mut on = disk(&packs);
        on.insert(Id([9; 32]), 500);
        let p = plan(&packs, &on, &used, &PruneOptions::default()).unwrap();
        assert_eq!(p.delete, vec![packs[1].0]);
        assert_eq!(p.unreferenced, vec![Id([9; 32])]);
        let rep: Vec<Id> = p.repack.iter().map(|r| r.0).collect();
        assert!(rep.contains(&packs[2].0) && rep.contains(&packs[3].0));
        assert_eq!(p.keep, vec![packs[0].0]);
        assert_eq!(p.stats.used_blobs, 4);
        // With unlimited unused space only the tree pack is repacked, and the partly
        // used data pack too when it is small (restic's rule).
        let o = PruneOptions {
            max_unused: MaxUnused::Unlimited,
            pack_size: 0,
            ..Default::default()
        };
        let p = plan(&packs, &on, &used, &o).unwrap();
        assert_eq!(
            p.repack.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![packs[3].0]
        );
        let o = PruneOptions {
            max_unused: MaxUnused::Unlimited,
            ..Default::default()
        };
        let p = plan(&packs, &on, &used, &o).unwrap();
        assert_eq!(
            p.repack.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![packs[3].0, packs[2].0]
        );
    }

    #[test]
    fn refuses_when_data_could_be_lost() {
        let d = BlobType::Data;
        let packs = vec![pack(1, vec![blob(d, 1, 1000, true)])];
        let used: HashSet<_> = [(d, Id([1; 32]))].into_iter().collect();
        let mut on = disk(&packs);
        on.insert(packs[0].0, 5);
        assert!(matches!(
            plan(&packs, &on, &used, &PruneOptions::default()),
            Err(PlanError::SizeMismatch { .. })
        ));
        assert!(matches!(
            plan(&packs, &HashMap::new(), &used, &PruneOptions::default()),
            Err(PlanError::MissingNeeded { .. })
        ));
        let used: HashSet<_> = [(d, Id([77; 32]))].into_iter().collect();
        assert!(matches!(
            plan(&packs, &disk(&packs), &used, &PruneOptions::default()),
            Err(PlanError::MissingBlob { .. })
        ));
    }

    #[test]
    fn duplicates_count_once_and_missing_unneeded_dropped() {
        let d = BlobType::Data;
        let packs = vec![
            pack(1, vec![blob(d, 1, 1000, true)]),
            pack(2, vec![blob(d, 1, 1000, true)]),
            pack(3, vec![blob(d, 2, 10, true)]),
        ];
        let used: HashSet<_> = [(d, Id([1; 32]))].into_iter().collect();
        let mut on = disk(&packs);
        on.remove(&packs[2].0);
        let p = plan(&packs, &on, &used, &PruneOptions::default()).unwrap();
        assert_eq!(p.delete.len(), 1);
        assert_eq!(p.keep.len(), 1);
        assert_eq!(p.missing_unneeded, vec![packs[2].0]);
    }

    /// Ten fully used small packs are repacked, nine are kept; with `repack_small`
    /// a pack at half the target size is small too; `repack_cacheable_only` keeps
    /// data packs.
    #[test]
    fn small_packs() {
        let d = BlobType::Data;
        let packs = |n: u8, len: u32| -> Vec<(Id, Vec<PackedBlob>)> {
            (0..n)
                .map(|i| pack(i, vec![blob(d, i, len, true)]))
                .collect()
        };
        let used = |n: u8| -> HashSet<_> { (0..n).map(|i| (d, Id([i; 32]))).collect() };
        let used10 = used(10);
        let opts = PruneOptions {
            pack_size: 1 << 20,
            ..PruneOptions::default()
        };
        let ten = packs(10, 1000);
        let p = plan(&ten, &disk(&ten), &used10, &opts).unwrap();
        assert_eq!(p.repack.len(), 10);
        assert!(p.keep.is_empty());
        let nine = packs(9, 1000);
        let p = plan(&nine, &disk(&nine), &used(9), &opts).unwrap();
        assert!(p.repack.is_empty());
        assert_eq!(p.keep.len(), 9);

        let half = packs(10, 512 << 10);
        assert!(plan(&half, &disk(&half), &used10, &opts)
            .unwrap()
            .repack
            .is_empty());
        let o = PruneOptions {
            repack_small: true,
            ..opts
        };
        assert_eq!(
            plan(&half, &disk(&half), &used10, &o).unwrap().repack.len(),
            10
        );
        let o = PruneOptions {
            repack_cacheable_only: true,
            ..o
        };
        assert!(plan(&half, &disk(&half), &used10, &o)
            .unwrap()
            .repack
            .is_empty());
    }

    #[test]
    fn sizes() {
        assert_eq!(MaxUnused::parse("5%").unwrap(), MaxUnused::Percent(5.0));
        assert_eq!(MaxUnused::parse("10M").unwrap(), MaxUnused::Bytes(10 << 20));
        assert_eq!(MaxUnused::parse("unlimited").unwrap(), MaxUnused::Unlimited);
        assert!(MaxUnused::parse("x").is_err());
        assert!(MaxUnused::parse("100%").is_err());
    }
}
