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
//!
//! # Crypto implementations
//!
//! By default every primitive is a RustCrypto crate (`aes` + `ctr`, `poly1305`,
//! `sha2`, `scrypt`) and this crate has no `unsafe` code (`forbid(unsafe_code)`).
//! The opt-in cargo feature `simd-crypto` adds hand-written fast paths (two-stream
//! SHA-NI SHA-256, multi-threaded scrypt on SSE2), both in the one module allowed
//! `unsafe` (`simd`), each taken only where the CPU has the instructions and held to
//! its crate by differential tests and fuzz targets; AES-CTR and Poly1305 stay the
//! RustCrypto crates. Setting the environment variable `STASH_SIMD_CRYPTO=0` (or
//! `false`, `off`, `no`) turns them off at run time; it is read once per process.

#![cfg_attr(not(feature = "simd-crypto"), forbid(unsafe_code))]

pub mod blob;
pub mod compress;
pub mod config;
pub mod crypto;
pub mod error;
pub mod file_type;
pub mod godur;
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
#[cfg(feature = "simd-crypto")]
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod simd;
pub mod snapshot;
pub mod tree;
pub mod unpacked;

pub use error::{FormatError, Result};
pub use id::Id;
