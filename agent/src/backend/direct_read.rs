//! Large ranges of local pack files read with `O_DIRECT`, past the page cache.
//!
//! Restore and `check --read-data` read every needed pack once. Through the page
//! cache, each byte first lands in a freshly allocated cache page and is then copied
//! out: on the VMs this project is measured on that costs about 0.3 s of kernel CPU
//! per 600 MB of packs, more than the device time. Read direct, the device writes
//! straight into the caller's buffer, and a restore or check no longer evicts the
//! page cache the user's programs rely on.
//!
//! `O_DIRECT` wants the offset, the length and the memory aligned, so the aligned
//! range around the wanted one is read into an aligned place in the buffer, and the
//! caller is told where in it the wanted bytes start (moving them to the front
//! would copy the whole pack once more). Small reads (trees, indexes, headers) stay
//! buffered: read direct, every re-read of a small range would go to the device.

use std::{
    fs::{File, OpenOptions},
    io,
    ops::Range,
    os::unix::fs::FileExt,
    path::Path,
};

/// Alignment of offsets, lengths and memory.
const ALIGN: u64 = crate::direct_io::ALIGN as u64;
/// Ranges shorter than this are read through the page cache.
pub const MIN_DIRECT: u64 = 1 << 20;

/// What became of a read.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `buf[start..]` holds exactly the bytes of the range.
    Read {
        /// Where they start.
        start: usize,
    },
    /// The file system refuses `O_DIRECT`: read the ordinary way.
    Unsupported,
}

/// Reads `range` of the file `path` into `buf`, replacing what it held (whatever
/// its length); the bytes start a little way in, where [`Outcome::Read`] says.
///
/// # Errors
/// I/O errors other than `O_DIRECT` being refused, and a file that ends before the
/// range does ([`io::ErrorKind::UnexpectedEof`]).
pub fn read_range(path: &Path, range: Range<u64>, buf: &mut Vec<u8>) -> io::Result<Outcome> {
    let file = match crate::direct_io::open(OpenOptions::new().read(true), path) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Outcome::Unsupported),
        r => r?,
    };
    let first = range.start / ALIGN * ALIGN;
    let last = range.end.div_ceil(ALIGN) * ALIGN;
    let (span, wanted) = (to_usize(last - first)?, to_usize(range.end - range.start)?);
    if buf.capacity() < span + ALIGN as usize {
        // A new allocation (growing would first copy the old bytes over), as
        // roomy as growing would have made it.
        *buf = Vec::with_capacity((span + ALIGN as usize).max(2 * buf.capacity()));
    }
    // Bytes the buffer already holds are overwritten, not zeroed first: a recycled
    // pack buffer keeps its length (`PackBuffers::give_as_is`).
    let at = buf.as_ptr().align_offset(ALIGN as usize);
    if buf.len() < at + span {
        buf.resize(at + span, 0);
    } else {
        buf.truncate(at + span);
    }
    let got = match fill(&file, first, &mut buf[at..]) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Outcome::Unsupported),
        r => r?,
    };
    let skip = to_usize(range.start - first)?;
    if got < skip + wanted {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "file ends at {} before the end of range {range:?}",
                first + got as u64
            ),
        ));
    }
    buf.truncate(at + skip + wanted);
    Ok(Outcome::Read { start: at + skip })
}

fn to_usize(n: u64) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too large"))
}

/// Reads from `offset` until `out` is full or the file ends; returns the bytes read.
fn fill(file: &File, offset: u64, out: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < out.len() {
        match file.read_at(&mut out[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_awkward_range_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pack");
        let len = 3 * MIN_DIRECT as usize + 1234;
        let data: Vec<u8> = (0..len).map(|i| (i * 13 + i / 4093) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut buf = Vec::new();
        for (start, end) in [
            (0, len),
            (1, len),
            (0, len - 1),
            (4095, 4097 + MIN_DIRECT as usize),
            (4096, 8192),
            (len - 10, len),
            (17, 17),
        ] {
            match read_range(&path, start as u64..end as u64, &mut buf).unwrap() {
                Outcome::Read { start: at } => {
                    assert!(buf[at..] == data[start..end], "{start}..{end}");
                }
                Outcome::Unsupported => {
                    eprintln!("O_DIRECT refused in {}", dir.path().display());
                    return;
                }
            }
        }
    }

    /// A recycled buffer keeps its length and stale bytes; none of them survive.
    #[test]
    fn stale_bytes_of_a_recycled_buffer_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pack");
        let len = 2 * MIN_DIRECT as usize + 100;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        for stale in [10, len / 2, 3 * len] {
            let mut buf = vec![0xAB; stale];
            for (start, end) in [(0, len), (7, MIN_DIRECT as usize + 9), (0, len)] {
                match read_range(&path, start as u64..end as u64, &mut buf).unwrap() {
                    Outcome::Read { start: at } => {
                        assert!(buf[at..] == data[start..end], "{stale}: {start}..{end}");
                    }
                    Outcome::Unsupported => return,
                }
            }
        }
    }

    #[test]
    fn a_refused_o_direct_is_reported_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let sub = crate::direct_io::refusing_dir(dir.path());
        let path = sub.join("pack");
        std::fs::write(&path, vec![9u8; 2 * MIN_DIRECT as usize]).unwrap();
        let mut buf = Vec::new();
        let outcome = read_range(&path, 0..2 * MIN_DIRECT, &mut buf).unwrap();
        assert_eq!(outcome, Outcome::Unsupported);
    }

    #[test]
    fn a_range_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let mut buf = Vec::new();
        match read_range(&path, 5_000..20_000, &mut buf) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
            Ok(o) => assert_eq!(o, Outcome::Unsupported),
        }
    }
}
