//! `check --read-data` of one pack: its id, its header against the index, and every
//! blob's MAC and id.
//!
//! The pack's id is the SHA-256 of all its bytes and each blob's id the SHA-256 of its
//! plaintext, so every byte is hashed twice. SHA-256 hashes two streams at once for
//! little more than the cost of one ([`stash_repo_format::sha256`]), so the pack's
//! bytes are hashed alongside the blobs' plaintexts, and once they run out (a
//! compressed pack's plaintext is longer) the plaintexts alongside each other.

use std::{collections::HashMap, ops::Range};

use stash_repo_format::{
    blob::{self, BlobType},
    crypto::{self, Key},
    pack::{self, PackedBlob},
    sha256::Hasher,
    Id,
};

/// Per verifying thread, the buffers blobs are decoded into only to be hashed.
struct Buffers {
    /// Plaintexts: two, so that the rest of one blob's plaintext pairs with the
    /// next one's.
    plain: [Vec<u8>; 2],
    /// A compressed body decrypted out of place, on its way into `plain`.
    scratch: Vec<u8>,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = const {
        std::cell::RefCell::new(Buffers {
            plain: [Vec::new(), Vec::new()],
            scratch: Vec::new(),
        })
    };
}

/// Where a decoded blob's plaintext lies.
#[derive(Clone, Copy)]
enum Place {
    /// In the pack's bytes, where it was decrypted (`start..end`).
    Pack(usize, usize),
    /// In plaintext buffer 0 or 1.
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
        let plain = match self.place {
            Place::Pack(start, end) => &bytes[start..end],
            Place::Buf(k) => &bufs[k][..],
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
        .all(|w| end(&w[0]) <= u64::from(w[1].offset))
        && header.last().is_none_or(|h| end(h) <= bytes.len() as u64);
    if in_order {
        let mut pack_hash = Hasher::default();
        verify_window(key, id, bytes, 0, &header, &mut pack_hash, &mut errs);
        pack_hash_error(id, pack_hash.finish(), &mut errs);
    } else {
        verify_blobs_one_by_one(key, id, bytes, &header, &mut errs);
    }
    errs
}

/// Where a blob's bytes end in the pack (in `u64`, where two `u32` cannot overflow).
fn end(h: &PackedBlob) -> u64 {
    u64::from(h.offset) + u64::from(h.length)
}

/// Reports the pack if its bytes do not hash to its id.
pub fn pack_hash_error(id: Id, got: Id, errs: &mut Vec<String>) {
    if got != id {
        errs.push(format!(
            "pack {id}: content hashes to {got} (the file is damaged)"
        ));
    }
}

fn blob_error(id: Id, h: &PackedBlob, e: impl std::fmt::Display, errs: &mut Vec<String>) {
    errs.push(format!("pack {id}: {} blob {}: {e}", h.ty, h.id));
}

/// Compares a pack's header with its index entries.
pub fn compare_with_index(
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

/// Verifies the blobs in a stretch of a pack (all of it, or a window of it) and
/// feeds its bytes to `pack_hash`: `bytes` start at `base` in the pack, and
/// `blobs` lie in them in order without overlaps (as every writer stores them).
///
/// The bytes are one hash stream, paired with the blobs' plaintexts one after
/// another; once the bytes are all hashed, the plaintexts left pair with each
/// other, longest first, so that what is hashed alone at the end (the rest of the
/// last one) is short. A blob whose bytes the pack hash has passed
/// is decrypted in place (and a compressed one inflated into a buffer); one it has
/// not reached is decoded into a buffer, leaving the bytes for the pack hash. At
/// most two plaintexts are ever held: two buffers suffice.
pub fn verify_window(
    key: &Key,
    id: Id,
    bytes: &mut [u8],
    base: u64,
    blobs: &[PackedBlob],
    pack_hash: &mut Hasher,
    errs: &mut Vec<String>,
) {
    BUFFERS.with(|bufs| {
        let bufs = &mut *bufs.borrow_mut();
        let mut pass = Pass {
            key,
            id,
            base,
            todo: blobs.iter().rev().collect(),
            by_length: false,
            pack_hash,
            hashed: 0,
            errs,
        };
        // `a` pairs with the pack stream, or with `b` once the pack is all hashed.
        let mut a: Option<Decoded> = None;
        let mut b: Option<Decoded> = None;
        loop {
            if a.is_none() {
                a = b.take();
            }
            if a.is_none() {
                a = pass.decode_next(bytes, bufs, None);
            }
            let (hashed, left) = (pass.hashed, bytes.len() - pass.hashed);
            match a.as_mut() {
                Some(x) if left > 0 => {
                    let rest = x.rest(bytes, &bufs.plain);
                    let n = rest.len().min(left);
                    let seg = &bytes[hashed..hashed + n];
                    pass.pack_hash.update_pair(seg, &mut x.hasher, &rest[..n]);
                    pass.hashed += n;
                    x.done += n;
                }
                None if left > 0 => {
                    pass.pack_hash.update(&bytes[hashed..]);
                    pass.hashed = bytes.len();
                }
                Some(x) => {
                    let busy = match x.place {
                        Place::Buf(k) => Some(k),
                        Place::Pack(..) => None,
                    };
                    if b.is_none() {
                        b = pass.decode_next(bytes, bufs, busy);
                    }
                    match b.as_mut() {
                        Some(y) => {
                            let (rx, ry) = (x.rest(bytes, &bufs.plain), y.rest(bytes, &bufs.plain));
                            let n = rx.len().min(ry.len());
                            x.hasher.update_pair(&rx[..n], &mut y.hasher, &ry[..n]);
                            x.done += n;
                            y.done += n;
                        }
                        None => {
                            let rest = x.rest(bytes, &bufs.plain);
                            x.hasher.update(rest);
                            x.done += rest.len();
                        }
                    }
                }
                None => break,
            }
            for d in [&mut a, &mut b] {
                if d.as_ref()
                    .is_some_and(|x| x.rest(bytes, &bufs.plain).is_empty())
                {
                    if let Some(x) = d.take() {
                        x.finish(id, pass.errs);
                    }
                }
            }
        }
    });
}

/// One pass over a stretch of a pack: the blobs not decoded yet and the pack
/// hash so far.
struct Pass<'a, 'h> {
    key: &'a Key,
    id: Id,
    /// Where the bytes start in the pack.
    base: u64,
    /// The blobs not decoded yet, the next one last: in the pack's order while
    /// its bytes are being hashed, then by plaintext length.
    todo: Vec<&'h PackedBlob>,
    /// Whether `todo` is by plaintext length yet.
    by_length: bool,
    pack_hash: &'a mut Hasher,
    /// Bytes hashed so far.
    hashed: usize,
    errs: &'a mut Vec<String>,
}

impl<'h> Pass<'_, 'h> {
    /// Decodes the next blob that decodes (reporting those that do not) into the
    /// plaintext buffer other than `busy`, or in place where the pack hash has
    /// passed its bytes.
    fn decode_next(
        &mut self,
        bytes: &mut [u8],
        bufs: &mut Buffers,
        busy: Option<usize>,
    ) -> Option<Decoded<'h>> {
        let free = busy.map_or(0, |k| 1 - k);
        if self.hashed == bytes.len() && !self.by_length {
            self.todo.sort_by_key(|h| h.data_length());
            self.by_length = true;
        }
        while let Some(h) = self.todo.pop() {
            let within = u64::from(h.offset)
                .checked_sub(self.base)
                .and_then(|at| pack::blob_range(at, h.length, bytes.len()).ok());
            let Some(Range { start, end }) = within else {
                let read = self.base..self.base + bytes.len() as u64;
                let e = format!(
                    "at offset {} of length {} lies outside the bytes {read:?} read for it",
                    h.offset, h.length
                );
                blob_error(self.id, h, e, self.errs);
                continue;
            };
            let inflates = blob::inflates(h.uncompressed_length);
            let place = if self.hashed >= end {
                let sealed = &mut bytes[start..end];
                let plain = &mut bufs.plain[free];
                match blob::open_in_place(self.key, sealed, h.uncompressed_length, plain) {
                    Ok(plain) if !inflates => {
                        let at = start + crypto::IV_LEN;
                        Ok(Place::Pack(at, at + plain.len()))
                    }
                    Ok(_) => Ok(Place::Buf(free)),
                    Err(e) => Err(e),
                }
            } else {
                blob::open_into(
                    self.key,
                    &bytes[start..end],
                    h.uncompressed_length,
                    &mut bufs.scratch,
                    &mut bufs.plain[free],
                )
                .map(|()| Place::Buf(free))
            };
            match place {
                Ok(place) => {
                    return Some(Decoded {
                        blob: h,
                        place,
                        hasher: Hasher::default(),
                        done: 0,
                    })
                }
                Err(e) => blob_error(self.id, h, e, self.errs),
            }
        }
        None
    }
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
        let sealed = match pack::blob_range(u64::from(h.offset), h.length, bytes.len()) {
            Ok(range) => &mut bytes[range],
            Err(e) => {
                blob_error(id, h, e, errs);
                continue;
            }
        };
        let decoded = BUFFERS.with(|bufs| {
            let plain = &mut bufs.borrow_mut().plain[0];
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

    /// Builds packs of `plains` and checks that a sound one has no findings, and
    /// that a blob stored under a wrong id, or with a flipped byte, is named.
    fn every_blob_is_checked(plains: &[(Vec<u8>, Option<i32>)]) {
        let key = Key::random();
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

    fn text(n: usize) -> Vec<u8> {
        b"level=info msg=ok\n".repeat(n)
    }

    fn raw(n: usize, seed: u32) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i ^ seed).wrapping_mul(2_654_435_761).to_le_bytes()[3])
            .collect()
    }

