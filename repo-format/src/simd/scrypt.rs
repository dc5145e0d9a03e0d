//! scrypt (RFC 7914) with its `p` lanes computed on several threads, BlockMix on
//! SSE2 rows (the `salsa` module). SSE2 is part of the x86-64 baseline, so this path
//! needs no CPU flag beyond the target's (elsewhere the rows are plain arrays).
//!
//! The lanes are independent, so running them side by side keeps the attacker's
//! work (and the key) the same while opening a repository waits less. At most
//! [`LANE_MEMORY_BUDGET`] of lane memory is in use at once: restic's default lanes
//! (N = 2^15, r = 8) take 32 MiB each and run in pairs in that memory (each lane
//! storing every other V entry), so opening a repository never needs more memory
//! than restic's sequential derivation.

use pbkdf2::pbkdf2_hmac;
use sha2::Sha256;

mod salsa;

use salsa::{block_mix, load, store, xor_block, zero_block, Block};

use crate::{
    error::{FormatError, Result},
    kdf::{Cost, LANE_MEMORY_BUDGET},
};

/// The `scrypt` crate's derivation ([`crate::kdf::scrypt_portable`]): what the
/// default build computes, and what the fast path is held to.
///
/// # Errors
/// As [`crate::kdf::scrypt_portable`].
pub fn reference(password: &[u8], salt: &[u8], cost: Cost, out: &mut [u8]) -> Result<()> {
    crate::kdf::scrypt_portable(password, salt, cost, out)
}

/// Fills `out` with scrypt(password, salt, N, r, p), lanes in parallel.
///
/// # Errors
/// [`FormatError::Kdf`] when a lane's memory cannot be allocated.
pub fn scrypt(password: &[u8], salt: &[u8], cost: Cost, out: &mut [u8]) -> Result<()> {
    scrypt_with(password, salt, cost, out, LANE_MEMORY_BUDGET)
}

