//! The cache root and the repository caches in it: where the root is by default,
//! and which caches it holds, with their last use and size (`stash cache`).

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use stash_repo_format::Id;

/// Caches unused for longer than this many days are old (restic's default
/// `--max-age`).
pub const DEFAULT_MAX_AGE_DAYS: u64 = 30;

/// The default cache root: `$XDG_CACHE_HOME/stash`, else `$HOME/.cache/stash`;
/// `None` when neither variable is set (a container without a home).
pub fn default_root() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .map(|base| base.join("stash"))
}

/// One repository's cache under a root.
#[derive(Debug, Clone)]
pub struct CacheDir {
    /// The repository's config id (the directory's name).
    pub id: String,
    pub path: PathBuf,
    /// When a command last opened it.
    pub last_used: SystemTime,
    /// Bytes of its files; `None` when not measured.
    pub size: Option<u64>,
}

impl CacheDir {
    /// Whether it was last used more than `max_age` ago.
    pub fn is_old(&self, now: SystemTime, max_age: Duration) -> bool {
        now.duration_since(self.last_used)
            .is_ok_and(|age| age > max_age)
    }
}

/// The repository caches under `root`, by last use (oldest first); with `sizes`,
/// each measured. A missing root holds none.
///
/// # Errors
/// The root cannot be read.
pub fn cache_dirs(root: &Path, sizes: bool) -> std::io::Result<Vec<CacheDir>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut dirs = Vec::new();
    for e in entries {
        let e = e?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let meta = e.metadata()?;
        if !meta.is_dir() || Id::from_hex(&name).is_err() {
            continue;
        }
        let path = e.path();
        dirs.push(CacheDir {
            size: sizes.then(|| tree_size(&path)),
            id: name,
            path,
            last_used: meta.modified()?,
        });
    }
    dirs.sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.id.cmp(&b.id)));
    Ok(dirs)
}

fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::LocalCache;

    #[test]
    fn caches_are_listed_by_last_use_with_their_sizes() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (Id::hash(b"a").to_hex(), Id::hash(b"b").to_hex());
        LocalCache::open(root.path(), &a).unwrap();
        let cb = LocalCache::open(root.path(), &b).unwrap();
        std::fs::write(cb.dir().join("snapshots").join("x"), [0u8; 10]).unwrap();
        std::fs::create_dir(root.path().join("not-a-cache")).unwrap();
        let month_ago = SystemTime::now() - Duration::from_secs(40 * 86_400);
        filetime::set_file_mtime(root.path().join(&b), month_ago.into()).unwrap();

        let dirs = cache_dirs(root.path(), true).unwrap();
        let ids: Vec<&str> = dirs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, [b.as_str(), a.as_str()]);
        assert_eq!(dirs[0].size, Some(11), "x and the version file");
        let max = Duration::from_secs(DEFAULT_MAX_AGE_DAYS * 86_400);
        assert!(dirs[0].is_old(SystemTime::now(), max));
        assert!(!dirs[1].is_old(SystemTime::now(), max));
        assert!(cache_dirs(&root.path().join("none"), false)
            .unwrap()
            .is_empty());
    }
}
