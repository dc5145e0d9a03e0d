//! Properties of both chunkers: chunks reassemble the input, sizes stay within
//! bounds, boundaries do not depend on how the input is read or fed, Rabin agrees
//! with a literal transcription of restic's algorithm, and FastCDC agrees with the
//! `fastcdc` crate.

#[path = "props/reference.rs"]
mod reference;

use std::io::{self, ErrorKind, Read};

use proptest::prelude::*;
use rand::{Rng, RngCore, SeedableRng};
use stash_chunker::{
    ChunkReader, ChunkerKind, Cutter, FastCdcCutter, FastCdcParams, Polynomial, RabinCutter,
    RabinParams,
};

const TEST_POL: Polynomial = Polynomial(0x3DA3358B4DC173);

/// Test input: random bytes, or long runs (which force cuts at the maximum or the
/// minimum), or a short pattern repeated.
fn make_data(seed: u64, len: usize, style: u8) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; len];
    match style % 3 {
        0 => rng.fill_bytes(&mut data),
        1 => {
            let mut i = 0;
            while i < len {
                let run = rng.gen_range(1..=len.max(2) / 2 + 1).min(len - i);
                let byte = if rng.gen_bool(0.5) { 0 } else { rng.gen() };
                data[i..i + run].fill(byte);
                if rng.gen_bool(0.3) {
                    rng.fill_bytes(&mut data[i..i + run / 3]);
                }
                i += run;
            }
        }
        _ => {
            let mut pattern = vec![0u8; rng.gen_range(1..300)];
            rng.fill_bytes(&mut pattern);
            for (d, p) in data.iter_mut().zip(pattern.iter().cycle()) {
                *d = *p;
            }
        }
    }
    data
}

/// A reader that hands out at most a few bytes per call and is sometimes interrupted.
struct Trickle<'a> {
    data: &'a [u8],
    rng: rand::rngs::StdRng,
    max_read: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rng.gen_bool(0.1) {
            return Err(ErrorKind::Interrupted.into());
        }
        let n = self
            .rng
            .gen_range(1..=self.max_read)
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn reader_chunks<R: Read>(kind: &ChunkerKind, r: R) -> Vec<Vec<u8>> {
    ChunkReader::new(kind, r)
        .collect::<io::Result<_>>()
        .unwrap()
}

fn lengths(chunks: &[Vec<u8>]) -> Vec<usize> {
    chunks.iter().map(Vec::len).collect()
}

/// Lengths from driving a cutter by hand with the whole input at once.
fn cutter_lengths(c: &mut impl Cutter, data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(n) = c.find_cut(rest, true) {
        out.push(n);
        rest = &rest[n..];
    }
    out
}

/// Lengths from [`Cutter::find_cut`] with the input revealed a few bytes at a time.
fn growing_lengths(c: &mut impl Cutter, data: &[u8], rng: &mut impl Rng) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut start, mut end) = (0, 0);
    loop {
        let eof = end == data.len();
        match c.find_cut(&data[start..end], eof) {
            Some(n) => {
                out.push(n);
                start += n;
            }
            None if eof => return out,
            None => end = (end + rng.gen_range(1..5000)).min(data.len()),
        }
    }
}

/// Lengths from [`RabinCutter::next_boundary`] fed in random slices.
fn streamed_lengths(c: &mut RabinCutter, data: &[u8], rng: &mut impl Rng) -> Vec<usize> {
    let mut out = Vec::new();
    let mut current = 0;
    let mut rest = data;
    while !rest.is_empty() {
        let take = rng.gen_range(0..=rest.len().min(3000));
        let mut piece = &rest[..take];
        rest = &rest[take..];
        while let Some(n) = c.next_boundary(piece) {
            out.push(current + n);
            current = 0;
            piece = &piece[n..];
        }
        current += piece.len();
    }
    out.extend(c.finish());
    out
}

fn check_sizes(lens: &[usize], min: usize, max: usize, total: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(lens.iter().sum::<usize>(), total);
    prop_assert!(lens.iter().all(|&n| n > 0 && n <= max));
    if let Some((_, init)) = lens.split_last() {
        prop_assert!(init.iter().all(|&n| n >= min), "{:?}", lens);
    }
    Ok(())
}

