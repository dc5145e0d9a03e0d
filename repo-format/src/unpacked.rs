//! The "unpacked" encoding of index, snapshot and lock files: sealed JSON, in version 2
//! prefixed by an encoding byte (`0x02` = zstd frame follows). A v2 reader still
//! accepts raw JSON starting with `{` or `[`, which is what v1 wrote and what survives
//! a v1 -> v2 upgrade.

use crate::{
    compress,
    error::{FormatError, Result},
};

const ZSTD_FORMAT: u8 = 2;

/// Plaintext for a file of a repository of `version`.
pub fn encode(version: u32, json: &[u8]) -> Vec<u8> {
    if version < 2 {
        return json.to_vec();
    }
    let frame = compress::compress(json, compress::DEFAULT_LEVEL);
    let mut out = Vec::with_capacity(frame.len() + 1);
    out.push(ZSTD_FORMAT);
    out.extend_from_slice(&frame);
    out
}

/// The JSON inside a decrypted unpacked file of any version.
///
/// # Errors
/// [`FormatError::Invalid`] for an unknown encoding byte, or a decompression error.
pub fn decode(what: &'static str, plaintext: Vec<u8>) -> Result<Vec<u8>> {
    match plaintext.first() {
        None | Some(b'{') | Some(b'[') => Ok(plaintext),
        Some(&ZSTD_FORMAT) => compress::decompress_bounded(what, &plaintext[1..]),
        Some(b) => Err(FormatError::invalid(
            what,
            format!("unsupported encoding byte {b:#04x}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let j = br#"{"a":1}"#;
        assert_eq!(encode(1, j), j.to_vec());
        let v2 = encode(2, j);
        assert_eq!(v2[0], 2);
        assert_eq!(decode("x", v2).unwrap(), j.to_vec());
        assert_eq!(decode("x", j.to_vec()).unwrap(), j.to_vec());
        assert!(decode("x", vec![7, 1, 2]).is_err());
        assert!(decode("x", vec![2, 1, 2]).is_err());
    }
}
