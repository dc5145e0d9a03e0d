//! zstd for repository version 2: data and tree blobs, and the JSON of unpacked files.
//!
//! Frames are written without a checksum (restic's encoder does the same; the MAC
//! already authenticates the bytes). Decompression is bounded: a blob must inflate to
//! exactly the length its pack header states, an unpacked file to at most
//! [`MAX_UNPACKED`] bytes, so a hostile frame cannot exhaust memory.

use std::io::Read;

use crate::error::{FormatError, Result};

/// Default level, the equivalent of restic's `--compression auto`.
pub const DEFAULT_LEVEL: i32 = 3;

/// Upper bound for a decompressed index, snapshot or lock document.
pub const MAX_UNPACKED: u64 = 4 << 30;

/// Compresses `data` into one zstd frame.
pub fn compress(data: &[u8], level: i32) -> Vec<u8> {
    // Encoding into a Vec cannot fail for valid levels; clamp to be sure.
    let level = level.clamp(1, 19);
    zstd::bulk::compress(data, level)
        .unwrap_or_else(|_| zstd::stream::encode_all(data, DEFAULT_LEVEL).unwrap_or_default())
}

/// Decompresses a blob that must inflate to exactly `len` bytes.
///
/// # Errors
/// [`FormatError::Decompress`] for a bad frame or any other length.
pub fn decompress_exact(what: &'static str, frame: &[u8], len: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut dec = zstd::stream::read::Decoder::new(frame)
        .map_err(|e| FormatError::Decompress {
            what,
            reason: e.to_string(),
        })?
        .take(len as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| FormatError::Decompress {
            what,
            reason: e.to_string(),
        })?;
    if out.len() != len {
        return Err(FormatError::Decompress {
            what,
            reason: format!("inflated to {} bytes, header says {len}", out.len()),
        });
    }
    Ok(out)
}

/// Decompresses a frame of unknown content size, up to [`MAX_UNPACKED`] bytes.
///
/// # Errors
/// [`FormatError::Decompress`] for a bad frame or an oversized result.
pub fn decompress_bounded(what: &'static str, frame: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut dec = zstd::stream::read::Decoder::new(frame)
        .map_err(|e| FormatError::Decompress {
            what,
            reason: e.to_string(),
        })?
        .take(MAX_UNPACKED + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| FormatError::Decompress {
            what,
            reason: e.to_string(),
        })?;
    if out.len() as u64 > MAX_UNPACKED {
        return Err(FormatError::Decompress {
            what,
            reason: "too large".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let data = b"hello hello hello hello".repeat(100);
        let f = compress(&data, DEFAULT_LEVEL);
        assert!(f.len() < data.len());
        assert_eq!(decompress_exact("blob", &f, data.len()).unwrap(), data);
        assert!(decompress_exact("blob", &f, data.len() - 1).is_err());
        assert!(decompress_exact("blob", &f, data.len() + 1).is_err());
        assert_eq!(decompress_bounded("index", &f).unwrap(), data);
        assert!(decompress_bounded("index", b"garbage").is_err());
        assert!(decompress_exact("blob", &f[..f.len() / 2], data.len()).is_err());
    }
}
