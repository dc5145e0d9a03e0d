//! Writes restored content into its files, the bulk of it past the page cache.
//!
//! A buffered write copies every byte into freshly allocated page-cache pages, and on
//! the VMs this project is measured on that costs more kernel CPU than everything
//! else a restore does (`dd` of 1 GB: 2.3 s of system time buffered against 0.1 s
//! with `oflag=direct`). It also evicts the page cache the user's programs rely on.
//!
//! So the whole pages of a large piece go out with `O_DIRECT`
//! ([`crate::direct_io::write_aligned`]). The partial pages at its two ends go through
//! the page cache: they hold bytes of neighbouring blobs that arrive from other packs
//! at other times, and a direct write must cover whole blocks. The two never share a
//! page, so the kernel keeps them coherent without flushing anything. Small pieces
//! (most files of a typical tree) are written buffered whole: one synchronous device
//! write per small file would cost more than the copy it saves.
//!
//! A file system that refuses `O_DIRECT` (tmpfs, some FUSE and network file
//! systems) is noticed on the first refusal, and from then on every write of that
//! restore is buffered.

use std::{
    fs::{File, OpenOptions},
    io,
    ops::Range,
    os::unix::fs::FileExt,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
};

use crate::error::{Error, Result};

/// Alignment of direct writes (offset, length and memory).
const PAGE: usize = crate::direct_io::ALIGN;
/// Whole-page spans shorter than this are written buffered with the rest.
const MIN_DIRECT: usize = 64 * 1024;

/// The part of `len` bytes written at file offset `off` that covers whole pages, as a
/// range of the data; empty when there is none.
fn whole_pages(off: u64, len: usize) -> Range<usize> {
    let page = PAGE as u64;
    let first = off.div_ceil(page) * page;
    let last = (off + len as u64) / page * page;
    if last <= first {
        return 0..0;
    }
    (first - off) as usize..(last - off) as usize
}

/// One restored file's handles, opened on first need.
#[derive(Debug)]
pub struct Target<'a> {
    buffered: Option<File>,
    direct: Option<File>,
    /// Set when the file system refused `O_DIRECT`, shared by one restore's
    /// targets: every later write is buffered.
    direct_refused: &'a AtomicBool,
}

impl<'a> Target<'a> {
    /// A target of a restore whose refusal flag is `direct_refused`.
    pub fn new(direct_refused: &'a AtomicBool) -> Self {
        Target {
            buffered: None,
            direct: None,
            direct_refused,
        }
    }

    /// Writes `data` at offset `off` of the existing file `path`.
    ///
    /// # Errors
    /// I/O errors naming `path`.
    pub fn write_at(&mut self, path: &Path, data: &[u8], off: u64) -> Result<()> {
        self.write_at_io(path, data, off)
            .map_err(|e| Error::io(path, e))
    }

