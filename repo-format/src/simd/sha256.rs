//! SHA-256 on the x86 SHA extensions, of one stream or two interleaved.
//!
//! SHA-NI computes one block as a chain of dependent `sha256rnds2` instructions, so a
//! single stream leaves most of the unit idle; two streams interleaved keep it busy
//! and finish both in little more than the time of one. Every repository byte is
//! hashed twice on the hot paths: a blob's plaintext for its id, and the pack it is
//! stored in for the pack's id (backup writes, `check --read-data` verifies), so
//! pairing the next blob's plaintext with the previous blob's bytes in the pack
//! halves the hashing time of both. [`Hasher`] keeps the pending bytes and padding
//! itself so that two of them can share passes ([`Hasher::update_pair`]).

use sha2::{Digest, Sha256};

use super::CpuFlag;
use crate::Id;

/// The first CPU flag the SHA-NI path needs that this CPU lacks.
pub fn missing_cpu_flag() -> Option<CpuFlag> {
    #[cfg(target_arch = "x86_64")]
    return super::first_missing!(
        ("sha", "sha_ni"),
        ("sse2", "sse2"),
        ("ssse3", "ssse3"),
        ("sse4.1", "sse4_1"),
    );
    #[cfg(not(target_arch = "x86_64"))]
    Some(super::X86_64)
}

/// Whether the CPU has what [`compress`] and [`Hasher`] need.
pub fn available() -> bool {
    missing_cpu_flag().is_none()
}

/// Whether [`crate::sha256::Hasher`] takes this path: switched on and the CPU has it.
pub(crate) fn in_use() -> bool {
    static IN_USE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    super::in_use(&IN_USE, missing_cpu_flag)
}

/// The `sha2` crate's digest: what the default build computes, and what the fast
/// path is held to.
pub fn reference(data: &[u8]) -> Id {
    Id(Sha256::digest(data).into())
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Compresses whole 64-byte `blocks` into `state`, on SHA-NI.
///
/// # Panics
/// When the CPU lacks one of the flags (named in the message).
pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    super::require("the SHA-NI SHA-256 path", missing_cpu_flag());
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `require` returned, so the CPU has every feature `compress_x1`
        // enables.
        unsafe { x86::compress_x1(state, blocks) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (state, blocks);
}

/// Compresses `blocks_a` into `a` and `blocks_b` into `b`, the two streams
/// interleaved on SHA-NI.
///
/// # Panics
/// When the CPU lacks one of the flags (named in the message), or the two streams'
/// block counts differ.
pub fn compress_pair(
    a: &mut [u32; 8],
    blocks_a: &[[u8; 64]],
    b: &mut [u32; 8],
    blocks_b: &[[u8; 64]],
) {
    super::require("the SHA-NI SHA-256 path", missing_cpu_flag());
    assert_eq!(blocks_a.len(), blocks_b.len(), "two streams of one length");
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `require` returned, so the CPU has every feature `compress_x2`
        // enables.
        unsafe { x86::compress_x2(a, blocks_a, b, blocks_b) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (a, blocks_a, b, blocks_b);
}

/// A SHA-256 computation on SHA-NI fed piece by piece; two of them can be fed at
/// once ([`Hasher::update_pair`]).
#[derive(Clone, Debug)]
pub struct Hasher {
    state: [u32; 8],
    /// Bytes of an unfinished block.
    pending: [u8; 64],
    pending_len: usize,
    /// Bytes fed in all.
    total: u64,
}

impl Hasher {
    /// A hasher of nothing yet.
    ///
    /// # Panics
    /// When the CPU lacks one of the flags SHA-NI needs (named in the message).
    // No `Default`: one that panics on some CPUs would surprise.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Hasher {
        super::require("the SHA-NI SHA-256 path", missing_cpu_flag());
        Hasher {
            state: H0,
            pending: [0; 64],
            pending_len: 0,
            total: 0,
        }
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        let (blocks, tail) = self.take(data);
        compress(&mut self.state, blocks);
        self.keep(tail);
    }

    /// Feeds `data` to `self` and `other_data` to `other`, the blocks they have in
    /// common as one two-stream pass.
    pub fn update_pair(&mut self, data: &[u8], other: &mut Hasher, other_data: &[u8]) {
        let (blocks, tail) = self.take(data);
        let (other_blocks, other_tail) = other.take(other_data);
        let both = blocks.len().min(other_blocks.len());
        compress_pair(
            &mut self.state,
            &blocks[..both],
            &mut other.state,
            &other_blocks[..both],
        );
        compress(&mut self.state, &blocks[both..]);
        compress(&mut other.state, &other_blocks[both..]);
        self.keep(tail);
        other.keep(other_tail);
    }

    /// The SHA-256 of everything fed.
    pub fn finish(mut self) -> Id {
        let bits = self.total.wrapping_mul(8);
        let mut tail = [0u8; 128];
        let n = self.pending_len;
        tail[..n].copy_from_slice(&self.pending[..n]);
        tail[n] = 0x80;
        let len = if n < 56 { 64 } else { 128 };
        tail[len - 8..len].copy_from_slice(&bits.to_be_bytes());
        compress(&mut self.state, tail[..len].as_chunks().0);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        Id(out)
    }

    /// Completes the pending block from `data` (compressing it once full); returns
    /// the whole blocks of `data` that follow and the bytes after them, which
    /// [`Hasher::keep`] must get once the blocks are compressed.
    fn take<'d>(&mut self, data: &'d [u8]) -> (&'d [[u8; 64]], &'d [u8]) {
        self.total += data.len() as u64;
        let mut rest = data;
        if self.pending_len > 0 {
            let n = (64 - self.pending_len).min(rest.len());
            self.pending[self.pending_len..self.pending_len + n].copy_from_slice(&rest[..n]);
            self.pending_len += n;
            rest = &rest[n..];
            if self.pending_len < 64 {
                return (&[], &[]);
            }
            let block = self.pending;
            compress(&mut self.state, &[block]);
            self.pending_len = 0;
        }
        rest.as_chunks()
    }

    fn keep(&mut self, tail: &[u8]) {
        if !tail.is_empty() {
            self.pending[..tail.len()].copy_from_slice(tail);
            self.pending_len = tail.len();
        }
    }
}

