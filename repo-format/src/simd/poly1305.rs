//! Poly1305 over a whole message on AVX-512 IFMA (52-bit multiply-add): eight
//! blocks are hashed at once, lane `j` of the accumulator gathering blocks `j, j + 8,
//! ...`, each step multiplying by `r^8`, and the lanes are joined at the end with
//! `r^8 .. r^1`. Numbers are three limbs of 44, 44 and 42 bits, so every limb fits
//! the 52 bits the instructions multiply. The message's last partial group of 128
//! bytes goes through the scalar code here, block by block.

use poly1305::{universal_hash::KeyInit, Poly1305};

use super::CpuFlag;

/// Messages shorter than this are not worth the vector set-up: [`crate::crypto`]
/// hands them to the `poly1305` crate.
pub const MIN_WIDE: usize = 256;
const M44: u64 = (1 << 44) - 1;
const M42: u64 = (1 << 42) - 1;

/// The first CPU flag the IFMA path needs that this CPU lacks.
pub fn missing_cpu_flag() -> Option<CpuFlag> {
    #[cfg(target_arch = "x86_64")]
    return super::first_missing!(("avx512ifma", "avx512ifma"), ("avx512f", "avx512f"));
    #[cfg(not(target_arch = "x86_64"))]
    Some(super::X86_64)
}

/// Whether the CPU has what [`tag`] needs.
pub fn available() -> bool {
    missing_cpu_flag().is_none()
}

/// Whether [`crate::crypto`] takes this path: switched on and the CPU has it.
pub(crate) fn in_use() -> bool {
    static IN_USE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    super::in_use(&IN_USE, missing_cpu_flag)
}

/// The `poly1305` crate's tag: what the default build computes, and what the fast
/// path is held to.
pub fn reference(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    Poly1305::new(key.into()).compute_unpadded(msg).into()
}

/// The Poly1305 tag of `msg` under the one-time key `key` (`r || s`), its whole
/// 128-byte groups on IFMA, at any length.
///
/// # Panics
/// When the CPU lacks one of the flags (named in the message).
pub fn tag(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    super::require("the AVX-512 IFMA Poly1305 path", missing_cpu_flag());
    let r = clamp(key);
    let wide = msg.len() / 128 * 128;
    let (head, tail) = msg.split_at(wide);
    let mut h = if head.is_empty() {
        [0; 3]
    } else {
        wide_blocks(r, head)
    };
    for block in tail.chunks(16) {
        h = add_block(h, block);
        h = mul(h, r);
    }
    finish(h, key)
}

/// The accumulator after `head` (a non-empty multiple of 128 bytes), from zero.
#[cfg(target_arch = "x86_64")]
fn wide_blocks(r: [u64; 3], head: &[u8]) -> [u64; 3] {
    super::require("the AVX-512 IFMA Poly1305 path", missing_cpu_flag());
    // SAFETY: `require` returned, so the CPU has every feature `blocks` enables.
    unsafe { x86::blocks(&powers(r), head) }
}

#[cfg(not(target_arch = "x86_64"))]
fn wide_blocks(_: [u64; 3], _: &[u8]) -> [u64; 3] {
    unreachable!("`tag` refuses every CPU but x86-64 ones")
}

/// `r` with restic's (and RFC 8439's) bits cleared, as limbs.
fn clamp(key: &[u8; 32]) -> [u64; 3] {
    let mut r = [0u8; 16];
    r.copy_from_slice(&key[..16]);
    let r = u128::from_le_bytes(r) & 0x0fff_fffc_0fff_fffc_0fff_fffc_0fff_ffff;
    limbs(r)
}

fn limbs(v: u128) -> [u64; 3] {
    [v as u64 & M44, (v >> 44) as u64 & M44, (v >> 88) as u64]
}

/// `r^1 ..= r^8`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn powers(r: [u64; 3]) -> [[u64; 3]; 8] {
    let mut p = [r; 8];
    for k in 1..8 {
        p[k] = mul(p[k - 1], r);
    }
    p
}

/// Adds a block: 16 bytes with 2^128 set, or a shorter last one with a 1 byte
/// after it.
fn add_block(h: [u64; 3], block: &[u8]) -> [u64; 3] {
    let mut b = [0u8; 17];
    b[..block.len()].copy_from_slice(block);
    b[block.len()] = 1;
    let lo = u128::from_le_bytes(b[..16].try_into().unwrap_or_default());
    let m = limbs(lo);
    [
        h[0] + m[0],
        h[1] + m[1],
        h[2] + m[2] + (u64::from(b[16]) << 40),
    ]
}

