//! Index, tree, snapshot, lock, key and config documents: decoding arbitrary bytes
//! returns an error or a value, never a panic; a decoded tree re-encodes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stash_repo_format::{config::Config, index::IndexFile, key::KeyFile, lock::Lock, snapshot::Snapshot, tree::Tree, unpacked};

fuzz_target!(|data: &[u8]| {
    let _ = IndexFile::from_json(data);
    if let Ok(t) = Tree::decode(data) {
        let _ = t.encode();
    }
    let _ = Snapshot::decode(data);
    let _ = Lock::decode(data);
    let _ = KeyFile::from_bytes(data);
    let _ = Config::from_json(data);
    let _ = unpacked::decode("fuzz", data.to_vec());
});
