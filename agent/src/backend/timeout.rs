//! Bounds each request in time. A request that takes too long is abandoned (its
//! future dropped: an HTTP request is aborted, and since puts are atomic nothing
//! partial becomes visible) and reported as a *transient* error, so the retry
//! decorator above tries again.
//!
//! The bound grows with the bytes moved: `base + bytes / min_rate`, so a slow link
//! still gets a 16 MiB pack through while a hung connection is caught.

use std::{future::Future, ops::Range, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use stash_repo_format::{file_type::FileType, Id};

use super::{Backend, ReadBuf};
use crate::error::{Error, Result};

/// How long a request may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutPolicy {
    /// Time allowed for any request, before counting bytes.
    pub base: Duration,
    /// Slowest transfer rate tolerated, in bytes per second (0: no allowance per
    /// byte, only `base`).
    pub min_rate: u64,
    /// Bytes assumed for reading a whole file of unknown size.
    pub assumed_read_size: u64,
    /// Time allowed for listing a directory (many pages).
    pub list: Duration,
}

impl Default for TimeoutPolicy {
    /// 60 s plus 1 s per 64 KiB; whole-file reads are budgeted as 16 MiB;
    /// listings get 10 minutes.
    fn default() -> Self {
        TimeoutPolicy {
            base: Duration::from_secs(60),
            min_rate: 64 << 10,
            assumed_read_size: 16 << 20,
            list: Duration::from_secs(600),
        }
    }
}

impl TimeoutPolicy {
    /// The bound for moving `bytes`.
    pub fn for_bytes(&self, bytes: u64) -> Duration {
        if self.min_rate == 0 {
            return self.base;
        }
        self.base + Duration::from_secs_f64(bytes as f64 / self.min_rate as f64)
    }
}

/// A [`Backend`] that fails requests of `inner` running past the policy's bound.
#[derive(Debug)]
pub struct TimeoutBackend {
    inner: Arc<dyn Backend>,
    policy: TimeoutPolicy,
}

impl TimeoutBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>, policy: TimeoutPolicy) -> Self {
        TimeoutBackend { inner, policy }
    }
}

async fn bounded<T>(
    limit: Duration,
    op: &'static str,
    path: impl Fn() -> String,
    f: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(Error::Backend {
            op,
            path: path(),
            source: format!("timed out after {limit:.1?}").into(),
            transient: true,
        }),
    }
}

#[async_trait]
impl Backend for TimeoutBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn lists_finished_writes(&self) -> bool {
        self.inner.lists_finished_writes()
    }

    async fn list(&self, ty: FileType) -> Result<Vec<(Id, u64)>> {
        bounded(
            self.policy.list,
            "list",
            || ty.dir().to_string(),
            self.inner.list(ty),
        )
        .await
    }

    async fn read(&self, ty: FileType, id: &Id, range: Option<Range<u64>>) -> Result<Bytes> {
        let bytes = range.as_ref().map_or(self.policy.assumed_read_size, |r| {
            r.end.saturating_sub(r.start)
        });
        bounded(
            self.policy.for_bytes(bytes),
            "read",
            || ty.path(id),
            self.inner.read(ty, id, range),
        )
        .await
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
        let bytes = range.as_ref().map_or(self.policy.assumed_read_size, |r| {
            r.end.saturating_sub(r.start)
        });
        bounded(
            self.policy.for_bytes(bytes),
            "read",
            || ty.path(id),
            self.inner.read_into(ty, id, range, buf),
        )
        .await
    }

    async fn write(&self, ty: FileType, id: &Id, data: Bytes) -> Result<()> {
        bounded(
            self.policy.for_bytes(data.len() as u64),
            "write",
            || ty.path(id),
            self.inner.write(ty, id, data),
        )
        .await
    }

    async fn remove(&self, ty: FileType, id: &Id) -> Result<()> {
        bounded(
            self.policy.base,
            "remove",
            || ty.path(id),
            self.inner.remove(ty, id),
        )
        .await
    }

    async fn has_config(&self) -> Result<bool> {
        bounded(
            self.policy.base,
            "stat",
            || "config".into(),
            self.inner.has_config(),
        )
        .await
    }

    async fn create(&self) -> Result<()> {
        bounded(self.policy.list, "create", String::new, self.inner.create()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Slow(Duration);

    #[async_trait]
    impl Backend for Slow {
        fn location(&self) -> String {
            "slow".into()
        }
        async fn list(&self, _: FileType) -> Result<Vec<(Id, u64)>> {
            tokio::time::sleep(self.0).await;
            Ok(vec![])
        }
        async fn read(&self, _: FileType, _: &Id, _: Option<Range<u64>>) -> Result<Bytes> {
            tokio::time::sleep(self.0).await;
            Ok(Bytes::new())
        }
        async fn write(&self, _: FileType, _: &Id, _: Bytes) -> Result<()> {
            tokio::time::sleep(self.0).await;
            Ok(())
        }
        async fn remove(&self, _: FileType, _: &Id) -> Result<()> {
            Ok(())
        }
        async fn has_config(&self) -> Result<bool> {
            tokio::time::sleep(self.0).await;
            Ok(true)
        }
    }

    #[test]
    fn bound_grows_with_size() {
        let p = TimeoutPolicy::default();
        assert_eq!(p.for_bytes(0), Duration::from_secs(60));
        assert_eq!(p.for_bytes(16 << 20), Duration::from_secs(60 + 256));
        let flat = TimeoutPolicy { min_rate: 0, ..p };
        assert_eq!(flat.for_bytes(1 << 30), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn a_slow_request_is_a_transient_error() {
        let p = TimeoutPolicy {
            base: Duration::from_millis(20),
            min_rate: 0,
            assumed_read_size: 0,
            list: Duration::from_millis(20),
        };
        let t = TimeoutBackend::new(Arc::new(Slow(Duration::from_secs(5))), p.clone());
        let e = t
            .write(FileType::Pack, &Id::default(), Bytes::new())
            .await
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(t.has_config().await.unwrap_err().is_transient());
        let fast = TimeoutBackend::new(Arc::new(Slow(Duration::ZERO)), p);
        assert!(fast.has_config().await.unwrap());
    }
}
