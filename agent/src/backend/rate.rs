//! restic's `--limit-upload` and `--limit-download`: transfers paced to a number of
//! bytes per second. Each transfer reserves its share of the link after the ones
//! before it and waits for the end of its reservation (an upload before it goes,
//! a download after it came), so concurrent transfers together keep to the rate.

use std::{
    ops::Range,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use stash_repo_format::{file_type::FileType, Id};
use tokio::time::Instant;

use super::{Backend, ReadBuf};
use crate::error::Result;

/// A link of `bytes_per_sec`, shared by the transfers in one direction.
#[derive(Debug)]
pub struct Pacer {
    bytes_per_sec: u64,
    free_at: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(bytes_per_sec: u64) -> Self {
        Pacer {
            bytes_per_sec: bytes_per_sec.max(1),
            free_at: Mutex::new(None),
        }
    }

    /// Waits until `n` more bytes fit the rate.
    pub async fn pass(&self, n: usize) {
        let spend = Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64);
        let end = {
            let mut free = self.free_at.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let start = free.filter(|f| *f > now).unwrap_or(now);
            let end = start + spend;
            *free = Some(end);
            end
        };
        tokio::time::sleep_until(end).await;
    }
}

/// Paces `inner`'s uploads and downloads.
#[derive(Debug)]
pub struct RateLimitBackend {
    inner: Arc<dyn Backend>,
    upload: Option<Pacer>,
    download: Option<Pacer>,
}

impl RateLimitBackend {
    /// Limits in bytes per second; `None` leaves a direction unlimited.
    pub fn new(inner: Arc<dyn Backend>, upload: Option<u64>, download: Option<u64>) -> Self {
        RateLimitBackend {
            inner,
            upload: upload.map(Pacer::new),
            download: download.map(Pacer::new),
        }
    }
}

#[async_trait]
impl Backend for RateLimitBackend {
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
        let b = self.inner.read(ty, id, range).await?;
        if let Some(p) = &self.download {
            p.pass(b.len()).await;
        }
        Ok(b)
    }

    async fn read_into(
        &self,
        ty: FileType,
        id: &Id,
        range: Option<Range<u64>>,
        buf: Vec<u8>,
    ) -> Result<ReadBuf> {
        let b = self.inner.read_into(ty, id, range, buf).await?;
        if let Some(p) = &self.download {
            p.pass(b.len()).await;
        }
        Ok(b)
    }

    fn takes_read_hints(&self) -> bool {
        self.inner.takes_read_hints()
    }

    async fn will_read(&self, ty: FileType, id: &Id) {
        self.inner.will_read(ty, id).await;
    }

    async fn write(&self, ty: FileType, id: &Id, data: Bytes) -> Result<()> {
        if let Some(p) = &self.upload {
            p.pass(data.len()).await;
        }
        self.inner.write(ty, id, data).await
    }

    async fn remove(&self, ty: FileType, id: &Id) -> Result<()> {
        self.inner.remove(ty, id).await
    }

    async fn has_config(&self) -> Result<bool> {
        self.inner.has_config().await
    }

    async fn create(&self) -> Result<()> {
        self.inner.create().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::location::open_location;

    /// 1 MiB at 256 KiB/s takes four seconds (of paused, virtual time), whether in
    /// one transfer or in sixteen concurrent ones; reads are paced on their own.
    #[tokio::test(start_paused = true)]
    async fn transfers_keep_to_the_rate() {
        let inner = open_location("memory:rate-limit", false).unwrap();
        let b = RateLimitBackend::new(inner, Some(256 << 10), Some(512 << 10));
        let t0 = Instant::now();
        b.write(
            FileType::Pack,
            &Id::hash(b"one"),
            Bytes::from(vec![0u8; 1 << 20]),
        )
        .await
        .unwrap();
        assert_eq!(t0.elapsed().as_secs(), 4);
        let t1 = Instant::now();
        let ids: Vec<Id> = (0..16u8).map(|i| Id::hash(&[i])).collect();
        let writes = ids
            .iter()
            .map(|id| b.write(FileType::Pack, id, Bytes::from(vec![0u8; 64 << 10])));
        futures::future::try_join_all(writes).await.unwrap();
        assert_eq!(t1.elapsed().as_secs(), 4);
        let t2 = Instant::now();
        let got = b
            .read(FileType::Pack, &Id::hash(b"one"), None)
            .await
            .unwrap();
        assert_eq!(got.len(), 1 << 20);
        assert_eq!(t2.elapsed().as_secs(), 2);
    }
}