    /// Plaintexts much longer and much shorter than their sealed bytes, one after
    /// the other, so that the pack stream runs ahead of some blobs and behind
    /// others (those are decrypted into a buffer).
    #[test]
    fn blobs_of_every_size_and_kind_are_each_checked() {
        every_blob_is_checked(&[
            (text(40_000), Some(3)),
            (raw(3_000, 1), None),
            (raw(5_000, 2), None),
            (text(100), Some(3)),
            (text(30_000), Some(3)),
            (text(20_000), Some(3)),
            (raw(200_000, 3), None),
            (raw(10, 4), None),
        ]);
    }

    /// A compressed blob of several decryption pieces ([`blob::OPEN_PIECE`]) that
    /// the pack hash has not reached: decoded piece by piece out of place.
    #[test]
    fn a_large_compressed_blob_ahead_of_the_pack_hash_is_checked() {
        let key = Key::random();
        let mut w = PackWriter::with_capacity(1 << 20);
        let mut x = 9u64;
        let big: Vec<u8> = (0..3 * blob::OPEN_PIECE)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        let id = w.hash_blob(&big);
        w.add_plaintext(&key, BlobType::Data, id, &big, Some(3))
            .unwrap();
        let p = w.finish(&key);
        assert!(p.blobs[0].uncompressed_length.is_some());
        assert!(p.blobs[0].length as usize > 2 * blob::OPEN_PIECE);
        every_blob_is_checked(&[
            (raw(3_000, 1), None),
            (big, Some(3)),
            (text(40_000), Some(3)),
            (raw(100, 2), None),
        ]);
    }