/// [`scrypt`] with `budget` bytes for the lanes running at once.
///
/// # Errors
/// As [`scrypt`].
pub fn scrypt_with(
    password: &[u8],
    salt: &[u8],
    cost: Cost,
    out: &mut [u8],
    budget: usize,
) -> Result<()> {
    let lane = 128 * cost.r();
    let mut b = vec![0u8; lane * cost.p()];
    pbkdf2_hmac::<Sha256>(password, salt, 1, &mut b);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_memory = (budget / (lane * cost.n())).max(1);
    let workers = cost.p().min(cores).min(by_memory);
    let mut lanes: Vec<&mut [u8]> = b.chunks_mut(lane).collect();
    if workers <= 1 {
        // One lane's memory at a time (restic's default cost). With a second core,
        // lanes run in pairs, each in half of that memory: a lane then stores every
        // other V entry and recomputes an odd one from its predecessor when ROMix
        // asks for it (a quarter more work per lane, two lanes at once).
        let blocks = cost.n() * lane / 64;
        let mut v = scratch(blocks)?;
        let mut rest = lanes.as_mut_slice();
        while cores >= 2 && rest.len() >= 2 {
            let (pair, tail) = rest.split_at_mut(2);
            let (first, second) = pair.split_at_mut(1);
            let (v1, v2) = v.split_at_mut(blocks / 2);
            std::thread::scope(|s| {
                let other = s.spawn(|| ro_mix(second[0], v2, cost.n(), 2));
                ro_mix(first[0], v1, cost.n(), 2);
                other
                    .join()
                    .map_err(|_| FormatError::Kdf("scrypt lane thread panicked".into()))
            })?;
            rest = tail;
        }
        for chunk in rest {
            ro_mix(chunk, &mut v, cost.n(), 1);
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
                        let mut v = scratch(cost.n() * lane / 64)?;
                        while let Some(chunk) = next() {
                            ro_mix(chunk, &mut v, cost.n(), 1);
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
fn ro_mix(b: &mut [u8], v: &mut [Block], n: usize, stride: usize) {
    let blocks = b.len() / 64;
    let mut x: Vec<Block> = b.chunks_exact(64).map(load).collect();
    let mut t = x.clone();
    let mut vj = x.clone();
    for i in 0..n {
        if i.is_multiple_of(stride) {
            let slot = &mut v[i / stride * blocks..][..blocks];
            slot.copy_from_slice(&x);
            block_mix(|i| slot[i], &mut x);
        } else {
            block_mix(|i| x[i], &mut t);
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
            block_mix(|i| stored[i], &mut vj);
            for _ in 1..j % stride {
                block_mix(|i| vj[i], &mut t);
                std::mem::swap(&mut vj, &mut t);
            }
            &vj
        };
        block_mix(|i| xor_block(&x[i], &entry[i]), &mut t);
        std::mem::swap(&mut x, &mut t);
    }
    for (block, bytes) in x.iter().zip(b.chunks_exact_mut(64)) {
        store(block, bytes);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cost(n: u64, r: u32, p: u32) -> Cost {
        Cost::new(n, r, p).unwrap()
    }

    fn ours(pw: &[u8], salt: &[u8], c: Cost, budget: usize) -> [u8; 64] {
        let mut out = [0u8; 64];
        scrypt_with(pw, salt, c, &mut out, budget).unwrap();
        out
    }

    fn crates(pw: &[u8], salt: &[u8], c: Cost) -> [u8; 64] {
        let mut out = [0u8; 64];
        reference(pw, salt, c, &mut out).unwrap();
        out
    }

    #[test]
    fn rfc7914_vectors() {
        let mut v1 = [0u8; 64];
        scrypt(b"", b"", cost(16, 1, 1), &mut v1).unwrap();
        assert_eq!(
            hex::encode(v1),
            "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442\
             fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"
        );
        let mut v2 = [0u8; 64];
        scrypt(b"password", b"NaCl", cost(1024, 8, 16), &mut v2).unwrap();
        assert_eq!(
            hex::encode(v2),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162\
             2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
        );
    }

    /// Lanes one at a time, in pairs with half the memory each (a budget of one
    /// lane's memory: 1 MiB here, 32 MiB at restic's cost), and on threads: the
    /// `scrypt` crate's key.
    #[test]
    fn lanes_are_the_scrypt_crates() {
        for (n, r, p) in [
            (1024u64, 8u32, 1u32),
            (1024, 8, 2),
            (1024, 8, 5),
            (2048, 4, 3),
            (256, 1, 7),
        ] {
            let c = cost(n, r, p);
            let want = crates(b"pw", &[7u8; 64], c);
            for budget in [128 * 8 * 1024, LANE_MEMORY_BUDGET] {
                let got = ours(b"pw", &[7u8; 64], c, budget);
                assert_eq!(got, want, "N={n} r={r} p={p} budget {budget}");
            }
        }
    }

    #[test]
    fn every_stride_gives_the_same_lane() {
        let lane: Vec<u8> = (0..128 * 2).map(|i| (i * 7 + 3) as u8).collect();
        let n = 64;
        let mut want = lane.clone();
        ro_mix(&mut want, &mut scratch(n * 4).unwrap(), n, 1);
        for stride in [2, 4, 8] {
            let mut got = lane.clone();
            ro_mix(&mut got, &mut scratch(n * 4 / stride).unwrap(), n, stride);
            assert_eq!(got, want, "stride {stride}");
        }
    }

    /// Random passwords, salts and small costs.
    #[test]
    fn lanes_are_the_scrypt_crates_proptest() {
        proptest!(ProptestConfig::with_cases(48), |(
            pw in proptest::collection::vec(any::<u8>(), 0..80),
            salt in proptest::collection::vec(any::<u8>(), 0..80),
            log_n in 1..8u32,
            r in 1..5u32,
            p in 1..5u32,
            budget in prop_oneof![Just(0usize), Just(LANE_MEMORY_BUDGET)],
        )| {
            let c = cost(1 << log_n, r, p);
            prop_assert_eq!(ours(&pw, &salt, c, budget), crates(&pw, &salt, c));
        });
    }
}
