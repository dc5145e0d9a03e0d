//! Tree nodes: one file, directory, link or special file inside a tree blob.
//!
//! Field set, order and omit rules follow restic's Go `Node` struct (format spec §8.3),
//! because [`Node::write_json`] must reproduce restic's bytes exactly. Reading is
//! permissive like Go's `encoding/json`: every field may be absent or `null` and gets its
//! zero value, unknown fields are ignored, unknown `type` strings are kept.
//!
//! Names and link targets are raw bytes: Unix file names need not be UTF-8. In JSON the
//! name is Go-quoted first ([`crate::gostr::quote`]); a link target that is not valid
//! UTF-8 is additionally stored base64-encoded as `linktarget_raw` (restic >= 0.16),
//! which wins over `linktarget` on read.

mod raw_json;

use std::{collections::BTreeMap, fmt};

use base64::{
    alphabet,
    engine::{general_purpose::GeneralPurpose, GeneralPurposeConfig},
    Engine as _,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use raw_json::RawJson;

use crate::{
    gostr::{push_json_string, quote, unquote},
    gotime::GoTime,
    id::Id,
};

/// Go's `base64.StdEncoding`: padded; like Go, tolerant of non-zero trailing bits on read.
const GO_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Go `os.FileMode` bits as stored in `mode` (not POSIX `st_mode`, spec §8.5).
pub mod go_mode {
    /// Directory.
    pub const DIR: u32 = 1 << 31;
    /// Symbolic link.
    pub const SYMLINK: u32 = 1 << 27;
    /// Device file (block device unless [`CHAR_DEVICE`] is also set).
    pub const DEVICE: u32 = 1 << 26;
    /// Named pipe (FIFO).
    pub const NAMED_PIPE: u32 = 1 << 25;
    /// Unix domain socket.
    pub const SOCKET: u32 = 1 << 24;
    /// setuid.
    pub const SETUID: u32 = 1 << 23;
    /// setgid.
    pub const SETGID: u32 = 1 << 22;
    /// Character device, together with [`DEVICE`].
    pub const CHAR_DEVICE: u32 = 1 << 21;
    /// Sticky bit.
    pub const STICKY: u32 = 1 << 20;
    /// Non-regular file of unknown kind.
    pub const IRREGULAR: u32 = 1 << 19;
    /// rwx permission bits.
    pub const PERM: u32 = 0o777;
    /// All file-type bits (Go's `os.ModeType`).
    pub const TYPE: u32 = DIR | SYMLINK | NAMED_PIPE | SOCKET | DEVICE | CHAR_DEVICE | IRREGULAR;
    /// What restic keeps of a mode: permissions, type, setuid, setgid, sticky.
    pub const RESTIC_MASK: u32 = PERM | TYPE | SETUID | SETGID | STICKY;
}

const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;
const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;

/// The `mode` restic stores for a POSIX `st_mode` (what Go's `os.Lstat` reports, masked
/// with [`go_mode::RESTIC_MASK`]). An unknown `S_IFMT` gets no type bits, as in Go.
pub fn go_mode_from_posix(st_mode: u32) -> u32 {
    let mut mode = st_mode & go_mode::PERM;
    mode |= match st_mode & S_IFMT {
        S_IFBLK => go_mode::DEVICE,
        S_IFCHR => go_mode::DEVICE | go_mode::CHAR_DEVICE,
        S_IFDIR => go_mode::DIR,
        S_IFIFO => go_mode::NAMED_PIPE,
        S_IFLNK => go_mode::SYMLINK,
        S_IFSOCK => go_mode::SOCKET,
        _ => 0,
    };
    for (posix, go) in [
        (S_ISUID, go_mode::SETUID),
        (S_ISGID, go_mode::SETGID),
        (S_ISVTX, go_mode::STICKY),
    ] {
        if st_mode & posix != 0 {
            mode |= go;
        }
    }
    mode
}

/// The POSIX permission bits (`0o7777` range: rwx plus setuid/setgid/sticky) for a stored
/// Go mode, as given to `chmod` on restore.
pub fn posix_perm_from_go_mode(mode: u32) -> u32 {
    let mut perm = mode & go_mode::PERM;
    for (posix, go) in [
        (S_ISUID, go_mode::SETUID),
        (S_ISGID, go_mode::SETGID),
        (S_ISVTX, go_mode::STICKY),
    ] {
        if mode & go != 0 {
            perm |= posix;
        }
    }
    perm
}

/// A full POSIX `st_mode` (type and permission bits) for a stored Go mode; irregular or
/// typeless modes map to a regular file.
pub fn posix_mode_from_go_mode(mode: u32) -> u32 {
    let kind = if mode & go_mode::DIR != 0 {
        S_IFDIR
    } else if mode & go_mode::SYMLINK != 0 {
        S_IFLNK
    } else if mode & go_mode::DEVICE != 0 {
        if mode & go_mode::CHAR_DEVICE != 0 {
            S_IFCHR
        } else {
            S_IFBLK
        }
    } else if mode & go_mode::NAMED_PIPE != 0 {
        S_IFIFO
    } else if mode & go_mode::SOCKET != 0 {
        S_IFSOCK
    } else {
        S_IFREG
    };
    kind | posix_perm_from_go_mode(mode)
}

/// The `type` of a node. Strings restic does not define are kept verbatim in
/// [`NodeType::Other`] so that reading never fails on them and they re-encode unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum NodeType {
    /// `file`.
    #[default]
    File,
    /// `dir`.
    Dir,
    /// `symlink`.
    Symlink,
    /// `dev` (block device).
    Dev,
    /// `chardev`.
    CharDev,
    /// `fifo`.
    Fifo,
    /// `socket`.
    Socket,
    /// `irregular`.
    Irregular,
    /// Anything else, including the empty string of a node without `type`.
    Other(String),
}

