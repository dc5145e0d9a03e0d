//! What `stats` counts, restic's four ways, over the nodes and trees a walk of the
//! snapshots hands it; no I/O here. The counts are restic's (0.14 to 0.17):
//!
//! - `restore-size`: every node of every snapshot (directories too) and its size,
//!   a hard-linked inode once per snapshot: what a restore of each would write.
//! - `files-by-contents`: each distinct content list once (all directories and
//!   empty files share the empty one), with its size.
//! - `blobs-per-file`: for each distinct content list, its first path, counting each
//!   data blob once per path with its plaintext size; files are the distinct paths.
//! - `raw-data`: every distinct tree and data blob the snapshots use, at its size in
//!   the repository.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use stash_repo_format::{blob::BlobType, crypto::OVERHEAD, index::BlobLocation, node::Node, Id};

/// restic's `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    RestoreSize,
    FilesByContents,
    RawData,
    BlobsPerFile,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::RestoreSize => "restore-size",
            Mode::FilesByContents => "files-by-contents",
            Mode::RawData => "raw-data",
            Mode::BlobsPerFile => "blobs-per-file",
        }
    }
}

/// restic's `stats --json` document.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub total_size: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub total_uncompressed_size: u64,
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_ratio: f64,
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_progress: f64,
    #[serde(skip_serializing_if = "is_zero_f")]
    pub compression_space_saving: f64,
    pub total_file_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub total_blob_count: u64,
    pub snapshots_count: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_f(v: &f64) -> bool {
    *v == 0.0
}

/// The counting state of one `stats` run.
#[derive(Debug)]
pub struct Counter {
    mode: Mode,
    totals: Totals,
    /// Inodes (with their device) already counted in the current snapshot.
    inodes: HashSet<(u64, u64)>,
    contents: HashSet<Vec<Id>>,
    file_blobs: HashMap<Vec<u8>, HashSet<Id>>,
    blobs: HashSet<(BlobType, Id)>,
}

