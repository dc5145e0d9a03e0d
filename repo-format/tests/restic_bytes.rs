//! Decodes every file of the small repositories restic 0.14 wrote under
//! `tests/fixtures/` (see `make-fixtures.sh`; password `fixture`), using only this
//! crate: key file, config, index files, pack headers against the index, every blob's
//! MAC, decompression and hash, trees re-encoding to their exact ids, snapshots.

use std::{collections::HashMap, fs, path::Path};

use stash_repo_format::{
    blob::{self, BlobType},
    config::Config,
    index::IndexFile,
    key::KeyFile,
    pack::{self, PackedBlob},
    snapshot::Snapshot,
    tree::Tree,
    unpacked, Id,
};

fn files(dir: &Path) -> Vec<(Id, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if let Ok(id) = Id::from_hex(&e.file_name().to_string_lossy()) {
            let bytes = fs::read(&p).unwrap();
            assert_eq!(Id::hash(&bytes), id, "{} is named by its hash", p.display());
            out.push((id, bytes));
        }
    }
    out
}

fn check_repo(name: &str, version: u32) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    let keys = files(&root.join("keys"));
    assert_eq!(keys.len(), 1);
    let kf = KeyFile::from_bytes(&keys[0].1).unwrap();
    assert!(kf.open(b"wrong").is_err());
    let master = kf.open(b"fixture").unwrap();

    let config = Config::from_json(
        &master
            .open(&fs::read(root.join("config")).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(config.version, version);
    assert!(config.polynomial().unwrap().is_irreducible());

    let mut indexed: HashMap<Id, Vec<PackedBlob>> = HashMap::new();
    for (id, bytes) in files(&root.join("index")) {
        let json = unpacked::decode("index", master.open(&bytes).unwrap()).unwrap();
        assert_eq!(json[0], b'{', "index {id}");
        for p in IndexFile::from_json(&json).unwrap().packs {
            indexed.insert(p.id, p.blobs.iter().map(PackedBlob::from).collect());
        }
    }
    let packs = files(&root.join("data"));
    assert_eq!(packs.len(), indexed.len());
    let mut trees = 0;
    for (id, bytes) in &packs {
        let mut header = pack::parse_pack(&master, bytes).unwrap();
        let mut from_index = indexed[id].clone();
        header.sort_by_key(|b| b.offset);
        from_index.sort_by_key(|b| b.offset);
        assert_eq!(header, from_index, "pack {id}: header and index agree");
        assert_eq!(pack::expected_size(&header), bytes.len() as u64);
        for b in header {
            assert_eq!(
                b.uncompressed_length.is_some(),
                version == 2,
                "compression matches the version"
            );
            let sealed = &bytes[b.offset as usize..(b.offset + b.length) as usize];
            let plain = blob::decode(&master, &b.id, sealed, b.uncompressed_length).unwrap();
            if b.ty == BlobType::Tree {
                let tree = Tree::decode(&plain).unwrap();
                assert_eq!(
                    tree.encode().unwrap(),
                    plain,
                    "tree {} re-encodes byte for byte",
                    b.id
                );
                trees += 1;
            }
        }
    }
    assert!(trees > 0);
    let snaps = files(&root.join("snapshots"));
    assert_eq!(snaps.len(), 2);
    for (id, bytes) in snaps {
        let json = unpacked::decode("snapshot", master.open(&bytes).unwrap()).unwrap();
        let s = Snapshot::decode(&json).unwrap();
        let tree = s.tree.unwrap();
        assert!(
            indexed
                .values()
                .flatten()
                .any(|b| b.id == tree && b.ty == BlobType::Tree),
            "snapshot {id}"
        );
    }
}

#[test]
fn restic_v2_repository_decodes() {
    check_repo("restic-v2", 2);
}

#[test]
fn restic_v1_repository_decodes() {
    check_repo("restic-v1", 1);
}
