//! Walks a snapshot's trees into a restore plan: what to create where, and for every
//! pack the blobs it must deliver and where each goes.

use std::{
    collections::{HashMap, HashSet},
    ffi::OsStr,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
};

use stash_repo_format::{
    blob::BlobType,
    index::IndexLookup,
    node::{posix_perm_from_go_mode, Node, NodeType},
    Id,
};

use super::Overwrite;
use crate::{
    backup::exclude::Excludes,
    error::{Error, Result},
    repository::{tree_packs::TreePacks, Repository},
};

/// A regular file to restore.
#[derive(Debug)]
pub struct FileEntry {
    /// Local path.
    pub path: PathBuf,
    /// Its node.
    pub node: Node,
    /// Index into `files` of the file this is a hard link to.
    pub hardlink_to: Option<usize>,
    /// Length of the content (sum of its blobs).
    pub length: u64,
}

/// One blob to deliver from a pack.
#[derive(Debug)]
pub struct PackBlob {
    /// Blob id.
    pub id: Id,
    /// Offset in the pack.
    pub offset: u32,
    /// Sealed length.
    pub length: u32,
    /// Plaintext length if compressed.
    pub uncompressed_length: Option<u32>,
    /// (file number, offset in file) for every place the blob goes.
    pub targets: Vec<(u32, u64)>,
}

/// Everything a restore does.
#[derive(Debug, Default)]
pub struct Plan {
    /// Directories with their nodes (none for the target itself).
    pub dirs: Vec<(PathBuf, Node)>,
    /// Regular files.
    pub files: Vec<FileEntry>,
    /// Symlinks, fifos, devices, sockets.
    pub others: Vec<(PathBuf, Node)>,
    /// Per pack, the blobs to read from it.
    pub packs: Vec<(Id, Vec<PackBlob>)>,
    /// Content bytes to write.
    pub total_bytes: u64,
    /// Leave zeros unwritten (the files are preallocated sparse).
    pub sparse: bool,
    /// Existing entries left in place (see [`Overwrite`]).
    pub skipped: u64,
    /// With `record_names`: each restored directory (local path, snapshot path)
    /// with the names its snapshot directory holds, for [`delete_extra`].
    pub dir_names: Vec<(PathBuf, PathBuf, HashSet<Vec<u8>>)>,
}

/// What [`build`] restores, and where.
#[derive(Debug)]
pub struct Select<'a> {
    pub target: &'a Path,
    pub includes: &'a Excludes,
    pub excludes: &'a Excludes,
    pub overwrite: Overwrite,
    /// Record each restored directory's names (for `--delete`).
    pub record_names: bool,
}

/// Whether the entry at `local` stays as it is instead of being replaced by `node`.
fn keeps_existing(overwrite: Overwrite, local: &Path, node: &Node) -> bool {
    if overwrite == Overwrite::Always {
        return false;
    }
    let Ok(md) = std::fs::symlink_metadata(local) else {
        return false;
    };
    let mtime = (md.mtime(), md.mtime_nsec());
    let theirs = (node.mtime.unix_secs(), i64::from(node.mtime.unix_nanos()));
    match overwrite {
        Overwrite::Always => false,
        Overwrite::Never => true,
        Overwrite::IfNewer => theirs <= mtime,
        Overwrite::IfChanged => {
            node.node_type == NodeType::File
                && md.is_file()
                && md.len() == node.size
                && mtime == theirs
        }
    }
}

/// Checks that a name read from a tree is a single safe path component.
fn safe_name(name: &[u8]) -> Result<&OsStr> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::Check(format!(
            "tree contains an invalid file name {:?}; refusing to restore it",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(OsStr::from_bytes(name))
}

/// Finds the tree of the directory at `path` (e.g. `/home/u/src`) in the snapshot.
///
/// # Errors
/// [`Error::NotFound`] if there is no such directory.
pub async fn find_subtree(
    repo: &Repository,
    index: &IndexLookup,
    root: Id,
    path: &str,
) -> Result<Id> {
    let mut cur = root;
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let tree = repo.read_tree(index, &cur).await?;
        let node = tree
            .nodes
            .iter()
            .find(|n| n.name == comp.as_bytes() && n.node_type == NodeType::Dir)
            .ok_or_else(|| Error::NotFound(format!("directory {path:?} in snapshot")))?;
        cur = node
            .subtree
            .ok_or_else(|| Error::NotFound(format!("directory {path:?} has no subtree")))?;
    }
    Ok(cur)
}

