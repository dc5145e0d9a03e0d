//! Informal single-core throughput, printed rather than asserted (timings vary by
//! machine). Run with
//! `cargo test -p stash-chunker --release --test throughput -- --ignored --nocapture`.

use std::time::Instant;

use rand::{RngCore, SeedableRng};
use stash_chunker::{ChunkReader, ChunkerKind, Cutter, FastCdcCutter, Polynomial, RabinCutter};

const POL: Polynomial = Polynomial(0x3DA3358B4DC173);

fn random(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut data);
    data
}

fn report(what: &str, bytes: usize, f: impl Fn() -> usize) {
    let mut best = f64::MAX;
    let mut chunks = 0;
    for _ in 0..5 {
        let t = Instant::now();
        chunks = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{what:<28} {:>7.0} MB/s ({chunks} chunks)",
        bytes as f64 / best / 1e6
    );
}

fn count(c: &mut impl Cutter, data: &[u8]) -> usize {
    let mut rest = data;
    let mut n = 0;
    while let Some(k) = c.find_cut(rest, true) {
        rest = &rest[k..];
        n += 1;
    }
    n
}

#[test]
#[ignore = "prints throughput; run in release"]
fn throughput() {
    let data = random(256 * 1024 * 1024);
    report("rabin cutter", data.len(), || {
        count(&mut RabinCutter::new(POL).unwrap(), &data)
    });
    report("rabin reader (owned Vecs)", data.len(), || {
        ChunkReader::new(&ChunkerKind::Rabin(POL), &data[..])
            .filter(Result::is_ok)
            .count()
    });
    report("fastcdc cutter", data.len(), || {
        count(&mut FastCdcCutter::default(), &data)
    });
    report("fastcdc reader (owned Vecs)", data.len(), || {
        ChunkReader::new(&ChunkerKind::FastCdc, &data[..])
            .filter(Result::is_ok)
            .count()
    });
    report("fastcdc crate (slice)", data.len(), || {
        fastcdc::v2020::FastCDC::new(&data, 512 * 1024, 1024 * 1024, 8 * 1024 * 1024).count()
    });
}
