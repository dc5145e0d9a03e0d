//! The few system calls std does not offer: creating fifos and device nodes,
//! read-ahead advice and giving idle code pages back.
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

/// Gives back the resident pages of this program's own file mappings: its code is
/// unmapped from this process (`MADV_DONTNEED`) and its read-only data reclaimed where
/// no other process maps it (`MADV_PAGEOUT`, Linux 5.4+). Returns the bytes advised.
///
/// A long-lived, mostly idle process (the sidecar between backups) otherwise keeps
/// mapped every page of the binary its start-up and its last backup touched, most of
/// it, since the kernel maps the pages around each fault. Neither advice changes what
/// the program reads: the code segment is never written (it is mapped without write
/// permission), so dropping this process's mapping of it only means the next call
/// into it maps the page again from the page cache (or the file); the read-only data
/// segments may hold relocated, copied-on-write pages, so they get the reclaim advice,
/// which keeps contents, never the discard. (A debugger's software breakpoints, which
/// are such copies in the code segment, would be dropped with it.)
/// Advice only: on other kernels, or where the maps cannot be read, it does nothing.
#[cfg(target_os = "linux")]
pub fn release_own_code_pages() -> u64 {
    let (Ok(exe), Ok(maps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/maps"),
    ) else {
        return 0;
    };
    let mut advised = 0;
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with("r-") || fields.nth(3).map(Path::new) != Some(exe.as_path()) {
            continue;
        }
        let advice = if perms.as_bytes().get(2) == Some(&b'x') {
            libc::MADV_DONTNEED
        } else {
            libc::MADV_PAGEOUT
        };
        let Some((start, end)) = range.split_once('-').and_then(|(s, e)| {
            Some((
                usize::from_str_radix(s, 16).ok()?,
                usize::from_str_radix(e, 16).ok()?,
            ))
        }) else {
            continue;
        };
        if end <= start {
            continue;
        }
        // SAFETY: the range is one of this process's own mappings of its executable,
        // page-aligned as the kernel lists it, and not writable. For the code segment
        // (never written) MADV_DONTNEED only unmaps pages that read back identical from
        // the file; MADV_PAGEOUT on the others only reclaims. What a read of the range
        // returns never changes, so no Rust reference into it is affected.
        let r = unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
        if r == 0 {
            advised += (end - start) as u64;
        }
    }
    advised
}

/// Other systems have no such advice.
#[cfg(not(target_os = "linux"))]
pub fn release_own_code_pages() -> u64 {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Resident KiB of this test binary's code segment.
    fn resident_code_kib() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_code = false;
        let mut kib = 0;
        for line in smaps.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields
                .first()
                .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
            {
                in_code = fields.get(1).is_some_and(|p| p.starts_with("r-x"))
                    && fields.get(5).map(Path::new) == Some(exe.as_path());
            } else if in_code && fields.first() == Some(&"Rss:") {
                kib += fields[1].parse::<u64>().unwrap();
            }
        }
        kib
    }

    #[test]
    fn own_code_pages_are_given_back() {
        let before = resident_code_kib();
        assert!(release_own_code_pages() > 0, "nothing advised");
        let after = resident_code_kib();
        eprintln!("resident code: {before} KiB -> {after} KiB");
        // Reading the maps again runs code, which the kernel maps back a folio at a
        // time, so only a fall is certain.
        assert!(after < before, "resident code {before} KiB -> {after} KiB");
    }
}
