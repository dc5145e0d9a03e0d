//! Fault injection for tests: a [`Backend`] that makes a share of the requests to
//! `inner` fail the way networks and stores fail, always with *transient* errors:
//!
//! - **error**: the request fails before reaching the store;
//! - **delay**: the request is held for [`FaultConfig::delay`] first (with a shorter
//!   timeout decorator above, a timeout);
//! - **cut write**: a write fails as if the connection dropped mid-upload; the
//!   inner write is not performed, so nothing (in particular nothing partial)
//!   becomes visible, as with an atomic object-store put;
//! - **lost answer**: a write is performed, then reported as failed, as when the
//!   response is lost; the retry must find the object already there.
//!
//! Decisions come from a seeded RNG, so a failing run can be replayed.

use std::{
    ops::Range,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use rand::{rngs::StdRng, Rng, SeedableRng};
use stash_repo_format::{file_type::FileType, Id};

use super::{Backend, ReadBuf};
use crate::error::{Error, Result};

/// Shares of requests to disturb (each 0.0..=1.0, drawn independently).
#[derive(Debug, Clone)]
pub struct FaultConfig {
    /// Requests failing before reaching the store.
    pub error_rate: f64,
    /// Requests delayed by `delay` first.
    pub delay_rate: f64,
    /// How long a delayed request waits.
    pub delay: Duration,
    /// Writes failing without being performed.
    pub cut_write_rate: f64,
    /// Writes performed, then reported as failed.
    pub lost_answer_rate: f64,
    /// Seed of the decisions.
    pub seed: u64,
}

impl Default for FaultConfig {
    /// No faults.
    fn default() -> Self {
        FaultConfig {
            error_rate: 0.0,
            delay_rate: 0.0,
            delay: Duration::ZERO,
            cut_write_rate: 0.0,
            lost_answer_rate: 0.0,
            seed: 0,
        }
    }
}

/// What was injected so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests seen.
    pub requests: u64,
    /// Requests failed before reaching the store.
    pub errors: u64,
    /// Requests delayed.
    pub delays: u64,
    /// Writes cut (not performed).
    pub cut_writes: u64,
    /// Writes performed but reported failed.
    pub lost_answers: u64,
}

impl FaultStats {
    /// Requests that were disturbed in any way.
    pub fn disturbed(&self) -> u64 {
        self.errors + self.delays + self.cut_writes + self.lost_answers
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    delays: AtomicU64,
    cut_writes: AtomicU64,
    lost_answers: AtomicU64,
}

/// A [`Backend`] injecting faults into requests to `inner`.
#[derive(Debug)]
pub struct FaultBackend {
    inner: Arc<dyn Backend>,
    cfg: FaultConfig,
    rng: Mutex<StdRng>,
    n: Counters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Error,
    Cut,
    LostAnswer,
}

fn injected(op: &'static str, path: String, what: &str) -> Error {
    Error::Backend {
        op,
        path,
        source: format!("injected fault: {what}").into(),
        transient: true,
    }
}

impl FaultBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>, cfg: FaultConfig) -> Self {
        FaultBackend {
            inner,
            rng: Mutex::new(StdRng::seed_from_u64(cfg.seed)),
            cfg,
            n: Counters::default(),
        }
    }

    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultStats {
            requests: g(&self.n.requests),
            errors: g(&self.n.errors),
            delays: g(&self.n.delays),
            cut_writes: g(&self.n.cut_writes),
            lost_answers: g(&self.n.lost_answers),
        }
    }

    /// Draws the fate of one request (delays happen here).
    async fn draw(&self, write: bool) -> Fault {
        self.n.requests.fetch_add(1, Ordering::Relaxed);
        let (delay, fault) = {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            let delay = rng.gen_bool(self.cfg.delay_rate.clamp(0.0, 1.0));
            let fault = if rng.gen_bool(self.cfg.error_rate.clamp(0.0, 1.0)) {
                Fault::Error
            } else if write && rng.gen_bool(self.cfg.cut_write_rate.clamp(0.0, 1.0)) {
                Fault::Cut
            } else if write && rng.gen_bool(self.cfg.lost_answer_rate.clamp(0.0, 1.0)) {
                Fault::LostAnswer
            } else {
                Fault::None
            };
            (delay, fault)
        };
        if delay {
            self.n.delays.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.cfg.delay).await;
        }
        match fault {
            Fault::Error => self.n.errors.fetch_add(1, Ordering::Relaxed),
            Fault::Cut => self.n.cut_writes.fetch_add(1, Ordering::Relaxed),
            Fault::LostAnswer => self.n.lost_answers.fetch_add(1, Ordering::Relaxed),
            Fault::None => 0,
        };
        fault
    }
}

