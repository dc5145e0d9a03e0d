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

use zstd::zstd_safe::{
    self, zstd_sys::ZSTD_EndDirective, CCtx, CParameter, DCtx, DParameter, InBuffer, OutBuffer,
    ResetDirective,
};

use crate::error::{FormatError, Result};

/// Level of `--compression auto`. restic's `auto` is the Go encoder's default speed;
/// libzstd level 2 compresses at least as well as it on logs and on source code
/// (`benches/README.md` has the figures) and runs about 25% faster on text than
/// level 3, which squeezes source code further at that cost.
pub const DEFAULT_LEVEL: i32 = 2;

/// restic's `--compression` modes for data and tree blobs of a version 2 repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Blobs are stored as plaintext.
    Off,
    /// zstd level 1.
    Fastest,
    /// [`DEFAULT_LEVEL`].
    #[default]
    Auto,
    /// zstd level 6.
    Better,
    /// zstd level 11: restic's `max` is the Go encoder's best mode, about this level.
    Max,
}

impl Mode {
    /// The zstd level, `None` for [`Mode::Off`].
    pub fn level(self) -> Option<i32> {
        match self {
            Mode::Off => None,
            Mode::Fastest => Some(1),
            Mode::Auto => Some(DEFAULT_LEVEL),
            Mode::Better => Some(6),
            Mode::Max => Some(11),
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(Mode::Off),
            "fastest" => Ok(Mode::Fastest),
            "auto" => Ok(Mode::Auto),
            "better" => Ok(Mode::Better),
            "max" => Ok(Mode::Max),
            _ => Err(format!(
                "invalid compression mode {s:?}: expected auto, off, fastest, better or max"
            )),
        }
    }
}

/// Upper bound for a decompressed index, snapshot or lock document.
pub const MAX_UNPACKED: u64 = 4 << 30;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, CCtx<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
    /// For frames handed over in pieces ([`decompress_pieces_into`]): its output
    /// buffer is stable (the caller's, as long as the whole plaintext), so zstd
    /// decodes straight into it and keeps no window of its own.
    static PIECES_DECOMPRESSOR: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

fn err(what: &'static str, e: impl ToString) -> FormatError {
    FormatError::Decompress {
        what,
        reason: e.to_string(),
    }
}

/// Compresses `data` into one zstd frame.
pub fn compress(data: &[u8], level: i32) -> Vec<u8> {
    let mut out = Vec::new();
    compress_append(data, level, &mut out);
    out
}

/// Compresses `data` into one zstd frame held in `out` (previous contents are
/// replaced). Reusing `out` across calls keeps the hot path free of allocations
/// and of first-touch page faults.
pub fn compress_into(data: &[u8], level: i32, out: &mut Vec<u8>) {
    out.clear();
    compress_append(data, level, out);
}

/// Appends one zstd frame of `data` to `out`, writing it in place: a pack buffer
/// receives the frame where it will be encrypted, with no intermediate copy.
/// The frame records the content size, like the one-shot API's.
pub fn compress_append(data: &[u8], level: i32, out: &mut Vec<u8>) {
    let level = level.clamp(1, 19);
    let start = out.len();
    out.reserve(zstd_safe::compress_bound(data.len()));
    let done = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            let mut c = CCtx::create();
            *slot = c
                .set_parameter(CParameter::CompressionLevel(level))
                .ok()
                .map(|_| (level, c));
        }
        let Some((_, c)) = slot.as_mut() else {
            return false;
        };
        let ended = (|| {
            c.reset(ResetDirective::SessionOnly)?;
            c.set_pledged_src_size(Some(data.len() as u64))?;
            let mut input = InBuffer::around(data);
            let mut output = OutBuffer::around_pos(out, start);
            // With room for the bound, one call ends the frame; anything left
            // pending means it did not.
            c.compress_stream2(&mut output, &mut input, ZSTD_EndDirective::ZSTD_e_end)
        })();
        matches!(ended, Ok(0))
    });
    if !done {
        // Cannot happen for valid levels and a buffer of the bound's size; fall back
        // to a one-off encoder all the same rather than store a broken frame.
        out.truncate(start);
        let frame = zstd::stream::encode_all(data, DEFAULT_LEVEL).unwrap_or_default();
        out.extend_from_slice(&frame);
    }
}

