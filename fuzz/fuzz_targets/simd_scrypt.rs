//! Differential: the `simd-crypto` scrypt (lanes in pairs in half memory each, or
//! on threads; Salsa20/8 on SSE2 rows) against the `scrypt` crate, on random
//! passwords, salts, small costs (N up to 2^8, r and p up to 4) and output lengths.
//! The path needs only the x86-64 baseline (SSE2), so it runs on every x86-64 CPU.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stash_repo_format::{
    kdf::{Cost, LANE_MEMORY_BUDGET},
    simd::scrypt::{reference, scrypt_with},
};

fuzz_target!(|data: &[u8]| {
    // cost (2) | output length (1) | password length (1) | password | salt
    if data.len() < 4 {
        return;
    }
    let log_n = 1 + u32::from(data[0] % 8);
    let (r, p) = (1 + u32::from(data[1] & 3), 1 + u32::from(data[1] >> 2 & 3));
    let budget = if data[1] & 0x10 == 0 {
        0
    } else {
        LANE_MEMORY_BUDGET
    };
    let len = 1 + usize::from(data[2] % 64);
    let rest = &data[4..];
    let (password, salt) = rest.split_at(usize::from(data[3]).min(rest.len()));
    let cost = Cost::new(1 << log_n, r, p).unwrap();
    let mut want = vec![0u8; len];
    reference(password, salt, cost, &mut want).unwrap();
    let mut got = vec![0u8; len];
    scrypt_with(password, salt, cost, &mut got, budget).unwrap();
    assert_eq!(got, want, "N=2^{log_n} r={r} p={p} budget {budget}");
});