    fn write_at_io(&mut self, path: &Path, data: &[u8], off: u64) -> io::Result<()> {
        let mid = whole_pages(off, data.len());
        if mid.len() >= MIN_DIRECT && !self.direct_refused.load(Ordering::Relaxed) {
            match self.write_direct(path, &data[mid.clone()], off + mid.start as u64) {
                Ok(()) => {
                    self.write_buffered(path, &data[..mid.start], off)?;
                    return self.write_buffered(path, &data[mid.end..], off + mid.end as u64);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.direct_refused.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        self.write_buffered(path, data, off)
    }

    fn write_buffered(&mut self, path: &Path, data: &[u8], off: u64) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let file = match &mut self.buffered {
            Some(f) => f,
            none => none.insert(OpenOptions::new().write(true).open(path)?),
        };
        file.write_all_at(data, off)
    }

    /// Writes whole pages (`off` and `data.len()` are multiples of [`PAGE`]).
    fn write_direct(&mut self, path: &Path, data: &[u8], off: u64) -> io::Result<()> {
        debug_assert!(off.is_multiple_of(PAGE as u64) && data.len().is_multiple_of(PAGE));
        let file = match &mut self.direct {
            Some(f) => f,
            none => none.insert(crate::direct_io::open(
                OpenOptions::new().write(true),
                path,
            )?),
        };
        crate::direct_io::write_aligned(file, data, off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direct_io::PIECE;

    #[test]
    fn whole_pages_are_the_aligned_middle() {
        assert_eq!(whole_pages(0, 0), 0..0);
        assert_eq!(whole_pages(0, 100), 0..0);
        assert_eq!(whole_pages(0, PAGE), 0..PAGE);
        assert_eq!(whole_pages(0, PAGE + 1), 0..PAGE);
        assert_eq!(whole_pages(1, PAGE), 0..0);
        assert_eq!(whole_pages(1, 2 * PAGE), PAGE - 1..2 * PAGE - 1);
        assert_eq!(whole_pages(PAGE as u64 - 1, 1), 0..0);
        assert_eq!(
            whole_pages(5 * PAGE as u64 + 7, 3 * PAGE),
            PAGE - 7..3 * PAGE - 7
        );
    }

    /// Writes a file in pieces in a scattered order, at offsets and lengths around
    /// page boundaries, large enough to take the direct path, into `dir`, and
    /// checks that it reads back exactly; whether `O_DIRECT` was refused.
    fn scattered_pieces_read_back_exactly_in(dir: &Path) -> bool {
        let path = dir.join("f");
        let len = 3 * PIECE + 5 * PAGE + 123;
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + i / 4099) as u8).collect();
        let cuts = [
            0,
            17,
            PAGE - 1,
            PAGE + MIN_DIRECT + 3,
            PIECE + 1,
            2 * PIECE + PAGE,
            2 * PIECE + PAGE + 100,
            len,
        ];
        std::fs::File::create(&path)
            .unwrap()
            .set_len(len as u64)
            .unwrap();
        let refused = AtomicBool::new(false);
        let mut target = Target::new(&refused);
        // Pieces in reverse, then the file checked.
        for w in cuts.windows(2).rev() {
            target
                .write_at(&path, &data[w[0]..w[1]], w[0] as u64)
                .unwrap();
        }
        drop(target);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        refused.load(Ordering::Relaxed)
    }

    #[test]
    fn scattered_pieces_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        scattered_pieces_read_back_exactly_in(dir.path());
    }

    /// Where the file system refuses `O_DIRECT`, the same writes go through the
    /// page cache, and the restore remembers the refusal.
    #[test]
    fn a_refused_o_direct_falls_back_to_buffered_writes() {
        let dir = tempfile::tempdir().unwrap();
        let sub = crate::direct_io::refusing_dir(dir.path());
        assert!(scattered_pieces_read_back_exactly_in(&sub));
    }

    #[test]
    fn an_unaligned_source_and_an_aligned_one_both_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g");
        let len = 2 * PIECE + PAGE;
        // An aligned copy of the data, and the data at an odd address.
        let mut storage = vec![0u8; len + 2 * PAGE];
        let a = storage.as_ptr().align_offset(PAGE);
        for (i, b) in storage[a..a + len].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let expect = storage[a..a + len].to_vec();
        std::fs::File::create(&path)
            .unwrap()
            .set_len(len as u64)
            .unwrap();
        let refused = AtomicBool::new(false);
        let mut target = Target::new(&refused);
        target.write_at(&path, &storage[a..a + PIECE], 0).unwrap();
        let odd = expect[PIECE..].to_vec();
        let mut shifted = vec![0u8; odd.len() + 1];
        shifted[1..].copy_from_slice(&odd);
        target.write_at(&path, &shifted[1..], PIECE as u64).unwrap();
        drop(target);
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone");
        let refused = AtomicBool::new(false);
        let err = Target::new(&refused)
            .write_at(&path, &[1; 3 * MIN_DIRECT], 0)
            .unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
    }
}