/// Decompresses a blob that must inflate to exactly `len` bytes.
///
/// # Errors
/// [`FormatError::Decompress`] for a bad frame or any other length.
pub fn decompress_exact(what: &'static str, frame: &[u8], len: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decompress_exact_into(what, frame, len, &mut out)?;
    Ok(out)
}

/// As [`decompress_exact`], into `out` (replacing its contents): a reader that
/// only verifies or copies the plaintext reuses one buffer for every blob.
///
/// # Errors
/// As [`decompress_exact`].
pub fn decompress_exact_into(
    what: &'static str,
    frame: &[u8],
    len: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    // Room for len + 1: a frame inflating further fails instead of allocating more.
    out.reserve(len + 1);
    let pooled = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        slot.as_mut().map(|d| d.decompress_to_buffer(frame, out))
    });
    match pooled {
        Some(r) => {
            r.map_err(|e| err(what, e))?;
        }
        None => {
            out.clear();
            zstd::stream::read::Decoder::new(frame)
                .map_err(|e| err(what, e))?
                .take(len as u64 + 1)
                .read_to_end(out)
                .map_err(|e| err(what, e))?;
        }
    }
    exact_len(what, out.len(), len)
}

/// As [`decompress_exact_into`], for a frame that `feed` hands over in pieces, in
/// order (it calls the function it is given once per piece): the frame is never
/// whole in memory. `check` decrypts a blob piece by piece into a small buffer this
/// way, leaving the pack's bytes as they were for the pack's own hash.
///
/// # Errors
/// As [`decompress_exact_into`], a frame that ends early, or the first error
/// `feed` returns.
pub fn decompress_pieces_into(
    what: &'static str,
    len: usize,
    out: &mut Vec<u8>,
    feed: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>,
) -> Result<()> {
    out.clear();
    let setup = |c| {
        err(
            what,
            format!("zstd context: {}", zstd_safe::get_error_name(c)),
        )
    };
    PIECES_DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut d =
                DCtx::try_create().ok_or_else(|| err(what, "zstd context: out of memory"))?;
            d.set_parameter(DParameter::StableOutBuffer(true))
                .map_err(setup)?;
            // As the one-shot decoder: a window as large as the frame, whatever it is
            // (no window buffer is allocated with a stable output buffer).
            d.set_parameter(DParameter::WindowLogMax(31))
                .map_err(setup)?;
            *slot = Some(d);
        }
        let Some(d) = slot.as_mut() else {
            return Err(err(what, "no zstd context"));
        };
        d.reset(ResetDirective::SessionOnly).map_err(setup)?;
        // zstd's hint of the input it still wants: zero once a frame is complete.
        let mut wanted = 1;
        feed(&mut |piece| {
            if out.capacity() <= len {
                // Room for len + 1, reserved once the first piece has come (after the
                // MAC was verified): a frame inflating further fails instead of
                // allocating more. The buffer must not move once zstd writes to it.
                out.try_reserve(len + 1)
                    .map_err(|e| err(what, format!("{len} bytes: {e}")))?;
            }
            let mut input = InBuffer::around(piece);
            while input.pos() < piece.len() {
                let (was_in, was_out) = (input.pos(), out.len());
                let at = out.len();
                let mut output = OutBuffer::around_pos(out, at);
                wanted = d.decompress_stream(&mut output, &mut input).map_err(|c| {
                    let name = zstd_safe::get_error_name(c);
                    err(what, format!("{name} (the header says {len} bytes)"))
                })?;
                if input.pos() == was_in && out.len() == was_out {
                    return Err(err(what, "zstd made no progress"));
                }
            }
            Ok(())
        })?;
        if wanted != 0 {
            return Err(err(what, "frame ends early"));
        }
        Ok(())
    })?;
    exact_len(what, out.len(), len)
}

