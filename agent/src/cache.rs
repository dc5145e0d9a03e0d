//! A local cache of a repository's metadata: its snapshots, index files and the
//! packs that hold trees, so that commands against a cloud store stop downloading
//! them again on every run.
//!
//! The layout is restic's: under a root (`--cache-dir`, `RESTIC_CACHE_DIR`, or
//! `$XDG_CACHE_HOME/stash`) one directory per repository, named by its config id,
//! holding the files as the repository stores them (encrypted) at
//! `snapshots/<id[0:2]>/<id>`, `index/<id[0:2]>/<id>` and `data/<id[0:2]>/<id>`,
//! so restic and stash can share a cache.
//!
//! Invariants that make it safe to trust:
//! - A file appears in the cache only whole: it is written under a temporary name
//!   unique to the process and renamed into place, so two processes sharing a
//!   cache see a complete file or none.
//! - A file is used only after its SHA-256 matched its name (once per process); a
//!   file that does not match (a torn disk, a stray edit) is deleted and read from
//!   the repository instead.
//! - Files the repository no longer has are dropped: snapshots and index files
//!   whenever their type is listed, packs when the index is loaded
//!   ([`LocalCache::retain`]), and any file the repository removes.
//!
//! The cache is an optimisation: every failure to read or write it is logged and
//! the repository is used instead.

mod backend;
mod dirs;

use std::{
    collections::HashSet,
    ops::Range,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use bytes::Bytes;
use stash_repo_format::{file_type::FileType, Id};

use crate::error::{Error, Result};

pub use backend::CacheBackend;
pub use dirs::{cache_dirs, default_root, CacheDir, DEFAULT_MAX_AGE_DAYS};

/// Files hashed on the calling task rather than the CPU pool.
const INLINE_HASH: usize = 64 << 10;

/// What `CACHEDIR.TAG` must begin with (<https://bford.info/cachedir/>): backup
/// tools that honour it (restic's `--exclude-caches`, ours) skip the cache.
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by stash.\n\
# For information about cache directory tags, see https://bford.info/cachedir/\n";

/// The cache of one repository.
#[derive(Debug)]
pub struct LocalCache {
    dir: PathBuf,
    /// Files whose content matched their id in this process.
    verified: Mutex<HashSet<(FileType, Id)>>,
}

impl LocalCache {
    /// The cache of the repository with config id `repo_id` under `root`, created
    /// if needed and marked as used now.
    ///
    /// # Errors
    /// [`Error::Io`] when the directories cannot be created.
    pub fn open(root: &Path, repo_id: &str) -> Result<Self> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        if Id::from_hex(repo_id).is_err() {
            return Err(Error::Usage(format!(
                "repository id {repo_id:?} is not a cache directory name"
            )));
        }
        std::fs::create_dir_all(root).map_err(io(root))?;
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            std::fs::write(&tag, CACHEDIR_TAG).map_err(io(&tag))?;
        }
        let dir = root.join(repo_id);
        for sub in ["snapshots", "index", "data"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(&dir))?;
        }
        let version = dir.join("version");
        if !version.exists() {
            std::fs::write(&version, "1").map_err(io(&version))?;
        }
        // The directory's mtime is the cache's last use (`stash cache` shows it and
        // `--cleanup` removes caches unused for long).
        filetime::set_file_mtime(&dir, filetime::FileTime::now()).map_err(io(&dir))?;
        Ok(LocalCache {
            dir,
            verified: Mutex::default(),
        })
    }

    /// The directory of this repository's cache.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether files of `ty` are kept at all.
    pub fn keeps(ty: FileType) -> bool {
        matches!(ty, FileType::Snapshot | FileType::Index | FileType::Pack)
    }

    /// restic's cache path: unlike in the repository, every type is split into
    /// subdirectories by the first two hex digits.
    fn path(&self, ty: FileType, id: &Id) -> PathBuf {
        let hex = id.to_hex();
        self.dir.join(ty.dir()).join(&hex[..2]).join(hex)
    }

    fn is_verified(&self, ty: FileType, id: &Id) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(ty, *id))
    }

    fn mark_verified(&self, ty: FileType, id: &Id, ok: bool) {
        let mut v = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if ok {
            v.insert((ty, *id));
        } else {
            v.remove(&(ty, *id));
        }
    }

    /// The whole cached file, if it is there and its content matches its id.
    pub async fn get(&self, ty: FileType, id: &Id) -> Option<Bytes> {
        let path = self.path(ty, id);
        let data = match tokio::fs::read(&path).await {
            Ok(d) => Bytes::from(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cache: reading {}: {e}", path.display());
                return None;
            }
        };
        if self.is_verified(ty, id) {
            return Some(data);
        }
        let ok = matches_id(id, data.clone()).await;
        self.mark_verified(ty, id, ok);
        if ok {
            Some(data)
        } else {
            tracing::warn!(
                "cache: {} does not match its name; reading it from the repository",
                path.display()
            );
            self.remove(ty, id).await;
            None
        }
    }

    /// A byte range of a cached file, if the file is there and valid; `None` too
    /// when the range lies past its end (the caller's read from the repository
    /// then reports that).
    pub async fn get_range(&self, ty: FileType, id: &Id, range: Range<u64>) -> Option<Bytes> {
        if !self.is_verified(ty, id) {
            let whole = self.get(ty, id).await?;
            let r = usize::try_from(range.start).ok()?..usize::try_from(range.end).ok()?;
            return (r.start <= r.end && r.end <= whole.len()).then(|| whole.slice(r));
        }
        let path = self.path(ty, id);
        let res = tokio::task::spawn_blocking(move || read_range(&path, range)).await;
        match res {
            Ok(Ok(b)) => b,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                self.mark_verified(ty, id, false);
                None
            }
            Ok(Err(e)) => {
                tracing::warn!("cache: reading {}: {e}", self.path(ty, id).display());
                None
            }
            Err(_) => None,
        }
    }

    /// Stores a file whose content matches its id (best effort: a failure is
    /// logged; content that does not match is not stored).
    pub async fn put(&self, ty: FileType, id: &Id, data: Bytes) {
        if !matches_id(id, data.clone()).await {
            tracing::warn!(
                "cache: {} {id} does not match its name; not cached",
                ty.name()
            );
            return;
        }
        self.put_own(ty, id, data).await;
    }

    /// Stores a file this process just wrote to the repository under the id it
    /// computed from these very bytes, so hashing them again would prove nothing
    /// (best effort).
    pub async fn put_own(&self, ty: FileType, id: &Id, data: Bytes) {
        let path = self.path(ty, id);
        let res = tokio::task::spawn_blocking(move || write_atomically(&path, &data)).await;
        match res {
            Ok(Ok(())) => self.mark_verified(ty, id, true),
            Ok(Err(e)) => tracing::warn!("cache: writing {}: {e}", self.path(ty, id).display()),
            Err(_) => {}
        }
    }

    /// Drops a file (best effort).
    pub async fn remove(&self, ty: FileType, id: &Id) {
        self.mark_verified(ty, id, false);
        let path = self.path(ty, id);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cache: removing {}: {e}", path.display());
            }
        }
    }

    /// The ids of the cached files of `ty`.
    pub async fn ids(&self, ty: FileType) -> Vec<Id> {
        let dir = self.dir.join(ty.dir());
        tokio::task::spawn_blocking(move || cached_ids(&dir, true))
            .await
            .unwrap_or_default()
    }

    /// Drops every cached file of `ty` not in `keep`: what the repository no longer
    /// has (or, for packs, no longer indexes as holding trees).
    pub async fn retain(&self, ty: FileType, keep: &HashSet<Id>) {
        for id in self.ids(ty).await {
            if !keep.contains(&id) {
                self.remove(ty, &id).await;
            }
        }
    }
}

