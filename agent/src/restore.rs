//! Restore a snapshot, or part of it, into a local directory.
//!
//! 1. [`plan`] walks the snapshot's trees, applies include/exclude patterns, and
//!    groups every needed blob by pack, noting each place (file, offset) it goes.
//! 2. Directories, symlinks, special files and empty regular files are created, and
//!    regular files preallocated; hard links are recreated from `(device, inode)`.
//! 3. [`fetch`] reads the needed blobs of each pack once, in windows of a few MiB,
//!    several at a time, verifies and decrypts them and writes them at their
//!    offsets, the bulk past the page cache (`write`). A blob that fails
//!    verification is never written: the files that needed it are removed and
//!    reported, and the restore fails.
//! 4. [`metadata`] sets modes, owners, extended attributes and times, files first
//!    and directories last, deepest first, so writing children does not disturb the
//!    parents' mtimes.

pub mod dump;
pub mod fetch;
pub mod metadata;
pub mod plan;
mod verify;
mod write;

use std::{path::PathBuf, sync::Arc};

use serde::Serialize;
use stash_repo_format::Id;

use crate::{
    backup::exclude::Excludes,
    error::{Error, Result},
    repository::Repository,
};

/// What to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Target directory.
    pub target: PathBuf,
    /// Only paths matching these patterns (and what is below them).
    pub include: Vec<String>,
    /// Skip paths matching these patterns.
    pub exclude: Vec<String>,
    /// Restore only what is below this path of the snapshot (restic's `snapshot:subdir`).
    pub subpath: Option<String>,
    /// What to do with files that exist already.
    pub overwrite: Overwrite,
    /// Remove what the restored directories hold that the snapshot does not.
    pub delete: bool,
    /// Leave holes where a file's content is zeros.
    pub sparse: bool,
    /// Read every restored file back and check its content against its blob ids.
    pub verify: bool,
}

/// When an existing file is replaced (restic's `--overwrite`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Overwrite {
    /// Always.
    #[default]
    Always,
    /// Unless it has the snapshot's size and modification time (then it is assumed
    /// to be up to date).
    IfChanged,
    /// Only when the snapshot's modification time is newer.
    IfNewer,
    /// Never: existing files are left as they are.
    Never,
}

/// Restore statistics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    /// Regular files restored.
    pub files_restored: u64,
    /// Directories restored.
    pub dirs_restored: u64,
    /// Other entries (symlinks, fifos, devices, hard links).
    pub others_restored: u64,
    /// Content bytes written.
    pub bytes_restored: u64,
    /// Packs read.
    pub packs_read: u64,
    /// Metadata that could not be applied (e.g. owner without privileges).
    pub warnings: u64,
    /// Existing files left as they were (`overwrite`).
    pub files_skipped: u64,
    /// Local files and directories removed (`delete`).
    pub files_deleted: u64,
    /// Files read back and found intact (`verify`).
    pub files_verified: u64,
}

/// Restores snapshot `snapshot_id`'s tree `root` per `opts`.
///
/// # Errors
/// Backend errors, damaged blobs (naming them and the files affected), or local I/O
/// errors naming the path.
pub async fn restore(
    repo: &Repository,
    root: Id,
    opts: &RestoreOptions,
    progress: Arc<fetch::Progress>,
) -> Result<RestoreSummary> {
    restore_when(repo, root, opts, progress, async { Ok(()) }).await
}

/// As [`restore`], writing nothing before `ready` resolves: the caller's lock
/// re-check overlaps loading the index and planning.
///
/// # Errors
/// As [`restore`], or `ready`'s error.
pub async fn restore_when(
    repo: &Repository,
    root: Id,
    opts: &RestoreOptions,
    progress: Arc<fetch::Progress>,
    ready: impl std::future::Future<Output = Result<()>>,
) -> Result<RestoreSummary> {
    let includes = Excludes::new(&opts.include)?;
    let excludes = Excludes::new(&opts.exclude)?;
    let index = Arc::new(repo.load_index().await?);
    let root = match &opts.subpath {
        Some(p) => plan::find_subtree(repo, &index, root, p).await?,
        None => root,
    };
    let select = plan::Select {
        target: &opts.target,
        includes: &includes,
        excludes: &excludes,
        overwrite: opts.overwrite,
        record_names: opts.delete,
    };
    let mut p = plan::build(repo, &index, root, &select).await?;
    p.sparse = opts.sparse;
    ready.await?;
    std::fs::create_dir_all(&opts.target).map_err(|e| Error::io(&opts.target, e))?;
    let mut summary = RestoreSummary::default();
    let target = opts.target.clone();
    let p2 = tokio::task::spawn_blocking(move || -> Result<plan::Plan> {
        plan::create_entries(&mut p, &target)?;
        Ok(p)
    })
    .await
    .map_err(|e| Error::Usage(format!("restore task: {e}")))??;
    let p = Arc::new(p2);
    progress
        .bytes_total
        .store(p.total_bytes, std::sync::atomic::Ordering::Relaxed);
    let fetched = fetch::fetch_all(repo, &index, p.clone(), progress.clone()).await;
    summary.packs_read = p.packs.len() as u64;
    summary.bytes_restored = progress
        .bytes_done
        .load(std::sync::atomic::Ordering::Relaxed);
    let failed_files = fetched?;
    let p3 = p.clone();
    let warnings = tokio::task::spawn_blocking(move || metadata::apply(&p3))
        .await
        .map_err(|e| Error::Usage(format!("restore task: {e}")))?;
    summary.warnings = warnings;
    summary.files_restored = p.files.len() as u64;
    summary.files_skipped = p.skipped;
    summary.dirs_restored = p.dirs.len() as u64;
    summary.others_restored = p.others.len() as u64;
    if !failed_files.is_empty() {
        for f in &failed_files {
            let _ = std::fs::remove_file(f);
        }
        let list: Vec<String> = failed_files
            .iter()
            .take(10)
            .map(|p| p.display().to_string())
            .collect();
        return Err(Error::Check(format!(
            "{} file(s) not restored because their data is damaged (removed): {}{}",
            failed_files.len(),
            list.join(", "),
            if failed_files.len() > 10 { ", ..." } else { "" }
        )));
    }
    if opts.delete {
        let (p4, sel) = (p.clone(), (includes, excludes));
        summary.files_deleted =
            tokio::task::spawn_blocking(move || plan::delete_extra(&p4, &sel.0, &sel.1))
                .await
                .map_err(|e| Error::Usage(format!("restore task: {e}")))??;
    }
    if opts.verify {
        summary.files_verified = verify::verify(&index, p).await?;
    }
    Ok(summary)
}
