//! Index files: arbitrary bytes decode to an error or a value, never a panic; a
//! decoded index (and one built from the input's bytes) re-encodes to JSON that
//! decodes to the same value and encodes to the same bytes, and the in-memory lookup
//! built from it finds every entry where the file says it is.
#![no_main]
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use stash_repo_format::index::{BlobLocation, IndexBlob, IndexFile, IndexLookupBuilder, IndexPack};

#[path = "structured.rs"]
mod structured;

fn round_trip(f: &IndexFile) {
    let json = f.to_json();
    assert_eq!(json.last(), Some(&b'\n'), "to_json ends with a newline");
    let back = IndexFile::from_json(&json).expect("an encoded index decodes");
    assert_eq!(&back, f);
    assert_eq!(back.to_json(), json, "encoding is a fixed point");
    assert_eq!(back.blob_count(), f.blob_count());
}

fn lookup_agrees(f: &IndexFile) {
    let mut b = IndexLookupBuilder::default();
    for p in &f.packs {
        b.add_pack(p.id, &p.blobs);
    }
    let lookup = b.build();
    assert_eq!(
        lookup.len(),
        f.blob_count(),
        "every entry is kept, duplicates too"
    );
    let mut first_seen = Vec::new();
    for p in &f.packs {
        if !first_seen.contains(&p.id) {
            first_seen.push(p.id);
        }
    }
    assert_eq!(lookup.packs(), &first_seen[..], "packs once each, in order");
    for p in &f.packs {
        for blob in &p.blobs {
            let want = BlobLocation {
                pack: p.id,
                offset: blob.offset,
                length: blob.length,
                // A compressed blob is never empty: 0 reads as uncompressed.
                uncompressed_length: blob.uncompressed_length.filter(|&n| n > 0),
            };
            assert!(lookup.contains(blob.ty, &blob.id));
            assert!(lookup.get(blob.ty, &blob.id).is_some());
            assert!(
                lookup.get_all(blob.ty, &blob.id).contains(&want),
                "{:?} {} not found at {want:?}",
                blob.ty,
                blob.id
            );
        }
    }
    let all: Vec<_> = lookup.iter().collect();
    assert_eq!(all.len(), lookup.len());
    assert!(
        all.windows(2).all(|w| w[0].0 != w[1].0 || w[0].1 <= w[1].1),
        "iter is in id order per type"
    );
}

fn structured(u: &mut Unstructured<'_>) -> libfuzzer_sys::arbitrary::Result<IndexFile> {
    let mut f = IndexFile::default();
    for _ in 0..u.int_in_range(0..=3u8)? {
        f.supersedes.push(structured::id(u)?);
    }
    let pack_ids: Vec<_> = (0..u.int_in_range(1..=3u8)?)
        .map(|_| structured::id(u))
        .collect::<Result<_, _>>()?;
    for _ in 0..u.int_in_range(0..=5u8)? {
        let mut p = IndexPack {
            id: *u.choose(&pack_ids)?,
            blobs: Vec::new(),
        };
        for _ in 0..u.int_in_range(0..=6u8)? {
            // Ids drawn from few values, so duplicates across packs and types occur.
            let id = if u.arbitrary()? {
                stash_repo_format::Id([u.int_in_range(0..=3u8)?; 32])
            } else {
                structured::id(u)?
            };
            p.blobs.push(IndexBlob {
                id,
                ty: structured::blob_type(u)?,
                offset: u.arbitrary()?,
                length: u.arbitrary()?,
                uncompressed_length: u.arbitrary()?,
            });
        }
        f.packs.push(p);
    }
    Ok(f)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = IndexFile::from_json(data) {
        round_trip(&f);
        lookup_agrees(&f);
    }
    if let Ok(f) = structured(&mut Unstructured::new(data)) {
        round_trip(&f);
        lookup_agrees(&f);
    }
});
