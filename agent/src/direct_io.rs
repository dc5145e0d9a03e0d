//! The aligned writing that `O_DIRECT` needs, shared by the pack writer
//! (`backend::direct_write`) and restore (`restore::write`).
//!
//! A direct write wants its memory, length and file offset aligned. Callers' bytes
//! rarely lie aligned in memory, so they go through an aligned buffer of the writing
//! thread, [`PIECE`] bytes at a time.

use std::{
    cell::RefCell,
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::Path,
};

/// Alignment of offsets, lengths and memory: the page size, which also covers every
/// common logical block size.
pub const ALIGN: usize = 4096;
/// Bytes copied and written per write call.
pub const PIECE: usize = 1 << 20;

/// Test builds refuse `O_DIRECT` below a directory of this name (see [`open`]).
#[cfg(test)]
const REFUSING_DIR: &str = "refuses-o-direct";

/// Creates, below `parent`, a directory where test builds refuse `O_DIRECT`.
#[cfg(test)]
pub fn refusing_dir(parent: &Path) -> std::path::PathBuf {
    let dir = parent.join(REFUSING_DIR);
    std::fs::create_dir_all(&dir).expect("create the refusing directory");
    dir
}

/// Opens `path` with `options` and `O_DIRECT`.
///
/// Test builds refuse `O_DIRECT` with `EINVAL` below a directory named
/// [`REFUSING_DIR`], as tmpfs before Linux 6.6 and some FUSE and network file
/// systems do, so that the buffered fallbacks are tested on a kernel that accepts
/// `O_DIRECT` everywhere.
pub fn open(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    #[cfg(test)]
    if path.components().any(|c| c.as_os_str() == REFUSING_DIR) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    options.custom_flags(libc::O_DIRECT).open(path)
}

thread_local! {
    /// Per writing thread: `PIECE` aligned bytes (plus slack to align them).
    static BOUNCE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes `data` at `offset` (a multiple of [`ALIGN`]) of `file`, opened with
/// `O_DIRECT`. A last piece shorter than [`ALIGN`]'s multiple is padded with zeros,
/// which the caller cuts off (`set_len`) if the file must end earlier. Data that
/// already lies aligned in memory is written without a copy.
pub fn write_aligned(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    debug_assert!(offset.is_multiple_of(ALIGN as u64));
    if data.as_ptr().align_offset(ALIGN) == 0 && data.len().is_multiple_of(ALIGN) {
        return file.write_all_at(data, offset);
    }
    BOUNCE.with(|bounce| {
        let mut bounce = bounce.borrow_mut();
        if bounce.len() < PIECE + ALIGN {
            bounce.resize(PIECE + ALIGN, 0);
        }
        let start = bounce.as_ptr().align_offset(ALIGN);
        let piece = &mut bounce[start..start + PIECE];
        for (k, part) in data.chunks(PIECE).enumerate() {
            let padded = part.len().div_ceil(ALIGN) * ALIGN;
            piece[..part.len()].copy_from_slice(part);
            piece[part.len()..padded].fill(0);
            file.write_all_at(&piece[..padded], offset + (k * PIECE) as u64)?;
        }
        Ok(())
    })
}
