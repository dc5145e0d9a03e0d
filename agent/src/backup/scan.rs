//! Walks the backup targets into an in-memory tree of nodes, in restic's shape:
//! a target's path components (without `.`, `..` and the root) become nested
//! directories, so `/home/u/src` is stored as `home/u/src`, `src` as `src`, and `.`
//! puts the directory's entries at the snapshot root.
//!
//! Each file is compared with the node at the same path in the parent snapshot: if
//! type, size, mtime, ctime and inode are equal its content list is reused and the
//! file is never opened.
//!
//! A directory's entries are examined in parallel on the calling rayon pool (the
//! walk is system-call bound); entries keep their sorted order. Run the scan inside a
//! pool of its own: it blocks on the file queue and on parent tree reads.
//!
//! When a directory's scan ends, its subdirectories whose files are all saved are
//! folded: results applied, tree saved, the subtree replaced by its node. Memory
//! then holds only the directories with files still queued (and their ancestors),
//! not the whole file system.

use std::os::unix::fs::MetadataExt;
use std::{
    collections::HashMap,
    ffi::OsStr,
    fs::Metadata,
    os::unix::ffi::OsStrExt,
    path::{Component, Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        PoisonError,
    },
};

use rayon::prelude::*;
use stash_repo_format::{
    node::{Node, NodeType},
    tree::Tree,
    Id,
};

use super::{
    file_saver::{Results, Saved},
    node_meta::node_from_metadata,
    parent_trees::ParentTrees,
    reject::Rejects,
    tree_saver::save_dir,
    Counters,
};
use crate::repository::BlobSaver;

/// An entry of a scanned directory.
#[derive(Debug)]
pub enum Item {
    /// A node needing nothing more (symlink, device, empty or unchanged file).
    Node(Node),
    /// A file whose content must be read; the file savers fill in `content` and
    /// `size` from the result stored under `slot`.
    File {
        /// The node.
        node: Node,
        /// The job number the file was sent to the savers under.
        slot: usize,
    },
    /// A subdirectory.
    Dir(Box<Dir>),
}

impl Item {
    fn name(&self) -> &[u8] {
        match self {
            Item::Node(n) | Item::File { node: n, .. } => &n.name,
            Item::Dir(d) => d.node.as_ref().map_or(&[][..], |n| &n.name),
        }
    }
}

/// A scanned directory.
#[derive(Debug, Default)]
pub struct Dir {
    /// The directory's own node (`None` for the snapshot root).
    pub node: Option<Node>,
    /// Entries, sorted by name bytes when the scan ends.
    pub items: Vec<Item>,
    /// The same directory's tree in the parent snapshot.
    pub parent_subtree: Option<Id>,
}

/// What the scan needs besides the targets.
pub struct Scanner<'a> {
    /// The parent snapshot's trees.
    pub trees: &'a ParentTrees,
    /// What keeps entries out (patterns, sizes, marker files).
    pub rejects: &'a Rejects,
    /// Re-read files even when unchanged.
    pub force: bool,
    /// Stay on each target's device (`-x`).
    pub one_file_system: bool,
    /// Record real access times.
    pub with_atime: bool,
    /// Shared counters.
    pub counters: &'a Counters,
    /// Where files to read are sent, as (slot, path), while the scan goes on.
    pub jobs: &'a std::sync::mpsc::SyncSender<(usize, PathBuf)>,
    /// Next job number.
    pub next_slot: AtomicUsize,
    /// What the file savers have finished, by job number.
    pub results: &'a Results,
    /// Where folded directories' trees are saved.
    pub saver: &'a BlobSaver,
    /// The first error saving a folded directory's tree; the scan's caller fails
    /// the backup with it.
    pub fold_error: std::sync::Mutex<Option<crate::error::Error>>,
}

fn lookup_node<'t>(tree: Option<&'t Tree>, name: &[u8]) -> Option<&'t Node> {
    let t = tree?;
    t.nodes
        .binary_search_by(|n| n.name.as_slice().cmp(name))
        .ok()
        .map(|i| &t.nodes[i])
}

fn unchanged(old: &Node, new: &Node) -> bool {
    old.node_type == NodeType::File
        && old.size == new.size
        && old.mtime == new.mtime
        && old.ctime == new.ctime
        && old.inode == new.inode
        && old.content.is_some()
}

