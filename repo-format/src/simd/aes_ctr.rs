//! AES-256 in counter mode with a 128-bit big-endian counter (restic's, Go's
//! `cipher.NewCTR`) on VAES: one instruction runs an AES round on four blocks, and
//! 32 blocks are in flight at once, about twice the speed of the `aes` crate's
//! AES-NI path.
//!
//! The key schedule uses AESKEYGENASSIST, so no table is indexed by key bytes; memory
//! is only touched through unaligned whole-vector loads and stores inside `data` or a
//! stack buffer.

use aes::cipher::{KeyIvInit, StreamCipher};

use super::CpuFlag;

/// The first CPU flag the VAES path needs that this CPU lacks.
pub fn missing_cpu_flag() -> Option<CpuFlag> {
    #[cfg(target_arch = "x86_64")]
    return super::first_missing!(
        ("aes", "aes"),
        ("vaes", "vaes"),
        ("avx512f", "avx512f"),
        ("avx512bw", "avx512bw"),
    );
    #[cfg(not(target_arch = "x86_64"))]
    Some(super::X86_64)
}

/// Whether the CPU has what [`apply_keystream`] needs.
pub fn available() -> bool {
    missing_cpu_flag().is_none()
}

/// Whether [`crate::crypto`] takes this path: switched on and the CPU has it.
pub(crate) fn in_use() -> bool {
    static IN_USE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    super::in_use(&IN_USE, missing_cpu_flag)
}

/// The `aes` and `ctr` crates' keystream XORed into `data`: what the default build
/// runs, and what the fast path is held to.
pub fn reference(key: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    ctr::Ctr128BE::<aes::Aes256>::new(key.into(), iv.into()).apply_keystream(data);
}

