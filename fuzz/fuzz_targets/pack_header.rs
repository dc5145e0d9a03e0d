//! A pack read from a backend must never panic the parser, whatever its bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stash_repo_format::{crypto::Key, pack};

fuzz_target!(|data: &[u8]| {
    let key = Key::from_kdf_output(&[7u8; 64]);
    let _ = pack::parse_pack(&key, data);
    if data.len() >= 4 {
        let _ = pack::header_len_from_trailer(data, data.len() as u64);
    }
});
