//! scrypt (RFC 7914) with its `p` lanes computed on several threads.
//!
//! The lanes are independent, so running them side by side keeps the attacker's
//! work (and the key) the same while opening a repository waits less. At most
//! [`LANE_MEMORY_BUDGET`] of lane memory is in use at once: restic's default lanes
//! (N = 2^15, r = 8) take 32 MiB each and run one after the other, so opening a
//! repository never needs more memory than restic's sequential derivation.

use pbkdf2::pbkdf2_hmac;
use salsa20::{
    cipher::{typenum::U4, StreamCipherCore},
    SalsaCore,
};
use sha2::Sha256;

use crate::error::{FormatError, Result};

/// Memory all lanes running at once may take together (each lane needs `128·r·N`
/// bytes); one lane always runs.
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
        let bad = |why: &str| FormatError::Kdf(format!("scrypt N={n} r={r} p={p}: {why}"));
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

    fn lane_bytes(&self) -> usize {
        128 * self.r
    }
}

/// Fills `out` with scrypt(password, salt, N, r, p).
///
/// # Errors
/// [`FormatError::Kdf`] when a lane's memory cannot be allocated.
pub fn scrypt(password: &[u8], salt: &[u8], cost: Cost, out: &mut [u8]) -> Result<()> {
    let lane = cost.lane_bytes();
    let mut b = vec![0u8; lane * cost.p];
    pbkdf2_hmac::<Sha256>(password, salt, 1, &mut b);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_memory = (LANE_MEMORY_BUDGET / (lane * cost.n)).max(1);
    let workers = cost.p.min(cores).min(by_memory);
    let lanes: Vec<&mut [u8]> = b.chunks_mut(lane).collect();
    if workers <= 1 {
        let mut v = scratch(lane * cost.n)?;
        for chunk in lanes {
            ro_mix(chunk, &mut v, cost.n);
        }
    } else {
        let queue = std::sync::Mutex::new(lanes);
        let next = || {
            queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop()
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| -> Result<()> {
                        let mut v = scratch(lane * cost.n)?;
                        while let Some(chunk) = next() {
                            ro_mix(chunk, &mut v, cost.n);
                        }
                        Ok(())
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .map_err(|_| FormatError::Kdf("scrypt lane thread panicked".into()))?
            })
        })?;
    }
    pbkdf2_hmac::<Sha256>(password, &b, 1, out);
    Ok(())
}

fn scratch(len: usize) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| FormatError::Kdf(format!("cannot allocate {} MiB for scrypt", len >> 20)))?;
    v.resize(len, 0);
    Ok(v)
}

/// ROMix over one lane `b` (128·r bytes), with `v` holding N copies of it.
fn ro_mix(b: &mut [u8], v: &mut [u8], n: usize) {
    let len = b.len();
    let mut x = b.to_vec();
    let mut t = vec![0u8; len];
    for slot in v.chunks_exact_mut(len) {
        slot.copy_from_slice(&x);
        block_mix(slot, &mut x);
    }
    for _ in 0..n {
        let j = integerify(&x) & (n - 1);
        for ((t, x), v) in t.iter_mut().zip(&x).zip(&v[j * len..(j + 1) * len]) {
            *t = x ^ v;
        }
        block_mix(&t, &mut x);
    }
    b.copy_from_slice(&x);
}

/// The first little-endian word of the last 64-byte block.
fn integerify(x: &[u8]) -> usize {
    let last = &x[x.len() - 64..];
    u32::from_le_bytes([last[0], last[1], last[2], last[3]]) as usize
}

/// BlockMix with Salsa20/8: `output` gets the even blocks' results, then the odd ones.
fn block_mix(input: &[u8], output: &mut [u8]) {
    let blocks = input.len() / 64;
    let mut x = [0u8; 64];
    x.copy_from_slice(&input[input.len() - 64..]);
    for (i, block) in input.chunks_exact(64).enumerate() {
        let mut state = [0u32; 16];
        for (w, (a, b)) in state
            .iter_mut()
            .zip(x.chunks_exact(4).zip(block.chunks_exact(4)))
        {
            *w = u32::from_le_bytes([a[0] ^ b[0], a[1] ^ b[1], a[2] ^ b[2], a[3] ^ b[3]]);
        }
        SalsaCore::<U4>::from_raw_state(state).write_keystream_block((&mut x).into());
        let at = if i % 2 == 0 {
            i / 2
        } else {
            blocks / 2 + i / 2
        };
        output[at * 64..(at + 1) * 64].copy_from_slice(&x);
    }
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

    #[test]
    fn matches_the_sequential_reference_for_restic_like_parameters() {
        for (n, r, p) in [
            (1024u64, 8u32, 1u32),
            (1024, 8, 5),
            (2048, 4, 3),
            (256, 1, 7),
        ] {
            let mut want = [0u8; 64];
            let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p, 64).unwrap();
            scrypt::scrypt(b"pw", &[7u8; 64], &params, &mut want).unwrap();
            assert_eq!(
                ours(b"pw", &[7u8; 64], n, r, p, 64),
                want,
                "N={n} r={r} p={p}"
            );
        }
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
