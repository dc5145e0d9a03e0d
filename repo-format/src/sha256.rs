//! SHA-256 of two independent byte streams at once.
//!
//! SHA-NI computes one block as a chain of dependent `sha256rnds2` instructions, so a
//! single stream leaves most of the unit idle; two streams interleaved keep it busy
//! and finish both in little more than the time of one. Every repository byte is
//! hashed twice on the hot paths: a blob's plaintext for its id, and the pack it is
//! stored in for the pack's id (backup writes, `check --read-data` verifies). Pairing
//! the next blob's plaintext with the previous blob's bytes in the pack therefore
//! halves the hashing time of both. Without SHA-NI, or where the streams' lengths
//! differ, blocks go one stream at a time (the `sha2` crate's code).

mod shani;

use sha2::digest::generic_array::GenericArray;

use crate::Id;

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

/// A SHA-256 computation fed piece by piece.
#[derive(Clone, Debug)]
pub struct Hasher {
    state: [u32; 8],
    /// Bytes of an unfinished block.
    pending: [u8; 64],
    pending_len: usize,
    /// Bytes fed in all.
    total: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            state: H0,
            pending: [0; 64],
            pending_len: 0,
            total: 0,
        }
    }
}

impl Hasher {
    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        let (blocks, tail) = self.take(data);
        compress(&mut self.state, blocks);
        self.keep(tail);
    }

    /// Feeds `data` and returns the SHA-256 of `message`, both at once where the CPU
    /// allows.
    pub fn update_and_hash(&mut self, data: &[u8], message: &[u8]) -> Id {
        let mut other = Hasher::default();
        self.update_pair(data, &mut other, message);
        other.finish()
    }

    /// Feeds `data` to `self` and `other_data` to `other`, both at once where the
    /// CPU allows (the blocks they have in common run as one two-stream pass).
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
        compress(&mut self.state, &tail[..len]);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        Id(out)
    }

    /// Completes the pending block from `data` (compressing it once full); returns
    /// the whole blocks of `data` that follow and the bytes after them, which
    /// [`Hasher::keep`] must get once the blocks are compressed.
    fn take<'d>(&mut self, data: &'d [u8]) -> (&'d [u8], &'d [u8]) {
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
            compress(&mut self.state, &block);
            self.pending_len = 0;
        }
        rest.split_at(rest.len() / 64 * 64)
    }

    fn keep(&mut self, tail: &[u8]) {
        if !tail.is_empty() {
            self.pending[..tail.len()].copy_from_slice(tail);
            self.pending_len = tail.len();
        }
    }
}

/// SHA-256 compression of whole 64-byte blocks.
fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    debug_assert!(blocks.len().is_multiple_of(64));
    if blocks.is_empty() {
        return;
    }
    if shani::available() {
        shani::compress(state, blocks);
    } else {
        for b in blocks.chunks_exact(64) {
            sha2::compress256(state, &[*GenericArray::from_slice(b)]);
        }
    }
}

/// Two streams' compressions of the same number of blocks.
fn compress_pair(a: &mut [u32; 8], blocks_a: &[u8], b: &mut [u32; 8], blocks_b: &[u8]) {
    debug_assert_eq!(blocks_a.len(), blocks_b.len());
    if shani::available() {
        shani::compress_pair(a, blocks_a, b, blocks_b);
    } else {
        compress(a, blocks_a);
        compress(b, blocks_b);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    use super::*;

    fn reference(data: &[u8]) -> Id {
        Id(Sha256::digest(data).into())
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            Hasher::default().finish().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Hasher::default();
        h.update(b"abc");
        assert_eq!(
            h.finish().to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn every_length_around_block_boundaries() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 31 + 7) as u8).collect();
        for n in 0..data.len() {
            let mut h = Hasher::default();
            h.update(&data[..n]);
            assert_eq!(h.finish(), reference(&data[..n]), "len {n}");
        }
    }

    proptest! {
        /// A stream fed in pieces, each paired with a message, gives the same ids
        /// as hashing every piece and the whole stream one at a time.
        #[test]
        fn pairs_match_the_reference(
            pieces in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..700),
                 proptest::collection::vec(any::<u8>(), 0..700)),
                0..8,
            )
        ) {
            let mut stream = Hasher::default();
            let mut whole = Vec::new();
            for (data, message) in &pieces {
                let id = stream.update_and_hash(data, message);
                prop_assert_eq!(id, reference(message));
                whole.extend_from_slice(data);
            }
            prop_assert_eq!(stream.finish(), reference(&whole));
        }

        /// Two streams fed in pieces of unequal lengths, pairwise, give the ids of
        /// the two streams hashed whole.
        #[test]
        fn two_incremental_streams_match_the_reference(
            pieces in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..300),
                 proptest::collection::vec(any::<u8>(), 0..300)),
                0..8,
            )
        ) {
            let (mut a, mut b) = (Hasher::default(), Hasher::default());
            let (mut whole_a, mut whole_b) = (Vec::new(), Vec::new());
            for (x, y) in &pieces {
                a.update_pair(x, &mut b, y);
                whole_a.extend_from_slice(x);
                whole_b.extend_from_slice(y);
            }
            prop_assert_eq!(a.finish(), reference(&whole_a));
            prop_assert_eq!(b.finish(), reference(&whole_b));
        }

        #[test]
        fn pieces_match_the_reference(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)
        ) {
            let mut h = Hasher::default();
            for p in &pieces {
                h.update(p);
            }
            prop_assert_eq!(h.finish(), reference(&pieces.concat()));
        }
    }
}
