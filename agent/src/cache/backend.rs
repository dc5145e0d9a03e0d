//! The cache as a [`Backend`] decorator: reads of snapshots and index files, and
//! the reads of packs their callers mark as tree reads
//! ([`Backend::read_cacheable`]), are served from the cache and fill it; writes of
//! snapshots and index files go to the cache too; removals remove from both.
//! Everything else passes through.

use std::{collections::HashSet, ops::Range, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use stash_repo_format::{file_type::FileType, Id};

use super::LocalCache;
use crate::{
    backend::{Backend, ReadBuf},
    error::Result,
};

/// A backend with a local cache in front of it.
#[derive(Debug)]
pub struct CacheBackend {
    inner: Arc<dyn Backend>,
    cache: Arc<LocalCache>,
}

impl CacheBackend {
    pub fn new(inner: Arc<dyn Backend>, cache: Arc<LocalCache>) -> Self {
        CacheBackend { inner, cache }
    }

    /// Whole-file reads of the types kept whatever the caller.
    fn auto(ty: FileType) -> bool {
        matches!(ty, FileType::Snapshot | FileType::Index)
    }

    async fn read_through(
        &self,
        ty: FileType,
        id: &Id,
        range: Option<Range<u64>>,
    ) -> Result<Bytes> {
        match range {
            None => {
                if let Some(b) = self.cache.get(ty, id).await {
                    return Ok(b);
                }
                let b = self.inner.read(ty, id, None).await?;
                self.cache.put(ty, id, b.clone()).await;
                Ok(b)
            }
            Some(r) => {
                if let Some(b) = self.cache.get_range(ty, id, r.clone()).await {
                    return Ok(b);
                }
                // restic's rule: the first tree read from a pack brings the whole
                // pack, and its next trees come from the cache.
                let whole = self.inner.read(ty, id, None).await?;
                let fits = r.start <= r.end && r.end <= whole.len() as u64;
                self.cache.put(ty, id, whole.clone()).await;
                if fits {
                    Ok(whole.slice(r.start as usize..r.end as usize))
                } else {
                    self.inner.read(ty, id, Some(r)).await
                }
            }
        }
    }
}

#[async_trait]
impl Backend for CacheBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn lists_finished_writes(&self) -> bool {
        self.inner.lists_finished_writes()
    }

    async fn list(&self, ty: FileType) -> Result<Vec<(Id, u64)>> {
        let all = self.inner.list(ty).await?;
        if Self::auto(ty) {
            let keep: HashSet<Id> = all.iter().map(|(id, _)| *id).collect();
            self.cache.retain(ty, &keep).await;
        }
        Ok(all)
    }

    async fn read(&self, ty: FileType, id: &Id, range: Option<Range<u64>>) -> Result<Bytes> {
        if Self::auto(ty) && range.is_none() {
            self.read_through(ty, id, None).await
        } else {
            self.inner.read(ty, id, range).await
        }
    }

    async fn read_cacheable(
        &self,
        ty: FileType,
        id: &Id,
        range: Option<Range<u64>>,
    ) -> Result<Bytes> {
        if LocalCache::keeps(ty) {
            self.read_through(ty, id, range).await
        } else {
            self.inner.read(ty, id, range).await
        }
    }

    async fn read_into(
        &self,
        ty: FileType,
        id: &Id,
        range: Option<Range<u64>>,
        buf: Vec<u8>,
    ) -> Result<ReadBuf> {
        self.inner.read_into(ty, id, range, buf).await
    }

    fn takes_read_hints(&self) -> bool {
        self.inner.takes_read_hints()
    }

    async fn will_read(&self, ty: FileType, id: &Id) {
        self.inner.will_read(ty, id).await;
    }

    async fn write(&self, ty: FileType, id: &Id, data: Bytes) -> Result<()> {
        self.inner.write(ty, id, data.clone()).await?;
        if Self::auto(ty) {
            self.cache.put_own(ty, id, data).await;
        }
        Ok(())
    }

    async fn write_cacheable(&self, ty: FileType, id: &Id, data: Bytes) -> Result<()> {
        self.inner.write(ty, id, data.clone()).await?;
        if LocalCache::keeps(ty) {
            self.cache.put_own(ty, id, data).await;
        }
        Ok(())
    }

    async fn remove(&self, ty: FileType, id: &Id) -> Result<()> {
        self.inner.remove(ty, id).await?;
        if LocalCache::keeps(ty) {
            self.cache.remove(ty, id).await;
        }
        Ok(())
    }

    async fn has_config(&self) -> Result<bool> {
        self.inner.has_config().await
    }

    async fn create(&self) -> Result<()> {
        self.inner.create().await
    }
}
