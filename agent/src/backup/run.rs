//! One backup from start to snapshot: lock, index, parent, scan, save files, save
//! trees, flush packs and index, write the snapshot, unlock.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Instant,
};

use stash_chunker::ChunkerKind;
use stash_repo_format::{
    blob::BlobType,
    file_type::FileType,
    gotime::GoTime,
    index::IndexLookup,
    node::{Node, NodeType},
    snapshot::{Snapshot, SnapshotSummary},
    tree::Tree,
    Id,
};

use super::{
    file_saver::{save_stream, with_savers},
    parent_trees::ParentTrees,
    reject::Rejects,
    scan::{apply_results, Scanner},
    tree_saver::save_tree,
    Counters, Summary,
};
use crate::{
    error::{Error, Result},
    repository::{
        files::SnapshotFilter,
        lock::LockGuard,
        open::{hostname, username},
        BlobSaver, Repository,
    },
};

/// What to back up and how to label it.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Files and directories.
    pub targets: Vec<PathBuf>,
    /// Snapshot host name (default: this host).
    pub host: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Snapshot time (default: now).
    pub time: Option<GoTime>,
    /// Exclude patterns (recorded in the snapshot, as restic does).
    pub excludes: Vec<String>,
    /// Exclude patterns that ignore case.
    pub iexcludes: Vec<String>,
    /// Leave out files larger than this many bytes.
    pub exclude_larger_than: Option<u64>,
    /// Leave out directories holding one of these files (`name` or `name:header`).
    pub exclude_if_present: Vec<String>,
    /// Read every file even if unchanged since the parent.
    pub force: bool,
    /// Explicit parent snapshot (default: latest with the same host and paths).
    pub parent: Option<String>,
    /// Pack size in bytes (default 16 MiB).
    pub pack_size: Option<usize>,
    /// Stay on each target's file system: entries on another device are left out,
    /// a mount point is kept as an empty directory (restic's `-x`).
    pub one_file_system: bool,
    /// Store each node's real access time instead of its modification time.
    pub with_atime: bool,
    /// Write no snapshot when the tree equals the parent snapshot's.
    pub skip_if_unchanged: bool,
    /// Files read at once (default: one per core).
    pub read_concurrency: Option<usize>,
}

/// The outcome of a backup.
#[derive(Debug, Clone)]
pub struct BackupResult {
    /// The new snapshot's id.
    pub snapshot_id: Id,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// The parent used, if any.
    pub parent: Option<Id>,
    /// Statistics.
    pub summary: Summary,
    /// Whether no snapshot was written because nothing changed since the parent
    /// (`skip_if_unchanged`); `snapshot_id` is then the parent's.
    pub skipped: bool,
}

fn summary_of(
    c: &Counters,
    stats: crate::repository::blob_saver::SaverStats,
    started: Instant,
) -> Summary {
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Summary {
        files_new: g(&c.files_new),
        files_changed: g(&c.files_changed),
        files_unmodified: g(&c.files_unmodified),
        dirs_new: g(&c.dirs_new),
        dirs_changed: g(&c.dirs_changed),
        dirs_unmodified: g(&c.dirs_unmodified),
        data_blobs: stats.data_blobs,
        tree_blobs: stats.tree_blobs,
        data_added: stats.data_added,
        data_added_packed: stats.data_added_packed,
        total_files_processed: g(&c.files),
        total_bytes_processed: g(&c.bytes_done),
        total_duration: started.elapsed().as_secs_f64(),
        errors: g(&c.errors),
    }
}

fn new_snapshot(
    opts: &BackupOptions,
    paths: Vec<String>,
    tree: Id,
    parent: Option<Id>,
) -> Snapshot {
    let time = opts.time.unwrap_or_else(GoTime::now);
    let host = opts.host.clone().unwrap_or_else(hostname);
    let mut s = owned_snapshot(time, tree, paths, host);
    s.parent = parent;
    s.tags = opts.tags.clone();
    s.excludes = opts.excludes.clone();
    s
}

/// A snapshot of `tree` made by this process: its host, user, uid, gid and program.
pub(crate) fn owned_snapshot(time: GoTime, tree: Id, paths: Vec<String>, host: String) -> Snapshot {
    let mut s = Snapshot::new(time, tree, paths);
    s.hostname = host;
    s.username = username();
    s.uid = proc_id("Uid:");
    s.gid = proc_id("Gid:");
    s.program_version = format!("stash {}", env!("CARGO_PKG_VERSION"));
    s
}

fn proc_id(field: &str) -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn store_summary(s: &mut Snapshot, sum: &Summary, start: GoTime) {
    s.summary = Some(SnapshotSummary {
        backup_start: start,
        backup_end: GoTime::now(),
        files_new: sum.files_new,
        files_changed: sum.files_changed,
        files_unmodified: sum.files_unmodified,
        dirs_new: sum.dirs_new,
        dirs_changed: sum.dirs_changed,
        dirs_unmodified: sum.dirs_unmodified,
        data_blobs: sum.data_blobs as i64,
        tree_blobs: sum.tree_blobs as i64,
        data_added: sum.data_added,
        data_added_packed: sum.data_added_packed,
        total_files_processed: sum.total_files_processed,
        total_bytes_processed: sum.total_bytes_processed,
    });
}

