//! Blob encoding and pack assembly, on 1 MiB blobs and a 16 MiB pack (the default
//! pack size):
//!
//! - `blob/encode` / `blob/decode`: `blob::encode` (zstd level 3, then seal) and
//!   `blob::decode` (open, inflate, re-hash) of one text or random blob;
//! - `pack/assemble`: `PackWriter::add` of 16 already-encoded blobs then `finish`
//!   (header sealing and the SHA-256 of the whole pack): the pack's own overhead;
//! - `pack/encode_and_assemble`: the same from plaintext (half text, half random),
//!   i.e. all CPU work a backup spends on one pack after chunking and hashing;
//! - `pack/parse`: `pack::parse_pack` of the finished pack (trailer, header open).
//!
//! Throughput is bytes of plaintext per second (blob entries per second for `parse`).
//!
//! ```text
//! cargo bench -p stash-benches --bench pack -- --save-baseline before
//! cargo bench -p stash-benches --bench pack -- --baseline before
//! ```

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use stash_benches::{random_bytes, text_bytes, MIB};
use stash_repo_format::{
    blob::{self, BlobType},
    compress::DEFAULT_LEVEL,
    crypto::Key,
    pack::{self, PackWriter},
    Id,
};

const BLOB: usize = MIB;
const BLOBS_PER_PACK: usize = 16;

fn bench(c: &mut Criterion) {
    let key = Key::random();
    let plains: Vec<Vec<u8>> = (0..BLOBS_PER_PACK as u64)
        .map(|i| {
            if i % 2 == 0 {
                text_bytes(100 + i, BLOB)
            } else {
                random_bytes(100 + i, BLOB)
            }
        })
        .collect();
    let ids: Vec<Id> = plains.iter().map(|p| Id::hash(p)).collect();

    let mut g = c.benchmark_group("blob");
    g.throughput(Throughput::Bytes(BLOB as u64));
    for (name, i) in [("text", 0usize), ("random", 1)] {
        let (plain, id) = (&plains[i], ids[i]);
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                black_box(blob::encode(
                    &key,
                    BlobType::Data,
                    id,
                    plain,
                    Some(DEFAULT_LEVEL),
                ))
            })
        });
        let enc = blob::encode(&key, BlobType::Data, id, plain, Some(DEFAULT_LEVEL));
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| {
                black_box(
                    blob::decode(&key, &id, &enc.sealed, enc.uncompressed_length)
                        .expect("valid blob"),
                )
            })
        });
    }
    g.finish();

    let encoded: Vec<_> = plains
        .iter()
        .zip(&ids)
        .map(|(p, id)| blob::encode(&key, BlobType::Data, *id, p, Some(DEFAULT_LEVEL)))
        .collect();
    let sealed_total: usize = encoded.iter().map(|e| e.sealed.len()).sum();
    let mut g = c.benchmark_group("pack");
    g.sample_size(20);
    g.throughput(Throughput::Bytes((BLOB * BLOBS_PER_PACK) as u64));
    g.bench_function("assemble", |b| {
        b.iter(|| {
            let mut w = PackWriter::with_capacity(sealed_total + 4096);
            for e in &encoded {
                w.add(e).expect("room in pack");
            }
            black_box(w.finish(&key))
        })
    });
    g.bench_function("encode_and_assemble", |b| {
        b.iter(|| {
            let mut w = PackWriter::default();
            for (p, id) in plains.iter().zip(&ids) {
                let e = blob::encode(&key, BlobType::Data, *id, p, Some(DEFAULT_LEVEL));
                w.add(&e).expect("room in pack");
            }
            black_box(w.finish(&key))
        })
    });
    let finished = {
        let mut w = PackWriter::default();
        for e in &encoded {
            w.add(e).expect("room in pack");
        }
        w.finish(&key)
    };
    // Parsing reads only the header, so count entries rather than bytes.
    g.throughput(Throughput::Elements(BLOBS_PER_PACK as u64));
    g.bench_function("parse", |b| {
        b.iter(|| black_box(pack::parse_pack(&key, &finished.bytes).expect("valid pack")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
