//! Blobs: the units packs hold. A blob is identified by its type and the SHA-256 of
//! its uncompressed plaintext, so identical content deduplicates whatever its
//! encryption or compression. Encoding is compress (v2) then seal; decoding checks the
//! MAC, inflates to the exact length recorded, and re-hashes.

use crate::{
    compress,
    crypto::Key,
    error::{FormatError, Result},
    id::Id,
};

/// Data (file content) or tree (directory listing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobType {
    /// File content chunk.
    Data,
    /// Serialized tree.
    Tree,
}

impl BlobType {
    /// Index JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        }
    }
}

impl std::fmt::Display for BlobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sealed blob ready to go into a pack.
#[derive(Debug, Clone)]
pub struct EncodedBlob {
    /// Blob type.
    pub ty: BlobType,
    /// SHA-256 of the plaintext.
    pub id: Id,
    /// `IV || CT || MAC`.
    pub sealed: Vec<u8>,
    /// Plaintext length when compressed; `None` when stored uncompressed.
    pub uncompressed_length: Option<u32>,
}

/// Compresses (when `compress` and the plaintext is non-empty) and seals a blob.
pub fn encode(
    key: &Key,
    ty: BlobType,
    id: Id,
    plaintext: &[u8],
    compress: Option<i32>,
) -> EncodedBlob {
    match compress {
        Some(level) if !plaintext.is_empty() && u32::try_from(plaintext.len()).is_ok() => {
            let frame = compress::compress(plaintext, level);
            EncodedBlob {
                ty,
                id,
                sealed: key.seal(&frame),
                uncompressed_length: Some(plaintext.len() as u32),
            }
        }
        _ => EncodedBlob {
            ty,
            id,
            sealed: key.seal(plaintext),
            uncompressed_length: None,
        },
    }
}

/// Opens a sealed blob and checks that it hashes to `id`.
///
/// # Errors
/// [`FormatError::MacMismatch`] for damaged bytes, a decompression error, or
/// [`FormatError::Invalid`] when the plaintext hashes to another id.
pub fn decode(
    key: &Key,
    id: &Id,
    sealed: &[u8],
    uncompressed_length: Option<u32>,
) -> Result<Vec<u8>> {
    let inner = key.open(sealed)?;
    let plain = match uncompressed_length {
        Some(n) if n > 0 => compress::decompress_exact("blob", &inner, n as usize)?,
        _ => inner,
    };
    let got = Id::hash(&plain);
    if &got != id {
        return Err(FormatError::invalid(
            "blob",
            format!(
                "content hashes to {} instead of {}",
                got.short(),
                id.short()
            ),
        ));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let key = Key::random();
        for data in [&b""[..], b"x", &[7u8; 10000][..]] {
            let id = Id::hash(data);
            for c in [None, Some(3)] {
                let e = encode(&key, BlobType::Data, id, data, c);
                assert_eq!(
                    e.uncompressed_length.is_some(),
                    c.is_some() && !data.is_empty()
                );
                assert_eq!(
                    decode(&key, &id, &e.sealed, e.uncompressed_length).unwrap(),
                    data
                );
                assert!(
                    decode(&key, &Id::hash(b"other"), &e.sealed, e.uncompressed_length).is_err()
                );
            }
        }
    }
}
