//! SHA-256 fed piece by piece, of one stream or of two side by side.
//!
//! Every repository byte is hashed twice on the hot paths: a blob's plaintext for
//! its id, and the pack it is stored in for the pack's id. [`Hasher::update_pair`]
//! and [`Hasher::update_and_hash`] take both at once. By default that is the `sha2`
//! crate hashing one stream after the other. With the `simd-crypto` feature, on a
//! CPU with the SHA extensions (and unless `STASH_SIMD_CRYPTO=0`), the two streams'
//! blocks are interleaved on SHA-NI (`crate::simd::sha256`), which finishes both in
//! little more than the time of one.

use sha2::{Digest, Sha256};

use crate::Id;

/// A SHA-256 computation fed piece by piece.
#[derive(Clone, Debug, Default)]
pub struct Hasher {
    inner: Inner,
}

#[cfg(not(feature = "simd-crypto"))]
type Inner = Sha256;

/// The `sha2` crate, or the SHA-NI path when it is switched on and the CPU has it
/// (decided once per hasher; the answer is the same for the whole process).
#[cfg(feature = "simd-crypto")]
#[derive(Clone, Debug)]
enum Inner {
    Crate(Sha256),
    Fast(crate::simd::sha256::Hasher),
}

#[cfg(feature = "simd-crypto")]
impl Default for Inner {
    fn default() -> Self {
        if crate::simd::sha256::in_use() {
            Inner::Fast(crate::simd::sha256::Hasher::new())
        } else {
            Inner::Crate(Sha256::new())
        }
    }
}

impl Hasher {
    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        #[cfg(not(feature = "simd-crypto"))]
        self.inner.update(data);
        #[cfg(feature = "simd-crypto")]
        match &mut self.inner {
            Inner::Crate(h) => h.update(data),
            Inner::Fast(h) => h.update(data),
        }
    }

    /// Feeds `data` and returns the SHA-256 of `message`, both at once where the
    /// build and the CPU allow.
    pub fn update_and_hash(&mut self, data: &[u8], message: &[u8]) -> Id {
        let mut other = Hasher::default();
        self.update_pair(data, &mut other, message);
        other.finish()
    }

    /// Feeds `data` to `self` and `other_data` to `other`, both at once where the
    /// build and the CPU allow (the blocks they have in common run as one
    /// two-stream pass), else one after the other.
    pub fn update_pair(&mut self, data: &[u8], other: &mut Hasher, other_data: &[u8]) {
        #[cfg(feature = "simd-crypto")]
        if let (Inner::Fast(a), Inner::Fast(b)) = (&mut self.inner, &mut other.inner) {
            a.update_pair(data, b, other_data);
            return;
        }
        self.update(data);
        other.update(other_data);
    }

    /// The SHA-256 of everything fed.
    pub fn finish(self) -> Id {
        #[cfg(not(feature = "simd-crypto"))]
        return Id(self.inner.finalize().into());
        #[cfg(feature = "simd-crypto")]
        match self.inner {
            Inner::Crate(h) => Id(h.finalize().into()),
            Inner::Fast(h) => h.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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