/// The SHA-NI code. The only memory it touches is read from whole 64-byte blocks
/// and the state arrays.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_extract_epi32,
        _mm_loadu_si128, _mm_set_epi32, _mm_set_epi64x, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
        _mm_sha256rnds2_epu32, _mm_shuffle_epi32, _mm_shuffle_epi8,
    };

    /// The round constants (FIPS 180-4, 4.2.2).
    static K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// Round constants `4i .. 4i + 4`.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn k(i: usize) -> __m128i {
        let w = |j: usize| K[4 * i + j] as i32;
        _mm_set_epi32(w(3), w(2), w(1), w(0))
    }

    /// 16 bytes as a vector.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn load128(bytes: &[u8; 16]) -> __m128i {
        // SAFETY: an unaligned load of exactly the 16 bytes `bytes` refers to; the
        // CPU has SSE2 (this function's feature).
        unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
    }

    /// Four rounds of one stream: message words `w` (with their constants `i`).
    macro_rules! rounds4 {
        ($abef:ident, $cdgh:ident, $w:expr, $i:expr) => {{
            let t1 = _mm_add_epi32($w, k($i));
            $cdgh = _mm_sha256rnds2_epu32($cdgh, $abef, t1);
            let t2 = _mm_shuffle_epi32(t1, 0x0E);
            $abef = _mm_sha256rnds2_epu32($abef, $cdgh, t2);
        }};
    }

    /// The next four message words from the previous sixteen (in `v0`..`v3`), into
    /// `v4`, then four rounds with them.
    macro_rules! schedule_rounds4 {
        ($i:expr; $( [$abef:ident $cdgh:ident] ($v0:ident $v1:ident $v2:ident $v3:ident $v4:ident) );+) => {
            $(
                let t = _mm_add_epi32(
                    _mm_sha256msg1_epu32($v0, $v1),
                    _mm_alignr_epi8($v3, $v2, 4),
                );
                $v4 = _mm_sha256msg2_epu32(t, $v3);
                rounds4!($abef, $cdgh, $v4, $i);
            )+
        };
    }

    /// Byte order of the message words (big-endian).
    macro_rules! word_mask {
        () => {
            _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203)
        };
    }

    /// The state as the instructions want it: (abef, cdgh).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn load(state: &[u32; 8]) -> (__m128i, __m128i) {
        let w = |i: usize| state[i] as i32;
        let dcba = _mm_set_epi32(w(3), w(2), w(1), w(0));
        let efgh = _mm_set_epi32(w(7), w(6), w(5), w(4));
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(efgh, 0x1B);
        (
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xF0),
        )
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn store(abef: __m128i, cdgh: __m128i, state: &mut [u32; 8]) {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        *state = [
            _mm_extract_epi32::<0>(dcba) as u32,
            _mm_extract_epi32::<1>(dcba) as u32,
            _mm_extract_epi32::<2>(dcba) as u32,
            _mm_extract_epi32::<3>(dcba) as u32,
            _mm_extract_epi32::<0>(hgef) as u32,
            _mm_extract_epi32::<1>(hgef) as u32,
            _mm_extract_epi32::<2>(hgef) as u32,
            _mm_extract_epi32::<3>(hgef) as u32,
        ];
    }

    /// Message word group `i` (0..4) of the 64-byte block `p`.
    macro_rules! words {
        ($p:expr, $i:expr) => {
            _mm_shuffle_epi8(load128(&$p.as_chunks::<16>().0[$i]), word_mask!())
        };
    }

    /// Compresses `blocks` into `state`.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub fn compress_x1(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
        let (mut aa, mut ac) = load(state);
        for p in blocks {
            let (sa, sc) = (aa, ac);
            let (mut a0, mut a1, mut a2, mut a3) =
                (words!(p, 0), words!(p, 1), words!(p, 2), words!(p, 3));
            let mut a4;
            rounds4!(aa, ac, a0, 0);
            rounds4!(aa, ac, a1, 1);
            rounds4!(aa, ac, a2, 2);
            rounds4!(aa, ac, a3, 3);
            schedule_rounds4!(4; [aa ac](a0 a1 a2 a3 a4));
            schedule_rounds4!(5; [aa ac](a1 a2 a3 a4 a0));
            schedule_rounds4!(6; [aa ac](a2 a3 a4 a0 a1));
            schedule_rounds4!(7; [aa ac](a3 a4 a0 a1 a2));
            schedule_rounds4!(8; [aa ac](a4 a0 a1 a2 a3));
            schedule_rounds4!(9; [aa ac](a0 a1 a2 a3 a4));
            schedule_rounds4!(10; [aa ac](a1 a2 a3 a4 a0));
            schedule_rounds4!(11; [aa ac](a2 a3 a4 a0 a1));
            schedule_rounds4!(12; [aa ac](a3 a4 a0 a1 a2));
            schedule_rounds4!(13; [aa ac](a4 a0 a1 a2 a3));
            schedule_rounds4!(14; [aa ac](a0 a1 a2 a3 a4));
            schedule_rounds4!(15; [aa ac](a1 a2 a3 a4 a0));
            aa = _mm_add_epi32(aa, sa);
            ac = _mm_add_epi32(ac, sc);
        }
        store(aa, ac, state);
    }

    /// Compresses `blocks_a` into `sa` and `blocks_b` into `sb`, pairwise, the two
    /// streams interleaved.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub fn compress_x2(
        sa: &mut [u32; 8],
        blocks_a: &[[u8; 64]],
        sb: &mut [u32; 8],
        blocks_b: &[[u8; 64]],
    ) {
        let (mut aa, mut ac) = load(sa);
        let (mut ba, mut bc) = load(sb);
        for (p, q) in blocks_a.iter().zip(blocks_b) {
            let (saved_aa, saved_ac, saved_ba, saved_bc) = (aa, ac, ba, bc);
            let (mut a0, mut a1, mut a2, mut a3) =
                (words!(p, 0), words!(p, 1), words!(p, 2), words!(p, 3));
            let (mut b0, mut b1, mut b2, mut b3) =
                (words!(q, 0), words!(q, 1), words!(q, 2), words!(q, 3));
            let (mut a4, mut b4);
            rounds4!(aa, ac, a0, 0);
            rounds4!(ba, bc, b0, 0);
            rounds4!(aa, ac, a1, 1);
            rounds4!(ba, bc, b1, 1);
            rounds4!(aa, ac, a2, 2);
            rounds4!(ba, bc, b2, 2);
            rounds4!(aa, ac, a3, 3);
            rounds4!(ba, bc, b3, 3);
            schedule_rounds4!(4; [aa ac](a0 a1 a2 a3 a4); [ba bc](b0 b1 b2 b3 b4));
            schedule_rounds4!(5; [aa ac](a1 a2 a3 a4 a0); [ba bc](b1 b2 b3 b4 b0));
            schedule_rounds4!(6; [aa ac](a2 a3 a4 a0 a1); [ba bc](b2 b3 b4 b0 b1));
            schedule_rounds4!(7; [aa ac](a3 a4 a0 a1 a2); [ba bc](b3 b4 b0 b1 b2));
            schedule_rounds4!(8; [aa ac](a4 a0 a1 a2 a3); [ba bc](b4 b0 b1 b2 b3));
            schedule_rounds4!(9; [aa ac](a0 a1 a2 a3 a4); [ba bc](b0 b1 b2 b3 b4));
            schedule_rounds4!(10; [aa ac](a1 a2 a3 a4 a0); [ba bc](b1 b2 b3 b4 b0));
            schedule_rounds4!(11; [aa ac](a2 a3 a4 a0 a1); [ba bc](b2 b3 b4 b0 b1));
            schedule_rounds4!(12; [aa ac](a3 a4 a0 a1 a2); [ba bc](b3 b4 b0 b1 b2));
            schedule_rounds4!(13; [aa ac](a4 a0 a1 a2 a3); [ba bc](b4 b0 b1 b2 b3));
            schedule_rounds4!(14; [aa ac](a0 a1 a2 a3 a4); [ba bc](b0 b1 b2 b3 b4));
            schedule_rounds4!(15; [aa ac](a1 a2 a3 a4 a0); [ba bc](b1 b2 b3 b4 b0));
            aa = _mm_add_epi32(aa, saved_aa);
            ac = _mm_add_epi32(ac, saved_ac);
            ba = _mm_add_epi32(ba, saved_ba);
            bc = _mm_add_epi32(bc, saved_bc);
        }
        store(aa, ac, sa);
        store(ba, bc, sb);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hash(data: &[u8]) -> Id {
        let mut h = Hasher::new();
        h.update(data);
        h.finish()
    }

    /// Fails on a CPU without SHA-NI, naming the flag, as every test here does.
    #[test]
    fn known_answers() {
        assert_eq!(
            hash(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hash(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn every_length_around_block_boundaries() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 31 + 7) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(hash(&data[..n]), reference(&data[..n]), "len {n}");
        }
    }

    /// A stream fed in pieces, each paired with a message, and two streams fed
    /// pairwise in pieces of unequal lengths, give the `sha2` crate's ids.
    #[test]
    fn pairs_and_pieces_are_the_sha2_crates() {
        super::super::require("the SHA-NI SHA-256 path", missing_cpu_flag());
        let piece = || proptest::collection::vec(any::<u8>(), 0..700);
        proptest!(|(pieces in proptest::collection::vec((piece(), piece()), 0..8))| {
            let (mut a, mut b) = (Hasher::new(), Hasher::new());
            let (mut whole_a, mut whole_b) = (Vec::new(), Vec::new());
            for (i, (x, y)) in pieces.iter().enumerate() {
                if i % 2 == 0 {
                    a.update_pair(x, &mut b, y);
                } else {
                    let mut message = Hasher::new();
                    a.update_pair(x, &mut message, y);
                    prop_assert_eq!(message.finish(), reference(y));
                    b.update(y);
                }
                whole_a.extend_from_slice(x);
                whole_b.extend_from_slice(y);
            }
            prop_assert_eq!(a.finish(), reference(&whole_a));
            prop_assert_eq!(b.finish(), reference(&whole_b));
        });
    }
}