/// `h * r mod 2^130 - 5`, partly reduced: limbs below 2^44 + 2^14, 2^44 + 2^14
/// and 2^42 + 2^14, for `h` limbs below 2^52 and `r` reduced.
fn mul(h: [u64; 3], r: [u64; 3]) -> [u64; 3] {
    let w = |a: u64, b: u64| u128::from(a) * u128::from(b);
    let (s1, s2) = (20 * r[1], 20 * r[2]);
    let d0 = w(h[0], r[0]) + w(h[1], s2) + w(h[2], s1);
    let d1 = w(h[0], r[1]) + w(h[1], r[0]) + w(h[2], s2);
    let d2 = w(h[0], r[2]) + w(h[1], r[1]) + w(h[2], r[0]);
    carry([d0, d1, d2])
}

/// Carries limbs held in wider integers down to partly reduced ones.
fn carry(d: [u128; 3]) -> [u64; 3] {
    let d1 = d[1] + (d[0] >> 44);
    let d2 = d[2] + (d1 >> 44);
    let h0 = (d[0] as u64 & M44) + 5 * (d2 >> 42) as u64;
    [h0 & M44, (d1 as u64 & M44) + (h0 >> 44), d2 as u64 & M42]
}

/// Fully reduces `h` and adds `s`: the tag.
fn finish(h: [u64; 3], key: &[u8; 32]) -> [u8; 16] {
    // Below 2^130 + 2^89 < 2p now, so one subtraction of p reduces it: subtract
    // when h + 5 reaches 2^130.
    let h = carry([h[0].into(), h[1].into(), h[2].into()]);
    let g0 = h[0] + 5;
    let g1 = h[1] + (g0 >> 44);
    let g2 = h[2] + (g1 >> 44);
    let [l0, l1, l2] = if g2 >> 42 != 0 {
        [g0 & M44, g1 & M44, g2 & M42]
    } else {
        h
    };
    let v = u128::from(l0)
        .wrapping_add(u128::from(l1) << 44)
        .wrapping_add(u128::from(l2) << 88);
    let mut s = [0u8; 16];
    s.copy_from_slice(&key[16..]);
    v.wrapping_add(u128::from_le_bytes(s)).to_le_bytes()
}