    /// Compressed blobs only: the pack's bytes run out long before the
    /// plaintexts, which then pair with each other.
    #[test]
    fn plaintexts_left_after_the_pack_pair_with_each_other() {
        let plains: Vec<_> = [9_000, 40_000, 500, 70_000, 3_000]
            .iter()
            .map(|&n| (text(n), Some(3)))
            .collect();
        every_blob_is_checked(&plains);
    }

    /// Uncompressed blobs only: each is decrypted into a buffer before the pack
    /// hash reaches it.
    #[test]
    fn raw_blobs_are_checked_ahead_of_the_pack_hash() {
        let plains: Vec<_> = [70_000, 100, 300_000, 64, 20_000]
            .iter()
            .enumerate()
            .map(|(k, &n)| (raw(n, k as u32), None))
            .collect();
        every_blob_is_checked(&plains);
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

    /// Entries outside the stretch of the pack read for them (a window planned
    /// from a damaged index) are reported with their offsets, the others checked.
    #[test]
    fn blobs_outside_the_bytes_read_are_named() {
        let key = Key::random();
        let (id, bytes, blobs) = pack(&key, None);
        let mut moved = blobs.clone();
        moved[3].offset = u32::MAX;
        let (mut copy, mut errs, mut hash) = (bytes.clone(), Vec::new(), Hasher::default());
        verify_window(&key, id, &mut copy, 0, &moved, &mut hash, &mut errs);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains(&blobs[3].id.to_string())
                && errs[0].contains(&format!("at offset {} of length", u32::MAX))
                && errs[0].contains("lies outside the bytes"),
            "{errs:?}"
        );
        let (mut copy, mut errs) = (bytes.clone(), Vec::new());
        let base = u64::from(blobs[1].offset);
        verify_window(
            &key,
            id,
            &mut copy[..10],
            base,
            &blobs,
            &mut hash,
            &mut errs,
        );
        assert_eq!(errs.len(), blobs.len(), "{errs:?}");
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
            errs.iter().any(|e| e.contains(&format!(
                "offset {} of length {} ends past the {} bytes",
                bytes.len(),
                outside[3].length,
                bytes.len()
            ))),
            "{errs:?}"
        );
    }
}
