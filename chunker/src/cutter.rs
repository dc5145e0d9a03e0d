//! The sans-IO core: decide where chunks end, given bytes, with no reading or
//! buffering of its own. [`crate::ChunkReader`] puts a `Read` in front of it; other
//! callers (async readers, in-memory data) can drive it directly.
//!
//! restic's cut rule (spec §10.4), in chunk-relative terms: with `count` bytes in the
//! chunk including byte `i` (so `count = i + 1`), cut after byte `i` when
//! `count >= MIN` and either `count >= MAX` or the fingerprint of the 64 bytes ending
//! at `i` has its low `avg_bits` bits clear. At each chunk start restic resets its
//! window to a lone 0x01, skips `MIN - 64` bytes unhashed, then rolls every byte in;
//! at the first test (`count = MIN`) exactly 64 bytes have been rolled and the 0x01
//! has just left, so every tested digest is the plain fingerprint of the last 64
//! bytes and the reset never shows. That is why [`RabinCutter`] only needs the bytes
//! themselves (plus, across [`RabinCutter::next_boundary`] calls, the last 64).

use std::sync::Arc;

use crate::error::ChunkerError;
use crate::pol::Polynomial;
use crate::rabin::{find_match, WINDOW};
use crate::tables::Tables;

/// restic's minimum chunk size: 512 KiB.
pub const MIN_SIZE: usize = 512 * 1024;
/// restic's maximum chunk size: 8 MiB.
pub const MAX_SIZE: usize = 8 * 1024 * 1024;
/// restic's split mask width: a cut where the low 20 fingerprint bits are zero, so
/// about 1 MiB past the minimum on average.
pub const AVERAGE_BITS: u32 = 20;

/// Finds chunk boundaries in a growing buffer.
///
/// Each call passes `pending`: all bytes of the current chunk so far, starting at its
/// first byte. Between calls `pending` may only grow at the end (implementations
/// remember how far they have looked). When a call returns `Some(n)`, the chunk is
/// `pending[..n]` and the next call's `pending` must start at what was `pending[n]`.
/// `eof` says no more bytes will follow; then a non-empty `pending` always yields a
/// (final, possibly short) chunk, and an empty one yields `None`.
pub trait Cutter {
    /// The length of the chunk at the start of `pending`, if it is decided yet.
    fn find_cut(&mut self, pending: &[u8], eof: bool) -> Option<usize>;
    /// No chunk but the last is shorter than this.
    fn min_size(&self) -> usize;
    /// No chunk is longer than this, so `pending` never needs to hold more.
    fn max_size(&self) -> usize;
    /// Forget the current chunk, to start on unrelated data.
    fn reset(&mut self);
}

/// Chunk size parameters for [`RabinCutter`]; the default is restic's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RabinParams {
    min_size: usize,
    max_size: usize,
    avg_bits: u32,
}

impl Default for RabinParams {
    fn default() -> Self {
        RabinParams {
            min_size: MIN_SIZE,
            max_size: MAX_SIZE,
            avg_bits: AVERAGE_BITS,
        }
    }
}

impl RabinParams {
    /// Custom sizes, for tests and experiments; repositories use the default, since
    /// any other choice changes every boundary and so defeats deduplication with restic.
    ///
    /// # Errors
    /// Unless `64 < min_size <= max_size` and `avg_bits <= 63`: the first tested
    /// window must lie wholly inside the chunk.
    pub fn new(min_size: usize, max_size: usize, avg_bits: u32) -> Result<Self, ChunkerError> {
        if min_size <= WINDOW {
            return Err(ChunkerError::InvalidParams(
                "min_size must exceed the 64-byte window",
            ));
        }
        if max_size < min_size {
            return Err(ChunkerError::InvalidParams(
                "max_size must be at least min_size",
            ));
        }
        if avg_bits > 63 {
            return Err(ChunkerError::InvalidParams("avg_bits must be at most 63"));
        }
        Ok(RabinParams {
            min_size,
            max_size,
            avg_bits,
        })
    }
}

/// restic's content-defined chunker: the same boundaries as restic/chunker for the
/// same polynomial and sizes.
#[derive(Debug, Clone)]
pub struct RabinCutter {
    tables: Arc<Tables>,
    min: usize,
    max: usize,
    mask: u64,
    /// For [`Cutter::find_cut`]: positions below this in `pending` are known not to match.
    scanned: usize,
    /// For [`RabinCutter::next_boundary`]: bytes of the current chunk seen so far,
    count: usize,
    /// and the last 64 of them (oldest first), which windows straddling calls need.
    tail: [u8; WINDOW],
}

