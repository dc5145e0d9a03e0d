//! Repository locks, following restic's protocol: a lock is an encrypted file in
//! `locks/`; an exclusive lock conflicts with every other lock, a shared one only with
//! exclusive locks. Held locks are refreshed every 5 minutes (a new file, then the old
//! one deleted) and removed when the guard is released, also on Ctrl-C through
//! [`release_all`].
//!
//! Stale locks (not refreshed for 30 minutes, or held by a process of this host that
//! no longer exists) do not block us: they are removed, and the removal is reported.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, OnceLock, PoisonError,
    },
    time::Duration,
};

use stash_repo_format::{file_type::FileType, gotime::GoTime, lock::Lock, Id};
use tokio::task::JoinHandle;

use super::{
    open::{hostname, username},
    Repository,
};
use crate::error::{Error, Result};

const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// restic re-checks for a conflicting lock this long after writing its own, for
/// stores whose listings lag behind writes; where a listing shows every finished
/// write ([`crate::backend::Backend::lists_finished_writes`]) the re-check runs at
/// once: of two processes that each write their lock and then list, the one that
/// lists last sees the other's lock.
const RECHECK_AFTER: Duration = Duration::from_millis(200);

type Held = (Repository, Arc<Mutex<Id>>);

fn registry() -> &'static Mutex<Vec<Held>> {
    static R: OnceLock<Mutex<Vec<Held>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// A held lock. Call [`LockGuard::release`] when done; [`release_all`] covers
/// interrupted runs.
///
/// A lock from [`Repository::lock_unconfirmed`] is written but its re-check for
/// conflicting locks is still running: work may proceed, but nothing may be
/// committed (snapshot, index, deletions, restored files) before
/// [`LockGuard::confirm`] succeeds.
#[derive(Debug)]
pub struct LockGuard {
    repo: Repository,
    current: Arc<Mutex<Id>>,
    refresher: JoinHandle<()>,
    recheck: Option<JoinHandle<Result<()>>>,
    confirmed: Arc<AtomicBool>,
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn new_lock(exclusive: bool) -> Lock {
    Lock {
        time: GoTime::now(),
        exclusive,
        hostname: hostname(),
        username: username(),
        pid: std::process::id(),
        uid: current_uid(),
        gid: current_gid(),
    }
}

fn current_uid() -> u32 {
    proc_status_field("Uid:")
}

fn current_gid() -> u32 {
    proc_status_field("Gid:")
}

fn proc_status_field(name: &str) -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Describes a lock for messages.
pub fn describe(id: &Id, l: &Lock) -> String {
    format!(
        "{} lock {} by PID {} on {} by {} created at {}",
        if l.exclusive { "exclusive" } else { "shared" },
        id.short(),
        l.pid,
        l.hostname,
        l.username,
        l.time
    )
}

impl Repository {
    /// All readable lock files (zero-byte files are skipped, as restic does).
    ///
    /// # Errors
    /// Backend errors; an unreadable lock file is an error naming it.
    pub async fn list_locks(&self) -> Result<Vec<(Id, Lock)>> {
        let mut out = Vec::new();
        for (id, size) in self.backend().list(FileType::Lock).await? {
            if size == 0 {
                continue;
            }
            match self.load_json::<Lock>(FileType::Lock, &id).await {
                Ok(l) => out.push((id, l)),
                // Deleted between list and read: its holder released it.
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn check_conflicts(&self, exclusive: bool, own: Option<&Id>) -> Result<()> {
        let now = GoTime::now();
        let host = hostname();
        for (id, l) in self.list_locks().await? {
            if Some(&id) == own {
                continue;
            }
            if l.is_stale(&now, &host, pid_alive) {
                eprintln!("removing stale {}", describe(&id, &l));
                self.backend().remove(FileType::Lock, &id).await?;
                continue;
            }
            if exclusive || l.exclusive {
                return Err(Error::Locked(describe(&id, &l)));
            }
        }
        Ok(())
    }

    /// Takes a lock, shared or exclusive: writes the lock file, waits as restic does
    /// for concurrent writers' files to show, and checks again for conflicts.
    ///
    /// # Errors
    /// [`Error::Locked`] naming a conflicting live lock; backend errors.
    pub async fn lock(&self, exclusive: bool) -> Result<LockGuard> {
        let mut guard = self.lock_unconfirmed(exclusive).await?;
        if let Err(e) = guard.confirm().await {
            let _ = guard.release().await;
            return Err(e);
        }
        Ok(guard)
    }

    /// As [`Repository::lock`], but returns once the lock file is written; the
    /// re-check runs in the background so the caller's reading can overlap restic's
    /// 200 ms wait. See [`LockGuard`] for what must wait for the confirmation.
    ///
    /// # Errors
    /// [`Error::Locked`] for a conflict visible before writing; backend errors.
    pub async fn lock_unconfirmed(&self, exclusive: bool) -> Result<LockGuard> {
        self.check_conflicts(exclusive, None).await?;
        let id = self.save_json(FileType::Lock, &new_lock(exclusive)).await?;
        // Registered at once, so an interruption from here on removes the file.
        let current = Arc::new(Mutex::new(id));
        registry()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((self.clone(), current.clone()));
        let confirmed = Arc::new(AtomicBool::new(false));
        let (repo, flag) = (self.clone(), confirmed.clone());
        let wait = if self.backend().lists_finished_writes() {
            Duration::ZERO
        } else {
            RECHECK_AFTER
        };
        let recheck = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            repo.check_conflicts(exclusive, Some(&id)).await?;
            flag.store(true, Ordering::Release);
            Ok(())
        });
        let refresher = tokio::spawn(refresh_loop(self.clone(), current.clone(), exclusive));
        Ok(LockGuard {
            repo: self.clone(),
            current,
            refresher,
            recheck: Some(recheck),
            confirmed,
        })
    }
}

async fn refresh_loop(repo: Repository, current: Arc<Mutex<Id>>, exclusive: bool) {
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        match repo.save_json(FileType::Lock, &new_lock(exclusive)).await {
            Ok(new) => {
                let old = std::mem::replace(
                    &mut *current.lock().unwrap_or_else(PoisonError::into_inner),
                    new,
                );
                if let Err(e) = repo.backend().remove(FileType::Lock, &old).await {
                    tracing::warn!("removing old lock {}: {e}", old.short());
                }
            }
            Err(e) => tracing::warn!("refreshing lock: {e}"),
        }
    }
}

impl LockGuard {
    /// Waits for the re-check for conflicting locks (at once if it already
    /// succeeded).
    ///
    /// # Errors
    /// [`Error::Locked`] naming the conflicting lock, or a backend error; the lock
    /// is then not held and the caller should [`LockGuard::release`] its file.
    pub async fn confirm(&mut self) -> Result<()> {
        if let Some(h) = self.recheck.take() {
            h.await
                .map_err(|e| Error::Usage(format!("lock check task: {e}")))??;
        }
        if self.confirmed.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::Usage("lock re-check failed earlier".into()))
        }
    }

    /// True once the re-check has succeeded: shared with writers that must not
    /// commit before (the blob saver's index writes).
    pub fn confirmed_flag(&self) -> Arc<AtomicBool> {
        self.confirmed.clone()
    }

    /// Stops refreshing and deletes the lock file.
    ///
    /// # Errors
    /// Backend errors while deleting.
    pub async fn release(self) -> Result<()> {
        self.refresher.abort();
        if let Some(h) = &self.recheck {
            h.abort();
        }
        let id = *self.current.lock().unwrap_or_else(PoisonError::into_inner);
        registry()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(_, c)| !Arc::ptr_eq(c, &self.current));
        self.repo.backend().remove(FileType::Lock, &id).await
    }
}

