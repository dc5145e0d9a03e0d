//! FastCDC (the `fastcdc` crate's 2020 variant, normalization level 1): the opt-in
//! chunker for new repositories, about twice as fast as Rabin, with no polynomial.
//!
//! The crate's `cut_gear` wants the whole candidate region, up to the maximum chunk
//! size, in one slice and always starts over from the minimum, so driving it from a
//! stream means holding 8 MiB of look-ahead and moving it around after every chunk
//! (what its `StreamCDC` does). [`FastCdcCutter`] instead runs the same loop one
//! step at a time and keeps its place, using the crate's gear tables and masks.
//! Its boundaries equal the crate's for the same sizes (tested against both the
//! crate's `FastCDC` and `StreamCDC`). The loop examines bytes in pairs and may cut
//! before the first byte of a pair, so it only decides once a pair is complete.

use std::sync::OnceLock;

use fastcdc::v2020;

use crate::cutter::Cutter;
use crate::error::ChunkerError;

/// Minimum chunk size for FastCDC repositories: 512 KiB, as restic's.
pub const FASTCDC_MIN_SIZE: usize = 512 * 1024;
/// Average chunk size for FastCDC repositories: 1 MiB.
pub const FASTCDC_AVG_SIZE: usize = 1024 * 1024;
/// Maximum chunk size for FastCDC repositories: 8 MiB, as restic's.
pub const FASTCDC_MAX_SIZE: usize = 8 * 1024 * 1024;

/// Chunk sizes for [`FastCdcCutter`]; the default is ours (512 KiB / 1 MiB / 8 MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastCdcParams {
    min: u32,
    avg: u32,
    max: u32,
}

impl Default for FastCdcParams {
    fn default() -> Self {
        // The constants are far below u32::MAX.
        FastCdcParams {
            min: FASTCDC_MIN_SIZE as u32,
            avg: FASTCDC_AVG_SIZE as u32,
            max: FASTCDC_MAX_SIZE as u32,
        }
    }
}

impl FastCdcParams {
    /// Custom sizes; repositories use the default.
    ///
    /// # Errors
    /// Outside the `fastcdc` crate's limits (which it enforces by panicking), unless
    /// `min <= avg <= max`, or for an odd `min`: the loop hashes byte pairs from
    /// `min / 2`, so an odd minimum would allow chunks one byte shorter.
    pub fn new(min: u32, avg: u32, max: u32) -> Result<Self, ChunkerError> {
        if !(v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&min)
            || !(v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&avg)
            || !(v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&max)
        {
            return Err(ChunkerError::InvalidParams(
                "outside fastcdc's supported sizes",
            ));
        }
        if min > avg || avg > max {
            return Err(ChunkerError::InvalidParams("need min <= avg <= max"));
        }
        if min % 2 == 1 {
            return Err(ChunkerError::InvalidParams("min must be even"));
        }
        Ok(FastCdcParams { min, avg, max })
    }
}

type Gear = [u64; 256];

fn gear_tables() -> &'static (Box<Gear>, Box<Gear>) {
    static GEAR: OnceLock<(Box<Gear>, Box<Gear>)> = OnceLock::new();
    GEAR.get_or_init(|| v2020::get_gear_with_seed(0))
}

/// FastCDC boundaries, identical to `fastcdc::v2020` at normalization level 1.
#[derive(Debug, Clone)]
pub struct FastCdcCutter {
    gear: &'static Gear,
    gear_ls: &'static Gear,
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    /// Next byte pair (bytes `2p` and `2p + 1` of the chunk) to hash.
    pair: usize,
    hash: u64,
}

impl Default for FastCdcCutter {
    fn default() -> Self {
        Self::new(FastCdcParams::default())
    }
}

impl FastCdcCutter {
    /// A cutter for the given sizes.
    pub fn new(params: FastCdcParams) -> Self {
        let (gear, gear_ls) = gear_tables();
        // As `v2020::FastCDC::with_level(.., Normalization::Level1)`.
        let bits = v2020::logarithm2(params.avg) as usize;
        let nc = v2020::Normalization::Level1.bits() as usize;
        let min = params.min as usize;
        FastCdcCutter {
            gear,
            gear_ls,
            min,
            avg: params.avg as usize,
            max: params.max as usize,
            mask_s: v2020::MASKS[bits + nc],
            mask_l: v2020::MASKS[bits - nc],
            pair: min / 2,
            hash: 0,
        }
    }

    /// Hashes pairs `from..to` of `pending` with the given mask, returning the cut
    /// length on a match; `self.pair` is left after the last pair hashed.
    fn run(&mut self, pending: &[u8], to: usize, mask: u64) -> Option<usize> {
        let from = self.pair;
        if from >= to {
            return None;
        }
        let mask_ls = mask << 1;
        let mut hash = self.hash;
        for (k, p) in pending[2 * from..2 * to].chunks_exact(2).enumerate() {
            hash = (hash << 2).wrapping_add(self.gear_ls[usize::from(p[0])]);
            if hash & mask_ls == 0 {
                return Some(2 * (from + k));
            }
            hash = hash.wrapping_add(self.gear[usize::from(p[1])]);
            if hash & mask == 0 {
                return Some(2 * (from + k) + 1);
            }
        }
        self.hash = hash;
        self.pair = to;
        None
    }
}

impl Cutter for FastCdcCutter {
    fn find_cut(&mut self, pending: &[u8], eof: bool) -> Option<usize> {
        let r = pending.len();
        let found = if r <= self.min {
            (eof && r > 0).then_some(r)
        } else {
            // Only complete pairs, and none at or past the maximum.
            let end = r.min(self.max) / 2;
            // `cut_gear` uses the small mask below `center = min(avg, remaining)`; for
            // every pair it can reach, that is the same as below `avg`.
            let small_end = end.min(self.avg / 2);
            self.run(pending, small_end, self.mask_s)
                .or_else(|| self.run(pending, end, self.mask_l))
                .or_else(|| {
                    if r >= self.max {
                        Some(self.max)
                    } else {
                        eof.then_some(r)
                    }
                })
        };
        if found.is_some() {
            self.reset();
        }
        found
    }

    fn min_size(&self) -> usize {
        self.min
    }

    fn max_size(&self) -> usize {
        self.max
    }

    fn reset(&mut self) {
        self.pair = self.min / 2;
        self.hash = 0;
    }
}