impl RabinCutter {
    /// A cutter with restic's sizes.
    ///
    /// # Errors
    /// [`ChunkerError::UnsupportedDegree`] unless `8 <= deg(pol) <= 56`. The
    /// polynomial need not be irreducible: restic chunks with whatever the config says.
    pub fn new(pol: Polynomial) -> Result<Self, ChunkerError> {
        Self::with_params(pol, RabinParams::default())
    }

    /// A cutter with custom sizes.
    ///
    /// # Errors
    /// As [`RabinCutter::new`].
    pub fn with_params(pol: Polynomial, params: RabinParams) -> Result<Self, ChunkerError> {
        Ok(RabinCutter {
            tables: Tables::for_polynomial(pol)?,
            min: params.min_size,
            max: params.max_size,
            mask: (1u64 << params.avg_bits) - 1,
            scanned: 0,
            count: 0,
            tail: [0; WINDOW],
        })
    }

    /// The first boundary in `hay[lo..hi]` by fingerprint, `hay` being contiguous
    /// chunk bytes with at least 64 before `lo`.
    fn search(&self, hay: &[u8], lo: usize, hi: usize) -> Option<usize> {
        if lo < hi {
            find_match(&self.tables, hay, lo, hi, self.mask)
        } else {
            None
        }
    }

    /// Streaming form that never needs earlier bytes again: feed consecutive slices
    /// of the input. `Some(n)` means the current chunk ends after `data[..n]`; the
    /// cutter then starts a new chunk, and the caller feeds `data[n..]` next. `None`
    /// means all of `data` belongs to the current chunk. At end of input call
    /// [`RabinCutter::finish`]. Do not mix with [`Cutter::find_cut`] on one chunk.
    pub fn next_boundary(&mut self, data: &[u8]) -> Option<usize> {
        let c = self.count;
        // Byte data[j] is chunk byte c + j. Test j in [lo, hi); j = forced cuts at max.
        let lo = (self.min - 1).saturating_sub(c);
        let hi = data.len().min((self.max - 1).saturating_sub(c));
        // Windows ending in the first 64 bytes reach back into earlier calls: search
        // those in a stitched copy of the tail and the head of `data`.
        if lo < hi.min(WINDOW) {
            let m = data.len().min(WINDOW);
            let mut stitched = [0u8; 2 * WINDOW];
            stitched[..WINDOW].copy_from_slice(&self.tail);
            stitched[WINDOW..WINDOW + m].copy_from_slice(&data[..m]);
            let hit = self.search(
                &stitched[..WINDOW + m],
                WINDOW + lo,
                WINDOW + hi.min(WINDOW),
            );
            if let Some(i) = hit {
                return Some(self.cut(i - WINDOW + 1));
            }
        }
        if let Some(j) = self.search(data, lo.max(WINDOW), hi) {
            return Some(self.cut(j + 1));
        }
        if c + data.len() >= self.max {
            return Some(self.cut(self.max - c));
        }
        self.count = c + data.len();
        if data.len() >= WINDOW {
            self.tail.copy_from_slice(&data[data.len() - WINDOW..]);
        } else {
            self.tail.copy_within(data.len().., 0);
            self.tail[WINDOW - data.len()..].copy_from_slice(data);
        }
        None
    }

    /// Ends the input for [`RabinCutter::next_boundary`]: the length of the final
    /// chunk (the bytes fed since the last boundary), if there are any.
    pub fn finish(&mut self) -> Option<usize> {
        let n = self.count;
        self.count = 0;
        (n > 0).then_some(n)
    }

    fn cut(&mut self, n: usize) -> usize {
        self.count = 0;
        n
    }
}

impl Cutter for RabinCutter {
    fn find_cut(&mut self, pending: &[u8], eof: bool) -> Option<usize> {
        let lo = self.scanned.max(self.min - 1);
        let hi = pending.len().min(self.max - 1);
        let found = self.search(pending, lo, hi).map(|i| i + 1).or_else(|| {
            if pending.len() >= self.max {
                Some(self.max)
            } else {
                (eof && !pending.is_empty()).then_some(pending.len())
            }
        });
        self.scanned = if found.is_some() {
            0
        } else {
            self.scanned.max(hi)
        };
        found
    }

    fn min_size(&self) -> usize {
        self.min
    }

    fn max_size(&self) -> usize {
        self.max
    }

    fn reset(&mut self) {
        self.scanned = 0;
        self.count = 0;
    }
}