impl NodeType {
    /// The JSON string.
    pub fn as_str(&self) -> &str {
        match self {
            NodeType::File => "file",
            NodeType::Dir => "dir",
            NodeType::Symlink => "symlink",
            NodeType::Dev => "dev",
            NodeType::CharDev => "chardev",
            NodeType::Fifo => "fifo",
            NodeType::Socket => "socket",
            NodeType::Irregular => "irregular",
            NodeType::Other(s) => s,
        }
    }

    /// Maps a JSON string; never fails.
    pub fn parse(s: &str) -> Self {
        match s {
            "file" => NodeType::File,
            "dir" => NodeType::Dir,
            "symlink" => NodeType::Symlink,
            "dev" => NodeType::Dev,
            "chardev" => NodeType::CharDev,
            "fifo" => NodeType::Fifo,
            "socket" => NodeType::Socket,
            "irregular" => NodeType::Irregular,
            other => NodeType::Other(other.to_owned()),
        }
    }

    /// The type restic derives from a Go mode's type bits; `None` for combinations it
    /// refuses ("unsupported file type").
    pub fn from_go_mode(mode: u32) -> Option<Self> {
        Some(match mode & go_mode::TYPE {
            0 => NodeType::File,
            go_mode::DIR => NodeType::Dir,
            go_mode::SYMLINK => NodeType::Symlink,
            t if t == go_mode::DEVICE | go_mode::CHAR_DEVICE => NodeType::CharDev,
            go_mode::DEVICE => NodeType::Dev,
            go_mode::NAMED_PIPE => NodeType::Fifo,
            go_mode::SOCKET => NodeType::Socket,
            go_mode::IRREGULAR => NodeType::Irregular,
            _ => return None,
        })
    }
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for NodeType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NodeType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(NodeType::parse(&std::borrow::Cow::<str>::deserialize(d)?))
    }
}

/// One extended attribute. `value` is base64 in JSON.
///
/// Go writes an attribute with a nil value as `"value":null` (seen from some platforms
/// and older restic) but an empty non-nil one as `""` (restic 0.14 on Linux).
/// `value_null` remembers which, so re-encoding a read tree reproduces its bytes; it is
/// only honoured when `value` is empty.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct ExtendedAttribute {
    /// Attribute name, e.g. `user.comment`.
    pub name: String,
    /// Attribute value (empty when JSON had `null`).
    pub value: Vec<u8>,
    /// The JSON value was `null` (write `null` again if `value` is empty).
    pub value_null: bool,
}

impl ExtendedAttribute {
    /// An attribute written with a base64 value (`""` when empty), as restic on Linux does.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        ExtendedAttribute {
            name: name.into(),
            value: value.into(),
            value_null: false,
        }
    }
}