/// Walks the trees below `root` and plans the restore into `target`.
///
/// # Errors
/// Missing or damaged trees, data blobs missing from the index, unsafe names.
pub async fn build(
    repo: &Repository,
    index: &IndexLookup,
    root: Id,
    select: &Select<'_>,
) -> Result<Plan> {
    let Select {
        target,
        includes,
        excludes,
        overwrite,
        record_names,
    } = *select;
    let mut plan = Plan::default();
    let mut packs: HashMap<Id, HashMap<Id, PackBlob>> = HashMap::new();
    let mut links: HashMap<(u64, u64), usize> = HashMap::new();
    let filter_inc = !includes.is_empty();
    // (tree, snapshot path, local path, inside an included directory)
    let trees = TreePacks::new(repo);
    let mut stack = vec![(root, PathBuf::from("/"), target.to_path_buf(), !filter_inc)];
    while let Some((tree_id, spath, lpath, included)) = stack.pop() {
        let tree = trees.read_tree(index, &tree_id).await?;
        if record_names && included {
            let names = tree.nodes.iter().map(|n| n.name.clone()).collect();
            plan.dir_names.push((lpath.clone(), spath.clone(), names));
        }
        for node in tree.nodes {
            let name = safe_name(&node.name)?;
            let sp = spath.join(name);
            let lp = lpath.join(name);
            if excludes.is_excluded(&sp) {
                continue;
            }
            let inc = included || includes.is_excluded(&sp);
            match node.node_type {
                NodeType::Dir => {
                    let sub = node.subtree.ok_or_else(|| {
                        Error::Check(format!("directory {} has no subtree", sp.display()))
                    })?;
                    if inc {
                        plan.dirs.push((lp.clone(), node));
                    }
                    stack.push((sub, sp, lp, inc));
                }
                _ if !inc => {}
                _ if keeps_existing(overwrite, &lp, &node) => plan.skipped += 1,
                NodeType::File => {
                    let fileno = plan.files.len();
                    if node.links > 1 && node.inode != 0 {
                        if let Some(&first) = links.get(&(node.device_id, node.inode)) {
                            plan.files.push(FileEntry {
                                path: lp,
                                node,
                                hardlink_to: Some(first),
                                length: 0,
                            });
                            continue;
                        }
                        links.insert((node.device_id, node.inode), fileno);
                    }
                    let mut offset = 0u64;
                    for id in node.content.iter().flatten() {
                        let loc = index.get(BlobType::Data, id).ok_or(Error::MissingBlob {
                            ty: "data",
                            id: *id,
                        })?;
                        let pb = packs
                            .entry(loc.pack)
                            .or_default()
                            .entry(*id)
                            .or_insert_with(|| PackBlob {
                                id: *id,
                                offset: loc.offset,
                                length: loc.length,
                                uncompressed_length: loc.uncompressed_length,
                                targets: Vec::new(),
                            });
                        pb.targets.push((fileno as u32, offset));
                        offset += u64::from(loc.data_length());
                    }
                    plan.total_bytes += offset;
                    plan.files.push(FileEntry {
                        path: lp,
                        node,
                        hardlink_to: None,
                        length: offset,
                    });
                }
                _ => plan.others.push((lp, node)),
            }
        }
    }
    plan.packs = packs
        .into_iter()
        .map(|(id, blobs)| {
            let mut v: Vec<PackBlob> = blobs.into_values().collect();
            v.sort_by_key(|b| b.offset);
            (id, v)
        })
        .collect();
    plan.packs.sort_by_key(|(id, _)| *id);
    Ok(plan)
}

