//! `check --read-data` of one pack: its id, its header against the index, and every
//! blob's MAC and id.
//!
//! The pack's id is the SHA-256 of all its bytes and each blob's id the SHA-256 of its
//! plaintext, so every byte is hashed twice. Blobs are decrypted in place, so the pack
//! hash must see each blob's bytes before they are decrypted: the pack bytes up to
//! the end of blob `i` are hashed together with the plaintext of blob `i - 1`, two
//! streams at once ([`stash_repo_format::sha256`]).

use std::{collections::HashMap, ops::Range};

use stash_repo_format::{
    blob::{self, BlobType},
    crypto::Key,
    pack::{self, PackedBlob},
    sha256::Hasher,
    Id,
};

thread_local! {
    /// Per verifying thread: compressed blobs inflate here only to be hashed; two,
    /// so that the rest of one blob's plaintext pairs with the next one's.
    static PLAIN: std::cell::RefCell<[Vec<u8>; 2]> = const {
        std::cell::RefCell::new([Vec::new(), Vec::new()])
    };
}

/// Where a decoded blob's plaintext lies.
#[derive(Clone)]
enum Place {
    /// In the pack bytes, where it was decrypted.
    Pack(Range<usize>),
    /// In inflate buffer 0 or 1.
    Buf(usize),
}

/// A decoded blob whose plaintext is partly hashed.
struct Decoded<'h> {
    blob: &'h PackedBlob,
    place: Place,
    hasher: Hasher,
    /// Plaintext bytes hashed so far.
    done: usize,
}

impl Decoded<'_> {
    /// The plaintext not hashed yet.
    fn rest<'a>(&self, bytes: &'a [u8], bufs: &'a [Vec<u8>; 2]) -> &'a [u8] {
        let plain = match &self.place {
            Place::Pack(r) => &bytes[r.clone()],
            Place::Buf(k) => &bufs[*k][..],
        };
        &plain[self.done..]
    }

    /// Reports the blob if its plaintext does not hash to its id.
    fn finish(self, id: Id, errs: &mut Vec<String>) {
        if let Err(e) = blob::verify_id(&self.blob.id, self.hasher.finish()) {
            blob_error(id, self.blob, e, errs);
        }
    }
}

/// Verifies one pack's bytes against its id, its header and its index entries;
/// returns what is wrong. Blobs are decrypted in place, so `bytes` is no longer the
/// pack afterwards.
pub fn verify_pack(key: &Key, id: Id, bytes: &mut [u8], indexed: &[PackedBlob]) -> Vec<String> {
    let mut errs = Vec::new();
    let header = match pack::parse_pack(key, bytes) {
        Ok(h) => h,
        Err(e) => {
            pack_hash_error(id, Id::hash(bytes), &mut errs);
            errs.push(format!("pack {id}: header: {e}"));
            return errs;
        }
    };
    compare_with_index(id, &header, indexed, &mut errs);
    let in_order = header
        .windows(2)
        .all(|w| end(&w[0]) <= w[1].offset as usize)
        && header.last().is_none_or(|h| end(h) <= bytes.len());
    if in_order {
        verify_blobs_paired(key, id, bytes, &header, &mut errs);
    } else {
        verify_blobs_one_by_one(key, id, bytes, &header, &mut errs);
    }
    errs
}

/// Where a blob's bytes end in the pack.
fn end(h: &PackedBlob) -> usize {
    h.offset as usize + h.length as usize
}

fn pack_hash_error(id: Id, got: Id, errs: &mut Vec<String>) {
    if got != id {
        errs.push(format!(
            "pack {id}: content hashes to {got} (the file is damaged)"
        ));
    }
}

fn blob_error(id: Id, h: &PackedBlob, e: impl std::fmt::Display, errs: &mut Vec<String>) {
    errs.push(format!("pack {id}: {} blob {}: {e}", h.ty, h.id));
}

