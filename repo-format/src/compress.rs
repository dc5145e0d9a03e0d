//! zstd for repository version 2: data and tree blobs, and the JSON of unpacked files.
//!
//! Frames are written without a checksum (restic's encoder does the same; the MAC
//! already authenticates the bytes). Decompression is bounded: a blob must inflate to
//! exactly the length its pack header states, an unpacked file to at most
//! [`MAX_UNPACKED`] bytes, so a hostile frame cannot exhaust memory.
//!
//! Contexts are kept per thread: creating a zstd context costs megabytes of fresh
//! memory, more than compressing a 1 MiB chunk.

use std::{cell::RefCell, io::Read};

use crate::error::{FormatError, Result};

/// Default level, the equivalent of restic's `--compression auto`.
pub const DEFAULT_LEVEL: i32 = 3;

/// Upper bound for a decompressed index, snapshot or lock document.
pub const MAX_UNPACKED: u64 = 4 << 30;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn err(what: &'static str, e: impl ToString) -> FormatError {
    FormatError::Decompress {
        what,
        reason: e.to_string(),
    }
}

/// Compresses `data` into one zstd frame.
pub fn compress(data: &[u8], level: i32) -> Vec<u8> {
    let level = level.clamp(1, 19);
    let pooled = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        slot.as_mut().and_then(|(_, c)| c.compress(data).ok())
    });
    // Encoding into a Vec cannot fail for valid levels; fall back to a one-off context.
    pooled.unwrap_or_else(|| zstd::stream::encode_all(data, DEFAULT_LEVEL).unwrap_or_default())
}

/// Decompresses a blob that must inflate to exactly `len` bytes.
///
/// # Errors
/// [`FormatError::Decompress`] for a bad frame or any other length.
pub fn decompress_exact(what: &'static str, frame: &[u8], len: usize) -> Result<Vec<u8>> {
    let pooled = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        // Capacity len + 1: a frame inflating further fails instead of allocating more.
        slot.as_mut().map(|d| d.decompress(frame, len + 1))
    });
    let out = match pooled {
        Some(r) => r.map_err(|e| err(what, e))?,
        None => {
            let mut out = Vec::with_capacity(len);
            zstd::stream::read::Decoder::new(frame)
                .map_err(|e| err(what, e))?
                .take(len as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| err(what, e))?;
            out
        }
    };
    if out.len() != len {
        return Err(err(
            what,
            format!("inflated to {} bytes, header says {len}", out.len()),
        ));
    }
    Ok(out)
}

/// Decompresses a frame of unknown content size, up to [`MAX_UNPACKED`] bytes.
///
/// # Errors
/// [`FormatError::Decompress`] for a bad frame or an oversized result.
pub fn decompress_bounded(what: &'static str, frame: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(frame)
        .map_err(|e| err(what, e))?
        .take(MAX_UNPACKED + 1)
        .read_to_end(&mut out)
        .map_err(|e| err(what, e))?;
    if out.len() as u64 > MAX_UNPACKED {
        return Err(err(what, "too large"));
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
        // Contexts are reused across calls and levels.
        let g = compress(&data, 7);
        assert_eq!(decompress_exact("blob", &g, data.len()).unwrap(), data);
        assert_eq!(compress(&data, DEFAULT_LEVEL), f);
    }
}