impl Scanner<'_> {
    fn warn(&self, path: &Path, e: impl std::fmt::Display) {
        eprintln!("warning: {}: {e}", path.display());
        Counters::add(&self.counters.errors, 1);
    }

    fn parent_tree(&self, id: Option<Id>) -> Option<Tree> {
        self.trees.get(id)
    }

    /// Scans `targets` into a root directory, using `parent_root` (the parent
    /// snapshot's root tree) for change detection.
    pub fn scan(&self, targets: &[PathBuf], parent_root: Option<Id>) -> Dir {
        let mut root = Dir {
            parent_subtree: parent_root,
            ..Default::default()
        };
        for target in targets {
            self.add_target(&mut root, target);
        }
        sort_dir(&mut root);
        root
    }

    fn add_target(&self, root: &mut Dir, target: &Path) {
        let names: Vec<&OsStr> = target
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s),
                _ => None,
            })
            .collect();
        let abs = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
        if names.is_empty() {
            let parent = self.parent_tree(root.parent_subtree);
            let dev = std::fs::symlink_metadata(target).map(|m| m.dev());
            self.scan_dir_entries(root, target, &abs, parent.as_ref(), dev.ok());
            return;
        }
        // Intermediate directories, with their real metadata.
        let mut dir = root;
        let mut real = PathBuf::new();
        let comps = target.components().peekable();
        let mut idx = 0;
        for c in comps {
            real.push(c.as_os_str());
            let Component::Normal(name) = c else { continue };
            idx += 1;
            if idx == names.len() {
                break;
            }
            let name = name.as_bytes();
            let pos = dir
                .items
                .iter()
                .position(|i| matches!(i, Item::Dir(_)) && i.name() == name);
            let pos = match pos {
                Some(p) => p,
                None => {
                    let md = match std::fs::symlink_metadata(&real) {
                        Ok(m) => m,
                        Err(e) => return self.warn(&real, e),
                    };
                    let parent = self.parent_tree(dir.parent_subtree);
                    let node = node_from_metadata(name, &real, &md, self.with_atime);
                    let ps = lookup_node(parent.as_ref(), name).and_then(|n| n.subtree);
                    dir.items.push(Item::Dir(Box::new(Dir {
                        node: Some(node),
                        items: Vec::new(),
                        parent_subtree: ps,
                    })));
                    dir.items.len() - 1
                }
            };
            let Item::Dir(d) = &mut dir.items[pos] else {
                unreachable!("position matched a Dir")
            };
            dir = d;
        }
        let last = names[names.len() - 1].as_bytes();
        if dir.items.iter().any(|i| i.name() == last) {
            eprintln!(
                "warning: {}: already included by another target",
                target.display()
            );
            return;
        }
        let markers = self
            .rejects
            .markers_in(target.parent().unwrap_or(Path::new(".")));
        if Rejects::marked_out(&markers, last) {
            return;
        }
        let parent = self.parent_tree(dir.parent_subtree);
        if let Some(item) = self.scan_entry(last, target, &abs, parent.as_ref(), None, None) {
            dir.items.push(item);
        }
    }

    /// Scans one entry; `None` if excluded or unreadable. `entry`, when the entry
    /// came from a directory listing, gives its metadata relative to the open
    /// directory (no path walk). `dev` is the device of the target it lies in (none
    /// for a target itself).
    fn scan_entry(
        &self,
        name: &[u8],
        path: &Path,
        abs: &Path,
        parent: Option<&Tree>,
        entry: Option<&std::fs::DirEntry>,
        dev: Option<u64>,
    ) -> Option<Item> {
        if self.rejects.path(abs) {
            return None;
        }
        let md: std::io::Result<Metadata> = match entry {
            Some(e) => e.metadata(),
            None => std::fs::symlink_metadata(path),
        };
        let md = match md {
            Ok(m) => m,
            Err(e) => {
                self.warn(path, e);
                return None;
            }
        };
        if md.is_file() && self.rejects.file_size(md.len()) {
            return None;
        }
        // With -x, an entry on another device is left out, but a directory there
        // (a mount point: its parent is on the target's device) is kept, empty.
        let elsewhere = self.one_file_system && dev.is_some_and(|d| d != md.dev());
        if elsewhere && !md.is_dir() {
            return None;
        }
        let dev = dev.unwrap_or(md.dev());
        let node = node_from_metadata(name, path, &md, self.with_atime);
        let old = lookup_node(parent, name);
        match node.node_type {
            NodeType::Dir => {
                let ps = old
                    .filter(|o| o.node_type == NodeType::Dir)
                    .and_then(|o| o.subtree);
                let mut d = Dir {
                    node: Some(node),
                    items: Vec::new(),
                    parent_subtree: ps,
                };
                if elsewhere {
                    return Some(Item::Dir(Box::new(d)));
                }
                let ptree = self.parent_tree(ps);
                self.scan_dir_entries(&mut d, path, abs, ptree.as_ref(), Some(dev));
                drop(ptree);
                self.fold_finished(&mut d);
                Some(Item::Dir(Box::new(d)))
            }
            NodeType::File => {
                Counters::add(&self.counters.files, 1);
                Counters::add(&self.counters.bytes_total, node.size);
                let c = self.counters;
                match old {
                    Some(o) if !self.force && unchanged(o, &node) => {
                        let mut n = node;
                        n.content = o.content.clone();
                        Counters::add(&c.files_unmodified, 1);
                        Counters::add(&c.files_done, 1);
                        Counters::add(&c.bytes_done, n.size);
                        Some(Item::Node(n))
                    }
                    _ => {
                        Counters::add(
                            if old.is_some() {
                                &c.files_changed
                            } else {
                                &c.files_new
                            },
                            1,
                        );
                        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
                        // The savers only stop early on a fatal error, reported at the end.
                        let _ = self.jobs.send((slot, path.to_path_buf()));
                        Some(Item::File { node, slot })
                    }
                }
            }
            _ => Some(Item::Node(node)),
        }
    }

    fn scan_dir_entries(
        &self,
        dir: &mut Dir,
        path: &Path,
        abs: &Path,
        parent: Option<&Tree>,
        dev: Option<u64>,
    ) {
        let rd = match std::fs::read_dir(path) {
            Ok(r) => r,
            Err(e) => return self.warn(path, e),
        };
        let mut entries: Vec<(std::ffi::OsString, std::fs::DirEntry)> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => entries.push((e.file_name(), e)),
                Err(e) => self.warn(path, e),
            }
        }
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let markers = self.rejects.markers_in(path);
        entries.retain(|(name, _)| !Rejects::marked_out(&markers, name.as_bytes()));
        let items: Vec<Item> = entries
            .par_iter()
            .with_max_len(16)
            .filter_map(|(name, e)| {
                self.scan_entry(
                    name.as_bytes(),
                    &path.join(name),
                    &abs.join(name),
                    parent,
                    Some(e),
                    dev,
                )
            })
            .collect();
        dir.items.extend(items);
    }
}

