//! Chunks concatenate to the input and respect the size bounds, for both chunkers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stash_chunker::{ChunkReader, ChunkerKind, Polynomial};

fuzz_target!(|data: &[u8]| {
    for kind in [ChunkerKind::Rabin(Polynomial(0x3DA3358B4DC173)), ChunkerKind::FastCdc] {
        let chunks: Vec<Vec<u8>> = ChunkReader::new(&kind, data).map(|c| c.unwrap()).collect();
        assert_eq!(chunks.concat(), data);
        for c in &chunks[..chunks.len().saturating_sub(1)] {
            assert!(c.len() >= 512 * 1024 && c.len() <= 8 << 20);
        }
    }
});