/// XORs `data` with the keystream of `key` starting at counter block `iv`, on VAES.
///
/// # Panics
/// When the CPU lacks one of the flags (named in the message).
pub fn apply_keystream(key: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    super::require("the VAES AES-256-CTR path", missing_cpu_flag());
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `require` returned, so the CPU has every feature `keystream`
        // enables.
        unsafe { x86::keystream(key, u128::from_be_bytes(*iv), data) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (key, iv, data);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::{
        __m128i, __m512i, _mm512_add_epi64, _mm512_aesenc_epi128, _mm512_aesenclast_epi128,
        _mm512_broadcast_i32x4, _mm512_loadu_si512, _mm512_set_epi64, _mm512_shuffle_epi8,
        _mm512_storeu_si512, _mm512_xor_si512, _mm_aeskeygenassist_si128, _mm_set_epi64x,
        _mm_shuffle_epi32, _mm_slli_si128, _mm_xor_si128,
    };

    /// Blocks per pass: eight vectors of four, enough to hide VAES's latency.
    const BLOCKS: usize = 32;
    const BYTES: usize = BLOCKS * 16;

    /// XORs `data` with the keystream of `key` from counter `ctr`.
    #[target_feature(enable = "aes,vaes,avx512f,avx512bw")]
    pub fn keystream(key: &[u8; 32], mut ctr: u128, data: &mut [u8]) {
        let rk = expand_key(key);
        let (chunks, rest) = data.as_chunks_mut::<BYTES>();
        for chunk in chunks {
            pass(&rk, ctr, chunk);
            ctr = ctr.wrapping_add(BLOCKS as u128);
        }
        if !rest.is_empty() {
            let mut buf = [0u8; BYTES];
            buf[..rest.len()].copy_from_slice(rest);
            pass(&rk, ctr, &mut buf);
            rest.copy_from_slice(&buf[..rest.len()]);
        }
    }

    /// The 15 round keys of AES-256 (FIPS 197, 5.2).
    #[target_feature(enable = "aes")]
    pub fn expand_key(key: &[u8; 32]) -> [__m128i; 15] {
        // Each word XORed with all the words before it in its round key.
        let spread = |k: __m128i| {
            let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            _mm_xor_si128(k, _mm_slli_si128::<4>(k))
        };
        let half = |at: usize| {
            let word = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&key[at + i..at + i + 8]);
                i64::from_le_bytes(w)
            };
            _mm_set_epi64x(word(8), word(0))
        };
        let (mut a, mut b) = (half(0), half(16));
        let mut rk = [a; 15];
        rk[1] = b;
        macro_rules! round_pair {
            ($i:expr, $rcon:expr) => {
                a = _mm_xor_si128(
                    spread(a),
                    _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(b)),
                );
                rk[$i] = a;
                b = _mm_xor_si128(
                    spread(b),
                    _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>(a)),
                );
                rk[$i + 1] = b;
            };
        }
        round_pair!(2, 0x01);
        round_pair!(4, 0x02);
        round_pair!(6, 0x04);
        round_pair!(8, 0x08);
        round_pair!(10, 0x10);
        round_pair!(12, 0x20);
        rk[14] = _mm_xor_si128(
            spread(a),
            _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<0x40>(b)),
        );
        rk
    }

    /// One pass over exactly [`BYTES`] bytes.
    #[target_feature(enable = "vaes,avx512f,avx512bw")]
    fn pass(rk: &[__m128i; 15], ctr: u128, chunk: &mut [u8; BYTES]) {
        let keys: [__m512i; 15] = core::array::from_fn(|r| _mm512_broadcast_i32x4(rk[r]));
        let blocks = counters(ctr);
        let mut x: [__m512i; BLOCKS / 4] =
            core::array::from_fn(|v| _mm512_xor_si512(blocks[v], keys[0]));
        for key in &keys[1..14] {
            for v in &mut x {
                *v = _mm512_aesenc_epi128(*v, *key);
            }
        }
        let (vectors, _) = chunk.as_chunks_mut::<64>();
        for (v, bytes) in x.iter().zip(vectors) {
            let ks = _mm512_aesenclast_epi128(*v, keys[14]);
            xor_into(bytes, ks);
        }
    }

    /// XORs `ks` into the 64 bytes of `bytes`.
    #[target_feature(enable = "avx512f")]
    fn xor_into(bytes: &mut [u8; 64], ks: __m512i) {
        let at = bytes.as_mut_ptr().cast::<__m512i>();
        // SAFETY: an unaligned load and store of exactly the 64 bytes `bytes`
        // borrows mutably; the CPU has AVX-512 F (this function's feature).
        unsafe { _mm512_storeu_si512(at, _mm512_xor_si512(_mm512_loadu_si512(at), ks)) };
    }

    /// The counter blocks `ctr..ctr + BLOCKS`, big-endian, four to a vector.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn counters(ctr: u128) -> [__m512i; BLOCKS / 4] {
        let (lo, hi) = (ctr as u64, (ctr >> 64) as u64);
        // Reverses each 128-bit lane: (low half, high half), each little-endian,
        // becomes the big-endian block.
        let swap = _mm512_set_epi64(
            0x0001_0203_0405_0607,
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
            0x0809_0a0b_0c0d_0e0f,
        );
        if lo.checked_add(BLOCKS as u64).is_some() {
            let first = _mm512_set_epi64(
                hi as i64,
                (lo + 3) as i64,
                hi as i64,
                (lo + 2) as i64,
                hi as i64,
                (lo + 1) as i64,
                hi as i64,
                lo as i64,
            );
            let four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
            let mut c = first;
            core::array::from_fn(|_| {
                let block = _mm512_shuffle_epi8(c, swap);
                c = _mm512_add_epi64(c, four);
                block
            })
        } else {
            // The low 64 bits wrap within this pass: carry into the high half.
            core::array::from_fn(|v| {
                let half = |j: usize| {
                    let c = ctr.wrapping_add((4 * v + j) as u128);
                    (c as u64 as i64, (c >> 64) as u64 as i64)
                };
                let ((l0, h0), (l1, h1)) = (half(0), half(1));
                let ((l2, h2), (l3, h3)) = (half(2), half(3));
                _mm512_shuffle_epi8(_mm512_set_epi64(h3, l3, h2, l2, h1, l1, h0, l0), swap)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::{Rng, RngCore};

    use super::*;

    /// FIPS 197, A.3: the first and last round keys of the example AES-256 key.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_key_schedule_is_fips_197() {
        super::super::require(
            "the AES-NI key schedule",
            super::super::first_missing!(("aes", "aes")),
        );
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        // SAFETY: `require` returned, so the CPU has AES-NI.
        let rk = unsafe { x86::expand_key(&key) };
        // SAFETY: a 128-bit vector and 16 bytes have the same size, and every bit
        // pattern is a valid `[u8; 16]`.
        let rk: [[u8; 16]; 15] = rk.map(|k| unsafe { core::mem::transmute(k) });
        assert_eq!(rk[0], core::array::from_fn::<u8, 16, _>(|i| i as u8));
        assert_eq!(
            rk[14],
            [
                0x24, 0xfc, 0x79, 0xcc, 0xbf, 0x09, 0x79, 0xe9, 0x37, 0x1a, 0xc2, 0x3c, 0x6d, 0x68,
                0xde, 0x36
            ]
        );
    }

    /// Every length around the pass size, and counters whose low half wraps within
    /// the data (or the whole counter), give the `aes` crate's bytes. Fails on a CPU
    /// without VAES and AVX-512 (F, BW), naming the flag.
    #[test]
    fn the_vaes_keystream_is_the_aes_crates() {
        let mut rng = rand::thread_rng();
        for len in (0..1100).chain([4096, 65_536 + 17, 1 << 20]) {
            let mut key = [0u8; 32];
            let mut iv = [0u8; 16];
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut iv);
            if len % 3 == 0 {
                // Low 64 bits a few blocks short of wrapping.
                iv[8..].copy_from_slice(&(u64::MAX - rng.gen_range(0..40u64)).to_be_bytes());
            }
            if len % 7 == 0 {
                iv = [0xff; 16];
            }
            let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let (mut fast, mut want) = (data.clone(), data);
            apply_keystream(&key, &iv, &mut fast);
            reference(&key, &iv, &mut want);
            assert!(fast == want, "length {len}, iv {iv:x?}");
        }
    }

    /// Random keys, lengths and starting offsets within a message (a piece of
    /// `Key::open_pieces` starts at a later counter), near the 64-bit and 128-bit
    /// counter wraps.
    #[test]
    fn the_vaes_keystream_is_the_aes_crates_proptest() {
        super::super::require("the VAES AES-256-CTR path", missing_cpu_flag());
        let wraps = prop_oneof![
            any::<u128>(),
            (0..64u128).prop_map(|d| u128::from(u64::MAX) - d),
            (0..64u128).prop_map(|d| u128::MAX - d),
        ];
        proptest!(|(
            key in any::<[u8; 32]>(),
            ctr in wraps,
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            offset in 0..3000usize,
        )| {
            let offset = offset.min(data.len()) / 16 * 16;
            let iv = ctr.to_be_bytes();
            let mut want = data.clone();
            reference(&key, &iv, &mut want);
            let mut fast = data.clone();
            apply_keystream(&key, &iv, &mut fast[..offset]);
            let later = ctr.wrapping_add((offset / 16) as u128).to_be_bytes();
            apply_keystream(&key, &later, &mut fast[offset..]);
            prop_assert_eq!(fast, want);
        });
    }
}
