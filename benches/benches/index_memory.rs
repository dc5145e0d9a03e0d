//! Memory per blob of the in-memory index at 10 million blobs (not a criterion
//! bench: it builds one large index and prints what it costs).
//!
//! Prints, per blob: `IndexLookup::memory_bytes()` (the structure's own accounting),
//! the growth of the process's resident set (`VmRSS` in `/proc/self/status`) from
//! before the build to after it with the index alive, and the growth of the peak
//! resident set (`VmHWM`) during the build. Also the build time and the lookup rate.
//! There is no assertion: compare the numbers with the floor of 48 bytes per blob
//! (32-byte id, pack, offset, lengths), restic 0.14's ~290 and rustic 0.11's ~95
//! (../shared/bench/README.md).
//!
//! ```text
//! cargo bench -p stash-benches --bench index_memory
//! STASH_BENCH_INDEX_BLOBS=1000000 STASH_BENCH_INDEX_PER_PACK=1000 \
//!     cargo bench -p stash-benches --bench index_memory
//! ```
//! (`STASH_BENCH_INDEX_PER_PACK`, default 16, is blobs per pack: 16 matches 1 MiB
//! chunks in 16 MiB packs; small files put thousands of blobs in one pack.)

use std::time::Instant;

use rand::{rngs::StdRng, Rng, SeedableRng};
use stash_benches::{peak_rss_bytes, rss_bytes};
use stash_repo_format::{
    blob::BlobType,
    index::{IndexBlob, IndexLookupBuilder},
    Id,
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) this is a
    // smoke test at a small size.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    let blobs = env_usize(
        "STASH_BENCH_INDEX_BLOBS",
        if full { 10_000_000 } else { 100_000 },
    );
    let per_pack = env_usize("STASH_BENCH_INDEX_PER_PACK", 16);
    let mut rng = StdRng::seed_from_u64(42);
    // A sample of ids to look up afterwards (every 1000th blob), kept small.
    let mut probes: Vec<Id> = Vec::with_capacity(blobs / 1000 + 1);
    let mut batch: Vec<IndexBlob> = Vec::with_capacity(per_pack);

    let rss0 = rss_bytes();
    let hwm0 = peak_rss_bytes();
    let t0 = Instant::now();
    let mut b = IndexLookupBuilder::default();
    let mut n = 0usize;
    while n < blobs {
        let pack = Id(rng.gen());
        batch.clear();
        for i in 0..per_pack.min(blobs - n) {
            let id = Id(rng.gen());
            if (n + i).is_multiple_of(1000) {
                probes.push(id);
            }
            batch.push(IndexBlob {
                id,
                ty: BlobType::Data,
                offset: (i as u32).wrapping_mul(4096),
                length: 4096 + 32,
                uncompressed_length: (i % 2 == 0).then_some(8192),
            });
        }
        n += batch.len();
        b.add_pack(pack, &batch);
    }
    let index = b.build();
    let build = t0.elapsed();
    let rss1 = rss_bytes();
    let hwm1 = peak_rss_bytes();

    let t1 = Instant::now();
    let mut found = 0usize;
    for _ in 0..10 {
        for id in &probes {
            found += usize::from(index.get(BlobType::Data, id).is_some());
        }
    }
    let lookups = t1.elapsed();
    assert_eq!(found, probes.len() * 10, "every probe is indexed");

    let per = |bytes: u64| bytes as f64 / blobs as f64;
    let mem = index.memory_bytes() as u64;
    println!(
        "index_memory: {blobs} blobs, {per_pack} per pack, {} packs",
        index.packs().len()
    );
    println!(
        "  memory_bytes()      {:>12} bytes  {:>7.1} bytes/blob",
        mem,
        per(mem)
    );
    println!(
        "  VmRSS delta         {:>12} bytes  {:>7.1} bytes/blob  (before build -> index built)",
        rss1.saturating_sub(rss0),
        per(rss1.saturating_sub(rss0))
    );
    println!(
        "  VmHWM delta         {:>12} bytes  {:>7.1} bytes/blob  (peak during the build)",
        hwm1.saturating_sub(hwm0),
        per(hwm1.saturating_sub(hwm0))
    );
    println!(
        "  build               {:>9.2} s      {:>7.2} M blobs/s (id generation included)",
        build.as_secs_f64(),
        blobs as f64 / build.as_secs_f64() / 1e6
    );
    println!(
        "  lookup (hit)        {:>9.0} ns     {:>7.2} M lookups/s",
        lookups.as_secs_f64() * 1e9 / found as f64,
        found as f64 / lookups.as_secs_f64() / 1e6
    );
    drop(index);
}