/// Whether `data` hashes to `id`; large files are hashed on the CPU pool.
async fn matches_id(id: &Id, data: Bytes) -> bool {
    let id = *id;
    if data.len() <= INLINE_HASH {
        Id::hash(&data) == id
    } else {
        crate::cpu::spawn(move || Id::hash(&data) == id).await
    }
}

fn read_range(path: &Path, range: Range<u64>) -> std::io::Result<Option<Bytes>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if range.start > range.end || range.end > len {
        return Ok(None);
    }
    let mut buf = vec![0; usize::try_from(range.end - range.start).unwrap_or(0)];
    f.read_exact_at(&mut buf, range.start)?;
    Ok(Some(Bytes::from(buf)))
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = parent.join(format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let res = std::fs::write(&tmp, data).and_then(|()| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// File names that are ids, in `dir` (and, `nested`, in its two-hex-digit
/// subdirectories).
fn cached_ids(dir: &Path, nested: bool) -> Vec<Id> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if nested {
            if name.len() == 2 {
                ids.extend(cached_ids(&e.path(), false));
            }
        } else if let Ok(id) = Id::from_hex(name) {
            ids.push(id);
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_id() -> String {
        Id::hash(b"repo").to_hex()
    }

    #[tokio::test]
    async fn files_round_trip_and_bad_ones_are_dropped() {
        let root = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(root.path(), &repo_id()).unwrap();
        assert!(root.path().join("CACHEDIR.TAG").is_file());
        let data = Bytes::from_static(b"sealed snapshot");
        let id = Id::hash(&data);
        assert!(cache.get(FileType::Snapshot, &id).await.is_none());
        cache.put(FileType::Snapshot, &id, data.clone()).await;
        assert_eq!(cache.get(FileType::Snapshot, &id).await.unwrap(), data);
        assert_eq!(cache.ids(FileType::Snapshot).await, vec![id]);

        // Another process finds a file whose content does not match its name.
        let other = LocalCache::open(root.path(), &repo_id()).unwrap();
        std::fs::write(other.path(FileType::Snapshot, &id), b"torn").unwrap();
        assert!(other.get(FileType::Snapshot, &id).await.is_none());
        assert!(!other.path(FileType::Snapshot, &id).exists());
    }

    #[tokio::test]
    async fn pack_ranges_and_retain() {
        let root = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(root.path(), &repo_id()).unwrap();
        let data = Bytes::from((0..=255u8).collect::<Vec<u8>>());
        let id = Id::hash(&data);
        cache.put(FileType::Pack, &id, data.clone()).await;
        let fresh = LocalCache::open(root.path(), &repo_id()).unwrap();
        for c in [&cache, &fresh] {
            assert_eq!(
                c.get_range(FileType::Pack, &id, 10..20).await.unwrap(),
                data.slice(10..20)
            );
            assert!(c.get_range(FileType::Pack, &id, 250..300).await.is_none());
        }
        assert_eq!(fresh.ids(FileType::Pack).await, vec![id]);
        fresh.retain(FileType::Pack, &HashSet::new()).await;
        assert!(fresh.ids(FileType::Pack).await.is_empty());
        assert!(cache.get_range(FileType::Pack, &id, 0..1).await.is_none());
    }

    #[test]
    fn a_repository_id_must_be_hex() {
        let root = tempfile::tempdir().unwrap();
        assert!(LocalCache::open(root.path(), "../etc").is_err());
    }
}
