//! The few system calls std does not offer: creating fifos and device nodes, and
//! read-ahead advice.
//! This is the only module with `unsafe`; each call passes a NUL-terminated path
//! that lives for the duration of the call.
#![allow(unsafe_code)]

use std::{ffi::CString, io, os::unix::ffi::OsStrExt, path::Path};

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Creates a named pipe.
pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let r = unsafe { libc::mkfifo(c.as_ptr(), mode as libc::mode_t) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Creates a block or character device node (needs privileges).
pub fn mknod(path: &Path, mode: u32, dev: u64) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: as in `mkfifo`; mknod reads only its arguments.
    let r = unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev as libc::dev_t) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes glibc hand buffers of 4 MiB and more (packs) straight back to the system
/// when freed, and caps its per-thread arenas. Without this, freed 16 MiB pack
/// buffers stay cached per thread and peak RSS roughly doubles.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_malloc_caching() {
    // SAFETY: mallopt only changes allocator tunables; it is called once at start-up
    // before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Other C libraries (musl) have no such tunables; their allocators do not cache per thread.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_malloc_caching() {}

/// Asks the kernel to read all of `file` into the page cache in the background.
/// One advice for the whole file reads only its first 8 MiB on this kernel (the
/// rest of a 17 MiB pack then came off the device when read, as slowly as without
/// the advice), so it is given for every 4 MiB.
pub fn will_need(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const STEP: u64 = 4 << 20;
    let len = file.metadata()?.len();
    for at in (0..len).step_by(STEP as usize) {
        let (offset, n) = (
            libc::off_t::try_from(at).map_err(io::Error::other)?,
            libc::off_t::try_from(STEP.min(len - at)).map_err(io::Error::other)?,
        );
        // SAFETY: the descriptor stays open for the duration of the call, and
        // posix_fadvise reads only its arguments.
        let r =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, n, libc::POSIX_FADV_WILLNEED) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
    }
    Ok(())
}

/// macOS has no `posix_fadvise`; reads go through its own read-ahead.
#[cfg(target_vendor = "apple")]
pub fn will_need(_file: &std::fs::File) -> io::Result<()> {
    Ok(())
}
