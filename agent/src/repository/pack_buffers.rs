//! Pack buffers that go round: a pack's bytes return here once the store holds them
//! and become the next pack's buffer. A 16 MiB buffer allocated per pack costs more
//! in page faults and zeroing than sealing the blobs in it; recycled, its pages stay
//! mapped and warm.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// A bounded stack of spare buffers with one capacity.
#[derive(Debug)]
pub struct PackBuffers {
    spare: Mutex<Vec<Vec<u8>>>,
    capacity: usize,
    keep: usize,
}

impl PackBuffers {
    /// Buffers of `capacity` bytes; at most `keep` spares are held (more are freed),
    /// so memory stays bounded by the packs actually in flight.
    pub fn new(capacity: usize, keep: usize) -> Self {
        PackBuffers {
            spare: Mutex::default(),
            capacity,
            keep,
        }
    }

    /// A spare buffer when there is one (empty, unless it came back through
    /// [`PackBuffers::give_as_is`]), else a new empty allocation.
    pub fn take(&self) -> Vec<u8> {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        spare.unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    /// Returns a buffer for reuse; small or surplus buffers are dropped.
    pub fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        self.give_as_is(buf);
    }

    /// As [`PackBuffers::give`], keeping the buffer's bytes: for buffers that
    /// [`crate::backend::Backend::read_into`] refills, which then overwrites them
    /// in place instead of zeroing a fresh length first (17 MiB per pack).
    pub fn give_as_is(&self, buf: Vec<u8>) {
        if buf.capacity() < self.capacity {
            return;
        }
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < self.keep {
            spare.push(buf);
        }
    }

    /// Recovers the buffer behind `bytes` when nothing else refers to it any more
    /// (the upload finished and dropped its copies).
    pub fn give_bytes(&self, bytes: Bytes) {
        if let Ok(m) = bytes.try_into_mut() {
            self.give(Vec::from(m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_without_copies() {
        let pool = PackBuffers::new(1 << 20, 2);
        let mut a = pool.take();
        a.extend_from_slice(&[7u8; 1000]);
        let ptr = a.as_ptr();
        let bytes = Bytes::from(a);
        let clone = bytes.clone();
        drop(clone);
        pool.give_bytes(bytes);
        let b = pool.take();
        assert_eq!((b.as_ptr(), b.len()), (ptr, 0), "same allocation, emptied");
        assert!(b.capacity() >= 1 << 20);
    }

    #[test]
    fn shared_small_and_surplus_buffers_are_dropped() {
        let pool = PackBuffers::new(1 << 20, 1);
        let bytes = Bytes::from(pool.take());
        let held = bytes.clone();
        pool.give_bytes(bytes);
        pool.give(Vec::with_capacity(10));
        assert_eq!(pool.spare.lock().unwrap().len(), 0);
        drop(held);
        pool.give(pool.take());
        pool.give(Vec::with_capacity(1 << 20));
        assert_eq!(pool.spare.lock().unwrap().len(), 1);
    }

    #[test]
    fn buffers_given_as_is_keep_their_length() {
        let pool = PackBuffers::new(0, 1);
        pool.give_as_is(vec![3u8; 4096]);
        assert_eq!(pool.take(), vec![3u8; 4096]);
        pool.give(vec![3u8; 4096]);
        assert!(pool.take().is_empty());
    }
}
