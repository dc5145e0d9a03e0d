//! The engine's error type. Variants name the object they are about (file type and
//! id, path, snapshot) so a one-line message tells the user what is wrong.

use std::path::PathBuf;

use stash_repo_format::{file_type::FileType, FormatError, Id};

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A backend request failed.
    #[error("backend: {op} {path}: {source}")]
    Backend {
        /// The operation (read, write, list, remove).
        op: &'static str,
        /// The object key.
        path: String,
        /// The store's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Whether retrying might help.
        transient: bool,
    },
    /// The object does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// No repository at the location.
    #[error("no repository at {0} (config file not found); run `stash init` first")]
    NoRepository(String),
    /// A repository already exists where `init` was asked to create one.
    #[error("a repository already exists at {0}")]
    AlreadyInitialized(String),
    /// No key file opened with the given password.
    #[error("wrong password: no key in the repository opens with it")]
    WrongPassword,
    /// A repository file is damaged or malformed.
    #[error("{ty} {id}: {source}")]
    Damaged {
        /// Kind of file.
        ty: &'static str,
        /// Its id (or name).
        id: String,
        /// What is wrong.
        #[source]
        source: FormatError,
    },
    /// A blob the index or a tree refers to cannot be found.
    #[error("{ty} blob {id} is not in the index")]
    MissingBlob {
        /// Blob type.
        ty: &'static str,
        /// Blob id.
        id: Id,
    },
    /// A blob failed to decode.
    #[error("{ty} blob {id} in pack {pack}: {source}")]
    BadBlob {
        /// Blob type.
        ty: &'static str,
        /// Blob id.
        id: Id,
        /// The pack read.
        pack: Id,
        /// The decoding error.
        #[source]
        source: FormatError,
    },
    /// Local file system error.
    #[error("{path}: {source}")]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The repository is locked by someone else.
    #[error("repository is locked: {0}")]
    Locked(String),
    /// A snapshot name that matches nothing or more than one snapshot.
    #[error("snapshot {0}")]
    Snapshot(String),
    /// Bad arguments or a request that makes no sense for this repository.
    #[error("{0}")]
    Usage(String),
    /// A failed consistency check.
    #[error("{0}")]
    Check(String),
    /// The operation was cancelled.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// A damaged repository file.
    pub fn damaged(ty: FileType, id: impl std::fmt::Display, source: FormatError) -> Self {
        Error::Damaged {
            ty: ty.name(),
            id: id.to_string(),
            source,
        }
    }

    /// A local I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether retrying the operation might succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                transient: true,
                ..
            }
        )
    }
}