/// Deletes every lock this process holds; for Ctrl-C and fatal errors.
pub async fn release_all() {
    let held: Vec<Held> =
        std::mem::take(&mut *registry().lock().unwrap_or_else(PoisonError::into_inner));
    for (repo, cur) in held {
        let id = *cur.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = repo.backend().remove(FileType::Lock, &id).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use stash_repo_format::{blob::BlobType, index::IndexLookup};

    use super::*;
    use crate::repository::{lagging_memory_repo, memory_repo, BlobSaver};

    /// An exclusive lock appearing between our write and the re-check (on a store
    /// whose listings may lag, so the re-check waits): the lock is refused, and a
    /// saver gated on it stores packs but indexes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conflict_found_by_the_recheck_blocks_commits() {
        let repo = lagging_memory_repo("lock-recheck-conflict").await;
        let mut lock = repo.lock_unconfirmed(false).await.unwrap();
        let saver = BlobSaver::gated(
            &repo,
            Arc::new(IndexLookup::default()),
            1 << 20,
            lock.confirmed_flag(),
        );
        let s2 = saver.clone();
        tokio::task::spawn_blocking(move || s2.save(BlobType::Data, b"blob").unwrap())
            .await
            .unwrap();
        repo.save_json(FileType::Lock, &new_lock(true))
            .await
            .unwrap();
        let err = lock.confirm().await.unwrap_err();
        assert!(matches!(err, Error::Locked(_)), "{err}");
        assert!(!lock.confirmed_flag().load(Ordering::Acquire));
        let (_, index_files) = saver.finish().await.unwrap();
        assert!(index_files.is_empty());
        assert!(repo.index_ids().await.unwrap().is_empty());
        assert_eq!(repo.backend().list(FileType::Pack).await.unwrap().len(), 1);
        lock.release().await.unwrap();
        assert_eq!(
            repo.list_locks().await.unwrap().len(),
            1,
            "only the other lock"
        );
    }

    /// On a store that lists every finished write the re-check does not wait, and
    /// of two exclusive lockers racing at most one gets the lock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn consistent_listing_confirms_at_once_and_racers_exclude_each_other() {
        let repo = memory_repo("lock-no-wait").await;
        let t0 = std::time::Instant::now();
        let lock = repo.lock(true).await.unwrap();
        assert!(t0.elapsed() < RECHECK_AFTER, "{:?}", t0.elapsed());
        lock.release().await.unwrap();
        for _ in 0..20 {
            let (a, b) = tokio::join!(repo.lock(true), repo.lock(true));
            assert!(a.is_err() || b.is_err(), "both racers got the lock");
            for l in [a, b].into_iter().flatten() {
                l.release().await.unwrap();
            }
            assert!(repo.list_locks().await.unwrap().is_empty());
        }
    }

    /// On a store whose listings lag, the re-check waits [`RECHECK_AFTER`], so the
    /// flag is still down when `lock_unconfirmed` returns (on one that lists every
    /// finished write, the re-check may already be done by then).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn confirmed_lock_opens_the_gate() {
        let repo = lagging_memory_repo("lock-recheck-ok").await;
        let mut lock = repo.lock_unconfirmed(true).await.unwrap();
        assert!(!lock.confirmed_flag().load(Ordering::Acquire));
        lock.confirm().await.unwrap();
        lock.confirm().await.unwrap();
        assert!(lock.confirmed_flag().load(Ordering::Acquire));
        lock.release().await.unwrap();
        assert!(repo.list_locks().await.unwrap().is_empty());
    }
}
