//! zstd helpers of the format crate (`compress`, `unpacked`).
//!
//! Input: claimed length (3 bytes, so at most 16 MiB: `decompress_exact` reserves
//! the claimed length up front), piece size (2 bytes), level (1 byte), then the frame.
//!
//! - Arbitrary frames: `decompress_exact` and `decompress_exact_into` (what restore
//!   and `read_blob` use) and `decompress_pieces_into` (what `check --read-data`
//!   uses, fed in pieces of the input's size) agree on every frame and non-zero
//!   claimed length (0 means stored raw, see `blob::inflates`): both fail or both
//!   give the same bytes, of exactly the claimed length.
//!   `decompress_bounded` and `unpacked::decode` agree with zstd's own streaming
//!   decoder (run only on frames that inflate to at most 1 MiB).
//! - The frame bytes as plaintext: `compress` at the input's level round-trips through
//!   every decompressor; any other claimed length fails; `compress_into` and
//!   `compress_append` write the same frame; `unpacked` version 2 round-trips.
#![no_main]
use std::io::Read;

use libfuzzer_sys::fuzz_target;
use stash_repo_format::{compress, unpacked};

/// Frames inflating further than this are not handed to the unbounded decoders.
const REFERENCE_CAP: u64 = 1 << 20;

fn pieces(frame: &[u8], len: usize, piece: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0xAA; 3];
    compress::decompress_pieces_into("blob", len, &mut out, |inflate| {
        frame.chunks(piece).try_for_each(inflate)
    })
    .map_err(|e| e.to_string())?;
    Ok(out)
}

fn exact(frame: &[u8], len: usize) -> Result<Vec<u8>, String> {
    let a = compress::decompress_exact("blob", frame, len).map_err(|e| e.to_string());
    let mut out = b"stale".to_vec();
    let b = compress::decompress_exact_into("blob", frame, len, &mut out).map(|()| out);
    match (&a, &b) {
        (Ok(x), Ok(y)) => assert_eq!(x, y, "decompress_exact and _into differ"),
        (Err(_), Err(_)) => {}
        _ => panic!("decompress_exact {:?} but _into {:?}", a.is_ok(), b.is_ok()),
    }
    if let Ok(x) = &a {
        assert_eq!(x.len(), len, "inflated to another length than claimed");
    }
    a
}

/// zstd's streaming decoder, as the reference; `None` past the cap or on error.
fn reference(frame: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(frame)
        .ok()?
        .take(REFERENCE_CAP + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= REFERENCE_CAP).then_some(out)
}

fn agree(frame: &[u8], len: usize, piece: usize) {
    // A claimed length of 0 means "stored raw" (`blob::inflates`): neither reader
    // inflates it. (An empty frame would differ: `decompress_exact` takes it as 0
    // bytes, `decompress_pieces_into` says "frame ends early".)
    if len == 0 {
        return;
    }
    let whole = exact(frame, len);
    let streamed = pieces(frame, len, piece);
    match (&whole, &streamed) {
        (Ok(x), Ok(y)) => assert_eq!(x, y, "restore and check inflate differently"),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("decompress_exact took a frame check refuses: {e}"),
        (Err(e), Ok(_)) => panic!("check took a frame decompress_exact refuses: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let claimed = usize::from(data[0]) | usize::from(data[1]) << 8 | usize::from(data[2]) << 16;
    let piece = 1 + (usize::from(data[3]) | usize::from(data[4]) << 8);
    let level = i32::from(data[5] % 22) - 1; // -1..=20; clamped to 1..=19 inside
    let frame = &data[6..];

    // Arbitrary bytes as a frame.
    agree(frame, claimed, piece);
    if let Some(want) = reference(frame) {
        assert_eq!(
            compress::decompress_bounded("index", frame).expect("zstd decodes it"),
            want
        );
        agree(frame, want.len(), piece);
        let mut v2 = vec![2u8];
        v2.extend_from_slice(frame);
        assert_eq!(unpacked::decode("index", v2).expect("v2 unpacked"), want);
    }

    // The same bytes as plaintext.
    let plain = frame;
    let f = compress::compress(plain, level);
    assert_eq!(exact(&f, plain.len()).expect("own frame"), plain);
    assert_eq!(
        pieces(&f, plain.len(), piece).expect("own frame in pieces"),
        plain
    );
    assert_eq!(
        compress::decompress_bounded("index", &f).expect("own frame"),
        plain
    );
    assert!(exact(&f, plain.len() + 1).is_err(), "longer than the frame");
    assert!(
        pieces(&f, plain.len() + 1, piece).is_err(),
        "longer than the frame"
    );
    if !plain.is_empty() {
        assert!(
            exact(&f, plain.len() - 1).is_err(),
            "shorter than the frame"
        );
        assert!(
            pieces(&f, plain.len() - 1, piece).is_err(),
            "shorter than the frame"
        );
        assert!(
            exact(&f[..f.len() - 1], plain.len()).is_err(),
            "truncated frame"
        );
    }
    let mut into = b"old".to_vec();
    compress::compress_into(plain, level, &mut into);
    assert_eq!(into, f);
    let mut appended = b"head".to_vec();
    compress::compress_append(plain, level, &mut appended);
    assert_eq!(&appended[..4], b"head");
    assert_eq!(&appended[4..], &f[..]);
    assert_eq!(
        unpacked::decode("index", unpacked::encode(2, plain)).expect("v2"),
        plain
    );
    if plain.is_empty() || matches!(plain[0], b'{' | b'[') {
        assert_eq!(
            unpacked::decode("index", unpacked::encode(1, plain)).expect("v1"),
            plain
        );
    }
});