impl Scanner<'_> {
    /// Replaces each subdirectory of `dir` that is complete (see
    /// [`Scanner::try_finish`]) by the node of its saved tree.
    fn fold_finished(&self, dir: &mut Dir) {
        for item in &mut dir.items {
            let Item::Dir(sub) = item else { continue };
            if !self.try_finish(sub) {
                continue;
            }
            let sub = std::mem::take(&mut **sub);
            match save_dir(sub, self.saver, self.counters) {
                Ok(Some(node)) => *item = Item::Node(node),
                // A subdirectory always has its node.
                Ok(None) => {}
                // The directory is gone from the tree: the backup must fail.
                Err(e) => {
                    self.fold_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(e);
                }
            }
        }
    }

    /// Folds what is complete below `dir`; then, if no subdirectory is left and all
    /// of `dir`'s files are saved, applies their results. True when `dir` is then
    /// ready to be saved.
    fn try_finish(&self, dir: &mut Dir) -> bool {
        self.fold_finished(dir);
        if dir.items.iter().any(|i| matches!(i, Item::Dir(_))) {
            return false;
        }
        let mut results = self.results.lock().unwrap_or_else(PoisonError::into_inner);
        let done = dir.items.iter().all(|i| match i {
            Item::File { slot, .. } => results.contains_key(slot),
            _ => true,
        });
        if done {
            apply_results(dir, &mut results);
        }
        done
    }
}

fn sort_dir(d: &mut Dir) {
    d.items.sort_by(|a, b| a.name().cmp(b.name()));
    for i in &mut d.items {
        if let Item::Dir(sub) = i {
            sort_dir(sub);
        }
    }
}

/// Applies the savers' results: fills content and size (the file becomes a plain
/// node), and drops files that could not be read. Files without a result are kept
/// as they are.
pub fn apply_results(d: &mut Dir, results: &mut HashMap<usize, Saved>) {
    let items = std::mem::take(&mut d.items);
    d.items = items
        .into_iter()
        .filter_map(|i| match i {
            Item::File { mut node, slot } => match results.remove(&slot) {
                Some(Some((content, size))) => {
                    node.content = Some(content);
                    node.size = size;
                    Some(Item::Node(node))
                }
                Some(None) => None,
                None => Some(Item::File { node, slot }),
            },
            Item::Dir(mut sub) => {
                apply_results(&mut sub, results);
                Some(Item::Dir(sub))
            }
            n @ Item::Node(_) => Some(n),
        })
        .collect();
}
