//! Per-byte primitives of every blob, on 1 MiB inputs (the average chunk size):
//!
//! - `sha256`: blob ids (`sha2`, which uses SHA-NI when the CPU has it), raw and
//!   through `Id::hash`; `sha256 two streams`: `sha256::Hasher::update_and_hash`,
//!   a pack stream and a blob interleaved, per byte of both;
//! - `seal` / `open`: AES-256-CTR + Poly1305-AES, restic's authenticated encryption
//!   (`stash_repo_format::crypto::Key`), including the output allocation;
//! - `zstd`: `compress::compress` at level 3 and `compress::decompress_exact`, on
//!   log-like text (compresses ~4x) and random bytes (incompressible).
//!
//! Reported as bytes per second of plaintext.
//!
//! `scrypt` times restic's key cost (N = 2^15, r = 8, p = 5: what every command pays
//! to open a repository whose key restic or stash calibrated here), ours
//! (`stash_repo_format::kdf`, lanes in pairs within one lane's 32 MiB) against the
//! `scrypt` crate (one lane after the other), as a ratio in one run.
//!
//! ```text
//! cargo bench -p stash-benches --bench crypto -- --save-baseline before
//! cargo bench -p stash-benches --bench crypto -- --baseline before
//! ```
//! Ceiling on the shared VM (../shared/bench/README.md): SHA-256 1.71 GB/s, AES-CTR
//! 4.4 GB/s, Poly1305 2.35 GB/s, zstd-3 0.24 GB/s on text / ~3.5 GB/s on random,
//! decompress ~1.2 GB/s.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};
use stash_benches::{random_bytes, text_bytes, MIB};
use stash_repo_format::{
    compress::{compress, decompress_exact, DEFAULT_LEVEL},
    crypto::Key,
    kdf, sha256, Id,
};

const SIZE: usize = MIB;

fn bench(c: &mut Criterion) {
    let random = random_bytes(11, SIZE);
    let text = text_bytes(12, SIZE);
    let key = Key::random();

    let mut g = c.benchmark_group("sha256");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("sha2", |b| b.iter(|| black_box(Sha256::digest(&random))));
    g.bench_function("Id::hash", |b| b.iter(|| black_box(Id::hash(&random))));
    g.finish();

    // Two streams at once (a blob's plaintext and the pack bytes before it), per
    // byte of both: compare with `sha256/sha2` above.
    let mut g = c.benchmark_group("sha256 two streams");
    g.throughput(Throughput::Bytes(2 * SIZE as u64));
    g.bench_function("update_and_hash", |b| {
        b.iter(|| {
            let mut pack = sha256::Hasher::default();
            black_box(pack.update_and_hash(&random, &text));
            black_box(pack.finish())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("crypto");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("seal", |b| b.iter(|| black_box(key.seal(&random))));
    let sealed = key.seal(&random);
    g.bench_function("open", |b| {
        b.iter(|| black_box(key.open(&sealed).expect("authentic")))
    });
    g.bench_function("open_in_place", |b| {
        b.iter_batched_ref(
            || sealed.clone(),
            |buf| black_box(key.open_in_place(buf).expect("authentic")),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("zstd");
    g.throughput(Throughput::Bytes(SIZE as u64));
    for (name, data) in [("text", &text), ("random", &random)] {
        let frame = compress(data, DEFAULT_LEVEL);
        eprintln!(
            "zstd level {DEFAULT_LEVEL} on {name}: {} -> {} bytes (ratio {:.2})",
            data.len(),
            frame.len(),
            data.len() as f64 / frame.len() as f64
        );
        g.bench_with_input(BenchmarkId::new("compress", name), data, |b, d| {
            b.iter(|| black_box(compress(d, DEFAULT_LEVEL)))
        });
        g.bench_with_input(BenchmarkId::new("decompress", name), &frame, |b, f| {
            b.iter(|| black_box(decompress_exact("bench", f, SIZE).expect("valid frame")))
        });
    }
    g.finish();
}

fn bench_kdf(c: &mut Criterion) {
    let mut g = c.benchmark_group("scrypt");
    g.sample_size(10);
    let cost = kdf::Cost::new(1 << 15, 8, 5).expect("restic's cost");
    g.bench_function("stash", |b| {
        b.iter(|| {
            let mut out = [0u8; 64];
            kdf::scrypt(b"password", &[7; 64], cost, &mut out).expect("memory");
            black_box(out)
        })
    });
    let params = scrypt::Params::new(15, 8, 5, 64).expect("restic's cost");
    g.bench_function("scrypt crate", |b| {
        b.iter(|| {
            let mut out = [0u8; 64];
            scrypt::scrypt(b"password", &[7; 64], &params, &mut out).expect("length");
            black_box(out)
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_kdf);
criterion_main!(benches);
