//! `backup --dry-run`: a backend that reads through to the repository and takes its
//! locks, but drops every pack, index and snapshot written, so a run does all its
//! work (chunking, compression, encryption, counting) and leaves the repository as
//! it was.

use std::{ops::Range, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use stash_repo_format::{file_type::FileType, Id};

use super::{Backend, ReadBuf};
use crate::error::Result;

/// Drops writes and removals of everything but locks (see the module docs).
#[derive(Debug)]
pub struct DryRunBackend {
    inner: Arc<dyn Backend>,
}

impl DryRunBackend {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        DryRunBackend { inner }
    }
}

#[async_trait]
impl Backend for DryRunBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn lists_finished_writes(&self) -> bool {
        self.inner.lists_finished_writes()
    }

    async fn list(&self, ty: FileType) -> Result<Vec<(Id, u64)>> {
        self.inner.list(ty).await
    }

    async fn read(&self, ty: FileType, id: &Id, range: Option<Range<u64>>) -> Result<Bytes> {
        self.inner.read(ty, id, range).await
    }

    async fn read_cacheable(
        &self,
        ty: FileType,
        id: &Id,
        range: Option<Range<u64>>,
    ) -> Result<Bytes> {
        self.inner.read_cacheable(ty, id, range).await
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
        match ty {
            FileType::Lock => self.inner.write(ty, id, data).await,
            _ => Ok(()),
        }
    }

    async fn remove(&self, ty: FileType, id: &Id) -> Result<()> {
        match ty {
            FileType::Lock => self.inner.remove(ty, id).await,
            _ => Ok(()),
        }
    }

    async fn has_config(&self) -> Result<bool> {
        self.inner.has_config().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::location::open_location;

    #[tokio::test]
    async fn only_locks_reach_the_store() {
        let inner = open_location("memory:dry-run", false).unwrap();
        let dry = DryRunBackend::new(inner.clone());
        let data = Bytes::from_static(b"x");
        for ty in [
            FileType::Pack,
            FileType::Index,
            FileType::Snapshot,
            FileType::Lock,
        ] {
            dry.write(ty, &Id::hash(b"x"), data.clone()).await.unwrap();
        }
        for ty in [FileType::Pack, FileType::Index, FileType::Snapshot] {
            assert!(inner.list(ty).await.unwrap().is_empty(), "{ty:?}");
        }
        assert_eq!(inner.list(FileType::Lock).await.unwrap().len(), 1);
        dry.remove(FileType::Lock, &Id::hash(b"x")).await.unwrap();
        assert!(inner.list(FileType::Lock).await.unwrap().is_empty());
    }
}
