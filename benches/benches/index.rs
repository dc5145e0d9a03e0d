//! The in-memory blob index (`IndexLookup`) at one million data blobs, 16 per pack
//! (a 16 MiB pack of 1 MiB chunks):
//!
//! - `index/build_1M`: `IndexLookupBuilder::add_pack` for every pack, then `build`
//!   (sort and prefix table), as loading a repository's index does after parsing JSON;
//! - `index/lookup_hit` / `lookup_miss`: `IndexLookup::get` of 1024 ids that are
//!   present / absent, in random order (what dedup and restore do per chunk).
//!
//! Throughput is blobs (elements) per second. Memory per blob at 10 million blobs is
//! measured by the separate `index_memory` bench (not criterion).
//!
//! ```text
//! cargo bench -p stash-benches --bench index -- --save-baseline before
//! cargo bench -p stash-benches --bench index -- --baseline before
//! ```

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand::{rngs::StdRng, Rng, SeedableRng};
use stash_repo_format::{
    blob::BlobType,
    index::{IndexBlob, IndexLookup, IndexLookupBuilder},
    Id,
};

const BLOBS: usize = 1_000_000;
const PER_PACK: usize = 16;
const PROBES: usize = 1024;

fn random_id(rng: &mut StdRng) -> Id {
    Id(rng.gen())
}

/// `BLOBS` index entries in packs of `PER_PACK`, with their pack ids.
fn entries(seed: u64) -> Vec<(Id, Vec<IndexBlob>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..BLOBS / PER_PACK)
        .map(|_| {
            let pack = random_id(&mut rng);
            let blobs = (0..PER_PACK as u32)
                .map(|i| IndexBlob {
                    id: random_id(&mut rng),
                    ty: BlobType::Data,
                    offset: i * (1 << 20),
                    length: (1 << 20) + 32,
                    uncompressed_length: (i % 2 == 0).then_some(1 << 20),
                })
                .collect();
            (pack, blobs)
        })
        .collect()
}

fn build(packs: &[(Id, Vec<IndexBlob>)]) -> IndexLookup {
    let mut b = IndexLookupBuilder::default();
    for (pack, blobs) in packs {
        b.add_pack(*pack, blobs);
    }
    b.build()
}

fn bench(c: &mut Criterion) {
    let packs = entries(1);
    let mut g = c.benchmark_group("index");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BLOBS as u64));
    g.bench_function("build_1M", |b| b.iter(|| black_box(build(&packs))));

    let index = build(&packs);
    eprintln!(
        "index: {} blobs, {} bytes by memory_bytes() = {:.1} bytes per blob",
        index.len(),
        index.memory_bytes(),
        index.memory_bytes() as f64 / index.len() as f64
    );
    let mut rng = StdRng::seed_from_u64(2);
    let hits: Vec<Id> = (0..PROBES)
        .map(|_| {
            let (_, blobs) = &packs[rng.gen_range(0..packs.len())];
            blobs[rng.gen_range(0..blobs.len())].id
        })
        .collect();
    let misses: Vec<Id> = (0..PROBES).map(|_| random_id(&mut rng)).collect();
    g.sample_size(50);
    g.throughput(Throughput::Elements(PROBES as u64));
    g.bench_function("lookup_hit", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for id in &hits {
                found += usize::from(index.get(BlobType::Data, id).is_some());
            }
            assert_eq!(found, PROBES);
            black_box(found)
        })
    });
    g.bench_function("lookup_miss", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for id in &misses {
                found += usize::from(index.contains(BlobType::Data, id));
            }
            black_box(found)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
