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
    let mut scratch = Vec::new();
    let (body, uncompressed_length) = crate::pack::frame(plaintext, compress, &mut scratch);
    EncodedBlob {
        ty,
        id,
        sealed: key.seal(body),
        uncompressed_length,
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
    let mut raw = sealed.to_vec();
    let mut plain = Vec::new();
    let len = decode_in_place(key, id, &mut raw, uncompressed_length, &mut plain)?.len();
    if matches!(uncompressed_length, Some(n) if n > 0) {
        return Ok(plain);
    }
    raw.truncate(16 + len);
    raw.drain(..16);
    Ok(raw)
}

/// As [`decode`], decrypting `sealed` where it lies (it is left as ciphertext only
/// on a MAC failure) and inflating into `plain` when compressed: a reader that owns
/// the pack bytes needs no copy of them. Returns the plaintext.
///
/// # Errors
/// As [`decode`].
pub fn decode_in_place<'a>(
    key: &Key,
    id: &Id,
    sealed: &'a mut [u8],
    uncompressed_length: Option<u32>,
    plain: &'a mut Vec<u8>,
) -> Result<&'a [u8]> {
    let out = open_in_place(key, sealed, uncompressed_length, plain)?;
    verify_id(id, Id::hash(out))?;
    Ok(out)
}

/// As [`decode_in_place`] without the final comparison with the blob's id: for a
/// caller that hashes the plaintext itself (together with other bytes) and then
/// calls [`verify_id`].
///
/// # Errors
/// A MAC mismatch, or a compressed body that does not inflate to its length.
pub fn open_in_place<'a>(
    key: &Key,
    sealed: &'a mut [u8],
    uncompressed_length: Option<u32>,
    plain: &'a mut Vec<u8>,
) -> Result<&'a [u8]> {
    let n = key.open_in_place(sealed)?;
    let inner = &sealed[16..16 + n];
    Ok(match uncompressed_length {
        Some(len) if inflates(uncompressed_length) => {
            compress::decompress_exact_into("blob", inner, len as usize, plain)?;
            plain
        }
        _ => inner,
    })
}

/// The pieces [`open_into`] decrypts a compressed body in: large enough that
/// zstd rarely sees a block cut in two (its blocks are at most 128 KiB), small
/// enough to stay in the core's cache.
pub const OPEN_PIECE: usize = 256 << 10;

/// As [`open_in_place`], leaving `sealed` as it is: the plaintext lands in `plain`.
/// A compressed body is decrypted into `scratch` piece by piece
/// ([`OPEN_PIECE`] bytes) and inflated as it comes. `check` decodes a blob this
/// way while the pack's own hash has not passed its bytes.
///
/// # Errors
/// As [`open_in_place`].
pub fn open_into(
    key: &Key,
    sealed: &[u8],
    uncompressed_length: Option<u32>,
    scratch: &mut Vec<u8>,
    plain: &mut Vec<u8>,
) -> Result<()> {
    match uncompressed_length {
        Some(len) if inflates(uncompressed_length) => {
            compress::decompress_pieces_into("blob", len as usize, plain, |inflate| {
                key.open_pieces(sealed, OPEN_PIECE, scratch, inflate)
            })
        }
        _ => key.open_into(sealed, plain),
    }
}

/// Whether a blob with this header length field is a zstd frame to inflate (into the
/// caller's buffer, by [`open_in_place`]) rather than the plaintext itself (left
/// where it was decrypted: after the 16-byte nonce).
pub fn inflates(uncompressed_length: Option<u32>) -> bool {
    matches!(uncompressed_length, Some(len) if len > 0)
}

/// Compares the hash `got` of a blob's plaintext with its `id`.
///
/// # Errors
/// [`FormatError::Invalid`] naming both when they differ.
pub fn verify_id(id: &Id, got: Id) -> Result<()> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_in_place_decrypts_where_the_bytes_lie() {
        let key = Key::random();
        let text = b"log line 42\n".repeat(2000);
        let mut plain = Vec::new();
        for (data, c) in [(&text[..], Some(3)), (&b"raw bytes"[..], None)] {
            let id = Id::hash(data);
            let e = encode(&key, BlobType::Data, id, data, c);
            let mut sealed = e.sealed.clone();
            let got = decode_in_place(&key, &id, &mut sealed, e.uncompressed_length, &mut plain);
            assert_eq!(got.unwrap(), data);
            let mut damaged = e.sealed.clone();
            damaged[20] ^= 1;
            let r = decode_in_place(&key, &id, &mut damaged, e.uncompressed_length, &mut plain);
            assert!(matches!(r, Err(FormatError::MacMismatch)));
            assert_eq!(
                damaged[21..],
                e.sealed[21..],
                "nothing decrypted after a MAC failure"
            );
        }
    }

    #[test]
    fn open_into_leaves_the_sealed_bytes_as_they_were() {
        let key = Key::random();
        let text = b"log line 42\n".repeat(2000);
        let (mut scratch, mut plain) = (Vec::new(), Vec::new());
        for (data, c) in [
            (&text[..], Some(3)),
            (&b"raw bytes"[..], None),
            (&b""[..], Some(3)),
        ] {
            let e = encode(&key, BlobType::Data, Id::hash(data), data, c);
            open_into(
                &key,
                &e.sealed,
                e.uncompressed_length,
                &mut scratch,
                &mut plain,
            )
            .unwrap();
            assert_eq!(plain, data);
            let mut damaged = e.sealed.clone();
            damaged[20] ^= 1;
            assert!(open_into(
                &key,
                &damaged,
                e.uncompressed_length,
                &mut scratch,
                &mut plain
            )
            .is_err());
            if let Some(len) = e.uncompressed_length {
                let longer = Some(len + 1);
                assert!(open_into(&key, &e.sealed, longer, &mut scratch, &mut plain).is_err());
            }
        }
    }

    #[test]
    fn decode_in_place_reuses_one_buffer_across_kinds() {
        let key = Key::random();
        let mut plain = Vec::new();
        let big = b"abc".repeat(5000);
        for (data, c) in [
            (&big[..], Some(3)),
            (&b"raw"[..], None),
            (&b""[..], Some(3)),
            (&big[..100], Some(3)),
            (&big[..10], None),
        ] {
            let id = Id::hash(data);
            let e = encode(&key, BlobType::Data, id, data, c);
            let mut sealed = e.sealed.clone();
            let got = decode_in_place(&key, &id, &mut sealed, e.uncompressed_length, &mut plain);
            assert_eq!(got.unwrap(), data);
            assert_eq!(
                decode(&key, &id, &e.sealed, e.uncompressed_length).unwrap(),
                data
            );
            let wrong = Id::hash(b"other");
            let mut sealed = e.sealed.clone();
            assert!(
                decode_in_place(&key, &wrong, &mut sealed, e.uncompressed_length, &mut plain)
                    .is_err()
            );
        }
    }

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
