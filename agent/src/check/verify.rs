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
    /// Per verifying thread: compressed blobs inflate here only to be hashed.
    static PLAIN: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A decoded blob waiting for its plaintext to be hashed.
struct Decoded<'h> {
    blob: &'h PackedBlob,
    /// Where the plaintext lies: in the pack bytes, or (`None`) in the inflate buffer.
    in_pack: Option<Range<usize>>,
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

/// Blobs in pack order without overlaps (as every writer stores them).
fn verify_blobs_paired(
    key: &Key,
    id: Id,
    bytes: &mut [u8],
    header: &[PackedBlob],
    errs: &mut Vec<String>,
) {
    PLAIN.with(|buf| {
        let buf = &mut *buf.borrow_mut();
        let mut pack_hash = Hasher::default();
        let mut hashed = 0usize;
        let mut waiting: Option<Decoded> = None;
        for h in header {
            let blob_end = end(h);
            hash_with_waiting(
                &mut pack_hash,
                &bytes[..],
                hashed..blob_end,
                waiting.take(),
                buf,
                id,
                errs,
            );
            hashed = blob_end;
            let sealed = &mut bytes[h.offset as usize..blob_end];
            match blob::open_in_place(key, sealed, h.uncompressed_length, buf) {
                Ok(plain) => {
                    let start = h.offset as usize + 16;
                    waiting = Some(Decoded {
                        blob: h,
                        in_pack: (!blob::inflates(h.uncompressed_length))
                            .then_some(start..start + plain.len()),
                    });
                }
                Err(e) => blob_error(id, h, e, errs),
            }
        }
        let all = bytes.len();
        hash_with_waiting(
            &mut pack_hash,
            &bytes[..],
            hashed..all,
            waiting,
            buf,
            id,
            errs,
        );
        pack_hash_error(id, pack_hash.finish(), errs);
    });
}

/// Feeds `bytes[range]` to the pack hash while hashing the plaintext of `waiting`,
/// and reports a blob whose plaintext does not hash to its id.
fn hash_with_waiting(
    pack_hash: &mut Hasher,
    bytes: &[u8],
    range: Range<usize>,
    waiting: Option<Decoded>,
    inflated: &[u8],
    id: Id,
    errs: &mut Vec<String>,
) {
    let Some(w) = waiting else {
        pack_hash.update(&bytes[range]);
        return;
    };
    let plain = match &w.in_pack {
        Some(r) => &bytes[r.clone()],
        None => inflated,
    };
    let got = pack_hash.update_and_hash(&bytes[range], plain);
    if let Err(e) = blob::verify_id(&w.blob.id, got) {
        blob_error(id, w.blob, e, errs);
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
        let Some(sealed) = bytes.get_mut(h.offset as usize..end(h)) else {
            blob_error(id, h, "lies outside the pack", errs);
            continue;
        };
        let decoded = PLAIN.with(|buf| {
            let plain = &mut buf.borrow_mut();
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
