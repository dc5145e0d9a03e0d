//! Repository locks, following restic's protocol: a lock is an encrypted file in
//! `locks/`; an exclusive lock conflicts with every other lock, a shared one only with
//! exclusive locks. Held locks are refreshed every 5 minutes (a new file, then the old
//! one deleted) and removed when the guard is released, also on a signal or a fatal
//! error through [`release_all`].
//!
//! A lock that cannot be refreshed for [`REFRESH_GIVE_UP`] is given up before anyone
//! could take it for stale: [`lost`] resolves and the command must end (restic 0.16+
//! does the same), so a prune elsewhere cannot delete what we are still writing.
//!
//! Stale locks (see [`Lock::is_stale`]) do not block us, but taking a lock never
//! deletes another process's file: that is `unlock`'s job.
//!
//! Every write of a lock file happens under the lock's slot mutex, so a release (also
//! one on a signal) waits for a write in flight and no lock file outlives the process.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, OnceLock, PoisonError,
    },
    time::{Duration, SystemTime},
};

use stash_repo_format::{
    file_type::FileType,
    gotime::GoTime,
    lock::{Here, Lock, REFRESH_GIVE_UP, REFRESH_INTERVAL},
    Id,
};
use tokio::{sync::watch, task::JoinHandle};

use super::{
    open::{hostname, username},
    Repository,
};
use crate::error::{Error, Result};

/// restic re-checks for a conflicting lock this long after writing its own, for
/// stores whose listings lag behind writes; where a listing shows every finished
/// write ([`crate::backend::Backend::lists_finished_writes`]) the re-check runs at
/// once: of two processes that each write their lock and then list, the one that
/// lists last sees the other's lock.
const RECHECK_AFTER: Duration = Duration::from_millis(200);

/// How long a release waits for a lock write in flight before giving up on it.
const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// Test hook: refresh every this many milliseconds and give up after 4.5 times that
/// (restic's ratio: 22.5 of 5 minutes), so tests need not wait 22 minutes.
const TEST_REFRESH_ENV: &str = "STASH_TEST_LOCK_REFRESH_MS";

/// The current file of one held lock; `None` once released. Locked across every
/// write of a lock file.
type Slot = Arc<tokio::sync::Mutex<Option<Id>>>;

fn registry() -> &'static Mutex<Vec<(Repository, Slot)>> {
    static R: OnceLock<Mutex<Vec<(Repository, Slot)>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn unregister(slot: &Slot) {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|(_, s)| !Arc::ptr_eq(s, slot));
}

fn lost_channel() -> &'static watch::Sender<Option<String>> {
    static L: OnceLock<watch::Sender<Option<String>>> = OnceLock::new();
    L.get_or_init(|| watch::channel(None).0)
}

/// Resolves with a message once a held lock could not be refreshed in time; the
/// command must then stop and [`release_all`].
pub async fn lost() -> String {
    let mut rx = lost_channel().subscribe();
    let msg = match rx.wait_for(Option::is_some).await {
        Ok(msg) => msg.clone(),
        Err(_) => None,
    };
    match msg {
        Some(msg) => msg,
        None => std::future::pending().await,
    }
}

#[derive(Clone, Copy, Debug)]
struct Timings {
    refresh: Duration,
    give_up: Duration,
}

impl Timings {
    fn get() -> Self {
        match std::env::var(TEST_REFRESH_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            Some(ms) => {
                let refresh = Duration::from_millis(ms.max(1));
                Timings {
                    refresh,
                    give_up: refresh * 9 / 2,
                }
            }
            None => Timings {
                refresh: REFRESH_INTERVAL,
                give_up: REFRESH_GIVE_UP,
            },
        }
    }
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
    slot: Slot,
    refresher: JoinHandle<()>,
    recheck: Option<JoinHandle<Result<()>>>,
    confirmed: Arc<AtomicBool>,
}