/// Any polynomial the Rabin cutter accepts: degree 8 to 56, not necessarily irreducible.
fn any_pol() -> impl Strategy<Value = Polynomial> {
    prop_oneof![
        Just(TEST_POL),
        Just(Polynomial(0x2c9d33f130d1bb)),
        (8u32..=56, any::<u64>()).prop_map(|(d, r)| Polynomial((1 << d) | (r & ((1 << d) - 1)))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Small sizes give many chunks per case, so every path through the fast search
    /// (lanes, window stitching, forced maximum) is compared with the oracle.
    #[test]
    fn rabin_matches_reference_small_sizes(
        pol in any_pol(),
        min in 65usize..2000,
        extra in 0usize..20_000,
        bits in 0u32..14,
        seed: u64,
        len in 0usize..150_000,
        style: u8,
    ) {
        let data = make_data(seed, len, style);
        let params = RabinParams::new(min, min + extra, bits).unwrap();
        let want = reference::Reference::new(pol.0, min, min + extra, bits).lengths(&data);
        check_sizes(&want, min, min + extra, len)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 1);
        let mut c = RabinCutter::with_params(pol, params).unwrap();
        prop_assert_eq!(&cutter_lengths(&mut c, &data), &want);
        prop_assert_eq!(&growing_lengths(&mut c, &data, &mut rng), &want);
        prop_assert_eq!(&streamed_lengths(&mut c, &data, &mut rng), &want);
    }

    #[test]
    fn fastcdc_matches_the_crate(
        min in (32u32..4096).prop_map(|m| 2 * m),
        avg_extra in 0u32..40_000,
        max_extra in 0u32..100_000,
        seed: u64,
        len in 0usize..300_000,
        style: u8,
    ) {
        let avg = (min + avg_extra).max(256);
        let max = (avg + max_extra).max(1024);
        let data = make_data(seed, len, style);
        let want: Vec<usize> = fastcdc::v2020::FastCDC::new(&data, min, avg, max).map(|c| c.length).collect();
        let streamed: Vec<usize> = fastcdc::v2020::StreamCDC::new(&data[..], min, avg, max)
            .map(|c| c.unwrap().length)
            .collect();
        prop_assert_eq!(&streamed, &want);
        let mut c = FastCdcCutter::new(FastCdcParams::new(min, avg, max).unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 2);
        prop_assert_eq!(&cutter_lengths(&mut c, &data), &want);
        prop_assert_eq!(&growing_lengths(&mut c, &data, &mut rng), &want);
    }
}

proptest! {
    // Real sizes need megabytes per case; a handful of cases is enough on top of the
    // small-size properties above.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn reader_reassembles_within_bounds(
        fast in any::<bool>(),
        seed: u64,
        len in prop_oneof![0usize..2_000_000, 8_000_000usize..20_000_000],
        style: u8,
    ) {
        let data = make_data(seed, len, style);
        let kind = if fast { ChunkerKind::FastCdc } else { ChunkerKind::Rabin(TEST_POL) };
        let (min, max) = if fast {
            (stash_chunker::fastcdc::FASTCDC_MIN_SIZE, stash_chunker::fastcdc::FASTCDC_MAX_SIZE)
        } else {
            (stash_chunker::MIN_SIZE, stash_chunker::MAX_SIZE)
        };
        let big = reader_chunks(&kind, &data[..]);
        prop_assert!(big.concat() == data);
        let lens = lengths(&big);
        check_sizes(&lens, min, max, len)?;
        let trickle = Trickle { data: &data, rng: rand::rngs::StdRng::seed_from_u64(seed), max_read: 70_000 };
        prop_assert_eq!(lengths(&reader_chunks(&kind, trickle)), lens.clone());
        if fast {
            let want: Vec<usize> = fastcdc::v2020::FastCDC::new(&data, 512 * 1024, 1024 * 1024, 8 * 1024 * 1024)
                .map(|c| c.length)
                .collect();
            prop_assert_eq!(lens, want);
        } else {
            let want = reference::Reference::new(TEST_POL.0, min, max, 20).lengths(&data);
            prop_assert_eq!(lens, want);
        }
    }
}

#[test]
fn tiny_reads_give_the_same_chunks() {
    let data = make_data(5, 3_000_000, 0);
    for kind in [ChunkerKind::Rabin(TEST_POL), ChunkerKind::FastCdc] {
        let trickle = Trickle {
            data: &data,
            rng: rand::rngs::StdRng::seed_from_u64(9),
            max_read: 7,
        };
        assert_eq!(
            reader_chunks(&kind, trickle),
            reader_chunks(&kind, &data[..])
        );
    }
}

#[test]
fn empty_input_has_no_chunks() {
    for kind in [ChunkerKind::Rabin(TEST_POL), ChunkerKind::FastCdc] {
        assert!(reader_chunks(&kind, io::empty()).is_empty());
        assert_eq!(reader_chunks(&kind, &[7u8][..]), vec![vec![7u8]]);
    }
}

#[test]
fn lending_api_matches_iterator() {
    let data = make_data(6, 5_000_000, 0);
    let kind = ChunkerKind::FastCdc;
    let mut r = ChunkReader::new(&kind, &data[..]);
    let mut lent = Vec::new();
    while let Some(c) = r.next_chunk().unwrap() {
        lent.push(c.to_vec());
    }
    assert_eq!(lent, reader_chunks(&kind, &data[..]));
    assert!(r.next_chunk().unwrap().is_none());
}

#[test]
fn errors_end_the_stream() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }
    let mut r = ChunkReader::new(&ChunkerKind::Rabin(TEST_POL), Failing(100));
    assert_eq!(r.next().unwrap().unwrap_err().to_string(), "disk on fire");
    assert!(r.next().is_none());

    let bad = ChunkerKind::Rabin(Polynomial(0x3));
    assert!(ChunkReader::try_new(&bad, io::empty()).is_err());
    let mut r = ChunkReader::new(&bad, io::empty());
    assert_eq!(
        r.next().unwrap().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(r.next().is_none());
}

#[test]
fn invalid_params_are_rejected() {
    assert!(RabinParams::new(64, 1000, 10).is_err());
    assert!(RabinParams::new(1000, 999, 10).is_err());
    assert!(RabinParams::new(1000, 1000, 64).is_err());
    assert!(RabinParams::new(65, 65, 0).is_ok());
    assert!(FastCdcParams::new(63, 1024, 4096).is_err());
    assert!(FastCdcParams::new(513, 1024, 4096).is_err());
    assert!(FastCdcParams::new(2048, 1024, 4096).is_err());
    assert!(FastCdcParams::new(64, 256, 32 * 1024 * 1024).is_err());
    assert!(FastCdcParams::new(64, 256, 1024).is_ok());
}
