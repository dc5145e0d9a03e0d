//! The restic repository format, sans I/O.
//!
//! A repository is a set of write-once files addressed by the SHA-256 of their bytes:
//! `config`, `keys/`, `snapshots/`, `index/`, `locks/` and pack files under `data/`.
//! Everything except key files is encrypted with the master key (AES-256-CTR +
//! Poly1305-AES, see [`crypto`]); version 2 repositories also zstd-compress
//! ([`compress`]). Packs ([`pack`]) hold encrypted blobs; index files ([`index`]) say
//! which pack holds which blob; trees ([`tree`], [`node`]) describe directories; a
//! snapshot ([`snapshot`]) names a root tree. This crate encodes and decodes all of
//! them from and to bytes; it never touches a file system or network.

pub mod blob;
pub mod compress;
pub mod config;
pub mod crypto;
pub mod error;
pub mod file_type;
pub mod gostr;
pub mod gotime;
pub mod id;
pub mod index;
pub mod kdf;
pub mod key;
pub mod lock;
pub mod node;
pub mod pack;
pub mod prune;
pub mod retention;
pub mod sha256;
pub mod snapshot;
pub mod tree;
pub mod unpacked;

pub use error::{FormatError, Result};
pub use id::Id;
