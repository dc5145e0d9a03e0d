//! BlockMix with Salsa20/8, the inner loop of scrypt, on blocks kept in diagonal
//! order so that a double round is sixteen whole-row operations.
//!
//! A [`Block`] is four rows of four words: row 0 holds Salsa20 words (0, 5, 10, 15),
//! row 1 (4, 9, 14, 3), row 2 (8, 13, 2, 7) and row 3 (12, 1, 6, 11). In that order
//! the four column quarter-rounds run side by side as row operations, the row round
//! needs only lane rotations of three rows, and the lane-wise XORs and additions of
//! BlockMix keep the order, so a lane is converted once on the way in and once out.
//! On x86-64 a row is an SSE2 register (SSE2 is part of the x86-64 baseline, so the
//! intrinsics need no runtime check); elsewhere it is a `[u32; 4]`. One Salsa20/8 is
//! a chain of dependent operations: the gain is four quarter-rounds per instruction.

use row::Row;

/// The Salsa20 word index stored at each slot (row-major) of a [`Block`].
const DIAGONAL: [usize; 16] = [0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11];

/// One 64-byte Salsa20 block in diagonal order.
pub type Block = [Row; 4];

pub fn zero_block() -> Block {
    [row::from_words([0; 4]); 4]
}

/// A block from its 64 little-endian bytes.
pub fn load(bytes: &[u8]) -> Block {
    let word = |slot: usize| {
        let at = DIAGONAL[slot] * 4;
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    };
    std::array::from_fn(|r| row::from_words(std::array::from_fn(|l| word(r * 4 + l))))
}

/// Writes `block` as its 64 little-endian bytes.
pub fn store(block: &Block, bytes: &mut [u8]) {
    for (r, words) in block.iter().map(|&x| row::to_words(x)).enumerate() {
        for (l, w) in words.iter().enumerate() {
            let at = DIAGONAL[r * 4 + l] * 4;
            bytes[at..at + 4].copy_from_slice(&w.to_le_bytes());
        }
    }
}

/// scrypt's Integerify: the block's word 0 (the first lane of row 0).
pub fn integerify(block: &Block) -> u32 {
    row::first(block[0])
}

#[inline(always)]
pub fn xor_block(a: &Block, b: &Block) -> Block {
    [
        row::xor(a[0], b[0]),
        row::xor(a[1], b[1]),
        row::xor(a[2], b[2]),
        row::xor(a[3], b[3]),
    ]
}

/// The Salsa20/8 core: 8 rounds, then the input added back.
#[inline(always)]
fn salsa20_8(input: &Block) -> Block {
    use row::step;
    let [mut a, mut b, mut c, mut d] = *input;
    for _ in 0..4 {
        // Column round: quarter-rounds (0,4,8,12), (5,9,13,1), (10,14,2,6), (15,3,7,11).
        b = step::<7, 25>(b, a, d);
        c = step::<9, 23>(c, b, a);
        d = step::<13, 19>(d, c, b);
        a = step::<18, 14>(a, d, c);
        // Row round: quarter-rounds (0,1,2,3), (5,6,7,4), (10,11,8,9), (15,12,13,14),
        // on rows rotated into that order and back.
        let (mut rb, mut rc, mut rd) = (row::rot1(d), row::rot2(c), row::rot3(b));
        rb = step::<7, 25>(rb, a, rd);
        rc = step::<9, 23>(rc, rb, a);
        rd = step::<13, 19>(rd, rc, rb);
        a = step::<18, 14>(a, rd, rc);
        (b, c, d) = (row::rot1(rd), row::rot2(rc), row::rot3(rb));
    }
    [
        row::add(a, input[0]),
        row::add(b, input[1]),
        row::add(c, input[2]),
        row::add(d, input[3]),
    ]
}

/// BlockMix with Salsa20/8 of `input(0) .. input(2r-1)` into `output` (2r blocks):
/// the even blocks' results first, then the odd ones.
#[inline(always)]
pub fn block_mix(input: impl Fn(usize) -> Block, output: &mut [Block]) {
    let blocks = output.len();
    let mut x = input(blocks - 1);
    for i in 0..blocks {
        x = salsa20_8(&xor_block(&x, &input(i)));
        output[i / 2 + (i % 2) * (blocks / 2)] = x;
    }
}