/// Whether a process with this PID exists in our PID namespace.
pub fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// This process's boot id and PID-namespace inode: equal for two processes exactly
/// when their PIDs can be compared. `None` where /proc does not tell.
pub fn pid_namespace() -> Option<&'static str> {
    static NS: OnceLock<Option<String>> = OnceLock::new();
    NS.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
        let inode = link.to_str()?.strip_prefix("pid:[")?.strip_suffix(']')?;
        Some(format!("{}/{inode}", boot.trim()))
    })
    .as_deref()
}

fn container_slot() -> &'static OnceLock<String> {
    static SLOT: OnceLock<String> = OnceLock::new();
    &SLOT
}

/// Declares that this process runs in a slot of which at most one process runs at a
/// time (a pod UID and container name: the kubelet never runs two instances of one
/// container). Its locks carry the slot, and a lock of the same slot left by another
/// process is known dead even across PID namespaces, as after a container restart.
/// Only the first call counts; call it before taking any lock.
pub fn set_container(slot: String) {
    let _ = container_slot().set(slot);
}

/// Who is asking, for [`Lock::is_stale`] and friends.
pub fn here(host: &str) -> Here<'_> {
    Here {
        hostname: host,
        pid_namespace: pid_namespace(),
        pid: std::process::id(),
        container: container_slot().get().map(String::as_str),
    }
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
        pid_namespace: pid_namespace().map(str::to_owned),
        container: container_slot().get().cloned(),
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

    /// Removes the locks whose holders are provably dead ([`Lock::holder_is_dead`]):
    /// what a restarted container left behind. Locks merely old or looking dead stay
    /// for `unlock`. Returns a description of each removed lock.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn remove_dead_locks(&self) -> Result<Vec<String>> {
        let host = hostname();
        self.remove_locks_dead_to(&here(&host)).await
    }

    async fn remove_locks_dead_to(&self, here: &Here<'_>) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for (id, l) in self.list_locks().await? {
            if l.holder_is_dead(here, pid_alive) {
                match self.backend().remove(FileType::Lock, &id).await {
                    Ok(()) | Err(Error::NotFound(_)) => removed.push(describe(&id, &l)),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }

    /// Fails on a live lock that conflicts with the one wanted; stale locks are
    /// skipped (and reported once, when `own` is `None`), never deleted.
    async fn check_conflicts(&self, exclusive: bool, own: Option<&Id>) -> Result<()> {
        let now = GoTime::now();
        let host = hostname();
        let here = here(&host);
        for (id, l) in self.list_locks().await? {
            if Some(&id) == own {
                continue;
            }
            if l.is_stale(&now, &here, pid_alive) {
                if own.is_none() {
                    eprintln!(
                        "ignoring stale {} (`stash unlock` removes it)",
                        describe(&id, &l)
                    );
                }
                continue;
            }
            if l.conflicts(exclusive) {
                let mut msg = describe(&id, &l);
                if l.looks_dead(&here, pid_alive) {
                    msg.push_str(
                        "; its PID is not running here, but it may be in another PID \
                         namespace of this host (another container); if no such process \
                         is left, `stash unlock` removes the lock",
                    );
                }
                return Err(Error::Locked(msg));
            }
        }
        Ok(())
    }

    /// Checks for conflicting locks, and while there are some and the repository's
    /// [`Repository::lock_retry`] allows, waits and looks again (1 s, doubling up to
    /// a minute, as restic's `--retry-lock`).
    async fn wait_for_conflicts(&self, exclusive: bool) -> Result<()> {
        let deadline = std::time::Instant::now() + self.lock_retry();
        let mut pause = std::time::Duration::from_secs(1);
        let mut told = false;
        loop {
            match self.check_conflicts(exclusive, None).await {
                Err(Error::Locked(msg)) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(Error::Locked(msg));
                    }
                    if !told {
                        eprintln!(
                            "repository is already locked, waiting up to {:?} for the lock",
                            self.lock_retry()
                        );
                        told = true;
                    }
                    tokio::time::sleep(pause.min(left)).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(60));
                }
                other => return other,
            }
        }
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
        self.wait_for_conflicts(exclusive).await?;
        // Registered before the write, which runs in its own task holding the slot:
        // if the command is interrupted while the file is being written, the
        // release waits for the write and then deletes the file.
        let slot: Slot = Arc::default();
        let writing = slot.clone().lock_owned().await;
        registry()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((self.clone(), slot.clone()));
        let repo = self.clone();
        let write = tokio::spawn(async move {
            let mut writing = writing;
            let id = repo.save_json(FileType::Lock, &new_lock(exclusive)).await?;
            *writing = Some(id);
            Ok::<_, Error>(id)
        });
        let id = match write.await {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => {
                unregister(&slot);
                return Err(e);
            }
            Err(e) => {
                unregister(&slot);
                return Err(Error::Usage(format!("lock write task: {e}")));
            }
        };
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
        let refresher = tokio::spawn(refresh_loop(
            self.clone(),
            slot.clone(),
            exclusive,
            Timings::get(),
        ));
        Ok(LockGuard {
            repo: self.clone(),
            slot,
            refresher,
            recheck: Some(recheck),
            confirmed,
        })
    }
}

