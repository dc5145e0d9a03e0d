//! Retries transient failures ([`Error::is_transient`]) with exponential backoff and
//! jitter. Permanent errors, and reads of missing files ([`Error::NotFound`], never
//! transient), return at once.
//!
//! When the attempts are used up the last error is returned marked *not* transient
//! ("gave up after N attempts"), so callers above do not multiply the retries.
//! Retrying a write is safe: puts are atomic (a failed attempt leaves nothing
//! visible) and a write that did land before its answer was lost is found on the
//! next attempt as an existing file with the same name, hence the same bytes (see
//! [`super::ObjectStoreBackend::write`]).

use std::{
    future::Future,
    ops::Range,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use rand::Rng;
use stash_repo_format::{file_type::FileType, Id};

use super::{Backend, ReadBuf};
use crate::error::{Error, Result};

/// How often and how patiently to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 disables retrying).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub base_delay: Duration,
    /// Cap on a single delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts over about a minute (0.25 s doubling to 30 s).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based): "equal jitter", half the
    /// exponential step plus a random share of the other half, so concurrent
    /// clients spread out but never retry instantly.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(rand::thread_rng().gen::<f64>())
    }
}

/// A [`Backend`] that retries transient failures of `inner`.
#[derive(Debug)]
pub struct RetryBackend {
    inner: Arc<dyn Backend>,
    policy: RetryPolicy,
    retries: AtomicU64,
}

impl RetryBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>, policy: RetryPolicy) -> Self {
        RetryBackend {
            inner,
            policy,
            retries: AtomicU64::new(0),
        }
    }

    /// Retries made so far (for tests and statistics).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    async fn run<T, F, Fut>(&self, what: impl Fn() -> String, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e) if e.is_transient() => {
                    if attempt >= self.policy.max_attempts {
                        return Err(give_up(e, attempt));
                    }
                    let d = self.policy.delay(attempt);
                    tracing::warn!("{}: {e}; retrying in {d:.1?}", what());
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(d).await;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }
}

/// The last transient error, marked permanent and saying how often it was tried.
fn give_up(e: Error, attempts: u32) -> Error {
    if attempts <= 1 {
        return e;
    }
    match e {
        Error::Backend {
            op, path, source, ..
        } => Error::Backend {
            op,
            path,
            source: format!("{source} (gave up after {attempts} attempts)").into(),
            transient: false,
        },
        e => e,
    }
}

fn name(ty: FileType, id: &Id) -> String {
    ty.path(id)
}

#[async_trait]
impl Backend for RetryBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn lists_finished_writes(&self) -> bool {
        self.inner.lists_finished_writes()
    }

    async fn list(&self, ty: FileType) -> Result<Vec<(Id, u64)>> {
        self.run(|| format!("list {}", ty.dir()), || self.inner.list(ty))
            .await
    }

    async fn read(&self, ty: FileType, id: &Id, range: Option<Range<u64>>) -> Result<Bytes> {
        self.run(
            || format!("read {}", name(ty, id)),
            || self.inner.read(ty, id, range.clone()),
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
        // The first attempt gets the caller's buffer; a retry starts a fresh one.
        let buf = std::sync::Mutex::new(Some(buf));
        self.run(
            || format!("read {}", name(ty, id)),
            || {
                let b = buf
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
                    .unwrap_or_default();
                self.inner.read_into(ty, id, range.clone(), b)
            },
        )
        .await
    }

    async fn write(&self, ty: FileType, id: &Id, data: Bytes) -> Result<()> {
        self.run(
            || format!("write {}", name(ty, id)),
            || self.inner.write(ty, id, data.clone()),
        )
        .await
    }

    async fn remove(&self, ty: FileType, id: &Id) -> Result<()> {
        self.run(
            || format!("remove {}", name(ty, id)),
            || self.inner.remove(ty, id),
        )
        .await
    }

    async fn has_config(&self) -> Result<bool> {
        self.run(|| "stat config".into(), || self.inner.has_config())
            .await
    }

    async fn create(&self) -> Result<()> {
        self.run(|| "create".into(), || self.inner.create()).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    /// Fails the first `fail` calls of every kind with `err`.
    #[derive(Debug)]
    struct Flaky {
        fail: u32,
        transient: bool,
        calls: AtomicU32,
    }

    impl Flaky {
        fn hit(&self) -> Result<()> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
                return Err(Error::Backend {
                    op: "test",
                    path: "x".into(),
                    source: "boom".into(),
                    transient: self.transient,
                });
            }
            Ok(())
        }
    }

    #[async_trait]
    impl Backend for Flaky {
        fn location(&self) -> String {
            "flaky".into()
        }
        async fn list(&self, _: FileType) -> Result<Vec<(Id, u64)>> {
            self.hit().map(|()| vec![])
        }
        async fn read(&self, _: FileType, id: &Id, _: Option<Range<u64>>) -> Result<Bytes> {
            self.hit()?;
            Err(Error::NotFound(id.to_hex()))
        }
        async fn write(&self, _: FileType, _: &Id, _: Bytes) -> Result<()> {
            self.hit()
        }
        async fn remove(&self, _: FileType, _: &Id) -> Result<()> {
            self.hit()
        }
        async fn has_config(&self) -> Result<bool> {
            self.hit().map(|()| true)
        }
    }

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        }
    }

    fn flaky(fail: u32, transient: bool) -> Arc<Flaky> {
        Arc::new(Flaky {
            fail,
            transient,
            calls: AtomicU32::new(0),
        })
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let inner = flaky(3, true);
        let r = RetryBackend::new(inner.clone(), fast(5));
        r.write(FileType::Pack, &Id::default(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(inner.calls.load(Ordering::SeqCst), 4);
        assert_eq!(r.retries(), 3);
    }

    #[tokio::test]
    async fn giving_up_returns_a_permanent_error() {
        let inner = flaky(100, true);
        let r = RetryBackend::new(inner.clone(), fast(4));
        let e = r.list(FileType::Index).await.unwrap_err();
        assert!(!e.is_transient());
        assert!(e.to_string().contains("gave up after 4 attempts"), "{e}");
        assert_eq!(inner.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn permanent_errors_and_not_found_are_not_retried() {
        let inner = flaky(100, false);
        let r = RetryBackend::new(inner.clone(), fast(5));
        assert!(r.has_config().await.is_err());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        let inner = flaky(0, true);
        let r = RetryBackend::new(inner.clone(), fast(5));
        let e = r
            .read(FileType::Pack, &Id::default(), None)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NotFound(_)));
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn delays_grow_with_jitter_and_are_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let d1 = p.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.delay(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d9 = p.delay(9);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_secs(1));
            assert!(p.delay(40) <= Duration::from_secs(1));
        }
    }
}
