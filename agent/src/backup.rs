//! Backup: files, directories and streams into a new snapshot.
//!
//! Stages: [`scan`] walks the targets into an in-memory tree of nodes, comparing each
//! file with the parent snapshot so unchanged files keep their content list without
//! being read; [`file_saver`] reads, chunks and saves the remaining files in parallel
//! on the CPU pool; [`tree_saver`] writes the trees bottom-up; finally the packs and
//! index are flushed and the snapshot written, in that order.

pub mod exclude;
pub mod file_saver;
pub mod node_meta;
mod parent_trees;
pub mod reject;
pub mod run;
pub mod scan;
pub mod tree_saver;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

pub use run::{backup, backup_stdin, BackupOptions, BackupResult};

/// Counters shared by the stages; the progress display reads them while they run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Files seen so far.
    pub files: AtomicU64,
    /// Bytes of files seen so far (sizes from the scan).
    pub bytes_total: AtomicU64,
    /// Files finished (read or reused).
    pub files_done: AtomicU64,
    /// Bytes finished.
    pub bytes_done: AtomicU64,
    /// Errors that skipped an entry.
    pub errors: AtomicU64,
    /// Files new since the parent.
    pub files_new: AtomicU64,
    /// Files changed since the parent.
    pub files_changed: AtomicU64,
    /// Files unchanged since the parent.
    pub files_unmodified: AtomicU64,
    /// Directories new since the parent.
    pub dirs_new: AtomicU64,
    /// Directories changed since the parent.
    pub dirs_changed: AtomicU64,
    /// Directories unchanged since the parent.
    pub dirs_unmodified: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The end-of-backup summary, printed and stored in the snapshot.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Files new since the parent.
    pub files_new: u64,
    /// Files changed since the parent.
    pub files_changed: u64,
    /// Files unchanged since the parent.
    pub files_unmodified: u64,
    /// Directories new since the parent.
    pub dirs_new: u64,
    /// Directories changed.
    pub dirs_changed: u64,
    /// Directories unchanged.
    pub dirs_unmodified: u64,
    /// New data blobs.
    pub data_blobs: u64,
    /// New tree blobs.
    pub tree_blobs: u64,
    /// Plaintext bytes added.
    pub data_added: u64,
    /// Stored bytes added.
    pub data_added_packed: u64,
    /// Files in the snapshot.
    pub total_files_processed: u64,
    /// Bytes in the snapshot.
    pub total_bytes_processed: u64,
    /// Seconds the backup took.
    pub total_duration: f64,
    /// Entries skipped because of errors.
    pub errors: u64,
}
