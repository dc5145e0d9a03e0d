//! An open repository: backend, master key and config, with typed access to its
//! encrypted files and blobs.
//!
//! Opening ([`open`]) searches the key files for one the password unlocks. The index
//! ([`index_load`]) is loaded on demand into an immutable [`IndexLookup`]; blobs are
//! read through it ([`Repository::read_blob`]) and written through a [`BlobSaver`].

pub mod blob_saver;
pub mod files;
pub mod index_load;
pub mod lock;
pub mod open;
pub mod pack_buffers;
pub mod tree_packs;

use std::sync::Arc;

use stash_repo_format::{
    blob::{self, BlobType},
    compress::Mode,
    config::Config,
    crypto::Key,
    index::IndexLookup,
    Id,
};

use crate::{
    backend::Backend,
    cache::{CacheBackend, LocalCache},
    error::{Error, Result},
};

/// Sealed size up to which [`Repository::read_blob`] decodes in place.
pub const INLINE_DECODE: usize = 16 << 10;

pub use blob_saver::{BlobSaver, WorkerSaver};
pub use open::{hostname, init, open, InitOptions};

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    key: Key,
    config: Config,
    key_id: Id,
    compression: Mode,
    /// How long taking a lock waits for conflicting locks to go (restic's
    /// `--retry-lock`); zero fails at once.
    lock_retry: std::time::Duration,
    /// Target size of the packs written (restic's `--pack-size`).
    pack_size: usize,
    /// The local cache in front of `backend`, if any.
    cache: Option<Arc<LocalCache>>,
}

impl Repository {
    /// Target size in bytes of the packs this repository writes.
    pub fn pack_size(&self) -> usize {
        self.pack_size
    }

    /// Packs of `bytes` (default [`blob_saver::DEFAULT_PACK_SIZE`]).
    #[must_use]
    pub fn with_pack_size(mut self, bytes: usize) -> Self {
        self.pack_size = bytes;
        self
    }

    /// This repository with a local cache of its metadata under `root`
    /// ([`crate::cache`]).
    ///
    /// # Errors
    /// [`Error::Io`] when the cache directory cannot be created.
    pub fn with_cache(mut self, root: &std::path::Path) -> Result<Self> {
        let cache = Arc::new(LocalCache::open(root, &self.config.id)?);
        self.backend = Arc::new(CacheBackend::new(self.backend, cache.clone()));
        self.cache = Some(cache);
        Ok(self)
    }

    /// The local cache, if this repository has one.
    pub fn cache(&self) -> Option<&Arc<LocalCache>> {
        self.cache.as_ref()
    }

    /// This repository with writes of everything but locks dropped
    /// ([`crate::backend::DryRunBackend`]): `backup --dry-run`.
    pub fn into_dry_run(mut self) -> Self {
        self.backend = Arc::new(crate::backend::DryRunBackend::new(self.backend));
        self
    }

    /// The storage backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The master key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The repository config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The key file the password opened.
    pub fn key_id(&self) -> Id {
        self.key_id
    }

    /// How long taking a lock waits for conflicting locks to go.
    pub fn lock_retry(&self) -> std::time::Duration {
        self.lock_retry
    }

    /// Sets how long taking a lock waits for conflicting locks (restic's
    /// `--retry-lock`).
    #[must_use]
    pub fn with_lock_retry(mut self, wait: std::time::Duration) -> Self {
        self.lock_retry = wait;
        self
    }

    /// Zstd level for blobs: `None` in a version 1 repository or with
    /// [`Mode::Off`].
    pub fn compression(&self) -> Option<i32> {
        self.config
            .compression()
            .then(|| self.compression.level())
            .flatten()
    }

    /// Sets how new blobs are compressed (restic's `--compression`); the default
    /// is [`Mode::Auto`]. Version 1 repositories never compress.
    #[must_use]
    pub fn with_compression(mut self, mode: Mode) -> Self {
        self.compression = mode;
        self
    }

    /// Reads, verifies and decodes one blob. Blobs up to [`INLINE_DECODE`] bytes
    /// (most trees) are decoded on the calling task: that takes microseconds, less
    /// than handing them to the CPU pool and back.
    ///
    /// # Errors
    /// [`Error::MissingBlob`] if it is not indexed, a backend error, or
    /// [`Error::BadBlob`] when every stored copy fails to decode.
    pub async fn read_blob(&self, index: &IndexLookup, ty: BlobType, id: &Id) -> Result<Vec<u8>> {
        let locs = index.get_all(ty, id);
        if locs.is_empty() {
            return Err(Error::MissingBlob {
                ty: ty.as_str(),
                id: *id,
            });
        }
        let mut last = None;
        for loc in locs {
            let range = u64::from(loc.offset)..u64::from(loc.offset) + u64::from(loc.length);
            let pack = stash_repo_format::file_type::FileType::Pack;
            let read = if ty == BlobType::Tree {
                self.backend
                    .read_cacheable(pack, &loc.pack, Some(range))
                    .await
            } else {
                self.backend.read(pack, &loc.pack, Some(range)).await
            };
            let sealed = match read {
                Ok(b) => b,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let id = *id;
            let res = if sealed.len() <= INLINE_DECODE {
                blob::decode(&self.key, &id, &sealed, loc.uncompressed_length)
            } else {
                let key = self.key.clone();
                crate::cpu::spawn(move || blob::decode(&key, &id, &sealed, loc.uncompressed_length))
                    .await
            };
            match res {
                Ok(plain) => return Ok(plain),
                Err(source) => {
                    last = Some(Error::BadBlob {
                        ty: ty.as_str(),
                        id,
                        pack: loc.pack,
                        source,
                    })
                }
            }
        }
        Err(last.unwrap_or(Error::MissingBlob {
            ty: ty.as_str(),
            id: *id,
        }))
    }

    /// Reads and decodes a tree.
    ///
    /// # Errors
    /// As [`Repository::read_blob`], or [`Error::Damaged`] for a malformed tree.
    pub async fn read_tree(
        &self,
        index: &IndexLookup,
        id: &Id,
    ) -> Result<stash_repo_format::tree::Tree> {
        let bytes = self.read_blob(index, BlobType::Tree, id).await?;
        stash_repo_format::tree::Tree::decode(&bytes).map_err(|e| Error::Damaged {
            ty: "tree",
            id: id.to_string(),
            source: e,
        })
    }
}

/// A fresh version 2 repository in a named in-memory store, with a cheap key.
#[cfg(test)]
pub(crate) async fn memory_repo(name: &str) -> Repository {
    let backend = crate::backend::location::open_location(&format!("memory:{name}"), false)
        .expect("memory backend");
    repo_on(backend).await
}

/// As [`memory_repo`], on a store whose listings may lag behind writes (as a cloud
/// store's may): lock re-checks wait as restic's do.
#[cfg(test)]
pub(crate) async fn lagging_memory_repo(name: &str) -> Repository {
    let store = crate::backend::location::memory_store(name);
    repo_on(Arc::new(crate::backend::ObjectStoreBackend::new(
        store,
        "",
        format!("memory:{name}"),
    )))
    .await
}

#[cfg(test)]
pub(crate) async fn repo_on(backend: Arc<dyn crate::backend::Backend>) -> Repository {
    let kdf = Some(stash_repo_format::key::KdfParams {
        n: 1024,
        r: 8,
        p: 1,
    });
    init(
        backend,
        b"pw",
        InitOptions {
            version: 2,
            fastcdc: false,
            kdf,
            chunker_of: None,
        },
    )
    .await
    .expect("init")
}
