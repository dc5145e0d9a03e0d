//! scrypt (RFC 7914) with its `p` lanes computed on several threads.
//!
//! The lanes are independent, so running them side by side keeps the attacker's
//! work (and the key) the same while opening a repository waits less. At most
//! [`LANE_MEMORY_BUDGET`] of lane memory is in use at once: restic's default lanes
//! (N = 2^15, r = 8) take 32 MiB each and run one after the other, so opening a
//! repository never needs more memory than restic's sequential derivation.

use pbkdf2::pbkdf2_hmac;
use sha2::Sha256;

mod salsa;

use salsa::{load, store, xor_block, zero_block, Block, Mixer};

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
    scrypt_with(
        password,
        salt,
        cost,
        out,
        LANE_MEMORY_BUDGET,
        Mixer::detect(),
    )
}

/// [`scrypt`] on the portable instructions (SSE2 on x86-64) whatever the CPU has,
/// for calibrating new keys: their cost is set by how long a plain implementation
/// takes (as restic's calibration times Go's), so a faster path on this machine
/// makes opening quicker instead of making every new key costlier.
///
/// # Errors
/// As [`scrypt`].
pub fn scrypt_portable(password: &[u8], salt: &[u8], cost: Cost, out: &mut [u8]) -> Result<()> {
    scrypt_with(
        password,
        salt,
        cost,
        out,
        LANE_MEMORY_BUDGET,
        Mixer::baseline(),
    )
}

/// [`scrypt`] with `budget` bytes for the lanes running at once, on `mix`.
fn scrypt_with(
    password: &[u8],
    salt: &[u8],
    cost: Cost,
    out: &mut [u8],
    budget: usize,
    mix: Mixer,
) -> Result<()> {
    let lane = cost.lane_bytes();
    let mut b = vec![0u8; lane * cost.p];
    pbkdf2_hmac::<Sha256>(password, salt, 1, &mut b);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_memory = (budget / (lane * cost.n)).max(1);
    let workers = cost.p.min(cores).min(by_memory);
    let mut lanes: Vec<&mut [u8]> = b.chunks_mut(lane).collect();
    if workers <= 1 {
        // One lane's memory at a time (restic's default cost). With a second core,
        // lanes run in pairs, each in half of that memory: a lane then stores every
        // other V entry and recomputes an odd one from its predecessor when ROMix
        // asks for it (a quarter more work per lane, two lanes at once).
        let blocks = cost.n * lane / 64;
        let mut v = scratch(blocks)?;
        let mut rest = lanes.as_mut_slice();
        while cores >= 2 && rest.len() >= 2 {
            let (pair, tail) = rest.split_at_mut(2);
            let (first, second) = pair.split_at_mut(1);
            let (v1, v2) = v.split_at_mut(blocks / 2);
            std::thread::scope(|s| {
                let other = s.spawn(|| ro_mix(second[0], v2, cost.n, 2, mix));
                ro_mix(first[0], v1, cost.n, 2, mix);
                other
                    .join()
                    .map_err(|_| FormatError::Kdf("scrypt lane thread panicked".into()))
            })?;
            rest = tail;
        }
        for chunk in rest {
            ro_mix(chunk, &mut v, cost.n, 1, mix);
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
                        let mut v = scratch(cost.n * lane / 64)?;
                        while let Some(chunk) = next() {
                            ro_mix(chunk, &mut v, cost.n, 1, mix);
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

/// Memory for `blocks` Salsa20 blocks, refused rather than aborting when the
/// allocator has none.
fn scratch(blocks: usize) -> Result<Vec<Block>> {
    let mut v = Vec::new();
    v.try_reserve_exact(blocks).map_err(|_| {
        FormatError::Kdf(format!(
            "cannot allocate {} MiB for scrypt",
            (blocks * 64) >> 20
        ))
    })?;
    v.resize(blocks, zero_block());
    Ok(v)
}

/// ROMix over one lane `b` (128·r bytes). `v` holds every `stride`-th of the N
/// V entries (N / stride lane copies); a missing entry is recomputed from the stored
/// one before it.
fn ro_mix(b: &mut [u8], v: &mut [Block], n: usize, stride: usize, mix: Mixer) {
    let blocks = b.len() / 64;
    let mut x: Vec<Block> = b.chunks_exact(64).map(load).collect();
    let mut t = x.clone();
    let mut vj = x.clone();
    for i in 0..n {
        if i.is_multiple_of(stride) {
            let slot = &mut v[i / stride * blocks..][..blocks];
            slot.copy_from_slice(&x);
            mix.block_mix(|i| slot[i], &mut x);
        } else {
            mix.block_mix(|i| x[i], &mut t);
            std::mem::swap(&mut x, &mut t);
        }
    }
    for _ in 0..n {
        let j = salsa::integerify(&x[blocks - 1]) as usize & (n - 1);
        let stored = &v[j / stride * blocks..][..blocks];
        salsa::prefetch(stored);
        let entry = if j.is_multiple_of(stride) {
            stored
        } else {
            mix.block_mix(|i| stored[i], &mut vj);
            for _ in 1..j % stride {
                mix.block_mix(|i| vj[i], &mut t);
                std::mem::swap(&mut vj, &mut t);
            }
            &vj
        };
        mix.block_mix(|i| xor_block(&x[i], &entry[i]), &mut t);
        std::mem::swap(&mut x, &mut t);
    }
    for (block, bytes) in x.iter().zip(b.chunks_exact_mut(64)) {
        store(block, bytes);
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
    fn lanes_in_pairs_with_half_memory_match_the_reference() {
        // A budget of one lane's memory (1 MiB here, 32 MiB at restic's cost) runs
        // lanes in pairs with every other V entry recomputed; the result is the same.
        let (n, r) = (1024u64, 8u32);
        for p in [1u32, 2, 5] {
            let mut want = [0u8; 64];
            let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p, 64).unwrap();
            scrypt::scrypt(b"pw", &[7u8; 64], &params, &mut want).unwrap();
            let mut got = [0u8; 64];
            let cost = Cost::new(n, r, p).unwrap();
            scrypt_with(
                b"pw",
                &[7u8; 64],
                cost,
                &mut got,
                128 * 8 * 1024,
                Mixer::detect(),
            )
            .unwrap();
            assert_eq!(got, want, "p={p}");
        }
    }

    #[test]
    fn every_stride_gives_the_same_lane() {
        let lane: Vec<u8> = (0..128 * 2).map(|i| (i * 7 + 3) as u8).collect();
        let n = 64;
        let mut want = lane.clone();
        ro_mix(
            &mut want,
            &mut scratch(n * 4).unwrap(),
            n,
            1,
            Mixer::baseline(),
        );
        for stride in [2, 4, 8] {
            let mut got = lane.clone();
            ro_mix(
                &mut got,
                &mut scratch(n * 4 / stride).unwrap(),
                n,
                stride,
                Mixer::detect(),
            );
            assert_eq!(got, want, "stride {stride}");
        }
    }

    #[test]
    fn the_mixers_agree() {
        // On a CPU with AVX-512 `detect` takes the other path; elsewhere this
        // compares the baseline with itself and the reference test above covers it.
        let lane: Vec<u8> = (0..128 * 8).map(|i| (i * 13 + 5) as u8).collect();
        let n = 256;
        let (mut a, mut b) = (lane.clone(), lane);
        ro_mix(
            &mut a,
            &mut scratch(n * 16).unwrap(),
            n,
            1,
            Mixer::baseline(),
        );
        ro_mix(&mut b, &mut scratch(n * 16).unwrap(), n, 1, Mixer::detect());
        assert_eq!(a, b);
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
