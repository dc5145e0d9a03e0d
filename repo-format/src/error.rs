//! The one error type of the format crate. Variants carry what they are about
//! (a file kind, an id, a field) so the agent can name the object at fault.

/// Result alias for this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// Everything that can be wrong with bytes claiming to be part of a restic repository.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Not 64 hex characters.
    #[error("invalid id {0:?}: expected 64 hex characters")]
    InvalidId(String),
    /// Ciphertext whose MAC does not verify: wrong key, or damaged data.
    #[error("MAC check failed (wrong key or damaged data)")]
    MacMismatch,
    /// Too short to hold what its header claims.
    #[error("{what} truncated: {detail}")]
    Truncated {
        /// The kind of object.
        what: &'static str,
        /// The length found and expected.
        detail: String,
    },
    /// A structurally invalid object.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The kind of object.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// JSON that does not parse as the expected document.
    #[error("malformed {what} JSON: {source}")]
    Json {
        /// The kind of document.
        what: &'static str,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Repository version we do not know.
    #[error("unsupported repository version {0} (supported: 1 and 2)")]
    UnsupportedVersion(u32),
    /// zstd failure.
    #[error("{what} decompression failed: {reason}")]
    Decompress {
        /// The kind of object.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// scrypt parameters that cannot be used.
    #[error("invalid key derivation parameters: {0}")]
    Kdf(String),
}

impl FormatError {
    /// Builds an [`FormatError::Invalid`].
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        FormatError::Invalid {
            what,
            reason: reason.into(),
        }
    }

    /// Builds a [`FormatError::Json`].
    pub fn json(what: &'static str, source: serde_json::Error) -> Self {
        FormatError::Json { what, source }
    }
}
