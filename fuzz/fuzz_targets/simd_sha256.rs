//! Differential: the SHA-NI SHA-256 fast path (`simd-crypto`), one stream and two
//! interleaved, against the `sha2` crate: two streams fed in pieces of random
//! lengths, pairwise and alone, and each pair's second piece also hashed alone.
//! Panics at once, naming the flag, on a CPU without the SHA extensions.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stash_repo_format::simd::sha256::{reference, Hasher};

fuzz_target!(|data: &[u8]| {
    let (mut a, mut b) = (Hasher::new(), Hasher::new());
    let (mut whole_a, mut whole_b) = (Vec::new(), Vec::new());
    let mut rest = data;
    // Each step: a header of three bytes (the two piece lengths, up to 1 KiB each,
    // and how to feed them), then the pieces' bytes.
    while rest.len() >= 3 {
        let len = |hi: u8, lo: u8| (usize::from(hi & 3) << 8 | usize::from(lo)).min(rest.len() - 3);
        let (la, how) = (len(rest[2] >> 2, rest[0]), rest[2] & 3);
        let body = &rest[3..];
        let x = &body[..la];
        let lb = len(rest[2] >> 4, rest[1]).min(body.len() - la);
        let y = &body[la..la + lb];
        match how {
            0 => a.update_pair(x, &mut b, y),
            1 => b.update_pair(y, &mut a, x),
            2 => {
                let mut message = Hasher::new();
                a.update_pair(x, &mut message, y);
                assert_eq!(message.finish(), reference(y));
                b.update(y);
            }
            _ => {
                a.update(x);
                b.update(y);
            }
        }
        whole_a.extend_from_slice(x);
        whole_b.extend_from_slice(y);
        rest = &body[la + lb..];
    }
    assert_eq!(a.finish(), reference(&whole_a));
    assert_eq!(b.finish(), reference(&whole_b));
});
