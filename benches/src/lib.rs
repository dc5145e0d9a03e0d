//! Shared helpers for the criterion benches in `benches/benches/` (see README.md):
//! seeded input generators (random bytes, log-like text, a small file tree) and a
//! reader of the process's resident memory.
//!
//! Everything here is deterministic for a given seed, so a baseline saved with
//! `--save-baseline` is compared against the same bytes later.
#![forbid(unsafe_code)]

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use rand::{rngs::StdRng, Rng, RngCore, SeedableRng};

/// One mebibyte.
pub const MIB: usize = 1 << 20;

/// `n` pseudo-random (incompressible) bytes from `seed`.
pub fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

const LEVELS: [&str; 5] = ["INFO ", "DEBUG", "WARN ", "ERROR", "TRACE"];
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
const PATHS: [&str; 6] = [
    "/api/v1/items",
    "/api/v1/users",
    "/api/v2/orders",
    "/static/img",
    "/healthz",
    "/api/v1/search",
];
const COMPONENTS: [&str; 7] = [
    "scheduler",
    "http",
    "db.pool",
    "cache",
    "auth",
    "indexer",
    "gc",
];

/// `n` bytes of log-like text from `seed` (timestamps, levels, request lines, JSON
/// records), compressing about 4x with zstd level 3 like the shared data set's text.
pub fn text_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n + 256);
    let mut ts: u64 = 1_700_000_000_000 + rng.gen_range(0..1u64 << 30);
    while out.len() < n {
        let r: u64 = rng.gen();
        ts += r & 0x3FF;
        let r = r >> 10;
        let sec = ts / 1000;
        let stamp = format!(
            "2024-03-{:02} {:02}:{:02}:{:02}.{:03}",
            1 + (sec / 86_400) % 28,
            (sec / 3600) % 24,
            (sec / 60) % 60,
            sec % 60,
            ts % 1000
        );
        let level = LEVELS[(r % 5) as usize];
        let _ = match (r >> 3) % 4 {
            0 => writeln!(
                out,
                "{stamp} {level} [worker-{}] {} {}/{} status={} latency_ms={} bytes={} user=user{:04}",
                (r >> 6) % 32,
                METHODS[((r >> 11) % 5) as usize],
                PATHS[((r >> 14) % 6) as usize],
                (r >> 17) % 100_000,
                [200, 200, 200, 201, 204, 304, 404, 500][((r >> 34) % 8) as usize],
                (r >> 37) % 2000,
                (r >> 12) % 65_536,
                (r >> 20) % 5000
            ),
            1 => writeln!(
                out,
                "{stamp} {level} {}: processed batch {} of 10000 ({} items, {}.{:02}% done)",
                COMPONENTS[((r >> 6) % 7) as usize],
                (r >> 9) % 10_000,
                (r >> 23) % 512,
                (r >> 32) % 100,
                (r >> 39) % 100
            ),
            2 => writeln!(
                out,
                "{{\"ts\":\"{stamp}\",\"level\":\"{}\",\"component\":\"{}\",\"msg\":\"cache {}\",\"key\":\"k{:08x}\",\"size\":{}}}",
                level.trim().to_lowercase(),
                COMPONENTS[((r >> 6) % 7) as usize],
                ["hit", "miss", "evict"][((r >> 9) % 3) as usize],
                (r >> 11) & 0xFFFF_FFFF,
                (r >> 43) % 1_000_000
            ),
            _ => writeln!(
                out,
                "{stamp} {level} db.pool: connection {} acquired after {}us (active={} idle={})",
                (r >> 6) % 64,
                (r >> 12) % 50_000,
                (r >> 28) % 64,
                (r >> 34) % 64
            ),
        };
    }
    out.truncate(n);
    out
}

/// A generated source tree for the pipeline bench.
#[derive(Debug)]
pub struct Tree {
    /// The tree's root directory.
    pub root: PathBuf,
    /// Regular files written.
    pub files: usize,
    /// Content bytes written.
    pub bytes: u64,
}

/// Writes a deterministic tree of `files` files totalling about `total` bytes under
/// `root`: four large files (two random, two text, an eighth of `total` each) and the
/// rest log-uniform between 1 KiB and 2 MiB, alternating random and text, spread over
/// nested directories.
///
/// # Panics
/// On I/O errors.
pub fn make_tree(root: &Path, seed: u64, files: usize, total: usize) -> Tree {
    let mut rng = StdRng::seed_from_u64(seed);
    let big = total / 8;
    let mut sizes: Vec<usize> = vec![big; 4.min(files)];
    let rest_files = files.saturating_sub(sizes.len()).max(1);
    let rest_budget = total.saturating_sub(sizes.iter().sum::<usize>());
    // Log-uniform sizes, then scaled so they sum to the budget.
    let (lo, hi) = ((1024f64).ln(), ((2 * MIB) as f64).ln());
    let raw: Vec<f64> = (0..rest_files)
        .map(|_| rng.gen_range(lo..hi).exp())
        .collect();
    let scale = rest_budget as f64 / raw.iter().sum::<f64>();
    sizes.extend(raw.iter().map(|s| (s * scale) as usize));
    let mut bytes = 0u64;
    for (i, &size) in sizes.iter().enumerate() {
        let dir = root.join(format!("d{}", i % 7)).join(format!("e{}", i % 3));
        fs::create_dir_all(&dir).expect("create dir");
        let file_seed = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let (name, data) = if i % 2 == 0 {
            (format!("f{i:04}.bin"), random_bytes(file_seed, size))
        } else {
            (format!("f{i:04}.log"), text_bytes(file_seed, size))
        };
        fs::write(dir.join(name), &data).expect("write file");
        bytes += data.len() as u64;
    }
    Tree {
        root: root.to_path_buf(),
        files: sizes.len(),
        bytes,
    }
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`, ...), if readable.
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The process's resident set size in bytes (0 where `/proc` is unavailable).
pub fn rss_bytes() -> u64 {
    proc_status_kib("VmRSS").unwrap_or(0) * 1024
}

/// The process's peak resident set size in bytes (0 where `/proc` is unavailable).
pub fn peak_rss_bytes() -> u64 {
    proc_status_kib("VmHWM").unwrap_or(0) * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic() {
        assert_eq!(random_bytes(1, 1000), random_bytes(1, 1000));
        assert_ne!(random_bytes(1, 1000), random_bytes(2, 1000));
        let t = text_bytes(3, 10_000);
        assert_eq!(t.len(), 10_000);
        assert_eq!(t, text_bytes(3, 10_000));
        assert!(t.iter().all(|b| b.is_ascii()));
    }

    #[test]
    fn tree_has_requested_shape() {
        let d = tempfile::tempdir().unwrap();
        let t = make_tree(d.path(), 7, 20, 4 * MIB);
        assert_eq!(t.files, 20);
        let want = 4 * MIB as u64;
        assert!(t.bytes <= want && t.bytes > want - 100, "{}", t.bytes);
    }

    #[test]
    fn reads_proc_status() {
        if Path::new("/proc/self/status").exists() {
            // Current first, then the peak: the peak never decreases, while other
            // test threads may allocate between the two reads.
            let now = rss_bytes();
            assert!(now > 0);
            assert!(peak_rss_bytes() >= now);
        }
    }
}