/// Removes what the restored directories hold that their snapshot directories do
/// not (restic's `--delete`), leaving alone paths the include and exclude patterns
/// keep out of the restore. Returns the number of entries removed (a directory
/// counts once).
///
/// # Errors
/// Local I/O errors naming the path.
pub fn delete_extra(plan: &Plan, includes: &Excludes, excludes: &Excludes) -> Result<u64> {
    let mut removed = 0;
    for (local, spath, names) in &plan.dir_names {
        let entries = match std::fs::read_dir(local) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(local, e)),
        };
        for e in entries {
            let e = e.map_err(|e| Error::io(local, e))?;
            let name = e.file_name();
            if names.contains(name.as_bytes()) {
                continue;
            }
            let sp = spath.join(&name);
            let selected =
                !excludes.is_excluded(&sp) && (includes.is_empty() || includes.is_excluded(&sp));
            if !selected {
                continue;
            }
            let path = e.path();
            let gone = match e.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            gone.map_err(|err| Error::io(&path, err))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn replace(path: &Path) {
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if !md.is_dir() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Creates an empty regular file at `path`, replacing a non-directory there (a
/// symlink is removed, never followed) and creating a missing parent. Into an empty
/// target (the usual restore) that is a single `open`: most of a restore of small
/// files is system calls.
fn create_file(path: &Path) -> Result<std::fs::File> {
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
    };
    match create() {
        Ok(f) => return Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => replace(path),
        Err(e) => return Err(Error::io(path, e)),
    }
    create().map_err(|e| Error::io(path, e))
}

/// Creates directories, preallocated files, hard links, symlinks and special files.
///
/// # Errors
/// Local I/O errors naming the path (special files that need privileges only warn).
pub fn create_entries(plan: &mut Plan, target: &Path) -> Result<()> {
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    for (p, _) in &plan.dirs {
        std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
    }
    // Regular files in parallel (file creation is mostly kernel time), then hard
    // links, which need their target to exist.
    use rayon::prelude::*;
    let sparse = plan.sparse;
    plan.files
        .par_iter()
        .filter(|f| f.hardlink_to.is_none())
        .try_for_each(|f| {
            let file = create_file(&f.path)?;
            // A file of one blob gets its length from that one write, unless the
            // blob is zeros a sparse restore leaves unwritten.
            let one_write = !sparse && f.node.content.as_ref().is_some_and(|c| c.len() == 1);
            if f.length > 0 && !one_write {
                file.set_len(f.length).map_err(|e| Error::io(&f.path, e))?;
            }
            Ok::<_, Error>(())
        })?;
    for f in plan.files.iter().filter(|f| f.hardlink_to.is_some()) {
        if let Some(parent) = f.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        replace(&f.path);
        if let Some(first) = f.hardlink_to {
            let src = &plan.files[first].path;
            std::fs::hard_link(src, &f.path).map_err(|e| Error::io(&f.path, e))?;
        }
    }
    for (p, node) in &plan.others {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        replace(p);
        let perm = posix_perm_from_go_mode(node.mode) & 0o7777;
        let res = match node.node_type {
            NodeType::Symlink => {
                std::os::unix::fs::symlink(OsStr::from_bytes(&node.link_target), p)
            }
            NodeType::Fifo => crate::sys::mkfifo(p, perm),
            NodeType::Dev => crate::sys::mknod(p, libc::S_IFBLK | perm, node.device),
            NodeType::CharDev => crate::sys::mknod(p, libc::S_IFCHR | perm, node.device),
            _ => {
                eprintln!(
                    "warning: {}: cannot restore a {:?}",
                    p.display(),
                    node.node_type
                );
                Ok(())
            }
        };
        if let Err(e) = res {
            if node.node_type == NodeType::Symlink {
                return Err(Error::io(p, e));
            }
            eprintln!("warning: {}: {e}", p.display());
        }
    }
    Ok(())
}
