//! Differential: the AVX-512 IFMA Poly1305 fast path (`simd-crypto`) against the
//! `poly1305` crate, on random one-time keys (and the all-ones key, every limb at
//! its largest), lengths and buffer offsets. Panics at once, naming the flag, on a
//! CPU without AVX-512 IFMA.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stash_repo_format::simd::poly1305;

fuzz_target!(|data: &[u8]| {
    // Before anything else, so that no input passes on a CPU without the path.
    if let Some(flag) = poly1305::missing_cpu_flag() {
        panic!("simd_poly1305 needs the CPU flag {flag}, which this CPU lacks");
    }
    // key (32) | mode (1) | message
    if data.len() < 33 {
        return;
    }
    let (head, msg) = data.split_at(33);
    let mut key: [u8; 32] = head[..32].try_into().unwrap();
    let mode = head[32];
    if mode & 1 == 1 {
        key = [0xff; 32];
    }
    let msg = if mode & 2 == 2 {
        // Every byte 0xff: the largest message limbs.
        vec![0xff; msg.len()]
    } else {
        msg.to_vec()
    };
    let offset = usize::from(mode >> 2);
    let mut buf = vec![0u8; offset + msg.len()];
    buf[offset..].copy_from_slice(&msg);
    assert_eq!(
        poly1305::tag(&key, &buf[offset..]),
        poly1305::reference(&key, &msg),
        "length {}, offset {offset}",
        msg.len()
    );
});