/// Backs up files and directories into a new snapshot.
///
/// # Errors
/// Lock conflicts, backend failures, or targets that do not exist.
pub async fn backup(
    repo: &Repository,
    opts: &BackupOptions,
    counters: Arc<Counters>,
) -> Result<BackupResult> {
    if opts.targets.is_empty() {
        return Err(Error::Usage(
            "nothing to back up: give at least one path".into(),
        ));
    }
    for t in &opts.targets {
        std::fs::symlink_metadata(t).map_err(|e| Error::io(t, e))?;
    }
    let rejects = Rejects::new(
        &opts.excludes,
        &opts.iexcludes,
        opts.exclude_larger_than,
        &opts.exclude_if_present,
    )?;
    let mut lock = repo.lock_unconfirmed(false).await?;
    let res = run(repo, opts, counters, rejects, &mut lock).await;
    let unlocked = lock.release().await;
    let r = res?;
    unlocked?;
    Ok(r)
}

/// What every backup starts from: the index, the parent snapshot, the chunker
/// and a saver whose index writes wait for `lock`'s confirmation.
struct Setup {
    index: Arc<IndexLookup>,
    parent: Option<(Id, Snapshot)>,
    kind: ChunkerKind,
    saver: BlobSaver,
}

async fn setup(
    repo: &Repository,
    opts: &BackupOptions,
    paths: &[String],
    lock: &LockGuard,
) -> Result<Setup> {
    let index = Arc::new(repo.load_index().await?);
    let parent = find_parent(repo, opts, paths).await?;
    let kind = repo
        .config()
        .chunker_kind()
        .map_err(|e| Error::damaged(FileType::Config, "config", e))?;
    let saver = BlobSaver::gated(
        repo,
        index.clone(),
        opts.pack_size.unwrap_or(repo.pack_size()),
        lock.confirmed_flag(),
    );
    Ok(Setup {
        index,
        parent,
        kind,
        saver,
    })
}

async fn find_parent(
    repo: &Repository,
    opts: &BackupOptions,
    paths: &[String],
) -> Result<Option<(Id, Snapshot)>> {
    if let Some(p) = &opts.parent {
        return Ok(Some(
            repo.find_snapshot(p, &SnapshotFilter::default()).await?,
        ));
    }
    let host = opts.host.clone().unwrap_or_else(hostname);
    let mut sorted = paths.to_vec();
    sorted.sort();
    let all = repo.snapshots().await?;
    Ok(all.into_iter().rev().find(|(_, s)| {
        let mut sp = s.paths.clone();
        sp.sort();
        s.hostname == host && sp == sorted
    }))
}

async fn run(
    repo: &Repository,
    opts: &BackupOptions,
    counters: Arc<Counters>,
    rejects: Rejects,
    lock: &mut LockGuard,
) -> Result<BackupResult> {
    let started = Instant::now();
    let start_time = GoTime::now();
    let mut paths: Vec<String> = opts
        .targets
        .iter()
        .map(|t| {
            std::path::absolute(t)
                .map(|p| clean(&p))
                .unwrap_or_else(|_| t.display().to_string())
        })
        .collect();
    paths.sort();
    let Setup {
        index,
        parent,
        kind,
        saver,
    } = setup(repo, opts, &paths, lock).await?;
    let trees = ParentTrees::new(repo, &index, &tokio::runtime::Handle::current());
    let (saver2, c2, opts2) = (saver.clone(), counters.clone(), opts.clone());
    let parent_tree = parent.as_ref().and_then(|(_, s)| s.tree);
    let root = tokio::task::spawn_blocking(move || -> Result<Id> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let readers = opts2.read_concurrency.unwrap_or(workers);
        // The walk blocks (file queue, parent trees): give it threads of its own.
        let walkers = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("scan-{i}"))
            .build()
            .map_err(|e| Error::Usage(format!("scan threads: {e}")))?;
        let ((mut root, fold_error), mut results) =
            with_savers(readers, &saver2, &kind, &c2, |jobs, results| {
                let scanner = Scanner {
                    results,
                    saver: &saver2,
                    trees: &trees,
                    rejects: &rejects,
                    force: opts2.force,
                    one_file_system: opts2.one_file_system,
                    with_atime: opts2.with_atime,
                    counters: &c2,
                    jobs,
                    next_slot: AtomicUsize::new(0),
                    fold_error: Mutex::default(),
                };
                let root = walkers.install(|| scanner.scan(&opts2.targets, parent_tree));
                let folded = scanner.fold_error.into_inner();
                (root, folded.unwrap_or_else(PoisonError::into_inner))
            })?;
        if let Some(e) = fold_error {
            return Err(e);
        }
        apply_results(&mut root, &mut results);
        save_tree(root, &saver2, &c2)
    })
    .await
    .map_err(|e| Error::Usage(format!("backup task: {e}")));
    finish(Finish {
        repo,
        opts,
        saver: &saver,
        lock,
        root,
        counters: &counters,
        paths,
        parent,
        started,
        start_time,
    })
    .await
}