fn compare_with_index(
    id: Id,
    header: &[PackedBlob],
    indexed: &[PackedBlob],
    errs: &mut Vec<String>,
) {
    let mut by_key: HashMap<(BlobType, Id, u32), &PackedBlob> = HashMap::new();
    for b in indexed {
        by_key.insert((b.ty, b.id, b.offset), b);
    }
    for h in header {
        match by_key.get(&(h.ty, h.id, h.offset)) {
            Some(ix) if **ix == *h => {}
            Some(_) => errs.push(format!(
                "pack {id}: blob {} differs between header and index",
                h.id
            )),
            None => errs.push(format!(
                "pack {id}: blob {} is in the header but not in the index",
                h.id
            )),
        }
    }
    if header.len() != indexed.len() {
        errs.push(format!(
            "pack {id}: header lists {} blobs, the index {}",
            header.len(),
            indexed.len()
        ));
    }
}

/// Blobs in pack order without overlaps (as every writer stores them). Every hash
/// pass pairs two streams: the pack bytes up to the end of blob `i` (hashed before
/// blob `i` is decrypted in place) with the rest of an earlier blob's plaintext, and
/// what remains of that plaintext with blob `i`'s. At most one plaintext is left
/// partly hashed at a time, so two inflate buffers suffice.
fn verify_blobs_paired(
    key: &Key,
    id: Id,
    bytes: &mut [u8],
    header: &[PackedBlob],
    errs: &mut Vec<String>,
) {
    PLAIN.with(|bufs| {
        let bufs = &mut *bufs.borrow_mut();
        let mut pack_hash = Hasher::default();
        let mut hashed = 0usize;
        let mut carry: Option<Decoded> = None;
        for h in header {
            let blob_end = end(h);
            hashed = hash_pack_with(
                &mut pack_hash,
                bytes,
                hashed..blob_end,
                &mut carry,
                bufs,
                id,
                errs,
            );
            let free = match carry.as_ref().map(|c| &c.place) {
                Some(Place::Buf(k)) => 1 - k,
                _ => 0,
            };
            let sealed = &mut bytes[h.offset as usize..blob_end];
            let place =
                match blob::open_in_place(key, sealed, h.uncompressed_length, &mut bufs[free]) {
                    Ok(plain) if !blob::inflates(h.uncompressed_length) => {
                        let start = h.offset as usize + 16;
                        Place::Pack(start..start + plain.len())
                    }
                    Ok(_) => Place::Buf(free),
                    Err(e) => {
                        blob_error(id, h, e, errs);
                        continue;
                    }
                };
            let mut new = Decoded {
                blob: h,
                place,
                hasher: Hasher::default(),
                done: 0,
            };
            let Some(mut old) = carry.take() else {
                carry = Some(new);
                continue;
            };
            let (rest_old, rest_new) = (old.rest(bytes, bufs), new.rest(bytes, bufs));
            let n = rest_old.len().min(rest_new.len());
            old.hasher
                .update_pair(&rest_old[..n], &mut new.hasher, &rest_new[..n]);
            old.done += n;
            new.done += n;
            if old.rest(bytes, bufs).is_empty() {
                old.finish(id, errs);
                carry = Some(new);
            } else {
                new.finish(id, errs);
                carry = Some(old);
            }
        }
        let all = bytes.len();
        hash_pack_with(
            &mut pack_hash,
            bytes,
            hashed..all,
            &mut carry,
            bufs,
            id,
            errs,
        );
        if let Some(c) = carry {
            let rest = c.rest(bytes, bufs);
            let mut c = c;
            c.hasher.update(rest);
            c.finish(id, errs);
        }
        pack_hash_error(id, pack_hash.finish(), errs);
    });
}

