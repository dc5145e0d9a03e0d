//! Chunks from any blocking [`Read`]: the adapter the backup engine's reader threads
//! use. It owns one buffer, never larger than the maximum chunk plus one read, so a
//! file of any size is chunked in bounded memory.

use std::io::{self, ErrorKind, Read};
use std::iter::FusedIterator;

use crate::cutter::{Cutter, RabinCutter};
use crate::error::ChunkerError;
use crate::fastcdc::FastCdcCutter;
use crate::pol::Polynomial;

/// Largest single read. Below the minimum chunk size, so at most one boundary falls
/// in each read and the bytes carried over to the next chunk stay few.
const READ_BLOCK: usize = 256 * 1024;
/// First read; reads double from here, so a small file costs a small buffer.
const FIRST_READ: usize = 16 * 1024;

/// Which chunker a repository uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkerKind {
    /// restic's Rabin chunker with the repository's polynomial: restic-identical blobs.
    Rabin(Polynomial),
    /// FastCDC, 512 KiB / 1 MiB / 8 MiB: for repositories only this engine writes.
    FastCdc,
}

impl ChunkerKind {
    fn cutter(&self) -> Result<Engine, ChunkerError> {
        Ok(match *self {
            ChunkerKind::Rabin(pol) => Engine::Rabin(RabinCutter::new(pol)?),
            ChunkerKind::FastCdc => Engine::FastCdc(FastCdcCutter::default()),
        })
    }
}

/// Static dispatch over the two cutters; the hot loops stay inlined.
#[derive(Debug, Clone)]
enum Engine {
    Rabin(RabinCutter),
    FastCdc(FastCdcCutter),
}

impl Engine {
    fn find_cut(&mut self, pending: &[u8], eof: bool) -> Option<usize> {
        match self {
            Engine::Rabin(c) => c.find_cut(pending, eof),
            Engine::FastCdc(c) => c.find_cut(pending, eof),
        }
    }

    fn max_size(&self) -> usize {
        match self {
            Engine::Rabin(c) => c.max_size(),
            Engine::FastCdc(c) => c.max_size(),
        }
    }
}

/// The read-ahead buffer: `buf[start..end]` are the bytes of the current chunk so
/// far; `buf[..start]` were handed out and stay untouched until the next call.
#[derive(Debug, Default)]
struct Window {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    total: usize,
}

impl Window {
    /// One successful read (retrying interruptions), or end of input.
    fn fill<R: Read>(&mut self, reader: &mut R, max_chunk: usize) -> io::Result<()> {
        let limit = max_chunk.saturating_add(READ_BLOCK);
        let want = self.total.clamp(FIRST_READ, READ_BLOCK);
        if self.end + want > limit && self.start > 0 {
            // Cutters decide by the maximum, so fewer than `max_chunk` bytes move.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let want = want.min(limit.saturating_sub(self.end)).max(1);
        if self.buf.len() < self.end + want {
            self.buf.resize(self.end + want, 0);
        }
        loop {
            match reader.read(&mut self.buf[self.end..self.end + want]) {
                Ok(0) => self.eof = true,
                Ok(n) if n <= want => {
                    self.end += n;
                    self.total = self.total.saturating_add(n);
                }
                Ok(_) => {
                    return Err(io::Error::other(
                        "reader claimed more bytes than it was given room for",
                    ))
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            return Ok(());
        }
    }
}

/// Splits a byte stream into content-defined chunks.
///
/// Iterating yields each chunk as an owned `Vec`; [`ChunkReader::next_chunk`] lends
/// it from the internal buffer instead. An empty input yields no chunks. The first
/// error ends the stream (later calls yield nothing).
#[derive(Debug)]
pub struct ChunkReader<R: Read> {
    reader: R,
    cutter: Result<Engine, ChunkerError>,
    window: Window,
    done: bool,
}

impl<R: Read> ChunkReader<R> {
    /// Chunks `reader` with `kind`. Cheap: tables are shared per polynomial and the
    /// buffer grows with the input. An unusable polynomial (see [`RabinCutter::new`])
    /// surfaces as an [`ErrorKind::InvalidInput`] error from the first chunk; use
    /// [`ChunkReader::try_new`] to learn of it here.
    pub fn new(kind: &ChunkerKind, reader: R) -> Self {
        ChunkReader {
            reader,
            cutter: kind.cutter(),
            window: Window::default(),
            done: false,
        }
    }

    /// As [`ChunkReader::new`], reading into `buf` (its contents are ignored). Hand
    /// the buffer of one file's reader to the next with [`ChunkReader::into_buffer`]:
    /// a worker chunking many files then allocates and first-touches its window once.
    pub fn with_buffer(kind: &ChunkerKind, reader: R, buf: Vec<u8>) -> Self {
        ChunkReader {
            reader,
            cutter: kind.cutter(),
            window: Window {
                buf,
                ..Window::default()
            },
            done: false,
        }
    }

    /// The read buffer, for [`ChunkReader::with_buffer`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.window.buf
    }

    /// As [`ChunkReader::new`], but reports an unusable polynomial up front.
    ///
    /// # Errors
    /// [`ChunkerError::UnsupportedDegree`].
    pub fn try_new(kind: &ChunkerKind, reader: R) -> Result<Self, ChunkerError> {
        Ok(ChunkReader {
            reader,
            cutter: Ok(kind.cutter()?),
            window: Window::default(),
            done: false,
        })
    }

    /// The next chunk, borrowed until the next call; `Ok(None)` at the end.
    ///
    /// # Errors
    /// The reader's errors other than [`ErrorKind::Interrupted`] (which is retried).
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        if self.done {
            return Ok(None);
        }
        let cutter = match &mut self.cutter {
            Ok(c) => c,
            Err(e) => {
                self.done = true;
                return Err(io::Error::new(ErrorKind::InvalidInput, e.clone()));
            }
        };
        let w = &mut self.window;
        loop {
            if let Some(n) = cutter.find_cut(&w.buf[w.start..w.end], w.eof) {
                let s = w.start;
                w.start += n;
                return Ok(Some(&w.buf[s..s + n]));
            }
            if w.eof {
                self.done = true;
                return Ok(None);
            }
            if let Err(e) = w.fill(&mut self.reader, cutter.max_size()) {
                self.done = true;
                return Err(e);
            }
        }
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// The underlying reader; bytes already read ahead are lost.
    pub fn into_inner(self) -> R {
        self.reader
    }
}

impl<R: Read> Iterator for ChunkReader<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().map(|c| c.map(<[u8]>::to_vec)).transpose()
    }
}

impl<R: Read> FusedIterator for ChunkReader<R> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    #[test]
    fn a_reused_dirty_buffer_cuts_like_a_fresh_one() {
        let kind = ChunkerKind::Rabin(Polynomial(0x3DA3358B4DC173));
        let first = noise(5 << 20, 1);
        let second = noise(3 << 20, 2);
        let fresh: Vec<Vec<u8>> = ChunkReader::new(&kind, &second[..])
            .collect::<io::Result<_>>()
            .unwrap();
        let mut r = ChunkReader::new(&kind, &first[..]);
        while r.next_chunk().unwrap().is_some() {}
        let buf = r.into_buffer();
        assert!(!buf.is_empty());
        let reused: Vec<Vec<u8>> = ChunkReader::with_buffer(&kind, &second[..], buf)
            .collect::<io::Result<_>>()
            .unwrap();
        assert_eq!(reused, fresh);
        assert!(fresh.len() > 1);
    }
}
