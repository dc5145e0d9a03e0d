//! SHA-256 block compression with the x86 SHA extensions, one stream or two
//! interleaved. Callers check [`available`] first.

#[cfg(target_arch = "x86_64")]
pub use x86::{available, compress, compress_pair};

#[cfg(not(target_arch = "x86_64"))]
mod fallback {
    pub fn available() -> bool {
        false
    }
    pub fn compress(_: &mut [u32; 8], _: &[u8]) {
        unreachable!("no SHA extensions on this architecture")
    }
    pub fn compress_pair(_: &mut [u32; 8], _: &[u8], _: &mut [u32; 8], _: &[u8]) {
        unreachable!("no SHA extensions on this architecture")
    }
}
#[cfg(not(target_arch = "x86_64"))]
pub use fallback::{available, compress, compress_pair};

/// The intrinsics are `unsafe` because they need CPU features: every entry point
/// checks them at run time ([`available`]), and the only memory they touch is read
/// with unaligned loads from whole 64-byte blocks and the state arrays.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use core::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi64x,
        _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi32,
        _mm_shuffle_epi8, _mm_storeu_si128,
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

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
    }

    /// Compresses `blocks` (a multiple of 64 bytes) into `state`.
    pub fn compress(state: &mut [u32; 8], blocks: &[u8]) {
        assert!(available() && blocks.len().is_multiple_of(64));
        // SAFETY: the features were checked just above; see the module.
        unsafe { compress_x1(state, blocks) }
    }

    /// Compresses `blocks_a` into `a` and `blocks_b` into `b` (the same number of
    /// whole blocks), the two streams interleaved.
    pub fn compress_pair(a: &mut [u32; 8], blocks_a: &[u8], b: &mut [u32; 8], blocks_b: &[u8]) {
        assert!(
            available() && blocks_a.len().is_multiple_of(64) && blocks_a.len() == blocks_b.len()
        );
        // SAFETY: the features were checked just above; see the module.
        unsafe { compress_x2(a, blocks_a, b, blocks_b) }
    }

    /// Four rounds of one stream: message words `w` (with their constants `i`).
    macro_rules! rounds4 {
        ($abef:ident, $cdgh:ident, $w:expr, $i:expr) => {{
            let k = _mm_loadu_si128(K.as_ptr().add(4 * $i).cast::<__m128i>());
            let t1 = _mm_add_epi32($w, k);
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
    unsafe fn load(state: &[u32; 8]) -> (__m128i, __m128i) {
        let dcba = _mm_loadu_si128(state.as_ptr().cast::<__m128i>());
        let efgh = _mm_loadu_si128(state.as_ptr().add(4).cast::<__m128i>());
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(efgh, 0x1B);
        (
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xF0),
        )
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn store(abef: __m128i, cdgh: __m128i, state: &mut [u32; 8]) {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        _mm_storeu_si128(state.as_mut_ptr().cast::<__m128i>(), dcba);
        _mm_storeu_si128(state.as_mut_ptr().add(4).cast::<__m128i>(), hgef);
    }

    /// Message word group `i` (0..4) of the 64-byte block at `p`.
    macro_rules! words {
        ($p:expr, $i:expr) => {
            _mm_shuffle_epi8(
                _mm_loadu_si128($p.add(16 * $i).cast::<__m128i>()),
                word_mask!(),
            )
        };
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn compress_x1(state: &mut [u32; 8], blocks: &[u8]) {
        let (mut aa, mut ac) = load(state);
        for block in blocks.chunks_exact(64) {
            let (sa, sc) = (aa, ac);
            let p = block.as_ptr();
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

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn compress_x2(sa: &mut [u32; 8], blocks_a: &[u8], sb: &mut [u32; 8], blocks_b: &[u8]) {
        let (mut aa, mut ac) = load(sa);
        let (mut ba, mut bc) = load(sb);
        for (block_a, block_b) in blocks_a.chunks_exact(64).zip(blocks_b.chunks_exact(64)) {
            let (saved_aa, saved_ac, saved_ba, saved_bc) = (aa, ac, ba, bc);
            let (p, q) = (block_a.as_ptr(), block_b.as_ptr());
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
