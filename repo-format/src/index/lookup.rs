//! The in-memory blob index: for each blob type a vector of 48-byte entries sorted by
//! id, plus a table of where each id prefix starts, sized to about four entries per
//! slot (ids are uniform hashes), so a lookup is one table read and a search over a
//! few neighbouring entries. Packs are stored once and referred to by number.
//! Memory: 48 bytes per blob, at most 2 bytes per blob for the table, 32 per pack.
//!
//! The structure is immutable once built, so readers need no lock; blobs added by a
//! running backup are tracked by the agent beside it.

use std::collections::HashMap;

use crate::{blob::BlobType, id::Id, index::file::IndexBlob};

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Pack holding the blob.
    pub pack: Id,
    /// Offset of the sealed blob in that pack.
    pub offset: u32,
    /// Sealed length.
    pub length: u32,
    /// Plaintext length when compressed.
    pub uncompressed_length: Option<u32>,
}

impl BlobLocation {
    /// Plaintext length.
    pub fn data_length(&self) -> u32 {
        self.uncompressed_length
            .unwrap_or_else(|| self.length.saturating_sub(crate::crypto::OVERHEAD as u32))
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: [u8; 32],
    pack: u32,
    offset: u32,
    length: u32,
    /// 0 = uncompressed (a compressed blob is never empty).
    ulen: u32,
}

#[derive(Debug, Default)]
struct Table {
    entries: Vec<Entry>,
    /// `starts[p]` = first entry whose id's top `bits` bits are `p`; 2^bits + 1 slots.
    starts: Vec<u32>,
    bits: u32,
}

impl Table {
    fn build(mut entries: Vec<Entry>) -> Self {
        entries.sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.pack.cmp(&b.pack)));
        entries.shrink_to_fit();
        let n = entries.len();
        let bits = (usize::BITS - n.leading_zeros())
            .saturating_sub(2)
            .clamp(4, 24);
        let slots = 1usize << bits;
        let mut starts = vec![0u32; slots + 1];
        let mut i = 0usize;
        for (p, slot) in starts.iter_mut().enumerate().take(slots) {
            while i < n && prefix(&entries[i].id, bits) < p {
                i += 1;
            }
            *slot = i as u32;
        }
        starts[slots] = n as u32;
        Table {
            entries,
            starts,
            bits,
        }
    }

    fn range(&self, id: &Id) -> &[Entry] {
        if self.entries.is_empty() {
            return &[];
        }
        let p = prefix(&id.0, self.bits);
        let slice = &self.entries[self.starts[p] as usize..self.starts[p + 1] as usize];
        let lo = slice.partition_point(|e| e.id < id.0);
        let hi = lo + slice[lo..].partition_point(|e| e.id == id.0);
        &slice[lo..hi]
    }
}

/// The top `bits` bits of an id.
fn prefix(id: &[u8; 32], bits: u32) -> usize {
    (u32::from_be_bytes([id[0], id[1], id[2], id[3]]) >> (32 - bits)) as usize
}

/// Immutable blob id -> location map for both blob types.
#[derive(Debug, Default)]
pub struct IndexLookup {
    packs: Vec<Id>,
    data: Table,
    tree: Table,
}

/// Collects index entries, then sorts them into an [`IndexLookup`].
#[derive(Debug, Default)]
pub struct IndexLookupBuilder {
    packs: Vec<Id>,
    pack_nr: HashMap<Id, u32>,
    data: Vec<Entry>,
    tree: Vec<Entry>,
}

impl IndexLookupBuilder {
    /// Adds the blobs of one pack. A pack listed in several index files is kept once
    /// per listing; duplicate entries are harmless.
    pub fn add_pack(&mut self, pack: Id, blobs: &[IndexBlob]) {
        let packs = &mut self.packs;
        let nr = *self.pack_nr.entry(pack).or_insert_with(|| {
            packs.push(pack);
            (packs.len() - 1) as u32
        });
        for b in blobs {
            let e = Entry {
                id: b.id.0,
                pack: nr,
                offset: b.offset,
                length: b.length,
                ulen: b.uncompressed_length.unwrap_or(0),
            };
            match b.ty {
                BlobType::Data => self.data.push(e),
                BlobType::Tree => self.tree.push(e),
            }
        }
    }

