//! The Rabin fingerprint of a sliding 64-byte window, and a fast search for the first
//! window whose fingerprint has its low bits clear.
//!
//! restic/chunker keeps a 64-byte ring and rolls one digest through every hashed
//! byte. Once 64 bytes have been rolled in, though, that digest is exactly the
//! fingerprint `F(w) = sum(w[j] * x^(8*(63-j))) mod P` of the last 64 bytes and
//! nothing else, and restic only ever tests it from that point on (see `cutter`).
//! So this module works on contiguous bytes: the byte leaving the window is simply
//! `data[i - 64]`, and a digest can be started anywhere by rolling the 64 bytes
//! before it in. That lets [`find_match`] hash four independent stretches at once,
//! which hides the latency of the table lookups that chain byte to byte (one stream
//! runs at roughly a third of the speed).

use crate::tables::Tables;

/// Bytes in the rolling window (restic's `windowSize`).
pub(crate) const WINDOW: usize = 64;

/// Bytes searched per round of four lanes. Smaller wastes less work past a match
/// (found in lane 1..3, the rest of the round still runs); larger amortizes the
/// 4 x 64 bytes of warm-up per round. 64 KiB keeps both near 1 %.
const SPAN: usize = 64 * 1024;

/// Below this many positions, a single lane is as fast as four.
const MIN_LANED: usize = 4 * 1024;

/// One step: drop `out` (the byte leaving the window), shift in `inb`, reduce mod P.
#[inline(always)]
fn roll(t: &Tables, shift: u32, digest: u64, out: u8, inb: u8) -> u64 {
    let d = digest ^ t.out[usize::from(out)];
    // d < 2^k and shift = k - 8, so the index fits in a byte.
    let top = (d >> shift) as u8;
    ((d << 8) | u64::from(inb)) ^ t.modt[usize::from(top)]
}

/// `F(window)` for exactly [`WINDOW`] bytes, by rolling them into an all-zero
/// window (whose departing zero bytes contribute nothing).
#[inline(always)]
fn prime(t: &Tables, shift: u32, window: &[u8]) -> u64 {
    window.iter().fold(0, |d, &b| roll(t, shift, d, 0, b))
}

/// The fingerprint of the 64 bytes ending at (and including) `data[i]`.
#[cfg(test)]
pub(crate) fn fingerprint_at(t: &Tables, data: &[u8], i: usize) -> u64 {
    prime(t, t.shift, &data[i + 1 - WINDOW..=i])
}

/// The first `i` in `lo..hi` with `F(data[i-63..=i]) & mask == 0`.
///
/// Needs `WINDOW <= lo` and `hi <= data.len()`; outside that it returns `None`.
pub(crate) fn find_match(
    t: &Tables,
    data: &[u8],
    lo: usize,
    hi: usize,
    mask: u64,
) -> Option<usize> {
    if lo < WINDOW || hi > data.len() {
        return None;
    }
    // Specialize for restic's (and every random polynomial's) degree 53, so the
    // shift is an immediate rather than a variable-count shift.
    match t.shift {
        45 => search(t, 45, data, lo, hi, mask),
        s => search(t, s, data, lo, hi, mask),
    }
}

#[inline(always)]
fn search(t: &Tables, shift: u32, data: &[u8], lo: usize, hi: usize, mask: u64) -> Option<usize> {
    let mut start = lo;
    while start < hi {
        let end = hi.min(start.saturating_add(SPAN));
        let found = if end - start < MIN_LANED {
            one_lane(t, shift, data, start, end, mask)
        } else {
            four_lanes(t, shift, data, start, end, mask)
        };
        if found.is_some() {
            return found;
        }
        start = end;
    }
    None
}

#[inline(always)]
fn one_lane(t: &Tables, shift: u32, data: &[u8], lo: usize, hi: usize, mask: u64) -> Option<usize> {
    let mut d = prime(t, shift, &data[lo - WINDOW..lo]);
    let ins = &data[lo..hi];
    let outs = &data[lo - WINDOW..hi - WINDOW];
    for (k, (&o, &b)) in outs.iter().zip(ins).enumerate() {
        d = roll(t, shift, d, o, b);
        if d & mask == 0 {
            return Some(lo + k);
        }
    }
    None
}