/// Time since `since`, by the monotonic clock or the wall clock, whichever says
/// more: the wall clock also counts a machine's sleep, which others' view of our
/// lock's age includes.
fn elapsed(since: (tokio::time::Instant, SystemTime)) -> Duration {
    let wall = SystemTime::now()
        .duration_since(since.1)
        .unwrap_or(Duration::ZERO);
    since.0.elapsed().max(wall)
}

/// Writes a fresh lock file and deletes the previous one, every `t.refresh`; after a
/// failure it retries every tenth of that. Without success for `t.give_up` it
/// reports the lock [`lost`] and stops.
async fn refresh_loop(repo: Repository, slot: Slot, exclusive: bool, t: Timings) {
    let mut last_ok = (tokio::time::Instant::now(), SystemTime::now());
    let mut last_err: Option<String> = None;
    loop {
        let pause = if last_err.is_some() {
            t.refresh / 10
        } else {
            t.refresh
        };
        let left = t.give_up.saturating_sub(elapsed(last_ok));
        tokio::time::sleep(pause.min(left)).await;
        let left = t.give_up.saturating_sub(elapsed(last_ok));
        if !left.is_zero() {
            match tokio::time::timeout(left, refresh_once(&repo, &slot, exclusive)).await {
                Ok(Ok(true)) => {
                    last_ok = (tokio::time::Instant::now(), SystemTime::now());
                    last_err = None;
                    continue;
                }
                Ok(Ok(false)) => return,
                Ok(Err(e)) => {
                    tracing::warn!("refreshing lock: {e}");
                    last_err = Some(e.to_string());
                }
                Err(_) => last_err = Some("the store did not answer".into()),
            }
        }
        if elapsed(last_ok) >= t.give_up {
            let id = slot.lock().await.as_ref().map(Id::short);
            let Some(id) = id else { return };
            let msg = format!(
                "lock {id} could not be refreshed for {:?} ({}): stopping before \
                 other processes may take it for stale",
                t.give_up,
                last_err.as_deref().unwrap_or("no attempt finished"),
            );
            lost_channel().send_replace(Some(msg));
            return;
        }
    }
}

/// One refresh; `Ok(false)` if the lock has been released meanwhile.
async fn refresh_once(repo: &Repository, slot: &Slot, exclusive: bool) -> Result<bool> {
    let mut current = slot.lock().await;
    let Some(old) = *current else {
        return Ok(false);
    };
    let new = repo.save_json(FileType::Lock, &new_lock(exclusive)).await?;
    *current = Some(new);
    if let Err(e) = repo.backend().remove(FileType::Lock, &old).await {
        tracing::warn!("removing old lock {}: {e}", old.short());
    }
    Ok(true)
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

    /// Stops refreshing and deletes the lock file (after a refresh in flight).
    ///
    /// # Errors
    /// Backend errors while deleting.
    pub async fn release(self) -> Result<()> {
        if let Some(h) = &self.recheck {
            h.abort();
        }
        let id = self.slot.lock().await.take();
        self.refresher.abort();
        unregister(&self.slot);
        match id {
            Some(id) => self.repo.backend().remove(FileType::Lock, &id).await,
            None => Ok(()),
        }
    }
}