#[async_trait]
impl Backend for FaultBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn lists_finished_writes(&self) -> bool {
        self.inner.lists_finished_writes()
    }

    async fn list(&self, ty: FileType) -> Result<Vec<(Id, u64)>> {
        if self.draw(false).await == Fault::Error {
            return Err(injected("list", ty.dir().into(), "error"));
        }
        self.inner.list(ty).await
    }

    async fn read(&self, ty: FileType, id: &Id, range: Option<Range<u64>>) -> Result<Bytes> {
        if self.draw(false).await == Fault::Error {
            return Err(injected("read", ty.path(id), "error"));
        }
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
        if self.draw(false).await == Fault::Error {
            return Err(injected("read", ty.path(id), "error"));
        }
        self.inner.read_into(ty, id, range, buf).await
    }

    async fn write(&self, ty: FileType, id: &Id, data: Bytes) -> Result<()> {
        match self.draw(true).await {
            Fault::Error => Err(injected("write", ty.path(id), "error")),
            Fault::Cut => Err(injected(
                "write",
                ty.path(id),
                "connection cut during upload (nothing stored)",
            )),
            Fault::LostAnswer => {
                self.inner.write(ty, id, data).await?;
                Err(injected(
                    "write",
                    ty.path(id),
                    "answer lost (the object was stored)",
                ))
            }
            Fault::None => self.inner.write(ty, id, data).await,
        }
    }

    async fn remove(&self, ty: FileType, id: &Id) -> Result<()> {
        if self.draw(false).await == Fault::Error {
            return Err(injected("remove", ty.path(id), "error"));
        }
        self.inner.remove(ty, id).await
    }

    async fn has_config(&self) -> Result<bool> {
        if self.draw(false).await == Fault::Error {
            return Err(injected("stat", "config".into(), "error"));
        }
        self.inner.has_config().await
    }

    async fn create(&self) -> Result<()> {
        self.inner.create().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{open_location, RetryBackend, RetryPolicy};

    #[tokio::test]
    async fn faults_are_transient_and_leave_nothing_partial() {
        let store = open_location("memory:fault-unit", false).unwrap();
        let f = Arc::new(FaultBackend::new(
            store.clone(),
            FaultConfig {
                error_rate: 0.2,
                cut_write_rate: 0.2,
                lost_answer_rate: 0.2,
                seed: 7,
                ..FaultConfig::default()
            },
        ));
        let mut ok = 0;
        for i in 0..200u32 {
            let data = Bytes::from(i.to_le_bytes().to_vec());
            let id = Id::hash(&data);
            match f.write(FileType::Snapshot, &id, data.clone()).await {
                Ok(()) => {
                    ok += 1;
                    assert_eq!(
                        store.read(FileType::Snapshot, &id, None).await.unwrap(),
                        data
                    );
                }
                Err(e) => {
                    assert!(e.is_transient(), "{e}");
                    // Cut or failed writes left nothing; lost answers left it whole.
                    match store.read(FileType::Snapshot, &id, None).await {
                        Ok(b) => assert_eq!(b, data),
                        Err(e) => assert!(matches!(e, Error::NotFound(_)), "{e}"),
                    }
                }
            }
        }
        let s = f.stats();
        assert_eq!(s.requests, 200);
        assert!(
            s.errors > 20 && s.cut_writes > 10 && s.lost_answers > 10,
            "{s:?}"
        );
        assert_eq!(ok, 200 - s.errors - s.cut_writes - s.lost_answers);
        // Under a retry decorator every write lands.
        let r = RetryBackend::new(
            f.clone(),
            RetryPolicy {
                max_attempts: 30,
                base_delay: Duration::from_micros(10),
                max_delay: Duration::from_micros(100),
            },
        );
        for i in 1000..1100u32 {
            let data = Bytes::from(i.to_le_bytes().to_vec());
            let id = Id::hash(&data);
            r.write(FileType::Snapshot, &id, data.clone())
                .await
                .unwrap();
            assert_eq!(r.read(FileType::Snapshot, &id, None).await.unwrap(), data);
        }
    }
}