    /// Sorts and freezes.
    pub fn build(self) -> IndexLookup {
        IndexLookup {
            packs: self.packs,
            data: Table::build(self.data),
            tree: Table::build(self.tree),
        }
    }
}

impl IndexLookup {
    fn table(&self, ty: BlobType) -> &Table {
        match ty {
            BlobType::Data => &self.data,
            BlobType::Tree => &self.tree,
        }
    }

    fn loc(&self, e: &Entry) -> BlobLocation {
        BlobLocation {
            pack: self.packs[e.pack as usize],
            offset: e.offset,
            length: e.length,
            uncompressed_length: (e.ulen != 0).then_some(e.ulen),
        }
    }

    /// The first known location of a blob.
    pub fn get(&self, ty: BlobType, id: &Id) -> Option<BlobLocation> {
        self.table(ty).range(id).first().map(|e| self.loc(e))
    }

    /// Every known location of a blob (a blob may be stored in several packs).
    pub fn get_all(&self, ty: BlobType, id: &Id) -> Vec<BlobLocation> {
        self.table(ty)
            .range(id)
            .iter()
            .map(|e| self.loc(e))
            .collect()
    }

    /// Whether the blob is indexed.
    pub fn contains(&self, ty: BlobType, id: &Id) -> bool {
        !self.table(ty).range(id).is_empty()
    }

    /// Number of entries (duplicates counted).
    pub fn len(&self) -> usize {
        self.data.entries.len() + self.tree.entries.len()
    }

    /// Whether no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every indexed pack.
    pub fn packs(&self) -> &[Id] {
        &self.packs
    }

    /// Every entry, in id order per type.
    pub fn iter(&self) -> impl Iterator<Item = (BlobType, Id, BlobLocation)> + '_ {
        let d = self
            .data
            .entries
            .iter()
            .map(move |e| (BlobType::Data, Id(e.id), self.loc(e)));
        let t = self
            .tree
            .entries
            .iter()
            .map(move |e| (BlobType::Tree, Id(e.id), self.loc(e)));
        t.chain(d)
    }

    /// Approximate heap bytes used.
    pub fn memory_bytes(&self) -> usize {
        (self.data.entries.capacity() + self.tree.entries.capacity()) * std::mem::size_of::<Entry>()
            + (self.data.starts.capacity() + self.tree.starts.capacity()) * 4
            + self.packs.capacity() * 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u32, ty: BlobType) -> IndexBlob {
        IndexBlob {
            id: Id::hash(&n.to_le_bytes()),
            ty,
            offset: n * 100,
            length: 100,
            uncompressed_length: n.is_multiple_of(2).then_some(n + 1),
        }
    }

    #[test]
    fn lookups() {
        let mut b = IndexLookupBuilder::default();
        let p1 = Id::hash(b"p1");
        let p2 = Id::hash(b"p2");
        let blobs: Vec<_> = (0..5000).map(|n| blob(n, BlobType::Data)).collect();
        b.add_pack(p1, &blobs[..2500]);
        b.add_pack(p2, &blobs[2500..]);
        b.add_pack(p2, &[blob(1, BlobType::Tree)]);
        let l = b.build();
        assert_eq!(l.len(), 5001);
        for (i, x) in blobs.iter().enumerate() {
            let loc = l.get(BlobType::Data, &x.id).unwrap();
            assert_eq!(loc.pack, if i < 2500 { p1 } else { p2 });
            assert_eq!(loc.offset, x.offset);
            assert_eq!(loc.uncompressed_length, x.uncompressed_length);
        }
        assert!(l.contains(BlobType::Tree, &blobs[1].id));
        assert!(!l.contains(BlobType::Tree, &blobs[2].id));
        assert!(l.get(BlobType::Data, &Id::hash(b"nope")).is_none());
        assert_eq!(l.iter().count(), 5001);
        assert!(IndexLookup::default().get(BlobType::Data, &p1).is_none());
    }

    #[test]
    fn duplicates_kept() {
        let mut b = IndexLookupBuilder::default();
        let x = blob(7, BlobType::Data);
        b.add_pack(Id::hash(b"a"), &[x]);
        b.add_pack(Id::hash(b"b"), &[x]);
        let l = b.build();
        assert_eq!(l.get_all(BlobType::Data, &x.id).len(), 2);
    }
}