/// A frame must inflate to exactly the length its header states.
fn exact_len(what: &'static str, got: usize, len: usize) -> Result<()> {
    if got != len {
        return Err(err(
            what,
            format!("inflated to {got} bytes, header says {len}"),
        ));
    }
    Ok(())
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
    fn modes_parse_like_restic_and_map_to_levels() {
        for (s, m, l) in [
            ("auto", Mode::Auto, Some(DEFAULT_LEVEL)),
            ("OFF", Mode::Off, None),
            ("fastest", Mode::Fastest, Some(1)),
            ("better", Mode::Better, Some(6)),
            ("max", Mode::Max, Some(11)),
        ] {
            let parsed: Mode = s.parse().unwrap();
            assert_eq!((parsed, parsed.level()), (m, l), "{s}");
        }
        let err = "fast".parse::<Mode>().unwrap_err();
        assert!(err.contains("\"fast\""), "{err}");
        assert_eq!(Mode::default(), Mode::Auto);
    }

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

    /// Feeds `frame` in pieces of `piece` bytes.
    fn in_pieces(frame: &[u8], len: usize, piece: usize) -> Result<Vec<u8>> {
        let mut out = vec![0xEE; 7];
        decompress_pieces_into("blob", len, &mut out, |inflate| {
            frame.chunks(piece).try_for_each(inflate)
        })?;
        Ok(out)
    }

    #[test]
    fn frames_in_pieces_inflate_like_whole_ones() {
        let text = b"2026-11-25 info request served in 12ms path=/a/b\n".repeat(9000);
        let noise: Vec<u8> = (0..300_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[3])
            .collect();
        for data in [&text[..], &noise[..], b"x"] {
            let f = compress(data, DEFAULT_LEVEL);
            for piece in [1, 5, 4096, 200_000, f.len()] {
                assert_eq!(
                    in_pieces(&f, data.len(), piece).unwrap(),
                    data,
                    "pieces of {piece}"
                );
            }
            assert!(
                in_pieces(&f, data.len() - 1, 4096).is_err(),
                "longer than its header says"
            );
            assert!(in_pieces(&f, data.len() + 1, 4096).is_err(), "shorter");
            let e = in_pieces(&f[..f.len() - 3], data.len(), 4096).unwrap_err();
            assert!(e.to_string().contains("blob"), "{e}");
        }
        assert!(in_pieces(b"not a zstd frame at all", 10, 4).is_err());
        // Concatenated frames inflate as one, as the one-shot decoder has them;
        // garbage after a frame is an error.
        let (a, b) = (compress(&text[..1000], 3), compress(&noise[..500], 3));
        let both = [&a[..], &b[..]].concat();
        let joined = [&text[..1000], &noise[..500]].concat();
        assert_eq!(decompress_exact("blob", &both, 1500).unwrap(), joined);
        assert_eq!(in_pieces(&both, 1500, 64).unwrap(), joined);
        let trailing = [&a[..], b"garbage"].concat();
        assert!(in_pieces(&trailing, 1000, 64).is_err());
        // A frame without its content size that inflates past the length.
        let mut unsized_frame = Vec::new();
        let mut enc = zstd::stream::write::Encoder::new(&mut unsized_frame, 3).unwrap();
        std::io::Write::write_all(&mut enc, &text).unwrap();
        enc.finish().unwrap();
        let e = in_pieces(&unsized_frame, 100, 4096).unwrap_err();
        assert!(e.to_string().contains("100 bytes"), "{e}");
        assert_eq!(in_pieces(&unsized_frame, text.len(), 4096).unwrap(), text);
        let failed = decompress_pieces_into("blob", 5, &mut Vec::new(), |_| {
            Err(FormatError::MacMismatch)
        });
        assert!(matches!(failed, Err(FormatError::MacMismatch)));
        // The context is reset between frames: a failed one leaves nothing behind.
        let f = compress(&text, DEFAULT_LEVEL);
        assert_eq!(in_pieces(&f, text.len(), 777).unwrap(), text);
    }

    #[test]
    fn appended_frames_match_the_one_shot_encoder() {
        let text = b"2026-11-25 info request served in 12ms path=/a/b\n".repeat(3000);
        for data in [&text[..], b"x", &[0u8; 0][..]] {
            let one_shot = zstd::bulk::compress(data, DEFAULT_LEVEL).unwrap();
            let mut out = b"head".to_vec();
            compress_append(data, DEFAULT_LEVEL, &mut out);
            assert_eq!(&out[..4], b"head");
            assert_eq!(&out[4..], &one_shot[..], "{} bytes", data.len());
        }
    }

    #[test]
    fn compress_into_replaces_and_reuses_the_buffer() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = b"stale bytes".to_vec();
        compress_into(&data, DEFAULT_LEVEL, &mut out);
        assert_eq!(out, compress(&data, DEFAULT_LEVEL));
        let ptr = out.as_ptr();
        compress_into(&data[..1000], DEFAULT_LEVEL, &mut out);
        assert_eq!(out.as_ptr(), ptr, "a smaller frame fits the same buffer");
        assert_eq!(decompress_exact("blob", &out, 1000).unwrap(), &data[..1000]);
    }
}
