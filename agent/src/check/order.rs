//! The order `check --read-data` reads packs in.
//!
//! A pack costs device time for its bytes and CPU time for its plaintext: a pack of
//! incompressible blobs is verified in about a third of the time a pack of text
//! takes, while both take as long to read. Read in the order of their sizes, the
//! packs of one kind came in runs (a backup writes them that way), and a check
//! first waited for the device with the cores half idle, then for the cores with
//! the device idle. Alternating CPU-heavy and CPU-light packs keeps both busy.

use std::collections::HashMap;

use stash_repo_format::{pack::PackedBlob, Id};

/// Orders packs by size, largest first (ties by id). A pack is verified on one
/// core from start to end, so the last packs decide how long one core idles at
/// the end; with the small ones (tree packs, the last pack of a backup) last, that
/// idle stretch is short.
pub fn largest_first(packs: &mut [Id], sizes: &HashMap<Id, u64>) {
    packs.sort_by_key(|id| (std::cmp::Reverse(sizes.get(id).copied().unwrap_or(0)), *id));
}

/// The read order: the `first` largest packs (the first of those hinted to the
/// device while the key was derived, see [`super::warm_first_packs`]; the other
/// hinted ones are read from the page cache whenever their turn comes), then the other full-size
/// packs alternating between the most and the least plaintext per byte, then the
/// small ones, largest first.
pub fn read_order(
    mut packs: Vec<Id>,
    first: usize,
    sizes: &HashMap<Id, u64>,
    indexed: &HashMap<Id, Vec<PackedBlob>>,
) -> Vec<Id> {
    largest_first(&mut packs, sizes);
    let size = |id: &Id| sizes.get(id).copied().unwrap_or(0);
    let largest = packs.first().map_or(0, size);
    let mut rest = packs.split_off(first.min(packs.len()));
    let small = rest.split_off(rest.partition_point(|id| 2 * size(id) >= largest));
    let plain = |id: &Id| -> u64 {
        indexed.get(id).map_or(0, |blobs| {
            blobs.iter().map(|b| u64::from(b.data_length())).sum()
        })
    };
    // Most plaintext per pack byte first: a / b > c / d as a * d > c * b. Each
    // pack's plaintext is summed once, not per comparison.
    let mut weighed: Vec<(Id, u128, u128)> = rest
        .iter()
        .map(|id| (*id, u128::from(plain(id)), u128::from(size(id).max(1))))
        .collect();
    weighed.sort_by(|(a, pa, sa), (b, pb, sb)| (pb * sa).cmp(&(pa * sb)).then(a.cmp(b)));
    let rest: Vec<Id> = weighed.into_iter().map(|(id, ..)| id).collect();
    let (mut heavy, mut light) = (0, rest.len());
    while heavy < light {
        packs.push(rest[heavy]);
        heavy += 1;
        if heavy < light {
            light -= 1;
            packs.push(rest[light]);
        }
    }
    packs.extend(small);
    packs
}

#[cfg(test)]
mod tests {
    use stash_repo_format::blob::BlobType;

    use super::*;

    #[test]
    fn packs_are_read_largest_first() {
        let ids: Vec<Id> = (1..=4u8).map(|b| Id([b; 32])).collect();
        let sizes: HashMap<Id, u64> = [(ids[0], 5), (ids[1], 90), (ids[2], 5), (ids[3], 40)]
            .into_iter()
            .collect();
        let mut packs = ids.clone();
        largest_first(&mut packs, &sizes);
        assert_eq!(packs, vec![ids[1], ids[3], ids[0], ids[2]]);
    }

    /// Packs 1-6 are full size with plaintexts of 1x to 6x their bytes, 7 and 8
    /// small: after the two largest, heavy and light alternate, then the small.
    #[test]
    fn heavy_and_light_packs_alternate_after_the_first() {
        let id = |b: u8| Id([b; 32]);
        let mut sizes = HashMap::new();
        let mut indexed = HashMap::new();
        for k in 1..=8u8 {
            let size = match k {
                7 => 300,
                8 => 200,
                _ => 1000 + u64::from(k),
            };
            sizes.insert(id(k), size);
            let blob = PackedBlob {
                ty: BlobType::Data,
                id: id(k),
                offset: 0,
                length: 900,
                uncompressed_length: Some(900 * u32::from(k)),
            };
            indexed.insert(id(k), vec![blob]);
        }
        let packs: Vec<Id> = (1..=8).map(id).collect();
        let order = read_order(packs, 2, &sizes, &indexed);
        let want: Vec<Id> = [6, 5, 4, 1, 3, 2, 7, 8].into_iter().map(id).collect();
        assert_eq!(order, want);
    }
}
