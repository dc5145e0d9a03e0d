//! The bytes [`super::Backend::read_into`] read into a recycled buffer.

use std::ops::{Deref, DerefMut};

/// A buffer whose bytes from `start` on are the range read. A direct read lands at
/// the first 512-byte aligned address in the buffer, which for the heap's large
/// allocations is 4080 bytes in; moving a 17 MiB pack to the front afterwards cost
/// 2% of a `check --read-data`'s CPU.
#[derive(Debug, Default)]
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
}

impl ReadBuf {
    /// `buf[start..]` as the bytes read; `start` past the end means none.
    pub fn new(buf: Vec<u8>, start: usize) -> Self {
        let start = start.min(buf.len());
        ReadBuf { buf, start }
    }

    /// The whole buffer again, to be recycled with its length (the bytes before
    /// `start` included), so that the next read overwrites it instead of zeroing.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

impl From<Vec<u8>> for ReadBuf {
    fn from(buf: Vec<u8>) -> Self {
        ReadBuf { buf, start: 0 }
    }
}

impl Deref for ReadBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl DerefMut for ReadBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
}

impl PartialEq<[u8]> for ReadBuf {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<&[u8]> for ReadBuf {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_start_at_start_and_the_buffer_comes_back_whole() {
        let mut r = ReadBuf::new(vec![9, 9, 1, 2, 3], 2);
        assert_eq!(&r[..], &[1, 2, 3]);
        r[0] = 7;
        assert_eq!(r.into_buffer(), vec![9, 9, 7, 2, 3]);
        assert!(ReadBuf::new(vec![1], 5).is_empty());
        assert_eq!(&ReadBuf::from(vec![4, 5])[..], &[4, 5]);
    }
}