impl Counter {
    pub fn new(mode: Mode) -> Self {
        Counter {
            mode,
            totals: Totals::default(),
            inodes: HashSet::new(),
            contents: HashSet::new(),
            file_blobs: HashMap::new(),
            blobs: HashSet::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A snapshot's walk begins.
    pub fn snapshot(&mut self) {
        self.totals.snapshots_count += 1;
        self.inodes.clear();
    }

    /// Whether the walk must enter tree `id` (raw-data counts a tree's blobs once,
    /// so a tree seen before is skipped); records it for raw-data.
    pub fn tree(&mut self, id: Id) -> bool {
        match self.mode {
            Mode::RawData => self.blobs.insert((BlobType::Tree, id)),
            _ => true,
        }
    }

    /// A node at `path` (its full path in the snapshot); `plaintext` gives a data
    /// blob's plaintext size (blobs-per-file), `None` for a blob the index lacks.
    pub fn node(&mut self, path: &[u8], node: &Node, plaintext: impl Fn(&Id) -> Option<u64>) {
        let content: &[Id] = node.content.as_deref().unwrap_or_default();
        match self.mode {
            Mode::RestoreSize => {
                self.totals.total_file_count += 1;
                if node.inode == 0 || self.inodes.insert((node.inode, node.device_id)) {
                    self.totals.total_size += node.size;
                }
            }
            Mode::FilesByContents => {
                if self.contents.insert(content.to_vec()) {
                    self.totals.total_size += node.size;
                    self.totals.total_file_count += 1;
                }
            }
            Mode::BlobsPerFile => {
                if !self.contents.insert(content.to_vec()) {
                    return;
                }
                for blob in content {
                    let Some(size) = plaintext(blob) else {
                        continue;
                    };
                    let seen = self.file_blobs.entry(path.to_vec()).or_default();
                    if seen.insert(*blob) {
                        self.totals.total_size += size;
                        self.totals.total_blob_count += 1;
                    }
                }
            }
            Mode::RawData => {
                for blob in content {
                    self.blobs.insert((BlobType::Data, *blob));
                }
            }
        }
    }

    /// The totals; raw-data sizes come from `locate` (a blob's first location).
    ///
    /// # Errors
    /// A blob the snapshots use that the index does not know, by type and id.
    pub fn finish(
        mut self,
        locate: impl Fn(BlobType, &Id) -> Option<BlobLocation>,
    ) -> Result<Totals, (BlobType, Id)> {
        match self.mode {
            Mode::BlobsPerFile => self.totals.total_file_count = self.file_blobs.len() as u64,
            Mode::RawData => {
                let (mut compressed, mut compressed_plain) = (0u64, 0u64);
                for (ty, id) in &self.blobs {
                    let loc = locate(*ty, id).ok_or((*ty, *id))?;
                    self.totals.total_size += u64::from(loc.length);
                    let plain = u64::from(loc.data_length());
                    self.totals.total_uncompressed_size += plain + OVERHEAD as u64;
                    if loc.uncompressed_length.is_some() {
                        compressed += u64::from(loc.length);
                        compressed_plain += plain + OVERHEAD as u64;
                    }
                    self.totals.total_blob_count += 1;
                }
                let t = &mut self.totals;
                if compressed > 0 {
                    t.compression_ratio = compressed_plain as f64 / compressed as f64;
                }
                if t.total_uncompressed_size > 0 {
                    let whole = t.total_uncompressed_size as f64;
                    t.compression_progress = compressed_plain as f64 / whole * 100.0;
                    t.compression_space_saving = (1.0 - t.total_size as f64 / whole) * 100.0;
                }
            }
            _ => {}
        }
        Ok(self.totals)
    }
}

#[cfg(test)]
mod tests {
    use stash_repo_format::node::NodeType;

    use super::*;

    fn id(b: u8) -> Id {
        Id::from_hex(&format!("{b:02x}").repeat(32)).unwrap()
    }

    fn file(name: &str, size: u64, content: &[u8], inode: u64) -> Node {
        let mut n = Node::new(name, NodeType::File);
        n.size = size;
        n.inode = inode;
        n.content = Some(content.iter().map(|b| id(*b)).collect());
        n
    }

    /// Two snapshots: `a` and `b` share contents, `hard` is `big`'s hard link.
    fn count(mode: Mode) -> Totals {
        let mut c = Counter::new(mode);
        let dir = Node::new("d", NodeType::Dir);
        let nodes = [
            ("/a", file("a", 6, &[1], 10)),
            ("/big", file("big", 300, &[2, 3], 11)),
            ("/d", dir),
            ("/d/b", file("b", 6, &[1], 12)),
            ("/d/hard", file("hard", 300, &[2, 3], 11)),
        ];
        for _ in 0..2 {
            c.snapshot();
            c.tree(id(9));
            for (path, n) in &nodes {
                c.node(path.as_bytes(), n, |b| {
                    Some(u64::from(b.as_bytes()[0]) * 100)
                });
            }
        }
        c.finish(|_, _| {
            Some(BlobLocation {
                pack: id(0),
                offset: 0,
                length: 50,
                uncompressed_length: Some(100),
            })
        })
        .unwrap()
    }

    #[test]
    fn each_mode_counts_as_restic() {
        let r = count(Mode::RestoreSize);
        assert_eq!(
            (r.total_file_count, r.total_size, r.snapshots_count),
            (10, 2 * 312, 2)
        );
        let f = count(Mode::FilesByContents);
        assert_eq!(
            (f.total_file_count, f.total_size),
            (3, 306),
            "a, big, the directory"
        );
        let b = count(Mode::BlobsPerFile);
        assert_eq!(
            (b.total_file_count, b.total_blob_count, b.total_size),
            (2, 3, 600)
        );
        let raw = count(Mode::RawData);
        assert_eq!((raw.total_blob_count, raw.total_size), (4, 200));
        assert_eq!(raw.total_uncompressed_size, 4 * (100 + OVERHEAD as u64));
        assert!(raw.compression_ratio > 2.0);
    }

    #[test]
    fn a_blob_missing_from_the_index_is_named() {
        let mut c = Counter::new(Mode::RawData);
        c.snapshot();
        c.node(b"/a", &file("a", 1, &[7], 1), |_| None);
        assert_eq!(c.finish(|_, _| None).unwrap_err(), (BlobType::Data, id(7)));
    }
}