/// One entry of a tree; see the module documentation and spec §8.3.
///
/// The zero/empty value of a field is what restic omits (except `uid`, `gid`, the times
/// and `content`, which are always written).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Node {
    /// Raw name bytes (never empty and without `/` in a valid tree).
    pub name: Vec<u8>,
    /// `type`.
    pub node_type: NodeType,
    /// Go `os.FileMode` bits, see [`go_mode`].
    pub mode: u32,
    /// Modification time.
    pub mtime: GoTime,
    /// Access time (restic stores mtime here unless `--with-atime`).
    pub atime: GoTime,
    /// Status change time.
    pub ctime: GoTime,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Owner user name.
    pub user: String,
    /// Owner group name.
    pub group: String,
    /// Inode number.
    pub inode: u64,
    /// `st_dev` of the file system (pairs hard links together with `inode`).
    pub device_id: u64,
    /// File size in bytes.
    pub size: u64,
    /// Hard link count.
    pub links: u64,
    /// Symlink target, raw bytes.
    pub link_target: Vec<u8>,
    /// Extended attributes in the order stored.
    pub extended_attributes: Vec<ExtendedAttribute>,
    /// `generic_attributes` (restic >= 0.17, Windows metadata), values kept as raw JSON.
    /// A map because Go writes map keys sorted.
    pub generic_attributes: BTreeMap<String, RawJson>,
    /// `st_rdev` for device nodes.
    pub device: u64,
    /// Data blob ids of a file: `Some(vec![])` for an empty file, `None` (JSON `null`)
    /// for every other node type.
    pub content: Option<Vec<Id>>,
    /// Child tree of a directory.
    pub subtree: Option<Id>,
    /// Error note recorded during backup.
    pub error: String,
}

impl Node {
    /// A node of the given type with zero metadata, `content` set the way restic sets it
    /// (`Some(vec![])` for files, `None` otherwise).
    pub fn new(name: impl Into<Vec<u8>>, node_type: NodeType) -> Self {
        let content = (node_type == NodeType::File).then(Vec::new);
        Node {
            name: name.into(),
            node_type,
            content,
            ..Node::default()
        }
    }

    /// Appends the node's JSON exactly as restic (Go `encoding/json`) writes it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        self.write_json_fields(out, true, &[]);
        out.push(b'}');
    }

    /// Appends the node's JSON fields, in restic's order and with its omissions,
    /// without braces and leaving out the fields named in `omit` (restic's `find` and
    /// `ls` print nodes without their name, content or subtree). Every field but the
    /// first written is preceded by a comma; with `first` false, that one is too.
    pub fn write_json_fields(&self, out: &mut Vec<u8>, first: bool, omit: &[&str]) {
        let mut w = Fields { out, first, omit };
        w.key("name")
            .then(|| push_json_string(w.out, quote(&self.name).as_bytes()));
        w.key("type")
            .then(|| push_json_string(w.out, self.node_type.as_str().as_bytes()));
        w.num("mode", self.mode.into(), true);
        for (k, t) in [
            ("mtime", &self.mtime),
            ("atime", &self.atime),
            ("ctime", &self.ctime),
        ] {
            if w.key(k) {
                w.out.push(b'"');
                w.out.extend_from_slice(t.to_string().as_bytes());
                w.out.push(b'"');
            }
        }
        w.num("uid", self.uid.into(), false);
        w.num("gid", self.gid.into(), false);
        w.text("user", self.user.as_bytes());
        w.text("group", self.group.as_bytes());
        w.num("inode", self.inode, true);
        w.num("device_id", self.device_id, true);
        w.num("size", self.size, true);
        w.num("links", self.links, true);
        w.text("linktarget", &self.link_target);
        if std::str::from_utf8(&self.link_target).is_err() && w.key("linktarget_raw") {
            b64(w.out, &self.link_target);
        }
        if !self.extended_attributes.is_empty() && w.key("extended_attributes") {
            let out = &mut *w.out;
            out.push(b'[');
            for (i, xa) in self.extended_attributes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"name\":");
                push_json_string(out, xa.name.as_bytes());
                out.extend_from_slice(b",\"value\":");
                if xa.value_null && xa.value.is_empty() {
                    out.extend_from_slice(b"null");
                } else {
                    b64(out, &xa.value);
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        if !self.generic_attributes.is_empty() && w.key("generic_attributes") {
            let out = &mut *w.out;
            out.push(b'{');
            for (i, (k, v)) in self.generic_attributes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_string(out, k.as_bytes());
                out.push(b':');
                v.write_go(out);
            }
            out.push(b'}');
        }
        w.num("device", self.device, true);
        if w.key("content") {
            let out = &mut *w.out;
            match &self.content {
                None => out.extend_from_slice(b"null"),
                Some(ids) => {
                    out.push(b'[');
                    for (i, id) in ids.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.push(b'"');
                        out.extend_from_slice(id.to_hex().as_bytes());
                        out.push(b'"');
                    }
                    out.push(b']');
                }
            }
        }
        if let Some(id) = &self.subtree {
            if w.key("subtree") {
                w.out.push(b'"');
                w.out.extend_from_slice(id.to_hex().as_bytes());
                w.out.push(b'"');
            }
        }
        w.text("error", self.error.as_bytes());
    }
}

/// Writes a node's JSON fields one by one: separators, and the fields left out.
struct Fields<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    omit: &'a [&'a str],
}

