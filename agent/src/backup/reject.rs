//! Everything besides the targets that keeps an entry out of a backup, with restic's
//! flags and meaning: `--exclude` and `--iexclude` patterns (the latter ignoring
//! case), `--exclude-larger-than` (files only), and `--exclude-if-present` /
//! `--exclude-caches` (in a directory holding the marker file, whose content starts
//! with the header when one is given, everything but the marker is left out: the
//! directory and the marker stay, so the snapshot shows why it is empty).

use std::{io::Read, path::Path};

use super::exclude::PathExcludes;
use crate::error::{Error, Result};

/// The marker `--exclude-caches` looks for (<https://bford.info/cachedir/>).
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG:Signature: 8a477f597d28d172789f06886806bc55";

/// A `--exclude-if-present` marker: a file name and, optionally, its first bytes.
#[derive(Debug, Clone)]
struct Marker {
    name: String,
    header: Option<Vec<u8>>,
}

/// The rejection rules of one backup.
#[derive(Debug, Clone, Default)]
pub struct Rejects {
    excludes: PathExcludes,
    larger_than: Option<u64>,
    markers: Vec<Marker>,
}

impl Rejects {
    /// Compiles the rules.
    ///
    /// # Errors
    /// [`Error::Usage`] naming an invalid pattern or an empty marker name.
    pub fn new(
        excludes: &[String],
        iexcludes: &[String],
        larger_than: Option<u64>,
        if_present: &[String],
    ) -> Result<Self> {
        let markers = if_present
            .iter()
            .map(|m| {
                let (name, header) = match m.split_once(':') {
                    Some((n, h)) => (n, Some(h.as_bytes().to_vec())),
                    None => (m.as_str(), None),
                };
                if name.is_empty() || name.contains('/') {
                    return Err(Error::Usage(format!(
                        "--exclude-if-present {m:?}: give a file name, optionally name:header"
                    )));
                }
                Ok(Marker {
                    name: name.to_string(),
                    header,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Rejects {
            excludes: PathExcludes::new(excludes, iexcludes)?,
            larger_than,
            markers,
        })
    }

    /// Whether the absolute `path` matches an exclude pattern.
    pub fn path(&self, abs: &Path) -> bool {
        self.excludes.is_excluded(abs)
    }

    /// Whether a file of `size` bytes is too large.
    pub fn file_size(&self, size: u64) -> bool {
        self.larger_than.is_some_and(|limit| size > limit)
    }

    /// The markers directory `dir` holds (a marker with a header only when the file
    /// starts with it).
    pub fn markers_in(&self, dir: &Path) -> Vec<&str> {
        self.markers
            .iter()
            .filter(|m| {
                let file = dir.join(&m.name);
                match &m.header {
                    None => std::fs::symlink_metadata(&file).is_ok(),
                    Some(header) => {
                        let mut start = vec![0u8; header.len()];
                        std::fs::File::open(&file)
                            .and_then(|mut f| f.read_exact(&mut start))
                            .is_ok_and(|()| &start == header)
                    }
                }
            })
            .map(|m| m.name.as_str())
            .collect()
    }

    /// Whether an entry `name` of a directory holding `markers` is left out: restic
    /// keeps the directory and the marker file itself, and nothing else in it.
    pub fn marked_out(markers: &[&str], name: &[u8]) -> bool {
        markers.iter().any(|m| m.as_bytes() != name)
    }
}

/// restic's `--exclude-larger-than` sizes: bytes, or a number with `k`, `m`, `g` or
/// `t` (powers of 1024, either case).
///
/// # Errors
/// [`Error::Usage`] naming the text.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let (digits, shift) = match t.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        Some('t') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| {
            Error::Usage(format!(
                "invalid size {text:?}: use bytes or 10k, 5M, 1G, 2T"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_restics() {
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("1k").unwrap(), 1024);
        assert_eq!(parse_size("5M").unwrap(), 5 << 20);
        assert_eq!(parse_size("2t").unwrap(), 2 << 40);
        for bad in ["", "k", "1.5M", "-1", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn case_insensitive_patterns_and_sizes() {
        let r = Rejects::new(&["/a/x".into()], &["*.TXT".into()], Some(10), &[]).unwrap();
        assert!(r.path(Path::new("/a/x")));
        assert!(r.path(Path::new("/b/Notes.txt")));
        assert!(r.path(Path::new("/b/NOTES.TXT")));
        assert!(!r.path(Path::new("/b/notes.md")));
        assert!(r.file_size(11) && !r.file_size(10));
    }

    #[test]
    fn markers_with_and_without_headers() {
        let dir = tempfile::tempdir().unwrap();
        let (tagged, plain, wrong) = (
            dir.path().join("t"),
            dir.path().join("p"),
            dir.path().join("w"),
        );
        for d in [&tagged, &plain, &wrong] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(
            tagged.join("CACHEDIR.TAG"),
            b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
        )
        .unwrap();
        std::fs::write(wrong.join("CACHEDIR.TAG"), b"not a tag").unwrap();
        std::fs::write(plain.join(".nobackup"), b"").unwrap();
        let r = Rejects::new(&[], &[], None, &[CACHEDIR_TAG.into(), ".nobackup".into()]).unwrap();
        assert_eq!(r.markers_in(&tagged), ["CACHEDIR.TAG"]);
        assert_eq!(r.markers_in(&plain), [".nobackup"]);
        assert!(
            r.markers_in(&wrong).is_empty(),
            "a marker without the header is no marker"
        );
        let markers = r.markers_in(&tagged);
        assert!(Rejects::marked_out(&markers, b"data"));
        assert!(!Rejects::marked_out(&markers, b"CACHEDIR.TAG"));
        assert!(!Rejects::marked_out(&[], b"data"));
        assert!(Rejects::new(&[], &[], None, &[":x".into()]).is_err());
    }
}
