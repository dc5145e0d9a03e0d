//! File system metadata to tree nodes: `lstat`, owner names, extended attributes,
//! times with nanoseconds, and Go `FileMode` bits, as restic records them.

use std::{
    collections::HashMap,
    fs::Metadata,
    os::unix::fs::{FileTypeExt, MetadataExt},
    path::Path,
    sync::{Mutex, OnceLock, PoisonError},
};

use stash_repo_format::{
    gotime::GoTime,
    node::{go_mode_from_posix, ExtendedAttribute, Node, NodeType},
};

fn names(file: &str) -> &'static Mutex<HashMap<u32, String>> {
    static USERS: OnceLock<Mutex<HashMap<u32, String>>> = OnceLock::new();
    static GROUPS: OnceLock<Mutex<HashMap<u32, String>>> = OnceLock::new();
    let cell = if file == "/etc/passwd" {
        &USERS
    } else {
        &GROUPS
    };
    cell.get_or_init(|| {
        let mut m = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(file) {
            for line in text.lines() {
                let mut f = line.split(':');
                if let (Some(name), _, Some(id)) = (f.next(), f.next(), f.next()) {
                    if let Ok(id) = id.parse() {
                        m.entry(id).or_insert_with(|| name.to_string());
                    }
                }
            }
        }
        Mutex::new(m)
    })
}

fn lookup(file: &str, id: u32) -> String {
    names(file)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
        .cloned()
        .unwrap_or_default()
}

/// The name of user `uid` (empty if unknown).
pub fn user_name(uid: u32) -> String {
    lookup("/etc/passwd", uid)
}

/// This process's real uid.
pub fn current_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The node type of a file system entry.
pub fn node_type(md: &Metadata) -> NodeType {
    let ft = md.file_type();
    if ft.is_dir() {
        NodeType::Dir
    } else if ft.is_symlink() {
        NodeType::Symlink
    } else if ft.is_file() {
        NodeType::File
    } else if ft.is_block_device() {
        NodeType::Dev
    } else if ft.is_char_device() {
        NodeType::CharDev
    } else if ft.is_fifo() {
        NodeType::Fifo
    } else if ft.is_socket() {
        NodeType::Socket
    } else {
        NodeType::Irregular
    }
}

/// Reads the extended attributes of `path` (not following symlinks). Failures
/// (no support on the file system) give an empty list, as restic ignores them too.
pub fn xattrs(path: &Path) -> Vec<ExtendedAttribute> {
    let Ok(list) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<ExtendedAttribute> = list
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok().flatten().unwrap_or_default();
            Some(ExtendedAttribute::new(name.into_string().ok()?, value))
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Builds the node for `path` named `name` from its `lstat` metadata. File content
/// and subtrees are filled in later; the link target is read here. restic stores the
/// modification time as the access time unless asked for the real one (`with_atime`).
pub fn node_from_metadata(name: &[u8], path: &Path, md: &Metadata, with_atime: bool) -> Node {
    let ty = node_type(md);
    let mtime = GoTime::from_unix(md.mtime(), md.mtime_nsec() as u32);
    let ctime = GoTime::from_unix(md.ctime(), md.ctime_nsec() as u32);
    let mut node = Node::new(name.to_vec(), ty.clone());
    node.mode = go_mode_from_posix(md.mode());
    node.atime = if with_atime {
        GoTime::from_unix(md.atime(), md.atime_nsec() as u32)
    } else {
        mtime
    };
    node.mtime = mtime;
    node.ctime = ctime;
    node.uid = md.uid();
    node.gid = md.gid();
    node.user = lookup("/etc/passwd", md.uid());
    node.group = lookup("/etc/group", md.gid());
    node.inode = md.ino();
    node.device_id = md.dev();
    match ty {
        NodeType::File => {
            node.size = md.size();
            node.links = md.nlink();
            node.content = Some(Vec::new());
        }
        NodeType::Dir => {}
        NodeType::Symlink => {
            node.links = md.nlink();
            if let Ok(t) = std::fs::read_link(path) {
                node.link_target = std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str()).to_vec();
            }
        }
        NodeType::Dev | NodeType::CharDev => {
            node.links = md.nlink();
            node.device = md.rdev();
        }
        // restic records no link count for fifos and sockets.
        _ => {}
    }
    node.extended_attributes = xattrs(path);
    node
}
