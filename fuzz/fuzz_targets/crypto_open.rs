//! Arbitrary ciphertext must be rejected by the MAC, never decrypted or panicked on.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stash_repo_format::{blob, crypto::Key, Id};

fuzz_target!(|data: &[u8]| {
    let key = Key::from_kdf_output(&[3u8; 64]);
    assert!(key.open(data).is_err());
    let _ = blob::decode(&key, &Id::hash(data), data, Some(data.len() as u32));
    let sealed = key.seal(data);
    assert_eq!(key.open(&sealed).unwrap(), data);
});