/// Splits `lo..hi` into four equal stretches hashed in lock-step; the few positions
/// left over at the end continue the last lane.
#[inline(always)]
fn four_lanes(
    t: &Tables,
    shift: u32,
    data: &[u8],
    lo: usize,
    hi: usize,
    mask: u64,
) -> Option<usize> {
    let seg = (hi - lo) / 4;
    let s = [lo, lo + seg, lo + 2 * seg, lo + 3 * seg];
    let lane = |l: usize| {
        (
            &data[s[l] - WINDOW..s[l] - WINDOW + seg],
            &data[s[l]..s[l] + seg],
        )
    };
    let (o0, i0) = lane(0);
    let (o1, i1) = lane(1);
    let (o2, i2) = lane(2);
    let (o3, i3) = lane(3);
    let mut d = [0u64; 4];
    for (dl, &sl) in d.iter_mut().zip(&s) {
        *dl = prime(t, shift, &data[sl - WINDOW..sl]);
    }
    let [mut d0, mut d1, mut d2, mut d3] = d;
    // A match in lane 0 is the answer; one in a later lane only is if no earlier
    // lane matches anywhere in its stretch, so it is noted and the round goes on.
    let mut later: [Option<usize>; 4] = [None; 4];
    for k in 0..seg {
        d0 = roll(t, shift, d0, o0[k], i0[k]);
        d1 = roll(t, shift, d1, o1[k], i1[k]);
        d2 = roll(t, shift, d2, o2[k], i2[k]);
        d3 = roll(t, shift, d3, o3[k], i3[k]);
        if d0 & mask == 0 {
            return Some(s[0] + k);
        }
        if (d1 & mask == 0) | (d2 & mask == 0) | (d3 & mask == 0) {
            for (l, dl) in [(1, d1), (2, d2), (3, d3)] {
                if dl & mask == 0 && later[l].is_none() {
                    later[l] = Some(s[l] + k);
                }
            }
        }
    }
    if let Some(i) = later.into_iter().flatten().next() {
        return Some(i);
    }
    let rest = lo + 4 * seg;
    for (k, (&o, &b)) in data[rest - WINDOW..hi - WINDOW]
        .iter()
        .zip(&data[rest..hi])
        .enumerate()
    {
        d3 = roll(t, shift, d3, o, b);
        if d3 & mask == 0 {
            return Some(rest + k);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pol::Polynomial;
    use rand::{RngCore, SeedableRng};

    fn tables() -> std::sync::Arc<Tables> {
        Tables::for_polynomial(Polynomial(0x3DA3358B4DC173)).unwrap()
    }

    /// The obvious search, one fresh fingerprint per position.
    fn naive(t: &Tables, data: &[u8], lo: usize, hi: usize, mask: u64) -> Option<usize> {
        (lo..hi).find(|&i| fingerprint_at(t, data, i) & mask == 0)
    }

    #[test]
    fn rolling_equals_fresh_fingerprint() {
        let t = tables();
        let mut data = vec![0u8; 3000];
        rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut data);
        let mut d = prime(&t, t.shift, &data[..WINDOW]);
        for i in WINDOW..data.len() {
            d = roll(&t, t.shift, d, data[i - WINDOW], data[i]);
            assert_eq!(d, fingerprint_at(&t, &data, i));
        }
    }

    #[test]
    fn lanes_find_the_first_match() {
        let t = tables();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut data = vec![0u8; 200_000];
        rng.fill_bytes(&mut data);
        for mask in [0, 1, 0xff, 0xfff, 0x3fff, 0xffff, (1 << 20) - 1] {
            for (lo, hi) in [
                (64, 200_000),
                (100, 5000),
                (64, 64),
                (70_000, 150_001),
                (64, 4096 + 64 + 3),
            ] {
                assert_eq!(
                    find_match(&t, &data, lo, hi, mask),
                    naive(&t, &data, lo, hi, mask),
                    "{mask:x} {lo} {hi}"
                );
            }
        }
        assert_eq!(find_match(&t, &data, 10, 100, 0), None);
        assert_eq!(find_match(&t, &data, 100, 200_001, 0), None);
    }
}
