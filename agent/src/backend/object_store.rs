//! [`Backend`] over any `object_store` store (local disk, memory; cloud stores later),
//! under a key prefix, in restic's default layout.

use std::{ops::Range, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{
    path::Path, GetOptions, GetRange, ObjectStore, PutMode, PutOptions, PutPayload,
};
use stash_repo_format::{file_type::FileType, Id};

use super::Backend;
use crate::error::{Error, Result};

/// A repository stored in an object store.
#[derive(Debug, Clone)]
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    display: String,
    /// For a local directory: its path, so `create` can make restic's `data/xx` dirs.
    local_root: Option<std::path::PathBuf>,
}

fn map_err(op: &'static str, path: &Path, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound(path.to_string()),
        e => {
            let transient = !matches!(
                e,
                object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
                    | object_store::Error::NotSupported { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::InvalidPath { .. }
            );
            Error::Backend {
                op,
                path: path.to_string(),
                source: Box::new(e),
                transient,
            }
        }
    }
}

impl ObjectStoreBackend {
    /// A backend over `store`, with every key below `prefix` (no leading or trailing
    /// slash; empty for the store's root).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, display: String) -> Self {
        ObjectStoreBackend {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            display,
            local_root: None,
        }
    }

    /// Marks the backend as a local directory at `root`.
    pub fn with_local_root(mut self, root: std::path::PathBuf) -> Self {
        self.local_root = Some(root);
        self
    }

    fn key(&self, rel: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn path(&self, ty: FileType, id: &Id) -> Path {
        self.key(&ty.path(id))
    }
}

#[async_trait]
impl Backend for ObjectStoreBackend {
    fn location(&self) -> String {
        self.display.clone()
    }

    async fn list(&self, ty: FileType) -> Result<Vec<(Id, u64)>> {
        let dir = self.key(ty.dir());
        let mut out = Vec::new();
        let mut stream = self.store.list(Some(&dir));
        while let Some(meta) = stream
            .try_next()
            .await
            .map_err(|e| map_err("list", &dir, e))?
        {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if let Ok(id) = Id::from_hex(name) {
                out.push((id, meta.size));
            }
        }
        Ok(out)
    }

    async fn read(&self, ty: FileType, id: &Id, range: Option<Range<u64>>) -> Result<Bytes> {
        let path = self.path(ty, id);
        let opts = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..Default::default()
        };
        let res = self
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| map_err("read", &path, e))?;
        let bytes = res.bytes().await.map_err(|e| map_err("read", &path, e))?;
        if let Some(r) = range {
            if bytes.len() as u64 != r.end - r.start {
                return Err(Error::Backend {
                    op: "read",
                    path: path.to_string(),
                    source: format!("short read: {} of {} bytes", bytes.len(), r.end - r.start)
                        .into(),
                    transient: true,
                });
            }
        }
        Ok(bytes)
    }

    async fn write(&self, ty: FileType, id: &Id, data: Bytes) -> Result<()> {
        let path = self.path(ty, id);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(data), opts)
            .await
        {
            Ok(_) => Ok(()),
            // Names are content hashes: an existing file already holds these bytes.
            // The config is the one name that is not, and `init` checks for it first.
            Err(object_store::Error::AlreadyExists { .. }) if ty != FileType::Config => Ok(()),
            Err(e) => Err(map_err("write", &path, e)),
        }
    }

    async fn remove(&self, ty: FileType, id: &Id) -> Result<()> {
        let path = self.path(ty, id);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err("remove", &path, e)),
        }
    }

    async fn has_config(&self) -> Result<bool> {
        let path = self.key("config");
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(map_err("stat", &path, e)),
        }
    }

    async fn create(&self) -> Result<()> {
        if let Some(root) = &self.local_root {
            let root = root.clone();
            tokio::task::spawn_blocking(move || -> Result<()> {
                for d in ["keys", "snapshots", "index", "locks"] {
                    std::fs::create_dir_all(root.join(d))
                        .map_err(|e| Error::io(root.join(d), e))?;
                }
                for i in 0..=255u8 {
                    let d = root.join("data").join(format!("{i:02x}"));
                    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::Usage(format!("create task failed: {e}")))??;
        }
        Ok(())
    }
}
