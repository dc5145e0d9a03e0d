//! Differential: the VAES AES-256-CTR fast path (`simd-crypto`) against the `aes` +
//! `ctr` crates, on random keys, counters (many near the 64-bit and the 128-bit
//! wrap), lengths, buffer offsets, and a message split into two pieces at a block
//! boundary (the second starting at a later counter, as `Key::open_pieces` does).
//! Panics at once, naming the flag, on a CPU without VAES and AVX-512 F/BW.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stash_repo_format::simd::aes_ctr;

fuzz_target!(|data: &[u8]| {
    // Before anything else, so that no input passes on a CPU without the path.
    if let Some(flag) = aes_ctr::missing_cpu_flag() {
        panic!("simd_aes_ctr needs the CPU flag {flag}, which this CPU lacks");
    }
    // key (32) | counter (16) | split (2) | mode (1) | offset (1) | message
    if data.len() < 52 {
        return;
    }
    let (head, msg) = data.split_at(52);
    let key: [u8; 32] = head[..32].try_into().unwrap();
    let mut ctr = u128::from_be_bytes(head[32..48].try_into().unwrap());
    let split = usize::from(u16::from_le_bytes([head[48], head[49]]));
    let (mode, offset) = (head[50], usize::from(head[51] % 64));
    let near = u64::from(mode >> 2);
    match mode % 4 {
        // The low 64 bits a few blocks short of wrapping into the high half.
        1 => ctr = (ctr >> 64 << 64) | u128::from(u64::MAX - near),
        // The whole counter a few blocks short of wrapping to zero.
        2 => ctr = u128::MAX - u128::from(near),
        _ => {}
    }
    let iv = ctr.to_be_bytes();
    let mut want = msg.to_vec();
    aes_ctr::reference(&key, &iv, &mut want);

    // The whole message at an arbitrary alignment.
    let mut buf = vec![0u8; offset + msg.len()];
    buf[offset..].copy_from_slice(msg);
    aes_ctr::apply_keystream(&key, &iv, &mut buf[offset..]);
    assert_eq!(&buf[offset..], &want[..], "whole message");

    // Two pieces, the second from the counter after the first.
    let at = split % (msg.len() + 1) / 16 * 16;
    let mut got = msg.to_vec();
    let (first, second) = got.split_at_mut(at);
    aes_ctr::apply_keystream(&key, &iv, first);
    let later = ctr.wrapping_add((at / 16) as u128).to_be_bytes();
    aes_ctr::apply_keystream(&key, &later, second);
    assert_eq!(got, want, "split at {at}");
});
