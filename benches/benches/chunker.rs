//! Content-defined chunking throughput: restic's Rabin chunker (polynomial
//! `0x3DA3358B4DC173`, 512 KiB / 1 MiB avg / 8 MiB) and FastCDC (512 KiB / 1 MiB /
//! 8 MiB) over 64 MiB of random bytes, log-like text and zeros.
//!
//! Drivers: `reader` is [`ChunkReader::next_chunk`] over an in-memory slice (the
//! reader's buffer copies included, as a `read(2)` from the page cache would) with a
//! fresh reader, hence a fresh buffer, per run; `reused` is the same with the buffer
//! handed from run to run, as the backup's file workers do from file to file;
//! `iter` (Rabin only) goes through the `Iterator` impl, one owned `Vec` per chunk;
//! `cutter` calls [`Cutter::find_cut`] directly on the whole input (the boundary
//! search alone).
//! Reported as bytes per second of input.
//!
//! ```text
//! cargo bench -p stash-benches --bench chunker -- --save-baseline before
//! # ...change the chunker...
//! cargo bench -p stash-benches --bench chunker -- --baseline before
//! ```
//! For reference: `fastcdc` v2020 reaches ~3.2 GB/s and a generic Rabin64 (the
//! `rustic_cdc` crate) ~0.55 GB/s on one core of the shared 2-core VM
//! (../shared/bench/README.md).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use stash_benches::{random_bytes, text_bytes, MIB};
use stash_chunker::{ChunkReader, ChunkerKind, Cutter, FastCdcCutter, Polynomial, RabinCutter};

const POL: u64 = 0x003D_A335_8B4D_C173;
const SIZE: usize = 64 * MIB;

/// Chunks `data` through a `ChunkReader`; returns (chunks, bytes) so nothing is elided.
fn via_reader(kind: &ChunkerKind, data: &[u8]) -> (usize, usize) {
    let mut r = ChunkReader::new(kind, data);
    let (mut n, mut bytes) = (0, 0);
    while let Some(c) = r.next_chunk().expect("in-memory read") {
        n += 1;
        bytes += c.len();
    }
    (n, bytes)
}

/// As `via_reader` with the read buffer handed from run to run, as the backup's file
/// workers do from file to file.
fn via_reused(kind: &ChunkerKind, data: &[u8], buf: &mut Vec<u8>) -> (usize, usize) {
    let mut r = ChunkReader::with_buffer(kind, data, std::mem::take(buf));
    let (mut n, mut bytes) = (0, 0);
    while let Some(c) = r.next_chunk().expect("in-memory read") {
        n += 1;
        bytes += c.len();
    }
    *buf = r.into_buffer();
    (n, bytes)
}

/// As `via_reader`, through the `Iterator` impl (an owned `Vec` per chunk), which is
/// how the backup's file saver consumes chunks.
fn via_iter(kind: &ChunkerKind, data: &[u8]) -> (usize, usize) {
    let (mut n, mut bytes) = (0, 0);
    for c in ChunkReader::new(kind, data) {
        n += 1;
        bytes += c.expect("in-memory read").len();
    }
    (n, bytes)
}

/// Chunks `data` with a bare cutter, the whole remainder offered at once.
fn via_cutter(c: &mut impl Cutter, data: &[u8]) -> (usize, usize) {
    c.reset();
    let (mut pos, mut n) = (0, 0);
    while let Some(len) = c.find_cut(&data[pos..], true) {
        pos += len;
        n += 1;
    }
    (n, pos)
}

fn bench(c: &mut Criterion) {
    let pol = Polynomial(POL);
    let inputs: [(&str, Vec<u8>); 3] = [
        ("random", random_bytes(1, SIZE)),
        ("text", text_bytes(2, SIZE)),
        ("zeros", vec![0u8; SIZE]),
    ];
    // Print chunk counts once, so a change of boundaries is visible beside the speed.
    for (name, data) in &inputs {
        let (r, _) = via_reader(&ChunkerKind::Rabin(pol), data);
        let (f, _) = via_reader(&ChunkerKind::FastCdc, data);
        eprintln!("chunker input {name}: {SIZE} bytes -> rabin {r} chunks, fastcdc {f} chunks");
    }
    let mut g = c.benchmark_group("chunker");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(10);
    for (name, data) in &inputs {
        g.bench_with_input(BenchmarkId::new("rabin/reader", name), data, |b, d| {
            let kind = ChunkerKind::Rabin(pol);
            b.iter(|| black_box(via_reader(&kind, d)))
        });
        g.bench_with_input(BenchmarkId::new("rabin/reused", name), data, |b, d| {
            let kind = ChunkerKind::Rabin(pol);
            let mut buf = Vec::new();
            b.iter(|| black_box(via_reused(&kind, d, &mut buf)))
        });
        g.bench_with_input(BenchmarkId::new("rabin/iter", name), data, |b, d| {
            let kind = ChunkerKind::Rabin(pol);
            b.iter(|| black_box(via_iter(&kind, d)))
        });
        g.bench_with_input(BenchmarkId::new("rabin/cutter", name), data, |b, d| {
            let mut cut = RabinCutter::new(pol).expect("polynomial");
            b.iter(|| black_box(via_cutter(&mut cut, d)))
        });
        g.bench_with_input(BenchmarkId::new("fastcdc/reader", name), data, |b, d| {
            b.iter(|| black_box(via_reader(&ChunkerKind::FastCdc, d)))
        });
        g.bench_with_input(BenchmarkId::new("fastcdc/reused", name), data, |b, d| {
            let mut buf = Vec::new();
            b.iter(|| black_box(via_reused(&ChunkerKind::FastCdc, d, &mut buf)))
        });
        g.bench_with_input(BenchmarkId::new("fastcdc/cutter", name), data, |b, d| {
            let mut cut = FastCdcCutter::default();
            b.iter(|| black_box(via_cutter(&mut cut, d)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