/// Feeds `bytes[range]` to the pack hash, paired with as much of `carry`'s
/// plaintext as it covers, finishing `carry` when all of it is hashed; returns the
/// end of `range`.
fn hash_pack_with(
    pack_hash: &mut Hasher,
    bytes: &[u8],
    range: Range<usize>,
    carry: &mut Option<Decoded>,
    bufs: &[Vec<u8>; 2],
    id: Id,
    errs: &mut Vec<String>,
) -> usize {
    let seg = &bytes[range.clone()];
    let Some(c) = carry else {
        pack_hash.update(seg);
        return range.end;
    };
    let rest = c.rest(bytes, bufs);
    let n = seg.len().min(rest.len());
    pack_hash.update_pair(&seg[..n], &mut c.hasher, &rest[..n]);
    c.done += n;
    if n == rest.len() {
        if let Some(c) = carry.take() {
            c.finish(id, errs);
        }
        pack_hash.update(&seg[n..]);
    }
    range.end
}

/// A header whose blobs overlap or run past the pack (damaged or hostile): the pack
/// is hashed first, then each blob on its own.
fn verify_blobs_one_by_one(
    key: &Key,
    id: Id,
    bytes: &mut [u8],
    header: &[PackedBlob],
    errs: &mut Vec<String>,
) {
    pack_hash_error(id, Id::hash(bytes), errs);
    for h in header {
        let Some(sealed) = bytes.get_mut(h.offset as usize..end(h)) else {
            blob_error(id, h, "lies outside the pack", errs);
            continue;
        };
        let decoded = PLAIN.with(|bufs| {
            let plain = &mut bufs.borrow_mut()[0];
            blob::decode_in_place(key, &h.id, sealed, h.uncompressed_length, plain).map(|_| ())
        });
        if let Err(e) = decoded {
            blob_error(id, h, e, errs);
        }
    }
}

#[cfg(test)]
mod tests {
    use stash_repo_format::pack::PackWriter;

    use super::*;