/// The IFMA path: memory is only read through unaligned 64-byte loads inside
/// whole 128-byte groups of the message, and written to local arrays.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::{
        __m512i, _mm512_add_epi64, _mm512_and_si512, _mm512_loadu_si512, _mm512_madd52hi_epu64,
        _mm512_madd52lo_epu64, _mm512_or_si512, _mm512_permutex2var_epi64, _mm512_set1_epi64,
        _mm512_set_epi64, _mm512_setzero_si512, _mm512_slli_epi64, _mm512_srli_epi64,
        _mm512_storeu_si512,
    };

    use super::{M42, M44};

    /// Limb vectors of a number per lane.
    #[derive(Clone, Copy)]
    struct V([__m512i; 3]);

    /// The accumulator after `msg` (a non-empty multiple of 128 bytes), from zero.
    #[target_feature(enable = "avx512ifma,avx512f")]
    pub fn blocks(pow: &[[u64; 3]; 8], msg: &[u8]) -> [u64; 3] {
        debug_assert!(!msg.is_empty() && msg.len().is_multiple_of(128));
        let splat = |k: usize| {
            let r = pow[k];
            V(r.map(|l| _mm512_set1_epi64(l as i64)))
        };
        let r8 = splat(7);
        // Lane j ends with r^(8 - j).
        let lane = |limb: usize| {
            let p = |j: usize| pow[7 - j][limb] as i64;
            _mm512_set_epi64(p(7), p(6), p(5), p(4), p(3), p(2), p(1), p(0))
        };
        let last = V([lane(0), lane(1), lane(2)]);
        let mut acc = V([_mm512_setzero_si512(); 3]);
        let (groups, _) = msg.as_chunks::<128>();
        let n = groups.len();
        for (i, group) in groups.iter().enumerate() {
            let m = load(group);
            // Block j of group t (of n) needs r^(8 (n - t) + 8 - j): r^8 per
            // group, and the lanes' own powers for the last.
            acc = mul(add(acc, m), if i + 1 == n { last } else { r8 });
        }
        let mut out = [[0u64; 8]; 3];
        for (limb, o) in out.iter_mut().enumerate() {
            // SAFETY: an unaligned store of 64 bytes into `o`, 64 bytes borrowed
            // mutably; the CPU has AVX-512 F (this function's feature).
            unsafe { _mm512_storeu_si512(o.as_mut_ptr().cast(), acc.0[limb]) };
        }
        let sum = |limb: usize| out[limb].iter().map(|&v| u128::from(v)).sum::<u128>();
        super::carry([sum(0), sum(1), sum(2)])
    }

    /// Eight message blocks as limbs, block `j` in lane `j`, with 2^128 set.
    #[target_feature(enable = "avx512ifma,avx512f")]
    fn load(group: &[u8; 128]) -> V {
        // SAFETY: two unaligned 64-byte loads inside the 128 bytes `group` refers
        // to; the CPU has AVX-512 F (this function's feature).
        let (a, b) = unsafe {
            (
                _mm512_loadu_si512(group.as_ptr().cast()),
                _mm512_loadu_si512(group.as_ptr().add(64).cast()),
            )
        };
        let lo = _mm512_permutex2var_epi64(a, _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), b);
        let hi = _mm512_permutex2var_epi64(a, _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1), b);
        let m44 = _mm512_set1_epi64(M44 as i64);
        let m0 = _mm512_and_si512(lo, m44);
        let m1 = _mm512_and_si512(
            _mm512_or_si512(_mm512_srli_epi64::<44>(lo), _mm512_slli_epi64::<20>(hi)),
            m44,
        );
        let m2 = _mm512_or_si512(_mm512_srli_epi64::<24>(hi), _mm512_set1_epi64(1 << 40));
        V([m0, m1, m2])
    }

    #[target_feature(enable = "avx512ifma,avx512f")]
    fn add(a: V, b: V) -> V {
        V([
            _mm512_add_epi64(a.0[0], b.0[0]),
            _mm512_add_epi64(a.0[1], b.0[1]),
            _mm512_add_epi64(a.0[2], b.0[2]),
        ])
    }

    /// Per lane `h * r mod 2^130 - 5`, partly reduced as [`super::mul`].
    #[target_feature(enable = "avx512ifma,avx512f")]
    fn mul(h: V, r: V) -> V {
        let [h0, h1, h2] = h.0;
        let [r0, r1, r2] = r.0;
        let twenty =
            |x: __m512i| _mm512_add_epi64(_mm512_slli_epi64::<4>(x), _mm512_slli_epi64::<2>(x));
        let (s1, s2) = (twenty(r1), twenty(r2));
        let z = _mm512_setzero_si512();
        // Low and high 52 bits of each column's products.
        let lo = |a: [__m512i; 3], b: [__m512i; 3]| {
            let t = _mm512_madd52lo_epu64(z, a[0], b[0]);
            let t = _mm512_madd52lo_epu64(t, a[1], b[1]);
            _mm512_madd52lo_epu64(t, a[2], b[2])
        };
        let hi = |a: [__m512i; 3], b: [__m512i; 3]| {
            let t = _mm512_madd52hi_epu64(z, a[0], b[0]);
            let t = _mm512_madd52hi_epu64(t, a[1], b[1]);
            _mm512_madd52hi_epu64(t, a[2], b[2])
        };
        let c0 = [r0, s2, s1];
        let c1 = [r1, r0, s2];
        let c2 = [r2, r1, r0];
        let hs = [h0, h1, h2];
        let (d0l, d0h) = (lo(hs, c0), hi(hs, c0));
        let (d1l, d1h) = (lo(hs, c1), hi(hs, c1));
        let (d2l, d2h) = (lo(hs, c2), hi(hs, c2));
        // A product's high part weighs 2^52 = 2^8 limbs up; d2's lands at 2^140,
        // which is 5 * 2^10 mod p.
        let l0 = _mm512_add_epi64(
            d0l,
            _mm512_add_epi64(_mm512_slli_epi64::<12>(d2h), _mm512_slli_epi64::<10>(d2h)),
        );
        let l1 = _mm512_add_epi64(d1l, _mm512_slli_epi64::<8>(d0h));
        let l2 = _mm512_add_epi64(d2l, _mm512_slli_epi64::<8>(d1h));
        let (m44, m42) = (_mm512_set1_epi64(M44 as i64), _mm512_set1_epi64(M42 as i64));
        let l1 = _mm512_add_epi64(l1, _mm512_srli_epi64::<44>(l0));
        let l0 = _mm512_and_si512(l0, m44);
        let l2 = _mm512_add_epi64(l2, _mm512_srli_epi64::<44>(l1));
        let l1 = _mm512_and_si512(l1, m44);
        let c = _mm512_srli_epi64::<42>(l2);
        let l2 = _mm512_and_si512(l2, m42);
        let l0 = _mm512_add_epi64(l0, _mm512_add_epi64(_mm512_slli_epi64::<2>(c), c));
        let l1 = _mm512_add_epi64(l1, _mm512_srli_epi64::<44>(l0));
        let l0 = _mm512_and_si512(l0, m44);
        V([l0, l1, l2])
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::{Rng, RngCore};

    use super::*;

    /// The scalar code alone, block by block: what every tail relies on.
    fn scalar(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        let r = clamp(key);
        let h = msg
            .chunks(16)
            .fold([0; 3], |h, block| mul(add_block(h, block), r));
        finish(h, key)
    }

    /// Random keys and messages, and the largest values every limb can take (all
    /// bits of `r` the clamp keeps, every message byte 0xff), at every length
    /// around the vector group size: `(key, message, case)`.
    fn cases() -> impl Iterator<Item = ([u8; 32], Vec<u8>, usize)> {
        let mut rng = rand::thread_rng();
        let lengths = (0..1200).chain([4096, 65_536 + 5, (1 << 20) + 127]);
        lengths.enumerate().map(move |(k, len)| {
            let mut key = [0u8; 32];
            let mut msg = vec![0u8; len];
            match k % 3 {
                0 => {
                    rng.fill_bytes(&mut key);
                    rng.fill_bytes(&mut msg);
                }
                1 => {
                    key = [0xff; 32];
                    msg.fill(0xff);
                }
                _ => {
                    rng.fill_bytes(&mut key);
                    msg.fill(if rng.gen() { 0xff } else { 0 });
                }
            }
            (key, msg, k % 3)
        })
    }

    /// The scalar limb arithmetic (no CPU flags needed) gives the crate's tags.
    #[test]
    fn scalar_tags_are_the_poly1305_crates() {
        for (key, msg, case) in cases().filter(|(_, m, _)| m.len() < 5000) {
            let len = msg.len();
            assert_eq!(
                scalar(&key, &msg),
                reference(&key, &msg),
                "length {len}, case {case}"
            );
        }
    }

    /// The IFMA path gives the crate's tags. Fails on a CPU without AVX-512 IFMA,
    /// naming the flag.
    #[test]
    fn ifma_tags_are_the_poly1305_crates() {
        for (key, msg, case) in cases() {
            let len = msg.len();
            assert_eq!(
                tag(&key, &msg),
                reference(&key, &msg),
                "length {len}, case {case}"
            );
        }
    }

    /// Random keys, lengths and offsets into a buffer (the ciphertext of a blob in a
    /// pack starts anywhere).
    #[test]
    fn ifma_tags_are_the_poly1305_crates_proptest() {
        super::super::require("the AVX-512 IFMA Poly1305 path", missing_cpu_flag());
        proptest!(|(
            key in any::<[u8; 32]>(),
            data in proptest::collection::vec(any::<u8>(), 0..4000),
            offset in 0..64usize,
        )| {
            let msg = &data[offset.min(data.len())..];
            prop_assert_eq!(tag(&key, msg), reference(&key, msg));
        });
    }

    /// RFC 8439, 2.5.2.
    #[test]
    fn the_rfc_8439_vector() {
        let key: [u8; 32] = [
            0x85, 0xd6, 0xbe, 0x78, 0x57, 0x55, 0x6d, 0x33, 0x7f, 0x44, 0x52, 0xfe, 0x42, 0xd5,
            0x06, 0xa8, 0x01, 0x03, 0x80, 0x8a, 0xfb, 0x0d, 0xb2, 0xfd, 0x4a, 0xbf, 0xf6, 0xaf,
            0x41, 0x49, 0xf5, 0x1b,
        ];
        let want = [
            0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6, 0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01,
            0x27, 0xa9,
        ];
        assert_eq!(scalar(&key, b"Cryptographic Forum Research Group"), want);
    }
}
