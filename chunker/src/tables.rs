//! The two 256-entry lookup tables that make the Rabin hash one table lookup per
//! direction per byte (restic/chunker's `out` and `mod` tables, spec §10.3).
//!
//! They depend only on the polynomial, and a process sees one or two polynomials in
//! its life, while it may chunk millions of files; so they are built once per
//! polynomial and shared through a process-wide cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::error::ChunkerError;
use crate::pol::Polynomial;
use crate::rabin::WINDOW;

/// Lookup tables for one polynomial `P` of degree `k`.
#[derive(Debug)]
pub(crate) struct Tables {
    /// `out[b] = b * x^(8*(WINDOW-1)) mod P`: XOR-ing it removes byte `b` as it leaves
    /// the window, since by then it has been multiplied by `x^8` 63 times.
    pub(crate) out: [u64; 256],
    /// `modt[b] = ((b << k) mod P) | (b << k)`: XOR-ing it both clears the 8 bits that
    /// a shift pushed above degree `k` and adds their remainder.
    pub(crate) modt: [u64; 256],
    /// `k - 8`: shifting the digest right by it yields the index into `modt`.
    pub(crate) shift: u32,
}

impl Tables {
    fn build(pol: Polynomial) -> Result<Tables, ChunkerError> {
        let k = pol.deg();
        // Below 8 the top-byte index would be negative; above 56 `digest << 8` and
        // `b << k` would not fit in 64 bits.
        if !(8..=56).contains(&k) {
            return Err(ChunkerError::UnsupportedDegree(pol, k));
        }
        let rem = |v: u64| Polynomial(v).checked_rem(pol).map_or(0, |r| r.0);
        let mut out = [0u64; 256];
        let mut modt = [0u64; 256];
        for (b, (o, m)) in (0u64..).zip(out.iter_mut().zip(modt.iter_mut())) {
            let mut h = rem(b);
            for _ in 0..WINDOW - 1 {
                h = rem(h << 8);
            }
            *o = h;
            *m = rem(b << k) | (b << k);
        }
        Ok(Tables {
            out,
            modt,
            shift: k.unsigned_abs() - 8,
        })
    }

    /// The tables for `pol`, built on first use and then shared.
    pub(crate) fn for_polynomial(pol: Polynomial) -> Result<Arc<Tables>, ChunkerError> {
        static CACHE: OnceLock<Mutex<HashMap<Polynomial, Arc<Tables>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        // A panic while holding the lock cannot leave a half-built entry behind
        // (insertion is the last step), so a poisoned map is still sound.
        let mut map = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = map.get(&pol) {
            return Ok(Arc::clone(t));
        }
        let t = Arc::new(Tables::build(pol)?);
        map.insert(pol, Arc::clone(&t));
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POL: Polynomial = Polynomial(0x3DA3358B4DC173);

    #[test]
    fn cached_and_shaped() {
        let a = Tables::for_polynomial(POL).unwrap();
        let b = Tables::for_polynomial(POL).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.shift, 45);
        assert_eq!(a.out[0], 0);
        assert_eq!(a.modt[0], 0);
        // Each mod entry carries b in its top byte so the XOR cancels it.
        for b in 0..256u64 {
            assert_eq!(a.modt[b as usize] >> 53, b);
            assert!(a.out[b as usize] < 1 << 53);
        }
    }

    #[test]
    fn degree_limits() {
        assert!(Tables::for_polynomial(Polynomial(0)).is_err());
        assert!(Tables::for_polynomial(Polynomial(0x7f)).is_err());
        assert!(Tables::for_polynomial(Polynomial(1 << 57 | 1)).is_err());
        assert!(Tables::for_polynomial(Polynomial(0x11b)).is_ok());
        assert!(Tables::for_polynomial(Polynomial(1 << 56 | 1)).is_ok());
    }
}