    /// A pack of a compressed, an uncompressed, an empty and a tree blob; the
    /// second blob is stored under `second_id` (its true id unless forging).
    fn pack(key: &Key, second_id: Option<Id>) -> (Id, Vec<u8>, Vec<PackedBlob>) {
        let text = b"log line 7\n".repeat(5000);
        let raw: Vec<u8> = (0..70_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761) as u8)
            .collect();
        let mut w = PackWriter::with_capacity(1 << 20);
        let id = w.hash_blob(&text);
        w.add_plaintext(key, BlobType::Data, id, &text, Some(3))
            .unwrap();
        let id = w.hash_blob(&raw);
        w.add_plaintext(key, BlobType::Data, second_id.unwrap_or(id), &raw, None)
            .unwrap();
        let id = w.hash_blob(b"");
        w.add_plaintext(key, BlobType::Data, id, b"", Some(3))
            .unwrap();
        let id = w.hash_blob(b"{}");
        w.add_plaintext(key, BlobType::Tree, id, b"{}", Some(3))
            .unwrap();
        let p = w.finish(key);
        (p.id, p.bytes, p.blobs)
    }

    #[test]
    fn a_sound_pack_has_no_findings() {
        let key = Key::random();
        let (id, mut bytes, blobs) = pack(&key, None);
        assert_eq!(
            verify_pack(&key, id, &mut bytes, &blobs),
            Vec::<String>::new()
        );
    }

    /// Plaintexts much longer and much shorter than their sealed bytes, one after
    /// the other, so that one blob's plaintext is hashed across several later
    /// blobs: a sound pack has no findings, and a flipped byte in any blob names
    /// exactly that blob.
    #[test]
    fn plaintexts_carried_across_blobs_are_each_checked() {
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
            (raw(5_000, 2), None),
            (text(100), Some(3)),
            (text(30_000), Some(3)),
            (text(20_000), Some(3)),
            (raw(200_000, 3), None),
            (raw(10, 4), None),
        ];
        // Blob `forge` (if any) is stored under a wrong id.
        let build = |forge: Option<usize>| {
            let mut w = PackWriter::with_capacity(1 << 20);
            for (k, (p, c)) in plains.iter().enumerate() {
                let mut id = w.hash_blob(p);
                if forge == Some(k) {
                    id = Id::hash(b"something else");
                }
                w.add_plaintext(&key, BlobType::Data, id, p, *c).unwrap();
            }
            let p = w.finish(&key);
            (p.id, p.bytes, p.blobs)
        };
        let (id, mut bytes, blobs) = build(None);
        assert_eq!(
            verify_pack(&key, id, &mut bytes, &blobs),
            Vec::<String>::new()
        );
        for k in 0..plains.len() {
            let (id, mut bytes, blobs) = build(Some(k));
            let errs = verify_pack(&key, id, &mut bytes, &blobs);
            assert_eq!(errs.len(), 1, "blob {k}: {errs:?}");
            assert!(
                errs[0].contains(&blobs[k].id.to_string()),
                "blob {k}: {errs:?}"
            );
            assert!(errs[0].contains("content hashes to"), "blob {k}: {errs:?}");
        }
        for (k, b) in blobs.iter().enumerate() {
            let (id, mut bytes, _) = build(None);
            bytes[b.offset as usize + b.length as usize - 17] ^= 0x40;
            let errs = verify_pack(&key, id, &mut bytes, &blobs);
            assert_eq!(errs.len(), 2, "blob {k}: {errs:?}");
            assert!(errs[0].contains(&b.id.to_string()), "blob {k}: {errs:?}");
            assert!(errs[1].contains("content hashes to"), "blob {k}: {errs:?}");
        }
    }

    #[test]
    fn a_flipped_byte_names_the_blob_and_the_pack() {
        let key = Key::random();
        for blob in 0..2 {
            let (id, mut bytes, blobs) = pack(&key, None);
            bytes[blobs[blob].offset as usize + 40] ^= 1;
            let errs = verify_pack(&key, id, &mut bytes, &blobs);
            assert_eq!(errs.len(), 2, "{errs:?}");
            assert!(errs[0].contains(&blobs[blob].id.to_string()), "{errs:?}");
            assert!(errs[1].contains("content hashes to"), "{errs:?}");
        }
    }

    #[test]
    fn a_blob_stored_under_a_wrong_id_is_found() {
        let key = Key::random();
        let wrong = Id::hash(b"something else");
        let (id, mut bytes, blobs) = pack(&key, Some(wrong));
        let errs = verify_pack(&key, id, &mut bytes, &blobs);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains(&wrong.to_string()) && errs[0].contains("instead of"),
            "{errs:?}"
        );
    }

    #[test]
    fn an_index_that_disagrees_with_the_header_is_reported() {
        let key = Key::random();
        let (id, mut bytes, mut blobs) = pack(&key, None);
        blobs[1].length += 1;
        blobs.pop();
        let errs = verify_pack(&key, id, &mut bytes, &blobs);
        assert!(
            errs.iter()
                .any(|e| e.contains("differs between header and index")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("header lists 4 blobs, the index 3")),
            "{errs:?}"
        );
    }

    #[test]
    fn overlapping_entries_are_verified_one_by_one() {
        let key = Key::random();
        let (id, bytes, blobs) = pack(&key, None);
        let mut twice = blobs.clone();
        twice.swap(0, 1);
        let mut copy = bytes.clone();
        let mut errs = Vec::new();
        verify_blobs_one_by_one(&key, id, &mut copy, &twice, &mut errs);
        assert_eq!(errs, Vec::<String>::new());
        let mut copy = bytes.clone();
        let mut outside = blobs.clone();
        outside[3].offset = bytes.len() as u32;
        verify_blobs_one_by_one(&key, id, &mut copy, &outside, &mut errs);
        assert!(
            errs.iter().any(|e| e.contains("lies outside the pack")),
            "{errs:?}"
        );
    }
}