impl Fields<'_> {
    /// Starts field `k` and returns true, or returns false when `k` is left out.
    fn key(&mut self, k: &str) -> bool {
        if self.omit.contains(&k) {
            return false;
        }
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
        true
    }

    fn num(&mut self, k: &str, v: u64, omit_zero: bool) {
        if !(omit_zero && v == 0) && self.key(k) {
            self.out.extend_from_slice(v.to_string().as_bytes());
        }
    }

    fn text(&mut self, k: &str, v: &[u8]) {
        if !v.is_empty() && self.key(k) {
            push_json_string(self.out, v);
        }
    }
}

fn b64(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(GO_B64.encode(v).as_bytes());
    out.push(b'"');
}

/// Go's `os.FileMode.String()` of a stored mode (`drwxr-xr-x`, `Lrwxrwxrwx`,
/// `Dcrw-rw-rw-`, `urwxr-xr-x`), which restic prints in `ls -l`, `find` and `diff`.
pub fn go_mode_string(mode: u32) -> String {
    const TYPES: &[u8] = b"dalTLDpSugct?";
    let mut s = String::with_capacity(20);
    for (i, c) in TYPES.iter().enumerate() {
        if mode & (1 << (31 - i)) != 0 {
            s.push(char::from(*c));
        }
    }
    if s.is_empty() {
        s.push('-');
    }
    for (i, c) in b"rwxrwxrwx".iter().enumerate() {
        s.push(if mode & (1 << (8 - i)) != 0 {
            char::from(*c)
        } else {
            '-'
        });
    }
    s
}

/// The JSON shape of a node with every field optional (absent and `null` both mean the
/// zero value, as with Go's decoder).
#[derive(Deserialize)]
struct RawNode {
    name: Option<String>,
    #[serde(rename = "type")]
    node_type: Option<NodeType>,
    mode: Option<u32>,
    mtime: Option<GoTime>,
    atime: Option<GoTime>,
    ctime: Option<GoTime>,
    uid: Option<u32>,
    gid: Option<u32>,
    user: Option<String>,
    group: Option<String>,
    inode: Option<u64>,
    device_id: Option<u64>,
    size: Option<u64>,
    links: Option<u64>,
    linktarget: Option<String>,
    linktarget_raw: Option<String>,
    extended_attributes: Option<Vec<RawXattr>>,
    generic_attributes: Option<BTreeMap<String, RawJson>>,
    device: Option<u64>,
    content: Option<Vec<Id>>,
    subtree: Option<Id>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct RawXattr {
    name: Option<String>,
    value: Option<String>,
}

fn b64_decode<E: serde::de::Error>(what: &str, s: &str) -> Result<Vec<u8>, E> {
    GO_B64
        .decode(s)
        .map_err(|e| E::custom(format!("{what}: invalid base64: {e}")))
}

impl<'de> Deserialize<'de> for Node {
    /// Unquotes the name Go-style; a name that does not unquote is an error naming it,
    /// since restic refuses such a tree too.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let r = RawNode::deserialize(d)?;
        let quoted = r.name.unwrap_or_default();
        let name =
            unquote(&quoted).map_err(|e| D::Error::custom(format!("node name {quoted:?}: {e}")))?;
        let link_target = match r.linktarget_raw {
            Some(raw) => b64_decode(&format!("linktarget_raw of {quoted:?}"), &raw)?,
            None => r.linktarget.unwrap_or_default().into_bytes(),
        };
        let mut extended_attributes = Vec::new();
        for xa in r.extended_attributes.unwrap_or_default() {
            let name = xa.name.unwrap_or_default();
            let value = match &xa.value {
                Some(v) => b64_decode(&format!("extended attribute {name:?}"), v)?,
                None => Vec::new(),
            };
            extended_attributes.push(ExtendedAttribute {
                name,
                value,
                value_null: xa.value.is_none(),
            });
        }
        Ok(Node {
            name,
            node_type: r.node_type.unwrap_or(NodeType::Other(String::new())),
            mode: r.mode.unwrap_or_default(),
            mtime: r.mtime.unwrap_or_default(),
            atime: r.atime.unwrap_or_default(),
            ctime: r.ctime.unwrap_or_default(),
            uid: r.uid.unwrap_or_default(),
            gid: r.gid.unwrap_or_default(),
            user: r.user.unwrap_or_default(),
            group: r.group.unwrap_or_default(),
            inode: r.inode.unwrap_or_default(),
            device_id: r.device_id.unwrap_or_default(),
            size: r.size.unwrap_or_default(),
            links: r.links.unwrap_or_default(),
            link_target,
            extended_attributes,
            generic_attributes: r.generic_attributes.unwrap_or_default(),
            device: r.device.unwrap_or_default(),
            content: r.content,
            subtree: r.subtree,
            error: r.error.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests;
