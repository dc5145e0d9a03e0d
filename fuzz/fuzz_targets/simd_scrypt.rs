//! Differential: the `simd-crypto` scrypt (lanes in pairs in half memory each, or
//! on threads; Salsa20/8 on SSE2 rows and on AVX-512 VL) against the `scrypt`
//! crate, on random passwords, salts, small costs (N up to 2^8, r and p up to 4) and
//! output lengths. Panics at once, naming the flag, on a CPU without AVX-512 F/VL
//! (the SSE2 mixer needs only the x86-64 baseline).
#![no_main]
use libfuzzer_sys::fuzz_target;
use stash_repo_format::{
    kdf::{Cost, LANE_MEMORY_BUDGET},
    simd::scrypt::{self, reference, scrypt_with, Mixer},
};

fuzz_target!(|data: &[u8]| {
    // Before anything else, so that no input passes on a CPU without the path.
    if let Some(flag) = scrypt::missing_cpu_flag() {
        panic!("simd_scrypt needs the CPU flag {flag}, which this CPU lacks");
    }
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
    for mixer in [Mixer::baseline(), Mixer::avx512()] {
        let mut got = vec![0u8; len];
        scrypt_with(password, salt, cost, &mut got, budget, mixer).unwrap();
        assert_eq!(got, want, "N=2^{log_n} r={r} p={p} {mixer:?}");
    }
});