/// Asks for the cache lines of `blocks` before they are read: ROMix's second loop
/// reads a V entry at a place only known when the previous BlockMix ends, so its
/// lines miss the cache, and asking for all of them at once overlaps the misses.
#[inline(always)]
pub fn prefetch(blocks: &[Block]) {
    #[cfg(target_arch = "x86_64")]
    for b in blocks {
        row::prefetch(b);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = blocks;
}

/// SSE2 rows. The intrinsics are `unsafe` only because they need SSE2, which every
/// x86-64 CPU has (it is in the target's baseline, asserted below at compile time);
/// none of them touches memory.
#[cfg(target_arch = "x86_64")]
mod row {
    const _: () = assert!(cfg!(target_feature = "sse2"));

    use core::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_cvtsi128_si32, _mm_or_si128, _mm_set_epi32, _mm_shuffle_epi32,
        _mm_slli_epi32, _mm_srli_epi32, _mm_xor_si128,
    };

    pub type Row = __m128i;

    #[inline(always)]
    pub fn from_words(w: [u32; 4]) -> Row {
        // SAFETY: SSE2 is available (see the module).
        unsafe { _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32) }
    }

    #[inline(always)]
    pub fn first(r: Row) -> u32 {
        // SAFETY: SSE2 is available (see the module).
        unsafe { _mm_cvtsi128_si32(r) as u32 }
    }

    pub fn to_words(r: Row) -> [u32; 4] {
        [first(r), first(rot1(r)), first(rot2(r)), first(rot3(r))]
    }

    #[inline(always)]
    pub fn add(a: Row, b: Row) -> Row {
        // SAFETY: SSE2 is available (see the module).
        unsafe { _mm_add_epi32(a, b) }
    }

    #[inline(always)]
    pub fn xor(a: Row, b: Row) -> Row {
        // SAFETY: SSE2 is available (see the module).
        unsafe { _mm_xor_si128(a, b) }
    }

    /// `x ^ rotl(a + b, L)`, with `R = 32 - L`.
    #[inline(always)]
    pub fn step<const L: i32, const R: i32>(x: Row, a: Row, b: Row) -> Row {
        // SAFETY: SSE2 is available (see the module).
        unsafe {
            let t = _mm_add_epi32(a, b);
            _mm_xor_si128(
                x,
                _mm_or_si128(_mm_slli_epi32::<L>(t), _mm_srli_epi32::<R>(t)),
            )
        }
    }

    /// Asks for the cache line(s) holding `block`.
    #[inline(always)]
    pub fn prefetch(block: &super::Block) {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is available (see the module); a prefetch never faults and
        // the pointer comes from a reference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(block.as_ptr().cast()) }
    }

    /// Lanes `[1, 2, 3, 0]`.
    #[inline(always)]
    pub fn rot1(a: Row) -> Row {
        // SAFETY: SSE2 is available (see the module).
        unsafe { _mm_shuffle_epi32::<0x39>(a) }
    }

    /// Lanes `[2, 3, 0, 1]`.
    #[inline(always)]
    pub fn rot2(a: Row) -> Row {
        // SAFETY: SSE2 is available (see the module).
        unsafe { _mm_shuffle_epi32::<0x4e>(a) }
    }

    /// Lanes `[3, 0, 1, 2]`.
    #[inline(always)]
    pub fn rot3(a: Row) -> Row {
        // SAFETY: SSE2 is available (see the module).
        unsafe { _mm_shuffle_epi32::<0x93>(a) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod row {
    pub type Row = [u32; 4];

    #[inline(always)]
    pub fn from_words(w: [u32; 4]) -> Row {
        w
    }

    #[inline(always)]
    pub fn first(r: Row) -> u32 {
        r[0]
    }

    pub fn to_words(r: Row) -> [u32; 4] {
        r
    }

    #[inline(always)]
    pub fn add(a: Row, b: Row) -> Row {
        std::array::from_fn(|i| a[i].wrapping_add(b[i]))
    }

    #[inline(always)]
    pub fn xor(a: Row, b: Row) -> Row {
        std::array::from_fn(|i| a[i] ^ b[i])
    }

    /// `x ^ rotl(a + b, L)`; `R` is only the x86-64 version's right shift.
    #[inline(always)]
    pub fn step<const L: i32, const R: i32>(x: Row, a: Row, b: Row) -> Row {
        std::array::from_fn(|i| x[i] ^ a[i].wrapping_add(b[i]).rotate_left(L as u32))
    }

    #[inline(always)]
    pub fn rot1(a: Row) -> Row {
        [a[1], a[2], a[3], a[0]]
    }

    #[inline(always)]
    pub fn rot2(a: Row) -> Row {
        [a[2], a[3], a[0], a[1]]
    }

    #[inline(always)]
    pub fn rot3(a: Row) -> Row {
        [a[3], a[0], a[1], a[2]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7914 section 8: Salsa20/8 core test vector.
    #[test]
    fn salsa20_8_matches_rfc7914() {
        let input = hex::decode(
            "7e879a214f3ec9867ca940e641718f26baee555b8c61c1b50df846116dcd3b1d\
             ee24f319df9b3d8514121e4b5ac5aa3276021d2909c74829edebc68db8b8c25e",
        )
        .unwrap();
        let want = "a41f859c6608cc993b81cacb020cef05044b2181a2fd337dfd7b1c6396682f29\
                    b4393168e3c9e6bcfe6bc5b7a06d96bae424cc102c91745c24ad673dc7618f81";
        let mut out = [0u8; 64];
        store(&salsa20_8(&load(&input)), &mut out);
        assert_eq!(hex::encode(out), want);
    }

    #[test]
    fn load_and_store_round_trip() {
        let bytes: Vec<u8> = (0..64).collect();
        let mut out = [0u8; 64];
        store(&load(&bytes), &mut out);
        assert_eq!(out.to_vec(), bytes);
        assert_eq!(integerify(&load(&bytes)), 0x0302_0100);
    }
}