/// Deletes every lock this process holds, each after its write in flight; for
/// signals, fatal errors and lost locks.
pub async fn release_all() {
    let held = std::mem::take(&mut *registry().lock().unwrap_or_else(PoisonError::into_inner));
    for (repo, slot) in held {
        let Ok(mut current) = tokio::time::timeout(RELEASE_WAIT, slot.lock()).await else {
            continue;
        };
        if let Some(id) = current.take() {
            let _ = repo.backend().remove(FileType::Lock, &id).await;
        }
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

    /// A restarted container finds its predecessor's lock (its slot, another PID
    /// namespace) and removes it; another container's live-looking lock and a lock of
    /// its own process stay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_provably_dead_locks_are_removed() {
        let slot = "pod-uid/stash";
        let host = hostname();
        let here = Here {
            container: Some(slot),
            ..here(&host)
        };
        let repo = memory_repo("lock-dead-slot").await;
        let mut ours = new_lock(false);
        ours.container = Some(slot.into());
        let mut before_restart = ours.clone();
        before_restart.pid_namespace = Some("boot/old-container".into());
        let mut next_container = before_restart.clone();
        next_container.container = Some("pod-uid/stash-init".into());
        for l in [&ours, &before_restart, &next_container] {
            repo.save_json(FileType::Lock, l).await.unwrap();
        }
        let removed = repo.remove_locks_dead_to(&here).await.unwrap();
        assert_eq!(removed.len(), 1, "{removed:?}");
        let left: Vec<Lock> = repo
            .list_locks()
            .await
            .unwrap()
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&ours));
        assert!(left.contains(&next_container));
        assert!(!left.contains(&before_restart));
    }

    /// A store that stops answering lock writes once `stalled` is set.
    #[derive(Debug)]
    struct Stalling {
        inner: Arc<dyn crate::backend::Backend>,
        stalled: AtomicBool,
    }

    #[async_trait::async_trait]
    impl crate::backend::Backend for Stalling {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn lists_finished_writes(&self) -> bool {
            true
        }
        async fn list(&self, ty: FileType) -> Result<Vec<(Id, u64)>> {
            self.inner.list(ty).await
        }
        async fn read(
            &self,
            ty: FileType,
            id: &Id,
            range: Option<std::ops::Range<u64>>,
        ) -> Result<bytes::Bytes> {
            self.inner.read(ty, id, range).await
        }
        async fn write(&self, ty: FileType, id: &Id, data: bytes::Bytes) -> Result<()> {
            if ty == FileType::Lock && self.stalled.load(Ordering::Acquire) {
                std::future::pending::<()>().await;
            }
            self.inner.write(ty, id, data).await
        }
        async fn remove(&self, ty: FileType, id: &Id) -> Result<()> {
            self.inner.remove(ty, id).await
        }
        async fn has_config(&self) -> Result<bool> {
            self.inner.has_config().await
        }
    }

    /// A store that hangs on every refresh (no error, no answer): the lock is given up
    /// after the give-up time, naming the cause, instead of being held on faith.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_that_stops_answering_refreshes_loses_the_lock() {
        let inner = crate::backend::open_location("memory:lock-stalled-refresh", false).unwrap();
        let store = Arc::new(Stalling {
            inner,
            stalled: AtomicBool::new(false),
        });
        let repo = crate::repository::repo_on(store.clone()).await;
        let lock = repo.lock(false).await.unwrap();
        store.stalled.store(true, Ordering::Release);
        let t = Timings {
            refresh: Duration::from_millis(50),
            give_up: Duration::from_millis(225),
        };
        let started = std::time::Instant::now();
        let refresher = tokio::spawn(refresh_loop(repo.clone(), lock.slot.clone(), false, t));
        let msg = tokio::time::timeout(Duration::from_secs(10), lost())
            .await
            .expect("the lock given up in time");
        assert!(
            msg.contains("could not be refreshed") && msg.contains("the store did not answer"),
            "{msg}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        refresher.await.unwrap();
        store.stalled.store(false, Ordering::Release);
        lock.release().await.unwrap();
    }
}
