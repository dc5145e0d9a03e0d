//! scrypt (RFC 7914), the KDF of restic's key files, with the parameters (N, r, p)
//! each key file names.
//!
//! The derivation is the RustCrypto `scrypt` crate's, its lanes one after another.
//! With the `simd-crypto` feature (and unless `STASH_SIMD_CRYPTO=0`), [`scrypt()`]
//! runs the lanes on several threads within [`LANE_MEMORY_BUDGET`] instead, with
//! Salsa20/8 on SSE2 (`crate::simd::scrypt`); the key is the same.

use crate::error::{FormatError, Result};

/// Memory the `simd-crypto` path's lanes running at once may take together (each
/// lane needs `128·r·N` bytes); one lane always runs. The default path runs one
/// lane at a time.
pub const LANE_MEMORY_BUDGET: usize = 32 << 20;

/// The most memory one lane may ask for: a key file is repository data, and a
/// hostile one must not make the process abort on allocation.
pub const MAX_LANE_MEMORY: usize = 1 << 30;

/// Validated scrypt cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    n: usize,
    r: usize,
    p: usize,
}

impl Cost {
    /// Checks N (a power of two, 2..=2^30), r and p (at least 1, r·p below 2^30),
    /// the memory one lane needs and the memory of all lanes' input (128·r·p).
    ///
    /// # Errors
    /// [`FormatError::Kdf`] naming the parameters.
    pub fn new(n: u64, r: u32, p: u32) -> Result<Cost> {
        let bad = |why: &str| kdf_error(n, r, p, why);
        if n < 2 || !n.is_power_of_two() || n > (1 << 30) {
            return Err(bad("N is not a power of two in 2..2^30"));
        }
        if r == 0 || p == 0 || u64::from(r) * u64::from(p) >= 1 << 30 {
            return Err(bad("r and p must be at least 1 and r*p below 2^30"));
        }
        (n as usize)
            .checked_mul(128 * r as usize)
            .filter(|m| *m <= MAX_LANE_MEMORY)
            .ok_or_else(|| bad("needs more than 1 GiB of memory per lane"))?;
        (p as usize)
            .checked_mul(128 * r as usize)
            .filter(|m| *m <= MAX_LANE_MEMORY)
            .ok_or_else(|| bad("needs more than 1 GiB for the lanes' input"))?;
        Ok(Cost {
            n: n as usize,
            r: r as usize,
            p: p as usize,
        })
    }

    /// N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// r.
    pub fn r(&self) -> usize {
        self.r
    }

    /// p.
    pub fn p(&self) -> usize {
        self.p
    }

    fn bad(&self, why: &str) -> FormatError {
        kdf_error(self.n, self.r, self.p, why)
    }
}

/// An error about the scrypt parameters N, r and p, naming them.
fn kdf_error(
    n: impl std::fmt::Display,
    r: impl std::fmt::Display,
    p: impl std::fmt::Display,
    why: &str,
) -> FormatError {
    FormatError::Kdf(format!("scrypt N={n} r={r} p={p}: {why}"))
}

/// Fills `out` with scrypt(password, salt, N, r, p).
///
/// # Errors
/// [`FormatError::Kdf`] when the memory cannot be allocated, for an empty `out`, or
/// for parameters the `scrypt` crate refuses (N must be below 2^(16·r)).
pub fn scrypt(password: &[u8], salt: &[u8], cost: Cost, out: &mut [u8]) -> Result<()> {
    #[cfg(feature = "simd-crypto")]
    if crate::simd::enabled() {
        return crate::simd::scrypt::scrypt(password, salt, cost, out);
    }
    scrypt_portable(password, salt, cost, out)
}

/// [`scrypt()`] on the RustCrypto `scrypt` crate whatever the build and the CPU, for
/// calibrating new keys: their cost is set by how long a plain implementation takes
/// (as restic's calibration times Go's), so a faster path on this machine makes
/// opening quicker instead of making every new key costlier.
///
/// # Errors
/// As [`scrypt()`].
pub fn scrypt_portable(password: &[u8], salt: &[u8], cost: Cost, out: &mut [u8]) -> Result<()> {
    let params = ::scrypt::Params::new(
        cost.n.trailing_zeros() as u8,
        cost.r as u32,
        cost.p as u32,
        ::scrypt::Params::RECOMMENDED_LEN,
    )
    .map_err(|_| cost.bad("refused by the scrypt crate"))?;
    // The crate allocates with `vec!`, which aborts the process when the allocator
    // has nothing; ask for the same memory first so that refusing it is an error.
    let lane = 128 * cost.r;
    let mut probe: Vec<u8> = Vec::new();
    probe
        .try_reserve_exact(lane * (cost.n + cost.p + 1))
        .map_err(|_| {
            cost.bad(&format!(
                "cannot allocate {} MiB",
                (lane * (cost.n + cost.p + 1)) >> 20
            ))
        })?;
    drop(probe);
    ::scrypt::scrypt(password, salt, &params, out)
        .map_err(|_| cost.bad(&format!("cannot derive {} bytes", out.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(pw: &[u8], salt: &[u8], n: u64, r: u32, p: u32, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        scrypt(pw, salt, Cost::new(n, r, p).unwrap(), &mut out).unwrap();
        out
    }

    #[test]
    fn rfc7914_vectors() {
        let v1 = ours(b"", b"", 16, 1, 1, 64);
        assert_eq!(
            hex::encode(v1),
            "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442\
             fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"
        );
        let v2 = ours(b"password", b"NaCl", 1024, 8, 16, 64);
        assert_eq!(
            hex::encode(v2),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162\
             2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
        );
    }

    /// restic's parameter shapes (r = 8, several lanes) through both entry points.
    #[test]
    fn both_entry_points_agree_on_restic_like_parameters() {
        for (n, r, p) in [(1024u64, 8u32, 1u32), (1024, 8, 5), (2048, 4, 3)] {
            let cost = Cost::new(n, r, p).unwrap();
            let mut portable = [0u8; 64];
            scrypt_portable(b"pw", &[7u8; 64], cost, &mut portable).unwrap();
            assert_eq!(
                ours(b"pw", &[7u8; 64], n, r, p, 64),
                portable,
                "N={n} r={r} p={p}"
            );
        }
    }

    #[test]
    fn parameters_the_crate_refuses_are_errors() {
        // N = 2^16 with r = 1 passes `Cost::new`, but RFC 7914 wants N < 2^(16 r).
        let cost = Cost::new(1 << 16, 1, 1).unwrap();
        let err = scrypt_portable(b"pw", b"salt", cost, &mut [0u8; 64]).unwrap_err();
        assert!(err.to_string().contains("N=65536 r=1 p=1"), "{err}");
        let cost = Cost::new(16, 1, 1).unwrap();
        assert!(scrypt_portable(b"pw", b"salt", cost, &mut []).is_err());
    }

    #[test]
    fn hostile_parameters_are_refused_before_allocating() {
        for (n, r, p) in [
            (0u64, 8u32, 1u32),
            (3, 8, 1),
            (1 << 31, 8, 1),
            (1 << 20, 0, 1),
            (1 << 20, 8, 0),
            (1 << 20, 1 << 15, 1 << 15),
            (1 << 30, 8, 1),
            (1 << 10, 8, 1 << 26),
        ] {
            let err = Cost::new(n, r, p).unwrap_err().to_string();
            assert!(err.contains(&format!("N={n} r={r} p={p}")), "{err}");
        }
        assert!(Cost::new(1 << 20, 8, 1).is_ok());
    }
}
