//! Bounds the number of requests in flight to the inner backend (restic's
//! `-o *.connections`), so parallel pack uploads and restore reads cannot open
//! more connections than the store tolerates.

use std::{ops::Range, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use stash_repo_format::{file_type::FileType, Id};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{Backend, ReadBuf};
use crate::error::{Error, Result};

/// A [`Backend`] allowing at most `n` concurrent requests to `inner`.
#[derive(Debug)]
pub struct LimitBackend {
    inner: Arc<dyn Backend>,
    sem: Semaphore,
    n: usize,
}

impl LimitBackend {
    /// Wraps `inner` with room for `n` (at least 1) requests at once.
    pub fn new(inner: Arc<dyn Backend>, n: usize) -> Self {
        let n = n.max(1);
        LimitBackend {
            inner,
            sem: Semaphore::new(n),
            n,
        }
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.n
    }

    async fn permit(&self) -> Result<SemaphorePermit<'_>> {
        self.sem.acquire().await.map_err(|_| Error::Interrupted)
    }
}

#[async_trait]
impl Backend for LimitBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn lists_finished_writes(&self) -> bool {
        self.inner.lists_finished_writes()
    }

    async fn list(&self, ty: FileType) -> Result<Vec<(Id, u64)>> {
        let _p = self.permit().await?;
        self.inner.list(ty).await
    }

    async fn read(&self, ty: FileType, id: &Id, range: Option<Range<u64>>) -> Result<Bytes> {
        let _p = self.permit().await?;
        self.inner.read(ty, id, range).await
    }

    fn takes_read_hints(&self) -> bool {
        self.inner.takes_read_hints()
    }

    async fn will_read(&self, ty: FileType, id: &Id) {
        self.inner.will_read(ty, id).await;
    }

    async fn read_into(
        &self,
        ty: FileType,
        id: &Id,
        range: Option<Range<u64>>,
        buf: Vec<u8>,
    ) -> Result<ReadBuf> {
        let _p = self.permit().await?;
        self.inner.read_into(ty, id, range, buf).await
    }

    async fn write(&self, ty: FileType, id: &Id, data: Bytes) -> Result<()> {
        let _p = self.permit().await?;
        self.inner.write(ty, id, data).await
    }

    async fn remove(&self, ty: FileType, id: &Id) -> Result<()> {
        let _p = self.permit().await?;
        self.inner.remove(ty, id).await
    }

    async fn has_config(&self) -> Result<bool> {
        let _p = self.permit().await?;
        self.inner.has_config().await
    }

    async fn create(&self) -> Result<()> {
        let _p = self.permit().await?;
        self.inner.create().await
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::*;

    /// Records the highest number of concurrent writes.
    #[derive(Debug, Default)]
    struct Gauge {
        now: AtomicUsize,
        max: AtomicUsize,
    }

    #[async_trait]
    impl Backend for Gauge {
        fn location(&self) -> String {
            "gauge".into()
        }
        async fn list(&self, _: FileType) -> Result<Vec<(Id, u64)>> {
            Ok(vec![])
        }
        async fn read(&self, _: FileType, _: &Id, _: Option<Range<u64>>) -> Result<Bytes> {
            Ok(Bytes::new())
        }
        async fn write(&self, _: FileType, _: &Id, _: Bytes) -> Result<()> {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
        async fn remove(&self, _: FileType, _: &Id) -> Result<()> {
            Ok(())
        }
        async fn has_config(&self) -> Result<bool> {
            Ok(false)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_n_requests_in_flight() {
        let g = Arc::new(Gauge::default());
        let l = Arc::new(LimitBackend::new(g.clone(), 3));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(
                    async move { l.write(FileType::Pack, &Id::default(), Bytes::new()).await },
                )
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(g.max.load(Ordering::SeqCst), 3);
        assert_eq!(l.limit(), 3);
    }
}
