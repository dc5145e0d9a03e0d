//! AES-256 in counter mode with a 128-bit big-endian counter (restic's, Go's
//! `cipher.NewCTR`): every blob is encrypted and decrypted with it.
//!
//! Where the CPU has VAES and AVX-512, one instruction runs an AES round on four
//! blocks, and 32 blocks are in flight at once: about twice the speed of the `aes`
//! crate's AES-NI path, which handles every other CPU.

use aes::cipher::{KeyIvInit, StreamCipher};

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// XORs `data` with the keystream of `key` starting at counter block `iv`.
pub fn apply_keystream(key: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    if x86::available() {
        x86::apply_keystream(key, u128::from_be_bytes(*iv), data);
    } else {
        portable(key, iv, data);
    }
}

/// The `aes` crate's CTR mode: the reference the fast path is tested against.
fn portable(key: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    Aes256Ctr::new(key.into(), iv.into()).apply_keystream(data);
}

/// The VAES path. The intrinsics are `unsafe` because they need CPU features:
/// [`apply_keystream`] checks them at run time ([`available`]), and memory is
/// only touched through unaligned loads and stores of whole vectors inside the key,
/// `data` or a stack buffer. The key schedule uses AESKEYGENASSIST, so no table is
/// indexed by key bytes.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use core::arch::x86_64::{
        __m128i, __m512i, _mm512_add_epi64, _mm512_aesenc_epi128, _mm512_aesenclast_epi128,
        _mm512_broadcast_i32x4, _mm512_loadu_si512, _mm512_set_epi64, _mm512_shuffle_epi8,
        _mm512_storeu_si512, _mm512_xor_si512, _mm_aeskeygenassist_si128, _mm_loadu_si128,
        _mm_shuffle_epi32, _mm_slli_si128, _mm_xor_si128,
    };

    /// Blocks per pass: eight vectors of four, enough to hide VAES's latency.
    const BLOCKS: usize = 32;
    const BYTES: usize = BLOCKS * 16;

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("vaes")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }

    /// XORs `data` with the keystream of `key` from counter `ctr`.
    pub fn apply_keystream(key: &[u8; 32], mut ctr: u128, data: &mut [u8]) {
        assert!(available());
        // SAFETY: the features were checked just above.
        let rk = unsafe { expand_key(key) };
        let rk = &rk;
        let mut chunks = data.chunks_exact_mut(BYTES);
        for chunk in &mut chunks {
            // SAFETY: the features were checked above; `chunk` is BYTES long.
            unsafe { pass(rk, ctr, chunk) };
            ctr = ctr.wrapping_add(BLOCKS as u128);
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; BYTES];
            buf[..rest.len()].copy_from_slice(rest);
            // SAFETY: as above; `buf` is BYTES long.
            unsafe { pass(rk, ctr, &mut buf) };
            rest.copy_from_slice(&buf[..rest.len()]);
        }
    }

    /// The 15 round keys of AES-256 (FIPS 197, 5.2).
    #[target_feature(enable = "aes,sse2")]
    unsafe fn expand_key(key: &[u8; 32]) -> [__m128i; 15] {
        // Each word XORed with all the words before it in its round key.
        let spread = |k: __m128i| {
            let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            _mm_xor_si128(k, _mm_slli_si128::<4>(k))
        };
        // SAFETY: two 16-byte loads inside the 32-byte key.
        let (mut a, mut b) = unsafe {
            (
                _mm_loadu_si128(key.as_ptr().cast()),
                _mm_loadu_si128(key.as_ptr().add(16).cast()),
            )
        };
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

    /// The round keys as bytes (for the tests).
    #[cfg(test)]
    pub fn round_keys(key: &[u8; 32]) -> [[u8; 16]; 15] {
        assert!(available());
        // SAFETY: the features were checked just above.
        let rk = unsafe { expand_key(key) };
        rk.map(|k| {
            use core::arch::x86_64::_mm_storeu_si128;
            let mut out = [0u8; 16];
            // SAFETY: a 16-byte store into `out`.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), k) };
            out
        })
    }

    /// One pass over exactly [`BYTES`] bytes.
    #[target_feature(enable = "vaes,avx512f,avx512bw")]
    unsafe fn pass(rk: &[__m128i; 15], ctr: u128, chunk: &mut [u8]) {
        debug_assert_eq!(chunk.len(), BYTES);
        let keys: [__m512i; 15] = core::array::from_fn(|r| _mm512_broadcast_i32x4(rk[r]));
        let blocks = counters(ctr);
        let mut x: [__m512i; BLOCKS / 4] =
            core::array::from_fn(|v| _mm512_xor_si512(blocks[v], keys[0]));
        for key in &keys[1..14] {
            for v in &mut x {
                *v = _mm512_aesenc_epi128(*v, *key);
            }
        }
        let p = chunk.as_mut_ptr();
        for (i, v) in x.iter().enumerate() {
            let ks = _mm512_aesenclast_epi128(*v, keys[14]);
            // SAFETY: vector i covers bytes 64i..64i+64 of the BYTES-long chunk.
            unsafe {
                let at = p.add(64 * i).cast::<__m512i>();
                _mm512_storeu_si512(at, _mm512_xor_si512(_mm512_loadu_si512(at), ks));
            }
        }
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

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    pub fn available() -> bool {
        false
    }
    pub fn apply_keystream(_: &[u8; 32], _: u128, _: &mut [u8]) {
        unreachable!("no VAES on this architecture")
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, RngCore};

    use super::*;

    /// FIPS 197, A.3: the first and last round keys of the example AES-256 key.
    #[test]
    fn the_key_schedule_is_fips_197() {
        if !x86::available() {
            eprintln!("no VAES here: the aes crate's path is the only one");
            return;
        }
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let rk = x86::round_keys(&key);
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
    /// the data, give the `aes` crate's bytes.
    #[test]
    fn the_keystream_is_the_aes_crates() {
        if !x86::available() {
            eprintln!("no VAES here: the aes crate's path is compared with itself");
        }
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
            let (mut fast, mut reference) = (data.clone(), data);
            apply_keystream(&key, &iv, &mut fast);
            portable(&key, &iv, &mut reference);
            assert!(fast == reference, "length {len}, iv {iv:x?}");
        }
    }
}
