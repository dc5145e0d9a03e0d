//! The crate's one error type. Chunking itself cannot fail; only setting it up can
//! (a malformed or unusable polynomial, nonsensical chunk sizes).

use crate::pol::Polynomial;

/// What can be wrong with the inputs to a chunker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkerError {
    /// Not 1 to 16 hexadecimal digits (restic's `chunker_polynomial` form).
    #[error("invalid polynomial {0:?}: expected 1 to 16 hex digits without 0x")]
    ParsePolynomial(String),
    /// The rolling hash needs `8 <= deg(P) <= 56` for its tables to fit in 64 bits.
    #[error("polynomial {0} has degree {1}; the Rabin chunker needs a degree between 8 and 56")]
    UnsupportedDegree(Polynomial, i32),
    /// [`Polynomial::random`] gave up; with a working RNG this does not happen.
    #[error("no irreducible polynomial found in {0} tries")]
    NoIrreducible(u32),
    /// Chunk size parameters that the cut rule cannot honour.
    #[error("invalid chunk size parameters: {0}")]
    InvalidParams(&'static str),
}