/// What the last step of a backup needs.
struct Finish<'a> {
    repo: &'a Repository,
    opts: &'a BackupOptions,
    saver: &'a BlobSaver,
    lock: &'a mut LockGuard,
    root: Result<Result<Id>>,
    counters: &'a Counters,
    paths: Vec<String>,
    parent: Option<(Id, Snapshot)>,
    started: Instant,
    start_time: GoTime,
}

/// Waits for the lock's confirmation, flushes packs and index (always, so a failed
/// run still indexes what it stored; with an unconfirmed lock, nothing is indexed),
/// then, only if everything succeeded, writes the snapshot.
async fn finish(f: Finish<'_>) -> Result<BackupResult> {
    let confirmed = f.lock.confirm().await;
    let finished = f.saver.finish().await;
    confirmed?;
    let (root_id, (stats, _)) = match (f.root, finished) {
        (Ok(Ok(r)), Ok(x)) => (r, x),
        (_, Err(e)) | (Ok(Err(e)), _) | (Err(e), _) => return Err(e),
    };
    let summary = summary_of(f.counters, stats, f.started);
    if let Some((id, s)) = &f.parent {
        if f.opts.skip_if_unchanged && s.tree == Some(root_id) {
            return Ok(BackupResult {
                snapshot_id: *id,
                snapshot: s.clone(),
                parent: Some(*id),
                summary,
                skipped: true,
            });
        }
    }
    let parent = f.parent.map(|(id, _)| id);
    let mut snap = new_snapshot(f.opts, f.paths, root_id, parent);
    store_summary(&mut snap, &summary, f.start_time);
    let snapshot_id = f.repo.save_json(FileType::Snapshot, &snap).await?;
    Ok(BackupResult {
        snapshot_id,
        snapshot: snap,
        parent,
        summary,
        skipped: false,
    })
}

/// Lexically cleans an absolute path (`a/./b/../c` -> `a/c`), as Go's filepath.Clean.
fn clean(p: &std::path::Path) -> String {
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(s) => out.push(s),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    let mut s = String::from("/");
    s.push_str(
        &out.iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
    );
    s
}

/// Backs up a stream (stdin or a command's output) as a one-file snapshot, the way
/// restic stores `--stdin`: a root tree with one file node `filename`.
///
/// # Errors
/// As [`backup`], or a read error on the stream.
pub async fn backup_stdin(
    repo: &Repository,
    opts: &BackupOptions,
    filename: &str,
    reader: Box<dyn std::io::Read + Send>,
    counters: Arc<Counters>,
) -> Result<BackupResult> {
    if filename.is_empty() || filename.contains('/') {
        return Err(Error::Usage(format!(
            "invalid --stdin-filename {filename:?}"
        )));
    }
    let mut lock = repo.lock_unconfirmed(false).await?;
    let res = run_stdin(repo, opts, filename, reader, counters, &mut lock).await;
    let unlocked = lock.release().await;
    let r = res?;
    unlocked?;
    Ok(r)
}

async fn run_stdin(
    repo: &Repository,
    opts: &BackupOptions,
    filename: &str,
    reader: Box<dyn std::io::Read + Send>,
    counters: Arc<Counters>,
    lock: &mut LockGuard,
) -> Result<BackupResult> {
    let started = Instant::now();
    let start_time = GoTime::now();
    let paths = vec![format!("/{filename}")];
    let Setup {
        parent,
        kind,
        saver,
        ..
    } = setup(repo, opts, &paths, lock).await?;
    let (saver2, c2, name) = (saver.clone(), counters.clone(), filename.to_string());
    let root = tokio::task::spawn_blocking(move || -> Result<Id> {
        let (content, size) = save_stream(reader, &saver2, &kind, &c2).map_err(|e| match e {
            Error::Io { source, .. } => Error::io("stdin", source),
            e => e,
        })?;
        Counters::add(&c2.files, 1);
        Counters::add(&c2.files_new, 1);
        Counters::add(&c2.files_done, 1);
        let now = GoTime::now();
        let mut node = Node::new(name.into_bytes(), NodeType::File);
        node.mode = 0o644;
        node.mtime = now;
        node.atime = now;
        node.ctime = now;
        node.uid = proc_id("Uid:");
        node.gid = proc_id("Gid:");
        node.size = size;
        node.content = Some(content);
        let tree = Tree { nodes: vec![node] };
        let bytes = tree
            .encode()
            .map_err(|e| Error::Usage(format!("stdin tree: {e}")))?;
        Ok(saver2.save(BlobType::Tree, &bytes)?.id)
    })
    .await
    .map_err(|e| Error::Usage(format!("backup task: {e}")));
    finish(Finish {
        repo,
        opts,
        saver: &saver,
        lock,
        root,
        counters: &counters,
        paths,
        parent,
        started,
        start_time,
    })
    .await
}
