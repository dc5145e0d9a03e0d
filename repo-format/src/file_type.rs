//! The kinds of files in a repository and where each lives: the one place object
//! names are decided (restic's default layout, used by every backend we support).

use crate::id::Id;

/// A kind of repository file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// `config`
    Config,
    /// `keys/<id>`
    Key,
    /// `snapshots/<id>`
    Snapshot,
    /// `index/<id>`
    Index,
    /// `locks/<id>`
    Lock,
    /// `data/<id[0:2]>/<id>`
    Pack,
}

impl FileType {
    /// Directory under the repository root (empty for `config`).
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Snapshot => "snapshots",
            FileType::Index => "index",
            FileType::Lock => "locks",
            FileType::Pack => "data",
        }
    }

    /// A name for messages ("pack", "index file", ...).
    pub fn name(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "key",
            FileType::Snapshot => "snapshot",
            FileType::Index => "index",
            FileType::Lock => "lock",
            FileType::Pack => "pack",
        }
    }

    /// The path of the file `id` of this type, relative to the repository root.
    pub fn path(self, id: &Id) -> String {
        let hex = id.to_hex();
        match self {
            FileType::Config => "config".into(),
            FileType::Pack => format!("data/{}/{hex}", &hex[..2]),
            t => format!("{}/{hex}", t.dir()),
        }
    }

    /// Every listable type.
    pub const LISTABLE: [FileType; 5] = [
        FileType::Key,
        FileType::Snapshot,
        FileType::Index,
        FileType::Lock,
        FileType::Pack,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let id = Id::hash(b"");
        assert_eq!(FileType::Pack.path(&id), format!("data/e3/{id}"));
        assert_eq!(FileType::Index.path(&id), format!("index/{id}"));
        assert_eq!(FileType::Config.path(&id), "config");
    }
}
